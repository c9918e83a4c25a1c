package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;

/**
 * Write-back: buffers writes in the files' overlays and decides when and where they are committed.
 * A file's buffered changes are committed by {@link #flush}, {@link #sync}, the timer ({@link
 * #start}), or in the background once the file buffers its share of the dirty limit (a quarter). A
 * commit freezes the file's overlay under the file's lock, then hashes and stores it without that
 * lock (holding only the file's {@link FileContent#commitLock}), so writers and readers go on
 * meanwhile (see {@link FileTree}); a flush waits for the commit in flight, then commits what is
 * left. A writer that finds the whole store's buffered data, frozen or not, at the dirty limit
 * waits for commits first (back-pressure). After each stored commit it queues a reclaim in the
 * background.
 *
 * <p>Its interface: {@link #write}, {@link #flush}, {@link #sync}, {@link #flushBelow}, {@link
 * #commitHeld} (a commit under the file's locks, for a copy), {@link #bufferedBytes}, {@link
 * #reclaimSoon}, {@link #start} and {@link #close}. Locks: as {@link FileContent} orders them;
 * {@link #commitEnded} is taken alone, never with a file's lock.
 */
final class WriteBack {
  /**
   * After a failed commit (a full disk), a file is not committed in the background again for this
   * long.
   */
  private static final long RETRY_FAILED_NS = 1_000_000_000L;

  private static final System.Logger LOG = System.getLogger(Datastore.class.getName());

  private final Lmdb db;
  private final Namespace ns;
  private final DatastoreConfig config;
  private final OpenFiles files;

  /** Frees what is no longer referenced; runs on the background thread. */
  private final Runnable reclaimer;

  /** Bytes frozen by commits in flight: buffered still, until their commits end. */
  private final AtomicLong inFlightBytes = new AtomicLong();

  /** Counts commits that ended (stored or not); {@link #commitEnded} is notified at each. */
  private long commitsEnded;

  private final Object commitEnded = new Object();

  /**
   * Runs the commits of files that reached their share of the dirty limit, so that their writers go
   * on.
   */
  private final ExecutorService committer =
      Executors.newFixedThreadPool(
          2,
          r -> {
            Thread t = new Thread(r, "dedupfs-committer");
            t.setDaemon(true);
            return t;
          });

  /** Runs the flush timer and the reclaims. */
  private final ScheduledExecutorService background =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "dedupfs-background");
            t.setDaemon(true);
            return t;
          });

  private volatile boolean closed;

  WriteBack(Lmdb db, Namespace ns, DatastoreConfig config, OpenFiles files, Runnable reclaimer) {
    this.db = db;
    this.ns = ns;
    this.config = config;
    this.files = files;
    this.reclaimer = reclaimer;
  }

  /** Starts the flush timer and a first reclaim (a writable store only). */
  void start() {
    long period = Math.max(100, config.flushInterval().toMillis() / 2);
    background.scheduleWithFixedDelay(this::flushOld, period, period, TimeUnit.MILLISECONDS);
    background.execute(this::reclaimQuietly);
  }

  /**
   * Bytes of written leaves (and nodes) held in memory, not yet committed, over all files: buffered
   * and frozen by commits in flight.
   */
  long bufferedBytes() {
    return files.dirtyBytes() + inFlightBytes.get();
  }

  /** See {@link Datastore#write}; the caller has checked the store, the offset and the size. */
  int write(long ino, long offset, ByteBuffer src) throws IOException {
    int n = src.remaining();
    while (true) {
      FileContent fc = files.content(ino);
      Checks.requireChangeable(fc);
      if (bufferedBytes() >= config.dirtyLimitBytes()) {
        makeRoom(fc); // room first: when the disk is full, the write is refused before it changes
        // anything
      }
      fc.lock.writeLock().lock();
      try {
        if (fc.isRetired()) {
          continue;
        }
        db.read(
            txn -> {
              fc.tree.write(txn, offset, src);
              return null;
            });
        fc.touch(Checks.now());
        if (fc.tree.dirtyBytes() >= fileShare()) {
          scheduleCommit(fc);
        }
        return n;
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
  }

  /** How much one file may buffer before it is committed in the background. */
  private long fileShare() {
    return config.dirtyLimitBytes() / 4;
  }

  /**
   * Waits until the store's buffered data is below the dirty limit: for commits in flight to end,
   * or, when none is, by committing the writer's own file (or else the file that buffers most)
   * itself. Throws what such a commit throws, and {@link StoreFullException} when a commit of this
   * file ended in a full disk while the limit is reached. Holds no lock.
   */
  private void makeRoom(FileContent fc) throws IOException {
    long limit = config.dirtyLimitBytes();
    while (bufferedBytes() >= limit) {
      if (inFlightBytes.get() > 0) {
        long seen;
        synchronized (commitEnded) {
          seen = commitsEnded;
        }
        kickCommits();
        synchronized (commitEnded) {
          while (commitsEnded == seen && inFlightBytes.get() > 0) {
            try {
              commitEnded.wait(100);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new java.io.InterruptedIOException(
                  "interrupted while waiting for room in the dirty limit");
            }
          }
        }
        if (fc.lastFailure() instanceof StoreFullException full) {
          throw new StoreFullException(full.getMessage(), full);
        }
        continue;
      }
      FileContent victim = fc.tree.dirtyBytes() > 0 || fc.isDirty() ? fc : largestDirty();
      if (victim != null) {
        commitFile(victim);
      }
      return;
    }
  }

  /** Makes sure the files that buffer the most have background commits coming. */
  private void kickCommits() {
    FileContent largest = largestDirty();
    if (largest != null) {
      largest.lock.writeLock().lock();
      try {
        scheduleCommit(largest);
      } finally {
        largest.lock.writeLock().unlock();
      }
    }
  }

  /**
   * The loaded file with the most unfrozen buffered data, or null when none has any (read without
   * locks: a hint).
   */
  private FileContent largestDirty() {
    FileContent best = null;
    long most = 0;
    for (FileContent fc : files.all()) {
      long b = fc.tree.dirtyBytes();
      if (b > most) {
        most = b;
        best = fc;
      }
    }
    return best;
  }

  /**
   * Queues a background commit of fc unless one is queued or running, or its last commit failed
   * less than a second ago (a full disk: writers then meet the dirty limit and are told). Caller
   * holds fc's write lock.
   */
  private void scheduleCommit(FileContent fc) {
    if (closed || !fc.claimBackgroundCommit(RETRY_FAILED_NS)) {
      return;
    }
    try {
      committer.execute(() -> backgroundCommit(fc));
    } catch (java.util.concurrent.RejectedExecutionException e) {
      fc.backgroundCommitEnded(); // closing
    }
  }

  /** Commits fc, again while it has reached its share meanwhile. */
  private void backgroundCommit(FileContent fc) {
    while (true) {
      boolean failed = false;
      try {
        commitFile(fc);
      } catch (IOException | RuntimeException e) {
        failed = true;
        LOG.log(
            System.Logger.Level.DEBUG,
            "background commit of inode " + fc.ino + " failed; its data stays buffered",
            e);
      }
      fc.lock.writeLock().lock();
      try {
        if (failed || closed || fc.isRetired() || fc.tree.dirtyBytes() < fileShare()) {
          fc.backgroundCommitEnded();
          return;
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
  }

  /** See {@link Datastore#flush}. */
  void flush(long ino) throws IOException {
    FileContent fc = files.get(ino);
    if (fc != null) {
      commitFile(fc);
    }
  }

  /** Commits every file's buffered writes. */
  void sync() throws IOException {
    for (long ino : files.inos()) {
      flush(ino);
    }
  }

  /** Commits the buffered writes of every file at or below {@code path}. */
  void flushBelow(String path) throws IOException {
    if (config.readOnly()) {
      return;
    }
    if (path.isEmpty()) {
      sync();
      return;
    }
    for (long ino :
        db.read(txn -> NamespaceOps.regularFilesBelow(ns, txn, ns.resolve(txn, path))).keySet()) {
      if (files.isLoaded(ino)) {
        flush(ino);
      }
    }
  }

  /**
   * One whole commit of fc: waits for the one in flight, then freezes, stores and settles what is
   * buffered. Holds no lock of fc.
   */
  private void commitFile(FileContent fc) throws IOException {
    fc.commitLock.lock();
    try {
      commitLocked(fc, false);
    } finally {
      fc.commitLock.unlock();
    }
  }

  /**
   * Commits fc's buffered changes; the caller holds fc's commit lock and write lock ({@link
   * OpenFiles#lockForCommit}).
   */
  void commitHeld(FileContent fc) throws IOException {
    commitLocked(fc, true);
  }

  /**
   * For tests: told of every commit once it has frozen a file's overlay, before hashing and storing
   * it, and when it has ended.
   */
  interface CommitHook {
    /**
     * Runs without the file's lock (but for commits made under it, as a copy's); what it throws
     * fails the commit.
     */
    void frozen(long ino) throws IOException;

    default void ended(long ino, boolean stored) {}
  }

  volatile CommitHook commitHook;

  /**
   * Commits fc's buffered changes. The caller holds fc's commit lock; with {@code holding}, also
   * fc's write lock, kept throughout. Otherwise the write lock is taken only to freeze the overlay
   * and to settle it afterwards: hashing and the durable transaction run without it, while writers
   * change copies of what is frozen and readers still read it. On failure the frozen changes are
   * buffered again (nothing is lost) and the failure is thrown.
   */
  private void commitLocked(FileContent fc, boolean holding) throws IOException {
    Lock w = fc.lock.writeLock();
    FileContent.Frozen f;
    if (!holding) {
      w.lock();
    }
    try {
      if (fc.isRetired() || !fc.isDirty()) {
        return;
      }
      f = db.read(fc::freeze);
      inFlightBytes.addAndGet(f.tree().bytes);
    } finally {
      if (!holding) {
        w.unlock();
      }
    }
    boolean applied = false;
    Throwable failure = null;
    CommitHook hook = commitHook;
    try {
      if (hook != null) {
        hook.frozen(fc.ino);
      }
      TreeCommit c = f.tree();
      c.hash();
      applied =
          db.write(
              txn -> {
                Inode i;
                try {
                  i = ns.inode(txn, fc.ino);
                } catch (NoSuchFileException gone) {
                  return false;
                }
                c.apply(txn);
                ns.put(
                    txn,
                    i.withContent(
                        c.root(),
                        c.newHeight,
                        c.length,
                        f.times() ? f.mtimeNs() : i.mtimeNs(),
                        f.times() ? f.ctimeNs() : i.ctimeNs()));
                return true;
              });
    } catch (IOException | RuntimeException | Error e) {
      failure = e;
    }
    if (!holding) {
      w.lock();
    }
    try {
      if (applied) {
        fc.committed(f);
      } else {
        fc.notCommitted(f, failure);
      }
    } finally {
      inFlightBytes.addAndGet(-f.tree().bytes);
      if (!holding) {
        w.unlock();
      }
      synchronized (commitEnded) {
        commitsEnded++;
        commitEnded.notifyAll();
      }
      if (hook != null) {
        hook.ended(fc.ino, applied);
      }
    }
    if (failure instanceof IOException e) {
      throw e;
    } else if (failure instanceof RuntimeException e) {
      throw e;
    } else if (failure instanceof Error e) {
      throw e;
    }
    if (applied) {
      reclaimSoon();
    }
  }

  /** Queues a reclaim in the background (none once the store is closing). */
  void reclaimSoon() {
    try {
      background.execute(this::reclaimQuietly);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing: the next open reclaims
    }
  }

  private void reclaimQuietly() {
    if (closed) {
      return;
    }
    reclaimer.run();
  }

  private void flushOld() {
    long cutoff = System.nanoTime() - config.flushInterval().toNanos();
    for (FileContent fc : files.all()) {
      if (closed) {
        return;
      }
      if (fc.lock.writeLock().tryLock()) {
        try {
          if (fc.dirtySinceBefore(cutoff)) {
            scheduleCommit(fc);
          }
        } finally {
          fc.lock.writeLock().unlock();
        }
      }
    }
  }

  boolean isClosed() {
    return closed;
  }

  /**
   * Stops the background work: lets queued commits and reclaims end (a while at most), queues no
   * more.
   */
  void close() {
    closed = true;
    committer.shutdown();
    background.shutdown();
    try {
      committer.awaitTermination(60, TimeUnit.SECONDS);
      background.awaitTermination(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Stops the background work at once (a store that failed to open). */
  void shutdownNow() {
    background.shutdownNow();
    committer.shutdownNow();
  }
}
