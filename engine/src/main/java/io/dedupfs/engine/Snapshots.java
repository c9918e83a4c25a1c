package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongPredicate;

/**
 * Snapshots: copies of a file's or a directory's namespace records under {@code .snapshots/NAME}
 * that share every block with their source, and their index, table {@code snapshots} (FORMAT.md).
 * Every method runs inside its caller's transaction.
 */
final class Snapshots {
  /** The read-only directory below the root that holds every snapshot. */
  static final String DIR = ".snapshots";

  private static final byte FILE = 0;
  private static final byte DIRECTORY = 1;

  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;

  Snapshots(Lmdb db, Namespace ns, BlockStore blocks) {
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
  }

  /** The inode number of {@code .snapshots}, or 0 before the first snapshot. */
  long dir(ReadTxn txn) throws IOException {
    long[] e = ns.entry(txn, Namespace.ROOT, DIR);
    if (e == null) {
      return 0;
    }
    if (!ns.inode(txn, e[0]).isReadOnly()) {
      throw new StoreException(
          "the store's "
              + DIR
              + " is an ordinary directory (made by an older dedupfs?): rename it first");
    }
    return e[0];
  }

  long makeDir(WriteTxn txn, long now) throws IOException {
    long d = dir(txn);
    if (d != 0) {
      return d;
    }
    d = ns.allocateIno(txn);
    ns.put(
        txn,
        new Inode(
            d,
            Inode.S_IFDIR | 0755,
            0,
            0,
            2,
            0,
            now,
            now,
            now,
            0,
            Namespace.ROOT,
            d,
            0,
            0,
            Hash.ZERO,
            ""));
    ns.putEntry(txn, Namespace.ROOT, DIR, d, Inode.S_IFDIR);
    Inode root = ns.inode(txn, Namespace.ROOT);
    ns.put(txn, root.withNlink(root.nlink() + 1, now).withTimes(root.atimeNs(), now, now));
    return d;
  }

  /** What {@link #create} copied: for tests of its cost. */
  record Cost(long inodes, long rootsReferenced) {}

  private volatile Cost lastCost = new Cost(0, 0);

  Cost lastCost() {
    return lastCost;
  }

  /**
   * Copies the file or directory at {@code source} (normalized; "" for the whole store) into {@code
   * .snapshots/name}: a directory's entries directly below it (the store's own {@code .snapshots}
   * left out), a file under its own name. Its files must have been flushed.
   */
  SnapshotInfo create(WriteTxn txn, String name, String source, long now) throws IOException {
    Inode src = ns.inode(txn, ns.resolve(txn, source));
    if (src.isReadOnly()) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT,
          source,
          "is in " + DIR + ", which holds snapshots already");
    }
    if (!src.isDirectory() && !src.isRegular()) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT,
          source,
          "a snapshot is of a regular file or a directory");
    }
    long snaps = makeDir(txn, now);
    if (ns.entry(txn, snaps, name) != null) {
      throw new FileAlreadyExistsException(name, null, "a snapshot of that name exists");
    }
    long id = ns.allocateIno(txn);
    Inode top =
        src.isDirectory()
            ? src.copyAs(id, 2, snaps, id)
            : new Inode(
                id,
                Inode.S_IFDIR | 0755,
                0,
                0,
                2,
                0,
                now,
                now,
                now,
                0,
                snaps,
                id,
                0,
                0,
                Hash.ZERO,
                "");
    ns.put(txn, top);
    ns.putEntry(txn, snaps, name, id, Inode.S_IFDIR);
    Inode s = ns.inode(txn, snaps);
    ns.put(txn, s.withNlink(s.nlink() + 1, now).withTimes(s.atimeNs(), now, now));
    NamespaceCopy copy = new NamespaceCopy(ns, blocks, txn, id, null);
    if (src.isDirectory()) {
      ns.replaceXattrs(txn, src.ino(), id);
      copy.copyChildren(src.ino(), id);
    } else {
      List<String> parts = Namespace.components(source);
      copy.copy(id, parts.get(parts.size() - 1), src);
    }
    lastCost = new Cost(copy.inodesCopied + 1, copy.rootsReferenced);
    SnapshotInfo info = new SnapshotInfo(name, source, src.isDirectory(), now, id);
    put(txn, info);
    return info;
  }

  List<SnapshotInfo> list(ReadTxn txn) throws IOException {
    List<SnapshotInfo> out = new ArrayList<>();
    if (!db.snapshots.present()) {
      return out;
    }
    try (TableCursor c = db.snapshots.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        out.add(decode(c.key().getLong(c.key().position()), c.val()));
      }
    }
    return out;
  }

  /** The snapshot named {@code name}; NoSuchFileException if there is none. */
  SnapshotInfo find(ReadTxn txn, String name) throws IOException {
    long snaps = dir(txn);
    long[] e = snaps == 0 ? null : ns.entry(txn, snaps, name);
    ByteBuffer v =
        e == null || !db.snapshots.present() ? null : db.snapshots.get(txn, Lmdb.key(e[0]));
    if (v == null) {
      throw new NoSuchFileException(name, null, "no such snapshot");
    }
    return decode(e[0], v);
  }

  /**
   * Deletes a snapshot's records and queues one decrement per file root. A file whose contents are
   * open ({@code open}) becomes an orphan instead, deleted when it is forgotten.
   */
  void delete(WriteTxn txn, String name, long now, LongPredicate open) throws IOException {
    SnapshotInfo info = find(txn, name);
    Map<Long, Inode> seen = new LinkedHashMap<>();
    Deque<Long> dirs = new ArrayDeque<>();
    dirs.push(info.ino());
    while (!dirs.isEmpty()) {
      long d = dirs.pop();
      for (DirEntry e : ns.listAll(txn, d)) {
        ns.deleteEntry(txn, d, e.name());
        if (!seen.containsKey(e.ino())) {
          Inode i = ns.inode(txn, e.ino());
          seen.put(e.ino(), i);
          if (i.isDirectory()) {
            dirs.push(e.ino());
          }
        }
      }
    }
    for (Inode i : seen.values()) {
      if (i.isRegular() && open.test(i.ino())) {
        ns.put(txn, i.withNlink(0, now));
        ns.markOrphan(txn, i.ino());
      } else {
        ns.delete(txn, i.ino());
        blocks.decref(txn, i.root());
      }
    }
    ns.delete(txn, info.ino());
    long snaps = dir(txn);
    ns.deleteEntry(txn, snaps, name);
    Inode s = ns.inode(txn, snaps);
    ns.put(txn, s.withNlink(s.nlink() - 1, now).withTimes(s.atimeNs(), now, now));
    db.snapshots.delete(txn, Lmdb.key(info.ino()));
  }

  // ---- records of table snapshots: id (int64) -> createdNs (int64), kind (1 byte), name length
  // (uint16), name, source path (the rest)

  void put(WriteTxn txn, SnapshotInfo info) {
    byte[] name = info.name().getBytes(StandardCharsets.UTF_8);
    byte[] source = info.sourcePath().getBytes(StandardCharsets.UTF_8);
    ByteBuffer v = Lmdb.value(8 + 1 + 2 + name.length + source.length);
    v.putLong(info.createdNs())
        .put(info.directory() ? DIRECTORY : FILE)
        .putShort((short) name.length)
        .put(name)
        .put(source);
    db.snapshots.put(txn, Lmdb.key(info.ino()), v.flip());
  }

  private static SnapshotInfo decode(long id, ByteBuffer v) {
    int p = v.position();
    long created = v.getLong(p);
    boolean directory = v.get(p + 8) == DIRECTORY;
    int nameLength = Short.toUnsignedInt(v.getShort(p + 9));
    byte[] name = new byte[nameLength];
    v.get(p + 11, name);
    byte[] source = new byte[v.remaining() - 11 - nameLength];
    v.get(p + 11 + nameLength, source);
    return new SnapshotInfo(
        new String(name, StandardCharsets.UTF_8),
        new String(source, StandardCharsets.UTF_8),
        directory,
        created,
        id);
  }
}
