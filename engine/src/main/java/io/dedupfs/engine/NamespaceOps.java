package io.dedupfs.engine;

import static io.dedupfs.engine.Checks.checkName;
import static io.dedupfs.engine.Checks.now;
import static io.dedupfs.engine.Checks.requireChangeable;
import static io.dedupfs.engine.Checks.requireDir;
import static io.dedupfs.engine.Checks.requireLiveDir;
import static io.dedupfs.engine.Datastore.RENAME_EXCHANGE;
import static io.dedupfs.engine.Datastore.RENAME_NOREPLACE;
import static io.dedupfs.engine.Datastore.XATTR_CREATE;
import static io.dedupfs.engine.Datastore.XATTR_REPLACE;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The namespace rules: names, links, directories, renames, attributes and extended attributes, and
 * the deletion of inodes nothing names or holds any more ({@link #forget}). Each change is one LMDB
 * write transaction (atomic: LMDB has a single writer); it takes no file lock inside one. The
 * records themselves are {@link Namespace}'s; the snapshot area is read-only here.
 */
final class NamespaceOps {
  private static final long ROOT = Namespace.ROOT;
  private static final String SNAPSHOTS = Snapshots.DIR;
  private static final int MAX_LINKS = 65000;
  private static final int XATTR_MAX = 64 * 1024;

  private final Path dir;
  private final DatastoreConfig config;
  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;
  private final OpenFiles files;
  private final Contents contents;
  private final WriteBack writeBack;

  NamespaceOps(
      Path dir,
      DatastoreConfig config,
      Lmdb db,
      Namespace ns,
      BlockStore blocks,
      OpenFiles files,
      Contents contents,
      WriteBack writeBack) {
    this.dir = dir;
    this.config = config;
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
    this.files = files;
    this.contents = contents;
    this.writeBack = writeBack;
  }

  Attributes getattr(long ino) throws IOException {
    Inode i = db.read(txn -> ns.inode(txn, ino));
    return files.attributes(i);
  }

  Attributes lookup(long parent, String name) throws IOException {
    checkName(name);
    Inode i =
        db.read(
            txn -> {
              requireDir(ns.inode(txn, parent));
              long[] e = ns.entry(txn, parent, name);
              if (e == null) {
                throw new NoSuchFileException(name);
              }
              return ns.inode(txn, e[0]);
            });
    return files.attributes(i);
  }

  /**
   * Creates a regular file, device, fifo or socket ({@code mode} holds the type; none means a
   * regular file).
   */
  Attributes mknod(long parent, String name, int mode, long rdev, int uid, int gid)
      throws IOException {
    int type = mode & Inode.S_IFMT;
    if (type == Inode.S_IFDIR || type == Inode.S_IFLNK) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, name, "mknod makes neither directories nor symlinks");
    }
    int m = type == 0 ? mode | Inode.S_IFREG : mode;
    return createEntry(
        parent,
        name,
        (ino, now) ->
            new Inode(ino, m, uid, gid, 1, 0, now, now, now, rdev, 0, 0, 0, 0, Hash.ZERO, ""));
  }

  Attributes mkdir(long parent, String name, int mode, int uid, int gid) throws IOException {
    int m = (mode & 07777) | Inode.S_IFDIR;
    return createEntry(
        parent,
        name,
        (ino, now) ->
            new Inode(ino, m, uid, gid, 2, 0, now, now, now, 0, parent, 0, 0, 0, Hash.ZERO, ""));
  }

  Attributes symlink(long parent, String name, String target, int uid, int gid) throws IOException {
    if (target.isEmpty() || target.getBytes(StandardCharsets.UTF_8).length > 4095) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, name, "a symlink target has 1 to 4095 bytes");
    }
    long size = target.getBytes(StandardCharsets.UTF_8).length;
    return createEntry(
        parent,
        name,
        (ino, now) ->
            new Inode(
                ino,
                Inode.S_IFLNK | 0777,
                uid,
                gid,
                1,
                size,
                now,
                now,
                now,
                0,
                0,
                0,
                0,
                0,
                Hash.ZERO,
                target));
  }

  private interface InodeMaker {
    Inode make(long ino, long now);
  }

  private Attributes createEntry(long parent, String name, InodeMaker maker) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    Inode created =
        db.write(
            txn -> {
              Inode p = requireLiveDir(ns.inode(txn, parent));
              requireChangeable(p, parent, name);
              if (ns.entry(txn, parent, name) != null) {
                throw new FileAlreadyExistsException(name);
              }
              Inode i = maker.make(ns.allocateIno(txn), now);
              ns.put(txn, i);
              ns.putEntry(txn, parent, name, i.ino(), i.mode());
              int links = i.isDirectory() ? p.nlink() + 1 : p.nlink();
              if (links > MAX_LINKS) {
                throw new FsException(
                    FsException.Kind.TOO_MANY_LINKS, name, "too many subdirectories");
              }
              ns.put(txn, p.withNlink(links, now).withTimes(p.atimeNs(), now, now));
              return i;
            });
    return files.attributes(created);
  }

  String readlink(long ino) throws IOException {
    Inode i = db.read(txn -> ns.inode(txn, ino));
    if (!i.isSymlink()) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "not a symlink");
    }
    return i.target();
  }

  Attributes link(long ino, long newParent, String newName) throws IOException {
    requireWritable();
    checkName(newName);
    long now = now();
    Inode linked =
        db.write(
            txn -> {
              Inode i = ns.inode(txn, ino);
              requireChangeable(i);
              if (i.isDirectory()) {
                throw new FsException(
                    FsException.Kind.NOT_PERMITTED,
                    newName,
                    "hard links to directories are not allowed");
              }
              if (i.nlink() == 0) {
                throw new NoSuchFileException(
                    "inode " + ino, null, "it has no name left to link to");
              }
              if (i.nlink() >= MAX_LINKS) {
                throw new FsException(FsException.Kind.TOO_MANY_LINKS, newName, "too many links");
              }
              Inode p = requireLiveDir(ns.inode(txn, newParent));
              requireChangeable(p, newParent, newName);
              if (ns.entry(txn, newParent, newName) != null) {
                throw new FileAlreadyExistsException(newName);
              }
              ns.putEntry(txn, newParent, newName, ino, i.mode());
              ns.put(txn, p.withTimes(p.atimeNs(), now, now));
              Inode l = i.withNlink(i.nlink() + 1, now);
              ns.put(txn, l);
              return l;
            });
    return files.attributes(linked);
  }

  void unlink(long parent, String name) throws IOException {
    removeEntry(parent, name, false);
  }

  void rmdir(long parent, String name) throws IOException {
    removeEntry(parent, name, true);
  }

  private void removeEntry(long parent, String name, boolean directory) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    db.write(
        txn -> {
          Inode p = requireDir(ns.inode(txn, parent));
          requireChangeable(p, parent, name);
          long[] e = ns.entry(txn, parent, name);
          if (e == null) {
            throw new NoSuchFileException(name);
          }
          Inode victim = ns.inode(txn, e[0]);
          if (directory && !victim.isDirectory()) {
            throw new NotDirectoryException(name);
          }
          if (!directory && victim.isDirectory()) {
            throw new FsException(FsException.Kind.IS_DIRECTORY, name, "is a directory");
          }
          if (directory && !ns.isEmpty(txn, victim.ino())) {
            throw new DirectoryNotEmptyException(name);
          }
          ns.deleteEntry(txn, parent, name);
          dropLink(txn, victim, now);
          int links = directory ? p.nlink() - 1 : p.nlink();
          ns.put(txn, p.withNlink(links, now).withTimes(p.atimeNs(), now, now));
          return null;
        });
  }

  /**
   * One name of {@code victim} is gone; with none left it becomes an orphan until {@link #forget}.
   */
  private void dropLink(WriteTxn txn, Inode victim, long now) {
    int links = victim.isDirectory() ? 0 : victim.nlink() - 1;
    ns.put(txn, victim.withNlink(links, now));
    if (links == 0) {
      ns.markOrphan(txn, victim.ino());
    }
  }

  void rename(long parent, String name, long newParent, String newName, int flags)
      throws IOException {
    requireWritable();
    checkName(name);
    checkName(newName);
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0
        || flags == (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, name, "unknown rename flags " + flags);
    }
    long now = now();
    db.write(
        txn -> {
          requireChangeable(requireDir(ns.inode(txn, parent)), parent, name);
          requireChangeable(requireLiveDir(ns.inode(txn, newParent)), newParent, newName);
          long[] se = ns.entry(txn, parent, name);
          if (se == null) {
            throw new NoSuchFileException(name);
          }
          Inode s = ns.inode(txn, se[0]);
          long[] de = ns.entry(txn, newParent, newName);
          if ((flags & RENAME_EXCHANGE) != 0) {
            if (de == null) {
              throw new NoSuchFileException(newName);
            }
            Inode d = ns.inode(txn, de[0]);
            if (s.isDirectory()) {
              requireNotInside(txn, newParent, s.ino(), name);
            }
            if (d.isDirectory()) {
              requireNotInside(txn, parent, d.ino(), newName);
            }
            ns.putEntry(txn, parent, name, d.ino(), d.mode());
            ns.putEntry(txn, newParent, newName, s.ino(), s.mode());
            moveDir(txn, s, parent, newParent, now);
            moveDir(txn, d, newParent, parent, now);
            ns.put(txn, ns.inode(txn, s.ino()).touched(now));
            ns.put(txn, ns.inode(txn, d.ino()).touched(now));
            touchDirs(txn, parent, newParent, now);
            return null;
          }
          if (parent == newParent && name.equals(newName)) {
            return null;
          }
          if (de != null && (flags & RENAME_NOREPLACE) != 0) {
            throw new FileAlreadyExistsException(newName);
          }
          if (s.isDirectory()) {
            requireNotInside(txn, newParent, s.ino(), name);
          }
          if (de != null) {
            if (de[0] == s.ino()) {
              return null; // two names of one inode: POSIX says rename does nothing
            }
            Inode d = ns.inode(txn, de[0]);
            if (s.isDirectory() && !d.isDirectory()) {
              throw new NotDirectoryException(newName);
            }
            if (!s.isDirectory() && d.isDirectory()) {
              throw new FsException(FsException.Kind.IS_DIRECTORY, newName, "is a directory");
            }
            if (d.isDirectory()) {
              if (!ns.isEmpty(txn, d.ino())) {
                throw new DirectoryNotEmptyException(newName);
              }
              Inode np = ns.inode(txn, newParent);
              ns.put(txn, np.withNlink(np.nlink() - 1, now));
            }
            dropLink(txn, d, now);
          }
          ns.deleteEntry(txn, parent, name);
          ns.putEntry(txn, newParent, newName, s.ino(), s.mode());
          moveDir(txn, s, parent, newParent, now);
          ns.put(txn, ns.inode(txn, s.ino()).touched(now));
          touchDirs(txn, parent, newParent, now);
          return null;
        });
  }

  /** A directory moved from {@code from} to {@code to}: its ".." and both link counts follow. */
  private void moveDir(WriteTxn txn, Inode moved, long from, long to, long now) throws IOException {
    if (!moved.isDirectory() || from == to) {
      return;
    }
    ns.put(txn, ns.inode(txn, moved.ino()).withParent(to, now));
    Inode f = ns.inode(txn, from);
    ns.put(txn, f.withNlink(f.nlink() - 1, now));
    Inode t = ns.inode(txn, to);
    ns.put(txn, t.withNlink(t.nlink() + 1, now));
  }

  private void touchDirs(WriteTxn txn, long a, long b, long now) throws IOException {
    Inode x = ns.inode(txn, a);
    ns.put(txn, x.withTimes(x.atimeNs(), now, now));
    if (b != a) {
      Inode y = ns.inode(txn, b);
      ns.put(txn, y.withTimes(y.atimeNs(), now, now));
    }
  }

  /** Refuses to move directory {@code moved} into itself or below it (EINVAL, as ext4). */
  private void requireNotInside(ReadTxn txn, long target, long moved, String name)
      throws IOException {
    for (long d = target; ; d = ns.inode(txn, d).parent()) {
      if (d == moved) {
        throw new FsException(
            FsException.Kind.INVALID_ARGUMENT, name, "a directory cannot move below itself");
      }
      if (d == ROOT) {
        return;
      }
    }
  }

  Attributes setattr(long ino, SetAttributes change) throws IOException {
    requireWritable();
    long now = now();
    Inode before = db.read(txn -> ns.inode(txn, ino));
    requireChangeable(before);
    if (change.size() != null) {
      contents.truncate(before, change.size());
    } else if (before.isRegular()) {
      writeBack.flush(ino); // so that the pending write times do not overwrite what is set here
    }
    db.write(
        txn -> {
          Inode i = ns.inode(txn, ino);
          int mode =
              change.mode() == null
                  ? i.mode()
                  : (i.mode() & Inode.S_IFMT) | (change.mode() & 07777);
          int uid = change.uid() == null ? i.uid() : change.uid();
          int gid = change.gid() == null ? i.gid() : change.gid();
          long atime =
              change.atimeNs() == null
                  ? i.atimeNs()
                  : change.atimeNs() == SetAttributes.NOW ? now : change.atimeNs();
          long mtime =
              change.mtimeNs() == null
                  ? i.mtimeNs()
                  : change.mtimeNs() == SetAttributes.NOW ? now : change.mtimeNs();
          long ctime = change.ctimeNs() == null ? now : change.ctimeNs();
          ns.put(txn, i.withOwner(mode, uid, gid, ctime).withTimes(atime, mtime, ctime));
          return null;
        });
    return getattr(ino);
  }

  /** See {@link Datastore#readdir}. */
  List<DirEntry> readdir(long ino, long offset, int max) throws IOException {
    return db.read(
        txn -> {
          Inode d = requireDir(ns.inode(txn, ino));
          List<DirEntry> out = new ArrayList<>();
          if (offset < 1 && out.size() < max) {
            out.add(new DirEntry(".", ino, Inode.S_IFDIR, 1));
          }
          if (offset < 2 && out.size() < max) {
            out.add(new DirEntry("..", d.parent(), Inode.S_IFDIR, 2));
          }
          out.addAll(ns.list(txn, ino, Math.max(offset, Namespace.FIRST_COOKIE), max - out.size()));
          return out;
        });
  }

  // ---- extended attributes

  byte[] getxattr(long ino, String name) throws IOException {
    byte[] v =
        db.read(
            txn -> {
              ns.inode(txn, ino);
              return ns.xattr(txn, ino, name);
            });
    if (v == null) {
      throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
    }
    return v;
  }

  List<String> listxattr(long ino) throws IOException {
    return db.read(
        txn -> {
          ns.inode(txn, ino);
          return ns.xattrNames(txn, ino);
        });
  }

  /** Whether any inode has an extended attribute called {@code name}: one pass over the table. */
  boolean anyXattrNamed(String name) throws IOException {
    return db.read(txn -> ns.anyXattrNamed(txn, name));
  }

  void setxattr(long ino, String name, byte[] value, int flags) throws IOException {
    requireWritable();
    if (name.isEmpty() || name.getBytes(StandardCharsets.UTF_8).length > Namespace.NAME_MAX) {
      throw new FsException(
          FsException.Kind.NAME_TOO_LONG, name, "an attribute name has 1 to 255 bytes");
    }
    if (value.length > XATTR_MAX) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, name, "attribute values are limited to 64 KiB");
    }
    long now = now();
    db.write(
        txn -> {
          Inode i = requireChangeable(ns.inode(txn, ino));
          boolean exists = ns.xattr(txn, ino, name) != null;
          if (exists && (flags & XATTR_CREATE) != 0) {
            throw new FsException(FsException.Kind.ATTRIBUTE_EXISTS, name, "attribute exists");
          }
          if (!exists && (flags & XATTR_REPLACE) != 0) {
            throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
          }
          ns.putXattr(txn, ino, name, value);
          ns.put(txn, i.touched(now));
          return null;
        });
  }

  void removexattr(long ino, String name) throws IOException {
    requireWritable();
    long now = now();
    db.write(
        txn -> {
          Inode i = requireChangeable(ns.inode(txn, ino));
          if (!ns.deleteXattr(txn, ino, name)) {
            throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
          }
          ns.put(txn, i.touched(now));
          return null;
        });
  }

  /** See {@link Datastore#forget}. */
  void forget(long ino) throws IOException {
    if (config.readOnly() || ino == ROOT) {
      return;
    }
    boolean deleted =
        db.write(
            txn -> {
              Inode i;
              try {
                i = ns.inode(txn, ino);
              } catch (NoSuchFileException e) {
                return false;
              }
              if (i.nlink() > 0) {
                return false;
              }
              ns.delete(txn, ino);
              blocks.decref(txn, i.root());
              return true;
            });
    FileContent fc = files.get(ino);
    if (fc != null) {
      fc.lock.writeLock().lock();
      try {
        if (deleted || !fc.busy()) { // a clean one is loaded again when needed
          files.retire(fc);
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
    if (deleted) {
      writeBack.reclaimSoon();
    }
  }

  void purgeOrphans() throws IOException {
    for (long ino : db.read(ns::orphans)) {
      forget(ino);
    }
  }

  /**
   * The inode at {@code path} ("/"-separated, relative to the root, "" for the root); symlinks are
   * not followed.
   */
  long resolve(String path) throws IOException {
    return db.read(txn -> ns.resolve(txn, path));
  }

  /**
   * A path of {@code ino} (one of its names), for reports; NoSuchFileException if it has none.
   * Reads every entry.
   */
  String pathOf(long ino) throws IOException {
    return db.read(
        txn -> {
          ns.inode(txn, ino);
          String p = ns.paths(txn, Set.of(ino)).get(ino);
          if (p == null) {
            throw new NoSuchFileException(
                "inode " + ino, null, "it has no name (unlinked while open)");
          }
          return p;
        });
  }

  /**
   * The regular files at or below {@code top}, each once, by inode number; the root's {@code
   * .snapshots} is left out.
   */
  static SortedMap<Long, Inode> regularFilesBelow(Namespace ns, ReadTxn txn, long top)
      throws IOException {
    SortedMap<Long, Inode> out = new TreeMap<>();
    Inode t = ns.inode(txn, top);
    if (t.isRegular()) {
      out.put(top, t);
    }
    Deque<Long> dirs = new ArrayDeque<>();
    if (t.isDirectory()) {
      dirs.push(top);
    }
    while (!dirs.isEmpty()) {
      long d = dirs.pop();
      for (DirEntry e : ns.listAll(txn, d)) {
        if (e.mode() == Inode.S_IFDIR && !(d == ROOT && e.name().equals(SNAPSHOTS))) {
          dirs.push(e.ino());
        } else if (e.mode() == Inode.S_IFREG && !out.containsKey(e.ino())) {
          out.put(e.ino(), ns.inode(txn, e.ino()));
        }
      }
    }
    return out;
  }

  private void requireWritable() throws FsException {
    Checks.requireWritable(config, dir);
  }
}
