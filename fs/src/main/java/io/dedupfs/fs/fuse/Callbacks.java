package io.dedupfs.fs.fuse;

import jnr.ffi.annotations.Delegate;
import jnr.ffi.types.intptr_t;
import jnr.ffi.types.off_t;
import jnr.ffi.types.size_t;
import jnr.ffi.types.u_int64_t;

/**
 * The C signatures of {@code struct fuse_lowlevel_ops} entries (fuse_lowlevel.h, libfuse 3.14, with
 * {@code FUSE_USE_VERSION >= 35} for ioctl's unsigned cmd), one jnr-ffi closure type per distinct
 * signature. Pointers arrive as {@code long} addresses; {@code fuse_ino_t} is u64, {@code mode_t} and
 * {@code unsigned} are 32 bits. Public because jnr-ffi implements them in another package.
 */
final class Callbacks {
    private Callbacks() {
    }

    /** init(void *userdata, struct fuse_conn_info *conn) */
    public interface Init {
        @Delegate
        void call(@intptr_t long userdata, @intptr_t long conn);
    }

    /** destroy(void *userdata) */
    public interface Destroy {
        @Delegate
        void call(@intptr_t long userdata);
    }

    /** lookup, unlink, rmdir, removexattr: (req, ino, const char *name) */
    public interface InoName {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long name);
    }

    /** forget(req, ino, uint64_t nlookup) */
    public interface Forget {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @u_int64_t long nlookup);
    }

    /** forget_multi(req, size_t count, struct fuse_forget_data *forgets) */
    public interface ForgetMulti {
        @Delegate
        void call(@intptr_t long req, @size_t long count, @intptr_t long forgets);
    }

    /** getattr, open, flush, release, opendir, releasedir: (req, ino, struct fuse_file_info *fi) */
    public interface InoFi {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long fi);
    }

    /** setattr(req, ino, struct stat *attr, int to_set, fi) */
    public interface Setattr {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long attr, int toSet, @intptr_t long fi);
    }

    /** readlink, statfs: (req, ino) */
    public interface Ino {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino);
    }

    /** mknod(req, parent, name, mode_t mode, dev_t rdev) */
    public interface Mknod {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long parent, @intptr_t long name, int mode, @u_int64_t long rdev);
    }

    /** mkdir(req, parent, name, mode_t mode) */
    public interface Mkdir {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long parent, @intptr_t long name, int mode);
    }

    /** symlink(req, const char *link, parent, name) */
    public interface Symlink {
        @Delegate
        void call(@intptr_t long req, @intptr_t long link, @u_int64_t long parent, @intptr_t long name);
    }

    /** rename(req, parent, name, newparent, newname, unsigned flags) */
    public interface Rename {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long parent, @intptr_t long name, @u_int64_t long newParent,
                  @intptr_t long newName, int flags);
    }

    /** link(req, ino, newparent, newname) */
    public interface Link {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @u_int64_t long newParent, @intptr_t long newName);
    }

    /** read, readdir: (req, ino, size_t size, off_t off, fi) */
    public interface Read {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @size_t long size, @off_t long off, @intptr_t long fi);
    }

    /** write(req, ino, const char *buf, size_t size, off_t off, fi) */
    public interface Write {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long buf, @size_t long size, @off_t long off,
                  @intptr_t long fi);
    }

    /** fsync, fsyncdir: (req, ino, int datasync, fi) */
    public interface Fsync {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, int datasync, @intptr_t long fi);
    }

    /** setxattr(req, ino, name, const char *value, size_t size, int flags) */
    public interface Setxattr {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long name, @intptr_t long value,
                  @size_t long size, int flags);
    }

    /** getxattr(req, ino, name, size_t size) */
    public interface Getxattr {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @intptr_t long name, @size_t long size);
    }

    /** listxattr(req, ino, size_t size) */
    public interface Listxattr {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @size_t long size);
    }

    /** access(req, ino, int mask) */
    public interface Access {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, int mask);
    }

    /** create(req, parent, name, mode_t mode, fi) */
    public interface Create {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long parent, @intptr_t long name, int mode, @intptr_t long fi);
    }

    /** ioctl(req, ino, unsigned cmd, void *arg, fi, unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz) */
    public interface Ioctl {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, int cmd, @intptr_t long arg, @intptr_t long fi, int flags,
                  @intptr_t long inBuf, @size_t long inSize, @size_t long outSize);
    }

    /** fallocate(req, ino, int mode, off_t offset, off_t length, fi) */
    public interface Fallocate {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, int mode, @off_t long offset, @off_t long length,
                  @intptr_t long fi);
    }

    /** copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out, size_t len, int flags) */
    public interface CopyFileRange {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long inoIn, @off_t long offIn, @intptr_t long fiIn,
                  @u_int64_t long inoOut, @off_t long offOut, @intptr_t long fiOut, @size_t long len, int flags);
    }

    /** lseek(req, ino, off_t off, int whence, fi) */
    public interface Lseek {
        @Delegate
        void call(@intptr_t long req, @u_int64_t long ino, @off_t long off, int whence, @intptr_t long fi);
    }
}
