package io.dedupfs.engine;

import java.util.Arrays;

/**
 * The leaf-size arrays that the leaves of files' overlays hold, used again once the commit that
 * stored a leaf has ended ({@link TreeCommit#stored}).
 *
 * <p>Why: a stream of buffered writes fills leaves faster than the collector copes with new arrays.
 * A written leaf lives until its commit, a second or more, so it survives young collections, and
 * the collector copies it into the old generation, where it dies. Writing 3 GiB of unique data
 * through the mount (fio, 1 MiB writes, buffered) took 27 or 28 young pauses, 1.2-2.2 s in all,
 * each copying about 90 MiB of leaves; with arrays used again, 9 pauses, all in the first 800 MiB,
 * a quarter less CPU in the daemon and a sixth more speed (benchmarks/README.md).
 *
 * <p>At most {@code keepBytes} of free arrays are kept (the dirty limit: every array here was held
 * by a leaf within it, so keeping them costs no heap that writes could not take anyway); an array
 * given back beyond that is left to the collector. Thread-safe: the free arrays are guarded by this
 * object's monitor.
 */
final class LeafBuffers {
  private final int leafSize;

  /** The free arrays, {@code free[0, count)}. Guarded by this. */
  private final byte[][] free;

  private int count;

  /** Buffers that keep up to {@code keepBytes} of free arrays of {@code leafSize} bytes. */
  LeafBuffers(int leafSize, long keepBytes) {
    this.leafSize = leafSize;
    this.free = new byte[(int) Math.min(keepBytes / leafSize, 1 << 24)][];
  }

  /**
   * An array of the leaf size: all zeros with {@code zeroed}, else of any content (the caller
   * writes all of it before anyone reads it).
   */
  byte[] take(boolean zeroed) {
    byte[] b = null;
    synchronized (this) {
      if (count > 0) {
        b = free[--count];
        free[count] = null;
      }
    }
    if (b == null) {
      return new byte[leafSize];
    }
    if (zeroed) {
      Arrays.fill(b, (byte) 0);
    }
    return b;
  }

  /**
   * Gives back an array that nobody reads or writes any more: no overlay names its leaf, no cache
   * holds it.
   */
  void give(byte[] b) {
    if (b.length != leafSize) {
      throw new IllegalArgumentException("not a leaf-size array: " + b.length + " bytes");
    }
    synchronized (this) {
      if (count < free.length) {
        free[count++] = b;
      }
    }
  }

  /** Free arrays kept now, for tests. */
  synchronized int free() {
    return count;
  }
}
