package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Commits that run while their file is written and read ("freeze and layer"): a commit freezes the
 * overlay under the file's lock, then hashes and stores it without the lock while writers change
 * copies of what it froze and readers read it; a commit that fails (a full disk) gives everything
 * back to the buffer. Here commits are held between freezing and storing (a test hook) for as long
 * as a test wants, stored or failed on purpose, while files are changed, read, flushed and copied,
 * all checked against models: what is read (the live contents) and what LMDB holds (the committed
 * contents) separately. Files are fsynced too, while their commit is held or not, and the store is
 * abandoned as a crash would leave it: after the reopen every file holds what its last fsync or
 * commit made durable, whichever came later (the intent log's records replayed over the commits).
 *
 * <p>A failure names its seed; replay one with {@code -Ddedupfs.bgseed=N -Ddedupfs.leaf=BYTES}.
 */
class BackgroundCommitTest {
  private static final int FILES = 3;
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  // ------------------------------------------------------------------ a hook that holds commits

  /**
   * Holds the next commit of one file between its freeze and its transaction, until told to store
   * or fail it.
   */
  static final class Gate implements WriteBack.CommitHook {
    private volatile long holdIno = -1;
    private volatile long heldIno = -1;
    private volatile boolean fail;
    private volatile boolean lastStored;
    private final Semaphore arrived = new Semaphore(0);
    private final Semaphore go = new Semaphore(0);
    private final Semaphore ended = new Semaphore(0);

    @Override
    public void frozen(long ino) throws IOException {
      if (ino == holdIno) {
        holdIno = -1;
        heldIno = ino;
        arrived.release();
        go.acquireUninterruptibly();
        if (fail) {
          throw new StoreFullException("injected by the test: no space left", null);
        }
      }
    }

    @Override
    public void ended(long ino, boolean stored) {
      if (ino == heldIno) {
        heldIno = -1;
        lastStored = stored;
        ended.release();
      }
    }

    /**
     * Starts a commit of {@code ino} on a thread of its own, as a background commit, and returns
     * once it has frozen the overlay and waits.
     */
    void hold(Datastore ds, long ino) throws Exception {
      holdIno = ino;
      Thread committer =
          new Thread(
              () -> {
                try {
                  ds.flush(ino);
                } catch (IOException | RuntimeException e) {
                  // as a background commit: its data stays buffered
                }
              },
              "test-committer");
      committer.setDaemon(true);
      committer.start();
      if (!arrived.tryAcquire(60, TimeUnit.SECONDS)) {
        throw new AssertionError(
            "the background commit of inode " + ino + " did not freeze within 60 s");
      }
    }

    /**
     * Lets the held commit go on, to be stored or to fail; returns once it has ended, with whether
     * it stored.
     */
    boolean release(boolean failIt) throws Exception {
      fail = failIt;
      go.release();
      if (!ended.tryAcquire(60, TimeUnit.SECONDS)) {
        throw new AssertionError("the held commit did not end within 60 s of its release");
      }
      return lastStored;
    }
  }

  // ------------------------------------------------------------------ the model test

  @TestFactory
  Stream<DynamicTest> heldCommitsAgainstModels() {
    List<DynamicTest> tests = new ArrayList<>();
    String replay = System.getProperty("dedupfs.bgseed");
    if (replay != null) {
      tests.add(
          run(
              Long.parseLong(replay),
              Integer.getInteger("dedupfs.leaf", 4096),
              Integer.getInteger("dedupfs.ops", 1500)));
      return tests.stream();
    }
    boolean soak = TestStores.longRuns();
    for (int s = 0; s < (soak ? 30 : 4); s++) {
      tests.add(run(5000 + s, 4096, soak ? 6000 : 1500));
    }
    tests.add(run(6000, DatastoreConfig.DEFAULT_LEAF_SIZE, soak ? 4000 : 1000));
    return tests.stream();
  }

  private DynamicTest run(long seed, int leaf, int ops) {
    return DynamicTest.dynamicTest(
        "seed " + seed + ", leaf " + leaf + ", " + ops + " ops",
        () -> {
          System.out.println(
              "BackgroundCommitTest: seed " + seed + ", leaf " + leaf + ", " + ops + " ops");
          new HeldRun(seed, leaf, Files.createTempDirectory(tmp, "held")).run(ops);
        });
  }

  private static final class HeldRun {
    private final long seed;
    private final int leaf;
    private final Path dir;
    private final SplittableRandom r;
    private final long[] inos = new long[FILES];

    /** What reads must return. */
    private final FileModel[] live = new FileModel[FILES];

    /** What LMDB holds (the last durable commit). */
    private final FileModel[] committed = new FileModel[FILES];

    /** Changed since the last freeze (so a commit will freeze something). */
    private final boolean[] dirty = new boolean[FILES];

    /** What a crash must leave: the contents at the last fsync or commit, whichever came later. */
    private final FileModel[] durable = new FileModel[FILES];

    /** The held commit's file was fsynced after it froze. */
    private boolean fsyncedSinceFreeze;

    private final Deque<String> recent = new ArrayDeque<>();
    private Datastore ds;
    private Gate gate;

    /** The file whose commit is held, -1 when none; and the contents that commit froze. */
    private int held = -1;

    private FileModel frozen;

    HeldRun(long seed, int leaf, Path dir) {
      this.seed = seed;
      this.leaf = leaf;
      this.dir = dir;
      this.r = new SplittableRandom(seed);
    }

    void run(int ops) throws Exception {
      int step = -1;
      try {
        open();
        for (int f = 0; f < FILES; f++) {
          inos[f] = TestStores.create(ds, "f" + f);
          live[f] = new FileModel();
          committed[f] = new FileModel();
          durable[f] = new FileModel();
        }
        for (step = 0; step < ops; step++) {
          step();
        }
        if (held >= 0) {
          release(false);
        }
        log("close and reopen");
        ds.close();
        open();
        for (int f = 0; f < FILES; f++) {
          verifyLive(f);
          verifyCommitted(f, live[f]);
        }
        assertConsistent(ds);
        ds.close();
        ds = null;
      } catch (Throwable t) {
        AssertionError failure =
            new AssertionError(
                "held-commit model test failed: seed "
                    + seed
                    + ", leaf "
                    + leaf
                    + ", at operation "
                    + step
                    + "; replay with -Ddedupfs.bgseed="
                    + seed
                    + " -Ddedupfs.leaf="
                    + leaf
                    + "\nlast operations (newest last):\n  "
                    + String.join("\n  ", recent),
                t);
        if (held >= 0) {
          gate.go.release(); // never leave a committer waiting
        }
        if (ds != null) {
          try {
            ds.close();
          } catch (Throwable closing) {
            failure.addSuppressed(closing);
          }
        }
        throw failure;
      }
    }

    private void open() throws IOException {
      // A dirty limit far above what the test buffers: commits happen only where the test says.
      ds = Datastore.open(dir, TestStores.config(leaf).withDirtyLimit(4L << 30));
      ds.writeBack.foldInBackground = false; // a full log makes fsyncs commit, where the test is
      gate = new Gate();
      ds.writeBack.commitHook = gate;
    }

    private void log(String op) {
      recent.addLast(op);
      if (recent.size() > 30) {
        recent.removeFirst();
      }
    }

    private void step() throws Exception {
      int f = r.nextInt(FILES);
      long ino = inos[f];
      FileModel m = live[f];
      boolean isHeld = held == f;
      int k = r.nextInt(1000);
      if (k < 330) {
        long off = pickOffset(m.size());
        byte[] data = pickData();
        log("write f" + f + " @" + off + " +" + data.length + (isHeld ? " (its commit held)" : ""));
        TestStores.write(ds, ino, off, data);
        m.write(off, data);
        dirty[f] = true;
      } else if (k < 460) {
        long off = r.nextInt(3) == 0 ? pickDataOffset(m) : pickOffset(m.size());
        int len = pickLength();
        log("read f" + f + " @" + off + " +" + len);
        assertRead(f, off, len);
      } else if (k < 520) {
        long off = pickOffset(m.size());
        long len = pickLength();
        log("punch f" + f + " @" + off + " +" + len);
        ds.punchHole(ino, off, len);
        m.zero(off, off + len);
        dirty[f] = true;
      } else if (k < 550) {
        long off = pickOffset(m.size());
        long len = pickLength();
        boolean keep = r.nextBoolean();
        log("zeroRange f" + f + " @" + off + " +" + len + (keep ? " keep size" : ""));
        ds.zeroRange(ino, off, len, keep);
        m.zeroRange(off, len, keep);
        dirty[f] = true;
      } else if (k < 590) {
        long off = r.nextInt(4) == 0 ? pickDataOffset(m) : pickOffset(m.size());
        boolean data = r.nextBoolean();
        log((data ? "seekData" : "seekHole") + " f" + f + " @" + off);
        long got = data ? TestStores.seekData(ds, ino, off) : TestStores.seekHole(ds, ino, off);
        long want = data ? m.seekData(off, leaf) : m.seekHole(off, leaf);
        assertThat(got)
            .as("%s f%d from %d", data ? "SEEK_DATA" : "SEEK_HOLE", f, off)
            .isEqualTo(want);
      } else if (k < 720) {
        if (held < 0 && dirty[f]) {
          log("hold a background commit of f" + f);
          frozen = m.copy();
          gate.hold(ds, ino);
          held = f;
          fsyncedSinceFreeze = false;
          dirty[f] = false;
          verifyLive(f); // readers see the frozen pieces
        } else if (held >= 0) {
          release(r.nextInt(3) == 0);
        }
      } else if (k < 780) {
        if (isHeld) {
          flushWhileHeld(f);
        } else {
          log("flush f" + f);
          ds.flush(ino);
          committed(f, m.copy());
          dirty[f] = false;
        }
      } else if (k < 810) {
        if (!isHeld) {
          long size = pickOffset(m.size()) + (r.nextBoolean() ? 0 : r.nextInt(leaf));
          log("truncate f" + f + " to " + size + " (commits)");
          ds.setattr(ino, SetAttributes.size(size));
          m.truncate(size);
          committed(f, m.copy());
          dirty[f] = false;
        }
      } else if (k < 850) {
        int d = (f + 1 + r.nextInt(FILES - 1)) % FILES;
        if (f != held && d != held) {
          long so = pickOffset(m.size());
          long dOff = r.nextBoolean() ? so : pickOffset(live[d].size());
          if (r.nextBoolean()) {
            so = so / leaf * leaf;
            dOff = dOff / leaf * leaf;
          }
          long len = r.nextInt(4) == 0 ? Long.MAX_VALUE / 4 : r.nextInt(1 << 20) + 1;
          long n = Math.min(len, Math.max(0, m.size() - so));
          log(
              "copy f"
                  + f
                  + " @"
                  + so
                  + " to f"
                  + d
                  + " @"
                  + dOff
                  + " +"
                  + len
                  + " (commits both)");
          assertThat(ds.copyRange(ino, so, inos[d], dOff, len)).isEqualTo(n);
          live[d].copyRange(m, so, dOff, len);
          if (n > 0) {
            committed(f, m.copy());
            committed(d, live[d].copy());
            dirty[f] = false;
            dirty[d] = false;
          }
        }
      } else if (k < 860) {
        if (held < 0) {
          log("reopen");
          ds.close();
          for (int i = 0; i < FILES; i++) {
            committed(i, live[i].copy());
            dirty[i] = false;
          }
          open();
        }
      } else if (k < 910) {
        if (isHeld) {
          fsyncWhileHeld(f);
        } else {
          log("fsync f" + f);
          ds.fsync(ino);
          durable[f] = m.copy();
          if (!committedIs(f, committed[f])) {
            log("  it committed instead (the log could not take it)");
            committed(f, m.copy());
            verifyCommitted(f, committed[f]);
            dirty[f] = false;
          }
        }
      } else if (k < 925) {
        if (held < 0) {
          crash();
        }
      } else {
        if (!isHeld) {
          log("check what f" + f + " has committed");
          verifyCommitted(f, committed[f]);
        }
      }
    }

    /**
     * Lets the held commit end, stored or failed; then the committed contents are what it froze, or
     * as before.
     */
    private void release(boolean fail) throws Exception {
      release(fail, true);
    }

    /**
     * As above; {@code check}: whether the contents are checked (nothing else commits meanwhile).
     */
    private void release(boolean fail, boolean check) throws Exception {
      int f = held;
      log("release the held commit of f" + f + (fail ? " to fail" : " to be stored"));
      boolean stored = gate.release(fail);
      held = -1;
      assertThat(stored).as("the held commit stored its changes").isEqualTo(!fail);
      if (stored) {
        committed[f] = frozen;
        if (!fsyncedSinceFreeze) {
          durable[f] = frozen; // else the log's records of the fsync go on from it
        }
      } else {
        dirty[f] = true; // its changes are buffered again
      }
      if (check) {
        verifyCommitted(f, committed[f]);
        verifyLive(f);
      }
    }

    /** What LMDB holds for f is {@code m}, made durable by a commit. */
    private void committed(int f, FileModel m) {
      committed[f] = m;
      durable[f] = m;
    }

    /**
     * An fsync (another thread) while the file's commit is held: it logs what the commit froze and
     * what came since, and returns at once; or, when the log cannot take it (a record too long, a
     * full ring), it commits instead and so waits for the held commit, which is then let go.
     */
    private void fsyncWhileHeld(int f) throws Exception {
      log("fsync f" + f + " on another thread while its commit is held");
      FileModel before = live[f].copy();
      ExecutorService t = Executors.newSingleThreadExecutor();
      try {
        Future<?> fsync =
            t.submit(
                (Callable<Void>)
                    () -> {
                      ds.fsync(inos[f]);
                      return null;
                    });
        try {
          fsync.get(2, TimeUnit.SECONDS);
          durable[f] = before;
          fsyncedSinceFreeze = true;
        } catch (java.util.concurrent.TimeoutException e) {
          log("  it has not returned: it commits instead, after the held commit (or is slow)");
          release(false, false);
          fsync.get(60, TimeUnit.SECONDS);
          durable[f] = before;
          if (!committedIs(f, committed[f])) { // it committed
            committed(f, before);
            dirty[f] = false;
          }
          verifyCommitted(f, committed[f]);
          verifyLive(f);
        }
      } finally {
        t.shutdownNow();
      }
    }

    /**
     * The process dies: nothing buffered is committed. Every file must come back as its last fsync
     * or commit left it.
     */
    private void crash() throws Exception {
      log("crash and reopen");
      ds.abandon();
      ds = null;
      open();
      for (int i = 0; i < FILES; i++) {
        live[i] = durable[i].copy();
        verifyLive(i);
        committed(i, live[i].copy()); // the open commits what it replayed
        verifyCommitted(i, committed[i]);
        dirty[i] = false;
      }
    }

    /**
     * A flush (another thread) while the file's commit is held: it waits for it, and then stores
     * everything.
     */
    private void flushWhileHeld(int f) throws Exception {
      boolean fail = r.nextInt(3) == 0;
      log(
          "flush f"
              + f
              + " on another thread while its commit is held (which will "
              + (fail ? "fail)" : "be stored)"));
      ExecutorService t = Executors.newSingleThreadExecutor();
      try {
        Future<?> flush =
            t.submit(
                (Callable<Void>)
                    () -> {
                      ds.flush(inos[f]);
                      return null;
                    });
        Thread.sleep(20);
        assertThat(flush.isDone()).as("a flush waits for the commit in flight").isFalse();
        if (r.nextBoolean()) { // writes go on meanwhile, and the flush may or may not take them
          long off = pickOffset(live[f].size());
          byte[] data = pickData();
          log("  write f" + f + " @" + off + " +" + data.length + " while the flush waits");
          TestStores.write(ds, inos[f], off, data);
          live[f].write(off, data);
        }
        FileModel before = live[f].copy();
        assertThat(gate.release(fail)).isEqualTo(!fail);
        held = -1;
        flush.get(60, TimeUnit.SECONDS);
        // Everything written before the flush was called is durable; so is what came during the
        // wait
        // (the flush's own commit froze after the held one ended, and the test wrote nothing
        // since).
        committed(f, before);
        dirty[f] = false;
        verifyCommitted(f, committed[f]);
      } finally {
        t.shutdownNow();
      }
    }

    private void verifyLive(int f) throws IOException {
      FileModel m = live[f];
      assertThat(ds.getattr(inos[f]).size()).as("size of f%d", f).isEqualTo(m.size());
      for (long page : m.dataPageOffsets()) {
        assertRead(f, page, FileModel.PAGE);
      }
      long off = 0;
      while (off < m.size()) {
        long d = TestStores.seekData(ds, inos[f], off);
        assertThat(d).as("SEEK_DATA f%d from %d", f, off).isEqualTo(m.seekData(off, leaf));
        if (d < 0) {
          break;
        }
        long h = TestStores.seekHole(ds, inos[f], d);
        assertThat(h).as("SEEK_HOLE f%d from %d", f, d).isEqualTo(m.seekHole(d, leaf));
        off = h;
      }
    }

    /**
     * What LMDB holds for f (its inode's size and tree, read straight from the store) equals {@code
     * want}.
     */
    private void verifyCommitted(int f, FileModel want) throws IOException {
      Lmdb db = ds.db;
      db.read(
          txn -> {
            Inode i = new Namespace(db).inode(txn, inos[f]);
            assertThat(i.size()).as("committed size of f%d", f).isEqualTo(want.size());
            FileTree t =
                new FileTree(new Geometry(leaf), ds.blocks, i.root(), i.height(), i.size());
            for (long page : want.dataPageOffsets()) {
              ByteBuffer b = ByteBuffer.allocate(FileModel.PAGE);
              t.read(txn, page, b);
              byte[] got = Arrays.copyOf(b.array(), b.position());
              if (!Arrays.equals(got, want.read(page, FileModel.PAGE))) {
                throw new AssertionError("committed f" + f + " differs in the page at " + page);
              }
            }
            long off = 0;
            while (off < want.size()) {
              long d = t.seek(txn, off, true);
              assertThat(d)
                  .as("committed SEEK_DATA f%d from %d", f, off)
                  .isEqualTo(want.seekData(off, leaf));
              if (d < 0) {
                break;
              }
              off = t.seek(txn, d, false);
              assertThat(off)
                  .as("committed SEEK_HOLE f%d from %d", f, d)
                  .isEqualTo(want.seekHole(d, leaf));
            }
            return null;
          });
    }

    /** Whether what LMDB holds for f equals {@code want}. */
    private boolean committedIs(int f, FileModel want) throws IOException {
      try {
        verifyCommitted(f, want);
        return true;
      } catch (AssertionError e) {
        return false;
      }
    }

    private void assertRead(int f, long off, int len) throws IOException {
      byte[] got = TestStores.read(ds, inos[f], off, len);
      byte[] want = live[f].read(off, len);
      if (!Arrays.equals(got, want)) {
        int at = Arrays.mismatch(got, want);
        throw new AssertionError(
            "f"
                + f
                + " read @"
                + off
                + " +"
                + len
                + ": "
                + got.length
                + " bytes, expected "
                + want.length
                + "; first difference at file offset "
                + (off + at));
      }
    }

    private long pickOffset(long size) {
      int k = r.nextInt(100);
      if (k < 55) {
        return r.nextLong(2L << 20);
      }
      if (k < 80) {
        return Math.max(0, size - 65536 + r.nextLong(131072));
      }
      if (k < 88) {
        return r.nextLong(
            1L << 32); // far away: taller trees, and then shorter ones after truncates
      }
      long span = (long) leaf << Geometry.FANOUT_SHIFT;
      return Math.max(0, span * r.nextInt(1, 4) + r.nextInt(-2 * leaf, 2 * leaf));
    }

    private long pickDataOffset(FileModel m) {
      List<Long> pages = m.dataPageOffsets();
      return pages.isEmpty() ? 0 : pages.get(r.nextInt(pages.size())) + r.nextInt(FileModel.PAGE);
    }

    private int pickLength() {
      int k = r.nextInt(100);
      if (k < 45) {
        return r.nextInt(3 * leaf) + 1;
      }
      if (k < 65) {
        return leaf * r.nextInt(1, 5);
      }
      if (k < 85) {
        return r.nextInt(512) + 1;
      }
      return r.nextInt(200 * 1024) + 1;
    }

    private byte[] pickData() {
      int len = r.nextInt(25) == 0 ? r.nextInt(256 * 1024, 1 << 20) : pickLength();
      int k = r.nextInt(10);
      if (k < 7) {
        return TestStores.randomBytes(r, len);
      }
      if (k < 8) {
        return new byte[len];
      }
      byte[] sparse = new byte[len];
      sparse[r.nextInt(len)] = (byte) (1 + r.nextInt(255));
      return sparse;
    }
  }

  // ------------------------------------------------------------------ fsync and a commit in flight

  @Test
  void aFlushWaitsForTheCommitInFlightAndWritersDoNot() throws Exception {
    try (Datastore ds =
        Datastore.open(tmp.resolve("s"), TestStores.config(4096).withDirtyLimit(4L << 30))) {
      Gate gate = new Gate();
      ds.writeBack.commitHook = gate;
      long f = TestStores.create(ds, "f");
      byte[] a = TestStores.randomBytes(new SplittableRandom(1), 3 * MIB);
      TestStores.write(ds, f, 0, a);
      gate.hold(ds, f);
      assertThat(ds.writeBack.bufferedBytes())
          .as("frozen bytes still count as buffered")
          .isGreaterThanOrEqualTo(3L * MIB);
      ExecutorService t = Executors.newSingleThreadExecutor();
      try {
        Future<?> flush =
            t.submit(
                (Callable<Void>)
                    () -> {
                      ds.flush(f);
                      return null;
                    });
        byte[] b = TestStores.randomBytes(new SplittableRandom(2), 100_000);
        long start = System.nanoTime();
        TestStores.write(ds, f, 12345, b); // over frozen leaves: copies
        TestStores.write(ds, f, 5L * MIB, b); // beyond them
        assertThat(System.nanoTime() - start)
            .as("writes do not wait for the commit")
            .isLessThan(TimeUnit.SECONDS.toNanos(20));
        byte[] want = Arrays.copyOf(a, 5 * MIB + b.length);
        System.arraycopy(b, 0, want, 12345, b.length);
        System.arraycopy(b, 0, want, 5 * MIB, b.length);
        TestStores.assertSameBytes(
            TestStores.read(ds, f, 0, want.length), want, "read while the commit is held");
        Thread.sleep(100);
        assertThat(flush.isDone()).as("the flush waits for the commit in flight").isFalse();
        assertThat(TestStores.root(ds, f).isZero()).as("nothing is committed yet").isTrue();
        assertThat(gate.release(false)).isTrue();
        flush.get(60, TimeUnit.SECONDS);
        assertThat(ds.writeBack.bufferedBytes()).isZero();
        TestStores.assertSameBytes(TestStores.read(ds, f, 0, want.length), want, "after the flush");
      } finally {
        t.shutdownNow();
      }
      assertConsistent(ds);
    }
  }

  // ------------------------------------------------------------------ many threads, delays and
  // failures

  /**
   * Writers (each on its own file, and two on one file in separate regions) with their models,
   * readers and flushers, while every commit is delayed by a random pause and one in five fails as
   * on a full disk: whatever a writer was told was written is read back, nothing is lost, and once
   * failures stop everything commits and the store is consistent, also after a reopen.
   */
  @Test
  void writersReadersAndFlushersWhileCommitsAreSlowAndSomeFail() throws Exception {
    long seed = Long.getLong("dedupfs.bgseed", System.nanoTime() % 100_000);
    System.out.println(
        "BackgroundCommitTest.writersReadersAndFlushersWhileCommitsAreSlowAndSomeFail: seed "
            + seed
            + " (replay with -Ddedupfs.bgseed="
            + seed
            + "; thread timing still varies)");
    int writers = 4;
    int region = 2 * MIB;
    int iterations = TestStores.longRuns() ? 3000 : 400;
    Path store = tmp.resolve("stress");
    AtomicBoolean failing = new AtomicBoolean(true);
    AtomicInteger failed = new AtomicInteger();
    AtomicInteger stored = new AtomicInteger();
    SplittableRandom hookRandom = new SplittableRandom(seed);
    WriteBack.CommitHook hook =
        new WriteBack.CommitHook() {
          @Override
          public void frozen(long ino) throws IOException {
            int k;
            synchronized (hookRandom) {
              k = hookRandom.nextInt(100);
            }
            try {
              Thread.sleep(k % 7);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
            if (failing.get() && k < 20) {
              failed.incrementAndGet();
              throw new StoreFullException("injected by the test: no space left", null);
            }
          }

          @Override
          public void ended(long ino, boolean ok) {
            if (ok) {
              stored.incrementAndGet();
            }
          }
        };
    long[] inos = new long[writers];
    byte[][] models = new byte[writers][region];
    try (Datastore ds = Datastore.open(store, TestStores.config(4096).withDirtyLimit(2 * MIB))) {
      ds.writeBack.commitHook = hook;
      for (int w = 0; w < writers; w++) {
        inos[w] = w == 3 ? inos[2] : TestStores.create(ds, "f" + w); // writers 2 and 3 share a file
      }
      AtomicBoolean running = new AtomicBoolean(true);
      ExecutorService pool = Executors.newFixedThreadPool(writers + 3);
      List<Future<?>> ws = new ArrayList<>();
      for (int w = 0; w < writers; w++) {
        int me = w;
        ws.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      SplittableRandom r = new SplittableRandom(seed * 31 + me);
                      long base = me == 3 ? region : 0;
                      for (int i = 0; i < iterations; i++) {
                        int at = r.nextInt(region - 70_000);
                        byte[] b = TestStores.randomBytes(r, r.nextInt(1, 70_000));
                        try {
                          TestStores.write(ds, inos[me], base + at, b);
                          System.arraycopy(b, 0, models[me], at, b.length);
                        } catch (StoreFullException refused) {
                          // refused before it changed anything: the model stays as it is
                        }
                        if (r.nextInt(10) == 0) {
                          byte[] got =
                              Arrays.copyOf(TestStores.read(ds, inos[me], base, region), region);
                          TestStores.assertSameBytes(got, models[me], "region of writer " + me);
                        }
                      }
                      return null;
                    }));
      }
      List<Future<?>> others = new ArrayList<>();
      others.add(
          pool.submit(
              (Callable<Void>)
                  () -> { // a reader of everything, all the time
                    SplittableRandom r = new SplittableRandom(seed + 7);
                    while (running.get()) {
                      TestStores.read(
                          ds,
                          inos[r.nextInt(writers)],
                          r.nextLong(3L * region),
                          r.nextInt(1, 300_000));
                    }
                    return null;
                  }));
      others.add(
          pool.submit(
              (Callable<Void>)
                  () -> { // flushes that may fail
                    SplittableRandom r = new SplittableRandom(seed + 8);
                    while (running.get()) {
                      try {
                        ds.flush(inos[r.nextInt(writers)]);
                      } catch (StoreFullException e) {
                        // the data stays buffered
                      }
                      Thread.sleep(r.nextInt(5));
                    }
                    return null;
                  }));
      for (Future<?> f : ws) {
        f.get(5, TimeUnit.MINUTES);
      }
      running.set(false);
      for (Future<?> f : others) {
        f.get(1, TimeUnit.MINUTES);
      }
      pool.shutdown();
      failing.set(false);
      ds.sync();
      assertThat(ds.writeBack.bufferedBytes()).isZero();
      System.out.println(
          "  commits stored " + stored.get() + ", failed on purpose " + failed.get());
      assertThat(failed.get()).as("some commits failed").isPositive();
      for (int w = 0; w < writers; w++) {
        long base = w == 3 ? region : 0;
        TestStores.assertSameBytes(
            Arrays.copyOf(TestStores.read(ds, inos[w], base, region), region),
            models[w],
            "writer " + w);
      }
      assertConsistent(ds);
    }
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      for (int w = 0; w < writers; w++) {
        long base = w == 3 ? region : 0;
        TestStores.assertSameBytes(
            Arrays.copyOf(TestStores.read(ds, inos[w], base, region), region),
            models[w],
            "writer " + w + " after a reopen");
      }
      assertConsistent(ds);
    }
  }

  // ------------------------------------------------------------------ a real full disk

  /**
   * Writers keep writing while background commits fill a small tmpfs: commits fail, their data
   * stays buffered and readable, writers are refused once the dirty limit is reached, and after a
   * file is deleted and reclaimed everything buffered commits; nothing a writer was told was
   * written is lost, across a reopen.
   */
  @Test
  void backgroundCommitsFillTheDiskWhileWritersGoOn() throws Exception {
    assumeTrue(TestStores.canMount(), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    assumeTrue(TestStores.mountTmpfs(mnt, 48), "mount -t tmpfs failed");
    try {
      Path store = mnt.resolve("store");
      int writers = 3;
      long[] inos = new long[writers];
      byte[][] models = new byte[writers][];
      try (Datastore ds = Datastore.open(store, TestStores.config(4096).withDirtyLimit(4 * MIB))) {
        long filler = TestStores.create(ds, "filler");
        TestStores.write(ds, filler, 0, TestStores.randomBytes(new SplittableRandom(9), 16 * MIB));
        ds.flush(filler);
        for (int w = 0; w < writers; w++) {
          inos[w] = TestStores.create(ds, "w" + w);
        }
        ExecutorService pool = Executors.newFixedThreadPool(writers);
        List<Future<byte[]>> results = new ArrayList<>();
        for (int w = 0; w < writers; w++) {
          int me = w;
          results.add(
              pool.submit(
                  () -> {
                    SplittableRandom r = new SplittableRandom(100 + me);
                    byte[] model = new byte[0];
                    for (long off = 0; off < 64L * MIB; off += 256 * 1024) {
                      byte[] b = TestStores.randomBytes(r, 256 * 1024);
                      try {
                        TestStores.write(ds, inos[me], off, b);
                      } catch (StoreFullException refused) {
                        return model; // refused before it changed anything
                      }
                      model = Arrays.copyOf(model, (int) off + b.length);
                      System.arraycopy(b, 0, model, (int) off, b.length);
                      if (r.nextInt(8) == 0) {
                        TestStores.assertSameBytes(
                            TestStores.read(ds, inos[me], 0, model.length), model, "writer " + me);
                      }
                    }
                    throw new AssertionError("writer " + me + " wrote 64 MiB into a 48 MiB disk");
                  }));
        }
        for (int w = 0; w < writers; w++) {
          models[w] = results.get(w).get(5, TimeUnit.MINUTES);
        }
        pool.shutdown();
        for (int w = 0; w < writers; w++) {
          TestStores.assertSameBytes(
              TestStores.read(ds, inos[w], 0, models[w].length),
              models[w],
              "writer " + w + ", refused");
        }
        assertThat(ds.writeBack.bufferedBytes()).as("something is still buffered").isPositive();
        ds.unlink(ROOT, "filler");
        ds.forget(filler);
        ds.reclaim();
        ds.reclaim();
        ds.sync();
        assertThat(ds.writeBack.bufferedBytes())
            .as("everything committed once there is room")
            .isZero();
        for (int w = 0; w < writers; w++) {
          TestStores.assertSameBytes(
              TestStores.read(ds, inos[w], 0, models[w].length),
              models[w],
              "writer " + w + ", committed");
        }
        assertConsistent(ds);
      }
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        for (int w = 0; w < writers; w++) {
          assertThat(ds.getattr(inos[w]).size()).isEqualTo(models[w].length);
          TestStores.assertSameBytes(
              TestStores.read(ds, inos[w], 0, models[w].length),
              models[w],
              "writer " + w + " reopened");
        }
        assertConsistent(ds);
      }
    } finally {
      TestStores.unmount(mnt);
    }
  }
}
