package io.dedupfs.fs.fuse;

import com.kenai.jffi.MemoryIO;
import jnr.ffi.LibraryLoader;
import jnr.ffi.LibraryOption;
import jnr.ffi.annotations.In;
import jnr.ffi.annotations.SaveError;

/**
 * The native functions the binding calls, and raw memory access.
 *
 * <p>Pointers are plain {@code long} addresses so that calls on the request path create no jnr
 * {@code Pointer} objects; {@code size_t}, {@code off_t}, {@code uint64_t} and pointers are all
 * 64-bit {@code long} here (x86_64 and arm64 Linux only). jnr-ffi's type aliases ({@code @off_t}
 * ...) are not used: in closures they were passed as 32-bit values, which truncated readdir
 * offsets. structures are read and written with {@link #MEM} at the offsets in {@link Layout}. The
 * interfaces are public only because jnr-ffi generates their implementations in another package.
 */
final class Native {
  private Native() {}

  /** Unsafe-backed loads and stores on native addresses (jffi ships with jnr-ffi). */
  static final MemoryIO MEM = MemoryIO.getInstance();

  /**
   * The runtime soname: only {@code libfuse3-3} is installed on the target machines, not the -dev
   * symlink.
   */
  static final String LIBFUSE = "libfuse3.so.3";

  /** liburing's runtime soname (Debian's liburing2). */
  static final String LIBURING = "liburing.so.2";

  private static volatile LibFuse fuse;
  private static volatile LibC libc;

  /**
   * libfuse 3.14's low-level API as far as the binding uses it ({@code fuse_lowlevel.h}). errno is
   * not saved after calls: libfuse reports errors as negative return values.
   */
  public interface LibFuse {
    long fuse_session_new(long args, long ops, long opSize, long userdata);

    int fuse_session_mount(long se, String mountpoint);

    int fuse_session_receive_buf(long se, long buf);

    void fuse_session_process_buf(long se, long buf);

    void fuse_session_exit(long se);

    void fuse_session_unmount(long se);

    void fuse_session_destroy(long se);

    void fuse_opt_free_args(long args);

    long fuse_req_ctx(long req);

    int fuse_reply_err(long req, int err);

    void fuse_reply_none(long req);

    int fuse_reply_entry(long req, long entryParam);

    int fuse_reply_create(long req, long entryParam, long fi);

    int fuse_reply_attr(long req, long stat, double attrTimeout);

    int fuse_reply_readlink(long req, long link);

    int fuse_reply_open(long req, long fi);

    int fuse_reply_write(long req, long count);

    int fuse_reply_buf(long req, long buf, long size);

    int fuse_reply_statfs(long req, long statvfs);

    int fuse_reply_xattr(long req, long count);

    int fuse_reply_lseek(long req, long off);

    int fuse_reply_ioctl(long req, int result, long buf, long size);

    int fuse_lowlevel_notify_inval_inode(long se, long ino, long off, long len);

    int fuse_lowlevel_notify_inval_entry(long se, long parent, @In byte[] name, long namelen);
  }

  /**
   * What {@link InitReply} needs of libfuse, apart from {@link LibFuse} so that a libfuse without
   * it (before 3.13) still mounts.
   */
  public interface LibFuseIo {
    String fuse_pkgversion();

    /** libfuse 3.14's signature; 3.17 changed it. */
    int fuse_session_custom_io(long se, long io, int fd);

    int fuse_session_fd(long se);
  }

  /** The libc functions the session needs besides libfuse. */
  public interface LibC {
    int MNT_FORCE = 1;
    int MNT_DETACH = 2;

    @SaveError
    int umount2(String target, int flags);

    void free(long ptr);

    int geteuid();

    @SaveError
    int open(String path, int flags, int mode);

    @SaveError
    int dup2(int oldFd, int newFd);

    int close(int fd);

    @SaveError
    long writev(int fd, long iov, int count);

    @SaveError
    int ioctl(int fd, long request, @In byte[] arg);
  }

  /**
   * What {@link Ring} needs of liburing 2.3 (Debian's liburing2): setting a ring up and tearing it
   * down, and entering it. Errors are negative return values.
   */
  public interface LibUring {
    int io_uring_queue_init_params(int entries, long ring, long params);

    void io_uring_queue_exit(long ring);

    int io_uring_enter(int fd, int toSubmit, int minComplete, int flags, long sig);
  }

  /**
   * Loads libfuse on first use; throws {@link UnsatisfiedLinkError} (again on every call) while it
   * is missing.
   */
  static LibFuse fuse() {
    LibFuse f = fuse;
    if (f == null) {
      synchronized (Native.class) {
        f = fuse;
        if (f == null) {
          f =
              LibraryLoader.create(LibFuse.class)
                  .option(LibraryOption.IgnoreError, true)
                  .failImmediately()
                  .load(LIBFUSE);
          fuse = f;
        }
      }
    }
    return f;
  }

  /** {@link LibFuseIo}; throws {@link UnsatisfiedLinkError} where libfuse lacks it. */
  static LibFuseIo fuseIo() {
    return LibraryLoader.create(LibFuseIo.class).failImmediately().load(LIBFUSE);
  }

  static LibC libc() {
    LibC c = libc;
    if (c == null) {
      synchronized (Native.class) {
        c = libc;
        if (c == null) {
          c = LibraryLoader.create(LibC.class).failImmediately().load("c");
          libc = c;
        }
      }
    }
    return c;
  }

  /** Loads liburing; throws {@link UnsatisfiedLinkError} where it is not installed. */
  static LibUring uring() {
    return LibraryLoader.create(LibUring.class).failImmediately().load(LIBURING);
  }

  /** The address of libc's function {@code name}, to hand to C as a function pointer. */
  static long libcFunction(String name) {
    long address =
        com.kenai.jffi.Library.getCachedInstance("libc.so.6", com.kenai.jffi.Library.LAZY)
            .getSymbolAddress(name);
    if (address == 0) {
      throw new UnsatisfiedLinkError("libc has no " + name);
    }
    return address;
  }

  /** errno of the last {@code @SaveError} call on this thread. */
  static int lastErrno() {
    return jnr.ffi.Runtime.getSystemRuntime().getLastError();
  }
}
