package io.dedupfs.fs.fuse;

import jnr.ffi.annotations.Delegate;

/**
 * The C signatures of {@code struct fuse_lowlevel_ops} entries (fuse_lowlevel.h, libfuse 3.14, with
 * {@code FUSE_USE_VERSION >= 35} for ioctl's unsigned cmd), one jnr-ffi closure type per distinct
 * signature. Pointers, {@code size_t} and {@code off_t} arrive as plain 64-bit {@code long}s (see
 * {@link Native}); {@code fuse_ino_t} is u64, {@code mode_t} and {@code unsigned} are 32 bits.
 * Public because jnr-ffi implements them in another package.
 */
final class Callbacks {
  private Callbacks() {}

  /** init(void *userdata, struct fuse_conn_info *conn) */
  public interface Init {
    @Delegate
    void call(long userdata, long conn);
  }

  /**
   * {@code struct fuse_custom_io}'s writev(int fd, struct iovec *iov, int count, void *userdata)
   */
  public interface Writev {
    @Delegate
    long call(int fd, long iov, int count, long userdata);
  }

  /** destroy(void *userdata) */
  public interface Destroy {
    @Delegate
    void call(long userdata);
  }

  /** lookup, unlink, rmdir, removexattr: (req, ino, const char *name) */
  public interface InoName {
    @Delegate
    void call(long req, long ino, long name);
  }

  /** forget(req, ino, uint64_t nlookup) */
  public interface Forget {
    @Delegate
    void call(long req, long ino, long nlookup);
  }

  /** forget_multi(req, size_t count, struct fuse_forget_data *forgets) */
  public interface ForgetMulti {
    @Delegate
    void call(long req, long count, long forgets);
  }

  /** getattr, open, flush, release, opendir, releasedir: (req, ino, struct fuse_file_info *fi) */
  public interface InoFi {
    @Delegate
    void call(long req, long ino, long fi);
  }

  /** setattr(req, ino, struct stat *attr, int to_set, fi) */
  public interface Setattr {
    @Delegate
    void call(long req, long ino, long attr, int toSet, long fi);
  }

  /** readlink, statfs: (req, ino) */
  public interface Ino {
    @Delegate
    void call(long req, long ino);
  }

  /** mknod(req, parent, name, mode_t mode, dev_t rdev) */
  public interface Mknod {
    @Delegate
    void call(long req, long parent, long name, int mode, long rdev);
  }

  /** mkdir(req, parent, name, mode_t mode) */
  public interface Mkdir {
    @Delegate
    void call(long req, long parent, long name, int mode);
  }

  /** symlink(req, const char *link, parent, name) */
  public interface Symlink {
    @Delegate
    void call(long req, long link, long parent, long name);
  }

  /** rename(req, parent, name, newparent, newname, unsigned flags) */
  public interface Rename {
    @Delegate
    void call(long req, long parent, long name, long newParent, long newName, int flags);
  }

  /** link(req, ino, newparent, newname) */
  public interface Link {
    @Delegate
    void call(long req, long ino, long newParent, long newName);
  }

  /** read, readdir: (req, ino, size_t size, off_t off, fi) */
  public interface Read {
    @Delegate
    void call(long req, long ino, long size, long off, long fi);
  }

  /** write(req, ino, const char *buf, size_t size, off_t off, fi) */
  public interface Write {
    @Delegate
    void call(long req, long ino, long buf, long size, long off, long fi);
  }

  /** fsync, fsyncdir: (req, ino, int datasync, fi) */
  public interface Fsync {
    @Delegate
    void call(long req, long ino, int datasync, long fi);
  }

  /** setxattr(req, ino, name, const char *value, size_t size, int flags) */
  public interface Setxattr {
    @Delegate
    void call(long req, long ino, long name, long value, long size, int flags);
  }

  /** getxattr(req, ino, name, size_t size) */
  public interface Getxattr {
    @Delegate
    void call(long req, long ino, long name, long size);
  }

  /** listxattr(req, ino, size_t size) */
  public interface Listxattr {
    @Delegate
    void call(long req, long ino, long size);
  }

  /** access(req, ino, int mask) */
  public interface Access {
    @Delegate
    void call(long req, long ino, int mask);
  }

  /** create(req, parent, name, mode_t mode, fi) */
  public interface Create {
    @Delegate
    void call(long req, long parent, long name, int mode, long fi);
  }

  /**
   * ioctl(req, ino, unsigned cmd, void *arg, fi, unsigned flags, const void *in_buf, size_t
   * in_bufsz, size_t out_bufsz)
   */
  public interface Ioctl {
    @Delegate
    void call(
        long req,
        long ino,
        int cmd,
        long arg,
        long fi,
        int flags,
        long inBuf,
        long inSize,
        long outSize);
  }

  /** fallocate(req, ino, int mode, off_t offset, off_t length, fi) */
  public interface Fallocate {
    @Delegate
    void call(long req, long ino, int mode, long offset, long length, long fi);
  }

  /**
   * copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out, size_t len, int flags)
   */
  public interface CopyFileRange {
    @Delegate
    void call(
        long req,
        long inoIn,
        long offIn,
        long fiIn,
        long inoOut,
        long offOut,
        long fiOut,
        long len,
        int flags);
  }

  /** lseek(req, ino, off_t off, int whence, fi) */
  public interface Lseek {
    @Delegate
    void call(long req, long ino, long off, int whence, long fi);
  }
}
