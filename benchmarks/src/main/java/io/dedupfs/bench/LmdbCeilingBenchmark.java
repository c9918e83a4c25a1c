package io.dedupfs.bench;

import static io.dedupfs.bench.BenchSupport.BATCH_MIB;
import static io.dedupfs.bench.BenchSupport.MIB;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.lmdbjava.Dbi;
import org.lmdbjava.DbiFlags;
import org.lmdbjava.Env;
import org.lmdbjava.EnvFlags;
import org.lmdbjava.Txn;
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
 * Ceiling: raw LMDB puts through lmdbjava, in a fresh environment per iteration opened as the
 * engine opens its own (MDB_NOTLS, durable commits, 1 TiB map). Each invocation is one write
 * transaction of {@value BenchSupport#BATCH_MIB} MiB of leaf-size blocks, then a durable commit, as
 * one flush of the sequential write benchmark. One operation is 1 MiB: the score is MiB/s.
 *
 * <p>Blocks are put as the engine stores a full leaf: key = a random 32-byte "hash" followed by the
 * block's last 16 bytes, value = the other {@code leafSize - 16} bytes (written into space from
 * {@code reserve}), so that a value plus LMDB's 16-byte overflow header is a whole number of pages.
 * This is the block put alone: the engine also puts a 9-byte reference count per block.
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
public class LmdbCeilingBenchmark {
  static final int KEY_BYTES = 32 + 16;

  @Param({"16384"})
  public int leafSize;

  private Path dir;
  private Env<ByteBuffer> env;
  private Dbi<ByteBuffer> blocks;
  private Dbi<ByteBuffer> refs;
  private final ByteBuffer hashKey = ByteBuffer.allocateDirect(32);
  private final ByteBuffer count = ByteBuffer.allocateDirect(9);
  private byte[] pool;
  private final ByteBuffer key = ByteBuffer.allocateDirect(KEY_BYTES);
  private final SplittableRandom random = new SplittableRandom(8);

  @Setup(Level.Trial)
  public void data() {
    pool = BenchSupport.randomBytes(BATCH_MIB * MIB, 9);
  }

  @Setup(Level.Iteration)
  public void open() throws IOException {
    dir = BenchSupport.freshDir("lmdb-");
    env =
        Env.create()
            .setMapSize(1L << 40)
            .setMaxDbs(16)
            .setMaxReaders(1024)
            .open(dir.toFile(), EnvFlags.MDB_NOTLS);
    blocks = env.openDbi("blocks", DbiFlags.MDB_CREATE);
    refs = env.openDbi("refs", DbiFlags.MDB_CREATE);
  }

  @TearDown(Level.Iteration)
  public void close() {
    env.close();
    BenchSupport.deleteTree(dir);
  }

  @Benchmark
  @OperationsPerInvocation(BATCH_MIB)
  public void put() {
    int valueBytes = leafSize - 16;
    try (Txn<ByteBuffer> txn = env.txnWrite()) {
      for (int off = 0; off < pool.length; off += leafSize) {
        key.clear()
            .putLong(random.nextLong())
            .putLong(random.nextLong())
            .putLong(random.nextLong())
            .putLong(random.nextLong());
        key.put(pool, off + valueBytes, 16).flip();
        blocks.reserve(txn, key, valueBytes).put(0, pool, off, valueBytes);
      }
      txn.commit();
    }
  }

  /**
   * Not a ceiling, an explanation: the block put plus what the engine does beside it for a new
   * block, a look-up of its hash in a second table and a 9-byte reference count put there.
   */
  @Benchmark
  @OperationsPerInvocation(BATCH_MIB)
  public void putWithRefs() {
    int valueBytes = leafSize - 16;
    try (Txn<ByteBuffer> txn = env.txnWrite()) {
      for (int off = 0; off < pool.length; off += leafSize) {
        hashKey
            .clear()
            .putLong(random.nextLong())
            .putLong(random.nextLong())
            .putLong(random.nextLong())
            .putLong(random.nextLong())
            .flip();
        if (refs.get(txn, hashKey) != null) {
          throw new IllegalStateException("a random hash twice");
        }
        key.clear().put(hashKey.duplicate()).put(pool, off + valueBytes, 16).flip();
        blocks.reserve(txn, key, valueBytes).put(0, pool, off, valueBytes);
        count.clear().putLong(1).put((byte) 0).flip();
        refs.put(txn, hashKey, count);
      }
      txn.commit();
    }
  }
}
