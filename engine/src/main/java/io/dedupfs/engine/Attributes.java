package io.dedupfs.engine;

/**
 * What {@code stat} shows of an inode. Times are nanoseconds since the epoch; {@code mode} holds
 * the file type bits and the permission bits as in {@code st_mode}.
 *
 * @param blocks 512-byte blocks, as in {@code st_blocks}: the file's size rounded up, so that tools
 *     such as {@code cp} treat an image as dense and copy it with copy_file_range
 */
public record Attributes(
    long ino,
    int mode,
    int nlink,
    int uid,
    int gid,
    long rdev,
    long size,
    long blocks,
    long atimeNs,
    long mtimeNs,
    long ctimeNs) {

  public boolean isDirectory() {
    return (mode & Inode.S_IFMT) == Inode.S_IFDIR;
  }

  public boolean isRegularFile() {
    return (mode & Inode.S_IFMT) == Inode.S_IFREG;
  }

  static Attributes of(Inode i, long size, long mtimeNs, long ctimeNs) {
    return new Attributes(
        i.ino(),
        i.mode(),
        i.nlink(),
        i.uid(),
        i.gid(),
        i.rdev(),
        size,
        (size + 511) / 512,
        i.atimeNs(),
        mtimeNs,
        ctimeNs);
  }
}
