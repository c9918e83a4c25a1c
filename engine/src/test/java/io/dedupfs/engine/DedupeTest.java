package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static io.dedupfs.engine.TestStores.counts;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A block whose content is stored is never stored again, whatever file or offset it comes from. */
class DedupeTest {
  private static final int MIB = 1 << 20;

  @TempDir Path dir;

  @Test
  void theSameDataWrittenAgainAddsNoBlocks() throws IOException {
    byte[] data = TestStores.randomBytes(new SplittableRandom(7), 256 * MIB);
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      long a = TestStores.create(ds, "a");
      writeAll(ds, a, data, MIB);
      ds.flush(a);
      ds.reclaim();
      TestStores.Counts first = counts(ds);
      long leaves = data.length / ds.leafSize();
      assertThat(first.blocks())
          .as("leaves and nodes of one 256 MiB file")
          .isEqualTo(leaves + leaves / Geometry.FANOUT + 1);

      writeAll(ds, a, data, 300_007); // the same bytes again, in unaligned pieces
      ds.flush(a);
      ds.reclaim();
      assertThat(counts(ds)).as("after rewriting the file in place").isEqualTo(first);

      long b = TestStores.create(ds, "b");
      writeAll(ds, b, data, 128 * 1024);
      ds.flush(b);
      ds.reclaim();
      assertThat(counts(ds)).as("after writing the same bytes into a second file").isEqualTo(first);
      assertThat(TestStores.root(ds, b)).isEqualTo(TestStores.root(ds, a));
      System.out.printf(
          "dedupe: 256 MiB written 3 times: %d blocks, %d stored bytes%n",
          first.blocks(), first.storedBytes());
      assertConsistent(ds);
    }
  }

  @Test
  void tenClonesChangedInAFewPlacesStoreOnlyTheChangedLeavesAndTheirPaths() throws IOException {
    SplittableRandom r = new SplittableRandom(11);
    int size = 32 * MIB; // with 16 KiB leaves: a root over 16 nodes over 2048 leaves
    byte[] data = TestStores.randomBytes(r, size);
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      int leaf = ds.leafSize();
      long base = TestStores.create(ds, "base");
      writeAll(ds, base, data, MIB);
      ds.flush(base);
      ds.reclaim();
      TestStores.Counts baseCounts = counts(ds);
      long[] clones = new long[10];
      byte[][] contents = new byte[10][];
      for (int k = 0; k < clones.length; k++) {
        clones[k] = TestStores.create(ds, "clone" + k);
        TestStores.Counts before = counts(ds);
        assertThat(ds.copyRange(base, 0, clones[k], 0, size)).isEqualTo(size);
        assertThat(counts(ds)).as("a whole-file clone stores nothing").isEqualTo(before);

        contents[k] = data.clone();
        Set<Long> leaves = new HashSet<>();
        Set<Long> nodes = new HashSet<>();
        for (int change = 0; change < 2 + k % 4; change++) {
          long at = r.nextLong(size / leaf) * leaf + r.nextInt(leaf - 100);
          byte[] patch = TestStores.randomBytes(r, 100);
          TestStores.write(ds, clones[k], at, patch);
          System.arraycopy(patch, 0, contents[k], (int) at, patch.length);
          leaves.add(at / leaf);
          nodes.add(at / leaf / Geometry.FANOUT);
        }
        ds.flush(clones[k]);
        ds.reclaim();
        TestStores.Counts after = counts(ds);
        assertThat(after.blocks() - before.blocks())
            .as(
                "clone %d: %d changed leaves under %d nodes, and a new root",
                k, leaves.size(), nodes.size())
            .isEqualTo(leaves.size() + nodes.size() + 1);
        assertThat(after.refs()).isEqualTo(after.blocks());
      }
      assertConsistent(ds);
      for (int k = 0; k < clones.length; k++) {
        TestStores.assertSameBytes(
            TestStores.read(ds, clones[k], 0, size), contents[k], "clone " + k);
      }
      TestStores.assertSameBytes(TestStores.read(ds, base, 0, size), data, "the cloned file");

      for (int k = 0; k < clones.length; k++) {
        ds.unlink(Datastore.ROOT, "clone" + k);
        ds.forget(clones[k]);
      }
      ds.reclaim();
      assertThat(counts(ds)).as("space comes back when the clones are gone").isEqualTo(baseCounts);
      assertConsistent(ds);
    }
  }

  private static void writeAll(Datastore ds, long ino, byte[] data, int piece) throws IOException {
    for (int off = 0; off < data.length; off += piece) {
      int n = Math.min(piece, data.length - off);
      assertThat(ds.write(ino, off, ByteBuffer.wrap(data, off, n))).isEqualTo(n);
    }
  }
}
