package io.dedupfs.engine;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;

/**
 * Copies namespace records (inodes, directory entries, extended attributes) under new inode
 * numbers, inside its caller's write transaction, and gives each copied regular file's tree one
 * more reference at its root. Nothing below a root is read or written, so a copy costs work per
 * inode, whatever the size of the data. Names of one inode stay names of one copy (hard links).
 *
 * <p>Used by snapshots (copies into {@code .snapshots}) and by restores (copies out of them).
 */
final class NamespaceCopy {
  private final Namespace ns;
  private final BlockStore blocks;
  private final WriteTxn txn;
  private final long snapshot;
  private final Long ctimeNs;

  /** Inode copied (or, for a restore, restored in place) -> its copy. */
  final Map<Long, Long> copies = new HashMap<>();

  /** Inode records written, and roots given a reference: what a copy costs. */
  long inodesCopied;

  long rootsReferenced;

  /**
   * @param snapshot the {@link Inode#snapshot} of the copies
   * @param ctimeNs the change time of the copies; null keeps the originals'
   */
  NamespaceCopy(Namespace ns, BlockStore blocks, WriteTxn txn, long snapshot, Long ctimeNs) {
    this.ns = ns;
    this.blocks = blocks;
    this.txn = txn;
    this.snapshot = snapshot;
    this.ctimeNs = ctimeNs;
  }

  /**
   * Names in {@code dir} a copy of {@code src}, with its whole subtree for a directory; returns the
   * copy's number.
   */
  long copy(long dir, String name, Inode src) throws IOException {
    long c = link(dir, name, src);
    if (src.isDirectory()) {
      copyChildren(src.ino(), c);
    }
    return c;
  }

  /**
   * Copies every entry below directory {@code from} into directory {@code to}, depth first; the
   * store's {@code .snapshots} is left out.
   */
  void copyChildren(long from, long to) throws IOException {
    Deque<long[]> work = new ArrayDeque<>();
    work.push(new long[] {from, to});
    while (!work.isEmpty()) {
      long[] w = work.pop();
      for (DirEntry e : ns.listAll(txn, w[0])) {
        if (w[0] == Namespace.ROOT && e.name().equals(Snapshots.DIR)) {
          continue;
        }
        Inode s = ns.inode(txn, e.ino());
        long c = link(w[1], e.name(), s);
        if (s.isDirectory()) {
          work.push(new long[] {s.ino(), c});
        }
      }
    }
  }

  /**
   * Names in {@code dir} the copy of {@code src}, making it (without children) unless it exists.
   */
  private long link(long dir, String name, Inode src) throws IOException {
    Long done = src.isDirectory() ? null : copies.get(src.ino());
    if (done != null) {
      Inode c = ns.inode(txn, done);
      ns.put(txn, c.withNlink(c.nlink() + 1, ctimeNs == null ? c.ctimeNs() : ctimeNs));
      ns.putEntry(txn, dir, name, done, src.mode());
      return done;
    }
    long c = ns.allocateIno(txn);
    Inode copy = src.copyAs(c, src.isDirectory() ? 2 : 1, dir, snapshot);
    ns.put(txn, ctimeNs == null ? copy : copy.touched(ctimeNs));
    ns.replaceXattrs(txn, src.ino(), c);
    if (src.isRegular() && !src.root().isZero()) {
      blocks.incref(txn, src.root());
      rootsReferenced++;
    }
    ns.putEntry(txn, dir, name, c, src.mode());
    if (src.isDirectory()) {
      Inode d = ns.inode(txn, dir);
      ns.put(txn, d.withNlink(d.nlink() + 1, ctimeNs == null ? d.ctimeNs() : ctimeNs));
    }
    copies.put(src.ino(), c);
    inodesCopied++;
    return c;
  }
}
