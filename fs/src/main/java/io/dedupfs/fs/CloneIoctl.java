package io.dedupfs.fs;

import io.dedupfs.engine.Attributes;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.SetAttributes;
import io.dedupfs.fs.fuse.ErrnoException;
import io.dedupfs.fs.fuse.RequestContext;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import jnr.constants.platform.Errno;

/**
 * dedupfs's reflink: the ioctl {@value #CMD_HEX}, {@code _IOW('D', 1, struct dedupfs_clone_range)},
 * issued on the destination's file descriptor (open for writing). The kernel keeps FICLONE and
 * FICLONERANGE from FUSE filesystems, so dedupfs defines its own; the argument has FICLONERANGE's
 * layout ({@code struct file_clone_range}, 32 bytes, native byte order):
 *
 * <pre>
 * struct dedupfs_clone_range {
 *     int64_t  src_fd;      // the source, open for reading, on the same dedupfs mount
 *     uint64_t src_offset;
 *     uint64_t src_length;  // 0: to the end of the source
 *     uint64_t dest_offset;
 * };
 * </pre>
 *
 * All zero offsets and length clone the whole file, as FICLONE: the destination becomes an exact
 * copy (same size). Otherwise the range is cloned like FICLONERANGE, growing the destination if it
 * ends beyond it. Either way the copy shares every whole subtree with the source, so it takes time
 * and space that do not grow with the size; only unaligned edge blocks are copied.
 *
 * <p>The source is found through the caller's {@code /proc/PID/fd/SRC_FD}, so it must be open in
 * the calling process, in dedupfs's mount namespace. Errors: EBADF (no such descriptor, or not open
 * for reading / the destination not for writing), EXDEV (the source is on another filesystem),
 * EISDIR, EINVAL (overlapping ranges in one file), EROFS, ENOSPC.
 */
final class CloneIoctl {
  static final int CMD = 0x40204401;
  static final String CMD_HEX = "0x40204401";
  static final int SIZE = 32;

  private static final int O_ACCMODE = 3;
  private static final int O_WRONLY = 1;

  private final Datastore store;

  CloneIoctl(Datastore store) {
    this.store = store;
  }

  /**
   * Clones into {@code dstIno} as {@code in} asks; {@code deviceNumber} is this mount's {@code
   * st_dev}. Returns the inode whose cached pages the kernel must drop.
   */
  long clone(RequestContext ctx, long dstIno, byte[] in, long deviceNumber) throws IOException {
    if (in.length != SIZE) {
      throw new ErrnoException(Errno.EINVAL, "clone argument of " + in.length + " bytes");
    }
    ByteBuffer b = ByteBuffer.wrap(in).order(ByteOrder.nativeOrder());
    long srcFd = b.getLong();
    long srcOffset = b.getLong();
    long srcLength = b.getLong();
    long dstOffset = b.getLong();
    if (srcFd < 0 || srcFd > Integer.MAX_VALUE || srcOffset < 0 || srcLength < 0 || dstOffset < 0) {
      throw new ErrnoException(Errno.EINVAL, "negative descriptor, offset or length");
    }
    long srcIno = sourceInode(ctx.pid(), (int) srcFd, deviceNumber);
    Attributes src = store.getattr(srcIno);
    Attributes dst = store.getattr(dstIno);
    if (src.isDirectory() || dst.isDirectory()) {
      throw new ErrnoException(Errno.EISDIR);
    }
    if (!src.isRegularFile() || !dst.isRegularFile()) {
      throw new ErrnoException(Errno.EINVAL, "not a regular file");
    }
    if (srcOffset == 0 && srcLength == 0 && dstOffset == 0) {
      if (srcIno != dstIno) {
        store.setattr(dstIno, SetAttributes.size(0));
        store.copyRange(srcIno, 0, dstIno, 0, src.size());
      }
      return dstIno;
    }
    long length = srcLength == 0 ? Math.max(0, src.size() - srcOffset) : srcLength;
    store.copyRange(srcIno, srcOffset, dstIno, dstOffset, length);
    return dstIno;
  }

  /**
   * The inode behind descriptor {@code fd} of process {@code pid}, checked to be on this mount and
   * readable.
   */
  private static long sourceInode(int pid, int fd, long deviceNumber) throws IOException {
    Path link = Path.of("/proc", Integer.toString(pid), "fd", Integer.toString(fd));
    Map<String, Object> a;
    try {
      a = Files.readAttributes(link, "unix:dev,ino");
    } catch (NoSuchFileException e) {
      throw new ErrnoException(Errno.EBADF, "process " + pid + " has no descriptor " + fd);
    }
    if ((Long) a.get("dev") != deviceNumber) {
      throw new ErrnoException(Errno.EXDEV, "the source is not on this dedupfs mount");
    }
    if ((openFlags(pid, fd) & O_ACCMODE) == O_WRONLY) {
      throw new ErrnoException(Errno.EBADF, "the source is not open for reading");
    }
    return (Long) a.get("ino");
  }

  private static int openFlags(int pid, int fd) throws IOException {
    for (String line :
        Files.readAllLines(
            Path.of("/proc", Integer.toString(pid), "fdinfo", Integer.toString(fd)))) {
      if (line.startsWith("flags:")) {
        return Integer.parseInt(line.substring(6).trim(), 8);
      }
    }
    throw new ErrnoException(Errno.EBADF, "no flags for descriptor " + fd + " of process " + pid);
  }
}
