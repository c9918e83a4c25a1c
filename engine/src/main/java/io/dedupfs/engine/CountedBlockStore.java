package io.dedupfs.engine;

import com.google.common.cache.Cache;
import com.google.common.cache.CacheBuilder;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The part of a {@link BlockStore} that does not depend on where contents are kept: blocks'
 * reference counts (table {@code refs}), the queue of decrements ({@code pending}), reclaim and the
 * cache of checked contents. {@link LmdbBlockStore} and {@link PoolBlockStore} extend it with their
 * contents. A row of {@code refs} is the count (int64), the level (uint8) and, in a store whose
 * blocks are in a pool, the content's length (int32); a change of the count keeps the rest of the
 * row. Every method runs inside a transaction its caller holds.
 */
abstract class CountedBlockStore implements BlockStore {
  private static final int COUNT_AND_LEVEL = Long.BYTES + 1;

  final Lmdb db;
  final Geometry geometry;

  /**
   * Rows record lengths and {@code meta} keeps their sums ({@link #metaTotalsKey}): a pool store.
   */
  private final boolean keepsTotals;

  /** Contents already checked against their hash. Content-addressed, so never stale. */
  final Cache<Hash, byte[]> verified;

  /**
   * The key of the next queued decrement: one past the newest in {@code pending} at open, then
   * counted in memory.
   */
  private final AtomicLong nextPendingSeq;

  CountedBlockStore(Lmdb db, Geometry geometry, long cacheBytes, boolean keepsTotals)
      throws IOException {
    this.db = db;
    this.keepsTotals = keepsTotals;
    this.geometry = geometry;
    this.verified =
        CacheBuilder.newBuilder()
            .maximumWeight(cacheBytes)
            .weigher((Hash h, byte[] b) -> b.length + 64)
            .concurrencyLevel(8)
            .build();
    this.nextPendingSeq = new AtomicLong(db.read(this::lastPendingSeq) + 1);
  }

  /**
   * Drops a block whose count reached zero (or that {@link #takeOver} frees): its content and its
   * row of {@code refs} ({@link #deleteCount}).
   */
  abstract void free(WriteTxn txn, Hash hash);

  /**
   * The stored content of a block, checked against its hash: from the cache, or {@link
   * #loadFromDisk} and kept in the cache.
   */
  @Override
  public byte[] load(ReadTxn txn, Hash hash, int level) throws IOException {
    byte[] cached = verified.getIfPresent(hash);
    if (cached != null) {
      return cached;
    }
    byte[] content = loadFromDisk(txn, hash, level);
    verified.put(hash, content);
    return content;
  }

  @Override
  public void keepChecked(Hash hash, byte[] content) {
    verified.put(hash, content);
  }

  @Override
  public Hash hashOf(byte[] content, int level) {
    if (level == 0) {
      return Hasher.leaf(content, content.length, geometry.leafSize);
    }
    byte[] padded = new byte[Geometry.NODE_BYTES];
    System.arraycopy(content, 0, padded, 0, content.length);
    return Hasher.node(level, padded);
  }

  @Override
  public long refcount(ReadTxn txn, Hash hash) {
    ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
    return v == null ? 0 : v.getLong(v.position());
  }

  /** A block's level as recorded in {@code refs}; -1 when it has no row. */
  @Override
  public int level(ReadTxn txn, Hash hash) {
    ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
    return v == null ? -1 : v.get(v.position() + Long.BYTES);
  }

  /** The content length a pool store's row records; 0 when it has no row. */
  final int length(ReadTxn txn, Hash hash) {
    ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
    return v == null ? 0 : length(v);
  }

  private static int length(ByteBuffer row) {
    return row.getInt(row.position() + COUNT_AND_LEVEL);
  }

  /**
   * The length of block {@code hash}'s object in a pool store's pool, from its row: the content's
   * length unless the row (17 bytes) records another (a compressed object); 0 when it has no row.
   */
  final int objectLength(ReadTxn txn, Hash hash) {
    ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
    return v == null ? 0 : objectLength(v);
  }

  private static int objectLength(ByteBuffer row) {
    int at = row.position() + COUNT_AND_LEVEL;
    return row.remaining() >= COUNT_AND_LEVEL + 2 * Integer.BYTES
        ? row.getInt(at + Integer.BYTES)
        : row.getInt(at);
  }

  /** The sum of the content lengths a pool store's rows record (kept: no walk). */
  final long lengths(ReadTxn txn) {
    return totals(txn)[0];
  }

  /** The sum of the object lengths a pool store's rows record (see {@link #objectLength}). */
  final long objectLengths(ReadTxn txn) {
    return totals(txn)[1];
  }

  @Override
  public boolean exists(ReadTxn txn, Hash hash) {
    return db.refs.get(txn, Lmdb.key(hash)) != null;
  }

  @Override
  public long countedBlocks(ReadTxn txn) {
    return db.refs.stat(txn).entries;
  }

  /** Records a new block with the count one. */
  final void putOne(WriteTxn txn, Hash hash, int level) {
    ByteBuffer val = Lmdb.value(COUNT_AND_LEVEL);
    val.putLong(1).put((byte) level).flip();
    db.refs.put(txn, Lmdb.key(hash), val);
  }

  /**
   * Records a new block of a pool store with the count one, its content's length and, when it is
   * known and differs (a compressed object), the length of its object in the pool; keeps the totals
   * ({@link #metaTotalsKey}).
   */
  final void putOne(WriteTxn txn, Hash hash, int level, int length, int objectLength) {
    boolean other = objectLength > 0 && objectLength != length;
    ByteBuffer old = db.refs.get(txn, Lmdb.key(hash));
    long addLength = length - (old == null ? 0 : length(old));
    long addObject = (other ? objectLength : length) - (old == null ? 0 : objectLength(old));
    ByteBuffer val = Lmdb.value(COUNT_AND_LEVEL + (other ? 2 : 1) * Integer.BYTES);
    val.putLong(1).put((byte) level).putInt(length);
    if (other) {
      val.putInt(objectLength);
    }
    db.refs.put(txn, Lmdb.key(hash), val.flip());
    addToTotals(txn, addLength, addObject);
  }

  /** Forgets a block's row (its count); in a pool store, takes its lengths off the totals. */
  final void deleteCount(WriteTxn txn, Hash hash) {
    if (keepsTotals) {
      ByteBuffer old = db.refs.get(txn, Lmdb.key(hash));
      if (old != null) {
        addToTotals(txn, -length(old), -objectLength(old));
      }
    }
    db.refs.delete(txn, Lmdb.key(hash));
  }

  /**
   * The {@code meta} key of a pool store's totals (FORMAT.md, format 6): the sums of its {@code
   * refs} rows' content lengths and object lengths, two int64, changed in every transaction that
   * changes a row, so that df reads two numbers instead of walking every row. No row: both 0.
   */
  static ByteBuffer metaTotalsKey() {
    return Lmdb.key().put(META_TOTALS).flip();
  }

  private static final byte[] META_TOTALS = "poolTotals".getBytes(StandardCharsets.US_ASCII);

  /** A pool store's totals: content bytes, then object bytes. */
  final long[] totals(ReadTxn txn) {
    ByteBuffer v = db.meta.get(txn, metaTotalsKey());
    return v == null
        ? new long[2]
        : new long[] {v.getLong(v.position()), v.getLong(v.position() + Long.BYTES)};
  }

  private void addToTotals(WriteTxn txn, long length, long objectLength) {
    if (length == 0 && objectLength == 0) {
      return;
    }
    long[] t = totals(txn);
    putTotals(txn, db, t[0] + length, t[1] + objectLength);
  }

  static void putTotals(WriteTxn txn, Lmdb db, long lengths, long objectLengths) {
    db.meta.put(
        txn,
        metaTotalsKey(),
        Lmdb.value(2 * Long.BYTES).putLong(lengths).putLong(objectLengths).flip());
  }

  /**
   * The totals a walk of every {@code refs} row finds (content bytes, then object bytes): what the
   * step to format 6 records, and what fsck compares with the kept ones.
   */
  static long[] walkTotals(ReadTxn txn, Lmdb db) {
    long[] sums = new long[2];
    try (TableCursor c = db.refs.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        sums[0] += length(c.val());
        sums[1] += objectLength(c.val());
      }
    }
    return sums;
  }

  /** A pool store's: fsck's check that the kept totals are those of the rows. */
  @Override
  public List<String> totalsProblems(ReadTxn txn) {
    if (!keepsTotals) {
      return List.of();
    }
    long[] kept = totals(txn);
    long[] walked = walkTotals(txn, db);
    return Arrays.equals(kept, walked)
        ? List.of()
        : List.of(
            "the store's totals say "
                + kept[0]
                + " content and "
                + kept[1]
                + " object bytes in the pool, its rows "
                + walked[0]
                + " and "
                + walked[1]);
  }

  @Override
  public void incref(WriteTxn txn, Hash hash) {
    if (hash.isZero()) {
      return;
    }
    ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
    if (v == null) {
      throw new IllegalStateException("reference to block " + hash + ", which is not stored");
    }
    recount(txn, hash, v, v.getLong(v.position()) + 1);
  }

  /** Queues one decrement of {@code hash}; {@link #reclaim} applies it. */
  @Override
  public void decref(WriteTxn txn, Hash hash) {
    if (hash.isZero()) {
      return;
    }
    ByteBuffer val = Lmdb.value(Hash.SIZE);
    hash.writeTo(val);
    db.pending.put(txn, Lmdb.key(nextPendingSeq.getAndIncrement()), val.flip());
  }

  @Override
  public boolean soleReference(ReadTxn txn, Hash hash) {
    return refcount(txn, hash) == 1;
  }

  @Override
  public void takeOver(WriteTxn txn, Hash hash) {
    free(txn, hash);
  }

  /**
   * Applies up to {@code max} queued decrements, oldest first: a block whose count reaches zero is
   * freed ({@link #free}) and decrements of its children are queued. Returns how many were applied;
   * zero means the queue is empty.
   */
  @Override
  public int reclaim(WriteTxn txn, int max) throws IOException {
    List<Long> seqs = new ArrayList<>();
    List<Hash> hashes = new ArrayList<>();
    try (TableCursor c = db.pending.openCursor(txn)) {
      for (boolean ok = c.first(); ok && hashes.size() < max; ok = c.next()) {
        seqs.add(c.key().getLong(c.key().position()));
        hashes.add(Hash.read(c.val(), c.val().position()));
      }
    }
    for (int i = 0; i < hashes.size(); i++) {
      db.pending.delete(txn, Lmdb.key(seqs.get(i)));
      Hash hash = hashes.get(i);
      ByteBuffer v = db.refs.get(txn, Lmdb.key(hash));
      if (v == null) {
        throw new IllegalStateException("decrement of block " + hash + ", which is not stored");
      }
      long count = v.getLong(v.position());
      int level = v.get(v.position() + Long.BYTES);
      if (count > 1) {
        recount(txn, hash, v, count - 1);
        continue;
      }
      if (level > 0) {
        byte[] content = load(txn, hash, level);
        for (int k = 0; k < Geometry.FANOUT; k++) {
          decref(txn, Geometry.child(content, k));
        }
      }
      free(txn, hash);
    }
    return hashes.size();
  }

  @Override
  public boolean hasPending(ReadTxn txn) {
    try (TableCursor c = db.pending.openCursor(txn)) {
      return c.first();
    }
  }

  @Override
  public void forEachCount(ReadTxn txn, CountVisitor visitor) {
    try (TableCursor c = db.refs.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        ByteBuffer v = c.val();
        visitor.visit(
            Hash.read(c.key(), c.key().position()),
            v.getLong(v.position()),
            v.get(v.position() + Long.BYTES));
      }
    }
  }

  @Override
  public void forEachQueued(ReadTxn txn, Consumer<Hash> action) {
    try (TableCursor c = db.pending.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        action.accept(Hash.read(c.val(), c.val().position()));
      }
    }
  }

  /** Rewrites the row {@code row} (as read in {@code txn}) with the count {@code count}. */
  private void recount(WriteTxn txn, Hash hash, ByteBuffer row, long count) {
    ByteBuffer val = Lmdb.value(row.remaining());
    val.put(0, row, row.position(), row.remaining()).putLong(0, count).limit(row.remaining());
    db.refs.put(txn, Lmdb.key(hash), val);
  }

  /** The sequence number of the newest queued decrement; 0 when none is queued. */
  private long lastPendingSeq(ReadTxn txn) {
    try (TableCursor c = db.pending.openCursor(txn)) {
      return c.last() ? c.key().getLong(c.key().position()) : 0;
    }
  }
}
