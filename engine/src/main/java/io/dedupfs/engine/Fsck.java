package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Recounts every reference from the inodes down and compares the result with the store: each block
 * reachable must be stored, intact, and counted exactly as often as it is referenced; no block may
 * be stored that nothing references. Checks the namespace and the snapshots' records too. Works in
 * one read transaction on a store in use: counts are compared as they will be once the queued
 * decrements are applied ({@link PendingView}), and blocks the queue frees may still be stored.
 * What is not flushed yet is not seen.
 */
final class Fsck {
  private final Lmdb db;
  private final BlockStore blocks;

  /** Decrements that were queued when the last check ran. */
  private long queued;

  /** How many leaves are checked at once ({@link BlockStore#checkFromDisk}). */
  private static final int LEAF_BATCH = 1024;

  /** Leaves reached by the running check, not checked yet ({@link #checkLeaves}). */
  private final List<Hash> leaves = new ArrayList<>();

  Fsck(Lmdb db, BlockStore blocks) {
    this.db = db;
    this.blocks = blocks;
  }

  /** What is wrong, one line each; empty when the store is consistent. */
  List<String> check() throws IOException {
    return check(p -> {});
  }

  /** Decrements that were queued (not applied yet) in the store the last {@link #check} saw. */
  long queued() {
    return queued;
  }

  List<String> check(Consumer<Progress> progress) throws IOException {
    return db.read(
        txn -> {
          List<String> problems = new ArrayList<>();
          PendingView pending = PendingView.of(txn, blocks);
          queued = pending.queued();
          problems.addAll(pending.problems());
          Map<Hash, Long> expected = new HashMap<>();
          Map<Hash, Integer> levels = new HashMap<>();
          long totalBlocks = blocks.countedBlocks(txn);
          long[] visited = new long[1];
          progress.accept(new Progress("blocks", 0, totalBlocks));
          try (TableCursor c = db.inodes.openCursor(txn)) {
            for (boolean ok = c.first(); ok; ok = c.next()) {
              Inode i = Inode.decode(c.key().getLong(c.key().position()), c.val());
              if (!i.root().isZero()) {
                count(
                    txn,
                    i.root(),
                    i.height(),
                    expected,
                    levels,
                    problems,
                    () -> {
                      visited[0]++;
                      progress.accept(
                          new Progress("blocks", visited[0], Math.max(totalBlocks, visited[0])));
                    });
              }
            }
          }
          List<Object[]> staged = new ArrayList<>();
          Receive.forEach(
              txn,
              db,
              (id, h, level) -> {
                if (h != null) {
                  staged.add(new Object[] {h, level});
                }
              });
          for (Object[] s : staged) { // references held for a receive that has not ended
            count(txn, (Hash) s[0], (Integer) s[1], expected, levels, problems, () -> {});
          }
          checkLeaves(txn, problems);
          progress.accept(new Progress("blocks", visited[0], visited[0]));
          progress.accept(new Progress("counts", 0, totalBlocks));
          long[] actualBlocks = new long[1];
          blocks.forEachCount(
              txn,
              (h, stored, level) -> {
                actualBlocks[0]++;
                long count = pending.count(txn, blocks, h);
                Long want = expected.get(h);
                if (want == null && pending.frees(h)) {
                  return; // still stored until reclaim applies the queue
                }
                if (want == null) {
                  problems.add(
                      "block "
                          + h
                          + " is stored with count "
                          + count
                          + " but nothing references it");
                } else if (want != count) {
                  problems.add(
                      "block "
                          + h
                          + " has count "
                          + count
                          + (count == stored ? "" : " (after the queued decrements)")
                          + " but "
                          + want
                          + " references");
                } else if (levels.get(h) != level) {
                  problems.add(
                      "block "
                          + h
                          + " is recorded at level "
                          + level
                          + " but referenced at level "
                          + levels.get(h));
                }
              });
          progress.accept(new Progress("counts", totalBlocks, totalBlocks));
          long storedBlocks = blocks.storedBlocks(txn);
          if (storedBlocks != actualBlocks[0]) {
            problems.add(
                storedBlocks + " blocks stored but " + actualBlocks[0] + " reference counts");
          }
          problems.addAll(blocks.totalsProblems(txn));
          long inodes = db.inodes.stat(txn).entries;
          progress.accept(new Progress("namespace", 0, inodes));
          checkNamespace(txn, problems);
          progress.accept(new Progress("namespace", inodes, inodes));
          return problems;
        });
  }

  /**
   * Every entry names an inode of its type; a directory is named once, by the directory its ".."
   * points to; link counts match the names (plus "." and the subdirectories' ".." for a directory);
   * an inode without names is an orphan; attributes belong to inodes.
   */
  private void checkNamespace(ReadTxn txn, List<String> problems) throws IOException {
    Map<Long, Inode> inodes = new HashMap<>();
    try (TableCursor c = db.inodes.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        long ino = c.key().getLong(c.key().position());
        inodes.put(ino, Inode.decode(ino, c.val()));
      }
    }
    Namespace ns = new Namespace(db);
    long[] snapsEntry = ns.entry(txn, Namespace.ROOT, Snapshots.DIR);
    long snaps = snapsEntry == null ? 0 : snapsEntry[0];
    Map<Long, Integer> names = new HashMap<>();
    Map<Long, Integer> subdirs = new HashMap<>();
    try (TableCursor c = db.dirents.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        ByteBuffer k = c.key();
        long dir = k.getLong(k.position());
        byte[] name = new byte[k.remaining() - 16];
        k.get(k.position() + 16, name);
        String what =
            "entry "
                + new String(name, java.nio.charset.StandardCharsets.UTF_8)
                + " of directory "
                + dir;
        long ino = c.val().getLong(c.val().position());
        int type = c.val().getInt(c.val().position() + 8);
        Inode d = inodes.get(dir);
        Inode i = inodes.get(ino);
        if (k.getLong(k.position() + 8) != Namespace.cookie(name)) {
          problems.add(what + " is filed under the wrong hash");
        }
        if (d == null || !d.isDirectory() || d.nlink() == 0) {
          problems.add(what + ": no such live directory");
        }
        if (i == null) {
          problems.add(what + " names inode " + ino + ", which does not exist");
          continue;
        }
        if ((i.mode() & Inode.S_IFMT) != type) {
          problems.add(
              what
                  + " has type "
                  + Integer.toOctalString(type)
                  + " but inode "
                  + ino
                  + " has mode "
                  + Integer.toOctalString(i.mode()));
        }
        if (d != null) {
          // inside a snapshot: its id; a snapshot's own directory and .snapshots: their own number;
          // else 0
          long want =
              d.ino() == snaps || (dir == Namespace.ROOT && ino == snaps) ? ino : d.snapshot();
          if (i.snapshot() != want) {
            problems.add(
                what + ": inode " + ino + " belongs to snapshot " + i.snapshot() + ", not " + want);
          }
        }
        names.merge(ino, 1, Integer::sum);
        if (i.isDirectory()) {
          subdirs.merge(dir, 1, Integer::sum);
          if (i.parent() != dir) {
            problems.add("directory " + ino + " is in " + dir + " but its parent is " + i.parent());
          }
        }
      }
    }
    checkSnapshots(txn, ns, snaps, problems);
    Set<Long> orphans = new HashSet<>(ns.orphans(txn));
    long nextIno = ns.peekNextIno(txn);
    for (Inode i : inodes.values()) {
      int n = names.getOrDefault(i.ino(), 0) + (i.ino() == Namespace.ROOT ? 1 : 0);
      int expected = i.isDirectory() ? (n == 0 ? 0 : 1 + n + subdirs.getOrDefault(i.ino(), 0)) : n;
      if (i.isDirectory() && n > 1) {
        problems.add("directory " + i.ino() + " has " + n + " names");
      }
      if (i.nlink() != expected) {
        problems.add(
            "inode " + i.ino() + " has nlink " + i.nlink() + " but " + expected + " links");
      }
      if ((n == 0) != orphans.contains(i.ino())) {
        problems.add(
            "inode "
                + i.ino()
                + " has "
                + n
                + " names but is "
                + (n == 0 ? "not " : "")
                + "an orphan");
      }
      if (i.ino() >= nextIno) {
        problems.add("inode " + i.ino() + " is at or beyond the next inode number " + nextIno);
      }
    }
    for (long o : orphans) {
      if (!inodes.containsKey(o)) {
        problems.add("orphan " + o + " is not an inode");
      }
    }
    try (TableCursor c = db.xattrs.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        long ino = c.key().getLong(c.key().position());
        if (!inodes.containsKey(ino)) {
          problems.add("an extended attribute belongs to inode " + ino + ", which does not exist");
        }
      }
    }
  }

  /**
   * Each snapshot record has its directory in {@code .snapshots} under its name, and each directory
   * there a record.
   */
  private void checkSnapshots(ReadTxn txn, Namespace ns, long snaps, List<String> problems)
      throws IOException {
    Set<Long> recorded = new HashSet<>();
    for (SnapshotInfo info : new Snapshots(db, ns, blocks).list(txn)) {
      recorded.add(info.ino());
      long[] e = snaps == 0 ? null : ns.entry(txn, snaps, info.name());
      if (e == null || e[0] != info.ino()) {
        problems.add(
            "snapshot "
                + info.name()
                + " ("
                + info.ino()
                + ") has no directory "
                + Snapshots.DIR
                + "/"
                + info.name());
      }
    }
    if (snaps != 0) {
      for (DirEntry e : ns.listAll(txn, snaps)) {
        if (!recorded.contains(e.ino())) {
          problems.add(Snapshots.DIR + "/" + e.name() + " is not a recorded snapshot");
        }
      }
    }
  }

  private void count(
      ReadTxn txn,
      Hash h,
      int level,
      Map<Hash, Long> expected,
      Map<Hash, Integer> levels,
      List<String> problems,
      Runnable visited)
      throws IOException {
    Long before = expected.merge(h, 1L, Long::sum);
    if (before != 1L) {
      return; // children counted on the first visit
    }
    visited.run();
    levels.put(h, level);
    if (level == 0) { // checked in batches, read at once where the store can
      leaves.add(h);
      if (leaves.size() == LEAF_BATCH) {
        checkLeaves(txn, problems);
      }
      return;
    }
    byte[] content;
    try {
      content = blocks.loadFromDisk(txn, h, level);
    } catch (CorruptBlockException e) {
      problems.add(e.getMessage() + " (level " + level + ")");
      return;
    }
    if (!blocks.exists(txn, h)) {
      problems.add("block " + h + " is stored without a reference count");
    }
    for (int i = 0; i < Geometry.FANOUT; i++) {
      Hash child = Geometry.child(content, i);
      if (!child.isZero()) {
        count(txn, child, level - 1, expected, levels, problems, visited);
      }
    }
  }

  /** Checks the leaves reached so far, as {@link #count} checks a node. */
  private void checkLeaves(ReadTxn txn, List<String> problems) throws IOException {
    List<String> found = blocks.checkFromDisk(txn, leaves, 0);
    for (int i = 0; i < leaves.size(); i++) {
      if (found.get(i) != null) {
        problems.add(found.get(i) + " (level 0)");
      } else if (!blocks.exists(txn, leaves.get(i))) {
        problems.add("block " + leaves.get(i) + " is stored without a reference count");
      }
    }
    leaves.clear();
  }
}
