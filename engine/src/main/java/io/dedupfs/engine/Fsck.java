package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.lmdbjava.Cursor;
import org.lmdbjava.Txn;

/**
 * Recounts every reference from the inodes down and compares the result with the store: each
 * block reachable must be stored, intact, and counted exactly as often as it is referenced; no
 * block may be stored that nothing references. Run it on a store whose queued decrements have
 * been applied ({@link Datastore#reclaim}) and whose files are flushed.
 */
final class Fsck {
  private final Lmdb db;
  private final BlockStore blocks;

  Fsck(Datastore store) {
    this.db = store.lmdb();
    this.blocks = store.blockStore();
  }

  /** What is wrong, one line each; empty when the store is consistent. */
  List<String> check() throws IOException {
    return db.read(txn -> {
      List<String> problems = new ArrayList<>();
      Map<Hash, Long> expected = new HashMap<>();
      Map<Hash, Integer> levels = new HashMap<>();
      try (Cursor<ByteBuffer> c = db.inodes.openCursor(txn)) {
        for (boolean ok = c.first(); ok; ok = c.next()) {
          Inode i = Inode.decode(c.key().getLong(c.key().position()), c.val());
          if (!i.root().isZero()) {
            count(txn, i.root(), i.height(), expected, levels, problems);
          }
        }
      }
      long actualBlocks = 0;
      try (Cursor<ByteBuffer> c = db.refs.openCursor(txn)) {
        for (boolean ok = c.first(); ok; ok = c.next()) {
          actualBlocks++;
          Hash h = Hash.read(c.key(), c.key().position());
          long count = c.val().getLong(c.val().position());
          Long want = expected.get(h);
          if (want == null) {
            problems.add("block " + h + " is stored with count " + count + " but nothing references it");
          } else if (want != count) {
            problems.add("block " + h + " has count " + count + " but " + want + " references");
          }
        }
      }
      long storedBlocks = db.blocks.stat(txn).entries;
      if (storedBlocks != actualBlocks) {
        problems.add(storedBlocks + " blocks stored but " + actualBlocks + " reference counts");
      }
      if (blocks.hasPending(txn)) {
        problems.add("decrements are still queued (run reclaim first)");
      }
      return problems;
    });
  }

  private void count(Txn<ByteBuffer> txn, Hash h, int level, Map<Hash, Long> expected, Map<Hash, Integer> levels,
      List<String> problems) {
    Long before = expected.merge(h, 1L, Long::sum);
    if (before != 1L) {
      return; // children counted on the first visit
    }
    levels.put(h, level);
    if (level == 0) {
      if (!blocks.exists(txn, h)) {
        problems.add("leaf " + h + " is referenced but not stored");
      }
      return;
    }
    byte[] content;
    try {
      content = blocks.load(txn, h, level);
    } catch (CorruptBlockException e) {
      problems.add(e.getMessage());
      return;
    }
    for (int i = 0; i < Geometry.FANOUT; i++) {
      Hash child = Geometry.child(content, i);
      if (!child.isZero()) {
        count(txn, child, level - 1, expected, levels, problems);
      }
    }
  }
}
