package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A child JVM writes and flushes in a loop and is killed with SIGKILL at a random moment; on reopen
 * every write whose flush it reported is intact, every directory it reported exists, any later
 * record is either whole or absent, and the store is consistent. The rounds share one store, so
 * each reopen recovers from the previous kill too. Several writers fsyncing through the intent log
 * meet a kill and, in a case of their own, power cuts ({@link PowerCut}). Another case kills a
 * child in the middle of reclaiming a large deleted file: fsck is clean before anything is applied,
 * and after the next reclaim nothing unreferenced remains and everything still referenced is there.
 */
class CrashTest {
  @TempDir Path dir;

  @Test
  void everyReportedFlushSurvivesSigkill() throws Exception {
    SplittableRandom r = new SplittableRandom(42);
    int rounds = TestStores.longRuns() ? 20 : 4;
    for (int round = 0; round < rounds; round++) {
      String name = "crash" + round;
      long seed = r.nextLong();
      int killAfter = 8 + r.nextInt(60);
      Reported reported = runAndKill(name, seed, killAfter, r.nextInt(30));
      assertThat(reported.lastFlushed)
          .as("round %d: the child flushed something before the kill", round)
          .isGreaterThanOrEqualTo(0);
      try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
        long ino = ds.lookup(Datastore.ROOT, name).ino();
        long size = ds.getattr(ino).size();
        assertThat(size).isGreaterThanOrEqualTo((reported.lastFlushed + 1L) * CrashWriter.RECORD);
        for (int i = 0; (long) i * CrashWriter.RECORD < size; i++) {
          byte[] got = TestStores.read(ds, ino, (long) i * CrashWriter.RECORD, CrashWriter.RECORD);
          byte[] want = CrashWriter.record(seed, i);
          if (i <= reported.lastFlushed) {
            assertThat(got)
                .as("round %d: record %d was reported flushed", round, i)
                .isEqualTo(want);
          } else {
            boolean whole = Arrays.equals(got, Arrays.copyOf(want, got.length));
            boolean absent = Arrays.equals(got, new byte[got.length]);
            assertThat(whole || absent)
                .as(
                    "round %d: record %d, after the last reported flush, is whole or absent",
                    round, i)
                .isTrue();
          }
        }
        for (int d : reported.dirs) {
          assertThat(ds.lookup(Datastore.ROOT, name + "-dir" + d).isDirectory()).isTrue();
        }
        assertConsistent(ds);
      }
    }
  }

  /**
   * Six threads write and fsync four files through the intent log (two files have two writers, in
   * regions of their own; a small log, so that it wraps, folds and fills) while background commits
   * run; the child is killed at a random moment. Every operation whose fsync returned is there, the
   * one in flight is whole or absent, the store is consistent; the rounds share the store, so each
   * open replays after the previous kill too.
   */
  @Test
  void everyFsyncSurvivesSigkillWithSeveralWriters() throws Exception {
    SplittableRandom r = new SplittableRandom(44);
    Path store = dir.resolve("store");
    int rounds = TestStores.longRuns() ? 20 : 5;
    for (int round = 0; round < rounds; round++) {
      String prefix = "sync" + round + "-";
      long seed = r.nextLong();
      Path report = dir.resolve(prefix + "report.txt");
      ProcessBuilder child =
          builder(CrashSyncWriters.class, store.toString(), prefix, Long.toString(seed));
      int[] last = runSyncWritersAndKill(child, report, 50 + r.nextInt(400), r, round);
      assertSyncWritersKept(store, prefix, seed, last, "round " + round);
    }
  }

  /**
   * The same writers, and power cuts instead of a kill: the child runs with {@link PowerCut}'s
   * journal of its writes and reports, and is killed; the store is then rebuilt, from the copy made
   * before the child started, as a disk that lost power at a random moment of the child's life
   * could hold it: every write that was made durable by then (fsync, fdatasync, O_DSYNC), and of
   * the others none or a random half of their 4 KiB pieces. What the child had reported by that
   * moment must be there. A kill leaves what the store wrote in the page cache; a power cut leaves
   * only what its flushes made durable, so this fails where an fsync returns before the intent
   * log's write or the commit it waits for is on the disk, or where a commit's pages are trusted
   * before they are.
   */
  @Test
  void everyFsyncSurvivesAPowerCutWithSeveralWriters() throws Exception {
    Path lib = PowerCut.build(dir);
    SplittableRandom r = new SplittableRandom(46);
    int rounds = TestStores.longRuns() ? 10 : 3;
    int cutsPerRound = TestStores.longRuns() ? 6 : 3;
    int notDurable = 0;
    for (int round = 0; round < rounds; round++) {
      Path store = dir.resolve("cut" + round);
      Path before = dir.resolve("cut" + round + "-before");
      Path journalFile = dir.resolve("cut" + round + ".journal");
      Datastore.open(store, TestStores.config(4096)).close();
      PowerCut.copy(store, before);
      String prefix = "sync" + round + "-";
      long seed = r.nextLong();
      ProcessBuilder child =
          builder(CrashSyncWriters.class, store.toString(), prefix, Long.toString(seed));
      child.environment().putAll(PowerCut.environment(lib, store, journalFile, true));
      runSyncWritersAndKill(
          child, dir.resolve(prefix + "report.txt"), 200 + r.nextInt(1000), r, round);
      try (PowerCut.Journal journal = new PowerCut.Journal(journalFile)) {
        int first = journal.firstReport();
        assertThat(first).as("round %d: the journal holds the child's report", round).isPositive();
        for (int c = 0; c < cutsPerRound; c++) {
          int upTo = first + 1 + r.nextInt(journal.size() - first);
          Path cut = dir.resolve("cut" + round + "-" + c);
          PowerCut.copy(before, cut);
          PowerCut.Cut done = journal.cut(upTo, cut, c % 2 == 0 ? null : r.split());
          notDurable += done.partly() + done.lost();
          int[] last = reported(Arrays.asList(journal.report(upTo).split("\n")));
          assertSyncWritersKept(cut, prefix, seed, last, "round " + round + ", cut " + c);
        }
      }
    }
    assertThat(notDurable).as("writes not yet durable at the power cuts").isPositive();
  }

  /**
   * Starts {@link CrashSyncWriters} as {@code child}, kills it once it has reported {@code
   * killAfter} fsyncs and up to 50 ms more, and returns the last operation each thread reported.
   */
  private static int[] runSyncWritersAndKill(
      ProcessBuilder child, Path report, int killAfter, SplittableRandom r, int round)
      throws Exception {
    Process p = child.redirectOutput(report.toFile()).start();
    try {
      long deadline = System.nanoTime() + 60_000_000_000L;
      while (p.isAlive()
          && System.nanoTime() < deadline
          && Files.readAllLines(report).size() < killAfter) {
        Thread.sleep(2);
      }
      Thread.sleep(r.nextInt(50));
    } finally {
      p.destroyForcibly();
      assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
    }
    int[] last = reported(Files.readAllLines(report)); // all it reported before it died
    assertThat(p.exitValue()).as("round %d: killed, not failed", round).isEqualTo(137);
    return last;
  }

  /**
   * Opens {@code store} and asserts that every operation of {@link CrashSyncWriters} up to {@code
   * last} is there, the one after it whole or absent, and the store consistent.
   */
  private static void assertSyncWritersKept(
      Path store, String prefix, long seed, int[] last, String what) throws IOException {
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      for (int t = 0; t < CrashSyncWriters.THREADS; t++) {
        long ino = ds.lookup(Datastore.ROOT, prefix + CrashSyncWriters.file(t)).ino();
        byte[][] want = new byte[CrashSyncWriters.SLOTS][];
        for (int i = 0; i <= last[t]; i++) {
          want[CrashSyncWriters.slot(seed, t, i)] = CrashSyncWriters.record(seed, t, i);
        }
        int inFlight = CrashSyncWriters.slot(seed, t, last[t] + 1);
        byte[] next = CrashSyncWriters.record(seed, t, last[t] + 1);
        for (int s = 0; s < CrashSyncWriters.SLOTS; s++) {
          byte[] got =
              TestStores.read(
                  ds,
                  ino,
                  CrashSyncWriters.base(t) + (long) s * CrashSyncWriters.RECORD,
                  CrashSyncWriters.RECORD);
          byte[] w = want[s] == null ? new byte[0] : want[s];
          got = Arrays.copyOf(got, Math.max(got.length, w.length));
          byte[] padded = Arrays.copyOf(w, got.length);
          boolean ok =
              Arrays.equals(got, padded)
                  || (s == inFlight && Arrays.equals(got, Arrays.copyOf(next, got.length)));
          assertThat(ok)
              .as(
                  "%s, thread %d, slot %d: the last fsynced record (%d operations reported)",
                  what, t, s, last[t] + 1)
              .isTrue();
        }
      }
      assertConsistent(ds);
    }
  }

  /** The last operation of each thread that {@link CrashSyncWriters} reported in {@code lines}. */
  private static int[] reported(List<String> lines) {
    int[] last = new int[CrashSyncWriters.THREADS];
    Arrays.fill(last, -1);
    for (String line : lines) {
      String[] w = line.split(" ");
      if (w.length == 3 && w[0].equals("synced")) {
        int t = Integer.parseInt(w[1]);
        last[t] = Math.max(last[t], Integer.parseInt(w[2]));
      }
    }
    return last;
  }

  @Test
  void aKillDuringReclaimLeaksNothingAndFreesNothingStillReferenced() throws Exception {
    SplittableRandom r = new SplittableRandom(43);
    int killedMidway = 0;
    // kill at once, or when the queue is down to this many decrements once reclaim is on the leaves
    // (the root, 2 nodes, the 192 nodes above the leaves, then the 12544 leaves big does not share
    // with keep, 2048 at a time)
    long[] killAtQueued = {1, 10_000, 3_000};
    for (int round = 0; round < killAtQueued.length; round++) {
      Path store = dir.resolve("reclaim" + round);
      byte[] keep;
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        long big = TestStores.create(ds, "big");
        for (int mib = 0; mib < 96; mib++) {
          TestStores.write(ds, big, (long) mib << 20, TestStores.randomBytes(r, 1 << 20));
        }
        long k =
            TestStores.create(ds, "keep"); // shares half of big's subtrees, plus changes of its own
        ds.copyRange(big, 0, k, 0, 48L << 20);
        TestStores.write(ds, k, 5_000_000, TestStores.randomBytes(r, 300_000));
        ds.createSnapshot("s", "keep");
        TestStores.write(ds, k, 40_000_000, TestStores.randomBytes(r, 100_000));
        ds.flush(k);
        keep = TestStores.read(ds, k, 0, 48 << 20);
      }
      Process child = start(CrashReclaimer.class, store.toString());
      try (BufferedReader out =
          new BufferedReader(
              new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
        assertThat(out.readLine()).isEqualTo("deleted");
        boolean onLeaves = round == 0;
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline
            && !out.ready()) { // the child prints again when its reclaim is done
          long queued = pendingRows(store);
          onLeaves |= queued > 1000;
          if (onLeaves && queued <= killAtQueued[round]) {
            break;
          }
        }
        child.destroyForcibly();
        assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();
      } finally {
        child.destroyForcibly();
      }
      assertThat(child.exitValue())
          .as("the child was killed, not stopped by an error")
          .isEqualTo(137);

      long queued = pendingRows(store);
      killedMidway += queued > 0 ? 1 : 0;
      System.out.printf("crash during reclaim: killed with %d decrements still queued%n", queued);
      SpaceUsage before;
      try (Datastore ro = Datastore.open(store, TestStores.config(4096).withReadOnly(true))) {
        assertThat(ro.fsck(null))
            .as("round %d: fsck of the killed store, %d decrements queued", round, queued)
            .isEmpty();
        before = ro.usage("");
      }
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        ds.reclaim();
        assertConsistent(ds);
        Recount recount = Recount.of(ds);
        assertThat(recount.wholeStore().storedBytes())
            .as("round %d: every stored block is referenced", round)
            .isEqualTo(recount.storedBytes());
        assertThat(ds.usage(""))
            .as("round %d: the figures seen before the reclaim", round)
            .isEqualTo(before);
        TestStores.assertSameBytes(
            TestStores.read(ds, ds.resolve("keep"), 0, keep.length),
            keep,
            "round " + round + ": keep");
        assertThat(Trees.sha256(ds, ds.resolve(".snapshots/s/keep"), 48 << 20)).isNotEmpty();
        assertThatThrownBy(() -> ds.resolve("big"))
            .isInstanceOf(java.nio.file.NoSuchFileException.class);
      }
    }
    assertThat(killedMidway).as("rounds killed with decrements still queued").isPositive();
  }

  /**
   * Rows of table pending, read with raw LMDB (beside a child's open, or before a dedupfs open can
   * reclaim them).
   */
  private static long pendingRows(Path store) {
    try (org.lmdbjava.Env<java.nio.ByteBuffer> env =
            org.lmdbjava.Env.create()
                .setMaxDbs(16)
                .setMapSize(Lmdb.DEFAULT_MAP_SIZE)
                .open(store.toFile(), org.lmdbjava.EnvFlags.MDB_RDONLY_ENV);
        org.lmdbjava.Txn<java.nio.ByteBuffer> txn = env.txnRead()) {
      return env.openDbi(txn, "pending".getBytes(StandardCharsets.US_ASCII), null, false)
          .stat(txn)
          .entries;
    }
  }

  /** Starts {@code main} of a test class in a child JVM with the store's JVM flags. */
  private static Process start(Class<?> main, String... args) throws IOException {
    return builder(main, args).start();
  }

  private static ProcessBuilder builder(Class<?> main, String... args) {
    String jvmFlags =
        Objects.requireNonNull(
            System.getProperty("lmdb.jvm.args"),
            "lmdb.jvm.args is not set: run this test through Maven, whose surefire passes it");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(Arrays.asList(jvmFlags.trim().split("\\s+")));
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), main.getName()));
    cmd.addAll(Arrays.asList(args));
    return new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
  }

  private record Reported(int lastFlushed, List<Integer> dirs) {}

  /** Runs a {@link CrashWriter} until it has reported {@code killAfter} lines, then kills it. */
  private Reported runAndKill(String name, long seed, int killAfter, int delayMs) throws Exception {
    String jvmFlags =
        Objects.requireNonNull(
            System.getProperty("lmdb.jvm.args"),
            "lmdb.jvm.args is not set: run this test through Maven, whose surefire passes it");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(Arrays.asList(jvmFlags.trim().split("\\s+")));
    cmd.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            CrashWriter.class.getName(),
            dir.toString(),
            name,
            Long.toString(seed)));
    Process child = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    int lastFlushed = -1;
    List<Integer> dirs = new ArrayList<>();
    try (BufferedReader out =
        new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      int lines = 0;
      for (String line; lines < killAfter && (line = out.readLine()) != null; lines++) {
        String[] words = line.split(" ");
        if (words[0].equals("flushed")) {
          lastFlushed = Integer.parseInt(words[1]);
        } else if (words[0].equals("mkdir")) {
          dirs.add(Integer.parseInt(words[1]));
        }
      }
      Thread.sleep(
          delayMs); // let it get into the middle of something; what it reports meanwhile goes
      // unchecked
      child.destroyForcibly();
      assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();
    } finally {
      child.destroyForcibly();
    }
    assertThat(child.exitValue())
        .as("the child was killed, not stopped by an error")
        .isEqualTo(137);
    return new Reported(lastFlushed, dirs);
  }
}
