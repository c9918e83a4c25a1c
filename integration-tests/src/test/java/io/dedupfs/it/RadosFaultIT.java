package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.engine.Hash;
import io.dedupfs.rados.RadosPool;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Faults of stores whose blocks are in a RADOS pool, on real mounts (issue 14, item 6), beside
 * RadosMountIT's kill -9 test:
 *
 * <ul>
 *   <li>two daemons (two stores on one pool) writing, overwriting and deleting files whose data is
 *       shared between them, two threads each, at once: after a remount both are fsck clean, a
 *       reconcile releases nothing, every file reads back equal to the test's model, and every
 *       object the pool gained is held by exactly the stores that count it (shared blocks once,
 *       with both holders); deleting everything brings the pool back to its count before;
 *   <li>the OSD stopped under a writer: shut down and started again within the mount's {@code
 *       pool_timeout} (about 10 s here, 120 s allowed) it is only a pause, the fsync that needed
 *       the pool returns once it is back; down for longer than the timeout (5 s) it makes that
 *       fsync and a read of uncached data fail with EIO, never wrong bytes, while a small fsync
 *       (the store's intent log) still succeeds and a file in the store's cache on the local disk
 *       (written before a remount) still reads back; once the OSD is started again the same mount
 *       goes on: new writes and fsync succeed, every byte written reads back, fsck and scrub are
 *       clean, reconcile releases nothing.
 * </ul>
 */
class RadosFaultIT extends RadosMounts {
  private static final int LEAF = 16 * 1024;

  /** The pool timeout of the mount under which the OSD stays down for longer. */
  private static final int POOL_TIMEOUT_S = 5;

  /**
   * The pool timeout of the mount under which the OSD restarts: a restart takes about 10 s on the
   * test cluster, and more than 60 s (the default timeout) on a loaded CI machine, where ceph-osd
   * was still replaying its log 30 s after it started; {@code scripts/ceph.sh start-osd} gives a
   * start that goes on logging 240 s, and TestCeph tries one that falls silent twice.
   */
  private static final int RESTART_TIMEOUT_S = 300;

  /** More than an fsync's intent log record holds (8 MiB): such an fsync commits to the pool. */
  private static final int BIG = 9 * 1024 * 1024 + 321;

  // ------------------------------------------------------------ two daemons on shared data

  @Test
  void twoDaemonsWritingAndDeletingSharedDataAtOnceLeaveExactlyTheCountedBlocks() throws Exception {
    SplittableRandom rnd = new SplittableRandom(System.nanoTime());
    List<byte[]> base = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      byte[] b = new byte[200_000 + rnd.nextInt(300_000)];
      rnd.nextBytes(b);
      base.add(b);
    }
    try (RadosPool probe = pool()) {
      Set<String> before = new HashSet<>(probe.objects());
      Mounted a = mount(create("a"), "a");
      Mounted b = mount(create("b"), "b");
      Map<Path, byte[]> model = new ConcurrentHashMap<>();
      ExecutorService pool = Executors.newFixedThreadPool(4);
      try {
        List<Future<?>> workers = new ArrayList<>();
        for (int w = 0; w < 4; w++) {
          Path dir = (w % 2 == 0 ? a : b).mountpoint();
          String prefix = "w" + w + "-";
          long seed = rnd.nextLong();
          workers.add(pool.submit(() -> work(dir, prefix, base, model, seed)));
        }
        for (Future<?> f : workers) {
          f.get(5, TimeUnit.MINUTES);
        }
      } finally {
        pool.shutdownNow();
      }
      // new daemons, nothing cached: every file comes from the pool
      a = remount(a, "a");
      b = remount(b, "b");
      assertFilesEqual(List.of(a, b), model); // the same mountpoints
      fsck(a);
      fsck(b);
      assertThat(reconcile(a.store())).as("A's reconcile").isZero();
      assertThat(reconcile(b.store())).as("B's reconcile").isZero();
      long countedA = scrub(a);
      long countedB = scrub(b);

      // every object the pool gained is held by the stores that count it, and only by them
      long holds = 0;
      long shared = 0;
      List<String> gained = new ArrayList<>(probe.objects());
      gained.removeAll(before);
      for (String oid : gained) {
        Hash h = Hash.parse(oid);
        List<String> holders = probe.holders(h);
        assertThat(holders).as("holders of %s", oid).hasSizeBetween(1, 2);
        assertThat(probe.count(h)).as("count of %s", oid).isEqualTo(holders.size());
        holds += holders.size();
        shared += holders.size() == 2 ? 1 : 0;
      }
      System.out.printf(
          "RadosFaultIT: %d files; A counts %d blocks, B %d; the pool gained %d objects,"
              + " %d of them held by both%n",
          model.size(), countedA, countedB, gained.size(), shared);
      assertThat(holds).as("references held = blocks A and B count").isEqualTo(countedA + countedB);
      assertThat(shared).as("blocks held by both stores").isPositive();

      for (Mounted m : List.of(a, b)) {
        try (var all = Files.list(m.mountpoint())) {
          for (Path p : (Iterable<Path>) all::iterator) {
            Files.delete(p);
          }
        }
        fsck(m);
      }
      assertThat(probe.objects()).as("objects after deleting everything").hasSameSizeAs(before);
    }
  }

  /**
   * One worker: 40 random operations on its own six names in {@code dir}: a copy of a base file, an
   * overwrite of leaf-aligned leaves with a base file's leaves (so that the two stores share
   * blocks), a delete; an fsync now and then. The model follows each operation that returned.
   */
  private static Void work(
      Path dir, String prefix, List<byte[]> base, Map<Path, byte[]> model, long seed)
      throws IOException {
    SplittableRandom r = new SplittableRandom(seed);
    for (int op = 0; op < 40; op++) {
      Path f = dir.resolve(prefix + r.nextInt(6));
      byte[] now = model.get(f);
      int kind = r.nextInt(10);
      if (kind < 4 || (now == null && kind < 8)) {
        byte[] src = base.get(r.nextInt(base.size()));
        Files.write(f, src);
        model.put(f, src.clone());
      } else if (kind < 8) {
        byte[] src = base.get(r.nextInt(base.size()));
        int from = r.nextInt(src.length / LEAF) * LEAF;
        int n = Math.min(src.length - from, (1 + r.nextInt(4)) * LEAF);
        int at = r.nextInt(now.length / LEAF + 1) * LEAF;
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
          ByteBuffer buf = ByteBuffer.wrap(src, from, n);
          while (buf.hasRemaining()) {
            ch.write(buf, at + buf.position() - from);
          }
          if (r.nextBoolean()) {
            ch.force(false);
          }
        }
        byte[] next = java.util.Arrays.copyOf(now, Math.max(now.length, at + n));
        System.arraycopy(src, from, next, at, n);
        model.put(f, next);
      } else {
        Files.deleteIfExists(f);
        model.remove(f);
      }
    }
    return null;
  }

  /** Each mount holds exactly the files of {@code expected}, each with its bytes. */
  private static void assertFilesEqual(List<Mounted> on, Map<Path, byte[]> expected)
      throws IOException {
    Set<Path> present = new HashSet<>();
    for (Mounted m : on) {
      try (var all = Files.list(m.mountpoint())) {
        all.forEach(present::add);
      }
    }
    assertThat(present)
        .as("files on the mounts")
        .containsExactlyInAnyOrderElementsOf(expected.keySet());
    for (var e : expected.entrySet()) {
      assertThat(Files.readAllBytes(e.getKey())).as("%s", e.getKey()).isEqualTo(e.getValue());
    }
  }

  // ------------------------------------------------------------ the OSD stopped under a writer

  @Test
  void anOsdStoppedUnderAWriterIsAPauseThenEioNeverWrongBytesAndTheMountGoesOn() throws Exception {
    SplittableRandom rnd = new SplittableRandom(System.nanoTime());
    Path store = create("a");
    Map<Path, byte[]> model = new TreeMap<>();
    ExecutorService threads = Executors.newCachedThreadPool();
    // no cache on the local disk: "old" is not there in step 2
    Mounted m = mount(store, "a", "-o", "pool_timeout=" + RESTART_TIMEOUT_S + ",pool_cache=0");
    Path mnt = m.mountpoint();
    try {
      writeAndSync(mnt.resolve("old"), bytes(rnd, 2 * 1024 * 1024 + 77), model);

      // 1. the OSD shut down and started again within the timeout: a pause, nothing else
      byte[] shortData = bytes(rnd, BIG);
      Future<Throwable> shortWriter;
      long stopping = System.nanoTime();
      ceph.stopOsd();
      long stopped = System.nanoTime();
      try {
        shortWriter = ddWithFsync(threads, shortData, mnt.resolve("short"));
        Thread.sleep(2000);
        assertThat(shortWriter.isDone()).as("an fsync that needs the stopped OSD").isFalse();
      } finally {
        ceph.startOsd();
      }
      long started = System.nanoTime();
      Throwable shortFailure = shortWriter.get(RESTART_TIMEOUT_S + 60, TimeUnit.SECONDS);
      long returned = System.nanoTime();
      // one line, so that the summary of a failed run says what happened
      assertThat(shortFailure)
          .as(
              "the fsync under a restart of the OSD (stop %.1f s, down %.1f s, fsync returned"
                  + " %.1f s after the restart); the daemon's warnings: %s",
              (stopped - stopping) / 1e9,
              (started - stopped) / 1e9,
              (returned - started) / 1e9,
              warnings(m))
          .isNull();
      model.put(mnt.resolve("short"), shortData);

      // a short timeout now, and the cache on the local disk: "cached", written now, is kept
      // there when its commit stores it; "old" is read from the pool below. The second remount
      // leaves nothing in the daemon's memory.
      m = remount(m, "a", "-o", "pool_timeout=" + POOL_TIMEOUT_S);
      writeAndSync(mnt.resolve("cached"), bytes(rnd, 2 * 1024 * 1024 + 99), model);
      m = remount(m, "a", "-o", "pool_timeout=" + POOL_TIMEOUT_S);
      assertThat(m.mountpoint()).isEqualTo(mnt);

      // 2. the OSD shut down for longer than the timeout: EIO to what needs the pool
      byte[] longData = bytes(rnd, BIG);
      byte[] small = bytes(rnd, 64 * 1024 + 5);
      ceph.stopOsd();
      try {
        Future<Throwable> longWriter = ddWithFsync(threads, longData, mnt.resolve("long"));
        Future<Throwable> reader =
            threads.submit(() -> failure(() -> Files.readAllBytes(mnt.resolve("old"))));
        assertThat(Files.readAllBytes(mnt.resolve("cached")))
            .as("a file in the cache on the local disk, the OSD down")
            .isEqualTo(model.get(mnt.resolve("cached")));
        assertThat(longWriter.get(2, TimeUnit.MINUTES))
            .as("fsync of 9 MiB (a commit to the pool) with the OSD down")
            .isInstanceOf(IOException.class)
            .hasMessageContaining("Input/output error");
        assertThat(reader.get(2, TimeUnit.MINUTES))
            .as("a read of data not cached with the OSD down")
            .isInstanceOf(IOException.class)
            .hasMessageContaining("Input/output error");
        // an fsync the intent log holds needs no pool
        writeAndSync(mnt.resolve("small"), small, model);
      } finally {
        ceph.startOsd();
      }
      assertThat(m.isAlive()).as("the daemon after the outage").isTrue();
      assertThat(m.output())
          .contains("pool rados:blocks did not answer in " + POOL_TIMEOUT_S + " s");

      // the mount answers again once the OSD is back (librados may take a moment to reach it)
      long back = System.nanoTime();
      int failedReads = 0;
      byte[] oldAgain = null;
      while (oldAgain == null) {
        try {
          oldAgain = Files.readAllBytes(mnt.resolve("old"));
        } catch (IOException e) {
          failedReads++;
          assertThat(System.nanoTime() - back)
              .as("reads still fail a minute after the OSD is back: %s", e)
              .isLessThan(TimeUnit.MINUTES.toNanos(1));
        }
      }
      System.out.printf(
          "RadosFaultIT: reads answered %.1f s after the OSD was back (%d failed before)%n",
          (System.nanoTime() - back) / 1e9, failedReads);
      assertThat(oldAgain).isEqualTo(model.get(mnt.resolve("old")));

      // 3. the same mount goes on: the data of the failed fsync stayed buffered, and is durable
      // once an fsync succeeds
      assertThat(Files.readAllBytes(mnt.resolve("long"))).isEqualTo(longData);
      try (FileChannel ch = FileChannel.open(mnt.resolve("long"), StandardOpenOption.WRITE)) {
        ch.force(true);
      }
      model.put(mnt.resolve("long"), longData);
      writeAndSync(mnt.resolve("after"), bytes(rnd, BIG), model);
      for (var e : model.entrySet()) {
        assertThat(Files.readAllBytes(e.getKey())).as("%s", e.getKey()).isEqualTo(e.getValue());
      }
    } finally {
      threads.shutdownNow();
    }
    fsck(m);
    scrub(m);
    assertThat(reconcile(store)).as("references taken but not recorded").isZero();
    m = remount(m, "a");
    for (var e : model.entrySet()) {
      assertThat(Files.readAllBytes(e.getKey()))
          .as("%s after a remount", e.getKey())
          .isEqualTo(e.getValue());
    }
  }

  /** The daemon's WARNING and SEVERE lines, joined on one line. */
  private static String warnings(Mounted m) {
    return m.output()
        .lines()
        .filter(l -> l.contains(" WARNING ") || l.contains(" SEVERE "))
        .collect(java.util.stream.Collectors.joining(" | "));
  }

  private static byte[] bytes(SplittableRandom rnd, int n) {
    byte[] b = new byte[n];
    rnd.nextBytes(b);
    return b;
  }

  /**
   * Writes {@code data} to {@code target} and fsyncs it, in a dd process; its future gives dd's
   * failure, or null. Not a thread of this JVM: another test running beside this one may start a
   * process, which inherits this JVM's descriptors and closes them, and each close of a descriptor
   * of the mount is a FLUSH, an fsync. One arriving in the middle of the write makes the intent log
   * hold the first part of it, and then the final fsync logs the rest, needing no pool (a CI run
   * failed so); and one arriving once the OSD is down waits for it (a CI run hung 493 s so).
   */
  private Future<Throwable> ddWithFsync(ExecutorService threads, byte[] data, Path target)
      throws IOException {
    Path source = Files.createTempFile(tmp, "dd", ".data");
    Files.write(source, data);
    Process dd =
        new ProcessBuilder(
                "dd", "if=" + source, "of=" + target, "bs=1M", "conv=fsync", "status=none")
            .redirectErrorStream(true)
            .start();
    return threads.submit(
        () -> {
          String out = new String(dd.getInputStream().readAllBytes());
          int rc = dd.waitFor();
          return rc == 0 ? null : new IOException("dd exited " + rc + ": " + out.strip());
        });
  }

  /** Writes {@code data} to {@code f} and fsyncs it; then notes it in {@code model}. */
  private static void writeAndSync(Path f, byte[] data, Map<Path, byte[]> model)
      throws IOException {
    try (FileChannel ch =
        FileChannel.open(
            f,
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      ByteBuffer buf = ByteBuffer.wrap(data);
      while (buf.hasRemaining()) {
        ch.write(buf);
      }
      ch.force(true);
    }
    model.put(f, data);
  }

  private interface Action {
    Object run() throws Exception;
  }

  /** What {@code action} threw, or null when it returned. */
  private static Throwable failure(Action action) {
    try {
      action.run();
      return null;
    } catch (Exception e) {
      return e;
    }
  }
}
