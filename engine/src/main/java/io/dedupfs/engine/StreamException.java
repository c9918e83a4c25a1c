package io.dedupfs.engine;

import java.io.IOException;

/**
 * A send stream that cannot be received: damaged, truncated, of another version, or not for this
 * store. The receiving store has no part of it visible; {@link #token} (null when nothing was kept)
 * names the blocks it kept for a resumed send ({@code send --resume TOKEN}).
 */
public final class StreamException extends IOException {
  private static final long serialVersionUID = 1L;
  private final String token;

  public StreamException(String message) {
    this(message, null);
  }

  StreamException(String message, String token) {
    super(message);
    this.token = token;
  }

  /** The resume token of what the store kept, or null. */
  public String token() {
    return token;
  }
}
