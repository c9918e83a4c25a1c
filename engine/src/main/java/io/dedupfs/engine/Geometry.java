package io.dedupfs.engine;

/**
 * The shape of every file tree in a store: fixed-size leaves under nodes of {@link #FANOUT}
 * children. A tree of height h covers {@code leafSize * 128^h} bytes; height 0 is a single leaf.
 *
 * <p>A node's stored content is a 16-byte bitmap (bit i set: child i is dense, i.e. has no all-zero
 * leaf anywhere below it) followed by its child hashes, with trailing {@link Hash#ZERO} children
 * left off. The bitmap lets SEEK_HOLE skip dense subtrees, so finding the next hole or the next
 * data is O(height).
 */
final class Geometry {
  static final int FANOUT_SHIFT = 7;
  static final int FANOUT = 1 << FANOUT_SHIFT;
  static final int BITMAP_BYTES = FANOUT / 8;

  /**
   * A node's content with every child present: what its hash is computed over (after its level).
   */
  static final int NODE_BYTES = BITMAP_BYTES + FANOUT * Hash.SIZE;

  /** Like ext4's 16 TiB, only larger; keeps every capacity below 2^63. */
  static final long MAX_FILE_SIZE = 1L << 50;

  static final int MIN_LEAF_SIZE = 4096;
  static final int MAX_LEAF_SIZE = 65536;

  final int leafSize;
  final int leafShift;

  Geometry(int leafSize) {
    if (Integer.bitCount(leafSize) != 1 || leafSize < MIN_LEAF_SIZE || leafSize > MAX_LEAF_SIZE) {
      throw new IllegalArgumentException(
          "leaf size must be a power of two from "
              + MIN_LEAF_SIZE
              + " to "
              + MAX_LEAF_SIZE
              + ", not "
              + leafSize);
    }
    this.leafSize = leafSize;
    this.leafShift = Integer.numberOfTrailingZeros(leafSize);
  }

  /** Bytes covered by a subtree whose root is at {@code level}. */
  long span(int level) {
    return 1L << (leafShift + FANOUT_SHIFT * level);
  }

  /** The smallest height whose tree covers {@code length} bytes. */
  int heightFor(long length) {
    int h = 0;
    while (span(h) < length) {
      h++;
    }
    return h;
  }

  /** Index, within its parent at {@code level}, of the child on the path to {@code offset}. */
  static int childIndex(long offset, long childSpan) {
    return (int) ((offset / childSpan) & (FANOUT - 1));
  }

  // ---- node content

  static Hash child(byte[] content, int i) {
    int at = BITMAP_BYTES + i * Hash.SIZE;
    return at + Hash.SIZE <= content.length ? Hash.read(content, at) : Hash.ZERO;
  }

  static boolean dense(byte[] content, int i) {
    return (content[i >>> 3] & (1 << (i & 7))) != 0;
  }

  static void setDense(byte[] padded, int i) {
    padded[i >>> 3] |= (byte) (1 << (i & 7));
  }

  /** Length of a node's stored content: the padded content without its trailing zero hashes. */
  static int storedNodeLength(byte[] padded) {
    for (int i = FANOUT - 1; i >= 0; i--) {
      if (!child(padded, i).isZero()) {
        return BITMAP_BYTES + (i + 1) * Hash.SIZE;
      }
    }
    return BITMAP_BYTES;
  }

  /** Length of a leaf's stored content: the leaf without its trailing zero bytes. */
  static int storedLeafLength(byte[] leaf) {
    int n = leaf.length;
    while (n > 0 && leaf[n - 1] == 0) {
      n--;
    }
    return n;
  }
}
