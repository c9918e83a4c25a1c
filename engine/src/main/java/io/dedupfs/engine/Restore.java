package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongPredicate;

/**
 * Makes a file or directory tree of the store equal to one in a snapshot, inside its caller's write
 * transaction.
 *
 * <p>A non-directory whose name exists in both, with the same type, keeps its inode number and
 * takes the snapshot's contents (a new root reference), attributes and extended attributes: open
 * handles see the snapshot's bytes. A regular file can be changed so only when the caller holds its
 * contents' lock ({@code lockedFiles}); any other is replaced by a new inode under the same name.
 * Entries the snapshot lacks are removed; entries only it has are copied. Names of one inode in the
 * snapshot end up names of one inode (hard links).
 *
 * <p>A removed inode whose contents are open ({@code openFiles}) becomes an orphan, deleted when it
 * is forgotten; any other is deleted at once and its root's decrement queued.
 */
final class Restore {
  private final Namespace ns;
  private final BlockStore blocks;
  private final WriteTxn txn;
  private final long now;
  private final LongPredicate lockedFiles;
  private final LongPredicate dirtyFiles;
  private final LongPredicate openFiles;
  private final NamespaceCopy copier;

  /** Inodes of the store given the contents of a snapshot inode: none may take another's. */
  private final Set<Long> taken = new HashSet<>();

  private final Set<Long> changedInodes = new LinkedHashSet<>();
  private final Set<DirName> changedEntries = new LinkedHashSet<>();

  /** Each path changed and how ({@link Restored#changes}), in the order of the walk. */
  private final Map<String, Restored.Action> changes = new LinkedHashMap<>();

  /**
   * The path of each directory of the store the walk is in (or removes), to name what changes in
   * it.
   */
  private final Map<Long, String> dirPaths = new HashMap<>();

  /** The target's path, store-relative ("" the root). */
  private String targetPath = "";

  /**
   * @param lockedFiles regular files whose contents' locks the caller holds
   * @param dirtyFiles of those, the ones with changes not yet committed (they are discarded)
   * @param openFiles regular files whose contents are in use: removed, they become orphans
   */
  Restore(
      Namespace ns,
      BlockStore blocks,
      WriteTxn txn,
      long now,
      LongPredicate lockedFiles,
      LongPredicate dirtyFiles,
      LongPredicate openFiles) {
    this.ns = ns;
    this.blocks = blocks;
    this.txn = txn;
    this.now = now;
    this.lockedFiles = lockedFiles;
    this.dirtyFiles = dirtyFiles;
    this.openFiles = openFiles;
    this.copier = new NamespaceCopy(ns, blocks, txn, 0, now);
  }

  /**
   * {@link #run(Inode, long, String)}, with {@code path} the target's path (store-relative, "" the
   * root): the paths {@link Restored#changes} names.
   */
  Restored run(Inode src, long parent, String name, String path) throws IOException {
    targetPath = path;
    if (parent != 0) {
      int slash = path.lastIndexOf('/');
      dirPaths.put(parent, slash < 0 ? "" : path.substring(0, slash));
    }
    return run(src, parent, name);
  }

  /**
   * Restores snapshot inode {@code src} to name {@code name} in directory {@code parent}, or, with
   * {@code parent} 0, onto the root directory.
   */
  Restored run(Inode src, long parent, String name) throws IOException {
    Inode target;
    if (parent == 0) {
      target = ns.inode(txn, Namespace.ROOT);
    } else {
      Inode p = ns.inode(txn, parent);
      if (!p.isDirectory()) {
        throw new NotDirectoryException(name);
      }
      if (p.isReadOnly() || (parent == Namespace.ROOT && name.equals(Snapshots.DIR))) {
        throw new FsException(FsException.Kind.READ_ONLY, name, "snapshots are read-only");
      }
      long[] e = ns.entry(txn, parent, name);
      target = e == null ? null : ns.inode(txn, e[0]);
    }
    if (target == null) {
      copier.copy(parent, name, src);
      entryChanged(parent, name);
      created(targetPath, src);
    } else if (src.isDirectory()) {
      if (!target.isDirectory()) {
        throw new NotDirectoryException(name);
      }
      copier.copies.put(src.ino(), target.ino());
      dirPaths.put(target.ino(), targetPath);
      setAttributes(target, src);
      attributesChanged(targetPath, target.ino());
      sync(src.ino(), target.ino());
    } else if (target.isDirectory()) {
      throw new FsException(
          FsException.Kind.IS_DIRECTORY, name, "a file cannot be restored onto a directory");
    } else {
      restoreNonDirectory(parent, name, src, target);
    }
    if (parent != 0 && changedEntries.contains(new DirName(parent, name))) {
      Inode p = ns.inode(txn, parent);
      ns.put(txn, p.withTimes(p.atimeNs(), now, now));
    }
    List<Restored.Change> list = new ArrayList<>();
    changes.forEach((path, action) -> list.add(new Restored.Change(path, action)));
    return new Restored(new ArrayList<>(changedInodes), new ArrayList<>(changedEntries), list);
  }

  /**
   * Makes directory {@code to}'s entries, recursively, those of snapshot directory {@code from}.
   */
  private void sync(long from, long to) throws IOException {
    Map<String, DirEntry> want = byName(from);
    Map<String, DirEntry> have = byName(to);
    if (to == Namespace.ROOT) {
      have.remove(Snapshots.DIR);
    }
    for (DirEntry h : have.values()) {
      if (!want.containsKey(h.name())) {
        remove(to, h.name(), h.ino());
      }
    }
    for (DirEntry w : want.values()) {
      Inode s = ns.inode(txn, w.ino());
      DirEntry h = have.get(w.name());
      if (h == null || h.mode() != s.type()) {
        if (h != null) {
          remove(to, h.name(), h.ino());
        }
        copier.copy(to, w.name(), s);
        entryChanged(to, w.name());
        created(path(to, w.name()), s);
        if (h != null) {
          changes.put(path(to, w.name()), Restored.Action.REPLACED);
        }
      } else if (s.isDirectory()) {
        copier.copies.put(s.ino(), h.ino());
        dirPaths.put(h.ino(), path(to, w.name()));
        setAttributes(ns.inode(txn, h.ino()), s);
        attributesChanged(path(to, w.name()), h.ino());
        sync(s.ino(), h.ino());
      } else {
        restoreNonDirectory(to, w.name(), s, ns.inode(txn, h.ino()));
      }
    }
  }

  /**
   * Snapshot inode {@code s} onto the existing non-directory {@code t} named {@code name} in {@code
   * dir}.
   */
  private void restoreNonDirectory(long dir, String name, Inode s, Inode t) throws IOException {
    Long done = copier.copies.get(s.ino());
    if (done != null) { // another name of an inode restored already
      if (done != t.ino()) {
        remove(dir, name, t.ino());
        copier.copy(dir, name, s);
        entryChanged(dir, name);
        changes.put(path(dir, name), Restored.Action.REPLACED);
      }
      return;
    }
    boolean inPlace =
        s.type() == t.type()
            && !taken.contains(t.ino())
            && (!t.isRegular() || lockedFiles.test(t.ino()));
    if (!inPlace) {
      remove(dir, name, t.ino());
      copier.copy(dir, name, s);
      entryChanged(dir, name);
      changes.put(path(dir, name), Restored.Action.REPLACED);
      return;
    }
    taken.add(t.ino());
    copier.copies.put(s.ino(), t.ino());
    boolean sameTree =
        s.root().equals(t.root()) && s.height() == t.height() && s.size() == t.size();
    if (sameTree && sameAttributes(t, s) && !(t.isRegular() && dirtyFiles.test(t.ino()))) {
      return;
    }
    if (!s.root().equals(t.root())) {
      if (!s.root().isZero()) {
        blocks.incref(txn, s.root());
      }
      blocks.decref(txn, t.root());
    }
    ns.put(txn, t.withContentsOf(s, now));
    ns.replaceXattrs(txn, s.ino(), t.ino());
    changedInodes.add(t.ino());
    changes.put(path(dir, name), Restored.Action.REPLACED);
  }

  /**
   * Gives directory {@code t} the mode, owner, times and extended attributes of snapshot directory
   * {@code s}.
   */
  private void setAttributes(Inode t, Inode s) {
    if (sameAttributes(t, s)) {
      return;
    }
    ns.put(txn, t.withContentsOf(s, now));
    ns.replaceXattrs(txn, s.ino(), t.ino());
    changedInodes.add(t.ino());
  }

  private boolean sameAttributes(Inode t, Inode s) {
    if (t.mode() != s.mode()
        || t.uid() != s.uid()
        || t.gid() != s.gid()
        || t.atimeNs() != s.atimeNs()
        || t.mtimeNs() != s.mtimeNs()
        || t.rdev() != s.rdev()
        || !t.target().equals(s.target())) {
      return false;
    }
    Map<String, byte[]> a = ns.xattrs(txn, t.ino());
    Map<String, byte[]> b = ns.xattrs(txn, s.ino());
    if (!a.keySet().equals(b.keySet())) {
      return false;
    }
    for (Map.Entry<String, byte[]> e : a.entrySet()) {
      if (!Arrays.equals(e.getValue(), b.get(e.getKey()))) {
        return false;
      }
    }
    return true;
  }

  /**
   * Removes the entry {@code name} of {@code dir}, naming {@code ino}, with everything below it.
   */
  private void remove(long dir, String name, long ino) throws IOException {
    entryChanged(dir, name);
    changes.put(path(dir, name), Restored.Action.REMOVED);
    ns.deleteEntry(txn, dir, name);
    Inode v = ns.inode(txn, ino);
    if (v.isDirectory()) {
      dirPaths.put(ino, path(dir, name));
      for (DirEntry e : ns.listAll(txn, ino)) {
        remove(ino, e.name(), e.ino());
      }
      Inode d = ns.inode(txn, dir);
      ns.put(txn, d.withNlink(d.nlink() - 1, now));
      ns.delete(txn, ino);
      return;
    }
    if (v.nlink() > 1) {
      ns.put(txn, v.withNlink(v.nlink() - 1, now));
    } else if (v.isRegular() && openFiles.test(ino)) {
      ns.put(txn, v.withNlink(0, now));
      ns.markOrphan(txn, ino);
    } else {
      ns.delete(txn, ino);
      blocks.decref(txn, v.root());
    }
  }

  private void entryChanged(long dir, String name) {
    changedEntries.add(new DirName(dir, name));
  }

  /** The path of entry {@code name} of directory {@code dir}, one the walk has been in. */
  private String path(long dir, String name) {
    String d = dirPaths.get(dir);
    return d == null || d.isEmpty() ? name : d + "/" + name;
  }

  /**
   * Records {@code path} as created from snapshot inode {@code s}, and each path below it, from the
   * snapshot's tree.
   */
  private void created(String path, Inode s) throws IOException {
    changes.put(path, Restored.Action.CREATED);
    if (s.isDirectory()) {
      for (DirEntry e : ns.listAll(txn, s.ino())) {
        created(path.isEmpty() ? e.name() : path + "/" + e.name(), ns.inode(txn, e.ino()));
      }
    }
  }

  /** Records directory {@code ino} at {@code path} when {@link #setAttributes} changed it. */
  private void attributesChanged(String path, long ino) {
    if (changedInodes.contains(ino)) {
      changes.putIfAbsent(path, Restored.Action.ATTRIBUTES);
    }
  }

  private Map<String, DirEntry> byName(long dir) {
    Map<String, DirEntry> out = new LinkedHashMap<>();
    for (DirEntry e : ns.listAll(txn, dir)) {
      out.put(e.name(), e);
    }
    return out;
  }
}
