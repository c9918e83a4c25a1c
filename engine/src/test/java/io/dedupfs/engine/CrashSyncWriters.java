package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * The child process of {@link CrashTest}'s fsync case: {@link #THREADS} threads write a record into
 * a random one of {@link #SLOTS} slots of their region of a file, fsync, and print {@code "synced T
 * I"} once the fsync of their operation I has returned; they run until killed. {@link #FILES}
 * threads have a file each; the others share a file with one of them, in a region of its own
 * ({@link #file}, {@link #base}): one file's log records then come from two threads at once, and an
 * fsync must wait for the other thread's earlier record of the file. Operation I of thread T is the
 * same in every run of a seed ({@link #slot}, {@link #record}), so the parent knows what each file
 * must hold up to the last operation reported.
 *
 * <p>Arguments: store directory, file name prefix, seed.
 */
final class CrashSyncWriters {
  static final int THREADS = 6;
  static final int FILES = 4;
  static final int SLOTS = 64;

  /** Not a multiple of any leaf size, so records straddle leaves. */
  static final int RECORD = 10_007;

  private CrashSyncWriters() {}

  /** Which file thread {@code thread} writes: {@code prefix + file}. */
  static int file(int thread) {
    return thread % FILES;
  }

  /** Where the region of thread {@code thread} starts in its file. */
  static long base(int thread) {
    return (long) (thread / FILES) * SLOTS * RECORD;
  }

  static int slot(long seed, int thread, int op) {
    return new SplittableRandom(seed * 31 + thread * 1_000_003L + op).nextInt(SLOTS);
  }

  static byte[] record(long seed, int thread, int op) {
    return TestStores.randomBytes(
        new SplittableRandom(seed * 17 + thread * 7_000_003L + op * 3L), RECORD);
  }

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    String prefix = args[1];
    long seed = Long.parseLong(args[2]);
    Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(4L << 20));
    long[] inos = new long[FILES];
    for (int f = 0; f < FILES; f++) {
      inos[f] = TestStores.create(ds, prefix + f);
    }
    Thread[] threads = new Thread[THREADS];
    for (int t = 0; t < THREADS; t++) {
      int thread = t;
      long ino = inos[file(t)];
      threads[t] =
          new Thread(
              () -> {
                try {
                  for (int i = 0; ; i++) {
                    long off = base(thread) + (long) slot(seed, thread, i) * RECORD;
                    ds.write(ino, off, ByteBuffer.wrap(record(seed, thread, i)));
                    ds.fsync(ino);
                    synchronized (System.out) {
                      System.out.println("synced " + thread + " " + i);
                      System.out.flush();
                    }
                  }
                } catch (Exception e) {
                  e.printStackTrace();
                  System.exit(3);
                }
              });
      threads[t].start();
    }
    for (Thread t : threads) {
      t.join();
    }
  }
}
