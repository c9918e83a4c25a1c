package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;

/**
 * Write-back: buffers writes in the files' overlays and decides when and where they are committed.
 * A file's buffered changes are committed by {@link #flush}, {@link #sync}, the timer ({@link
 * #start}: a flush interval after the first change the intent log does not hold; changes that are
 * all in the log once the file rests for an interval, see {@link FileContent#flushDue}), or in the
 * background once the file buffers its share of the dirty limit (a quarter). A commit freezes the
 * file's overlay under the file's lock, then hashes and stores it without that lock (holding only
 * the file's {@link FileContent#commitLock}), so writers and readers go on meanwhile (see {@link
 * FileTree}); a flush waits for the commit in flight, then commits what is left. A writer that
 * finds the whole store's buffered data, frozen or not, at the dirty limit waits for commits first
 * (back-pressure); once one has, large writes above half the limit are paced to about the speed of
 * recent commits ({@link #pace}), so that streaming writers wait a little at each write rather than
 * for a whole commit now and then. After stored commits it queues a reclaim in the background, one
 * for the commits of 50 ms.
 *
 * <p>Durability: {@link #fsync} appends the file's changes to the {@link IntentLog} instead of
 * committing; commits fold the records (table {@code folded}), a log half full of records not yet
 * folded has their files committed, and {@link #replay} applies the records no commit folded when
 * the store opens.
 *
 * <p>Its interface: {@link #write}, {@link #fsync}, {@link #flush}, {@link #sync}, {@link
 * #flushBelow}, {@link #replay}, {@link #contentsReplaced}, {@link #commitHeld} (a commit under the
 * file's locks, for a copy), {@link #bufferedBytes}, {@link #reclaimSoon}, {@link #start} and
 * {@link #close}. Locks: as {@link FileContent} orders them; {@link #commitEnded} and {@link
 * #paceLock} are taken alone, never with a file's lock.
 */
final class WriteBack {
  /**
   * After a failed commit (a full disk), a file is not committed in the background again for this
   * long.
   */
  private static final long RETRY_FAILED_NS = 1_000_000_000L;

  private static final System.Logger LOG = System.getLogger(Datastore.class.getName());

  /**
   * The largest log record an fsync writes (a quarter of the log, if that is less); a file with
   * more unlogged changes is committed.
   */
  static final long LOG_RECORD_MAX = 8L << 20;

  private final Lmdb db;
  private final Namespace ns;
  private final DatastoreConfig config;
  private final OpenFiles files;

  /** Where fsyncs go (see {@link #fsync}); null: fsyncs commit, as in a read-only store. */
  private final IntentLog log;

  /**
   * Whether a log more than half full of records not yet folded has its files committed in the
   * background; tests that know what every commit covers turn it off.
   */
  volatile boolean foldInBackground = true;

  /** A fold of the log's oldest records is queued or running ({@link #foldLogSoon}). */
  private final AtomicBoolean foldQueued = new AtomicBoolean();

  /** A reclaim is queued and has not started ({@link #reclaimSoon}). */
  private final AtomicBoolean reclaimQueued = new AtomicBoolean();

  /** Frees what is no longer referenced; runs on the background thread. */
  private final Runnable reclaimer;

  /** Bytes frozen by commits in flight: buffered still, until their commits end. */
  private final AtomicLong inFlightBytes = new AtomicLong();

  /** Counts commits that ended (stored or not); {@link #commitEnded} is notified at each. */
  private long commitsEnded;

  private final Object commitEnded = new Object();

  /**
   * Bytes per nanosecond that recent commits of at least {@link #SPEED_SAMPLE_MIN} stored, from
   * freeze to end (an average weighted to the last few); 0 until one did.
   */
  private volatile double commitSpeed;

  /**
   * How many flush intervals a file written and fsynced without a pause keeps changes that are all
   * in the intent log before the timer commits them ({@link FileContent#flushDue}), while the store
   * buffers less than half its dirty limit: bounds how long it holds its buffers and what a reopen
   * after a crash replays, beside the log's own bound (half full) and the dirty limit. Committed at
   * every tick of the timer instead, four guests fsyncing a hot set had the disk write twice as
   * much and their fsyncs' p99 was 2.5 times as long (README, "Durability").
   */
  private static final int LOGGED_FLUSH_INTERVALS = 12;

  /** Commits smaller than this say more about their fixed costs than about the store's speed. */
  private static final long SPEED_SAMPLE_MIN = 8L << 20;

  /** The longest that pacing delays one write; beyond it, the dirty limit's wait takes over. */
  private static final long PACE_MAX_NS = 50_000_000L;

  /**
   * Writes of at least this many bytes are paced: streams, whose writers want throughput, not the
   * small writes of a guest's random I/O, each of which would hold a FUSE worker while it waits.
   */
  private static final int PACED_WRITE_MIN = 64 << 10;

  /**
   * Writes are paced only this long after a writer met the dirty limit: a file rewritten in place
   * within the limit goes at memory speed.
   */
  private static final long PACE_AFTER_NS = 5_000_000_000L;

  /** When a writer last met the dirty limit and waited for a commit ({@link System#nanoTime}). */
  private volatile long limitMetAt = System.nanoTime() - 2 * PACE_AFTER_NS;

  /** Guards {@link #paceNext}. */
  private final Object paceLock = new Object();

  /** When the next paced write may go on ({@link System#nanoTime}). Guarded by paceLock. */
  private long paceNext;

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

  WriteBack(
      Lmdb db,
      Namespace ns,
      DatastoreConfig config,
      OpenFiles files,
      IntentLog log,
      Runnable reclaimer) {
    this.db = db;
    this.ns = ns;
    this.config = config;
    this.files = files;
    this.log = log;
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
      long grew;
      fc.lock.writeLock().lock();
      try {
        if (fc.isRetired()) {
          continue;
        }
        long before = fc.tree.dirtyBytes();
        db.read(
            txn -> {
              fc.tree.write(txn, offset, src);
              return null;
            });
        fc.changed(offset, offset + n);
        fc.touch(Checks.now());
        grew = fc.tree.dirtyBytes() - before;
        if (fc.tree.dirtyBytes() >= fileShare()) {
          scheduleCommit(fc);
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
      if (n >= PACED_WRITE_MIN) {
        pace(grew);
      }
      return n;
    }
  }

  /**
   * Called after a write of at least {@link #PACED_WRITE_MIN} that added {@code bytes} to the
   * buffered data (a write over leaves that are buffered already adds nothing). While the buffered
   * data is above half the dirty limit, and a writer met the limit in the last {@link
   * #PACE_AFTER_NS}, lets such writes go on at most at a speed that falls from twice the recent
   * commits' speed there to nothing at the limit: writers that are faster than the commits then
   * wait a few milliseconds at each write, in turn, instead of filling the limit and all waiting
   * for a whole commit (which, at 128 MiB or more, takes about a second: the p99 of 1 MiB O_DIRECT
   * writes at queue depth 16). Delays one write by at most {@link #PACE_MAX_NS}. Holds no lock but
   * {@link #paceLock}, briefly.
   */
  private void pace(long bytes) {
    double speed = commitSpeed;
    if (bytes <= 0 || speed <= 0 || System.nanoTime() - limitMetAt > PACE_AFTER_NS) {
      return;
    }
    long limit = config.dirtyLimitBytes();
    long from = limit / 2;
    long above = bufferedBytes() - from;
    if (above <= 0) {
      return;
    }
    double allowed = 2 * speed * (1 - above / (double) (limit - from));
    long cost = allowed <= 0 ? PACE_MAX_NS : (long) Math.min(PACE_MAX_NS, bytes / allowed);
    long now = System.nanoTime();
    long until;
    synchronized (paceLock) {
      until = Math.min(Math.max(paceNext, now) + cost, now + PACE_MAX_NS);
      paceNext = until;
    }
    long wait = until - now;
    if (wait > 0) {
      try {
        TimeUnit.NANOSECONDS.sleep(wait);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt(); // the write is done: only its reply was to wait
      }
    }
  }

  /** Counts a stored commit of {@code bytes} that took {@code ns} into {@link #commitSpeed}. */
  private void noteCommitSpeed(long bytes, long ns) {
    if (bytes < SPEED_SAMPLE_MIN || ns <= 0) {
      return;
    }
    double sample = bytes / (double) ns;
    double old = commitSpeed;
    commitSpeed = old == 0 ? sample : 0.75 * old + 0.25 * sample; // racy: a hint
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
        limitMetAt = System.nanoTime();
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
        if (e instanceof PoolTimeoutException) { // an OSD down: said once per try, no trace
          LOG.log(
              System.Logger.Level.WARNING,
              "background commit of inode "
                  + fc.ino
                  + " failed, its data stays buffered and is committed later: "
                  + e.getMessage());
        } else {
          LOG.log(
              e instanceof RuntimeException ? System.Logger.Level.ERROR : System.Logger.Level.DEBUG,
              "background commit of inode " + fc.ino + " failed; its data stays buffered",
              e);
        }
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

  /**
   * Makes the buffered writes of {@code ino} durable (fsync, fdatasync, close): appends one record
   * of its changes since its last record to the intent log and waits for the log's flush, shared
   * with every fsync that arrives meanwhile (group commit). The changes are folded into the file's
   * tree by a later commit. A file whose changes the log cannot say (a range clone), that changed
   * more than {@link #LOG_RECORD_MAX} or finds the log full is committed instead, as {@link #flush}
   * does.
   */
  void fsync(long ino) throws IOException {
    FileContent fc = files.get(ino);
    if (fc == null) {
      return;
    }
    if (log == null) {
      commitFile(fc);
      return;
    }
    long end;
    long seq;
    fc.lock.writeLock().lock();
    try {
      if (fc.isRetired()) {
        return;
      }
      end = db.read(txn -> fc.logChanges(txn, log, Math.min(LOG_RECORD_MAX, log.capacity() / 4)));
      if (end == FileContent.NOTHING_TO_LOG) {
        end = fc.lastLoggedEnd();
      }
      seq = fc.lastLoggedSeq();
    } finally {
      fc.lock.writeLock().unlock();
    }
    if (end == FileContent.COMMIT_INSTEAD) {
      commitFile(fc);
      return;
    }
    try {
      log.sync(ino, seq, end);
    } catch (java.io.InterruptedIOException e) {
      throw e;
    } catch (IOException e) {
      LOG.log(System.Logger.Level.WARNING, "the intent log failed; committing inode " + ino, e);
      commitFile(fc); // durable without the log, and folds what the lost record held
      return;
    }
    if (foldInBackground && log.neededBytes() > log.capacity() / 2) {
      foldLogSoon();
    }
  }

  /**
   * Queues commits of the files whose log records are oldest, so that the log's space comes back
   * before it fills.
   */
  private void foldLogSoon() {
    if (closed || !foldQueued.compareAndSet(false, true)) {
      return;
    }
    log.foldingForRoom();
    try {
      committer.execute(
          () -> {
            try {
              foldLog();
            } catch (IOException | RuntimeException e) {
              LOG.log(System.Logger.Level.DEBUG, "folding the intent log failed; it goes on", e);
            } finally {
              foldQueued.set(false);
            }
          });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      foldQueued.set(false); // closing
    }
  }

  /** Commits every file with log records not yet folded, oldest first. */
  void foldLog() throws IOException {
    if (log == null) {
      return;
    }
    for (long ino : log.inosWithNeeded()) {
      FileContent fc = files.get(ino);
      if (fc == null) {
        log.folded(ino, Long.MAX_VALUE); // dropped: committed or deleted
      } else {
        commitFile(fc);
      }
    }
  }

  /**
   * The contents of {@code ino} are replaced in {@code txn} outside its commits (a restore), while
   * its locks are held: none of its log records may be replayed over the new contents.
   */
  void contentsReplaced(WriteTxn txn, long ino) {
    if (log != null && log.lastSeq() > 0) {
      putFolded(txn, ino, log.lastSeq());
    }
  }

  private void putFolded(WriteTxn txn, long ino, long seq) {
    db.folded.put(txn, Lmdb.key(ino), Lmdb.value(8).putLong(seq).flip());
  }

  /**
   * Applies the records of the intent log that no commit folded (FORMAT.md, "Intent log") to the
   * files' buffered contents, file by file in order of sequence number, from the first above the
   * file's folded row: each record that follows the one applied before it or one at or below the
   * folded row (whose state the committed tree holds). A record that follows one not applied (lost
   * to a power cut, or skipped so) is skipped: it was never acknowledged. It is not an end: after
   * an open that could not commit what it replayed (a full disk) the log goes on in the same
   * generation, and the file's next records follow the last one applied. Files that are gone,
   * unlinked (orphans, purged next) or in a snapshot are skipped. The caller commits. Returns the
   * records applied.
   */
  List<IntentLog.Record> replay(List<IntentLog.Record> records) throws IOException {
    List<IntentLog.Record> applied = new ArrayList<>();
    Map<Long, List<IntentLog.Record>> byIno = new TreeMap<>();
    for (IntentLog.Record r : records) {
      byIno.computeIfAbsent(r.ino(), k -> new ArrayList<>()).add(r);
    }
    for (Map.Entry<Long, List<IntentLog.Record>> e : byIno.entrySet()) {
      long ino = e.getKey();
      List<IntentLog.Record> list = e.getValue();
      list.sort(Comparator.comparingLong(IntentLog.Record::seq));
      Long folded = db.read(txn -> replayFrom(txn, ino));
      if (folded == null) {
        continue;
      }
      FileContent fc = files.content(ino);
      fc.lock.writeLock().lock();
      try {
        long cur = folded;
        for (IntentLog.Record r : list) {
          if (r.seq() <= folded) {
            continue;
          }
          if (r.prevSeq() != cur && r.prevSeq() > folded) {
            continue; // it follows a record not applied: lost, and so never acknowledged
          }
          db.read(
              txn -> {
                if (r.truncateTo() >= 0) {
                  fc.tree.truncate(txn, r.truncateTo());
                }
                if (r.length() != fc.tree.length()) {
                  fc.tree.truncate(txn, r.length());
                }
                for (IntentLog.Range range : r.ranges()) {
                  fc.tree.write(txn, range.offset(), ByteBuffer.wrap(range.data()));
                }
                return null;
              });
          fc.replayed(r.seq(), r.mtimeNs(), r.ctimeNs());
          applied.add(r);
          cur = r.seq();
          LOG.log(
              System.Logger.Level.DEBUG,
              "replayed intent log record " + r.seq() + " of inode " + ino);
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
    return applied;
  }

  /**
   * The sequence number of the last record folded for {@code ino} (0 for none), or null when its
   * records are not to be replayed: gone, unlinked or in a snapshot.
   */
  private Long replayFrom(ReadTxn txn, long ino) {
    Inode i = ns.find(txn, ino);
    if (i == null || !i.isRegular() || i.nlink() == 0 || i.isReadOnly()) {
      return null;
    }
    ByteBuffer v = db.folded.present() ? db.folded.get(txn, Lmdb.key(ino)) : null;
    return v == null ? 0L : v.getLong(v.position());
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
    long frozenAt;
    if (!holding) {
      w.lock();
    }
    try {
      if (fc.isRetired() || !fc.isDirty()) {
        releaseLogged(fc);
        return;
      }
      long foldTo = log == null ? 0 : log.lastSeq();
      f = db.read(txn -> fc.freeze(txn, foldTo));
      inFlightBytes.addAndGet(f.tree().bytes);
      frozenAt = System.nanoTime();
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
      c.packAhead(db.read(c::missingLeaves)); // hashed and compressed before the single writer
      applied =
          db.write(
              txn -> {
                Inode i;
                try {
                  i = ns.inode(txn, fc.ino);
                } catch (NoSuchFileException gone) {
                  return false;
                }
                if (!c.replaces(i.root())) {
                  // contents that missed a change of the inode: storing them would drop that change
                  // and release their old root a second time
                  throw new IllegalStateException(
                      "inode "
                          + fc.ino
                          + ": its contents in memory were not loaded from its committed root "
                          + i.root()
                          + "; not committed");
                }
                c.apply(txn);
                if (f.foldTo() > 0) {
                  putFolded(txn, fc.ino, f.foldTo());
                }
                ns.put(
                    txn,
                    i.withContent(
                        c.root(),
                        c.newHeight,
                        c.length,
                        f.times() ? f.mtimeNs() : i.mtimeNs(),
                        f.times() ? Math.max(f.ctimeNs(), i.ctimeNs()) : i.ctimeNs()));
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
        if (log != null) {
          log.folded(fc.ino, f.foldTo());
          fc.loggedFolded(f.foldTo());
          releaseLogged(fc);
        }
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
    if (applied) {
      f.tree().stored();
    }
    if (failure instanceof IOException e) {
      throw e;
    } else if (failure instanceof RuntimeException e) {
      throw e;
    } else if (failure instanceof Error e) {
      throw e;
    }
    if (applied) {
      noteCommitSpeed(f.tree().bytes, System.nanoTime() - frozenAt);
      reclaimSoon();
    }
  }

  /**
   * A file with nothing to commit and no commit in flight has every log record in its committed
   * tree (a record made while a commit was in flight holds only what that commit stored, or the
   * file would be dirty): their space may be reused. Replaying them after a crash would change
   * nothing, and the folded row may be below them: the file's next record therefore follows none
   * ({@link FileContent#loggedFolded}). Caller holds fc's write lock.
   */
  private void releaseLogged(FileContent fc) {
    if (log != null && !fc.busy()) {
      log.folded(fc.ino, fc.lastLoggedSeq());
      fc.loggedFolded(Long.MAX_VALUE);
    }
  }

  /**
   * Queues a reclaim in the background, shortly: the commits that end meanwhile share it (none once
   * the store is closing).
   */
  void reclaimSoon() {
    if (!reclaimQueued.compareAndSet(false, true)) {
      return;
    }
    try {
      background.schedule(this::reclaimQuietly, RECLAIM_DELAY_MS, TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      reclaimQueued.set(false); // closing: the next open reclaims
    }
  }

  /** How long a reclaim waits for more commits to share it. */
  private static final long RECLAIM_DELAY_MS = 50;

  private void reclaimQuietly() {
    reclaimQueued.set(false);
    if (closed) {
      return;
    }
    reclaimer.run();
  }

  private void flushOld() {
    long now = System.nanoTime();
    long interval = config.flushInterval().toNanos();
    long cutoff = now - interval;
    // once half the dirty limit is buffered, what the log holds waits no longer than the rest:
    // several busy files would otherwise fill the limit together and their writers wait at it
    long loggedCutoff =
        bufferedBytes() > config.dirtyLimitBytes() / 2
            ? cutoff
            : now - LOGGED_FLUSH_INTERVALS * interval;
    for (FileContent fc : files.all()) {
      if (closed) {
        return;
      }
      if (fc.lock.writeLock().tryLock()) {
        try {
          if (fc.flushDue(cutoff, loggedCutoff)) {
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

  /**
   * For tests: stops the background work at once and waits until it has stopped, as if the process
   * died (a commit in progress ends, nothing queued starts).
   */
  void abandon() {
    closed = true;
    shutdownNow();
    try {
      committer.awaitTermination(60, TimeUnit.SECONDS);
      background.awaitTermination(60, TimeUnit.SECONDS);
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
