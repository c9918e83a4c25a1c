package io.dedupfs.fs.fuse;

/**
 * Receives the entries of one readdir reply. The binding packs each entry straight into the reply
 * buffer (as {@code fuse_add_direntry} does); when the kernel's buffer is full it answers {@code
 * false} and the entry is not part of this reply: stop there, the kernel asks again from that
 * entry's offset. Valid only during the readdir call it was passed to.
 */
@FunctionalInterface
public interface DirectoryFiller {
  /**
   * @param name entry name (not containing '/' or NUL); "." and ".." are the application's to list
   * @param ino inode number, used for {@code d_ino} only (the kernel looks names up separately)
   * @param mode file type bits (only {@code mode & S_IFMT} is used, for {@code d_type})
   * @param nextOffset the offset the kernel passes to the next readdir to continue after this
   *     entry; must be non-zero and unique within the directory listing
   * @return false when the reply is full and the entry was not added
   */
  boolean add(String name, long ino, int mode, long nextOffset);
}
