package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writes are buffered, bounded in memory, and committed on flush, on close, on a timer and at the
 * bound.
 */
class WriteBackTest {
  @TempDir Path dir;

  @Test
  void aStreamOfSmallWritesIsCommittedOnceAtTheFlush() throws IOException {
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      long f = TestStores.create(ds, "f");
      SplittableRandom r = new SplittableRandom(1);
      byte[] data = TestStores.randomBytes(r, 300 * 4096);
      for (int i = 0; i < 300; i++) {
        TestStores.write(
            ds, f, i * 4096L, java.util.Arrays.copyOfRange(data, i * 4096, (i + 1) * 4096));
      }
      assertThat(TestStores.counts(ds).blocks()).as("nothing is stored before the flush").isZero();
      assertThat(ds.getattr(f).size()).as("but the size is visible").isEqualTo(data.length);
      ds.flush(f);
      assertThat(TestStores.counts(ds).blocks())
          .as("300 leaves, 3 nodes, a root: no path written twice")
          .isEqualTo(300 + 3 + 1);
      TestStores.assertSameBytes(TestStores.read(ds, f, 0, data.length), data, "the file");
    }
  }

  @Test
  void dirtyMemoryStaysBounded() throws IOException {
    long limit = 1 << 20;
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(limit))) {
      long[] files = {
        TestStores.create(ds, "a"), TestStores.create(ds, "b"), TestStores.create(ds, "c")
      };
      SplittableRandom r = new SplittableRandom(2);
      for (int i = 0; i < 3000; i++) {
        TestStores.write(
            ds, files[i % 3], r.nextLong(64 << 20), TestStores.randomBytes(r, 1 + r.nextInt(8192)));
        // one write may add three leaves and a path of nodes for each before the bound is checked
        assertThat(ds.writeBack.bufferedBytes())
            .isLessThanOrEqualTo(limit + 3 * (4096 + 4 * Slot.Node.MEMORY));
      }
      assertThat(TestStores.counts(ds).blocks())
          .as("reaching the bound committed some")
          .isPositive();
      assertConsistent(ds);
    }
  }

  @Test
  void theTimerCommitsWhatStaysBuffered() throws Exception {
    DatastoreConfig config = TestStores.config(4096).withFlushInterval(Duration.ofMillis(200));
    try (Datastore ds = Datastore.open(dir, config)) {
      long f = TestStores.create(ds, "f");
      TestStores.write(ds, f, 0, new byte[] {1, 2, 3});
      for (int wait = 0; wait < 600 && TestStores.root(ds, f).isZero(); wait++) {
        Thread.sleep(50); // bounded: at most 30 s, normally a few hundred ms
      }
      assertThat(TestStores.root(ds, f).isZero()).as("committed by the timer").isFalse();
    }
  }

  @Test
  void closeCommitsEverything() throws IOException {
    byte[] data = TestStores.randomBytes(new SplittableRandom(3), 100_000);
    long f;
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      f = TestStores.create(ds, "f");
      TestStores.write(ds, f, 12345, data);
    }
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      TestStores.assertSameBytes(
          TestStores.read(ds, f, 12345, data.length), data, "after close and reopen");
      assertConsistent(ds);
    }
  }
}
