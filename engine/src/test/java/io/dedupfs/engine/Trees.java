package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Describes directory trees of a store, for comparing a tree with its snapshot or a restored copy.
 */
final class Trees {
  private Trees() {}

  /**
   * Every path below {@code dir} (relative to it; the root's .snapshots left out) with its type,
   * mode, owner, times (not ctime), size, extended attributes, and a checksum of its contents or
   * its symlink target.
   */
  static Map<String, String> describe(Datastore ds, long dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    describe(ds, dir, "", out);
    return out;
  }

  private static void describe(Datastore ds, long dir, String prefix, Map<String, String> out)
      throws IOException {
    for (DirEntry e : ds.readdir(dir, 2, Integer.MAX_VALUE)) {
      if (dir == Datastore.ROOT && e.name().equals(Datastore.SNAPSHOTS)) {
        continue;
      }
      String path = prefix + e.name();
      out.put(path, attributes(ds, e.ino()));
      if (e.mode() == Inode.S_IFDIR) {
        describe(ds, e.ino(), path + "/", out);
      }
    }
  }

  /**
   * One inode's description: everything a restore must bring back, nothing it may change (ctime,
   * number).
   */
  static String attributes(Datastore ds, long ino) throws IOException {
    Attributes a = ds.getattr(ino);
    StringBuilder b = new StringBuilder();
    b.append(Integer.toOctalString(a.mode()))
        .append(' ')
        .append(a.uid())
        .append(':')
        .append(a.gid())
        .append(" a=")
        .append(a.atimeNs())
        .append(" m=")
        .append(a.mtimeNs())
        .append(" size=")
        .append(a.size());
    for (String x : ds.listxattr(ino)) {
      b.append(' ')
          .append(x)
          .append('=')
          .append(new String(ds.getxattr(ino, x), StandardCharsets.UTF_8));
    }
    if (a.isRegularFile()) {
      b.append(" sha256=").append(sha256(ds, ino, a.size()));
    } else if ((a.mode() & Inode.S_IFMT) == Inode.S_IFLNK) {
      b.append(" -> ").append(ds.readlink(ino));
    } else if (!a.isDirectory()) {
      b.append(" rdev=").append(a.rdev());
    }
    return b.toString();
  }

  static String sha256(Datastore ds, long ino, long size) throws IOException {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    ByteBuffer buf = ByteBuffer.allocate(1 << 20);
    for (long off = 0; off < size; ) {
      buf.clear();
      int n = ds.read(ino, off, buf);
      if (n == 0) {
        break;
      }
      md.update(buf.array(), 0, n);
      off += n;
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /** Inode numbers of every path below {@code dir}, as {@link #describe} names them. */
  static Map<String, Long> inodes(Datastore ds, long dir) throws IOException {
    Map<String, Long> out = new TreeMap<>();
    List<Object[]> work = new ArrayList<>();
    work.add(new Object[] {dir, ""});
    while (!work.isEmpty()) {
      Object[] w = work.remove(work.size() - 1);
      long d = (Long) w[0];
      for (DirEntry e : ds.readdir(d, 2, Integer.MAX_VALUE)) {
        if (d == Datastore.ROOT && e.name().equals(Datastore.SNAPSHOTS)) {
          continue;
        }
        out.put(w[1] + e.name(), e.ino());
        if (e.mode() == Inode.S_IFDIR) {
          work.add(new Object[] {e.ino(), w[1] + e.name() + "/"});
        }
      }
    }
    return out;
  }
}
