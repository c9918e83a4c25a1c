package io.dedupfs.bench.rados;

import io.dedupfs.engine.Hash;
import io.dedupfs.rados.RadosPool;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;

/**
 * How many new 16 KiB blocks per second {@link RadosPool#take} stores from 1 and from N threads,
 * and how many it releases again (rados-bench.sh prints this beside {@code rados bench}).
 *
 * <p>Usage: {@code RadosTakeBench CEPH_CONF POOL SECONDS THREADS...}; prints one tab-separated line
 * per thread count: threads, takes per second, releases per second.
 */
public final class RadosTakeBench {
  private static final int BLOCK = 16 * 1024;

  private RadosTakeBench() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 4) {
      System.err.println("usage: RadosTakeBench CEPH_CONF POOL SECONDS THREADS...");
      System.exit(2);
    }
    Path conf = Path.of(args[0]);
    String pool = args[1];
    long seconds = Long.parseLong(args[2]);
    try (RadosPool rados = RadosPool.connect(conf, "admin", pool, Duration.ofSeconds(30))) {
      for (int i = 3; i < args.length; i++) {
        run(rados, Integer.parseInt(args[i]), seconds);
      }
    }
  }

  private static void run(RadosPool rados, int threads, long seconds) throws Exception {
    List<List<Hash>> taken = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      taken.add(new ArrayList<>());
    }
    long deadline = System.nanoTime() + seconds * 1_000_000_000L;
    double takeSeconds =
        onThreads(
            taken,
            mine -> {
              SplittableRandom random = new SplittableRandom(System.nanoTime());
              byte[] block = new byte[BLOCK];
              while (System.nanoTime() < deadline) {
                random.nextBytes(block); // new to the pool: every take creates an object
                Hash h = sha256(block);
                rados.take("bench", h, block, block.length);
                mine.add(h);
              }
            });
    double releaseSeconds =
        onThreads(
            taken,
            mine -> {
              for (Hash h : mine) {
                rados.release("bench", h);
              }
            });
    long blocks = taken.stream().mapToLong(List::size).sum();
    System.out.printf("%d\t%.0f\t%.0f%n", threads, blocks / takeSeconds, blocks / releaseSeconds);
  }

  private interface Work {
    void run(List<Hash> mine) throws Exception;
  }

  /** Runs work on one thread per list, and returns the seconds until all are done. */
  private static double onThreads(List<List<Hash>> lists, Work work) throws Exception {
    List<Thread> threads = new ArrayList<>();
    List<Exception> failures = Collections.synchronizedList(new ArrayList<>());
    long start = System.nanoTime();
    for (List<Hash> mine : lists) {
      Thread t =
          new Thread(
              () -> {
                try {
                  work.run(mine);
                } catch (Exception e) {
                  failures.add(e);
                }
              });
      t.start();
      threads.add(t);
    }
    for (Thread t : threads) {
      t.join();
    }
    if (!failures.isEmpty()) {
      throw failures.get(0);
    }
    return (System.nanoTime() - start) / 1e9;
  }

  /** A block's name: the SHA-256 of its content (the engine hashes leaves the same way). */
  private static Hash sha256(byte[] block) throws java.security.NoSuchAlgorithmException {
    return Hash.of(MessageDigest.getInstance("SHA-256").digest(block));
  }
}
