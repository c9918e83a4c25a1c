package io.dedupfs.engine;

/**
 * Space figures for {@code statfs}.
 *
 * @param storeBytes bytes the store's file takes on its disk
 * @param diskFreeBytes bytes still free on that disk for an unprivileged writer
 * @param inodes inodes in use
 */
public record StoreStats(long storeBytes, long diskFreeBytes, long inodes, int leafSize) {}
