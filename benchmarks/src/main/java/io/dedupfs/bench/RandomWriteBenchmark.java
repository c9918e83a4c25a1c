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
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Random 4 KiB writes, 4 KiB-aligned, of unique random data into a 1 GiB file of unique random
 * data, with a {@link Datastore#flush} (durable commit) after every {@value #WRITES_PER_FLUSH}
 * writes. One operation is one 4 KiB write, so the score is writes per second, flushes included.
 * Default store config (256 MiB verified cache): the leaves a write changes are read from LMDB, or
 * from the cache when the file's earlier writes left them there.
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
public class RandomWriteBenchmark {
  static final int WRITES_PER_FLUSH = 256;
  static final int WRITE = 4096;
  static final long FILE_SIZE = 1L << 30;

  @Param({"16384"})
  public int leafSize;

  private Path dir;
  private Datastore ds;
  private long ino;
  private byte[] pool;
  private final SplittableRandom random = new SplittableRandom(42);

  @Setup(Level.Trial)
  public void open() throws IOException {
    pool = BenchSupport.randomBytes(64 * MIB, 3);
    dir = BenchSupport.freshDir("randwrite-");
    ds = BenchSupport.openStore(dir, BenchSupport.config(leafSize, 256L << 20));
    ino = BenchSupport.createFilled(ds, "big", FILE_SIZE, pool);
  }

  @TearDown(Level.Trial)
  public void close() throws IOException {
    ds.close();
    BenchSupport.deleteTree(dir);
  }

  @Benchmark
  @OperationsPerInvocation(WRITES_PER_FLUSH)
  public void random4k() throws IOException {
    for (int i = 0; i < WRITES_PER_FLUSH; i++) {
      long offset = random.nextLong(FILE_SIZE / WRITE) * WRITE;
      int at = random.nextInt(pool.length / WRITE) * WRITE;
      BenchSupport.stamp(pool, at, WRITE);
      ds.write(ino, offset, ByteBuffer.wrap(pool, at, WRITE));
    }
    ds.flush(ino);
  }
}
