package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The intent log against what a crash leaves: fsynced writes come back from the log alone, a record
 * torn by a power cut ends its file's replay, and records never come back over a file that was
 * deleted or restored after them. A crash is {@link Datastore#abandon}: nothing buffered is
 * committed.
 */
class IntentLogTest {
  @TempDir Path dir;

  private final SplittableRandom r = new SplittableRandom(1);

  @Test
  void anFsyncedWriteComesBackFromTheLogAlone() throws Exception {
    byte[] a = TestStores.randomBytes(r, 10_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 5000, a);
    ds.fsync(ino);
    assertThat(ds.writeBack.bufferedBytes()).as("fsync logs, it does not commit").isPositive();
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(ino).size()).isEqualTo(15_000);
      assertThat(TestStores.read(again, ino, 5000, 10_000)).isEqualTo(a);
      assertConsistent(again);
    }
  }

  /**
   * A file whose write is only logged still shows, and then commits, the ctime that a rename set
   * after the write (the buffered write times must not hide it; OperationsIT compares with ext4).
   */
  @Test
  void aRenameAfterALoggedWriteMovesTheCtime() throws Exception {
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      long ino = TestStores.create(ds, "f");
      TestStores.write(ds, ino, 0, new byte[] {1});
      ds.fsync(ino);
      long written = ds.getattr(ino).ctimeNs();
      Thread.sleep(2);
      ds.rename(Datastore.ROOT, "f", Datastore.ROOT, "g", 0);
      long renamed = ds.getattr(ino).ctimeNs();
      assertThat(renamed).as("ctime after the rename").isGreaterThan(written);
      ds.flush(ino);
      assertThat(ds.getattr(ino).ctimeNs()).as("ctime once committed").isEqualTo(renamed);
    }
  }

  /**
   * A power cut in the middle of the second of three appends: its record is torn, and the third,
   * which reached the disk before it (the device may write in any order) but was never
   * acknowledged, must not be replayed either.
   */
  @Test
  void aTornRecordEndsItsFilesReplay() throws Exception {
    byte[] a = TestStores.randomBytes(r, 3000);
    byte[] b = TestStores.randomBytes(r, 3000);
    byte[] c = TestStores.randomBytes(r, 3000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 0, a);
    ds.fsync(ino);
    TestStores.write(ds, ino, 100_000, b);
    ds.fsync(ino);
    TestStores.write(ds, ino, 200_000, c);
    ds.fsync(ino);
    ds.abandon();
    List<Long> records = recordPositions(dir.resolve(IntentLog.FILE));
    assertThat(records).hasSize(3);
    flipByte(dir.resolve(IntentLog.FILE), records.get(1) + 200);
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(ino).size()).as("the first record only").isEqualTo(3000);
      assertThat(TestStores.read(again, ino, 0, 3000)).isEqualTo(a);
      assertConsistent(again);
    }
  }

  /**
   * An fsync while a commit of its file is in flight logs what that commit stores; once the commit
   * ends, that record's space is given back although the commit folded only the records before it.
   * Other files' records then write over it. The file's next fsync must still come back after a
   * crash: a replay that looked for the record given back would stop before it (CrashIT's power cut
   * found an fsynced byte holding an older value this way, once).
   */
  @Test
  void anFsyncAfterARecordGivenBackByACommitComesBack() throws Exception {
    byte[] a = TestStores.randomBytes(r, 3000);
    byte[] b = TestStores.randomBytes(r, 3000);
    byte[] c = TestStores.randomBytes(r, 3000);
    Datastore ds =
        Datastore.open(
            dir,
            TestStores.config(4096)
                .withDirtyLimit(4L << 30)
                .withLogBytes(DatastoreConfig.MIN_LOG_BYTES));
    ds.writeBack.foldInBackground = false;
    long f = TestStores.create(ds, "f");
    TestStores.write(ds, f, 0, a);
    ds.fsync(f);
    fsyncWhileACommitIsHeld(ds, f, b, () -> {});
    long g = TestStores.create(ds, "g");
    for (int i = 0; i < 120; i++) { // 1.4 MB of records through a 1 MiB ring, folded as they go
      TestStores.write(ds, g, (long) i * 12_000, TestStores.randomBytes(r, 12_000));
      ds.fsync(g);
      if (i % 8 == 7) {
        ds.flush(g);
      }
    }
    assertThat(ds.intentLog().activity().refused()).as("every fsync of g was logged").isZero();
    TestStores.write(ds, f, 200_000, c);
    ds.fsync(f);
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(f).size()).as("the last fsync's length").isEqualTo(203_000);
      assertThat(TestStores.read(again, f, 0, 3000)).isEqualTo(a);
      assertThat(TestStores.read(again, f, 100_000, 3000)).isEqualTo(b);
      assertThat(TestStores.read(again, f, 200_000, 3000)).isEqualTo(c);
      assertConsistent(again);
    }
  }

  /**
   * The same record given back, its file then dropped from memory, loaded again, written over and
   * committed: after a crash the old record must not be replayed over the newer commit.
   */
  @Test
  void aRecordGivenBackIsNotReplayedOverALaterCommit() throws Exception {
    byte[] a = TestStores.randomBytes(r, 3000);
    byte[] b = TestStores.randomBytes(r, 3000);
    byte[] c = TestStores.randomBytes(r, 3000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(4L << 30));
    long f = TestStores.create(ds, "f");
    TestStores.write(ds, f, 0, a);
    ds.fsync(f);
    fsyncWhileACommitIsHeld(ds, f, b, () -> {});
    ds.forget(f); // clean: dropped, loaded again by the next write
    TestStores.write(ds, f, 100_000, c);
    ds.flush(f);
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      TestStores.assertSameBytes(
          TestStores.read(again, f, 100_000, 3000), c, "the committed bytes");
      assertThat(TestStores.read(again, f, 0, 3000)).isEqualTo(a);
      assertConsistent(again);
    }
  }

  /**
   * A commit folds up to the log's last record when it froze the file, which may be another file's:
   * the file's records made while the commit was in flight follow one below that number, and must
   * be replayed all the same.
   */
  @Test
  void recordsMadeDuringACommitFollowOneBelowItsFoldedRowAndComeBack() throws Exception {
    byte[] a = TestStores.randomBytes(r, 3000);
    byte[] b = TestStores.randomBytes(r, 3000);
    byte[] c = TestStores.randomBytes(r, 3000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(4L << 30));
    long f = TestStores.create(ds, "f");
    long g = TestStores.create(ds, "g");
    TestStores.write(ds, f, 0, a);
    ds.fsync(f); // record 1
    TestStores.write(ds, g, 0, a);
    ds.fsync(g); // record 2: the commit held below folds f up to 2
    // record 3 after record 1; c is not in the commit held: f stays dirty
    fsyncWhileACommitIsHeld(ds, f, b, () -> TestStores.write(ds, f, 200_000, c));
    ds.fsync(f); // record 4, after 3
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(f).size()).isEqualTo(203_000);
      assertThat(TestStores.read(again, f, 100_000, 3000)).isEqualTo(b);
      assertThat(TestStores.read(again, f, 200_000, 3000)).isEqualTo(c);
      assertConsistent(again);
    }
  }

  /** What a test does while a commit is held. */
  private interface Step {
    void run() throws Exception;
  }

  /**
   * Writes {@code b} at 100,000 into {@code f}, holds a commit of f once it froze, and fsyncs f
   * meanwhile: the record holds b, which the commit stores; then {@code meanwhile}, and the commit
   * is let go to store.
   */
  private static void fsyncWhileACommitIsHeld(Datastore ds, long f, byte[] b, Step meanwhile)
      throws Exception {
    BackgroundCommitTest.Gate gate = new BackgroundCommitTest.Gate();
    ds.writeBack.commitHook = gate;
    TestStores.write(ds, f, 100_000, b);
    gate.hold(ds, f);
    ds.fsync(f);
    meanwhile.run();
    assertThat(gate.release(false)).as("the held commit stored").isTrue();
  }

  /**
   * A log of format 1 (before a record could follow one at or below its file's folded row) is
   * replayed and marked 2 by a writable open, so that code of format 1 refuses it from then on; a
   * read-only open leaves it as it is, and a format this code does not know is refused.
   */
  @Test
  void aLogOfFormatOneIsReplayedAndMarkedTwo() throws Exception {
    byte[] a = TestStores.randomBytes(r, 10_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 0, a);
    ds.fsync(ino);
    ds.abandon();
    Path log = dir.resolve(IntentLog.FILE);
    int versionAt = "dedupfs intent log\n".length();
    assertThat(readInt(log, versionAt)).isEqualTo(2);
    writeInt(log, versionAt, 1);
    try (Datastore ro = Datastore.open(dir, TestStores.config(4096).withReadOnly(true))) {
      assertThat(TestStores.read(ro, ino, 0, a.length)).isEqualTo(a);
    }
    assertThat(readInt(log, versionAt)).as("a read-only open changes nothing").isEqualTo(1);
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(TestStores.read(again, ino, 0, a.length)).isEqualTo(a);
      assertConsistent(again);
    }
    assertThat(readInt(log, versionAt)).isEqualTo(2);
    writeInt(log, versionAt, 3);
    assertThatThrownBy(() -> Datastore.open(dir, TestStores.config(4096)).close())
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("not a dedupfs intent log of version 1 to 2");
  }

  private static int readInt(Path file, long at) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ByteBuffer b = ByteBuffer.allocate(4);
      ch.read(b, at);
      return b.getInt(0);
    }
  }

  private static void writeInt(Path file, long at, int v) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.allocate(4).putInt(0, v), at);
    }
  }

  @Test
  void recordsOfADeletedFileAreNotReplayed() throws Exception {
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 0, TestStores.randomBytes(r, 50_000));
    ds.fsync(ino);
    ds.unlink(Datastore.ROOT, "f");
    ds.forget(ino);
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertConsistent(again);
      assertThat(again.usage("").files()).isZero();
    }
  }

  @Test
  void recordsNeverComeBackOverARestoredFile() throws Exception {
    byte[] old = TestStores.randomBytes(r, 40_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 0, old);
    ds.flush(ino);
    ds.createSnapshot("s", "f");
    TestStores.write(ds, ino, 10_000, TestStores.randomBytes(r, 50_000));
    ds.fsync(ino);
    ds.restoreSnapshot("s", "f", "f");
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      long f = again.resolve("f");
      assertThat(again.getattr(f).size()).isEqualTo(old.length);
      assertThat(TestStores.read(again, f, 0, old.length)).isEqualTo(old);
      assertConsistent(again);
    }
  }

  @Test
  void aFullLogMakesFsyncCommitAndKeepsEverything() throws Exception {
    Datastore ds =
        Datastore.open(dir, TestStores.config(4096).withLogBytes(DatastoreConfig.MIN_LOG_BYTES));
    ds.writeBack.foldInBackground = false; // nothing makes room: the log fills
    long ino = TestStores.create(ds, "f");
    byte[] last = null;
    for (int i = 0; i < 400; i++) { // 400 records of 12 KiB in a 1 MiB ring
      last = TestStores.randomBytes(r, 12_000);
      TestStores.write(ds, ino, (long) i * 12_000, last);
      ds.fsync(ino);
    }
    Datastore.LogActivity a = ds.intentLog().activity();
    assertThat(a.refused()).as("fsyncs the full ring refused").isPositive();
    assertThat(a.records() + a.refused()).as("each fsync logged or refused").isEqualTo(400);
    assertThat(a.foldsForRoom()).isZero();
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(ino).size()).isEqualTo(400 * 12_000L);
      assertThat(TestStores.read(again, ino, 399 * 12_000L, 12_000)).isEqualTo(last);
      assertConsistent(again);
    }
  }

  /**
   * A log found half full of records no commit folded has their files committed early, so that
   * fsyncs find room; {@code stats} counts those folds (a log small for its writes).
   */
  @Test
  void aHalfFullLogHasItsFilesCommittedAndSaysSo() throws Exception {
    long ino;
    byte[] last = null;
    try (Datastore ds =
        Datastore.open(dir, TestStores.config(4096).withLogBytes(DatastoreConfig.MIN_LOG_BYTES))) {
      ino = TestStores.create(ds, "f");
      for (int i = 0; i < 200; i++) { // 2.4 MB of records through a 1 MiB ring
        last = TestStores.randomBytes(r, 12_000);
        TestStores.write(ds, ino, (long) i * 12_000, last);
        ds.fsync(ino);
      }
      Datastore.LogActivity a = ds.intentLog().activity();
      assertThat(a.foldsForRoom()).as("folds queued for room").isPositive();
      assertThat(a.records() + a.refused()).isEqualTo(200);
      assertThat(a.recordBytes()).isGreaterThan(a.records() * 12_000);
      assertThat(a.writes()).isBetween(1L, a.records());
    }
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(TestStores.read(again, ino, 199 * 12_000L, 12_000)).isEqualTo(last);
      assertConsistent(again);
    }
  }

  /**
   * A log made on another file system (a device of its own): the store's {@code intent.log} links
   * to it, fsynced writes come back from it after a crash, and destroying the store deletes it.
   */
  @Test
  void aLogKeptElsewhereIsReplayedThroughItsLink(@TempDir Path elsewhere) throws Exception {
    Path file = elsewhere.resolve("store.log");
    byte[] a = TestStores.randomBytes(r, 20_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096).withLogFile(file));
    assertThat(Files.readSymbolicLink(dir.resolve(IntentLog.FILE))).isEqualTo(file);
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 3000, a);
    ds.fsync(ino);
    assertThat(recordPositions(file)).as("the record went to the file linked").hasSize(1);
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(TestStores.read(again, ino, 3000, a.length)).isEqualTo(a);
      assertConsistent(again);
    }
    Datastore.destroy(dir, TestStores.config(4096), p -> {});
    assertThat(file).doesNotExist();
    assertThat(dir).doesNotExist();
  }

  /**
   * A log kept elsewhere that is missing (its file system not mounted) refuses the open, rather
   * than being made anew: once it is back, what it held comes back.
   */
  @Test
  void aMissingLogElsewhereRefusesTheOpenAndLosesNothing(@TempDir Path elsewhere) throws Exception {
    Path file = elsewhere.resolve("store.log");
    byte[] a = TestStores.randomBytes(r, 20_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096).withLogFile(file));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 0, a);
    ds.fsync(ino);
    ds.abandon();
    Path away = elsewhere.resolve("away");
    Files.move(file, away);
    assertThatThrownBy(() -> Datastore.open(dir, TestStores.config(4096)).close())
        .isInstanceOf(StoreException.class)
        .hasMessageContaining(file.toString())
        .hasMessageContaining("is not there");
    assertThat(Files.isSymbolicLink(dir.resolve(IntentLog.FILE))).isTrue();
    assertThat(file).as("no log made in its place").doesNotExist();
    Files.move(away, file);
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(TestStores.read(again, ino, 0, a.length)).isEqualTo(a);
      assertConsistent(again);
    }
  }

  /**
   * {@link Datastore#moveLog} carries the records no commit folded out of the store and back, and
   * refuses a store that is open.
   */
  @Test
  void aMovedLogKeepsWhatItHolds(@TempDir Path elsewhere) throws Exception {
    byte[] a = TestStores.randomBytes(r, 30_000);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    long ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 1000, a);
    ds.fsync(ino);
    assertThatThrownBy(() -> Datastore.moveLog(dir, elsewhere.resolve("x.log")))
        .isInstanceOf(StoreException.class);
    ds.abandon();
    Path file = elsewhere.resolve("x.log");
    assertThat(Datastore.moveLog(dir, file)).isEqualTo(file);
    assertThat(Files.readSymbolicLink(dir.resolve(IntentLog.FILE))).isEqualTo(file);
    assertThat(recordPositions(file)).hasSize(1);
    assertThat(Datastore.moveLog(dir, null)).isEqualTo(dir.resolve(IntentLog.FILE));
    assertThat(Files.isSymbolicLink(dir.resolve(IntentLog.FILE))).isFalse();
    assertThat(file).doesNotExist();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(TestStores.read(again, ino, 1000, a.length)).isEqualTo(a);
      assertConsistent(again);
    }
  }

  /** A new store never takes over a file that exists (another store's log, say). */
  @Test
  void aNewStoreRefusesAnExistingFileForItsLog(@TempDir Path elsewhere) throws Exception {
    Path file = elsewhere.resolve("other.log");
    Files.write(file, new byte[] {42});
    assertThatThrownBy(() -> Datastore.open(dir, TestStores.config(4096).withLogFile(file)).close())
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("exists");
    assertThat(Files.readAllBytes(file)).containsExactly(42);
  }

  /** Where each record of the log lies, by its magic on a 512-byte boundary after the header. */
  static List<Long> recordPositions(Path log) throws IOException {
    List<Long> out = new ArrayList<>();
    try (FileChannel ch = FileChannel.open(log, StandardOpenOption.READ)) {
      ByteBuffer b = ByteBuffer.allocate(4);
      for (long at = IntentLog.ALIGN; at < ch.size(); at += IntentLog.ALIGN) {
        b.clear();
        ch.read(b, at);
        if (b.getInt(0) == 0x44444c47) {
          out.add(at);
        }
      }
    }
    return out;
  }

  static void flipByte(Path file, long at) throws IOException {
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.allocate(1);
      ch.read(b, at);
      b.put(0, (byte) (b.get(0) ^ 0x5a)).clear();
      ch.write(b, at);
    }
  }
}
