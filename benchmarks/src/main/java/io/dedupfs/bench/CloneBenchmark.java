package io.dedupfs.bench;

import static io.dedupfs.bench.BenchSupport.MIB;

import io.dedupfs.engine.Datastore;
import java.io.IOException;
import java.nio.file.Path;
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
 * Clone of a whole committed file into a new empty file: {@code copyRange(src, 0, dst, 0, size)},
 * which commits the copy durably before it returns. Time per clone; the new file is created before
 * and deleted after each clone, untimed. Target: a 1 GiB clone takes no more than twice a 1 MiB
 * clone.
 *
 * <p>Every clone is timed (JMH's sample mode): a clone is one durable commit, whose latency on a
 * shared disk has a long tail, so the report compares medians and shows the means beside them.
 *
 * <p>Both sizes run on a store holding the same two files, a 1 MiB and a 1 GiB one, and clone one
 * of them: a commit costs more in a bigger store (deeper B-trees, more free pages to manage), so
 * two stores of different sizes would compare the stores, not the clones.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(
    value = 1,
    jvmArgsAppend = {BenchSupport.OPENS_NIO, BenchSupport.OPENS_NIO_CH, BenchSupport.HEAP})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Threads(1)
@State(Scope.Benchmark)
public class CloneBenchmark {
  @Param({"16384"})
  public int leafSize;

  /** Bytes in the source file. */
  @Param({"1048576", "1073741824"})
  public long size;

  private Path dir;
  private Datastore ds;
  private long src;
  private long dst;
  private long clones;

  @Setup(Level.Trial)
  public void open() throws IOException {
    dir = BenchSupport.freshDir("clone-");
    ds = BenchSupport.openStore(dir, BenchSupport.config(leafSize, 256L << 20));
    byte[] pool = BenchSupport.randomBytes(64 * MIB, 5);
    long small = BenchSupport.createFilled(ds, "small", MIB, pool);
    long big = BenchSupport.createFilled(ds, "big", 1L << 30, pool);
    ds.reclaim();
    if (size == MIB) {
      src = small;
    } else if (size == 1L << 30) {
      src = big;
    } else {
      throw new IllegalArgumentException("size is 1048576 or 1073741824, not " + size);
    }
  }

  @TearDown(Level.Trial)
  public void close() throws IOException {
    ds.close();
    BenchSupport.deleteTree(dir);
  }

  @Setup(Level.Invocation)
  public void newFile() throws IOException {
    dst = ds.mknod(Datastore.ROOT, "clone" + clones++, 0644, 0, 0, 0).ino();
  }

  @Benchmark
  public long wholeFile() throws IOException {
    long n = ds.copyRange(src, 0, dst, 0, size);
    if (n != size) {
      throw new IllegalStateException("copied " + n + " of " + size + " bytes");
    }
    return n;
  }

  @TearDown(Level.Invocation)
  public void dropClone() throws IOException {
    ds.unlink(Datastore.ROOT, "clone" + (clones - 1));
    ds.forget(dst);
    ds.reclaim();
  }
}
