package io.dedupfs.fs.fuse;

import jnr.constants.platform.Errno;

/**
 * An answer with a specific errno, e.g. ENOENT from {@code lookup} or ENOTTY for an unknown ioctl.
 *
 * <p>Unchecked so that it can leave lambdas and streams. It carries no stack trace: it is a normal
 * reply, some are frequent (ENOENT lookups), and filling in a trace would dominate their cost. The
 * binding answers {@link #errno()} for it without asking the application's error mapper (given to
 * {@link FuseSession}), which sees every other failure.
 */
public class ErrnoException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int errno;

  public ErrnoException(Errno errno) {
    this(errno.intValue(), errno.name(), null);
  }

  public ErrnoException(Errno errno, String message) {
    this(errno.intValue(), errno.name() + ": " + message, null);
  }

  public ErrnoException(Errno errno, String message, Throwable cause) {
    this(errno.intValue(), errno.name() + ": " + message, cause);
  }

  /** For errno values that jnr-constants does not name. */
  public ErrnoException(int errno, String message, Throwable cause) {
    super(message, cause, false, false);
    if (errno <= 0) {
      throw new IllegalArgumentException("errno must be positive: " + errno);
    }
    this.errno = errno;
  }

  /** The positive errno to answer. */
  public int errno() {
    return errno;
  }
}
