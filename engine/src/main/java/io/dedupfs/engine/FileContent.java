package io.dedupfs.engine;

import java.io.IOException;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The live state of one regular file's contents: its tree with unflushed changes, and the
 * modification times those changes set. It changes its own state; callers hold the locks that each
 * method names.
 *
 * <p>{@link #lock} guards every field and the tree: reads share it; writes, truncates, punches,
 * clones and the two short steps of a commit (freezing the overlay, then settling it once stored)
 * hold it exclusively. {@link #commitLock} is held for a whole commit, so that one file's commits
 * follow each other; while a commit stores its frozen overlay it holds only this lock, and writers
 * and readers go on. Order: commitLock before lock. When several files are locked at once (a copy
 * between files, a restore), they are taken in ascending inode order, each file's commitLock then
 * its lock. Whoever holds a file's lock never waits for any commitLock.
 */
final class FileContent {
  final long ino;

  /** A file of a snapshot: nothing may change it. Fixed for the inode's life. */
  final boolean readOnly;

  final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  final ReentrantLock commitLock = new ReentrantLock();
  final FileTree tree;

  /** Times set by the last write; meaningful while {@link #timesDirty}. */
  private long mtimeNs;

  private long ctimeNs;

  /** The times above are not stored yet (until the commit that carries them is durable). */
  private boolean timesDirty;

  /** The times changed since the last freeze: the next commit stores them. */
  private boolean timesChanged;

  /**
   * How many times the times were set, to tell at the end of a commit whether they changed
   * meanwhile.
   */
  private long touches;

  /** When the oldest unflushed change was made (System.nanoTime), for the flush timer. */
  private long dirtySince;

  /**
   * Dropped from the store's table of open contents by forget: whoever finds it so loads the inode
   * again.
   */
  private boolean retired;

  /** A background commit is queued or running. */
  private boolean commitScheduled;

  /** When the last commit of this file failed (System.nanoTime), 0 if the last one succeeded. */
  private long failedAt;

  /** Why the last commit of this file failed; null if it succeeded. */
  private volatile Exception lastFailure;

  FileContent(long ino, boolean readOnly, FileTree tree) {
    this.ino = ino;
    this.readOnly = readOnly;
    this.tree = tree;
  }

  /**
   * What a commit froze of a file, beside its tree: the times to store, and what to give back if it
   * fails.
   */
  record Frozen(
      TreeCommit tree, boolean times, long mtimeNs, long ctimeNs, long touches, long dirtySince) {}

  /** Something changed since the last freeze: a commit has work to do. */
  boolean isDirty() {
    return timesChanged || tree.isDirty();
  }

  /** Dirty, or a commit of it is in flight: not to be dropped from memory. */
  boolean busy() {
    return isDirty() || tree.committing();
  }

  /** Dropped from the table of open contents: whoever holds it loads the inode again. */
  boolean isRetired() {
    return retired;
  }

  /** Why the last commit of this file failed; null if it succeeded. Read without the lock. */
  Exception lastFailure() {
    return lastFailure;
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

  /**
   * The attributes of inode {@code i} as this file's buffered changes make them. Caller holds the
   * lock (shared).
   */
  Attributes attributes(Inode i) {
    return timesDirty
        ? Attributes.of(i, tree.length(), mtimeNs, ctimeNs)
        : Attributes.of(i, tree.length(), i.mtimeNs(), i.ctimeNs());
  }

  /**
   * Dirty, with its oldest unflushed change made at or before {@code cutoff} (System.nanoTime).
   * Caller holds the write lock.
   */
  boolean dirtySinceBefore(long cutoff) {
    return isDirty() && dirtySince - cutoff <= 0;
  }

  /**
   * Drops the buffered changes (of a copy that failed): nothing of them is stored. Caller holds the
   * write lock.
   */
  void discardChanges() {
    tree.discard();
    timesChanged = false;
    timesDirty = false;
  }

  /** Drops the tree and marks these contents retired. Caller holds the write lock. */
  void retire() {
    tree.release();
    retired = true;
  }

  // ---- commits

  /**
   * Claims the one background commit of this file: false when one is queued or running, or the last
   * commit failed less than {@code retryNs} ago. Caller holds the write lock.
   */
  boolean claimBackgroundCommit(long retryNs) {
    if (commitScheduled || (failedAt != 0 && System.nanoTime() - failedAt < retryNs)) {
      return false;
    }
    commitScheduled = true;
    return true;
  }

  /** The background commit claimed is over (or was never queued). Caller holds the write lock. */
  void backgroundCommitEnded() {
    commitScheduled = false;
  }

  /** Freezes the overlay and the times for a commit. Caller holds the write lock. */
  Frozen freeze(ReadTxn txn) throws IOException {
    TreeCommit c = tree.freeze(txn);
    Frozen f = new Frozen(c, timesChanged, mtimeNs, ctimeNs, touches, dirtySince);
    timesChanged = false;
    return f;
  }

  /** The commit of {@code f} is stored: settles it. Caller holds the write lock. */
  void committed(Frozen f) {
    tree.finish(f.tree());
    if (touches == f.touches()) {
      timesDirty = false;
    }
    failedAt = 0;
    lastFailure = null;
  }

  /**
   * The commit of {@code f} stored nothing: buffers its changes again, and remembers {@code
   * failure} (null when the inode was gone). Caller holds the write lock.
   */
  void notCommitted(Frozen f, Throwable failure) {
    tree.rollback(f.tree());
    timesChanged |= f.times();
    dirtySince = f.dirtySince();
    if (retired) {
      tree.release(); // nobody counts a retired file's buffer
    }
    if (failure != null) {
      failedAt = Math.max(1, System.nanoTime());
      lastFailure = failure instanceof Exception e ? e : new IOException(failure);
    }
  }
}
