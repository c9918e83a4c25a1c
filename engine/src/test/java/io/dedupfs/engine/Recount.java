package io.dedupfs.engine;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Space figures the slow, obvious way, for checking {@link Datastore#usage}: every reference in the
 * whole store is listed (who refers to each block: inodes and parent nodes), then for a set of
 * inodes the reachable blocks are summed, and the freed ones found by repeating "a block all of
 * whose referrers are in the set or freed is freed" until nothing changes; referenced bytes by a
 * walk of each tree with no memory of what it saw. Run it on a store whose queued decrements are
 * applied.
 */
final class Recount {
  private final Map<Long, Inode> inodes = new HashMap<>();

  /** Block -> its referrers: a Long (inode) or a Hash (node), once per reference. */
  private final Map<Hash, List<Object>> referrers = new HashMap<>();

  private final Map<Hash, List<Hash>> children = new HashMap<>();
  private final Map<Hash, Long> lengths = new HashMap<>();

  /** Block -> bytes it takes as stored: compressed, or its length when raw. */
  private final Map<Hash, Long> packedLengths = new HashMap<>();

  /** Block -> its level (0: a leaf). */
  private final Map<Hash, Integer> levels = new HashMap<>();

  static Recount of(Datastore ds) throws IOException {
    Recount r = new Recount();
    Lmdb db = ds.db;
    BlockStore blocks = ds.blocks;
    db.read(
        txn -> {
          try (TableCursor c = db.blocks.openCursor(txn)) {
            for (boolean ok = c.first(); ok; ok = c.next()) {
              long n = (long) c.key().remaining() - Hash.SIZE + c.val().remaining();
              r.lengths.put(Hash.read(c.key(), c.key().position()), n);
              r.packedLengths.put(Hash.read(c.key(), c.key().position()), n);
            }
          }
          // compressed blocks: the length of what they decompress to (checked against the hash
          // below), and their key tail (after hash, codec and length) and value
          List<Hash> compressed = new ArrayList<>();
          if (db.compressed.present()) {
            try (TableCursor c = db.compressed.openCursor(txn)) {
              for (boolean ok = c.first(); ok; ok = c.next()) {
                Hash h = Hash.read(c.key(), c.key().position());
                compressed.add(h);
                r.packedLengths.put(
                    h, (long) c.key().remaining() - Hash.SIZE - 5 + c.val().remaining());
              }
            }
          }
          for (Hash h : compressed) {
            r.lengths.put(h, (long) blocks.loadFromDisk(txn, h, blocks.level(txn, h)).length);
          }
          try (TableCursor c = db.inodes.openCursor(txn)) {
            for (boolean ok = c.first(); ok; ok = c.next()) {
              Inode i = Inode.decode(c.key().getLong(c.key().position()), c.val());
              r.inodes.put(i.ino(), i);
            }
          }
          Deque<Object[]> work = new ArrayDeque<>();
          for (Inode i : r.inodes.values()) {
            if (!i.root().isZero()) {
              r.referrers.computeIfAbsent(i.root(), k -> new ArrayList<>()).add(i.ino());
              work.add(new Object[] {i.root(), i.height()});
            }
          }
          while (!work.isEmpty()) {
            Object[] w = work.poll();
            Hash h = (Hash) w[0];
            int level = (Integer) w[1];
            if (r.children.containsKey(h)) {
              continue;
            }
            List<Hash> kids = new ArrayList<>();
            r.children.put(h, kids);
            r.levels.put(h, level);
            if (level > 0) {
              byte[] content = blocks.loadFromDisk(txn, h, level);
              for (int i = 0; i < Geometry.FANOUT; i++) {
                Hash k = Geometry.child(content, i);
                if (!k.isZero()) {
                  kids.add(k);
                  r.referrers.computeIfAbsent(k, x -> new ArrayList<>()).add(h);
                  work.add(new Object[] {k, level - 1});
                }
              }
            }
          }
          return null;
        });
    return r;
  }

  Inode inode(long ino) {
    return inodes.get(ino);
  }

  Collection<Inode> allInodes() {
    return inodes.values();
  }

  /** Figures of a set of inodes (regular files count; others are ignored). */
  SpaceUsage usage(Set<Long> set) {
    long files = 0;
    long logical = 0;
    long referenced = 0;
    Set<Hash> reachable = new HashSet<>();
    Deque<Hash> work = new ArrayDeque<>();
    for (long ino : set) {
      Inode i = inodes.get(ino);
      if (i.isRegular()) {
        files++;
        logical += i.size();
        if (!i.root().isZero()) {
          work.add(i.root());
          referenced += referenced(i.root());
        }
      }
    }
    while (!work.isEmpty()) {
      Hash h = work.poll();
      if (reachable.add(h)) {
        work.addAll(children.get(h));
      }
    }
    Set<Hash> freed = new HashSet<>();
    for (boolean changed = true; changed; ) {
      changed = false;
      for (Hash h : reachable) {
        if (!freed.contains(h)
            && referrers.get(h).stream()
                .allMatch(x -> x instanceof Long l ? set.contains(l) : freed.contains(x))) {
          freed.add(h);
          changed = true;
        }
      }
    }
    long stored = reachable.stream().mapToLong(lengths::get).sum();
    long exclusive = freed.stream().mapToLong(lengths::get).sum();
    long packed = reachable.stream().mapToLong(packedLengths::get).sum();
    return new SpaceUsage(
        files, logical, stored, exclusive, stored - exclusive, referenced, packed);
  }

  /**
   * The lengths of the leaves below {@code h}, each as often as a path from {@code h} leads to it:
   * no memory of what was seen.
   */
  private long referenced(Hash h) {
    if (levels.get(h) == 0) {
      return lengths.get(h);
    }
    long sum = 0;
    for (Hash k : children.get(h)) {
      sum += referenced(k);
    }
    return sum;
  }

  /** Every inode of the store. */
  SpaceUsage wholeStore() {
    return usage(inodes.keySet());
  }

  /** Every block stored, by its length: what the whole store holds. */
  long storedBytes() {
    return lengths.values().stream().mapToLong(Long::longValue).sum();
  }
}
