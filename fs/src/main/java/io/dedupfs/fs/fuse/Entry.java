package io.dedupfs.fs.fuse;

import java.util.Objects;

/**
 * A directory entry the kernel may cache: the answer to lookup, mknod, mkdir, symlink, link and
 * create. Every entry returned counts as one lookup of {@code attr.ino()} that a later {@code
 * forget} releases.
 *
 * @param attr the inode's attributes ({@code attr.ino()} is the inode number)
 * @param generation distinguishes reuses of an inode number over the life of the filesystem
 */
public record Entry(Attr attr, long generation) {
  public Entry {
    Objects.requireNonNull(attr, "attr");
  }

  public static Entry of(Attr attr) {
    return new Entry(attr, 0);
  }
}
