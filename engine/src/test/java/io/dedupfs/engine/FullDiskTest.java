package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A store that fills its disk by itself (a small tmpfs, nothing else on it): writers get
 * StoreFullException, nothing flushed is lost, buffered data stays buffered, and deleting files
 * inside the store, then reclaiming, makes room for it and for new writes, without a reopen.
 */
class FullDiskTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  @Test
  void theStoreFillsItsDiskThenDeletesReclaimsAndWritesAgain() throws Exception {
    assumeTrue(TestStores.canMount(), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    assumeTrue(TestStores.mountTmpfs(mnt, 40), "mount -t tmpfs failed");
    try {
      Path store = mnt.resolve("store");
      SplittableRandom r = new SplittableRandom(6);
      List<Long> inos = new ArrayList<>();
      List<byte[]> contents = new ArrayList<>();
      byte[] pending;
      long last;
      // a 16 MiB dirty limit: no 2 MiB file reaches its share (a quarter), so no background
      // commit retries one whose flush found the disk full; room may appear between two commits
      // of a nearly full store (pages a reader held come free), and the test would race with it
      try (Datastore ds = Datastore.open(store, TestStores.config(4096).withDirtyLimit(16 * MIB))) {
        StoreFullException full = null;
        pending = null;
        last = 0;
        for (int i = 0; i < 100 && full == null; i++) {
          last = ds.mknod(ROOT, "f" + i, 0644, 0, 0, 0).ino();
          pending = TestStores.randomBytes(r, 2 * MIB);
          TestStores.write(ds, last, 0, pending);
          try {
            ds.flush(last);
            inos.add(last);
            contents.add(pending);
          } catch (StoreFullException e) {
            full = e;
          }
        }
        assertThat(full).as("a 40 MiB disk fills up").isNotNull();
        assertThat(ds.writeBack.bufferedBytes())
            .as("the write that did not fit stays buffered")
            .isGreaterThanOrEqualTo(2L * MIB);
        TestStores.assertSameBytes(
            TestStores.read(ds, last, 0, pending.length), pending, "the buffered write, read back");
        long stuck = last;
        assertThatThrownBy(
                () -> {
                  for (int i = 0; i < 24; i++) { // past the dirty limit, a writer is told
                    ds.write(
                        stuck, (2L + i) * MIB, ByteBuffer.wrap(TestStores.randomBytes(r, MIB)));
                  }
                })
            .isInstanceOf(StoreFullException.class);
        for (int i = 0; i < inos.size(); i++) {
          TestStores.assertSameBytes(
              TestStores.read(ds, inos.get(i), 0, 2 * MIB), contents.get(i), "flushed file " + i);
        }

        // delete half of the files inside the store itself, and reclaim
        for (int i = 0; i < inos.size(); i += 2) {
          ds.unlink(ROOT, "f" + i);
          ds.forget(inos.get(i));
        }
        ds.reclaim();
        ds.setattr(
            stuck,
            SetAttributes.size(2L * MIB)); // drop what was written past the refusal, if anything
        ds.flush(stuck);
        TestStores.assertSameBytes(
            TestStores.read(ds, stuck, 0, pending.length),
            pending,
            "the buffered write, committed at last");
        long more = ds.mknod(ROOT, "more", 0644, 0, 0, 0).ino();
        byte[] moreData = TestStores.randomBytes(r, 4 * MIB);
        TestStores.write(ds, more, 0, moreData);
        ds.flush(more);
        TestStores.assertSameBytes(
            TestStores.read(ds, more, 0, moreData.length),
            moreData,
            "written after space came back");
        assertConsistent(ds);
      }
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        for (int i = 1; i < inos.size(); i += 2) {
          TestStores.assertSameBytes(
              TestStores.read(ds, inos.get(i), 0, 2 * MIB),
              contents.get(i),
              "file " + i + " reopened");
        }
        TestStores.assertSameBytes(
            TestStores.read(ds, last, 0, pending.length), pending, "the late file reopened");
        assertConsistent(ds);
      }
    } finally {
      TestStores.unmount(mnt);
    }
  }

  /**
   * The intent log takes its space when it is made (4 MiB here, under a sixteenth of the disk), so
   * an fsync on a full disk still succeeds; the record is folded once there is room. After a crash,
   * an open on the still-full disk replays it, keeps it in memory and in the log, and commits it
   * once files are deleted.
   */
  @Test
  void anFsyncOnAFullDiskSurvivesACrashAndAnOpenOnTheFullDisk() throws Exception {
    assumeTrue(TestStores.canMount(), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    assumeTrue(TestStores.mountTmpfs(mnt, 80), "mount -t tmpfs failed"); // room for a 4 MiB log
    try {
      Path store = mnt.resolve("store");
      SplittableRandom r = new SplittableRandom(7);
      byte[] late = TestStores.randomBytes(r, 3_500_000); // more than the disk has left
      int files = 0;
      long lateIno;
      Datastore ds = Datastore.open(store, TestStores.config(4096).withDirtyLimit(64 * MIB));
      ds.writeBack.foldInBackground = false;
      files = fillWith(ds, r, files, 2 * MIB);
      assertThat(files).as("an 80 MiB disk fills up").isLessThan(100);
      lateIno = ds.mknod(ROOT, "late", 0644, 0, 0, 0).ino();
      for (int off = 0; off < late.length; off += late.length / 4) { // records of 1/4 of the log
        TestStores.write(ds, lateIno, off, Arrays.copyOfRange(late, off, off + late.length / 4));
        ds.fsync(lateIno); // into the log: no new space needed
      }
      assertThat(ds.writeBack.bufferedBytes()).as("logged, not committed").isPositive();
      ds.abandon();
      Datastore again = Datastore.open(store, TestStores.config(4096));
      try {
        TestStores.assertSameBytes(
            TestStores.read(again, lateIno, 0, late.length), late, "replayed on the full disk");
        assertThat(again.writeBack.bufferedBytes())
            .as("kept in memory: the disk has no room to commit it")
            .isPositive();
      } finally {
        assertThatThrownBy(again::close)
            .as("closing cannot commit it either")
            .isInstanceOf(StoreFullException.class);
      }
      assertThat(TestStores.resizeTmpfs(mnt, 160)).as("the disk grows").isTrue();
      try (Datastore roomy = Datastore.open(store, TestStores.config(4096))) {
        TestStores.assertSameBytes(
            TestStores.read(roomy, lateIno, 0, late.length), late, "replayed again, committed");
        assertThat(roomy.writeBack.bufferedBytes()).as("committed at open").isZero();
        assertConsistent(roomy);
      }
    } finally {
      TestStores.unmount(mnt);
    }
  }

  /**
   * A power cut tore the second of a file's four records: the third and fourth were never
   * acknowledged, and a replay skips them. An open on the full disk cannot commit what it replayed,
   * so the log goes on in the same generation, those two records still in it. The file's next fsync
   * follows the last record applied; after another crash it must come back, not be lost behind the
   * records skipped (a replay that stopped at the first of them lost it).
   */
  @Test
  void anFsyncAfterARecordsTornChainComesBackWhenTheLogWentOn() throws Exception {
    assumeTrue(TestStores.canMount(), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    assumeTrue(TestStores.mountTmpfs(mnt, 80), "mount -t tmpfs failed");
    try {
      Path store = mnt.resolve("store");
      SplittableRandom r = new SplittableRandom(8);
      Datastore ds = Datastore.open(store, TestStores.config(4096).withDirtyLimit(64 * MIB));
      ds.writeBack.foldInBackground = false;
      int files = 0;
      for (int size : new int[] {2 * MIB, 256 << 10, 32 << 10}) { // full to the last 32 KiB
        int failed = fillWith(ds, r, files, size);
        assertThat(failed - files).as("an 80 MiB disk fills up").isLessThan(100);
        files = failed + 1; // past the file whose flush failed
      }
      long ino = ds.mknod(ROOT, "late", 0644, 0, 0, 0).ino();
      byte[] first = TestStores.randomBytes(r, 100_000);
      for (int i = 0; i < 4; i++) {
        TestStores.write(
            ds, ino, i * 100_000L, i == 0 ? first : TestStores.randomBytes(r, 100_000));
        ds.fsync(ino);
      }
      ds.abandon();
      Path log = store.resolve(IntentLog.FILE);
      List<Long> records = IntentLogTest.recordPositions(log);
      assertThat(records).as("the file's four records").hasSize(4);
      IntentLogTest.flipByte(log, records.get(1) + 200);
      byte[] after = TestStores.randomBytes(r, 50_000);
      Datastore full = Datastore.open(store, TestStores.config(4096));
      try {
        assertThat(full.getattr(ino).size()).as("the first record only").isEqualTo(100_000);
        assertThat(full.writeBack.bufferedBytes()).as("not committed: no room").isPositive();
        TestStores.write(full, ino, 100_000, after);
        full.fsync(ino);
      } finally {
        full.abandon();
      }
      assertThat(TestStores.resizeTmpfs(mnt, 160)).as("the disk grows").isTrue();
      try (Datastore roomy = Datastore.open(store, TestStores.config(4096))) {
        assertThat(roomy.getattr(ino).size()).as("the last fsync's length").isEqualTo(150_000);
        TestStores.assertSameBytes(TestStores.read(roomy, ino, 0, 100_000), first, "first");
        TestStores.assertSameBytes(TestStores.read(roomy, ino, 100_000, 50_000), after, "after");
        assertConsistent(roomy);
      }
    } finally {
      TestStores.unmount(mnt);
    }
  }

  /**
   * Writes files {@code "f" + first}, {@code "f" + (first + 1)}, ... of {@code size} random bytes,
   * each flushed, until a flush finds the disk full, 100 files at most. Returns the number of the
   * file whose flush failed ({@code first + 100} when none did).
   */
  private static int fillWith(Datastore ds, SplittableRandom r, int first, int size)
      throws IOException {
    int files = first;
    try {
      for (; files < first + 100; files++) {
        long ino = ds.mknod(ROOT, "f" + files, 0644, 0, 0, 0).ino();
        TestStores.write(ds, ino, 0, TestStores.randomBytes(r, size));
        ds.flush(ino);
      }
    } catch (StoreFullException expected) {
      // the disk is full
    }
    return files;
  }
}
