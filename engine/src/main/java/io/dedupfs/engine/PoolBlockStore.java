package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * The {@link BlockStore} of a store whose blocks' contents are in a {@link BlockPool} shared with
 * other stores, while each block's count, level and length stay in the store's LMDB (tables {@code
 * refs}, {@code pending} and {@code releases}; FORMAT.md, "Blocks in a pool"), so that fsck, stats
 * and usage stay exact per store. The store holds one pool reference per block it counts, under its
 * id ({@code holder}):
 *
 * <ul>
 *   <li>{@link #putNew} (the store's count goes from 0 to 1) takes it inside the caller's
 *       transaction, so before the commit that records the block: the pool never lacks a block a
 *       committed store names. A take whose transaction then fails leaves a reference that nothing
 *       records, a leak that a reconcile of the pool against the store's {@code refs} releases.
 *   <li>A block freed here (its count reaches zero, or {@link #takeOver}) gets a row in {@code
 *       releases}, written in the freeing transaction; {@link #releaseFreed}, in a later
 *       transaction, releases the pool reference and deletes the row. So the reference is released
 *       only after the freeing commit, and a crash before the row's deletion commits releases it
 *       again: harmless, as the pool counts one reference per holder and a holder's release is
 *       idempotent.
 *   <li>A block stored again while its row waits: {@link #putNew} deletes the row and takes again
 *       (idempotent too), in one transaction; as the row's release also runs under the single LMDB
 *       writer, the pool's last word for a block is always the store's committed state.
 * </ul>
 *
 * <p>Contents are read from the pool (one round trip per block not in the cache of checked
 * contents) and checked against their hash; a block the pool lacks or cannot deliver is a {@link
 * CorruptBlockException} (EIO to a reader), never wrong bytes. Blocks are kept uncompressed in the
 * pool. Every pool call is synchronous: one round trip per new block inside the writer's
 * transaction, a first step.
 */
final class PoolBlockStore extends CountedBlockStore {
  private static final byte[] ZEROS = new byte[Geometry.MAX_LEAF_SIZE];

  /** The pool calls of a receive by reference in flight at once. */
  private static final int IN_FLIGHT = 16;

  private final BlockPool pool;
  private final String poolName;

  /** This store's name among the pool's holders. */
  private final String holder;

  PoolBlockStore(
      Lmdb db, Geometry geometry, long cacheBytes, BlockPool pool, String poolName, String holder)
      throws IOException {
    super(db, geometry, cacheBytes);
    this.pool = pool;
    this.poolName = poolName;
    this.holder = holder;
  }

  // ---- fetching

  @Override
  public void loadLeafInto(ReadTxn txn, Hash hash, byte[] data) throws CorruptBlockException {
    byte[] content = leaf(txn, hash, false);
    System.arraycopy(content, 0, data, 0, content.length);
  }

  /** A leaf's checked content, from the cache or the pool ({@code keep}: kept in the cache). */
  private byte[] leaf(ReadTxn txn, Hash hash, boolean keep) throws CorruptBlockException {
    byte[] cached = verified.getIfPresent(hash);
    if (cached != null) {
      return cached;
    }
    byte[] content = loadFromDisk(txn, hash, 0);
    if (keep) {
      verified.put(hash, content);
    }
    return content;
  }

  @Override
  public LeafReader leafReader(ReadTxn txn, ByteBuffer dst, boolean cache) {
    return new LeafReader() {
      @Override
      public void read(Hash hash, int at, int from, int n) throws CorruptBlockException {
        byte[] content = leaf(txn, hash, cache);
        int have = Math.max(0, Math.min(n, content.length - from));
        if (have > 0) {
          dst.put(at, content, from, have);
        }
        dst.put(at + have, ZEROS, 0, n - have);
      }

      @Override
      public void finish() {}

      @Override
      public void close() {}
    };
  }

  // ---- inspecting

  @Override
  public byte[] loadFromDisk(ReadTxn txn, Hash hash, int level) throws CorruptBlockException {
    byte[] content = loadUnchecked(txn, hash);
    if (content == null) {
      throw new CorruptBlockException(hash, "missing from the store");
    }
    if (content.length > Math.max(geometry.leafSize, Geometry.NODE_BYTES)
        || !hashOf(content, level).equals(hash)) {
      throw new CorruptBlockException(hash, "its bytes in " + poolName + " do not match its hash");
    }
    return content;
  }

  /** The content in the pool of a block this store counts; null when it counts none. */
  @Override
  public byte[] loadUnchecked(ReadTxn txn, Hash hash) throws CorruptBlockException {
    if (!exists(txn, hash)) {
      return null;
    }
    byte[] content;
    try {
      content = pool.read(hash);
    } catch (IOException e) {
      throw new CorruptBlockException(hash, "not read from " + poolName + ": " + e.getMessage());
    }
    if (content == null) {
      throw new CorruptBlockException(hash, "missing from " + poolName);
    }
    return content;
  }

  @Override
  public long storedLength(ReadTxn txn, Hash hash) {
    return length(txn, hash);
  }

  /** Blocks are kept uncompressed in the pool. */
  @Override
  public long packedLength(ReadTxn txn, Hash hash) {
    return storedLength(txn, hash);
  }

  /** The blocks this store holds a pool reference to: those it counts. */
  @Override
  public long storedBlocks(ReadTxn txn) {
    return countedBlocks(txn);
  }

  @Override
  public long storedBytes(ReadTxn txn) {
    return lengths(txn);
  }

  @Override
  public long packedBytes(ReadTxn txn) {
    return storedBytes(txn);
  }

  // ---- storing and counting

  @Override
  public void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length)
      throws IOException {
    // taken before the caller's commit; a row still waiting to release it goes (see the class)
    pool.take(holder, hash, content, length);
    db.releases.delete(txn, Lmdb.key(hash));
    putOne(txn, hash, level, length);
    if (level > 0) {
      verified.put(hash, Arrays.copyOf(content, length)); // nodes are read again on every walk
    }
  }

  @Override
  public void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length, Packed packed)
      throws IOException {
    putNew(txn, hash, level, content, length);
  }

  /** Blocks are kept uncompressed in the pool. */
  @Override
  public Packed pack(byte[] content, int length, int level) {
    return null;
  }

  @Override
  public void setCompression(Compression compression) {
    // blocks are kept uncompressed in the pool; the store records its setting all the same
  }

  /** Forgets a block here and queues the release of its pool reference (see the class). */
  @Override
  void free(WriteTxn txn, Hash hash) {
    deleteCount(txn, hash);
    db.releases.put(txn, Lmdb.key(hash), Lmdb.value(0).flip());
  }

  @Override
  public boolean hasUnreleased(ReadTxn txn) {
    try (TableCursor c = db.releases.openCursor(txn)) {
      return c.first();
    }
  }

  @Override
  public int releaseFreed(WriteTxn txn, int max) throws IOException {
    List<Hash> hashes = new ArrayList<>();
    try (TableCursor c = db.releases.openCursor(txn)) {
      for (boolean ok = c.first(); ok && hashes.size() < max; ok = c.next()) {
        hashes.add(Hash.read(c.key(), c.key().position()));
      }
    }
    for (Hash h : hashes) {
      pool.release(holder, h);
      db.releases.delete(txn, Lmdb.key(h));
    }
    return hashes.size();
  }

  // ---- a receive by reference (FORMAT.md, "Send streams")

  @Override
  public String poolIdentity() throws IOException {
    return pool.identity();
  }

  @Override
  public byte[] loadPooled(Hash hash, int level) throws IOException {
    byte[] content = pool.read(hash);
    if (content != null
        && (content.length > Math.max(geometry.leafSize, Geometry.NODE_BYTES)
            || !hashOf(content, level).equals(hash))) {
      throw new CorruptBlockException(hash, "its bytes in " + poolName + " do not match its hash");
    }
    return content;
  }

  @Override
  public List<Hash> takePooled(List<Hash> hashes) throws IOException {
    boolean[] held = new boolean[hashes.size()];
    inParallel(hashes.size(), i -> held[i] = pool.takeExisting(holder, hashes.get(i)));
    List<Hash> missing = new ArrayList<>();
    for (int i = 0; i < held.length; i++) {
      if (!held[i]) {
        missing.add(hashes.get(i));
      }
    }
    return missing;
  }

  @Override
  public void putPooled(WriteTxn txn, Hash hash, int level, int length) {
    db.releases.delete(txn, Lmdb.key(hash)); // as putNew: the reference was taken again
    putOne(txn, hash, level, length);
  }

  @Override
  public void releasePooled(List<Hash> hashes) throws IOException {
    inParallel(hashes.size(), i -> pool.release(holder, hashes.get(i)));
  }

  /** A pool call for each of {@code n} indexes, up to {@value #IN_FLIGHT} at once. */
  private static void inParallel(int n, PoolCall call) throws IOException {
    if (n == 0) {
      return;
    }
    java.util.concurrent.ExecutorService threads =
        java.util.concurrent.Executors.newFixedThreadPool(
            Math.min(n, IN_FLIGHT),
            r -> {
              Thread t = new Thread(r, "dedupfs-pool-take");
              t.setDaemon(true);
              return t;
            });
    try {
      List<java.util.concurrent.Future<?>> done = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        int at = i;
        done.add(
            threads.submit(
                () -> {
                  call.run(at);
                  return null;
                }));
      }
      IOException failed = null;
      for (java.util.concurrent.Future<?> f : done) {
        try {
          f.get();
        } catch (java.util.concurrent.ExecutionException e) {
          if (failed == null) {
            failed =
                e.getCause() instanceof IOException io
                    ? io
                    : new IOException(e.getCause().getMessage(), e.getCause());
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new java.io.InterruptedIOException("interrupted while calling the pool");
        }
      }
      if (failed != null) {
        throw failed;
      }
    } finally {
      threads.shutdownNow();
    }
  }

  /** One pool call of {@link #inParallel}. */
  @FunctionalInterface
  private interface PoolCall {
    void run(int index) throws IOException;
  }

  @Override
  public void forEachPooled(Consumer<Hash> action) throws IOException {
    pool.forEachHeld(holder, action);
  }

  @Override
  public int releaseUnrecorded(WriteTxn txn, List<Hash> hashes) throws IOException {
    int n = 0;
    for (Hash h : hashes) {
      if (!exists(txn, h) && db.releases.get(txn, Lmdb.key(h)) == null) {
        pool.release(holder, h);
        n++;
      }
    }
    return n;
  }
}
