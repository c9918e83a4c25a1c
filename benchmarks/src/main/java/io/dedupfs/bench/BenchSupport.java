package io.dedupfs.bench;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.SplittableRandom;

/**
 * What every benchmark shares: stores in fresh directories on a real disk, random data that is
 * unique at any leaf size, and the sizes the benchmarks and their ceilings agree on.
 */
final class BenchSupport {
  /** lmdbjava on Java 17 needs these in every JVM that opens a store. */
  static final String OPENS_NIO = "--add-opens=java.base/java.nio=ALL-UNNAMED";

  static final String OPENS_NIO_CH = "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED";
  static final String HEAP = "-Xmx4g";

  static final int MIB = 1 << 20;

  /**
   * Data per durable commit in the sequential write benchmarks and in the LMDB ceiling: 64 writes
   * of 1 MiB, then one flush. Below the engine's own flush threshold (a quarter of the dirty limit,
   * 128 MiB by default), so each invocation makes exactly one commit.
   */
  static final int BATCH_MIB = 64;

  /**
   * Every 4 KiB of generated data starts with a fresh counter, so no two 4 KiB pieces are equal.
   */
  static final int STAMP = 4096;

  private static long stamps = 1;

  private BenchSupport() {}

  /**
   * A new, empty directory for a store, under $DEDUPFS_BENCH_DIR or else java.io.tmpdir. Refuses a
   * tmpfs: the figures are meant to include a real disk's fsync.
   */
  static Path freshDir(String prefix) throws IOException {
    String base = System.getenv("DEDUPFS_BENCH_DIR");
    Path parent =
        Path.of(base != null && !base.isEmpty() ? base : System.getProperty("java.io.tmpdir"));
    Files.createDirectories(parent);
    String type = Files.getFileStore(parent).type();
    if (type.equals("tmpfs") || type.equals("ramfs")) {
      throw new IOException(
          parent
              + " is on "
              + type
              + ", not a disk; set DEDUPFS_BENCH_DIR to a directory on a disk");
    }
    return Files.createTempDirectory(parent, prefix);
  }

  static Datastore openStore(Path dir, DatastoreConfig config) throws IOException {
    return Datastore.open(dir, config);
  }

  /**
   * Deletes a store, then syncs and pauses briefly: on a disk mounted with {@code discard} (as
   * here), freeing a few GiB keeps the device busy for a moment, which would slow the next fsync
   * measured.
   */
  static void deleteTree(Path dir) {
    if (dir == null || !Files.exists(dir)) {
      return;
    }
    deleteRecursively(dir);
    try {
      new ProcessBuilder("sync").inheritIO().start().waitFor();
      Thread.sleep(500);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void deleteRecursively(Path dir) {
    try {
      Files.walkFileTree(
          dir,
          new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
                throws IOException {
              Files.delete(file);
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
              Files.delete(d);
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** {@code bytes} of seeded random data. */
  static byte[] randomBytes(int bytes, long seed) {
    byte[] b = new byte[bytes];
    SplittableRandom r = new SplittableRandom(seed);
    for (int i = 0; i + 8 <= bytes; i += 8) {
      long v = r.nextLong();
      for (int j = 0; j < 8; j++) {
        b[i + j] = (byte) (v >>> (8 * j));
      }
    }
    return b;
  }

  /**
   * Writes a fresh counter into the first 8 bytes of every 4 KiB piece of {@code b[from, from +
   * length)}, making it unlike anything written before in this JVM. Costs nothing next to a write.
   */
  static synchronized void stamp(byte[] b, int from, int length) {
    for (int i = from; i < from + length; i += STAMP) {
      long v = stamps++;
      for (int j = 0; j < 8; j++) {
        b[i + j] = (byte) (v >>> (8 * j));
      }
    }
  }

  /** Writes {@code size} bytes of unique random data into a new file; returns its inode. */
  static long createFilled(Datastore ds, String name, long size, byte[] pool) throws IOException {
    long ino = ds.mknod(Datastore.ROOT, name, 0644, 0, 0, 0).ino();
    for (long off = 0; off < size; ) {
      int n = (int) Math.min(MIB, size - off);
      int at = (int) (off % pool.length) & ~(MIB - 1);
      stamp(pool, at, n);
      ds.write(ino, off, ByteBuffer.wrap(pool, at, n));
      off += n;
    }
    ds.flush(ino);
    return ino;
  }

  /** Random 4 KiB-aligned 4 KiB reads of a file of {@code size} bytes; reads per second. */
  static double randomReads(Datastore ds, long ino, long size, int count) throws IOException {
    if (count <= 0) {
      return Double.NaN;
    }
    ByteBuffer b = ByteBuffer.allocateDirect(4096);
    java.util.SplittableRandom random = new java.util.SplittableRandom(13);
    long t0 = System.nanoTime();
    for (int i = 0; i < count; i++) {
      ds.read(ino, random.nextLong(size / 4096) * 4096, b.clear());
    }
    return count / ((System.nanoTime() - t0) / 1e9);
  }

  /** Whether {@code b[from, from + len)} is all zeros. */
  static boolean isZero(byte[] b, int from, int len) {
    for (int i = from; i < from + len; i++) {
      if (b[i] != 0) {
        return false;
      }
    }
    return true;
  }

  /** A config with the defaults but for the leaf size and the verified-block cache. */
  static DatastoreConfig config(int leafSize, long cacheBytes) {
    DatastoreConfig d = DatastoreConfig.defaults().withLeafSize(leafSize);
    return d.withCacheBytes(cacheBytes);
  }
}
