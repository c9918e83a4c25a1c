package io.dedupfs.engine;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What differs between two namespace trees of one store (a snapshot and a later snapshot or the
 * live tree), in one read transaction. Entries are paired by path; a regular file's two trees are
 * walked side by side and every subtree whose hash (and level) is the same on both sides is
 * skipped, so the data work is proportional to what changed (the namespace walk is per entry).
 * Leaves that differ are compared byte by byte for exact ranges.
 */
final class Diff {
  private final Namespace ns;
  private final BlockStore blocks;
  private final Geometry geometry;
  private final ReadTxn txn;
  private final List<Difference> out = new ArrayList<>();

  Diff(Namespace ns, BlockStore blocks, Geometry geometry, ReadTxn txn) {
    this.ns = ns;
    this.blocks = blocks;
    this.geometry = geometry;
    this.txn = txn;
  }

  /**
   * The differences between snapshot {@code older} and snapshot {@code newer}, or, for {@code
   * newer} null, the live tree it was taken of (see {@link Datastore#diff}).
   */
  List<Difference> snapshots(Snapshots snapshots, SnapshotInfo older, String newer)
      throws IOException {
    if (newer != null) {
      return run(older.ino(), snapshots.find(txn, newer).ino());
    }
    long live = ns.resolve(txn, older.sourcePath());
    if (older.directory()) {
      return run(older.ino(), live);
    }
    // a file snapshot is a directory holding the file: compare the files
    DirEntry only = ns.listAll(txn, older.ino()).get(0);
    return run(only.ino(), live).stream()
        .map(
            d ->
                new Difference(
                    "/" + only.name() + (d.path().equals("/") ? "" : d.path()),
                    d.change(),
                    d.ranges()))
        .toList();
  }

  /** The differences between directories (or files) {@code older} and {@code newer}. */
  List<Difference> run(long older, long newer) throws IOException {
    Inode a = ns.inode(txn, older);
    Inode b = ns.inode(txn, newer);
    compare("", a, b);
    return out;
  }

  private void compare(String path, Inode a, Inode b) throws IOException {
    String shown = path.isEmpty() ? "/" : path;
    if (a.type() != b.type()) {
      out.add(new Difference(shown, Difference.Change.MODIFIED, List.of()));
      return;
    }
    boolean attrs =
        a.mode() != b.mode()
            || a.uid() != b.uid()
            || a.gid() != b.gid()
            || a.mtimeNs() != b.mtimeNs()
            || a.rdev() != b.rdev()
            || !sameXattrs(a.ino(), b.ino());
    if (a.isRegular()) {
      if (!a.root().equals(b.root()) || a.height() != b.height() || a.size() != b.size()) {
        out.add(new Difference(shown, Difference.Change.MODIFIED, ranges(a, b)));
        return;
      }
    } else if (a.isSymlink() && !a.target().equals(b.target())) {
      out.add(new Difference(shown, Difference.Change.MODIFIED, List.of()));
      return;
    }
    if (attrs) {
      out.add(new Difference(shown, Difference.Change.ATTRIBUTES, List.of()));
    }
    if (a.isDirectory()) {
      Map<String, Long> left = entries(a.ino());
      Map<String, Long> right = entries(b.ino());
      TreeMap<String, Boolean> names = new TreeMap<>();
      left.keySet().forEach(n -> names.put(n, true));
      right.keySet().forEach(n -> names.put(n, true));
      for (String n : names.keySet()) {
        String p = path + "/" + n;
        Long l = left.get(n);
        Long r = right.get(n);
        if (l == null) {
          out.add(new Difference(p, Difference.Change.ADDED, List.of()));
        } else if (r == null) {
          out.add(new Difference(p, Difference.Change.REMOVED, List.of()));
        } else if (!l.equals(r)) {
          compare(p, ns.inode(txn, l), ns.inode(txn, r));
        }
      }
    }
  }

  private Map<String, Long> entries(long dir) {
    Map<String, Long> m = new TreeMap<>();
    for (DirEntry e : ns.listAll(txn, dir)) {
      if (!(dir == Namespace.ROOT && e.name().equals(Snapshots.DIR))) {
        m.put(e.name(), e.ino());
      }
    }
    return m;
  }

  private boolean sameXattrs(long a, long b) {
    Map<String, byte[]> x = ns.xattrs(txn, a);
    Map<String, byte[]> y = ns.xattrs(txn, b);
    if (!x.keySet().equals(y.keySet())) {
      return false;
    }
    for (var e : x.entrySet()) {
      if (!Arrays.equals(e.getValue(), y.get(e.getKey()))) {
        return false;
      }
    }
    return true;
  }

  // ---- byte ranges

  private final List<Difference.ByteRange> ranges = new ArrayList<>();

  private List<Difference.ByteRange> ranges(Inode a, Inode b) throws IOException {
    ranges.clear();
    int level = Math.max(a.height(), b.height());
    long end = Math.max(a.size(), b.size());
    long shorter = Math.min(a.size(), b.size());
    walk(a.root(), a.height(), b.root(), b.height(), level, 0, shorter);
    if (shorter < end) {
      add(shorter, end - shorter); // bytes only the longer version has (zeros included)
    }
    return List.copyOf(ranges);
  }

  /**
   * The subtrees at {@code offset} and {@code level} of both trees; a tree lower than {@code level}
   * is the leftmost subtree there (its other slots are holes).
   */
  private void walk(Hash x, int lx, Hash y, int ly, int level, long offset, long end)
      throws IOException {
    if (offset >= end) {
      return;
    }
    if (lx == ly && lx == level && x.equals(y)) {
      return; // the same subtree: skipped
    }
    if (level == 0) {
      leaf(x, y, offset, end);
      return;
    }
    byte[] cx = lx == level && !x.isZero() ? blocks.load(txn, x, level) : null;
    byte[] cy = ly == level && !y.isZero() ? blocks.load(txn, y, level) : null;
    long span = geometry.span(level - 1);
    for (int i = 0; i < Geometry.FANOUT; i++) {
      Hash kx = cx != null ? Geometry.child(cx, i) : (i == 0 && lx < level ? x : Hash.ZERO);
      int kxl = cx != null || !(i == 0 && lx < level) ? level - 1 : lx;
      Hash ky = cy != null ? Geometry.child(cy, i) : (i == 0 && ly < level ? y : Hash.ZERO);
      int kyl = cy != null || !(i == 0 && ly < level) ? level - 1 : ly;
      if (kx.isZero() && ky.isZero()) {
        continue;
      }
      walk(kx, kxl, ky, kyl, level - 1, offset + i * span, end);
    }
  }

  private void leaf(Hash x, Hash y, long offset, long end) throws IOException {
    byte[] bx = new byte[geometry.leafSize];
    byte[] by = new byte[geometry.leafSize];
    if (!x.isZero()) {
      blocks.loadLeafInto(txn, x, bx);
    }
    if (!y.isZero()) {
      blocks.loadLeafInto(txn, y, by);
    }
    int n = (int) Math.min(geometry.leafSize, end - offset);
    for (int i = 0; i < n; ) {
      if (bx[i] == by[i]) {
        i++;
        continue;
      }
      int j = i;
      while (j < n && bx[j] != by[j]) {
        j++;
      }
      add(offset + i, j - i);
      i = j;
    }
  }

  private void add(long offset, long length) {
    if (!ranges.isEmpty()) {
      Difference.ByteRange last = ranges.get(ranges.size() - 1);
      if (last.offset() + last.length() >= offset) {
        long e = Math.max(last.offset() + last.length(), offset + length);
        ranges.set(ranges.size() - 1, new Difference.ByteRange(last.offset(), e - last.offset()));
        return;
      }
    }
    ranges.add(new Difference.ByteRange(offset, length));
  }
}
