package io.dedupfs.fs.fuse;

/**
 * Filesystem statistics ({@code struct statvfs}) for {@code statfs(2)} / {@code df}.
 *
 * @param blockSize preferred I/O size ({@code f_bsize})
 * @param fragmentSize the unit of the block counts ({@code f_frsize})
 * @param blocks total blocks, in fragmentSize units
 * @param blocksFree free blocks
 * @param blocksAvail blocks available to unprivileged users
 * @param files total inodes
 * @param filesFree free inodes
 * @param nameMax longest file name in bytes
 */
public record Statfs(
    long blockSize,
    long fragmentSize,
    long blocks,
    long blocksFree,
    long blocksAvail,
    long files,
    long filesFree,
    long nameMax) {}
