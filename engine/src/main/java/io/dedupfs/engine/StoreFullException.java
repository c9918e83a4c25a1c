package io.dedupfs.engine;

import java.io.IOException;

/**
 * The disk under the store, or the store's map, has no room for a change. The change was not
 * applied; everything committed before it is intact, and writes succeed again once there is room.
 */
public final class StoreFullException extends IOException {
  private static final long serialVersionUID = 1L;

  public StoreFullException(String message, Throwable cause) {
    super(message, cause);
  }
}
