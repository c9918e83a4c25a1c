package io.dedupfs.rados;

import java.io.IOException;

/** A RADOS call that failed: what was done, on which object, and librados' errno. */
public class RadosException extends IOException {
  private static final long serialVersionUID = 1L;
  private final int errno;

  RadosException(String what, int errno) {
    super(what + ": " + name(errno));
    this.errno = errno;
  }

  /** A failure librados did not report, such as an answer that makes no sense. */
  RadosException(String message) {
    super(message);
    this.errno = 0;
  }

  RadosException(String what, Throwable cause) {
    super(what + ": " + cause.getMessage(), cause);
    this.errno = 0;
  }

  /** librados' error number (positive), 0 when the failure was not librados'. */
  int errno() {
    return errno;
  }

  /** The failure of {@code what}: a {@link RadosTimeoutException} for ETIMEDOUT. */
  static IOException of(String what, int negativeErrno) {
    int errno = -negativeErrno;
    return errno == RadosTimeoutException.ETIMEDOUT
        ? new RadosTimeoutException(what + ": " + name(errno))
        : new RadosException(what, errno);
  }

  private static String name(int errno) {
    String name =
        switch (errno) {
          case 1 -> "EPERM, operation not permitted";
          case 2 -> "ENOENT, no such object or pool";
          case 5 -> "EIO, input/output error";
          case 13 -> "EACCES, permission denied";
          case 17 -> "EEXIST, object exists";
          case 22 -> "EINVAL, invalid argument";
          case 28 -> "ENOSPC, no space left";
          case 95 -> "EOPNOTSUPP, not supported (object class not loaded?)";
          case 107 -> "ENOTCONN, not connected";
          case RadosTimeoutException.ETIMEDOUT -> "ETIMEDOUT, timed out";
          case 122 -> "EDQUOT, pool quota exceeded";
          case 125 -> "ECANCELED, comparison failed";
          default -> "error";
        };
    return name + " (errno " + errno + ")";
  }
}
