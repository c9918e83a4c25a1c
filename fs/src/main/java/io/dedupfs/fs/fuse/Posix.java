package io.dedupfs.fs.fuse;

import java.io.IOException;
import java.nio.file.Path;
import jnr.constants.platform.Errno;

/**
 * The few POSIX calls the command line needs that Java does not offer, through the binding's libc.
 */
public final class Posix {
  private static final int O_WRONLY = 01;
  private static final int O_CREAT = 0100;
  private static final int O_APPEND = 02000;
  private static final int O_CLOEXEC = 02000000;

  private Posix() {}

  private static final int O_RDONLY = 0;

  /**
   * Opens {@code src} for reading and {@code dst} for writing (creating it with {@code mode} if
   * missing) and issues {@code ioctl(dst, cmd, arg)} with {@code arg} built by {@code argument}
   * from the source's descriptor.
   *
   * @throws IOException with the system's reason, naming the file or the ioctl that failed
   */
  public static void ioctlOnPair(
      Path src, Path dst, int mode, long cmd, java.util.function.IntFunction<byte[]> argument)
      throws IOException {
    Native.LibC c = Native.libc();
    int s = c.open(src.toString(), O_RDONLY | O_CLOEXEC, 0);
    if (s < 0) {
      throw new IOException(src + ": " + Errno.valueOf(Native.lastErrno()).description());
    }
    try {
      int d = c.open(dst.toString(), O_WRONLY | O_CREAT | O_CLOEXEC, mode);
      if (d < 0) {
        throw new IOException(dst + ": " + Errno.valueOf(Native.lastErrno()).description());
      }
      try {
        if (c.ioctl(d, cmd, argument.apply(s)) < 0) {
          throw new IOException(Errno.valueOf(Native.lastErrno()).description());
        }
      } finally {
        c.close(d);
      }
    } finally {
      c.close(s);
    }
  }

  /** The effective user id of this process. */
  public static int euid() {
    return Native.libc().geteuid();
  }

  /**
   * Points this process's standard output and error (file descriptors 1 and 2) at {@code log},
   * appending.
   */
  public static void redirectStdoutAndStderr(Path log) throws IOException {
    Native.LibC c = Native.libc();
    int fd = c.open(log.toString(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      throw new IOException(
          "cannot open " + log + ": " + Errno.valueOf(Native.lastErrno()).description());
    }
    try {
      if (c.dup2(fd, 1) < 0 || c.dup2(fd, 2) < 0) {
        throw new IOException(
            "dup2 onto stdout/stderr failed: " + Errno.valueOf(Native.lastErrno()).description());
      }
    } finally {
      c.close(fd);
    }
  }

  /**
   * Unmounts {@code mountpoint} with umount2(2) (root only).
   *
   * @throws IOException with the system's reason, e.g. "Device or resource busy"
   */
  public static void umount(Path mountpoint) throws IOException {
    Native.LibC c = Native.libc();
    if (c.umount2(mountpoint.toString(), 0) != 0) {
      throw new IOException(Errno.valueOf(Native.lastErrno()).description());
    }
  }
}
