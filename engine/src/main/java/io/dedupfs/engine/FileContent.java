package io.dedupfs.engine;

import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The live state of one regular file's contents: its tree with unflushed changes, and the
 * modification times those changes set.
 *
 * <p>{@link #lock} guards every field and the tree: reads share it; writes, truncates, punches,
 * clones and the two short steps of a commit (freezing the overlay, then settling it once stored)
 * hold it exclusively. {@link #commitLock} is held for a whole commit, so that one file's commits
 * follow each other; while a commit stores its frozen overlay it holds only this lock, and
 * writers and readers go on. Order: commitLock before lock. When several files are locked at
 * once (a copy between files, a restore), they are taken in ascending inode order, each file's
 * commitLock then its lock. Whoever holds a file's lock never waits for any commitLock.
 */
final class FileContent {
  final long ino;
  /** A file of a snapshot: nothing may change it. Fixed for the inode's life. */
  final boolean readOnly;
  final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  final ReentrantLock commitLock = new ReentrantLock();
  final FileTree tree;
  /** Times set by the last write; meaningful while {@link #timesDirty}. */
  long mtimeNs;
  long ctimeNs;
  /** The times above are not stored yet (until the commit that carries them is durable). */
  boolean timesDirty;
  /** The times changed since the last freeze: the next commit stores them. */
  boolean timesChanged;
  /** How many times the times were set, to tell at the end of a commit whether they changed meanwhile. */
  long touches;
  /** When the oldest unflushed change was made (System.nanoTime), for the flush timer. */
  long dirtySince;
  /** Dropped from the store's table of open contents by forget: whoever finds it so loads the inode again. */
  boolean retired;
  /** A background commit is queued or running. */
  boolean commitScheduled;
  /** When the last commit of this file failed (System.nanoTime), 0 if the last one succeeded. */
  long failedAt;
  /** Why the last commit of this file failed; null if it succeeded. */
  volatile Exception lastFailure;

  FileContent(long ino, boolean readOnly, FileTree tree) {
    this.ino = ino;
    this.readOnly = readOnly;
    this.tree = tree;
  }

  /** Something changed since the last freeze: a commit has work to do. */
  boolean isDirty() {
    return timesChanged || tree.isDirty();
  }

  /** Dirty, or a commit of it is in flight: not to be dropped from memory. */
  boolean busy() {
    return isDirty() || tree.committing();
  }

  void touch(long nowNs) {
    if (!isDirty()) {
      dirtySince = System.nanoTime();
    }
    mtimeNs = nowNs;
    ctimeNs = nowNs;
    timesDirty = true;
    timesChanged = true;
    touches++;
  }
}
