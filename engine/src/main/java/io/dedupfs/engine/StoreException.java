package io.dedupfs.engine;

import java.io.IOException;

/** A store that cannot be opened as asked: not a store, another format version, or in use. */
public final class StoreException extends IOException {
  private static final long serialVersionUID = 1L;

  public StoreException(String message) {
    super(message);
  }
}
