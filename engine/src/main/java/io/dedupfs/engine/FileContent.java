package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
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

  /** The times changed since this file's last log record. */
  private boolean timesUnlogged;

  /**
   * How many times the times were set, to tell at the end of a commit whether they changed
   * meanwhile.
   */
  private long touches;

  /**
   * When the oldest unflushed change was made (System.nanoTime), for the flush timer; set by the
   * first change after a freeze ({@link #dirtySinceSet}).
   */
  private long dirtySince;

  /**
   * {@link #dirtySince} is the time of a change made since the last freeze. (A change marks the
   * tree dirty before it is recorded here, so the tree's state cannot tell the first change.)
   */
  private boolean dirtySinceSet;

  /** When the last change was made (System.nanoTime), for the flush timer. */
  private long changedAt;

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

  // ---- what the intent log has not recorded yet (IntentLog, FORMAT.md "Intent log")

  /**
   * Ranges written or zeroed since this file's last log record (offsets; clipped to the length when
   * a record is made).
   */
  private ChangedRanges unlogged = new ChangedRanges();

  /** The smallest length a truncate set since the last log record; -1 when none did. */
  private long unloggedTruncate = -1;

  /**
   * When the oldest change not in the log was made (System.nanoTime); meaningful while {@link
   * #hasUnlogged}.
   */
  private long unloggedSince;

  /** The same two of the changes that the commit in flight froze; null when none is in flight. */
  private ChangedRanges frozenUnlogged;

  private long frozenTruncate = -1;

  /**
   * Since the last commit, the contents changed in a way a log record cannot say (a range clone,
   * which names blocks instead of bytes): an fsync commits instead of logging.
   */
  private boolean unloggable;

  /**
   * The sequence number of this file's last log record that may still be needed, the previous
   * record of its next one; 0 when every record of it is in its committed tree (or it has none
   * since it was loaded): its next record then follows none, and a replay applies it to the
   * committed tree.
   */
  private long lastLoggedSeq;

  /** Where this file's last log record ends in the log, to wait for it. */
  private long lastLoggedEnd;

  FileContent(long ino, boolean readOnly, FileTree tree) {
    this.ino = ino;
    this.readOnly = readOnly;
    this.tree = tree;
  }

  /**
   * What a commit froze of a file, beside its tree: the times to store, what to give back if it
   * fails, and {@code foldTo}: the log's last sequence number when it froze, which every record of
   * this file that the commit stores is at or below.
   */
  record Frozen(
      TreeCommit tree,
      boolean times,
      long mtimeNs,
      long ctimeNs,
      long touches,
      long dirtySince,
      long foldTo,
      boolean unloggable) {}

  // ---- changes, for the intent log; caller holds the write lock

  /** {@code [offset, end)} was written or zeroed. */
  void changed(long offset, long end) {
    if (offset < end) {
      unloggedFromNow();
      unlogged.add(offset, end);
    }
  }

  /** The file was truncated (or extended) to {@code length}. */
  void truncated(long length) {
    unloggedFromNow();
    unloggedTruncate = unloggedTruncate < 0 ? length : Math.min(unloggedTruncate, length);
  }

  /** Blocks of another file were put into this one's tree: only a commit makes it durable. */
  void shared() {
    unloggedFromNow();
    unloggable = true;
  }

  /** A change was made at {@code now}. */
  private void changedAt(long now) {
    if (!dirtySinceSet) {
      dirtySince = now;
      dirtySinceSet = true;
    }
    changedAt = now;
  }

  /**
   * A change the log does not hold is being made now (the clock is read only by the first such
   * change since the last log record: this runs on every write).
   */
  private void unloggedFromNow() {
    if (!hasUnlogged()) {
      unloggedSince = System.nanoTime();
    }
  }

  /** Something changed since the last log record that the log does not hold yet. */
  private boolean hasUnlogged() {
    return !unlogged.isEmpty() || unloggedTruncate >= 0 || timesUnlogged || unloggable;
  }

  /** Why {@link #logChanges} did not log: nothing to say, or only a commit can say it. */
  static final long NOTHING_TO_LOG = -1;

  static final long COMMIT_INSTEAD = -2;

  /**
   * Appends one record of everything changed since this file's last record to {@code log}: the
   * smallest length a truncate set, the length, the times, and the bytes now in every range written
   * or zeroed meanwhile (see FORMAT.md: replayed in order on the committed tree, records give the
   * contents as of the last one). Returns where the record ends, to {@link IntentLog#sync} for;
   * {@link #NOTHING_TO_LOG} with {@link #lastLoggedEnd} still to wait for; or {@link
   * #COMMIT_INSTEAD} when the change cannot be logged, is larger than {@code maxBytes} or finds no
   * room. Caller holds the write lock.
   */
  long logChanges(ReadTxn txn, IntentLog log, long maxBytes) throws IOException {
    if (unloggable) {
      return COMMIT_INSTEAD;
    }
    long length = tree.length();
    ChangedRanges ranges = unlogged;
    long truncate = unloggedTruncate;
    if (frozenUnlogged != null) {
      ranges = unlogged.copy();
      ranges.addAll(frozenUnlogged);
      if (frozenTruncate >= 0) {
        truncate = truncate < 0 ? frozenTruncate : Math.min(truncate, frozenTruncate);
      }
    }
    ChangedRanges.Merged live = ranges.below(length);
    int count = live.count();
    if (count == 0 && truncate < 0 && !timesUnlogged) {
      return NOTHING_TO_LOG;
    }
    long bytes = live.bytes();
    if (bytes > maxBytes) {
      return COMMIT_INSTEAD;
    }
    ByteBuffer rec =
        log.newRecord(
            lastLoggedSeq,
            ino,
            truncate,
            length,
            timesDirty ? mtimeNs : -1,
            timesDirty ? ctimeNs : -1,
            count,
            bytes);
    for (int i = 0; i < count; i++) {
      long off = live.start(i);
      int n = (int) (live.end(i) - off);
      rec.putLong(off).putInt(n);
      ByteBuffer dst = rec.slice(rec.position(), n);
      while (dst.hasRemaining()) {
        if (tree.read(txn, off + dst.position(), dst) <= 0) {
          throw new IllegalStateException("a logged range lies beyond the end of inode " + ino);
        }
      }
      rec.position(rec.position() + n);
    }
    IntentLog.Appended a = log.append(ino, rec);
    if (a == null) {
      return COMMIT_INSTEAD;
    }
    lastLoggedSeq = a.seq();
    lastLoggedEnd = a.end();
    timesUnlogged = false;
    unlogged = new ChangedRanges();
    unloggedTruncate = -1;
    if (frozenUnlogged != null) {
      frozenUnlogged = new ChangedRanges();
      frozenTruncate = -1;
    }
    return a.end();
  }

  /** The sequence number of this file's last log record. Caller holds the lock. */
  long lastLoggedSeq() {
    return lastLoggedSeq;
  }

  /**
   * The log gave back this file's records up to {@code seq}: they are in its committed tree. When
   * that is all of them, its next record follows none (see {@link #lastLoggedSeq}): a record that
   * named one given back would not be replayed once other records wrote over it, and a record made
   * while a commit was in flight is given back by the commit's end although the folded row of that
   * commit is below it (FORMAT.md, "Intent log"). Caller holds the write lock.
   */
  void loggedFolded(long seq) {
    if (lastLoggedSeq <= seq) {
      lastLoggedSeq = 0;
    }
  }

  /** The log started a new generation: this file has no record in it. Caller holds the lock. */
  void newLogGeneration() {
    lastLoggedSeq = 0;
    lastLoggedEnd = 0;
  }

  /** Where this file's last log record ends. Caller holds the lock. */
  long lastLoggedEnd() {
    return lastLoggedEnd;
  }

  /**
   * A record replayed at open: the contents now hold it, and the next commit folds it. Caller holds
   * the write lock.
   */
  void replayed(long seq, long mtime, long ctime) {
    lastLoggedSeq = seq;
    changedAt(System.nanoTime());
    if (mtime >= 0) {
      mtimeNs = mtime;
      ctimeNs = ctime;
      timesDirty = true;
      timesChanged = true;
      touches++;
    }
    unlogged = new ChangedRanges();
    unloggedTruncate = -1;
  }

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
    long now = System.nanoTime();
    changedAt(now);
    unloggedFromNow();
    mtimeNs = nowNs;
    ctimeNs = nowNs;
    timesDirty = true;
    timesChanged = true;
    timesUnlogged = true;
    touches++;
  }

  /**
   * The attributes of inode {@code i} as this file's buffered changes make them. Caller holds the
   * lock (shared).
   */
  Attributes attributes(Inode i) {
    // ctime only moves forward: a rename or a link since the last write set the inode's later
    // (an explicit setattr commits the buffered times first instead)
    return timesDirty
        ? Attributes.of(i, tree.length(), mtimeNs, Math.max(ctimeNs, i.ctimeNs()))
        : Attributes.of(i, tree.length(), i.mtimeNs(), i.ctimeNs());
  }

  /**
   * Dirty, with its oldest unflushed change made at or before {@code cutoff} (System.nanoTime).
   * Caller holds the write lock.
   */
  boolean dirtySinceBefore(long cutoff) {
    return isDirty() && (!dirtySinceSet || dirtySince - cutoff <= 0);
  }

  /**
   * Due for the flush timer, whose {@code cutoff} says when "the flush interval ago" was
   * (System.nanoTime): dirty, with a change the intent log does not hold made at or before cutoff;
   * or, every change being in the log, with none since cutoff (the file rests: its buffers are
   * given back) or its oldest made at or before {@code loggedCutoff}. A file written and fsynced
   * without a pause is otherwise committed when the log is half full or when its buffers reach its
   * share of the dirty limit, so that one commit takes many rewrites of the same leaves. Caller
   * holds the write lock.
   */
  boolean flushDue(long cutoff, long loggedCutoff) {
    if (!dirtySinceBefore(cutoff)) {
      return false;
    }
    if (hasUnlogged()) {
      return unloggedSince - cutoff <= 0;
    }
    return changedAt - cutoff <= 0 || dirtySince - loggedCutoff <= 0;
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

  /**
   * Freezes the overlay and the times for a commit; {@code foldTo}: the log's last sequence number
   * now (records of this file are made under the write lock, so all of them up to it are in what is
   * frozen). Caller holds the write lock.
   */
  Frozen freeze(ReadTxn txn, long foldTo) throws IOException {
    TreeCommit c = tree.freeze(txn);
    Frozen f =
        new Frozen(c, timesChanged, mtimeNs, ctimeNs, touches, dirtySince, foldTo, unloggable);
    timesChanged = false;
    dirtySinceSet = false;
    frozenUnlogged = unlogged;
    frozenTruncate = unloggedTruncate;
    unlogged = new ChangedRanges();
    unloggedTruncate = -1;
    unloggable = false;
    return f;
  }

  /** The commit of {@code f} is stored: settles it. Caller holds the write lock. */
  void committed(Frozen f) {
    tree.finish(f.tree());
    if (touches == f.touches()) {
      timesDirty = false;
    }
    frozenUnlogged = null;
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
    dirtySince = f.dirtySince(); // no later than any change made since the freeze
    dirtySinceSet = true;
    unlogged.addAll(frozenUnlogged);
    if (frozenTruncate >= 0) {
      truncated(frozenTruncate);
    }
    frozenUnlogged = null;
    unloggable |= f.unloggable();
    if (hasUnlogged()) {
      unloggedSince = f.dirtySince(); // no later than any change it holds: the timer is not late
    }
    if (retired) {
      tree.release(); // nobody counts a retired file's buffer
    }
    if (failure != null) {
      failedAt = Math.max(1, System.nanoTime());
      lastFailure = failure instanceof Exception e ? e : new IOException(failure);
    }
  }
}
