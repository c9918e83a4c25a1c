package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * The child process of {@link CrashTest}: writes records of {@link #RECORD} bytes one after the
 * other into a new file, flushes every few records, makes a directory now and then, and prints one
 * line after each flush or directory has returned. It runs until it is killed.
 *
 * <p>Arguments: store directory, file name, seed.
 */
final class CrashWriter {
  /** Not a multiple of any leaf size, so records straddle leaves. */
  static final int RECORD = 10_007;

  private CrashWriter() {}

  static byte[] record(long seed, int i) {
    return TestStores.randomBytes(new SplittableRandom(seed * 1_000_003 + i), RECORD);
  }

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    String name = args[1];
    long seed = Long.parseLong(args[2]);
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096).withDirtyLimit(256 * 1024))) {
      long ino = TestStores.create(ds, name);
      for (int i = 0; ; i++) {
        ds.write(ino, (long) i * RECORD, ByteBuffer.wrap(record(seed, i)));
        if (i % 4 == 3) {
          ds.flush(ino);
          System.out.println("flushed " + i);
        }
        if (i % 25 == 0) {
          ds.mkdir(Datastore.ROOT, name + "-dir" + i, 0755, 0, 0);
          System.out.println("mkdir " + i);
        }
        System.out.flush();
      }
    }
  }
}
