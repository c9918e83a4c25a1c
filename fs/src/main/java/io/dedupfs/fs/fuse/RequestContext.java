package io.dedupfs.fs.fuse;

/**
 * Who sent a request, from {@code fuse_req_ctx}: the caller's ids, its thread id and its umask (the
 * umask is only meaningful for requests that create something; the kernel has already applied it to
 * the mode unless the application asked for {@code FUSE_CAP_DONT_MASK}).
 */
public record RequestContext(int uid, int gid, int pid, int umask) {}
