package io.dedupfs.fs.fuse;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import jnr.constants.platform.Errno;

/**
 * A filesystem served through libfuse's low-level API: one method per request, in inode numbers.
 *
 * <p>Methods return values; the binding writes the reply. Anything thrown becomes an error reply
 * whose errno the application's error mapper decides (see {@link FuseSession}); throw {@link
 * ErrnoException} to answer a specific errno. Methods are called concurrently from the session's
 * worker threads, one request per thread at a time, and must be thread-safe.
 *
 * <p>Defaults answer ENOSYS, like libfuse does for an operation that is not there. The kernel
 * remembers an ENOSYS for open, opendir, flush, fsync, fsyncdir, access, create, the xattr calls,
 * fallocate and copy_file_range and stops sending them (open and opendir then succeed without the
 * daemon; create falls back to mknod + open). The exceptions are {@link #init}, {@link #destroy},
 * {@link #forget} (which cannot fail) and {@link #optionalOps}. Optional operations ({@link
 * OptionalOp}) are only registered when listed by {@link #optionalOps()}.
 *
 * <p>Names are decoded from the kernel's bytes as strict UTF-8; an undecodable name fails the
 * request with a {@link java.nio.charset.CharacterCodingException} before the method is called.
 * Modes are {@code st_mode} values ({@link Attr#S_IFREG} ...); flags are Linux open(2) flags.
 */
public interface FuseOperations {

  /** The optional operations this filesystem implements; only these are registered with libfuse. */
  default Set<OptionalOp> optionalOps() {
    return Set.of();
  }

  /**
   * Whether this filesystem drops set-user-ID and set-group-ID bits itself where {@link
   * RequestContext#killSuidGid} says, and capabilities on every write. Then the binding asks the
   * kernel to stop checking for them before each write through the page cache (one request less per
   * write; {@code FUSE_HANDLE_KILLPRIV_V2}, libfuse 3.14 only, not with {@link
   * MountOptions#writebackCache}), and the kernel leaves the mode bits to the filesystem on write,
   * truncate, chown and open with O_TRUNC. Otherwise the kernel does it through setattr, as for any
   * FUSE filesystem. Read once, at mount.
   */
  default boolean dropsPrivileges() {
    return false;
  }

  /**
   * Called once when the kernel's INIT arrives, before any other request.
   *
   * @param conn what the kernel offers and the binding proposes
   * @return the connection parameters wanted (usually {@code conn}, possibly with other
   *     capabilities)
   */
  default ConnectionInfo init(ConnectionInfo conn) throws Exception {
    return conn;
  }

  /** Called once when the session ends (after unmount), on the thread that closes the session. */
  default void destroy() throws Exception {}

  /**
   * Looks a name up in a directory. Each successful answer adds one to the inode's lookup count.
   */
  default Entry lookup(long parent, String name) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * The kernel dropped {@code nlookup} references to {@code ino}; there is no reply, failures are
   * only logged.
   */
  default void forget(long ino, long nlookup) throws Exception {}

  /**
   * @param fh present when called through an open file (fstat)
   */
  default Attr getattr(long ino, OptionalLong fh) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Changes attributes; returns the attributes after the change. */
  default Attr setattr(RequestContext ctx, long ino, SetAttr changes) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default String readlink(long ino) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * @param mode includes the file type bits
   */
  default Entry mknod(RequestContext ctx, long parent, String name, int mode, long rdev)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * @param mode permission bits only; the directory type bit is the application's to add
   */
  default Entry mkdir(RequestContext ctx, long parent, String name, int mode) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void unlink(long parent, String name) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void rmdir(long parent, String name) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default Entry symlink(RequestContext ctx, String target, long parent, String name)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Flags for {@link #rename}. */
  int RENAME_NOREPLACE = 1;

  int RENAME_EXCHANGE = 2;

  /**
   * @param flags 0, {@link #RENAME_NOREPLACE} or {@link #RENAME_EXCHANGE} (answer EINVAL for flags
   *     you do not support)
   */
  default void rename(long parent, String name, long newParent, String newName, int flags)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default Entry link(long ino, long newParent, String newName) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * @param ctx the opener ({@link RequestContext#killSuidGid} on an O_TRUNC open that drops
   *     privileges)
   * @param flags the open(2) flags (O_ACCMODE, O_DIRECT, O_TRUNC with atomic_o_trunc ...)
   */
  default OpenFile open(RequestContext ctx, long ino, int flags) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * Reads into {@code dst}: position 0, limit = the requested size (at most 1 MiB). Put the data at
   * index 0 onwards and return how many bytes were placed; fewer than requested means end of file.
   * {@code dst} is the worker's native reply buffer, valid only during this call.
   */
  default int read(long ino, long fh, long offset, ByteBuffer dst) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * Writes {@code data} (read-only, position 0, limit = size, up to 1 MiB): a view of libfuse's
   * receive buffer, valid only during this call. Returns the number of bytes written. {@code ctx}:
   * the writer (a file open with {@link OpenFile#directIo}, or any file when {@link
   * #dropsPrivileges}, has its set-user-ID bits dropped by the filesystem, not the kernel).
   */
  default int write(RequestContext ctx, long ino, long fh, long offset, ByteBuffer data)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Called on every close(2) of a file descriptor of this open file. */
  default void flush(long ino, long fh) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * The last descriptor of this open file was closed; the reply's errno is ignored by the kernel.
   */
  default void release(long ino, long fh, int flags) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void fsync(long ino, long fh, boolean datasync) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default OpenFile opendir(long ino, int flags) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * Lists entries starting at {@code offset} (0 at the start, else a {@code nextOffset} given
   * earlier) into {@code filler} until it answers false or the directory ends.
   */
  default void readdir(long ino, long fh, long offset, DirectoryFiller filler) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void releasedir(long ino, long fh) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void fsyncdir(long ino, long fh, boolean datasync) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default Statfs statfs(long ino) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Flags for {@link #setxattr}. */
  int XATTR_CREATE = 1;

  int XATTR_REPLACE = 2;

  /**
   * @param flags 0, {@link #XATTR_CREATE} or {@link #XATTR_REPLACE}
   */
  default void setxattr(long ino, String name, byte[] value, int flags) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * The whole value of an attribute (throw ENODATA when there is none). The binding answers size
   * probes and ERANGE from its length.
   */
  default byte[] getxattr(long ino, String name) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * All attribute names; the binding encodes them NUL-separated and answers size probes and ERANGE.
   */
  default List<String> listxattr(long ino) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  default void removexattr(long ino, String name) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** access(2) check; never called with {@code default_permissions} (the kernel checks itself). */
  default void access(RequestContext ctx, long ino, int mask) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * Creates and opens a regular file.
   *
   * @param mode file type and permission bits, umask already applied by the kernel
   * @param flags the open(2) flags
   */
  default CreatedFile create(RequestContext ctx, long parent, String name, int mode, int flags)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Flags of {@link #fallocate}'s mode (linux/falloc.h). */
  int FALLOC_FL_KEEP_SIZE = 0x01;

  int FALLOC_FL_PUNCH_HOLE = 0x02;
  int FALLOC_FL_ZERO_RANGE = 0x10;

  /** Optional ({@link OptionalOp#FALLOCATE}). @param mode 0 or {@code FALLOC_FL_*} bits */
  default void fallocate(long ino, long fh, int mode, long offset, long length) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** Whence values the kernel forwards to {@link #lseek} (it handles SET/CUR/END itself). */
  int SEEK_DATA = 3;

  int SEEK_HOLE = 4;

  /**
   * Optional ({@link OptionalOp#LSEEK}): the next data or hole offset at or after {@code offset};
   * ENXIO past the end.
   */
  default long lseek(long ino, long fh, long offset, int whence) throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /** {@code flags} bit: the caller is a 32-bit process. */
  int FUSE_IOCTL_COMPAT = 1;

  /**
   * Optional ({@link OptionalOp#IOCTL}). Only "restricted" ioctls exist here: the kernel copies
   * {@code _IOC_SIZE(cmd)} bytes in ({@code in}, for _IOW/_IOWR) and out (at most {@code outSize}
   * bytes, for _IOR/_IOWR); pointers inside the payload are meaningless. Answer ENOTTY for unknown
   * commands.
   *
   * @param ctx the caller (its pid lets a filesystem resolve file descriptors named in the payload)
   * @param arg the caller's argument as a number (a user-space address for pointer arguments)
   * @param flags {@link #FUSE_IOCTL_COMPAT} and the kernel's other {@code FUSE_IOCTL_*} bits
   */
  default IoctlResult ioctl(
      RequestContext ctx, long ino, long fh, int cmd, long arg, int flags, byte[] in, int outSize)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }

  /**
   * Optional ({@link OptionalOp#COPY_FILE_RANGE}): copies up to {@code len} bytes between two open
   * files and returns the number copied (at most {@code len}; the kernel's reply field is 32 bits,
   * and it never asks for more than 0xfffff000 at once).
   */
  default long copyFileRange(
      long inoIn, long fhIn, long offIn, long inoOut, long fhOut, long offOut, long len, int flags)
      throws Exception {
    throw new ErrnoException(Errno.ENOSYS);
  }
}
