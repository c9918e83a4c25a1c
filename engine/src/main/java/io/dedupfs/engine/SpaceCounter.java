package io.dedupfs.engine;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Space figures of a set of regular files, exact, inside one read transaction (FORMAT.md,
 * Statistics). Counts are those after the queued decrements ({@link PendingView}).
 *
 * <p>Stored bytes: a walk of every distinct block below the files' roots. A block of count 1 has
 * one reference in the whole store, so it is reached once and needs no memory; only blocks of
 * higher counts are remembered, to count them once.
 *
 * <p>Exclusive bytes: a block is freed by deleting the files when the references to it from their
 * roots and from freed parents equal its count. Walking down level by level: a root or child of
 * count 1 is freed at once; one of a higher count waits, adding up its references, until every
 * level above it is done, and is freed if they make up its count. The work is proportional to the
 * freed blocks and their children, never to the rest of the store.
 *
 * <p>Referenced bytes: a walk of every file's tree, adding up its non-zero leaves' stored lengths
 * once per reference; the sum below a node of count above 1 is remembered, so each distinct node is
 * read once and each leaf looked up once per distinct parent.
 */
final class SpaceCounter {
  private final ReadTxn txn;
  private final Lmdb db;
  private final BlockStore blocks;
  private final PendingView pending;

  SpaceCounter(ReadTxn txn, Lmdb db, BlockStore blocks, PendingView pending) {
    this.txn = txn;
    this.db = db;
    this.blocks = blocks;
    this.pending = pending;
  }

  /** Figures of {@code files}: distinct regular-file inodes. */
  SpaceUsage usage(Collection<Inode> files) throws IOException {
    long logical = 0;
    int top = 0;
    for (Inode f : files) {
      logical += f.size();
      top = Math.max(top, f.height());
    }
    long[] stored = stored(files);
    long exclusive = exclusive(files, top);
    long referenced = 0;
    Map<Hash, Long> memo = new HashMap<>();
    for (Inode f : files) {
      referenced += referenced(f.root(), f.height(), memo);
    }
    return new SpaceUsage(
        files.size(), logical, stored[0], exclusive, stored[0] - exclusive, referenced, stored[1]);
  }

  /** Figures of the whole store: every inode, and every block the queue does not free. */
  SpaceUsage wholeStore() throws IOException {
    long count = 0;
    long logical = 0;
    long referenced = 0;
    Map<Hash, Long> memo = new HashMap<>();
    try (TableCursor c = db.inodes.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        Inode i = Inode.decode(c.key().getLong(c.key().position()), c.val());
        if (i.isRegular()) {
          count++;
          logical += i.size();
          referenced += referenced(i.root(), i.height(), memo);
        }
      }
    }
    long stored = blocks.storedBytes(txn);
    long packed = blocks.packedBytes(txn);
    for (Hash h : pending.freed()) {
      stored -= blocks.storedLength(txn, h);
      packed -= blocks.packedLength(txn, h);
    }
    return new SpaceUsage(count, logical, stored, stored, 0, referenced, packed);
  }

  // ---- referenced

  /**
   * The stored length of every non-zero leaf below {@code h}, once per reference (see {@link
   * SpaceUsage#referencedBytes}). The sum below a node of count above 1, which other references may
   * reach, is remembered in {@code memo}: every distinct node is read once.
   */
  private long referenced(Hash h, int level, Map<Hash, Long> memo) throws IOException {
    if (h.isZero()) {
      return 0;
    }
    if (level == 0) {
      return blocks.storedLength(txn, h);
    }
    Long known = memo.get(h);
    if (known != null) {
      return known;
    }
    byte[] content = blocks.load(txn, h, level);
    long sum = 0;
    for (int i = 0; i < Geometry.FANOUT; i++) {
      sum += referenced(Geometry.child(content, i), level - 1, memo);
    }
    if (count(h) > 1) {
      memo.put(h, sum);
    }
    return sum;
  }

  // ---- stored

  /** Stored bytes before compression, and after. */
  private long[] stored(Collection<Inode> files) throws IOException {
    Set<Hash> shared = new HashSet<>();
    long[] sum = new long[2];
    for (Inode f : files) {
      walk(f.root(), f.height(), shared, sum);
    }
    return sum;
  }

  private void walk(Hash h, int level, Set<Hash> shared, long[] sum) throws IOException {
    if (h.isZero() || (count(h) > 1 && !shared.add(h))) {
      return;
    }
    sum[0] += blocks.storedLength(txn, h);
    sum[1] += blocks.packedLength(txn, h);
    if (level > 0) {
      byte[] content = blocks.load(txn, h, level);
      for (int i = 0; i < Geometry.FANOUT; i++) {
        walk(Geometry.child(content, i), level - 1, shared, sum);
      }
    }
  }

  // ---- exclusive

  private long exclusive(Collection<Inode> files, int top) throws IOException {
    List<Map<Hash, Long>> waiting = new ArrayList<>();
    for (int l = 0; l <= top; l++) {
      waiting.add(new HashMap<>());
    }
    long[] sum = new long[1];
    for (Inode f : files) {
      reference(f.root(), f.height(), waiting, sum);
    }
    for (int l = top; l >= 0; l--) {
      for (Map.Entry<Hash, Long> e : waiting.get(l).entrySet()) {
        if (e.getValue() >= count(e.getKey())) {
          free(e.getKey(), l, waiting, sum);
        }
      }
      waiting.set(l, null);
    }
    return sum[0];
  }

  /** One reference to {@code h} from the files or from a freed parent. */
  private void reference(Hash h, int level, List<Map<Hash, Long>> waiting, long[] sum)
      throws IOException {
    if (h.isZero()) {
      return;
    }
    if (count(h) <= 1) {
      free(h, level, waiting, sum);
    } else {
      waiting.get(level).merge(h, 1L, Long::sum);
    }
  }

  private void free(Hash h, int level, List<Map<Hash, Long>> waiting, long[] sum)
      throws IOException {
    sum[0] += blocks.storedLength(txn, h);
    if (level > 0) {
      byte[] content = blocks.load(txn, h, level);
      for (int i = 0; i < Geometry.FANOUT; i++) {
        reference(Geometry.child(content, i), level - 1, waiting, sum);
      }
    }
  }

  private long count(Hash h) {
    return pending.count(txn, blocks, h);
  }
}
