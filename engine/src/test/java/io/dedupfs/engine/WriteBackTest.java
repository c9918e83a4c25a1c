package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.cache.Cache;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
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
  void aLeafRewrittenInPartIsKeptCheckedOnceStored() throws IOException {
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      long f = TestStores.create(ds, "f");
      SplittableRandom r = new SplittableRandom(3);
      byte[] model = Arrays.copyOf(TestStores.randomBytes(r, 4 * 4096), 5 * 4096 + 107);
      TestStores.write(ds, f, 0, Arrays.copyOf(model, 4 * 4096));
      ds.flush(f);
      Cache<Hash, byte[]> checked = ((CountedBlockStore) ds.blocks).verified;
      checked.invalidateAll();

      byte[] part = TestStores.randomBytes(r, 100); // leaf 1 in part: what it held is loaded
      System.arraycopy(part, 0, model, 4096 + 10, part.length);
      TestStores.write(ds, f, 4096 + 10, part);
      byte[] whole = TestStores.randomBytes(r, 4096); // leaf 2 whole: nothing loaded
      System.arraycopy(whole, 0, model, 2 * 4096, whole.length);
      TestStores.write(ds, f, 2 * 4096, whole);
      byte[] fresh = TestStores.randomBytes(r, 100); // leaf 5, new, in part
      System.arraycopy(fresh, 0, model, 5 * 4096 + 7, fresh.length);
      TestStores.write(ds, f, 5 * 4096 + 7, fresh);
      ds.flush(f);

      assertThat(checked.getIfPresent(IntegrityTest.block(ds, f, 0, 1)))
          .as("the leaf rewritten in part, kept as stored")
          .isEqualTo(Arrays.copyOfRange(model, 4096, 2 * 4096));
      for (int leaf : new int[] {0, 2, 5}) {
        assertThat(checked.getIfPresent(IntegrityTest.block(ds, f, 0, leaf)))
            .as("leaf %d: untouched, written whole, or new", leaf)
            .isNull();
      }
      TestStores.write(ds, f, 4096 + 3000, part); // the next write in part starts from the cache
      System.arraycopy(part, 0, model, 4096 + 3000, part.length);
      ds.flush(f);
      TestStores.assertSameBytes(TestStores.read(ds, f, 0, model.length), model, "the file");
      assertConsistent(ds);
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
  void theTimerCountsFromTheFirstChangeSinceTheLastCommit() throws Exception {
    DatastoreConfig config = TestStores.config(4096).withFlushInterval(Duration.ofMillis(1500));
    try (Datastore ds = Datastore.open(dir, config)) {
      long f = TestStores.create(ds, "f");
      TestStores.write(ds, f, 0, new byte[] {1});
      ds.flush(f);
      Hash first = TestStores.root(ds, f);
      Thread.sleep(2000); // the file rests clean for longer than the interval
      long written = System.nanoTime();
      TestStores.write(ds, f, 0, new byte[] {2});
      awaitRootChange(ds, f, first); // normally 1.5 to 2.3 s
      long took = System.nanoTime() - written;
      assertThat(TestStores.root(ds, f)).as("committed by the timer").isNotEqualTo(first);
      assertThat(took).as("ns from the write to its commit").isGreaterThanOrEqualTo(1_500_000_000L);
    }
  }

  @Test
  void theTimerLeavesAFileThatIsWrittenAndFsyncedToTheLogUntilItRests() throws Exception {
    DatastoreConfig config =
        TestStores.config(4096).withFlushInterval(Duration.ofMillis(400)).withLogBytes(64L << 20);
    try (Datastore ds = Datastore.open(dir, config)) {
      long f = TestStores.create(ds, "f");
      SplittableRandom random = new SplittableRandom(5);
      byte[] model = new byte[64 * 4096];
      int length = 0;
      Set<Hash> roots = new HashSet<>();
      // 2 s of fsync'd writes, one every 10 ms: under the 12 flush intervals (4.8 s) that a file
      // kept busy may keep its changes in the log; without that, the timer commits every 200 ms
      long end = System.nanoTime() + 2_000_000_000L;
      while (System.nanoTime() < end) {
        int at = random.nextInt(64) * 4096;
        byte[] data = writeAndFsync(ds, f, at, random);
        System.arraycopy(data, 0, model, at, data.length);
        length = Math.max(length, at + data.length);
        roots.add(TestStores.root(ds, f));
        Thread.sleep(10);
      }
      roots.remove(Hash.ZERO);
      // one commit is let pass: a pause of the test's thread (a GC, a loaded machine) is a rest
      assertThat(roots).as("commits while the file was written and fsynced").hasSizeLessThan(2);
      Hash root = TestStores.root(ds, f);
      // a pause of this thread at the end of the loop may have been the rest already, and its
      // commit made: then nothing is buffered, and the root has nothing to change to
      if (ds.writeBack.bufferedBytes() > 0) {
        awaitRootChange(ds, f, root); // normally under a second
        assertThat(TestStores.root(ds, f)).as("committed once the file rested").isNotEqualTo(root);
      }
      assertThat(ds.writeBack.bufferedBytes()).as("buffers given back").isZero();
      TestStores.assertSameBytes(
          TestStores.read(ds, f, 0, length), Arrays.copyOf(model, length), "after the commit");
      assertConsistent(ds);
    }
  }

  @Test
  void theTimerCommitsAFileKeptBusyAfterTwelveIntervals() throws Exception {
    DatastoreConfig config =
        TestStores.config(4096).withFlushInterval(Duration.ofMillis(300)).withLogBytes(64L << 20);
    try (Datastore ds = Datastore.open(dir, config)) {
      long f = TestStores.create(ds, "f");
      SplittableRandom random = new SplittableRandom(6);
      boolean committed = false;
      // 3.6 s of writing normally; the file never rests for 300 ms unless this thread stalls
      long end = System.nanoTime() + 10_000_000_000L;
      while (!committed && System.nanoTime() < end) {
        writeAndFsync(ds, f, random.nextInt(64) * 4096L, random);
        committed = !TestStores.root(ds, f).isZero();
        Thread.sleep(5);
      }
      assertThat(committed).as("committed while written and fsynced without a rest").isTrue();
    }
  }

  @Test
  void theTimerCommitsLoggedChangesOnceHalfTheDirtyLimitIsBuffered() throws Exception {
    // four files of 160 KiB each, under their share (a quarter of 1 MiB) but together over half
    DatastoreConfig config =
        TestStores.config(4096)
            .withFlushInterval(Duration.ofMillis(300))
            .withDirtyLimit(1L << 20)
            .withLogBytes(64L << 20);
    try (Datastore ds = Datastore.open(dir, config)) {
      long[] files = new long[4];
      for (int i = 0; i < files.length; i++) {
        files[i] = TestStores.create(ds, "f" + i);
      }
      SplittableRandom random = new SplittableRandom(7);
      boolean committed = false;
      // 0.3 to 0.9 s of writing normally; 3.6 s (twelve intervals) without the half-limit rule
      long end = System.nanoTime() + 2_500_000_000L;
      while (!committed && System.nanoTime() < end) {
        for (long f : files) {
          writeAndFsync(ds, f, random.nextInt(40) * 4096L, random);
          committed |= !TestStores.root(ds, f).isZero();
        }
        Thread.sleep(2);
      }
      assertThat(committed).as("a file committed within 2.5 s").isTrue();
    }
  }

  /** Writes 4 KiB of random bytes at {@code at} and fsyncs; returns the bytes. */
  private static byte[] writeAndFsync(Datastore ds, long f, long at, SplittableRandom random)
      throws IOException {
    byte[] data = TestStores.randomBytes(random, 4096);
    TestStores.write(ds, f, at, data);
    ds.fsync(f);
    return data;
  }

  /** Waits until {@code f}'s committed root is no longer {@code from}, 30 s at most. */
  private static void awaitRootChange(Datastore ds, long f, Hash from) throws Exception {
    for (int wait = 0; wait < 1500 && TestStores.root(ds, f).equals(from); wait++) {
      Thread.sleep(20);
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
