package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.engine.Slot.Leaf;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Leaves hashed ahead of their commit: a commit takes a leaf's early hash only while the leaf is as
 * it was hashed, so the root it stores is the one it would store without early hashing.
 */
class EarlyHasherTest {
  private static final int LEAF = 4096;
  private static final Geometry G = new Geometry(LEAF);

  @TempDir Path dir;

  @Test
  void aCommitTakesTheEarlyHashOfAnUnchangedLeaf() {
    Leaf l = new Leaf(Hash.ZERO, new byte[LEAF]);
    l.changing();
    l.data[7] = 1;
    Hash early = Hasher.leaf(new byte[] {42}, 1, LEAF); // not l's hash: shows which one is taken
    l.hashedEarly(l.version(), early, 8);

    l.hash(LEAF);

    assertThat(l.hash).isEqualTo(early);
    assertThat(l.storedLength).isEqualTo(8);
  }

  @Test
  void anEarlyHashOfContentThatChangedSinceIsRefused() {
    Leaf l = new Leaf(Hash.ZERO, new byte[LEAF]);
    int hashedAt = l.version();
    Hash ofZeros = Hash.ZERO;
    l.changing(); // a write that began while the early hash was being worked out
    l.data[7] = 1;
    l.hashedEarly(hashedAt, ofZeros, 0);

    l.hash(LEAF);

    assertThat(l.hash).isEqualTo(Hasher.leaf(l.data, 8, LEAF));
    assertThat(l.storedLength).isEqualTo(8);
  }

  /**
   * Whole leaves are written and offered, then changed by a small write and by a zeroed range
   * before the hasher runs: the commit's root is the one a tree without early hashing gets.
   */
  @Test
  void leavesChangedAfterTheyWereOfferedAreHashedAsTheyAreNow() throws IOException {
    List<Runnable> queued = new ArrayList<>();
    EarlyHasher early = new EarlyHasher(LEAF, queued::add);
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      FileTree t = emptyTree(ds, early);
      FileTree plain = new FileTree(G, ds.blocks, Hash.ZERO, 0, 0);
      byte[] four = TestStores.randomBytes(new SplittableRandom(1), 4 * LEAF);
      ds.db.read(
          txn -> {
            for (FileTree each : List.of(t, plain)) {
              each.write(txn, 0, ByteBuffer.wrap(four));
              each.write(txn, LEAF + 5, ByteBuffer.wrap(new byte[] {1, 2, 3}));
              each.zero(txn, 2 * LEAF + 100, 2 * LEAF + 200);
            }
            assertThat(queued).hasSize(4);
            queued.forEach(Runnable::run);
            assertThat(early.hashed()).isEqualTo(2); // leaves 0 and 3; 1 and 2 had changed
            assertThat(rootOf(txn, t)).isEqualTo(rootOf(txn, plain));
            return null;
          });
    }
  }

  /**
   * Writers of whole leaves and of small pieces of them, against the real hasher's threads: every
   * commit's root is the one a tree without early hashing gets.
   */
  @Test
  void rootsMatchWhileTheHasherRacesTheWrites() throws IOException {
    EarlyHasher early = new EarlyHasher(LEAF);
    SplittableRandom r = new SplittableRandom(7);
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      for (int round = 0; round < 200; round++) {
        FileTree t = emptyTree(ds, early);
        FileTree plain = new FileTree(G, ds.blocks, Hash.ZERO, 0, 0);
        List<long[]> writes = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
          boolean whole = r.nextBoolean();
          long at = r.nextInt(8) * (long) LEAF + (whole ? 0 : r.nextInt(LEAF - 16));
          writes.add(new long[] {at, whole ? LEAF : 1 + r.nextInt(16), r.nextLong()});
        }
        ds.db.read(
            txn -> {
              for (long[] w : writes) {
                byte[] data = TestStores.randomBytes(new SplittableRandom(w[2]), (int) w[1]);
                t.write(txn, w[0], ByteBuffer.wrap(data));
                plain.write(txn, w[0], ByteBuffer.wrap(data));
              }
              assertThat(rootOf(txn, t)).isEqualTo(rootOf(txn, plain));
              return null;
            });
      }
      assertThat(early.hashed()).isPositive();
    } finally {
      early.close();
    }
  }

  private static Hash rootOf(ReadTxn txn, FileTree t) throws IOException {
    TreeCommit c = t.freeze(txn);
    c.hash();
    return c.root();
  }

  /** An empty file's tree whose whole leaves {@code early} hashes. */
  private static FileTree emptyTree(Datastore ds, EarlyHasher early) {
    return new FileTree(
        G, ds.blocks, Hash.ZERO, 0, 0, new AtomicLong(), early, new LeafBuffers(G.leafSize, 0));
  }
}
