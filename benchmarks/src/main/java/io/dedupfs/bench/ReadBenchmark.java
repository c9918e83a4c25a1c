package io.dedupfs.bench;

import static io.dedupfs.bench.BenchSupport.MIB;

import io.dedupfs.engine.Datastore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Reads of a committed 1 GiB file of unique random data through {@link Datastore#read}. {@code
 * sequential}: 1 MiB reads from start to end, over and over; one operation is 1 MiB, so the score
 * is MiB/s. {@code random4k}: 4 KiB-aligned 4 KiB reads at random offsets; the score is reads per
 * second.
 *
 * <p>Where the blocks come from ({@code source}):
 *
 * <ul>
 *   <li>{@code lmdb}: an 8 MiB verified cache, 1/128 of the file: nearly every leaf is read from
 *       LMDB and checked against its SHA-256 (the tree nodes, a few MiB, mostly stay cached). The
 *       LMDB file itself was just written, so it is in the OS page cache: warm, not cold.
 *   <li>{@code cache}: a 2 GiB verified cache filled by one full read in the setup: every block
 *       comes from the cache, with no LMDB read and no hashing.
 * </ul>
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
    value = 1,
    jvmArgsAppend = {BenchSupport.OPENS_NIO, BenchSupport.OPENS_NIO_CH, BenchSupport.HEAP})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 5)
@Threads(1)
@State(Scope.Benchmark)
public class ReadBenchmark {
  static final long FILE_SIZE = 1L << 30;
  static final int SMALL_READ = 4096;

  @Param({"16384"})
  public int leafSize;

  @Param({"lmdb", "cache"})
  public String source;

  private Path dir;
  private Datastore ds;
  private long ino;
  private long position;
  private final ByteBuffer big = ByteBuffer.allocateDirect(MIB);
  private final ByteBuffer small = ByteBuffer.allocateDirect(SMALL_READ);
  private final SplittableRandom random = new SplittableRandom(7);

  @Setup(Level.Trial)
  public void open() throws IOException {
    long cache =
        switch (source) {
          case "lmdb" -> 8L * MIB;
          case "cache" -> 2L << 30;
          default -> throw new IllegalArgumentException("source is lmdb or cache, not " + source);
        };
    dir = BenchSupport.freshDir("read-");
    Path store = dir.resolve("store");
    // Written, closed and opened again: the verified cache starts empty.
    try (Datastore w = BenchSupport.openStore(store, BenchSupport.config(leafSize, 256L << 20))) {
      ino = BenchSupport.createFilled(w, "big", FILE_SIZE, BenchSupport.randomBytes(64 * MIB, 4));
    }
    ds = BenchSupport.openStore(store, BenchSupport.config(leafSize, cache));
    if (source.equals("cache")) {
      for (long off = 0; off < FILE_SIZE; off += MIB) {
        ds.read(ino, off, big.clear());
      }
    }
  }

  @TearDown(Level.Trial)
  public void close() throws IOException {
    ds.close();
    BenchSupport.deleteTree(dir);
  }

  @Benchmark
  public int sequential() throws IOException {
    int n = ds.read(ino, position, big.clear());
    position = (position + MIB) % FILE_SIZE;
    return n;
  }

  @Benchmark
  public int random4k() throws IOException {
    return ds.read(ino, random.nextLong(FILE_SIZE / SMALL_READ) * SMALL_READ, small.clear());
  }
}
