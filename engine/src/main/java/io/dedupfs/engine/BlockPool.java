package io.dedupfs.engine;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * A pool of blocks that several stores (hosts) share, such as a Ceph RADOS pool: a store created
 * with {@link DatastoreConfig#withBlocksIn} keeps its blocks' contents there, named by hash, and
 * only its namespace, trees' roots and counts in its LMDB. The engine declares this interface; a
 * module that talks to the pool implements it (module rados) and hands the engine an {@link Opener}
 * ({@link DatastoreConfig#withPools}).
 *
 * <p>References. A pool counts references per holder: each store, by its id, holds at most one
 * reference to a block, whatever its own count; {@link #take} and {@link #release} are idempotent
 * per holder, so a call retried after a timeout or a crash never counts twice nor drops another
 * holder's reference. A block stays in the pool while any holder holds it. The store takes its
 * reference before the transaction that records the block commits, and releases it only after the
 * transaction that freed the block committed (FORMAT.md, "Blocks in a pool").
 *
 * <p>Thread-safe; every call may block for a round trip to the pool, bounded by the pool's own
 * timeout, and throws an {@link IOException} that says what failed: a {@link PoolTimeoutException}
 * when the pool did not answer in time (a change asked for may or may not have taken effect).
 */
public interface BlockPool extends AutoCloseable {
  /**
   * Where a pool is, as a store records it: {@code name} like {@code rados:POOL}, the path of the
   * client's configuration file and the client's name.
   */
  record Location(String name, String conf, String client) {
    public Location {
      if (name.isEmpty() || conf.isEmpty() || client.isEmpty()) {
        throw new IllegalArgumentException("a pool location needs a name, a conf and a client");
      }
    }

    @Override
    public String toString() {
      return name + " (conf " + conf + ", client " + client + ")";
    }
  }

  /** Connects to the pool a store records. */
  @FunctionalInterface
  interface Opener {
    /**
     * @throws IOException when the pool is unknown, unreachable or refuses the client: the message
     *     says which
     */
    BlockPool open(Location where) throws IOException;
  }

  /**
   * Takes {@code holder}'s reference to block {@code hash}, whose content is {@code content[0,
   * length)}: stores the block if the pool lacks it. Returns whether this call stored it. A holder
   * that holds it already changes nothing.
   */
  boolean take(String holder, Hash hash, byte[] content, int length) throws IOException;

  /**
   * {@link #take}, for a block the caller expects the pool to lack: a pool that can tries to store
   * it first, so that a new block costs one round trip (and one held already by another holder,
   * two). Same effect and result as {@link #take}.
   */
  default boolean takeNew(String holder, Hash hash, byte[] content, int length) throws IOException {
    return take(holder, hash, content, length);
  }

  /**
   * Releases {@code holder}'s reference to block {@code hash}: the pool drops the block when no
   * holder is left. Returns whether this call dropped it. A holder that holds none (released
   * before) drops nobody else's.
   */
  boolean release(String holder, Hash hash) throws IOException;

  /**
   * Takes {@code holder}'s reference to block {@code hash} only if the pool holds the block
   * already, without its content (a receive by reference: the block came from another store of the
   * pool). Returns false, taking nothing, when the pool lacks it. Idempotent as {@link #take}. This
   * default reads the block and takes it with its content; a pool should do better.
   */
  default boolean takeExisting(String holder, Hash hash) throws IOException {
    byte[] content = read(hash);
    if (content == null) {
      return false;
    }
    take(holder, hash, content, content.length);
    return true;
  }

  /**
   * What names this pool wherever a client reaches it (for a RADOS pool: the cluster's fsid and the
   * pool's name), so that two stores can tell that they share it; null when the pool cannot say.
   */
  default String identity() throws IOException {
    return null;
  }

  /**
   * How many more bytes of blocks the pool can take (for a RADOS pool: {@code ceph df}'s MAX AVAIL
   * of the pool, which counts its replication and the cluster's full ratio); -1 when the pool
   * cannot say.
   */
  default long availableBytes() throws IOException {
    return -1;
  }

  /** The block's content as stored, unchecked; null when the pool lacks it. */
  byte[] read(Hash hash) throws IOException;

  /**
   * Passes every block {@code holder} holds a reference to, in no particular order (for a
   * reconcile: it may visit every block of the pool).
   */
  void forEachHeld(String holder, java.util.function.Consumer<Hash> action) throws IOException;

  /** What {@link #forEachBlocks} passes each batch of blocks to. */
  @FunctionalInterface
  interface Blocks {
    void accept(List<Hash> batch) throws IOException;
  }

  /**
   * Passes every block the pool holds, in batches of at most {@code batch}, listed in one pass over
   * the pool, in no particular order (a pool of terabytes holds too many to keep in memory at
   * once). A failure of {@code action} ends the listing and is thrown.
   */
  void forEachBlocks(int batch, Blocks action) throws IOException;

  /** The holders of block {@code hash}'s references; empty when the pool lacks it. */
  List<String> holders(Hash hash) throws IOException;

  /**
   * Sets {@code holder}'s entry in the pool's list of its stores to {@code entry} (where the store
   * is, and whether it is open: {@link PoolHeartbeat}) if its entry is now {@code expected} (null:
   * none), in one atomic operation; false, changing nothing, if it is not. A store registers when
   * it is created and at every writable open, and leaves the list when it is destroyed, so that the
   * references of a store that is gone can be told from those of a live one ({@link PoolStores});
   * the comparison makes an open and a forget of one store exclude each other.
   */
  boolean register(String holder, String expected, String entry) throws IOException;

  /** Takes {@code holder} off the pool's list of stores; one not on it: nothing. */
  void unregister(String holder) throws IOException;

  /** The pool's list of stores: each holder's entry, by holder. */
  Map<String, String> registered() throws IOException;

  /** {@code holder}'s entry on the pool's list of stores, or null: one key read, not the list. */
  String registered(String holder) throws IOException;

  @Override
  void close();
}
