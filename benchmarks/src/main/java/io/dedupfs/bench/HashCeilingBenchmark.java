package io.dedupfs.bench;

import static io.dedupfs.bench.BenchSupport.MIB;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Ceiling: SHA-256 on one core, one {@link MessageDigest} reused (as the engine's Hasher does),
 * over 1 MiB of random data in leaf-size pieces, one digest per leaf. One operation is 1 MiB, so
 * the score is MiB/s.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
    value = 1,
    jvmArgsAppend = {BenchSupport.OPENS_NIO, BenchSupport.OPENS_NIO_CH, BenchSupport.HEAP})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
@Threads(1)
@State(Scope.Thread)
public class HashCeilingBenchmark {
  static final int CHUNK_MIB = 1;

  @Param({"16384"})
  public int leafSize;

  private byte[] data;
  private MessageDigest md;

  @Setup
  public void setup() throws NoSuchAlgorithmException {
    data = BenchSupport.randomBytes(CHUNK_MIB * MIB, 6);
    md = MessageDigest.getInstance("SHA-256");
  }

  @Benchmark
  @OperationsPerInvocation(CHUNK_MIB)
  public void sha256(Blackhole bh) {
    for (int off = 0; off < data.length; off += leafSize) {
      md.update(data, off, leafSize);
      bh.consume(md.digest());
    }
  }
}
