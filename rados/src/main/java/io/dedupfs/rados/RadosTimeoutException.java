package io.dedupfs.rados;

import io.dedupfs.engine.PoolTimeoutException;

/**
 * A RADOS call that got no answer within the pool's operation timeout (an OSD or the monitor down
 * or unreachable). Whether a write that timed out took effect is unknown.
 */
public final class RadosTimeoutException extends PoolTimeoutException {
  private static final long serialVersionUID = 1L;
  static final int ETIMEDOUT = 110;

  RadosTimeoutException(String message) {
    super(message);
  }
}
