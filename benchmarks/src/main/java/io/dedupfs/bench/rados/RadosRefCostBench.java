package io.dedupfs.bench.rados;

import io.dedupfs.engine.Hash;
import io.dedupfs.rados.RadosPool;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * What each kind of per-store reference change costs on one thread ({@link RadosPool#take} and
 * {@link RadosPool#release} with holders "A" and "B"), on N new 16 KiB blocks: the take that stores
 * a block, A's take replayed, B's take of a block A holds, A's release while B holds it, A's
 * release replayed, B's release that removes the block (rados-bench.sh prints it).
 *
 * <p>Usage: {@code RadosRefCostBench CEPH_CONF POOL BLOCKS}; prints one tab-separated line per
 * kind: the kind, operations per second, mean milliseconds per operation.
 */
public final class RadosRefCostBench {
  private static final int BLOCK = 16 * 1024;

  private RadosRefCostBench() {}

  private interface Op {
    void run(Hash h, byte[] content) throws Exception;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: RadosRefCostBench CEPH_CONF POOL BLOCKS");
      System.exit(2);
    }
    int n = Integer.parseInt(args[2]);
    SplittableRandom random = new SplittableRandom(System.nanoTime());
    List<byte[]> blocks = new ArrayList<>();
    List<Hash> hashes = new ArrayList<>();
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    for (int i = 0; i < n; i++) {
      byte[] b = new byte[BLOCK];
      random.nextBytes(b);
      blocks.add(b);
      hashes.add(Hash.of(sha.digest(b)));
    }
    try (RadosPool pool =
        RadosPool.connect(Path.of(args[0]), "admin", args[1], Duration.ofSeconds(30))) {
      run("take, stores the block", pool, hashes, blocks, (h, b) -> pool.take("A", h, b, BLOCK));
      run("take replayed (held)", pool, hashes, blocks, (h, b) -> pool.take("A", h, b, BLOCK));
      run("take of a stored block", pool, hashes, blocks, (h, b) -> pool.take("B", h, b, BLOCK));
      run("release, another holds", pool, hashes, blocks, (h, b) -> pool.release("A", h));
      run("release replayed", pool, hashes, blocks, (h, b) -> pool.release("A", h));
      run("release, removes", pool, hashes, blocks, (h, b) -> pool.release("B", h));
    }
  }

  private static void run(
      String kind, RadosPool pool, List<Hash> hashes, List<byte[]> blocks, Op op) throws Exception {
    long start = System.nanoTime();
    for (int i = 0; i < hashes.size(); i++) {
      op.run(hashes.get(i), blocks.get(i));
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf(
        "%s\t%.0f\t%.2f%n", kind, hashes.size() / seconds, 1000 * seconds / hashes.size());
  }
}
