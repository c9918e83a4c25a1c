package io.dedupfs.engine;

import com.google.common.hash.Hashing;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Tables {@code inodes}, {@code dirents}, {@code xattrs}, {@code orphans} and the inode counter in
 * {@code meta} (FORMAT.md). Every method runs inside its caller's transaction.
 *
 * <p>A directory entry's key is the parent's inode number, a 63-bit hash of the name, and the name;
 * listing a directory walks its entries in hash order, and the hash is the offset a listing resumes
 * from, so entries added or removed between two calls do not make others be skipped or repeated
 * (unless two names of one directory share a 63-bit hash).
 */
final class Namespace {
  static final long ROOT = 1;
  static final int NAME_MAX = 255;

  /** Offsets 1 and 2 are "." and ".."; name hashes start above them. */
  static final long FIRST_COOKIE = 3;

  private static final byte[] NEXT_INO = "nextIno".getBytes(StandardCharsets.US_ASCII);

  private final Lmdb db;

  Namespace(Lmdb db) {
    this.db = db;
  }

  // ---- inodes

  /** Inode {@code ino}, or null when there is none. */
  Inode find(ReadTxn txn, long ino) {
    try {
      return inode(txn, ino);
    } catch (NoSuchFileException e) {
      return null;
    }
  }

  Inode inode(ReadTxn txn, long ino) throws NoSuchFileException {
    ByteBuffer v = db.inodes.get(txn, Lmdb.key(ino));
    if (v == null) {
      throw new NoSuchFileException("inode " + ino);
    }
    return Inode.decode(ino, v);
  }

  void put(WriteTxn txn, Inode inode) {
    db.inodes.put(txn, Lmdb.key(inode.ino()), inode.encode(Lmdb.value(inode.encodedSize())));
  }

  void delete(WriteTxn txn, long ino) {
    db.inodes.delete(txn, Lmdb.key(ino));
    db.orphans.delete(txn, Lmdb.key(ino));
    if (db.folded.present()) {
      db.folded.delete(txn, Lmdb.key(ino));
    }
    ByteBuffer prefix = Lmdb.key(ino);
    for (byte[] key : keysWithPrefix(txn, db.xattrs, prefix)) {
      db.xattrs.delete(txn, direct(key));
    }
  }

  long allocateIno(WriteTxn txn) {
    long ino = peekNextIno(txn);
    ByteBuffer val = Lmdb.value(8).putLong(ino + 1).flip();
    db.meta.put(txn, Lmdb.key().put(NEXT_INO).flip(), val);
    return ino;
  }

  /** The number the next new inode will get. */
  long peekNextIno(ReadTxn txn) {
    ByteBuffer v = db.meta.get(txn, Lmdb.key().put(NEXT_INO).flip());
    return v == null ? ROOT + 1 : v.getLong(v.position());
  }

  long inodeCount(ReadTxn txn) {
    return db.inodes.stat(txn).entries;
  }

  void markOrphan(WriteTxn txn, long ino) {
    db.orphans.put(txn, Lmdb.key(ino), Lmdb.value(0).flip());
  }

  List<Long> orphans(ReadTxn txn) {
    List<Long> out = new ArrayList<>();
    try (TableCursor c = db.orphans.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        out.add(c.key().getLong(c.key().position()));
      }
    }
    return out;
  }

  // ---- directory entries

  /** The inode number and type bits of {@code name} in {@code dir}, or null. */
  long[] entry(ReadTxn txn, long dir, String name) {
    ByteBuffer v = db.dirents.get(txn, direntKey(dir, name));
    return v == null ? null : new long[] {v.getLong(v.position()), v.getInt(v.position() + 8)};
  }

  void putEntry(WriteTxn txn, long dir, String name, long ino, int mode) {
    ByteBuffer val = Lmdb.value(12).putLong(ino).putInt(mode & Inode.S_IFMT).flip();
    db.dirents.put(txn, direntKey(dir, name), val);
  }

  void deleteEntry(WriteTxn txn, long dir, String name) {
    db.dirents.delete(txn, direntKey(dir, name));
  }

  boolean isEmpty(ReadTxn txn, long dir) {
    return list(txn, dir, FIRST_COOKIE, 1).isEmpty();
  }

  /** Up to {@code max} entries of {@code dir} whose cookie is at least {@code fromCookie}. */
  List<DirEntry> list(ReadTxn txn, long dir, long fromCookie, int max) {
    List<DirEntry> out = new ArrayList<>();
    ByteBuffer start = Lmdb.key().putLong(dir).putLong(fromCookie).flip();
    try (TableCursor c = db.dirents.openCursor(txn)) {
      for (boolean ok = c.seek(start); ok && out.size() < max; ok = c.next()) {
        ByteBuffer k = c.key();
        int p = k.position();
        if (k.getLong(p) != dir) {
          break;
        }
        long cookie = k.getLong(p + 8);
        byte[] name = new byte[k.remaining() - 16];
        k.get(p + 16, name);
        ByteBuffer v = c.val();
        out.add(
            new DirEntry(
                new String(name, StandardCharsets.UTF_8),
                v.getLong(v.position()),
                v.getInt(v.position() + 8),
                cookie + 1));
      }
    }
    return out;
  }

  private static ByteBuffer direntKey(long dir, String name) {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    return Lmdb.key().putLong(dir).putLong(cookie(n)).put(n).flip();
  }

  static long cookie(byte[] name) {
    long h =
        Hashing.murmur3_128().hashBytes(name).asLong()
            >>> 2; // below 2^62, so cookie + 1 stays positive
    return h < FIRST_COOKIE ? h + FIRST_COOKIE : h;
  }

  /** Every entry of {@code dir}. */
  List<DirEntry> listAll(ReadTxn txn, long dir) {
    return list(txn, dir, FIRST_COOKIE, Integer.MAX_VALUE);
  }

  // ---- paths: "/"-separated, relative to the root, "" for the root itself

  /** The components of {@code path}; empty components (doubled or outer slashes) are ignored. */
  static List<String> components(String path) throws FsException {
    List<String> out = new ArrayList<>();
    for (String part : path.split("/")) {
      if (part.isEmpty()) {
        continue;
      }
      if (part.equals(".") || part.equals("..")) {
        throw new FsException(
            FsException.Kind.INVALID_ARGUMENT, path, "a store path has no . or .. components");
      }
      out.add(part);
    }
    return out;
  }

  /** {@code path} as this store writes paths: components joined by "/", no outer slashes. */
  static String normalize(String path) throws FsException {
    return String.join("/", components(path));
  }

  /**
   * The inode at {@code path}; a symlink is not followed, not even in the middle
   * (NotDirectoryException).
   */
  long resolve(ReadTxn txn, String path) throws IOException {
    return resolve(txn, ROOT, path);
  }

  /** {@link #resolve(Txn, String)} relative to directory {@code from}. */
  long resolve(ReadTxn txn, long from, String path) throws IOException {
    long ino = from;
    for (String part : components(path)) {
      if (!inode(txn, ino).isDirectory()) {
        throw new NotDirectoryException(path);
      }
      long[] e = entry(txn, ino, part);
      if (e == null) {
        throw new NoSuchFileException(path);
      }
      ino = e[0];
    }
    return ino;
  }

  /**
   * A path of each of {@code wanted} that has a name (one of them, for a hard-linked file); an
   * inode without a name (an orphan) is left out. One pass over all entries.
   */
  Map<Long, String> paths(ReadTxn txn, Set<Long> wanted) {
    Map<Long, Long> parentOf = new HashMap<>();
    Map<Long, String> nameOf = new HashMap<>();
    try (TableCursor c = db.dirents.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        ByteBuffer v = c.val();
        long ino = v.getLong(v.position());
        boolean dir = v.getInt(v.position() + 8) == Inode.S_IFDIR;
        if ((dir || wanted.contains(ino)) && !nameOf.containsKey(ino)) {
          ByteBuffer k = c.key();
          byte[] name = new byte[k.remaining() - 16];
          k.get(k.position() + 16, name);
          parentOf.put(ino, k.getLong(k.position()));
          nameOf.put(ino, new String(name, StandardCharsets.UTF_8));
        }
      }
    }
    Map<Long, String> out = new HashMap<>();
    for (long ino : wanted) {
      StringBuilder path = new StringBuilder();
      long at = ino;
      int depth = 0;
      while (at != ROOT && nameOf.containsKey(at) && depth++ < 10_000) {
        path.insert(0, path.length() == 0 ? nameOf.get(at) : nameOf.get(at) + "/");
        at = parentOf.get(at);
      }
      if (at == ROOT) {
        out.put(ino, path.toString());
      }
    }
    return out;
  }

  // ---- extended attributes

  byte[] xattr(ReadTxn txn, long ino, String name) {
    ByteBuffer v = db.xattrs.get(txn, xattrKey(ino, name));
    return v == null ? null : Lmdb.bytes(v);
  }

  void putXattr(WriteTxn txn, long ino, String name, byte[] value) {
    ByteBuffer key = xattrKey(ino, name);
    ByteBuffer v = db.xattrs.reserve(txn, key, value.length);
    v.put(0, value);
  }

  boolean deleteXattr(WriteTxn txn, long ino, String name) {
    return db.xattrs.delete(txn, xattrKey(ino, name));
  }

  List<String> xattrNames(ReadTxn txn, long ino) {
    List<String> out = new ArrayList<>();
    for (byte[] key : keysWithPrefix(txn, db.xattrs, Lmdb.key(ino))) {
      out.add(new String(key, 8, key.length - 8, StandardCharsets.UTF_8));
    }
    return out;
  }

  /** Whether any inode has an extended attribute called {@code name}: one pass over the table. */
  boolean anyXattrNamed(ReadTxn txn, String name) {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    try (TableCursor c = db.xattrs.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        ByteBuffer k = c.key();
        if (k.remaining() == 8 + n.length
            && k.slice(k.position() + 8, n.length).equals(ByteBuffer.wrap(n))) {
          return true;
        }
      }
    }
    return false;
  }

  /** Every extended attribute of {@code ino}, by name, in name order. */
  Map<String, byte[]> xattrs(ReadTxn txn, long ino) {
    Map<String, byte[]> out = new java.util.TreeMap<>();
    for (String name : xattrNames(txn, ino)) {
      out.put(name, xattr(txn, ino, name));
    }
    return out;
  }

  /** Makes {@code to}'s extended attributes those of {@code from}. */
  void replaceXattrs(WriteTxn txn, long from, long to) {
    for (String name : xattrNames(txn, to)) {
      deleteXattr(txn, to, name);
    }
    xattrs(txn, from).forEach((name, value) -> putXattr(txn, to, name, value));
  }

  private static ByteBuffer xattrKey(long ino, String name) {
    return Lmdb.key().putLong(ino).put(name.getBytes(StandardCharsets.UTF_8)).flip();
  }

  private static List<byte[]> keysWithPrefix(ReadTxn txn, Table table, ByteBuffer prefix) {
    byte[] p = Lmdb.bytes(prefix);
    List<byte[]> out = new ArrayList<>();
    try (TableCursor c = table.openCursor(txn)) {
      for (boolean ok = c.seek(prefix); ok; ok = c.next()) {
        byte[] k = Lmdb.bytes(c.key());
        if (k.length < p.length || !java.util.Arrays.equals(k, 0, p.length, p, 0, p.length)) {
          break;
        }
        out.add(k);
      }
    }
    return out;
  }

  private static ByteBuffer direct(byte[] key) {
    return Lmdb.key().put(key).flip();
  }
}
