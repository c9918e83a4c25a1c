package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** How blocks lie in LMDB: values sized to whole overflow pages, the rest in the key. */
class BlockStoreTest {
  @TempDir Path dir;

  @Test
  void keyTailMovesOnlyTheBytesThatWouldCostAPage() {
    int page = 4096;
    int max = 511 - Hash.SIZE;
    assertThat(LmdbBlockStore.keyTail(100, page, max))
        .as("small values stay in the B-tree page")
        .isZero();
    assertThat(LmdbBlockStore.keyTail(4080, page, max)).as("one page exactly").isZero();
    assertThat(LmdbBlockStore.keyTail(4096, page, max)).isEqualTo(16);
    assertThat(LmdbBlockStore.keyTail(Geometry.NODE_BYTES, page, max))
        .as("a full node")
        .isEqualTo(32);
    assertThat(LmdbBlockStore.keyTail(4080 + max, page, max)).isEqualTo(max);
    assertThat(LmdbBlockStore.keyTail(4080 + max + 1, page, max))
        .as("too many for a key: two pages")
        .isZero();
    assertThat(LmdbBlockStore.keyTail(16384, page, max)).isEqualTo(16);
    assertThat(LmdbBlockStore.keyTail(8176, page, max)).isZero();
  }

  @ParameterizedTest(name = "{0} bytes take {1} overflow pages")
  @CsvSource({
    "3000, 1",
    "4080, 1",
    "4096, 1",
    "4112, 1",
    "4500, 1",
    "4600, 2",
    "8192, 2",
    "16384, 4",
    "65536, 16"
  })
  void storedValuesTakeWholePages(int length, int pages) throws IOException {
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      Lmdb db = ds.db;
      BlockStore store = ds.blocks;
      byte[] content = TestStores.randomBytes(new SplittableRandom(length), length);
      Hash h = Hash.wrap(java.util.Arrays.copyOf(content, Hash.SIZE)); // any key will do here
      db.write(
          txn -> {
            store.putNew(txn, h, 0, content, length);
            return null;
          });
      byte[] loaded = db.read(txn -> store.loadUnchecked(txn, h));
      long overflowPages = db.read(txn -> db.blocks.stat(txn).overflowPages);
      assertThat(loaded).isEqualTo(content);
      assertThat(overflowPages).isEqualTo(pages);
    }
  }
}
