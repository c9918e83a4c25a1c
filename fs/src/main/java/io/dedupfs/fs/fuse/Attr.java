package io.dedupfs.fs.fuse;

import java.time.Instant;
import java.util.Objects;

/**
 * The attributes of an inode, as the kernel sees them ({@code struct stat}).
 *
 * @param ino inode number; 1 is the root, 0 is reserved
 * @param mode file type and permission bits ({@code S_IFREG | 0644} ...)
 * @param nlink link count
 * @param uid owner
 * @param gid group
 * @param rdev device number for device nodes, else 0
 * @param size size in bytes
 * @param blocks allocated 512-byte blocks ({@code du}, and {@code cp}'s sparseness guess)
 * @param blksize preferred I/O size reported to applications
 */
public record Attr(
    long ino,
    int mode,
    int nlink,
    int uid,
    int gid,
    long rdev,
    long size,
    long blocks,
    int blksize,
    Instant atime,
    Instant mtime,
    Instant ctime) {

  public static final int S_IFMT = 0170000;
  public static final int S_IFSOCK = 0140000;
  public static final int S_IFLNK = 0120000;
  public static final int S_IFREG = 0100000;
  public static final int S_IFBLK = 0060000;
  public static final int S_IFDIR = 0040000;
  public static final int S_IFCHR = 0020000;
  public static final int S_IFIFO = 0010000;

  public Attr {
    Objects.requireNonNull(atime, "atime");
    Objects.requireNonNull(mtime, "mtime");
    Objects.requireNonNull(ctime, "ctime");
  }

  public boolean isDirectory() {
    return (mode & S_IFMT) == S_IFDIR;
  }

  public boolean isRegularFile() {
    return (mode & S_IFMT) == S_IFREG;
  }
}
