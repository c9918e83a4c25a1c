package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.function.Consumer;

/**
 * Deletes a store: first, for a store whose blocks are in a pool, releases every pool reference its
 * {@code refs} and {@code releases} tables name and takes it off the pool's list of stores; then
 * deletes its files (and its intent log where the store's {@code intent.log} links to one kept
 * elsewhere). Crash-safe: the store is marked ({@code meta} {@code destroying}) before the first
 * release, so that no open uses it with blocks gone, and each batch's rows are deleted in the
 * transaction after its releases, so that running it again finishes it (a release repeated changes
 * nothing).
 */
final class Destroy {
  private Destroy() {}

  /** The meta key that marks a store being destroyed: when it began (ISO-8601). */
  static final String META_DESTROYING = "destroying";

  /** How many references one transaction releases (in parallel). */
  private static final int BATCH = 1024;

  /** The files a store is made of, its lock last. */
  private static final List<String> FILES =
      List.of("data.mdb", "lock.mdb", IntentLog.FILE, IntentLog.FILE + ".tmp", "dedupfs.lock");

  /** See {@link Datastore#destroy}. */
  static DestroyReport run(Path dir, DatastoreConfig config, Consumer<Progress> progress)
      throws IOException {
    if (!Datastore.isStore(dir)) {
      throw new StoreException(dir + " holds no dedupfs store");
    }
    String poolName;
    long released = 0;
    try (StoreDirectory home = StoreDirectory.lock(dir, false)) {
      try (Lmdb db = home.openLmdb(Lmdb.DEFAULT_MAP_SIZE)) {
        poolName = db.read(txn -> db.metaString(txn, Datastore.META_BLOCKS));
        if (poolName != null) {
          released = releaseAll(db, config, poolName, progress);
        }
      }
      Lmdb.removeCompactDir(dir);
      Path logElsewhere = IntentLog.linkedFile(dir);
      if (logElsewhere != null) {
        Files.deleteIfExists(logElsewhere);
      }
      for (String name : FILES) {
        Files.deleteIfExists(dir.resolve(name));
      }
    }
    try {
      Files.deleteIfExists(dir);
    } catch (java.nio.file.DirectoryNotEmptyException e) {
      // files that are not the store's: they stay, and so does the directory
    }
    return new DestroyReport(poolName == null ? "" : poolName, released);
  }

  /** Releases every reference the store records in its pool, then leaves the pool's list. */
  private static long releaseAll(
      Lmdb db, DatastoreConfig config, String poolName, Consumer<Progress> progress)
      throws IOException {
    String[] meta =
        db.read(
            txn ->
                new String[] {
                  db.metaString(txn, Datastore.META_BLOCKS_CONF),
                  db.metaString(txn, Datastore.META_BLOCKS_CLIENT),
                  db.metaString(txn, Datastore.META_STORE_ID)
                });
    if (config.pools() == null) {
      throw new StoreException(
          "the store keeps its blocks in " + poolName + ": destroying it needs that pool given");
    }
    String holder = meta[2];
    try (BlockPool pool = config.pools().open(new BlockPool.Location(poolName, meta[0], meta[1]))) {
      db.write(
          txn -> {
            if (db.metaString(txn, META_DESTROYING) == null) {
              db.putMeta(txn, META_DESTROYING, java.time.Instant.now().toString());
            }
            return null;
          });
      long total = db.read(txn -> db.refs.stat(txn).entries + db.releases.stat(txn).entries);
      long done = 0;
      progress.accept(new Progress("release", 0, total));
      ExecutorService io = PoolBlockStore.ioThreads("dedupfs-destroy-");
      try {
        for (Table table : List.of(db.refs, db.releases)) {
          int n;
          while ((n = db.write(txn -> releaseBatch(txn, table, pool, holder, io))) > 0) {
            done += n;
            progress.accept(new Progress("release", done, total));
          }
        }
      } finally {
        io.shutdownNow();
      }
      pool.unregister(holder);
      return done;
    }
  }

  /**
   * Releases the references of the first {@link #BATCH} blocks of {@code table} (keyed by hash) and
   * deletes their rows; returns how many.
   */
  private static int releaseBatch(
      WriteTxn txn, Table table, BlockPool pool, String holder, ExecutorService io)
      throws IOException {
    List<Hash> hashes = new ArrayList<>(BATCH);
    try (TableCursor c = table.openCursor(txn)) {
      for (boolean ok = c.first(); ok && hashes.size() < BATCH; ok = c.next()) {
        hashes.add(Hash.read(c.key(), c.key().position()));
      }
    }
    PoolBlockStore.inParallel(
        io, hashes, h -> pool.release(holder, h), "releasing the blocks of a destroyed store");
    for (Hash h : hashes) {
      table.delete(txn, Lmdb.key(h));
    }
    return hashes.size();
  }
}
