package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writers, readers, a cloner and a flusher (that also makes the store forget files) at once, on
 * three files, two of which have two writers. Each writer owns a region that it always rewrites
 * whole in one call, with one value repeated: a reader or a clone that sees two values in a region
 * has seen half of a write. Each writer also has a scratch area of random writes and punches,
 * checked against its own model.
 */
class ConcurrencyTest {
  private static final int FILES = 3;
  private static final int WRITERS = 5;
  private static final int REGION = 3 * 4096 + 504; // four leaves, not aligned
  private static final int SCRATCH = 1 << 20;

  @TempDir Path dir;

  @Test
  void threadsOnSeveralFilesAndOnOneFile() throws Exception {
    int iterations = TestStores.longRuns() ? 5000 : 400;
    long[] inos = new long[FILES];
    long[] clones = new long[FILES];
    byte[][] scratch = new byte[WRITERS][SCRATCH];
    long[] finalVersion = new long[WRITERS];
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(1 << 20))) {
      for (int f = 0; f < FILES; f++) {
        inos[f] = TestStores.create(ds, "f" + f);
        clones[f] = TestStores.create(ds, "clone" + f);
      }
      AtomicBoolean writing = new AtomicBoolean(true);
      ExecutorService pool = Executors.newFixedThreadPool(WRITERS + 4);
      List<Future<?>> writers = new ArrayList<>();
      List<Future<?>> others = new ArrayList<>();
      for (int w = 0; w < WRITERS; w++) {
        int me = w;
        writers.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      SplittableRandom r = new SplittableRandom(me);
                      long ino = inos[me % FILES];
                      for (long v = 1; v <= iterations; v++) {
                        ds.write(ino, regionStart(me), ByteBuffer.wrap(uniform(me, v)));
                        finalVersion[me] = v;
                        long at = r.nextInt(SCRATCH - 20000);
                        if (r.nextInt(5) == 0) {
                          int len = r.nextInt(1, 20000);
                          ds.punchHole(ino, scratchStart(me) + at, len);
                          Arrays.fill(scratch[me], (int) at, (int) at + len, (byte) 0);
                        } else {
                          byte[] b = TestStores.randomBytes(r, r.nextInt(1, 20000));
                          TestStores.write(ds, ino, scratchStart(me) + at, b);
                          System.arraycopy(b, 0, scratch[me], (int) at, b.length);
                        }
                        if (r.nextInt(10) == 0) {
                          ds.flush(ino);
                        }
                        if (r.nextInt(20) == 0) {
                          TestStores.assertSameBytes(
                              readScratch(ds, ino, me), scratch[me], "scratch of writer " + me);
                        }
                      }
                      return null;
                    }));
      }
      for (int reader = 0; reader < 2; reader++) {
        int me = reader;
        others.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      SplittableRandom r = new SplittableRandom(100 + me);
                      long[] seen = new long[WRITERS];
                      while (writing.get()) {
                        int w = r.nextInt(WRITERS);
                        long v =
                            checkUniform(
                                TestStores.read(ds, inos[w % FILES], regionStart(w), REGION), w);
                        assertThat(v)
                            .as("versions of writer %d never go back", w)
                            .isGreaterThanOrEqualTo(seen[w]);
                        seen[w] = v;
                      }
                      return null;
                    }));
      }
      others.add(
          pool.submit(
              (Callable<Void>)
                  () -> {
                    SplittableRandom r = new SplittableRandom(200);
                    while (writing.get()) {
                      int f = r.nextInt(FILES);
                      ds.copyRange(inos[f], 0, clones[f], 0, Long.MAX_VALUE / 4);
                      for (int w = f; w < WRITERS; w += FILES) {
                        checkUniform(TestStores.read(ds, clones[f], regionStart(w), REGION), w);
                      }
                    }
                    return null;
                  }));
      others.add(
          pool.submit(
              (Callable<Void>)
                  () -> {
                    SplittableRandom r = new SplittableRandom(300);
                    while (writing.get()) {
                      ds.sync();
                      // the kernel forgetting a file that still has its name: its contents may be
                      // unloaded
                      // while writers are about to use them, and must be loaded again, nothing lost
                      ds.forget(inos[r.nextInt(FILES)]);
                      ds.forget(clones[r.nextInt(FILES)]);
                      Thread.sleep(2);
                    }
                    return null;
                  }));
      for (Future<?> f : writers) {
        f.get();
      }
      writing.set(false);
      for (Future<?> f : others) {
        f.get();
      }
      pool.shutdown();
      verify(ds, inos, scratch, finalVersion);
      assertConsistent(ds);
    }
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      verify(ds, inos, scratch, finalVersion);
      assertConsistent(ds);
    }
  }

  /**
   * A file unloaded by forget is loaded by two threads at once; one reads its inode, then the other
   * loads it, writes, commits and it is forgotten again, so that what the first read is stale. The
   * first must not publish those stale contents where a third thread can write to them: that write,
   * committed, would drop the second's and release the old root a second time.
   */
  @Test
  void contentsLoadedStaleAreNeverWrittenTo() throws Exception {
    int leaf = 4096;
    try (Datastore ds = Datastore.open(dir, TestStores.config(leaf))) {
      long f = TestStores.create(ds, "f");
      byte[] model = TestStores.randomBytes(new SplittableRandom(7), 3 * leaf);
      TestStores.write(ds, f, 0, model);
      ds.flush(f);
      ds.forget(f); // clean: unloaded, the next use loads it
      byte[] second = TestStores.randomBytes(new SplittableRandom(8), 100);
      byte[] third = TestStores.randomBytes(new SplittableRandom(9), 100);
      Thread first = Thread.currentThread();
      List<Throwable> failures = new CopyOnWriteArrayList<>();
      AtomicBoolean secondRan = new AtomicBoolean();
      Thread[] thirdWriter = new Thread[1];
      ds.files.loadHook =
          new OpenFiles.LoadHook() {
            @Override
            public void inodeRead(long ino) {
              if (Thread.currentThread() == first && secondRan.compareAndSet(false, true)) {
                Thread t =
                    start(
                        failures,
                        () -> {
                          TestStores.write(ds, f, 0, second);
                          ds.flush(f);
                          ds.forget(f);
                        });
                join(t, 10_000);
              }
            }

            @Override
            public void published(long ino) {
              if (Thread.currentThread() == first && thirdWriter[0] == null) {
                thirdWriter[0] =
                    start(
                        failures,
                        () -> {
                          TestStores.write(ds, f, leaf, third);
                          ds.flush(f);
                        });
                join(thirdWriter[0], 500); // stale contents open to it are written now
              }
            }
          };
      byte[] read;
      try {
        read = TestStores.read(ds, f, 0, second.length);
      } finally {
        ds.files.loadHook = null;
      }
      join(thirdWriter[0], 10_000);
      assertThat(failures).isEmpty();
      TestStores.assertSameBytes(read, second, "what the first reader loaded");
      System.arraycopy(second, 0, model, 0, second.length);
      System.arraycopy(third, 0, model, leaf, third.length);
      TestStores.assertSameBytes(
          TestStores.read(ds, f, 0, model.length), model, "both writes, each committed");
      assertConsistent(ds);
    }
  }

  /**
   * Should contents in memory ever miss a change of their inode's tree, their commit is refused: it
   * would drop that change and release the tree they were loaded from a second time.
   */
  @Test
  void contentsThatMissedAChangeAreNotCommitted() throws Exception {
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      SplittableRandom r = new SplittableRandom(10);
      long f = TestStores.create(ds, "f");
      TestStores.write(ds, f, 0, TestStores.randomBytes(r, 3 * 4096));
      long g = TestStores.create(ds, "g");
      byte[] other = TestStores.randomBytes(r, 5 * 4096);
      TestStores.write(ds, g, 0, other);
      ds.sync();
      // f's contents are loaded; behind their back f takes g's tree, counted as a restore counts
      assertThat(TestStores.read(ds, f, 0, 1)).hasSize(1);
      ds.db.write(
          txn -> {
            Namespace ns = new Namespace(ds.db);
            Inode fi = ns.inode(txn, f);
            Inode gi = ns.inode(txn, g);
            ds.blocks.incref(txn, gi.root());
            ds.blocks.decref(txn, fi.root());
            ns.put(
                txn, fi.withContent(gi.root(), gi.height(), gi.size(), fi.mtimeNs(), fi.ctimeNs()));
            return null;
          });
      TestStores.write(ds, f, 0, new byte[] {1});
      assertThatThrownBy(() -> ds.flush(f))
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("not committed");
      FileContent stale = ds.files.get(f); // dropped, as nothing else could commit them
      stale.lock.writeLock().lock();
      try {
        ds.files.retire(stale);
      } finally {
        stale.lock.writeLock().unlock();
      }
      ds.reclaim();
      assertConsistent(ds);
      TestStores.assertSameBytes(TestStores.read(ds, f, 0, other.length), other, "f, as stored");
    }
  }

  private interface Work {
    void run() throws IOException;
  }

  /** A thread running {@code work}, started; what it throws goes to {@code failures}. */
  private static Thread start(List<Throwable> failures, Work work) {
    Thread t =
        new Thread(
            () -> {
              try {
                work.run();
              } catch (IOException | RuntimeException e) {
                failures.add(e);
              }
            });
    t.start();
    return t;
  }

  private static void join(Thread t, long millis) {
    try {
      t.join(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void verify(Datastore ds, long[] inos, byte[][] scratch, long[] finalVersion)
      throws Exception {
    for (int w = 0; w < WRITERS; w++) {
      long ino = inos[w % FILES];
      assertThat(checkUniform(TestStores.read(ds, ino, regionStart(w), REGION), w))
          .isEqualTo(finalVersion[w]);
      TestStores.assertSameBytes(readScratch(ds, ino, w), scratch[w], "scratch of writer " + w);
    }
  }

  /** A writer's scratch area, with zeros for what lies past the end of the file. */
  private static byte[] readScratch(Datastore ds, long ino, int w) throws Exception {
    return Arrays.copyOf(TestStores.read(ds, ino, scratchStart(w), SCRATCH), SCRATCH);
  }

  /** Writers that share a file get regions and scratch areas apart. */
  private static long regionStart(int w) {
    return 1234 + (long) (w / FILES) * 65536;
  }

  private static long scratchStart(int w) {
    return (4L << 20) + (long) (w / FILES) * (2L << 20) + 777;
  }

  private static byte[] uniform(int w, long v) {
    ByteBuffer b = ByteBuffer.allocate(REGION);
    while (b.hasRemaining()) {
      b.putLong((long) w << 32 | v);
    }
    return b.array();
  }

  /** The version a region holds; fails if the region mixes two writes. 0 before the first write. */
  private static long checkUniform(byte[] region, int w) {
    if (region.length == 0 || Arrays.equals(region, new byte[region.length])) {
      return 0;
    }
    assertThat(region).as("region of writer %d has one write's bytes", w).hasSize(REGION);
    ByteBuffer b = ByteBuffer.wrap(region);
    long first = b.getLong(0);
    for (int i = 0; i < REGION; i += 8) {
      if (b.getLong(i) != first) {
        throw new AssertionError(
            "writer "
                + w
                + "'s region mixes two writes: "
                + Long.toHexString(first)
                + " and "
                + Long.toHexString(b.getLong(i))
                + " at byte "
                + i);
      }
    }
    assertThat(first >>> 32).isEqualTo(w);
    return first & 0xffffffffL;
  }
}
