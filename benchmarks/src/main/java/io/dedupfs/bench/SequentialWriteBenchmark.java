package io.dedupfs.bench;

import static io.dedupfs.bench.BenchSupport.BATCH_MIB;
import static io.dedupfs.bench.BenchSupport.MIB;

import io.dedupfs.engine.Datastore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
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
 * Sequential writes through {@link Datastore#write} in 1 MiB pieces, {@value
 * BenchSupport#BATCH_MIB} MiB per invocation into a new file, then {@link Datastore#flush} (a
 * durable LMDB commit). One operation is 1 MiB, so the score is MiB/s, flush included.
 *
 * <ul>
 *   <li>{@code unique}: random data never written before (every 4 KiB carries a fresh counter):
 *       every leaf is hashed and stored. A fresh store per iteration keeps the store's size, and so
 *       LMDB's B-tree depth, the same from one iteration to the next.
 *   <li>{@code alreadyStored}: the same 64 MiB, at the same offsets, as a file written once in the
 *       setup: every leaf is hashed and found stored, and so is the tree's root. The new file is
 *       deleted after each invocation.
 *   <li>{@code alreadyStoredShifted}: the same, one leaf further on: leaves found, nodes new.
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
public class SequentialWriteBenchmark {
  @Param({"16384"})
  public int leafSize;

  private Path dir;
  private Datastore ds;
  private byte[] pool;
  private byte[] stored;
  private long files;
  private long ino;

  @Setup(Level.Trial)
  public void data() {
    pool = BenchSupport.randomBytes(BATCH_MIB * MIB, 1);
    stored = BenchSupport.randomBytes(BATCH_MIB * MIB, 2);
    BenchSupport.stamp(stored, 0, stored.length);
  }

  /** A fresh store per iteration, with the already-stored file in it. */
  @Setup(Level.Iteration)
  public void open() throws IOException {
    dir = BenchSupport.freshDir("seqwrite-");
    ds = BenchSupport.openStore(dir, BenchSupport.config(leafSize, 256L << 20));
    long src = ds.mknod(Datastore.ROOT, "stored", 0644, 0, 0, 0).ino();
    writeAll(src, stored, false);
    ds.flush(src);
  }

  @TearDown(Level.Iteration)
  public void close() throws IOException {
    ds.close();
    BenchSupport.deleteTree(dir);
  }

  @Setup(Level.Invocation)
  public void newFile() throws IOException {
    ino = ds.mknod(Datastore.ROOT, "f" + files++, 0644, 0, 0, 0).ino();
  }

  @Benchmark
  @OperationsPerInvocation(BATCH_MIB)
  public void unique() throws IOException {
    writeAll(ino, pool, true);
    ds.flush(ino);
  }

  @Benchmark
  @OperationsPerInvocation(BATCH_MIB)
  public void alreadyStored() throws IOException {
    writeAll(ino, stored, false);
    ds.flush(ino);
  }

  /**
   * The same stored bytes one leaf further into the new file: every leaf is found stored, but no
   * tree node is, so each leaf's count is raised and the nodes above are stored.
   */
  @Benchmark
  @OperationsPerInvocation(BATCH_MIB)
  public void alreadyStoredShifted() throws IOException {
    for (int off = 0; off < stored.length; off += MIB) {
      ds.write(ino, leafSize + off, ByteBuffer.wrap(stored, off, MIB));
    }
    ds.flush(ino);
  }

  /** After {@code alreadyStored}: drop the copy so that the store does not grow (not timed). */
  @TearDown(Level.Invocation)
  public void dropCopy(org.openjdk.jmh.infra.BenchmarkParams params) throws IOException {
    if (params.getBenchmark().contains("alreadyStored")) {
      ds.unlink(Datastore.ROOT, "f" + (files - 1));
      ds.forget(ino);
      ds.reclaim();
    }
  }

  private void writeAll(long file, byte[] data, boolean freshStamps) throws IOException {
    for (int off = 0; off < data.length; off += MIB) {
      if (freshStamps) {
        BenchSupport.stamp(data, off, MIB);
      }
      ds.write(file, off, ByteBuffer.wrap(data, off, MIB));
    }
  }
}
