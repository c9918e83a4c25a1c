package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * An inode as stored in table {@code inodes} (FORMAT.md). Immutable; changes make a new record.
 *
 * @param parent for a directory, the directory that holds it (its ".."); 0 otherwise
 * @param snapshot 0 for a live inode; for one in the read-only snapshot area, the id of the
 *     snapshot holding it (the inode number of its directory {@code .snapshots/NAME}), and for
 *     {@code .snapshots} itself its own number
 * @param root for a regular file, the root of its contents' tree
 * @param target for a symlink, its target; empty otherwise
 */
record Inode(
    long ino,
    int mode,
    int uid,
    int gid,
    int nlink,
    long size,
    long atimeNs,
    long mtimeNs,
    long ctimeNs,
    long rdev,
    long parent,
    long snapshot,
    int flags,
    int height,
    Hash root,
    String target) {

  static final int S_IFMT = 0170000;
  static final int S_IFDIR = 0040000;
  static final int S_IFREG = 0100000;
  static final int S_IFLNK = 0120000;

  /** Bytes before the symlink target: fixed fields, then the root hash. */
  private static final int FIXED = 4 * 4 + 8 * 7 + 4 + 1 + Hash.SIZE;

  boolean isDirectory() {
    return (mode & S_IFMT) == S_IFDIR;
  }

  boolean isRegular() {
    return (mode & S_IFMT) == S_IFREG;
  }

  boolean isSymlink() {
    return (mode & S_IFMT) == S_IFLNK;
  }

  /** In the snapshot area ({@code .snapshots} and below): no public operation may change it. */
  boolean isReadOnly() {
    return snapshot != 0;
  }

  int type() {
    return mode & S_IFMT;
  }

  /** The same inode under another number, in another directory (directories) and snapshot. */
  Inode copyAs(long newIno, int links, long newParent, long newSnapshot) {
    return new Inode(
        newIno,
        mode,
        uid,
        gid,
        links,
        size,
        atimeNs,
        mtimeNs,
        ctimeNs,
        rdev,
        isDirectory() ? newParent : 0,
        newSnapshot,
        flags,
        height,
        root,
        target);
  }

  /**
   * This inode's number, links, parent and snapshot with {@code from}'s contents, attributes and
   * times; ctime {@code now}.
   */
  Inode withContentsOf(Inode from, long now) {
    return new Inode(
        ino,
        from.mode,
        from.uid,
        from.gid,
        nlink,
        from.size,
        from.atimeNs,
        from.mtimeNs,
        now,
        from.rdev,
        parent,
        snapshot,
        from.flags,
        from.height,
        from.root,
        from.target);
  }

  Inode withNlink(int n, long now) {
    return new Inode(
        ino, mode, uid, gid, n, size, atimeNs, mtimeNs, now, rdev, parent, snapshot, flags, height,
        root, target);
  }

  /** The same inode with its change time set. */
  Inode touched(long now) {
    return withNlink(nlink, now);
  }

  Inode withParent(long p, long now) {
    return new Inode(
        ino, mode, uid, gid, nlink, size, atimeNs, mtimeNs, now, rdev, p, snapshot, flags, height,
        root, target);
  }

  Inode withTimes(long atime, long mtime, long ctime) {
    return new Inode(
        ino, mode, uid, gid, nlink, size, atime, mtime, ctime, rdev, parent, snapshot, flags,
        height, root, target);
  }

  Inode withOwner(int m, int u, int g, long now) {
    return new Inode(
        ino, m, u, g, nlink, size, atimeNs, mtimeNs, now, rdev, parent, snapshot, flags, height,
        root, target);
  }

  Inode withContent(Hash r, int h, long sz, long mtime, long ctime) {
    return new Inode(
        ino, mode, uid, gid, nlink, sz, atimeNs, mtime, ctime, rdev, parent, snapshot, flags, h, r,
        target);
  }

  ByteBuffer encode(ByteBuffer into) {
    byte[] t = target.getBytes(StandardCharsets.UTF_8);
    into.putInt(mode).putInt(uid).putInt(gid).putInt(nlink);
    into.putLong(size)
        .putLong(atimeNs)
        .putLong(mtimeNs)
        .putLong(ctimeNs)
        .putLong(rdev)
        .putLong(parent);
    into.putLong(snapshot);
    into.putInt(flags).put((byte) height);
    root.writeTo(into);
    return into.put(t).flip();
  }

  int encodedSize() {
    return FIXED + target.getBytes(StandardCharsets.UTF_8).length;
  }

  static Inode decode(long ino, ByteBuffer b) {
    int p = b.position();
    int mode = b.getInt(p);
    int uid = b.getInt(p + 4);
    int gid = b.getInt(p + 8);
    int nlink = b.getInt(p + 12);
    long size = b.getLong(p + 16);
    long atime = b.getLong(p + 24);
    long mtime = b.getLong(p + 32);
    long ctime = b.getLong(p + 40);
    long rdev = b.getLong(p + 48);
    long parent = b.getLong(p + 56);
    long snapshot = b.getLong(p + 64);
    int flags = b.getInt(p + 72);
    int height = b.get(p + 76);
    Hash root = Hash.read(b, p + 77);
    byte[] t = new byte[b.remaining() - FIXED];
    b.get(p + FIXED, t);
    return new Inode(
        ino,
        mode,
        uid,
        gid,
        nlink,
        size,
        atime,
        mtime,
        ctime,
        rdev,
        parent,
        snapshot,
        flags,
        height,
        root,
        new String(t, StandardCharsets.UTF_8));
  }
}
