package io.dedupfs.engine;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Flushes {@code data.mdb} while a long LMDB commit runs, so that the pages the commit has written
 * into the page cache go to the disk while it writes the rest, instead of all at its one {@code
 * fdatasync}. A commit of a few hundred MiB (a stream of buffered writes) spends about as long
 * copying its pages into the page cache as the disk then takes to make them durable; flushed every
 * {@link #INTERVAL_MS} meanwhile, the two overlap, and LMDB's own flush finds little left
 * (benchmarks/README.md, "Flushing ahead of long commits"). A commit shorter than the interval is
 * not touched. Every commit is watched, the short ones too: scheduling and cancelling the task (two
 * wakeups of its thread) is little beside a commit's two {@code fdatasync} calls, and watching only
 * commits of 8 MiB or more gained nothing measurable (the same section).
 *
 * <p>It changes nothing LMDB relies on: LMDB writes a commit's meta page only after its own flush
 * of the commit's pages, so an earlier flush can make pages durable sooner, never a meta page
 * before the pages it names. The file is opened by its path at each flush, so a compaction that
 * replaces it is followed. Failures are left to LMDB's own flush, which reports them.
 *
 * <p>Locks: none; one thread of its own flushes, and {@link #during} and the cancelling of what it
 * returns may be called from any thread.
 */
final class FlushAhead implements AutoCloseable {
  private static final System.Logger LOG = System.getLogger(FlushAhead.class.getName());

  /** How long a commit runs before the first flush, and between flushes. */
  static final long INTERVAL_MS = 25;

  private final Path file;
  private final ScheduledThreadPoolExecutor thread;

  FlushAhead(Path file) {
    this.file = file;
    this.thread =
        new ScheduledThreadPoolExecutor(
            1,
            r -> {
              Thread t = new Thread(r, "dedupfs-flush-ahead");
              t.setDaemon(true);
              return t;
            });
    thread.setRemoveOnCancelPolicy(true); // short commits leave no task behind
  }

  /**
   * Flushes the file every {@link #INTERVAL_MS}, from one interval from now until the returned
   * future is cancelled (when the commit has returned).
   */
  Future<?> during() {
    try {
      return thread.scheduleWithFixedDelay(
          this::flush, INTERVAL_MS, INTERVAL_MS, TimeUnit.MILLISECONDS);
    } catch (RejectedExecutionException closed) {
      return CompletableFuture.completedFuture(null);
    }
  }

  private void flush() {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      ch.force(false);
    } catch (IOException e) {
      LOG.log(System.Logger.Level.DEBUG, "flushing " + file + " ahead of a commit failed", e);
    }
  }

  /** Stops flushing; a flush under way ends on its own. */
  @Override
  public void close() {
    thread.shutdownNow();
  }
}
