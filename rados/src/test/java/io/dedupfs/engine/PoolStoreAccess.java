package io.dedupfs.engine;

import java.io.IOException;

/** What the RADOS tests look at inside a store (the engine's package-private parts). */
public final class PoolStoreAccess {
  private PoolStoreAccess() {}

  /** The totals the store keeps of its rows' lengths: content bytes, object bytes. */
  public static long[] keptTotals(Datastore ds) throws IOException {
    return ds.db.read(txn -> ((CountedBlockStore) ds.blocks).totals(txn));
  }

  /** The same totals, from a walk of every row. */
  public static long[] walkedTotals(Datastore ds) throws IOException {
    return ds.db.read(txn -> CountedBlockStore.walkTotals(txn, ds.db));
  }

  /** Sets the kept totals (a damaged store, for fsck). */
  public static void setTotals(Datastore ds, long lengths, long objectLengths) throws IOException {
    ds.db.write(
        txn -> {
          CountedBlockStore.putTotals(txn, ds.db, lengths, objectLengths);
          return null;
        });
  }

  /** Makes the store look written by dedupfs of format 5: no kept totals. */
  public static void asFormat5(Datastore ds) throws IOException {
    ds.db.write(
        txn -> {
          ds.db.meta.delete(txn, CountedBlockStore.metaTotalsKey());
          ds.db.putMeta(txn, "formatVersion", "5");
          return null;
        });
  }

  /** How many blocks the store counts (each holds one reference in its pool). */
  public static long countedBlocks(Datastore ds) throws IOException {
    return ds.db.read(ds.blocks::countedBlocks);
  }

  /** How many freed blocks still wait for their pool reference to be released. */
  public static long unreleased(Datastore ds) throws IOException {
    return ds.db.read(txn -> ds.db.releases.stat(txn).entries);
  }

  /** The store's name among its pool's holders. */
  public static String storeId(Datastore ds) throws IOException {
    return ds.db.read(txn -> ds.db.metaString(txn, Datastore.META_STORE_ID));
  }

  /** Every hash the store counts. */
  public static java.util.List<Hash> counted(Datastore ds) throws IOException {
    return counted(ds, -1);
  }

  /** The hashes of the blocks the store counts at {@code level} (-1: every level). */
  public static java.util.List<Hash> counted(Datastore ds, int level) throws IOException {
    java.util.List<Hash> out = new java.util.ArrayList<>();
    ds.db.read(
        txn -> {
          ds.blocks.forEachCount(
              txn,
              (h, count, l) -> {
                if (level < 0 || l == level) {
                  out.add(h);
                }
              });
          return null;
        });
    return out;
  }

  /**
   * Every block the store counts, in hash order, with its count, level and length as {@code refs}
   * records them ("count/level/length").
   */
  public static java.util.SortedMap<String, String> refs(Datastore ds) throws IOException {
    java.util.SortedMap<String, String> out = new java.util.TreeMap<>();
    ds.db.read(
        txn -> {
          ds.blocks.forEachCount(
              txn,
              (h, count, l) ->
                  out.put(h.toString(), count + "/" + l + "/" + ds.blocks.storedLength(txn, h)));
          return null;
        });
    return out;
  }

  /** Stops the store as a killed process would: nothing buffered is committed. */
  public static void kill(Datastore ds) throws IOException {
    ds.abandon();
  }

  /** Bytes of contents in the store's cache on the local disk, and its entries. */
  public static long[] cached(Datastore ds) throws IOException {
    BlockCache c = ((PoolBlockStore) ds.blocks).diskCache();
    return ds.db.read(txn -> new long[] {c.bytes(txn), c.entries(txn)});
  }

  /** Changes one byte of the local cache's copy of {@code hash} (there must be one). */
  public static void damageCached(Datastore ds, Hash hash) throws IOException {
    ds.db.write(
        txn -> {
          try (TableCursor c = ds.db.cache.openCursor(txn)) {
            if (!c.seek(Lmdb.key(hash)) || !hash.isAt(c.key(), c.key().position())) {
              throw new IllegalStateException("no cached copy of " + hash);
            }
            java.nio.ByteBuffer key = java.nio.ByteBuffer.allocateDirect(c.key().remaining());
            key.put(c.key().duplicate()).flip();
            byte[] value = new byte[c.val().remaining()];
            c.val().get(c.val().position(), value);
            value[value.length / 2] ^= 1;
            ds.db.cache.put(
                txn, key, java.nio.ByteBuffer.allocateDirect(value.length).put(value).flip());
          }
          return null;
        });
  }
}
