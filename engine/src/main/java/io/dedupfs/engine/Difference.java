package io.dedupfs.engine;

import java.util.List;

/**
 * One path that differs between two versions of a tree (a snapshot and a later one, or the live
 * tree): {@code path} relative to the tree's top, starting with "/"; for a regular file whose
 * contents changed, the byte ranges that differ (exact, merged; bytes past the shorter size count
 * as changed).
 */
public record Difference(String path, Change change, List<ByteRange> ranges) {
  public enum Change {
    ADDED,
    REMOVED,
    /** Contents (a file's bytes, a symlink's target) or type. */
    MODIFIED,
    /** Mode, owner, times or extended attributes only. */
    ATTRIBUTES
  }

  public record ByteRange(long offset, long length) {}

  public Difference {
    ranges = List.copyOf(ranges);
  }

  /** Bytes in {@link #ranges}. */
  public long changedBytes() {
    return ranges.stream().mapToLong(ByteRange::length).sum();
  }
}
