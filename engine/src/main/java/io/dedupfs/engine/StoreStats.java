package io.dedupfs.engine;

/**
 * Space figures for {@code statfs}.
 *
 * @param storeBytes bytes the store's file takes on its disk
 * @param liveBytes bytes of the store's pages that hold data; the rest of {@code storeBytes} is
 *     free pages, which writes reuse before the file grows (after a delete, until compact)
 * @param diskFreeBytes bytes still free on that disk for an unprivileged writer
 * @param inodes inodes in use
 */
public record StoreStats(
    long storeBytes, long liveBytes, long diskFreeBytes, long inodes, int leafSize) {
  /** What the store can still take: the disk's free space and the store's own free pages. */
  public long availableBytes() {
    return diskFreeBytes + Math.max(0, storeBytes - liveBytes);
  }
}
