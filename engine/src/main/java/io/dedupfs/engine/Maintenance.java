package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * Upkeep of the store as a whole: reclaiming what nothing references, space figures, scrubbing,
 * checking (fsck) and compacting. Each works in its own short transactions beside the store's other
 * work; a reclaim applies the queued decrements in batches.
 */
final class Maintenance {
  static final int RECLAIM_BATCH = 2048;

  /**
   * Pool references released per transaction: each is a round trip to the pool with the LMDB writer
   * held.
   */
  static final int RELEASE_BATCH = 64;

  private static final System.Logger LOG = System.getLogger(Datastore.class.getName());

  private final Path dir;
  private final DatastoreConfig config;
  private final Lmdb db;
  private final Namespace ns;
  private final Geometry geometry;
  private final BlockStore blocks;

  Maintenance(
      Path dir,
      DatastoreConfig config,
      Lmdb db,
      Namespace ns,
      Geometry geometry,
      BlockStore blocks) {
    this.dir = dir;
    this.config = config;
    this.db = db;
    this.ns = ns;
    this.geometry = geometry;
    this.blocks = blocks;
  }

  /**
   * Space figures of the file or directory tree at {@code path} (a snapshot's directory too), or of
   * the whole store for "" (snapshots included): see {@link SpaceUsage}. Exact: what {@code
   * exclusiveBytes} names is what deleting those files would free; the caller has flushed them
   * ({@code p} is normalized). Costs work per block of the files (nodes are read, leaves only
   * looked up), never a scan of the store for one file.
   */
  SpaceUsage usage(String p) throws IOException {
    reclaimFirst("usage"); // not needed for exactness, but it keeps the queue to work through short
    return db.read(
        txn -> {
          PendingView pending = PendingView.of(txn, blocks);
          SpaceCounter counter = new SpaceCounter(txn, db, blocks, pending);
          return p.isEmpty()
              ? counter.wholeStore()
              : counter.usage(NamespaceOps.regularFilesBelow(ns, txn, ns.resolve(txn, p)).values());
        });
  }

  /** See {@link Datastore#scrub}. */
  ScrubReport scrub(Consumer<Progress> progress) throws IOException {
    return new Scrubber(db, ns, blocks, geometry, Progresses.throttled(progress)).run();
  }

  /** See {@link Datastore#fsck}. */
  List<String> fsck(Consumer<Progress> progress) throws IOException {
    reclaimFirst("fsck");
    return new Fsck(db, blocks).check(Progresses.throttled(progress));
  }

  /** Applies the queued decrements before {@code what}, which accounts for any it cannot apply. */
  private void reclaimFirst(String what) {
    if (config.readOnly()) {
      return;
    }
    try {
      reclaim();
    } catch (IOException | RuntimeException e) {
      LOG.log(
          System.Logger.Level.WARNING,
          "reclaim before " + what + " failed; " + what + " goes on with the queue",
          e);
    }
  }

  /** See {@link Datastore#compact}. */
  CompactResult compact(Consumer<Progress> progress) throws IOException {
    requireWritable();
    reclaim();
    return db.compact(Progresses.throttled(progress));
  }

  /** See {@link Datastore#reclaim}. */
  long reclaim() throws IOException {
    long total = 0;
    int batch = RECLAIM_BATCH;
    while (true) {
      int max = batch;
      int n;
      try {
        n = db.write(txn -> blocks.reclaim(txn, max));
      } catch (StoreFullException e) {
        if (batch == 1) {
          throw e;
        }
        batch = Math.max(1, batch / 16);
        continue;
      }
      if (n == 0) {
        releaseFreed();
        return total;
      }
      total += n;
      batch = Math.min(RECLAIM_BATCH, batch * 2);
    }
  }

  /**
   * Releases the pool references of the blocks freed so far (a store whose blocks are in a pool),
   * in transactions after those that freed them.
   */
  private void releaseFreed() throws IOException {
    if (!db.read(blocks::hasUnreleased)) {
      return;
    }
    while (db.write(txn -> blocks.releaseFreed(txn, RELEASE_BATCH)) > 0) {
      // next batch
    }
  }

  /** See {@link Datastore#reconcile(Consumer)}. */
  long reconcile(Consumer<Progress> progress) throws IOException {
    requireWritable();
    reclaim();
    List<Hash> held = new java.util.ArrayList<>();
    progress.accept(new Progress("list", 0, 0));
    blocks.forEachPooled(
        h -> {
          held.add(h);
          if (held.size() % RELEASE_BATCH == 0) {
            progress.accept(new Progress("list", held.size(), 0));
          }
        });
    progress.accept(new Progress("list", held.size(), held.size()));
    long released = 0;
    progress.accept(new Progress("release", 0, held.size()));
    for (int i = 0; i < held.size(); i += RELEASE_BATCH) {
      List<Hash> batch = held.subList(i, Math.min(held.size(), i + RELEASE_BATCH));
      released += db.write(txn -> blocks.releaseUnrecorded(txn, batch));
      progress.accept(new Progress("release", i + batch.size(), held.size()));
    }
    return released;
  }

  /**
   * {@link #reclaim}, logging a failure: for the background, which retries after the next change.
   */
  void reclaimQuietly() {
    try {
      reclaim();
    } catch (PoolTimeoutException e) { // an OSD down: the queue stays, said without a trace
      LOG.log(
          System.Logger.Level.WARNING,
          "reclaiming space failed, will retry after the next change: " + e.getMessage());
    } catch (IOException | RuntimeException e) {
      LOG.log(
          System.Logger.Level.WARNING,
          "reclaiming space failed; will retry after the next change",
          e);
    }
  }

  private void requireWritable() throws FsException {
    Checks.requireWritable(config, dir);
  }
}
