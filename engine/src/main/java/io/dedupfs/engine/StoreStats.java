package io.dedupfs.engine;

/**
 * Space figures for {@code statfs}.
 *
 * @param storeBytes bytes the store's file takes on its disk
 * @param liveBytes bytes of the store's pages that hold data; the rest of {@code storeBytes} is
 *     free pages, which writes reuse before the file grows (after a delete, until compact)
 * @param diskFreeBytes bytes still free on that disk for an unprivileged writer
 * @param inodes inodes in use
 * @param pool for a store whose blocks are in a pool, the bytes of the blocks it counts there and
 *     what the pool can still take; null for a store that keeps its blocks in its LMDB
 */
public record StoreStats(
    long storeBytes,
    long liveBytes,
    long diskFreeBytes,
    long inodes,
    int leafSize,
    BlockStore.PooledSpace pool) {
  /** What the store can still take: the disk's free space and the store's own free pages. */
  public long availableBytes() {
    return diskFreeBytes + Math.max(0, storeBytes - liveBytes);
  }

  /**
   * df's used: the store's pages in use, and the blocks it counts in its pool (whose data is there,
   * not on the local disk), but not the pages of its cache of those blocks on the local disk (the
   * same data again).
   */
  public long usedBytes() {
    return pool == null ? liveBytes : liveBytes - pool.cacheBytes() + pool.pooledBytes();
  }

  /**
   * df's available: what the pool can still take for a store whose blocks are in one (when the pool
   * can say), else {@link #availableBytes}.
   */
  public long freeBytes() {
    return pool != null && pool.availableBytes() >= 0 ? pool.availableBytes() : availableBytes();
  }
}
