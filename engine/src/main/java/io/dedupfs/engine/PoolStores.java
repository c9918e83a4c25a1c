package io.dedupfs.engine;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.function.Consumer;
import java.util.regex.Matcher;

/**
 * The stores of a block pool, seen from the pool: which holders hold references, how many, and
 * whether each is on the pool's list of stores ({@link BlockPool#register}); and the release of
 * every reference of a store that is gone (its directory lost, or references a destroyed store took
 * but never recorded). Both list the whole pool: one round trip per block, {@link
 * PoolBlockStore#IN_FLIGHT} at once.
 */
public final class PoolStores {
  private PoolStores() {}

  /** How many blocks the pool is asked about between two progress reports. */
  private static final int BATCH = 1024;

  /**
   * A holder of references in a pool: its id, how many blocks it holds, and its description on the
   * pool's list of stores (null when it is not on it: a store that is gone, or one that no dedupfs
   * with the list has opened since it was created).
   */
  public record Holder(String id, long blocks, String registration) {}

  /**
   * Every holder of the pool: those on its list of stores (even with no block) and those holding
   * references without being on it, by id. Progress: phase "holders" (blocks asked about).
   */
  public static List<Holder> list(BlockPool pool, Consumer<Progress> progress) throws IOException {
    Map<String, String> registered = pool.registered();
    Map<String, Long> counts = new TreeMap<>();
    registered.keySet().forEach(id -> counts.put(id, 0L));
    forEachBatch(
        pool,
        "holders",
        progress,
        (io, batch) -> {
          for (List<String> holders :
              PoolBlockStore.inParallel(io, batch, pool::holders, "reading holders")) {
            holders.forEach(id -> counts.merge(id, 1L, Long::sum));
          }
        });
    List<Holder> out = new ArrayList<>();
    counts.forEach((id, n) -> out.add(new Holder(id, n, registered.get(id))));
    return out;
  }

  /**
   * Releases every reference {@code holder} holds in the pool and leaves on the pool's list of
   * stores an entry that says it was forgotten ({@link #FORGOTTEN}: every later open of that store
   * is refused); returns how many references it released. Only for a store that is gone: a live
   * store that is forgotten loses its blocks (its reads fail). Refuses a holder on the list of
   * stores unless {@code evenIfRegistered} (a store whose directory is lost stays on the list), and
   * even then a store whose entry shows it open somewhere ({@link #requireNotInUse}). Its own entry
   * replaces only the one it read, before any release: a store opened meanwhile changed it ({@link
   * PoolHeartbeat}), and is refused. Progress: phase {@link #WATCH} (seconds), then "release"
   * (blocks asked about).
   */
  public static long forget(
      BlockPool pool, String holder, boolean evenIfRegistered, Consumer<Progress> progress)
      throws IOException {
    String entry = pool.registered(holder);
    String registration = entry;
    if (isForgotten(registration)) {
      registration = null; // forgotten before: an interrupted forget, or references taken since
    }
    if (registration != null && !evenIfRegistered) {
      throw new StoreException(
          "store "
              + holder
              + " is on the pool's list of stores ("
              + registration
              + "): if it is gone for good, forget it with --force; if it is still there, dedupfs"
              + " destroy on its host releases its blocks");
    }
    if (registration != null) {
      requireNotInUse(pool, holder, registration, progress);
    }
    // only over the entry read (and watched): a store that opened meanwhile has changed it
    String tombstone =
        FORGOTTEN
            + PoolHeartbeat.now()
            + " by dedupfs pool forget on host "
            + PoolHeartbeat.hostName();
    if (!pool.register(holder, entry, tombstone)) {
      throw new StoreException(
          "store "
              + holder
              + " changed its entry on the pool's list of stores while it was being forgotten ("
              + pool.registered(holder)
              + "): it was opened or destroyed meanwhile; nothing was released");
    }
    long[] released = {0};
    forEachBatch(
        pool,
        "release",
        progress,
        (io, batch) -> {
          for (boolean r :
              PoolBlockStore.inParallel(
                  io,
                  batch,
                  h -> {
                    if (!pool.holders(h).contains(holder)) {
                      return false;
                    }
                    pool.release(holder, h);
                    return true;
                  },
                  "releasing the references of " + holder)) {
            released[0] += r ? 1 : 0;
          }
        });
    return released[0];
  }

  /**
   * How the entry of a forgotten store on the pool's list begins ({@code forgotten TIME by dedupfs
   * pool forget on host H}): written before the first release and kept, so that the store, if its
   * directory turns up again, refuses to open instead of finding blocks gone ({@link Datastore});
   * {@code dedupfs destroy} of that directory takes the entry off.
   */
  public static final String FORGOTTEN = "forgotten ";

  /** Whether {@code entry}, a store's entry on the pool's list or null, is a forget's. */
  static boolean isForgotten(String entry) {
    return entry != null && entry.startsWith(FORGOTTEN);
  }

  /** The phase of {@link #forget} that watches a store's entry on the list, in seconds. */
  public static final String WATCH = "watch";

  /**
   * Refuses {@code holder} when its entry on the pool's list, {@code entry}, carries beats ({@link
   * PoolHeartbeat}) and changes while watched: for two of their periods and a second, read every
   * second. An entry without beats (a closed store, or one written by a dedupfs without them) is
   * not watched. The clocks of the hosts do not matter: only whether the entry changes.
   */
  private static void requireNotInUse(
      BlockPool pool, String holder, String entry, Consumer<Progress> progress) throws IOException {
    Matcher beat = PoolHeartbeat.BEAT.matcher(entry);
    if (!beat.find()) {
      return;
    }
    long seconds = 2 * Long.parseLong(beat.group(2)) + 1;
    for (long s = 0; s < seconds; s++) {
      progress.accept(new Progress(WATCH, s, seconds));
      try {
        Thread.sleep(1000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted while watching store " + holder);
      }
      String now = pool.registered(holder);
      if (now == null) {
        break; // destroyed meanwhile: what it held is being released anyway
      }
      if (!now.equals(entry)) {
        throw new StoreException(
            "store "
                + holder
                + " is in use: its entry on the pool's list of stores changed within "
                + (s + 1)
                + " s ("
                + now
                + "); unmount it on that host, and destroy it there if it is to go");
      }
    }
    progress.accept(new Progress(WATCH, seconds, seconds));
  }

  @FunctionalInterface
  private interface BatchWork {
    void run(ExecutorService io, List<Hash> batch) throws IOException;
  }

  /**
   * Lists the pool's blocks and passes them on in batches as they come, reporting progress in
   * {@code phase} (blocks done; the total is not known before the listing ends).
   */
  private static void forEachBatch(
      BlockPool pool, String phase, Consumer<Progress> progress, BatchWork work)
      throws IOException {
    ExecutorService io = PoolBlockStore.ioThreads("dedupfs-pool-stores-");
    long[] done = {0};
    try {
      progress.accept(new Progress(phase, 0, 0));
      pool.forEachBlocks(
          BATCH,
          batch -> {
            work.run(io, batch);
            done[0] += batch.size();
            progress.accept(new Progress(phase, done[0], 0));
          });
      progress.accept(new Progress(phase, done[0], done[0]));
    } finally {
      io.shutdownNow();
    }
  }
}
