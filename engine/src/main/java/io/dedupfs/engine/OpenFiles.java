package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.SortedSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;

/**
 * The contents of the regular files in use, loaded on first use and dropped (retired) by forget and
 * restore, with the store-wide count of what their overlays buffer. Takes the files' locks in the
 * lock order ({@link FileContent}): each file's commit lock, then its lock; several files in
 * ascending inode order.
 */
final class OpenFiles {
  private final Lmdb db;
  private final Namespace ns;
  private final Geometry geometry;
  private final BlockStore blocks;

  /** Told when contents are dropped: their log records are no longer needed. Null without one. */
  private final IntentLog log;

  /** The contents of regular files in use, loaded on first use; removed (and retired) by forget. */
  private final ConcurrentHashMap<Long, FileContent> files = new ConcurrentHashMap<>();

  /**
   * Counts contents removed from {@link #files} (forget, restore): {@link #content} loads a file's
   * inode outside any lock, and loads again when a removal happened meanwhile, since what it read
   * may be contents that have just been replaced: by a restore, or by the commit of contents loaded
   * (and forgotten again) meanwhile. Until it has checked, what it published stays locked, so that
   * nobody changes stale contents (a commit of them would drop the other's and release their old
   * root twice).
   */
  private final AtomicLong removals = new AtomicLong();

  /**
   * Bytes of leaves and nodes buffered in every file's overlay and not frozen by a commit (each
   * FileTree keeps it).
   */
  private final AtomicLong dirtyBytes = new AtomicLong();

  /** Hashes the leaves that writes fill whole, for every file's tree. */
  private final EarlyHasher earlyHasher;

  /** The arrays of every file's leaves, kept up to the dirty limit. */
  private final LeafBuffers buffers;

  OpenFiles(
      Lmdb db, Namespace ns, Geometry geometry, BlockStore blocks, IntentLog log, long dirtyLimit) {
    this.db = db;
    this.ns = ns;
    this.geometry = geometry;
    this.blocks = blocks;
    this.log = log;
    this.earlyHasher = new EarlyHasher(geometry.leafSize);
    this.buffers = new LeafBuffers(geometry.leafSize, dirtyLimit);
  }

  /** Stops the early hashing; the store is closing. */
  void close() {
    earlyHasher.close();
  }

  /** The arrays of every file's leaves, for tests. */
  LeafBuffers buffers() {
    return buffers;
  }

  /** Bytes buffered in every file's overlay and not frozen by a commit. */
  long dirtyBytes() {
    return dirtyBytes.get();
  }

  /** The loaded contents of {@code ino}, or null. */
  FileContent get(long ino) {
    return files.get(ino);
  }

  boolean isLoaded(long ino) {
    return files.containsKey(ino);
  }

  /** The inodes loaded now. */
  Set<Long> inos() {
    return files.keySet();
  }

  Collection<FileContent> all() {
    return files.values();
  }

  /**
   * For tests: told when {@link #content} has read a file's inode, before it publishes the contents
   * it loads from it, and when it has published them, locked, before it checks they are fresh.
   */
  interface LoadHook {
    void inodeRead(long ino) throws IOException;

    default void published(long ino) {}
  }

  volatile LoadHook loadHook;

  FileContent content(long ino) throws IOException {
    while (true) {
      FileContent fc = files.get(ino);
      if (fc != null) {
        return fc;
      }
      long seen = removals.get(); // before the inode is read: see removals
      Inode i = db.read(txn -> ns.inode(txn, ino));
      LoadHook hook = loadHook;
      if (hook != null) {
        hook.inodeRead(ino);
      }
      if (i.isDirectory()) {
        throw new FsException(FsException.Kind.IS_DIRECTORY, "inode " + ino, "is a directory");
      }
      if (!i.isRegular()) {
        throw new FsException(
            FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "not a regular file");
      }
      FileContent loaded =
          new FileContent(
              ino,
              i.isReadOnly(),
              new FileTree(
                  geometry,
                  blocks,
                  i.root(),
                  i.height(),
                  i.size(),
                  dirtyBytes,
                  earlyHasher,
                  buffers));
      // Published locked: whoever takes them from the table before they are found fresh waits, and
      // finds them retired if they are not.
      loaded.lock.writeLock().lock();
      try {
        FileContent raced = files.putIfAbsent(ino, loaded);
        if (raced != null) {
          return raced;
        }
        if (hook != null) {
          hook.published(ino);
        }
        if (removals.get() == seen) {
          return loaded;
        }
        // Contents were removed while the inode was read: perhaps this file's, changed after the
        // read by a commit of contents loaded meanwhile or by a restore.
        retire(loaded);
      } finally {
        loaded.lock.writeLock().unlock();
      }
    }
  }

  /** What an operation does with a file's contents while it holds their lock. */
  interface ContentAction<T> {
    T run(FileContent fc) throws IOException;
  }

  /**
   * Runs {@code action} on the contents of {@code ino} holding their lock, shared or exclusive
   * (each FileTree counts the dirty bytes it adds). Contents that forget retired while this waited
   * for the lock are loaded afresh.
   */
  <T> T withContent(long ino, boolean exclusive, ContentAction<T> action) throws IOException {
    while (true) {
      FileContent fc = content(ino);
      Lock lock = exclusive ? fc.lock.writeLock() : fc.lock.readLock();
      lock.lock();
      try {
        if (!fc.isRetired()) {
          return action.run(fc);
        }
      } finally {
        lock.unlock();
      }
    }
  }

  /**
   * The attributes of {@code i}, with the size and times of its buffered changes if it is loaded.
   */
  Attributes attributes(Inode i) {
    FileContent fc = i.isRegular() ? files.get(i.ino()) : null;
    if (fc == null) {
      return Attributes.of(i, i.size(), i.mtimeNs(), i.ctimeNs());
    }
    fc.lock.readLock().lock();
    try {
      return fc.attributes(i);
    } finally {
      fc.lock.readLock().unlock();
    }
  }

  /**
   * Drops loaded contents (and their unflushed changes): the next user loads the inode afresh.
   * Contents are dropped when clean (their log records are all in the committed tree), deleted, or
   * replaced by a restore (which marks their records folded): their records are no longer needed.
   * Caller holds fc's write lock.
   */
  void retire(FileContent fc) {
    if (log != null) {
      log.folded(fc.ino, Long.MAX_VALUE);
    }
    fc.retire();
    removals.incrementAndGet(); // before the removal: a load that then finds no contents sees it
    // (content)
    files.remove(fc.ino, fc);
  }

  /**
   * Takes fc's commit lock, then its write lock: no commit of it is in flight until {@link
   * #unlockAll}.
   */
  static void lockForCommit(FileContent fc) {
    fc.commitLock.lock();
    fc.lock.writeLock().lock();
  }

  /** Undoes {@link #lockForCommit} of each, in reverse order. */
  static void unlockAll(List<FileContent> locked) {
    for (int i = locked.size() - 1; i >= 0; i--) {
      FileContent fc = locked.get(i);
      fc.lock.writeLock().unlock();
      fc.commitLock.unlock();
    }
  }

  /**
   * Loads the contents of each of {@code inos} (regular files) and takes their commit locks and
   * write locks in ascending order, the lock order; skips files gone meanwhile.
   */
  List<FileContent> lockContents(SortedSet<Long> inos) throws IOException {
    List<FileContent> out = new ArrayList<>();
    try {
      for (long ino : inos) {
        while (true) {
          FileContent fc;
          try {
            fc = content(ino);
          } catch (NoSuchFileException gone) {
            break;
          }
          lockForCommit(fc);
          if (!fc.isRetired()) {
            out.add(fc);
            break;
          }
          unlockAll(List.of(fc));
        }
      }
    } catch (IOException | RuntimeException e) {
      unlockAll(out);
      throw e;
    }
    return out;
  }
}
