package io.dedupfs.fs.fuse;

/**
 * Who sent a request, from {@code fuse_req_ctx}: the caller's ids, its thread id and its umask (the
 * umask is only meaningful for requests that create something; the kernel has already applied it to
 * the mode unless the application asked for {@code FUSE_CAP_DONT_MASK}).
 *
 * @param killSuidGid the kernel asks the filesystem to drop the file's set-user-ID bit, and its
 *     set-group-ID bit as the kernel would (see {@link FuseOperations#dropsPrivileges}): set on a
 *     write, truncate or open with O_TRUNC by a caller without CAP_FSETID, and on every chown of a
 *     file that is not a directory
 */
public record RequestContext(int uid, int gid, int pid, int umask, boolean killSuidGid) {}
