package io.dedupfs.engine;

/**
 * A damaged block found by a scrub, as one file sees it.
 *
 * @param path a name of the file, relative to the store's root; for a file that has no name left
 *     (unlinked while open) "(unlinked inode N)"
 * @param offset the first byte of the file's range that the block covers (for a damaged tree node:
 *     the whole range below it)
 * @param length the bytes of that range, up to the file's size
 * @param reason what is wrong with the block
 */
public record Damage(String path, long ino, long offset, long length, String reason) {}
