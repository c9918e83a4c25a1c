package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
          int level = c.val().get(c.val().position() + Long.BYTES);
          Long want = expected.get(h);
          if (want == null) {
            problems.add("block " + h + " is stored with count " + count + " but nothing references it");
          } else if (want != count) {
            problems.add("block " + h + " has count " + count + " but " + want + " references");
          } else if (levels.get(h) != level) {
            problems.add("block " + h + " is recorded at level " + level + " but referenced at level " + levels.get(h));
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
      checkNamespace(txn, problems);
      return problems;
    });
  }

  /**
   * Every entry names an inode of its type; a directory is named once, by the directory its
   * ".." points to; link counts match the names (plus "." and the subdirectories' ".." for a
   * directory); an inode without names is an orphan; attributes belong to inodes.
   */
  private void checkNamespace(Txn<ByteBuffer> txn, List<String> problems) {
    Map<Long, Inode> inodes = new HashMap<>();
    try (Cursor<ByteBuffer> c = db.inodes.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        long ino = c.key().getLong(c.key().position());
        inodes.put(ino, Inode.decode(ino, c.val()));
      }
    }
    Map<Long, Integer> names = new HashMap<>();
    Map<Long, Integer> subdirs = new HashMap<>();
    try (Cursor<ByteBuffer> c = db.dirents.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        ByteBuffer k = c.key();
        long dir = k.getLong(k.position());
        byte[] name = new byte[k.remaining() - 16];
        k.get(k.position() + 16, name);
        String what = "entry " + new String(name, java.nio.charset.StandardCharsets.UTF_8) + " of directory " + dir;
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
          problems.add(what + " has type " + Integer.toOctalString(type) + " but inode " + ino + " has mode "
              + Integer.toOctalString(i.mode()));
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
    Set<Long> orphans = new HashSet<>(new Namespace(db).orphans(txn));
    long nextIno = new Namespace(db).peekNextIno(txn);
    for (Inode i : inodes.values()) {
      int n = names.getOrDefault(i.ino(), 0) + (i.ino() == Namespace.ROOT ? 1 : 0);
      int expected = i.isDirectory() ? (n == 0 ? 0 : 1 + n + subdirs.getOrDefault(i.ino(), 0)) : n;
      if (i.isDirectory() && n > 1) {
        problems.add("directory " + i.ino() + " has " + n + " names");
      }
      if (i.nlink() != expected) {
        problems.add("inode " + i.ino() + " has nlink " + i.nlink() + " but " + expected + " links");
      }
      if ((n == 0) != orphans.contains(i.ino())) {
        problems.add("inode " + i.ino() + " has " + n + " names but is " + (n == 0 ? "not " : "") + "an orphan");
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
    try (Cursor<ByteBuffer> c = db.xattrs.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        long ino = c.key().getLong(c.key().position());
        if (!inodes.containsKey(ino)) {
          problems.add("an extended attribute belongs to inode " + ino + ", which does not exist");
        }
      }
    }
  }

  private void count(Txn<ByteBuffer> txn, Hash h, int level, Map<Hash, Long> expected, Map<Hash, Integer> levels,
      List<String> problems) {
    Long before = expected.merge(h, 1L, Long::sum);
    if (before != 1L) {
      return; // children counted on the first visit
    }
    levels.put(h, level);
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
    if (level == 0) {
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
