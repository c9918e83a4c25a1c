package io.dedupfs.engine;

/**
 * A snapshot, browsable read-only under {@code .snapshots/NAME}.
 *
 * @param sourcePath what it was taken of, relative to the store's root ("" for the whole store)
 * @param directory whether that was a directory (or the whole store); a file's snapshot holds the
 *     file under its own name
 * @param createdNs when it was taken, nanoseconds since the epoch
 * @param ino the inode number of its directory {@code .snapshots/NAME}
 */
public record SnapshotInfo(
    String name, String sourcePath, boolean directory, long createdNs, long ino) {}
