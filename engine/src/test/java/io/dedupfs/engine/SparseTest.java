package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Holes cost nothing: a sparse 1 TiB image costs what its data costs, and clones of it are free.
 */
class SparseTest {
  private static final long TIB = 1L << 40;

  @TempDir Path dir;

  @Test
  void aSparseTebibyteCostsWhatItsDataCosts() throws IOException {
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      long f = TestStores.create(ds, "image");
      ds.setattr(f, SetAttributes.size(TIB));
      long[] at = {0, 5L << 30, TIB - 100};
      for (int i = 0; i < at.length; i++) {
        TestStores.write(ds, f, at[i], new byte[] {(byte) i, 7, 7});
      }
      ds.flush(f);
      // 16 KiB leaves: a tree of height 4 over 1 TiB; three leaves and their three paths to the
      // root, the first two meeting at level 3 (with equal bytes at 0 and 5 GiB, their leaves and
      // the nodes above them up to level 2 would be equal, and stored once)
      assertThat(TestStores.counts(ds).blocks()).isEqualTo(3 + 3 + 3 + 2 + 1);
      assertThat(ds.stats().storeBytes()).isLessThan(1 << 20);
      assertThat(TestStores.seekData(ds, f, 1)).isEqualTo(1);
      assertThat(TestStores.seekData(ds, f, DatastoreConfig.DEFAULT_LEAF_SIZE)).isEqualTo(5L << 30);
      assertThat(TestStores.seekHole(ds, f, 5L << 30))
          .isEqualTo((5L << 30) + DatastoreConfig.DEFAULT_LEAF_SIZE);
      assertThat(TestStores.seekData(ds, f, (5L << 30) + 3)).isEqualTo((5L << 30) + 3);
      assertThat(TestStores.seekData(ds, f, (5L << 30) + DatastoreConfig.DEFAULT_LEAF_SIZE))
          .isEqualTo(TIB - DatastoreConfig.DEFAULT_LEAF_SIZE);
      assertThat(TestStores.seekHole(ds, f, TIB - 10)).isEqualTo(TIB);

      long copy = TestStores.create(ds, "copy");
      assertThat(ds.copyRange(f, 0, copy, 0, TIB)).isEqualTo(TIB);
      assertThat(TestStores.counts(ds).blocks())
          .as("a clone of 1 TiB stores nothing")
          .isEqualTo(12);
      assertThat(TestStores.read(ds, copy, TIB - 100, 200)).hasSize(100).startsWith(2, 7, 7);

      ds.punchHole(f, 0, TIB);
      ds.flush(f);
      ds.reclaim();
      assertThat(TestStores.counts(ds).blocks())
          .as("the punched image holds nothing; its copy keeps the old tree")
          .isEqualTo(12);
      assertThat(ds.getattr(f).size()).isEqualTo(TIB);
      assertThat(TestStores.seekData(ds, f, 0)).isEqualTo(-1);
      ds.setattr(copy, SetAttributes.size(0));
      ds.reclaim();
      assertThat(TestStores.counts(ds).blocks()).isZero();
      assertConsistent(ds);
    }
  }

  /**
   * A range copied to an offset that is no whole number of leaves away cannot share leaves: its
   * data is copied as bytes, and its holes stay holes. A sparse 1 TiB image copied so ends at once;
   * read and buffered as leaves of zeros (as before 2026-12-06), its holes took hours and more
   * memory than the machine has (a 4 GiB one took 19 s).
   */
  @Test
  @Timeout(120)
  void aCopyToAnUnalignedOffsetKeepsTheHoles() throws IOException {
    int leaf = DatastoreConfig.DEFAULT_LEAF_SIZE;
    try (Datastore ds = Datastore.open(dir, TestStores.config(leaf))) {
      long f = TestStores.create(ds, "image");
      long far = 200L << 30;
      ds.setattr(f, SetAttributes.size(TIB));
      TestStores.write(ds, f, 0, new byte[] {1, 2, 3});
      TestStores.write(ds, f, far, new byte[] {4, 5, 6});
      ds.flush(f);
      long copy = TestStores.create(ds, "copy");
      TestStores.write(ds, copy, 5000, new byte[] {9}); // inside the copy's first hole: zeroed
      assertThat(ds.copyRange(f, 0, copy, 1000, Long.MAX_VALUE)).isEqualTo(TIB);
      assertThat(ds.getattr(copy).size()).isEqualTo(1000 + TIB);
      assertThat(TestStores.read(ds, copy, 999, 5)).containsExactly(0, 1, 2, 3, 0);
      assertThat(TestStores.read(ds, copy, 5000, 1)).containsExactly(0);
      assertThat(TestStores.read(ds, copy, far + 1000, 3)).containsExactly(4, 5, 6);
      assertThat(TestStores.seekHole(ds, copy, 0)).isEqualTo(leaf);
      assertThat(TestStores.seekData(ds, copy, leaf)).isEqualTo((far + 1000) / leaf * leaf);
      assertConsistent(ds);
    }
  }
}
