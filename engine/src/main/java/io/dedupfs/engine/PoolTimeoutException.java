package io.dedupfs.engine;

import java.io.IOException;

/**
 * A {@link BlockPool} that did not answer within its timeout (an OSD down or unreachable): the call
 * did not complete, and whether a change it asked for took effect is unknown. Not a damaged block:
 * a read that meets it fails (EIO to a reader) and may succeed later; scrub and fsck stop with it
 * instead of reporting damage; a commit that meets it keeps its data buffered and is retried.
 */
public class PoolTimeoutException extends IOException {
  private static final long serialVersionUID = 1L;

  /** {@code message} says which pool did not answer, in how long, and what was asked. */
  public PoolTimeoutException(String message) {
    super(message);
  }
}
