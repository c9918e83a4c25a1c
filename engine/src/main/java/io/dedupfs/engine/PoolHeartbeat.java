package io.dedupfs.engine;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A writable pool store's entry on its pool's list of stores ({@link BlockPool#register}), kept
 * fresh while the store is open: written at the open, again every period with the time and a count
 * of beats, and once more at the close, saying so. An entry that changes belongs to a store in use:
 * {@link PoolStores#forget} watches an entry that carries beats for two of its periods and refuses
 * to forget a store whose entry changed meanwhile, whatever the clocks of the two hosts say.
 *
 * <p>Every write replaces the entry only if it is still the one this store last read or wrote, and
 * so does forget's: of an open and a forget of one store that meet, one wins and the other sees the
 * entry changed. An open that finds the store forgotten is refused ({@link StoreException}); a
 * store found forgotten while open logs it and writes no more.
 *
 * <p>The entry, UTF-8: {@code host H, DIR, opened T0, alive T1, beat N every S s} while the store
 * is open; {@code host H, DIR, closed T} once it is closed; {@code host H, DIR, opened T0} from a
 * dedupfs without beats. Times are UTC, ISO 8601, to the second. A pool that does not answer is
 * logged when it starts failing and when it answers again; the beats go on meanwhile.
 */
final class PoolHeartbeat implements AutoCloseable {
  static final Duration DEFAULT_EVERY = Duration.ofSeconds(10);

  /** The beat at the end of an entry: group 1 the count, group 2 the seconds between two. */
  static final Pattern BEAT = Pattern.compile(", beat (\\d+) every (\\d+) s$");

  private static final System.Logger LOG = System.getLogger(PoolHeartbeat.class.getName());

  /** Tries of one write whose comparison fails (the entry read again before each). */
  private static final int TRIES = 3;

  private final BlockPool pool;
  private final String holder;
  private final String where;
  private final Instant opened = now();
  private final long everySeconds;
  private final ScheduledExecutorService timer;

  /*
   * The fields below are touched by the opening thread, then by the timer's one thread, then by the
   * closing thread once the timer has ended: never at once.
   */

  /** Beats written so far. */
  private long beats;

  /** Whether the last write failed. */
  private boolean failing;

  /** The entry as the pool holds it, when {@link #known}: this store's last write, or a read. */
  private String last;

  private boolean known;

  /** The pool's list says the store was forgotten: nothing more is written. */
  private String forgotten;

  /** A store's entry as read from the pool's list: {@code entry} null when it has none. */
  record Read(String entry) {}

  /**
   * Writes the entry of {@code holder}, the store in {@code dir}, over {@code atOpen} (as the open
   * read it; null: not known, read here), and beats every {@code every}. Throws when the pool's
   * list says the store was forgotten ({@link PoolStores#FORGOTTEN}).
   */
  PoolHeartbeat(BlockPool pool, String holder, Path dir, Duration every, Read atOpen)
      throws StoreException {
    this.pool = pool;
    this.holder = holder;
    this.where = "host " + hostName() + ", " + dir.toAbsolutePath();
    this.everySeconds = every.toSeconds(); // at least 1: DatastoreConfig checks it
    if (atOpen != null) {
      last = atOpen.entry();
      known = true;
    }
    beat();
    if (forgotten != null) {
      throw forgottenException(dir, forgotten);
    }
    timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "dedupfs-pool-heartbeat");
              t.setDaemon(true);
              return t;
            });
    timer.scheduleWithFixedDelay(this::beat, everySeconds, everySeconds, TimeUnit.SECONDS);
  }

  /** Why a store that {@code dedupfs pool forget} released does not open. */
  static StoreException forgottenException(Path dir, String entry) {
    return new StoreException(
        "the store "
            + dir
            + " was forgotten by its pool ("
            + entry
            + "): blocks it uses may be gone; dedupfs destroy "
            + dir
            + " deletes it");
  }

  /** Stops the beats and writes that the store is closed. */
  @Override
  public void close() {
    stop();
    write(where + ", closed " + now());
  }

  /** Stops the beats and leaves the last entry as it is, as a killed process does. */
  void stop() {
    timer.shutdown(); // a beat under way ends: at worst after the pool's timeout
    try {
      if (!timer.awaitTermination(10, TimeUnit.MINUTES)) {
        LOG.log(System.Logger.Level.WARNING, "the pool heartbeat of " + where + " did not stop");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void beat() {
    write(
        where
            + ", opened "
            + opened
            + ", alive "
            + now()
            + ", beat "
            + beats++
            + " every "
            + everySeconds
            + " s");
  }

  /** Writes {@code entry} over the one the pool holds, if that one is not a forget's. */
  private void write(String entry) {
    if (forgotten != null) {
      return;
    }
    try {
      for (int i = 0; i < TRIES; i++) {
        if (!known) {
          last = pool.registered(holder);
          known = true;
        }
        if (PoolStores.isForgotten(last)) {
          forgotten = last;
          LOG.log(
              System.Logger.Level.ERROR,
              "the store at "
                  + where
                  + " was forgotten by its pool ("
                  + last
                  + "): blocks it uses may be gone; unmount it");
          return;
        }
        if (pool.register(holder, last, entry)) {
          last = entry;
          if (failing) {
            LOG.log(
                System.Logger.Level.INFO, "the entry of " + where + " on its pool's list is fresh");
            failing = false;
          }
          return;
        }
        known = false; // changed by another: read it again
      }
      throw new IOException("its entry changed " + TRIES + " times while written");
    } catch (IOException | RuntimeException e) {
      known = false; // a write that failed may have been applied
      if (!failing) {
        LOG.log(
            System.Logger.Level.WARNING,
            "could not write the entry of "
                + where
                + " on its pool's list of stores (tried again every "
                + everySeconds
                + " s): "
                + e.getMessage());
        failing = true;
      }
    }
  }

  /** Now, as entries on the list say it: UTC, to the second. */
  static Instant now() {
    return Instant.now().truncatedTo(ChronoUnit.SECONDS);
  }

  static String hostName() {
    try {
      return java.net.InetAddress.getLocalHost().getHostName();
    } catch (java.net.UnknownHostException e) {
      return "unknown";
    }
  }
}
