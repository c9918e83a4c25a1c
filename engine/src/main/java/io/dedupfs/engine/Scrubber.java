package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;

/**
 * A scrub: reads every block reachable from any inode's root (snapshots and orphans included)
 * straight from LMDB, bypassing the cache, and checks it against its hash; then, only if some block
 * is damaged, finds every file range that uses a damaged block.
 *
 * <p>Transactions are short (up to {@link #BLOCKS_PER_TXN} blocks each), so a scrub of a large
 * store pins no old pages for long and runs beside writers. A file that changes meanwhile is
 * scrubbed as it was when the scrub listed it; if its old blocks are freed under the walk, the rest
 * of that file is skipped (its new blocks were hashed when written).
 *
 * <p>A block shared by several files (count above 1) is read once, with its subtree; up to {@link
 * #REMEMBERED} of them are remembered, beyond which shared blocks are simply read again.
 */
final class Scrubber {
  private static final int BLOCKS_PER_TXN = 1024;
  private static final int REMEMBERED = 1 << 22;
  private static final String MISSING = "missing from the store";
  private static final String MISMATCH = "its bytes do not match its hash";

  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;
  private final Geometry g;
  private final Consumer<Progress> progress;

  private final Set<Hash> verified = new HashSet<>();
  private final Map<Hash, String> bad = new HashMap<>();
  private long blocksChecked;
  private long bytesChecked;
  private long total;

  Scrubber(Lmdb db, Namespace ns, BlockStore blocks, Geometry g, Consumer<Progress> progress) {
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
    this.g = g;
    this.progress = progress;
  }

  /** A block still to visit, at {@code offset} in its file. */
  private record Visit(Hash hash, int level, long offset) {}

  private record Found(long ino, long offset, long length, String reason) {}

  ScrubReport run() throws IOException {
    List<Inode> files =
        db.read(
            txn -> {
              total = blocks.countedBlocks(txn);
              List<Inode> out = new ArrayList<>();
              try (TableCursor c = db.inodes.openCursor(txn)) {
                for (boolean ok = c.first(); ok; ok = c.next()) {
                  Inode i = Inode.decode(c.key().getLong(c.key().position()), c.val());
                  if (!i.root().isZero()) {
                    out.add(i);
                  }
                }
              }
              return out;
            });
    progress.accept(new Progress("scrub", 0, total));
    for (Inode f : files) {
      walk(f, this::check);
    }
    progress.accept(
        new Progress("scrub", blocksChecked, blocksChecked)); // done: what it read is the total
    List<Found> found = new ArrayList<>();
    if (!bad.isEmpty()) {
      for (int n = 0; n < files.size(); n++) {
        Inode f = files.get(n);
        progress.accept(new Progress("locate", n, files.size()));
        walk(f, (txn, file, v, stack) -> locate(txn, file, v, stack, found));
      }
      progress.accept(new Progress("locate", files.size(), files.size()));
    }
    Set<Long> inos = new TreeSet<>();
    found.forEach(d -> inos.add(d.ino()));
    Map<Long, String> paths = db.read(txn -> ns.paths(txn, inos));
    List<Damage> damaged = new ArrayList<>();
    for (Found d : found) {
      String path = paths.getOrDefault(d.ino(), "(unlinked inode " + d.ino() + ")");
      damaged.add(new Damage(path, d.ino(), d.offset(), d.length(), d.reason()));
    }
    return new ScrubReport(blocksChecked, bytesChecked, damaged);
  }

  /**
   * What to do with one block of file {@code f}; false: the file changed under the walk, stop
   * walking it.
   */
  @FunctionalInterface
  private interface Step {
    boolean visit(ReadTxn txn, Inode f, Visit v, Deque<Visit> stack) throws IOException;
  }

  /**
   * Walks a file's tree depth first, in offset order, a bounded number of blocks per read
   * transaction.
   */
  private void walk(Inode f, Step step) throws IOException {
    Deque<Visit> stack = new ArrayDeque<>();
    stack.push(new Visit(f.root(), f.height(), 0));
    while (!stack.isEmpty()) {
      db.read(
          txn -> {
            for (int n = 0; n < BLOCKS_PER_TXN && !stack.isEmpty(); n++) {
              if (!step.visit(txn, f, stack.pop(), stack)) {
                stack.clear();
              }
            }
            return null;
          });
    }
  }

  /** Phase 1: read and rehash the block, once. */
  private boolean check(ReadTxn txn, Inode f, Visit v, Deque<Visit> stack) throws IOException {
    if (bad.containsKey(v.hash())) {
      return true;
    }
    boolean shared = blocks.refcount(txn, v.hash()) > 1;
    if (shared && verified.contains(v.hash())) {
      return true;
    }
    byte[] content;
    try {
      content = blocks.loadUnchecked(txn, v.hash());
    } catch (CorruptBlockException e) { // a compressed block that does not decompress
      bad.put(v.hash(), e.reason());
      return true;
    }
    if (content == null) {
      if (!unchanged(txn, f)) {
        return false; // freed: the file changed since it was listed
      }
      bad.put(v.hash(), MISSING);
      return true;
    }
    blocksChecked++;
    bytesChecked += content.length;
    progress.accept(new Progress("scrub", blocksChecked, Math.max(total, blocksChecked)));
    if (!blocks.hashOf(content, v.level()).equals(v.hash())) {
      bad.put(v.hash(), MISMATCH);
      return true;
    }
    if (shared && verified.size() < REMEMBERED) {
      verified.add(v.hash());
    }
    pushChildren(v, content, stack);
    return true;
  }

  /** Phase 2: note where a damaged block is used; descend through intact nodes. */
  private boolean locate(ReadTxn txn, Inode f, Visit v, Deque<Visit> stack, List<Found> found)
      throws IOException {
    String reason = bad.get(v.hash());
    if (reason == null && v.level() > 0) {
      try {
        pushChildren(v, blocks.load(txn, v.hash(), v.level()), stack);
      } catch (CorruptBlockException e) {
        if (!unchanged(txn, f)) {
          return false;
        }
        reason = e.getMessage(); // damaged since phase 1 read it
      }
    }
    if (reason != null) {
      long length = Math.max(0, Math.min(g.span(v.level()), f.size() - v.offset()));
      found.add(new Found(f.ino(), v.offset(), length, reason));
    }
    return true;
  }

  private void pushChildren(Visit v, byte[] content, Deque<Visit> stack) {
    if (v.level() == 0) {
      return;
    }
    long span = g.span(v.level() - 1);
    for (int i = Geometry.FANOUT - 1; i >= 0; i--) {
      Hash child = Geometry.child(content, i);
      if (!child.isZero()) {
        stack.push(new Visit(child, v.level() - 1, v.offset() + i * span));
      }
    }
  }

  /** Whether file {@code f} still has the root it was listed with. */
  private boolean unchanged(ReadTxn txn, Inode f) {
    try {
      return ns.inode(txn, f.ino()).root().equals(f.root());
    } catch (NoSuchFileException e) {
      return false;
    }
  }
}
