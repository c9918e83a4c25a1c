package io.dedupfs.engine;

import java.io.IOException;

/**
 * A stored block whose bytes no longer hash to its key, or that a tree names but the store lacks.
 */
public final class CorruptBlockException extends IOException {
  private static final long serialVersionUID = 1L;
  private final transient Hash hash;
  private final String reason;

  CorruptBlockException(Hash hash, String what) {
    super("corrupt block " + hash + ": " + what);
    this.hash = hash;
    this.reason = what;
  }

  /** What is wrong with the block, without its hash. */
  String reason() {
    return reason;
  }

  public Hash hash() {
    return hash;
  }
}
