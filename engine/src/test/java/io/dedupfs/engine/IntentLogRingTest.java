package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The intent log's ring on its own, written both ways (direct, synchronous writes in batches;
 * writes through the page cache and a shared flush): what {@link IntentLog#sync} returned for is
 * read back at the next open, across laps of the ring, and syncs that meet share a write.
 */
class IntentLogRingTest {
  private static final long LOG_ID = 7;

  @TempDir Path dir;

  private final SplittableRandom r = new SplittableRandom(5);

  /**
   * Records of a few files, of sizes from a few bytes to 40 KiB, appended and synced in turns,
   * folded once they are some records old, across several laps of a 1 MiB ring: every record not
   * folded is read back whole at the next open; direct writes start on 4 KiB file offsets.
   */
  @ParameterizedTest(name = "direct {0}")
  @ValueSource(booleans = {true, false})
  void syncedRecordsComeBackAcrossLapsOfTheRing(boolean direct) throws Exception {
    IntentLog.create(dir, 1 << 20);
    Map<Long, byte[]> unfolded = new HashMap<>();
    List<long[]> order = new ArrayList<>(); // {ino, seq}
    long written = 0;
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, direct)) {
      assumeThat(log.direct()).as("direct I/O where the test asks for it").isEqualTo(direct);
      long[] last = new long[4];
      for (int i = 0; i < 600; i++) {
        long ino = 1 + r.nextInt(4);
        byte[] data = TestStores.randomBytes(r, 1 + r.nextInt(r.nextBoolean() ? 300 : 40_000));
        IntentLog.Appended a = append(log, ino, last[(int) ino - 1], data);
        assertThat(a).as("room in the ring: only a few records are needed at once").isNotNull();
        last[(int) ino - 1] = a.seq();
        log.sync(ino, a.seq(), a.end());
        written += data.length;
        unfolded.put(a.seq(), data);
        order.add(new long[] {ino, a.seq()});
        if (order.size() > 6) {
          long[] old = order.remove(0);
          log.folded(old[0], old[1]);
          unfolded.remove(old[1]);
        }
      }
    }
    assertThat(written).as("the records went round the ring").isGreaterThan(3L << 20);
    try (IntentLog again = IntentLog.open(dir, LOG_ID, true)) {
      Map<Long, IntentLog.Record> bySeq = new HashMap<>();
      for (IntentLog.Record rec : again.recovered()) {
        bySeq.put(rec.seq(), rec);
        if (direct) {
          assertThat((rec.position() + IntentLog.ALIGN) % IntentLog.DIRECT_ALIGN).isZero();
        }
      }
      for (Map.Entry<Long, byte[]> e : unfolded.entrySet()) {
        IntentLog.Record rec = bySeq.get(e.getKey());
        assertThat(rec).as("record %d, synced and not folded", e.getKey()).isNotNull();
        assertThat(rec.ranges()).hasSize(1);
        assertThat(rec.ranges().get(0).offset()).isEqualTo(100);
        assertThat(rec.ranges().get(0).data()).isEqualTo(e.getValue());
      }
    }
  }

  /**
   * What {@code dedupfs stats} shows of the log: the records appended and the ring bytes they took,
   * the writes that made them durable (fewer than the records when syncs share one), those writes'
   * times, the appends refused when the ring was full, and what waits to be folded until it is.
   */
  @ParameterizedTest(name = "direct {0}")
  @ValueSource(booleans = {true, false})
  void whatTheLogDidIsCounted(boolean direct) throws Exception {
    IntentLog.create(dir, 1 << 20);
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, direct)) {
      assumeThat(log.direct()).as("direct I/O where the test asks for it").isEqualTo(direct);
      assertThat(log.activity()).isEqualTo(new Datastore.LogActivity(0, 0, 0, 0, 0, 0, 0, 0));
      IntentLog.Appended a = append(log, 1, 0, TestStores.randomBytes(r, 5000));
      IntentLog.Appended b = append(log, 2, 0, TestStores.randomBytes(r, 100));
      log.sync(2, b.seq(), b.end()); // direct: one write for both
      log.sync(1, a.seq(), a.end());
      Datastore.LogActivity two = log.activity();
      int align = direct ? IntentLog.DIRECT_ALIGN : IntentLog.ALIGN;
      long padded =
          (5000 + 96 + align - 1) / align * align + (100 + 96 + align - 1) / align * align;
      assertThat(two.records()).isEqualTo(2);
      assertThat(two.recordBytes()).isEqualTo(padded);
      assertThat(two.writes()).isBetween(1L, 2L);
      if (direct) {
        assertThat(two.writes()).as("one write for the two records").isEqualTo(1);
      }
      assertThat(two.writeMicrosP99()).isGreaterThanOrEqualTo(Math.max(2, two.writeMicrosMean()));
      assertThat(two.unfoldedBytes())
          .as("the two records, from the first's start")
          .isEqualTo(padded);
      assertThat(two.refused()).isZero();

      IntentLog.Appended last = b;
      IntentLog.Appended next;
      int appended = 0;
      while ((next = append(log, 2, last.seq(), TestStores.randomBytes(r, 60_000))) != null) {
        last = next;
        appended++;
      }
      Datastore.LogActivity full = log.activity();
      assertThat(full.refused()).as("the append the full ring refused").isEqualTo(1);
      assertThat(full.records()).isEqualTo(2 + appended);
      assertThat(full.unfoldedBytes()).isGreaterThan((1 << 20) - 128 * 1024);
      log.sync(2, last.seq(), last.end());
      log.folded(1, a.seq());
      log.folded(2, last.seq());
      assertThat(log.activity().unfoldedBytes()).as("everything folded").isZero();
    }
  }

  /**
   * The open reads the ring a few MiB at a time: records that cross from one such stretch into the
   * next, and records longer than a stretch (6 MiB), all come back whole, with the ones between.
   */
  @Test
  void recordsAcrossAndLongerThanTheStretchesTheOpenReadComeBack() throws Exception {
    IntentLog.create(dir, 40 << 20);
    Map<Long, byte[]> synced = new HashMap<>();
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, true)) {
      long last = 0;
      long end = 0;
      for (int i = 0; end < 30 << 20; i++) {
        int size = i % 7 == 3 ? 6 << 20 : 1 + r.nextInt(700_000);
        byte[] data = TestStores.randomBytes(r, size);
        IntentLog.Appended a = append(log, 1, last, data);
        assertThat(a).as("room in the ring for record %d", i).isNotNull();
        last = a.seq();
        end = a.end();
        log.sync(1, a.seq(), a.end());
        synced.put(a.seq(), data);
      }
    }
    Map<Long, byte[]> read = recoveredData();
    assertThat(read.keySet()).isEqualTo(synced.keySet());
    synced.forEach((seq, data) -> assertThat(read.get(seq)).as("record %d", seq).isEqualTo(data));
  }

  /**
   * Records of three files are appended (two of the first: replay stops at a file's first missing
   * record, so its later one alone would not be durable) before any is synced: the first sync
   * writes them all in one write (group commit), and the other files' syncs find theirs on the
   * device and write nothing. All of them come back at the next open.
   */
  @Test
  void oneSyncWritesEveryRecordAppendedBeforeItInOneWrite() throws Exception {
    IntentLog.create(dir, 1 << 20);
    List<Long> seqs = new ArrayList<>();
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, true)) {
      assumeThat(log.direct()).as("direct I/O on this file system").isTrue();
      IntentLog.Appended first = append(log, 1, 0, TestStores.randomBytes(r, 5000));
      IntentLog.Appended second = append(log, 1, first.seq(), TestStores.randomBytes(r, 700));
      IntentLog.Appended other = append(log, 2, 0, TestStores.randomBytes(r, 900));
      IntentLog.Appended third = append(log, 3, 0, TestStores.randomBytes(r, 9000));
      log.sync(1, second.seq(), second.end());
      assertThat(log.activity().writes()).as("one write for the four records").isEqualTo(1);
      log.sync(2, other.seq(), other.end());
      log.sync(3, third.seq(), third.end());
      assertThat(log.activity().writes()).as("written already").isEqualTo(1);
      seqs.addAll(List.of(first.seq(), second.seq(), other.seq(), third.seq()));
    }
    try (IntentLog again = IntentLog.open(dir, LOG_ID, true)) {
      assertThat(again.recovered())
          .extracting(IntentLog.Record::seq)
          .containsExactlyInAnyOrderElementsOf(seqs);
    }
  }

  /**
   * Eight threads, each with a file of its own, append and sync records at once: every record a
   * sync returned for comes back at the next open, and the syncs shared writes: fewer writes than
   * syncs (the first thread's write holds the records the others appended meanwhile).
   */
  @Test
  void syncsOfManyFilesAtOnceShareWrites() throws Exception {
    IntentLog.create(dir, 8 << 20);
    Map<Long, byte[]> synced = new ConcurrentHashMap<>();
    ExecutorService pool = Executors.newFixedThreadPool(8);
    long writes;
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, true)) {
      assumeThat(log.direct()).as("direct I/O on this file system").isTrue();
      java.util.concurrent.CyclicBarrier together = new java.util.concurrent.CyclicBarrier(8);
      List<Future<?>> threads = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        long ino = 10 + t;
        SplittableRandom tr = r.split();
        threads.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      long last = 0;
                      for (int i = 0; i < 40; i++) {
                        byte[] data = TestStores.randomBytes(tr, 1 + tr.nextInt(6000));
                        together.await();
                        IntentLog.Appended a = append(log, ino, last, data);
                        last = a.seq();
                        log.sync(ino, a.seq(), a.end());
                        synced.put(a.seq(), data);
                      }
                      return null;
                    }));
      }
      for (Future<?> t : threads) {
        t.get(); // a failure in a thread fails the test with its cause
      }
      writes = log.activity().writes();
    } finally {
      pool.shutdownNow();
    }
    assertThat(writes).as("writes for 320 syncs").isLessThan(320 / 2);
    Map<Long, byte[]> read = recoveredData();
    assertThat(read.keySet()).containsAll(synced.keySet());
    synced.forEach((seq, data) -> assertThat(read.get(seq)).as("record %d", seq).isEqualTo(data));
  }

  /**
   * A record folded by a commit before any thread wrote it is never written, and its space comes
   * back.
   */
  @Test
  void aRecordFoldedBeforeItsWriteIsNeverWritten() throws Exception {
    IntentLog.create(dir, 1 << 20);
    long seq;
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, true)) {
      assumeThat(log.direct()).as("direct I/O on this file system").isTrue();
      IntentLog.Appended a = append(log, 1, 0, TestStores.randomBytes(r, 3000));
      seq = a.seq();
      log.folded(1, seq);
      assertThat(log.neededBytes()).as("not written yet: its space stays taken").isPositive();
      log.sync(1, seq, a.end());
      assertThat(log.neededBytes()).isZero();
    }
    try (IntentLog again = IntentLog.open(dir, LOG_ID, true)) {
      assertThat(again.recovered()).extracting(IntentLog.Record::seq).doesNotContain(seq);
    }
  }

  /**
   * Four threads fsync one file at once, direct writes: each appends a record (in turn, so each
   * names the one before it) and syncs it while the others append and sync theirs; a thread finds
   * earlier records written, being written by another thread, or left for it to write. Every record
   * a sync returned for comes back at the next open, whole, and the file's records form one chain.
   */
  @Test
  void fsyncsOfOneFileFromManyThreadsAreAllDurable() throws Exception {
    IntentLog.create(dir, 8 << 20);
    Map<Long, byte[]> synced = new ConcurrentHashMap<>();
    Object appendLock = new Object();
    long[] last = new long[1];
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try (IntentLog log = IntentLog.open(dir, LOG_ID, false, true)) {
      assumeThat(log.direct()).as("direct I/O on this file system").isTrue();
      List<Future<?>> threads = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        SplittableRandom tr = r.split();
        threads.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      for (int i = 0; i < 60; i++) {
                        byte[] data = TestStores.randomBytes(tr, 1 + tr.nextInt(9000));
                        IntentLog.Appended a;
                        synchronized (appendLock) {
                          a = append(log, 1, last[0], data);
                          last[0] = a.seq();
                        }
                        log.sync(1, a.seq(), a.end());
                        synced.put(a.seq(), data);
                      }
                      return null;
                    }));
      }
      for (Future<?> t : threads) {
        t.get(); // a failure in a thread fails the test with its cause
      }
    } finally {
      pool.shutdownNow();
    }
    try (IntentLog again = IntentLog.open(dir, LOG_ID, true)) {
      Map<Long, IntentLog.Record> bySeq = new HashMap<>();
      for (IntentLog.Record rec : again.recovered()) {
        bySeq.put(rec.seq(), rec);
      }
      assertThat(bySeq.keySet()).as("every synced record").containsAll(synced.keySet());
      for (Map.Entry<Long, byte[]> e : synced.entrySet()) {
        IntentLog.Record rec = bySeq.get(e.getKey());
        assertThat(rec.ranges().get(0).data()).isEqualTo(e.getValue());
        assertThat(rec.prevSeq())
            .as("record %d follows the one before", e.getKey())
            .isEqualTo(e.getKey() - 1);
      }
    }
  }

  /** The data of every record the next open of the log finds, by sequence number. */
  private Map<Long, byte[]> recoveredData() throws java.io.IOException {
    try (IntentLog again = IntentLog.open(dir, LOG_ID, true)) {
      Map<Long, byte[]> read = new HashMap<>();
      for (IntentLog.Record rec : again.recovered()) {
        read.put(rec.seq(), rec.ranges().get(0).data());
      }
      return read;
    }
  }

  /** A record of {@code data} at offset 100 of {@code ino}, appended. */
  private static IntentLog.Appended append(IntentLog log, long ino, long prevSeq, byte[] data)
      throws Exception {
    ByteBuffer rec = log.newRecord(prevSeq, ino, -1, 100 + data.length, -1, -1, 1, data.length);
    rec.putLong(100).putInt(data.length).put(data);
    return log.append(ino, rec);
  }
}
