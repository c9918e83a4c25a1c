package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A pool store's cache of blocks on the local disk, in its LMDB (tables {@code cache} and {@code
 * cacheorder}, {@code meta} {@code poolCache}; FORMAT.md, "The local cache"), so that the blocks it
 * wrote or read lately are read again without a round trip to the pool, after a remount too.
 *
 * <p>What it holds is a hint: {@link #get} returns a content unchecked, and its caller checks it
 * against the hash, so an entry that is stale, damaged or of a block freed since never becomes
 * wrong bytes. Entries go in oldest first when the cache holds more than its limit: blocks a commit
 * stores, in the commit's own transaction ({@link #put}); blocks read from the pool, queued ({@link
 * #offer}) and put by one background transaction per batch, as readers hold no write transaction.
 * An entry put again (a block read again after its entry went bad, or stored again) replaces the
 * old one.
 */
final class BlockCache implements AutoCloseable {
  private static final System.Logger LOG = System.getLogger(BlockCache.class.getName());

  /** Bytes of contents read from the pool waiting for their transaction; more are dropped. */
  static final long MAX_QUEUED_BYTES = 64L << 20;

  /** How long a fill waits for others to share its transaction. */
  private static final long FILL_DELAY_MS = 200;

  /** Bytes of a key before the content's tail: the hash and the entry's sequence number. */
  private static final int KEY_HEAD = Hash.SIZE + Long.BYTES;

  private static final byte[] META_BYTES = "poolCache".getBytes(StandardCharsets.US_ASCII);

  private final Lmdb db;

  /** Bytes of contents kept at most; 0: no cache. */
  private final long limit;

  /** Reads from the pool are queued to be put: a writable store with a cache. */
  private final boolean fills;

  /** The sequence number of the next entry. Guarded by the single LMDB writer. */
  private long nextSeq;

  private final ConcurrentLinkedQueue<Fill> queue = new ConcurrentLinkedQueue<>();
  private final AtomicLong queuedBytes = new AtomicLong();

  /** A batch is scheduled and has not started to take the queue. */
  private final AtomicBoolean scheduled = new AtomicBoolean();

  private final ScheduledExecutorService filler;

  private record Fill(Hash hash, byte[] content) {}

  /**
   * Opens the cache of {@code db} ({@code limit} bytes; 0: none). On a writable store, a cache
   * larger than {@code limit} loses its oldest entries now (all of them for 0).
   */
  BlockCache(Lmdb db, long limit, boolean readOnly) throws IOException {
    this.db = db;
    this.limit = db.cache.present() ? limit : 0;
    this.fills = !readOnly && this.limit > 0;
    this.filler =
        fills
            ? Executors.newSingleThreadScheduledExecutor(
                r -> {
                  Thread t = new Thread(r, "dedupfs-cache-fill");
                  t.setDaemon(true);
                  return t;
                })
            : null;
    this.nextSeq =
        !db.cache.present()
            ? 0
            : db.read(
                txn -> {
                  try (TableCursor c = db.cacheOrder.openCursor(txn)) {
                    return c.last() ? c.key().getLong(c.key().position()) + 1 : 0;
                  }
                });
    if (readOnly || !db.cache.present()) {
      return;
    }
    if (limit == 0 && db.read(this::entries) > 0) {
      db.write(
          txn -> {
            db.cache.clear(txn);
            db.cacheOrder.clear(txn);
            putBytes(txn, 0);
            return null;
          });
    } else if (db.read(this::bytes) > limit) {
      db.write(txn -> evict(txn, bytes(txn), limit));
    }
  }

  /** The content of block {@code hash} as the cache holds it, unchecked; null when absent. */
  byte[] get(ReadTxn txn, Hash hash) {
    if (limit == 0) {
      return null;
    }
    try (TableCursor c = db.cache.openCursor(txn)) {
      if (!seekEntry(c, hash)) {
        return null;
      }
      ByteBuffer k = c.key();
      ByteBuffer v = c.val();
      int tail = k.remaining() - KEY_HEAD;
      byte[] content = new byte[v.remaining() + tail];
      v.get(v.position(), content, 0, v.remaining());
      k.get(k.position() + KEY_HEAD, content, v.remaining(), tail);
      return content;
    }
  }

  /**
   * Copies the content of block {@code hash} as the cache holds it, unchecked, into {@code dst} at
   * absolute index {@code at}; returns its length, or -1 when the cache has none or one longer than
   * {@code max} (then nothing is copied).
   */
  int copyInto(ReadTxn txn, Hash hash, ByteBuffer dst, int at, int max) {
    if (limit == 0) {
      return -1;
    }
    try (TableCursor c = db.cache.openCursor(txn)) {
      if (!seekEntry(c, hash)) {
        return -1;
      }
      ByteBuffer k = c.key();
      ByteBuffer v = c.val();
      int head = v.remaining();
      int tail = k.remaining() - KEY_HEAD;
      if (head + tail > max) {
        return -1;
      }
      dst.put(at, v, v.position(), head);
      dst.put(at + head, k, k.position() + KEY_HEAD, tail);
      return head + tail;
    }
  }

  /**
   * Puts block {@code hash}, of content {@code content[0, length)}, in transaction {@code txn} (one
   * that stores it), replacing an entry it has; the oldest entries go when the cache is over its
   * limit.
   */
  void put(WriteTxn txn, Hash hash, byte[] content, int length) {
    if (limit == 0) {
      return;
    }
    long bytes = bytes(txn) + length - remove(txn, hash);
    long seq = nextSeq++;
    int tail = LmdbBlockStore.keyTail(length, db.pageSize, db.maxKeyTail - Long.BYTES);
    ByteBuffer key = Lmdb.key();
    hash.writeTo(key);
    key.putLong(seq).put(content, length - tail, tail).flip();
    db.cache.reserve(txn, key, length - tail).put(0, content, 0, length - tail);
    ByteBuffer order = Lmdb.value(Hash.SIZE);
    hash.writeTo(order);
    db.cacheOrder.put(txn, Lmdb.key().putLong(seq).flip(), order.flip());
    // an eighth below the limit: evictions come in batches, not with every put
    putBytes(txn, bytes > limit ? evict(txn, bytes, limit - limit / 8) : bytes);
  }

  /**
   * Deletes the entry of block {@code hash}, in the transaction that frees the block: the store
   * names it no more, and entries of freed blocks would only fill the cache and spread the entries
   * that are read over more of the disk.
   */
  void forget(WriteTxn txn, Hash hash) {
    if (limit == 0) {
      return;
    }
    long length = remove(txn, hash);
    if (length > 0) {
      putBytes(txn, Math.max(0, bytes(txn) - length));
    }
  }

  /**
   * Queues a block read from the pool, checked, to be put by a background transaction; dropped when
   * the queue is full or the store is read-only.
   */
  void offer(Hash hash, byte[] content) {
    if (!fills || queuedBytes.addAndGet(content.length) > MAX_QUEUED_BYTES) {
      if (fills) {
        queuedBytes.addAndGet(-content.length);
      }
      return;
    }
    queue.add(new Fill(hash, content));
    if (scheduled.compareAndSet(false, true)) {
      try {
        filler.schedule(this::fill, FILL_DELAY_MS, TimeUnit.MILLISECONDS);
      } catch (RejectedExecutionException closed) {
        // closing: what is queued now is dropped
      }
    }
  }

  /** Puts what is queued, in one transaction. */
  private void fill() {
    scheduled.set(false);
    List<Fill> batch = new ArrayList<>();
    for (Fill f; (f = queue.poll()) != null; ) {
      batch.add(f);
      queuedBytes.addAndGet(-f.content().length);
    }
    if (batch.isEmpty()) {
      return;
    }
    try {
      db.write(
          txn -> {
            for (Fill f : batch) {
              put(txn, f.hash(), f.content(), f.content().length);
            }
            return null;
          });
    } catch (IOException | RuntimeException e) {
      // a full disk, most likely: the cache goes without them
      LOG.log(
          System.Logger.Level.INFO,
          batch.size() + " blocks read from the pool were not cached: " + e.getMessage());
    }
  }

  /**
   * Puts what is queued (the fill scheduled runs, none starts after it) and waits for it; call
   * before the LMDB closes.
   */
  @Override
  public void close() {
    if (filler == null) {
      return;
    }
    filler.shutdown();
    try {
      if (!filler.awaitTermination(1, TimeUnit.MINUTES)) {
        LOG.log(System.Logger.Level.WARNING, "a cache fill did not end in a minute");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Deletes the entry of {@code hash}, if any, and returns its content's length (else 0). */
  private long remove(WriteTxn txn, Hash hash) {
    try (TableCursor c = db.cache.openCursor(txn)) {
      if (!seekEntry(c, hash)) {
        return 0;
      }
      long length = c.key().remaining() - KEY_HEAD + c.val().remaining();
      c.delete();
      return length;
    }
  }

  /**
   * Deletes the oldest entries until the cache holds at most {@code target} bytes; {@code bytes}:
   * what it holds now. An order row whose entry was replaced since (another sequence number) or is
   * gone only goes. Returns the bytes left.
   */
  private long evict(WriteTxn txn, long bytes, long target) {
    try (TableCursor order = db.cacheOrder.openCursor(txn)) {
      while (bytes > target && order.first()) {
        long seq = order.key().getLong(order.key().position());
        Hash hash = Hash.read(order.val(), order.val().position());
        order.delete();
        try (TableCursor c = db.cache.openCursor(txn)) {
          if (seekEntry(c, hash) && c.key().getLong(c.key().position() + Hash.SIZE) == seq) {
            bytes -= c.key().remaining() - KEY_HEAD + c.val().remaining();
            c.delete();
          }
        }
      }
    }
    if (bytes > target) { // nothing left to evict: the total was wrong
      bytes = 0;
    }
    putBytes(txn, bytes);
    return bytes;
  }

  /**
   * Moves {@code c} to the entry of {@code hash} (a hash has at most one: its key starts with the
   * hash); false when there is none.
   */
  private static boolean seekEntry(TableCursor c, Hash hash) {
    return c.seek(Lmdb.key(hash)) && hash.isAt(c.key(), c.key().position());
  }

  /** The bytes of contents the cache holds (kept in {@code meta}). */
  long bytes(ReadTxn txn) {
    ByteBuffer v = db.meta.get(txn, Lmdb.key().put(META_BYTES).flip());
    return v == null ? 0 : v.getLong(v.position());
  }

  /** The pages of the store the cache takes. */
  long pages(ReadTxn txn) {
    return db.cache.present() ? db.cache.stat(txn).pages() + db.cacheOrder.stat(txn).pages() : 0;
  }

  /** The entries the cache holds. */
  long entries(ReadTxn txn) {
    return db.cache.present() ? db.cache.stat(txn).entries : 0;
  }

  private void putBytes(WriteTxn txn, long bytes) {
    db.meta.put(
        txn, Lmdb.key().put(META_BYTES).flip(), Lmdb.value(Long.BYTES).putLong(bytes).flip());
  }
}
