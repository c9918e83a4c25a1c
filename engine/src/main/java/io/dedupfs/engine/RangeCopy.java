package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A copy of a byte range between two file trees that shares whatever it can by reference.
 *
 * <p>When the two offsets differ by a whole number of leaves, every leaf wholly inside the range is
 * shared, and so is every larger subtree that starts at the same place in both trees; only the
 * partial leaves at the two ends are copied as bytes. When the range runs to the end of the source
 * and past the end of the destination, the last partial leaf is shared as well (beyond both ends
 * every byte is zero), so copying a whole file into an empty one shares its root. Otherwise the
 * bytes are copied.
 */
final class RangeCopy {
  private static final int CHUNK = 1 << 20;

  private final Geometry g;
  private final Lmdb db;
  private final FileTree src;
  private final FileTree dst;
  private final long srcOffset;
  private final long dstOffset;
  private final long length;

  /**
   * The source tree must be committed (clean); the caller holds both files' locks and commits dst
   * afterwards.
   */
  RangeCopy(
      Geometry g,
      Lmdb db,
      FileTree src,
      FileTree dst,
      long srcOffset,
      long dstOffset,
      long length) {
    this.g = g;
    this.db = db;
    this.src = src;
    this.dst = dst;
    this.srcOffset = srcOffset;
    this.dstOffset = dstOffset;
    this.length = length;
  }

  private record Share(int level, long index, Hash subtree, boolean dense) {}

  void run() throws IOException {
    db.read(
        txn -> {
          long leaf = g.leafSize;
          long dstEnd = dstOffset + length;
          long delta = srcOffset - dstOffset;
          boolean open = srcOffset + length == src.length() && dstEnd >= dst.length();
          long firstLeaf = Math.floorDiv(dstOffset + leaf - 1, leaf);
          long endLeaf = open ? Math.floorDiv(dstEnd + leaf - 1, leaf) : dstEnd / leaf;
          if (Math.floorMod(delta, leaf) != 0 || firstLeaf >= endLeaf) {
            copyBytes(txn, srcOffset, dstOffset, length);
            return null;
          }
          long deltaLeaves = delta / leaf;
          List<Share> shares = new ArrayList<>();
          boolean[] dense = new boolean[1];
          for (long i = firstLeaf; i < endLeaf; ) {
            int level = 0;
            while (level < src.height() && fits(level + 1, i, endLeaf, deltaLeaves, open)) {
              level++;
            }
            int shift = Geometry.FANOUT_SHIFT * level;
            Hash h = src.subtree(txn, level, (i + deltaLeaves) >> shift, dense);
            shares.add(new Share(level, i >> shift, h, dense[0]));
            i += 1L << shift;
          }
          if (dstEnd > dst.length()) {
            dst.truncate(txn, dstEnd);
          }
          copyBytes(txn, srcOffset, dstOffset, firstLeaf * leaf - dstOffset);
          if (!open) {
            copyBytes(txn, endLeaf * leaf + delta, endLeaf * leaf, dstEnd - endLeaf * leaf);
          }
          for (Share s : shares) {
            dst.share(txn, s.level, s.index, s.subtree, s.dense);
          }
          return null;
        });
  }

  /** Can the subtree of {@code level} starting at destination leaf {@code i} be shared whole? */
  private static boolean fits(int level, long i, long endLeaf, long deltaLeaves, boolean open) {
    long span = 1L << (Geometry.FANOUT_SHIFT * level);
    return i % span == 0 && Math.floorMod(deltaLeaves, span) == 0 && (open || i + span <= endLeaf);
  }

  /**
   * Copies {@code count} bytes from {@code from} in the source to {@code to} in the destination:
   * the source's data as bytes, its holes as holes (a sparse file copied to an unaligned offset
   * neither reads nor buffers its holes' zeros).
   */
  private void copyBytes(ReadTxn txn, long from, long to, long count) throws IOException {
    long end = from + count;
    ByteBuffer buf = null;
    for (long pos = from; pos < end; ) {
      long data = src.seek(txn, pos, true);
      long dataStart = data < 0 ? end : Math.min(data, end);
      if (dataStart > pos) {
        long holeEnd = to + (dataStart - from);
        if (holeEnd > dst.length()) {
          dst.truncate(txn, holeEnd);
        }
        dst.zero(txn, to + (pos - from), holeEnd);
        pos = dataStart;
        continue;
      }
      long dataEnd = Math.min(src.seek(txn, pos, false), end);
      if (buf == null) {
        buf = ByteBuffer.allocate((int) Math.min(count, CHUNK));
      }
      while (pos < dataEnd) {
        buf.clear().limit((int) Math.min(buf.capacity(), dataEnd - pos));
        src.read(txn, pos, buf);
        buf.flip();
        int n = buf.remaining();
        if (n == 0) {
          throw new IllegalStateException("the source ended at " + pos + " inside its length");
        }
        dst.write(txn, to + (pos - from), buf);
        pos += n;
      }
    }
  }
}
