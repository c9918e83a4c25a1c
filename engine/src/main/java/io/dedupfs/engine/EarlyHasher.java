package io.dedupfs.engine;

import io.dedupfs.engine.Slot.Leaf;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Hashes leaves that writes filled whole, on threads of their own, ahead of the commit that will
 * store them: a stream of large writes is then hashed while it is written and while the commit
 * before it holds the store's single writer, instead of between one commit and the next (the speed
 * issue's item 3). The commit takes a leaf's early hash only if the leaf has not changed since
 * ({@link Leaf#hashedEarly}); a leaf that is not hashed early in time is hashed by the commit, as
 * before.
 *
 * <p>Only whole-leaf writes are offered: a leaf filled by small writes, as random writes fill them,
 * may well be written again before its commit, and hashing it twice would cost the CPU those writes
 * need. Leaves offered while the queue is full are left to the commit.
 */
final class EarlyHasher {
  /** Leaves waiting for a thread, at most: 64 MiB of 16 KiB leaves. */
  private static final int QUEUE = 4096;

  private final int leafSize;
  private final Executor executor;
  private final ThreadPoolExecutor pool;
  private final AtomicLong hashed = new AtomicLong();

  /** A hasher with a thread per core, idle threads ending after a few seconds. */
  EarlyHasher(int leafSize) {
    this.leafSize = leafSize;
    int threads = Runtime.getRuntime().availableProcessors();
    this.pool =
        new ThreadPoolExecutor(
            threads,
            threads,
            5,
            TimeUnit.SECONDS,
            new ArrayBlockingQueue<>(QUEUE),
            r -> {
              Thread t = new Thread(r, "dedupfs-hasher");
              t.setDaemon(true);
              return t;
            },
            new ThreadPoolExecutor.DiscardPolicy());
    pool.allowCoreThreadTimeOut(true);
    this.executor = pool;
  }

  /** For tests: a hasher whose work runs on {@code executor}, when and where it chooses. */
  EarlyHasher(int leafSize, Executor executor) {
    this.leafSize = leafSize;
    this.executor = executor;
    this.pool = null;
  }

  /**
   * Hashes {@code l} soon, as it is at {@code version}; the caller has just filled it, under its
   * owner's lock.
   */
  void offer(Leaf l, int version) {
    executor.execute(() -> hash(l, version));
  }

  private void hash(Leaf l, int version) {
    if (l.version() != version) {
      return; // changed again: the commit hashes what it freezes
    }
    int stored = Geometry.storedLeafLength(l.data);
    Hash h = stored == 0 ? Hash.ZERO : Hasher.leaf(l.data, stored, leafSize);
    l.hashedEarly(version, h, stored);
    hashed.incrementAndGet();
  }

  /** Leaves hashed early so far (kept or refused). */
  long hashed() {
    return hashed.get();
  }

  /** Stops the threads; what is queued is dropped (its commits hash it). */
  void close() {
    if (pool != null) {
      pool.shutdownNow();
    }
  }
}
