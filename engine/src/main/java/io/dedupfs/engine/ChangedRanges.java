package io.dedupfs.engine;

import java.util.Arrays;

/**
 * The byte ranges of a file changed since its last intent-log record: half-open ranges {@code
 * [start, end)}, which {@link #add} appends as they come (every write adds one) and which are
 * merged into sorted, disjoint ranges, touching ones joined, only when they are read ({@link
 * #below}) or when the appended ones pile up. Every write of a file adds its range under the file's
 * write lock; a Guava TreeRangeSet, which kept its ranges merged at every add, held that lock long
 * enough that 4 KiB O_DIRECT random writes at queue depth 32 went at 26,000-31,000 a second instead
 * of 45,000-47,000 (benchmarks/README.md).
 *
 * <p>Not thread-safe: the owner ({@link FileContent}) guards it with its lock.
 */
final class ChangedRanges {
  /** Ranges appended at most before they are merged first. */
  private static final int FIRST_MERGE = 1024;

  private long[] starts = new long[16];
  private long[] ends = new long[16];
  private int count;

  /**
   * When {@link #count} reaches this, the ranges are merged; then set to twice what remains, so
   * that ranges that do not merge cost a merge only as often as their number doubles.
   */
  private int mergeAt = FIRST_MERGE;

  /** Adds {@code [start, end)}; {@code 0 <= start < end}. */
  void add(long start, long end) {
    if (start < 0 || start >= end) {
      throw new IllegalArgumentException("not a range: [" + start + ", " + end + ")");
    }
    if (count == starts.length) {
      starts = Arrays.copyOf(starts, count * 2);
      ends = Arrays.copyOf(ends, count * 2);
    }
    starts[count] = start;
    ends[count] = end;
    count++;
    if (count >= mergeAt) {
      merge();
      mergeAt = Math.max(FIRST_MERGE, 2 * count);
    }
  }

  /** Adds every range of {@code other}. */
  void addAll(ChangedRanges other) {
    for (int i = 0; i < other.count; i++) {
      add(other.starts[i], other.ends[i]);
    }
  }

  boolean isEmpty() {
    return count == 0;
  }

  /** A copy that changes independently of this one. */
  ChangedRanges copy() {
    ChangedRanges c = new ChangedRanges();
    c.starts = starts.clone();
    c.ends = ends.clone();
    c.count = count;
    c.mergeAt = mergeAt;
    return c;
  }

  /**
   * The parts below {@code length}, merged: sorted, disjoint and not touching, as {@code [start(i),
   * end(i))} for {@code i < count()}.
   */
  Merged below(long length) {
    merge();
    int n = 0;
    while (n < count && starts[n] < length) {
      n++;
    }
    long[] s = Arrays.copyOf(starts, n);
    long[] e = Arrays.copyOf(ends, n);
    if (n > 0) {
      e[n - 1] = Math.min(e[n - 1], length);
    }
    return new Merged(s, e);
  }

  /** Ranges from {@link #below}. */
  static final class Merged {
    private final long[] starts;
    private final long[] ends;

    private Merged(long[] starts, long[] ends) {
      this.starts = starts;
      this.ends = ends;
    }

    int count() {
      return starts.length;
    }

    long start(int i) {
      return starts[i];
    }

    long end(int i) {
      return ends[i];
    }

    /** The bytes the ranges cover. */
    long bytes() {
      long b = 0;
      for (int i = 0; i < starts.length; i++) {
        b += ends[i] - starts[i];
      }
      return b;
    }
  }

  /**
   * Merges the ranges in place. Sorted each on its own, the starts s and the ends e give the union:
   * where e[j] < s[j+1], nothing covers [e[j], s[j+1]) (the j+1 ranges that end by e[j] are the j+1
   * that begin by s[j], and the others begin at s[j+1] or later), so a merged range ends at e[j]
   * and the next begins at s[j+1]; where e[j] >= s[j+1], the union goes on.
   */
  private void merge() {
    if (count < 2) {
      return;
    }
    Arrays.sort(starts, 0, count);
    Arrays.sort(ends, 0, count);
    int out = 0;
    long from = starts[0];
    for (int j = 0; j < count - 1; j++) {
      if (ends[j] < starts[j + 1]) { // out <= j: what is written here is read no more
        starts[out] = from;
        ends[out++] = ends[j];
        from = starts[j + 1];
      }
    }
    starts[out] = from;
    ends[out++] = ends[count - 1];
    count = out;
  }
}
