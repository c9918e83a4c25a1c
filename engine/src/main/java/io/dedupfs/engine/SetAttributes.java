package io.dedupfs.engine;

/**
 * The changes of one {@code setattr}: each field is null when it is not to change.
 * {@code atimeNs}/{@code mtimeNs} of {@link #NOW} mean the current time.
 */
public record SetAttributes(Integer mode, Integer uid, Integer gid, Long size, Long atimeNs, Long mtimeNs) {
  public static final long NOW = Long.MIN_VALUE;

  public static SetAttributes size(long size) {
    return new SetAttributes(null, null, null, size, null, null);
  }

  public static SetAttributes mode(int mode) {
    return new SetAttributes(mode, null, null, null, null, null);
  }
}
