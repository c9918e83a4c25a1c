package io.dedupfs.engine;

/**
 * The changes of one {@code setattr}: each field is null when it is not to change. {@code
 * atimeNs}/{@code mtimeNs} of {@link #NOW} mean the current time. The change time is set to the
 * current time unless {@code ctimeNs} gives it (the kernel does, when it keeps the times itself
 * with the writeback cache).
 */
public record SetAttributes(
    Integer mode, Integer uid, Integer gid, Long size, Long atimeNs, Long mtimeNs, Long ctimeNs) {
  public static final long NOW = Long.MIN_VALUE;

  /** A change whose change time is the time it is made. */
  public SetAttributes(
      Integer mode, Integer uid, Integer gid, Long size, Long atimeNs, Long mtimeNs) {
    this(mode, uid, gid, size, atimeNs, mtimeNs, null);
  }

  public static SetAttributes size(long size) {
    return new SetAttributes(null, null, null, size, null, null);
  }

  public static SetAttributes mode(int mode) {
    return new SetAttributes(mode, null, null, null, null, null);
  }
}
