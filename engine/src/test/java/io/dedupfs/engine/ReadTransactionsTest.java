package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each thread keeps its read transaction between reads (reset, holding one of LMDB's 1,024 reader
 * slots): the slots of threads that end come back, a read nested in another works, and compact,
 * which reopens the environment, closes the kept ones first.
 */
class ReadTransactionsTest {
  @TempDir Path dir;

  @Test
  void threadsThatReadAndEndGiveTheirReaderSlotsBack() throws Exception {
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      // more threads than reader slots, one after another, as a pool's idle threads end and new
      // ones start: without the slots back, the 1,025th read fails with MDB_READERS_FULL
      for (int i = 0; i < 1_500; i++) {
        AtomicReference<Throwable> failed = new AtomicReference<>();
        Thread t =
            new Thread(
                () -> {
                  try {
                    String magic = ds.db.read(txn -> ds.db.metaString(txn, "magic"));
                    assertThat(magic).isEqualTo(Lmdb.MAGIC);
                  } catch (Throwable e) {
                    failed.set(e);
                  }
                });
        t.start();
        t.join();
        assertThat(failed.get()).as("thread %d", i).isNull();
      }
    }
  }

  @Test
  void nestedReadsAndReadsAcrossACompactSeeTheStore() throws IOException {
    byte[] data = TestStores.randomBytes(new SplittableRandom(3), 1 << 20);
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      long ino = ds.mknod(ROOT, "f", 0644, 0, 0, 0).ino();
      TestStores.write(ds, ino, 0, data);
      ds.flush(ino);
      String nested =
          ds.db.read(
              outer ->
                  ds.db.metaString(outer, "magic")
                      + ds.db.read(inner -> ds.db.metaString(inner, "magic")));
      assertThat(nested).isEqualTo(Lmdb.MAGIC + Lmdb.MAGIC);
      TestStores.assertSameBytes(TestStores.read(ds, ino, 0, data.length), data, "before");
      ds.compact(p -> {}); // this thread's kept transaction is closed before the swap
      TestStores.assertSameBytes(TestStores.read(ds, ino, 0, data.length), data, "after compact");
      String magic = ds.db.read(txn -> ds.db.metaString(txn, "magic"));
      assertThat(magic).isEqualTo(Lmdb.MAGIC);
    }
  }
}
