package io.dedupfs.engine;

import com.google.common.base.Throwables;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.Uninterruptibles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
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
 * <p>Throughput. A commit takes the references of all the blocks it will store at once ({@link
 * #prepareNew}, up to {@link #IN_FLIGHT} calls in flight) before its {@link #putNew} calls, which
 * then need no round trip; these takes run under the single LMDB writer like the rest of the
 * transaction, so no release is drained between a take and the transaction that records the block.
 * A release in that transaction itself ({@link #releaseFreed}, {@link #releaseUnrecorded}) of a
 * hash taken ahead forgets the take, so {@link #putNew} takes it again.
 *
 * <p>Contents are read from the memory's cache of checked contents, else from the cache on the
 * local disk ({@link BlockCache}), else from the pool (one round trip per block; the leaves of one
 * read request all at once), and checked against their hash; a block the pool lacks or delivers
 * changed is a {@link CorruptBlockException} (EIO to a reader), never wrong bytes; a pool that does
 * not answer in time is a {@link PoolTimeoutException} (EIO too, but no damage: a later read may
 * succeed). Leaves read from the pool are kept in both caches whatever the reader asks, as a round
 * trip costs far more than a churned cache; blocks a commit stores go to the disk's cache in its
 * transaction. Scrub, fsck and send read the pool itself ({@link #loadFromDisk}, {@link
 * #loadUnchecked}): what they check is what other hosts read. Leaves that compress by a unit of the
 * pool's space are kept compressed there ({@link #objectOf}).
 */
final class PoolBlockStore extends CountedBlockStore {
  private static final System.Logger LOG = System.getLogger(PoolBlockStore.class.getName());
  private static final byte[] ZEROS = new byte[Geometry.MAX_LEAF_SIZE];

  private final BlockPool pool;
  private final String poolName;

  /** This store's name among the pool's holders. */
  private final String holder;

  /** The most pool calls a commit, or a read request, has in flight. */
  static final int IN_FLIGHT = 32;

  /**
   * Run the pool calls of commits ({@link #prepareNew}, {@link #releaseFreed}) and of read
   * requests: apart, so that a read never waits behind a large commit's takes. Idle threads end.
   */
  private final ExecutorService io = ioThreads("dedupfs-pool-io-");

  private final ExecutorService reads = ioThreads("dedupfs-pool-read-");

  /**
   * The blocks {@link #prepareNew} took a reference to in transaction {@link #takenIn}, not yet
   * stored by {@link #putNew}, with the length of the object each take created (0: the object
   * existed, in a form another store chose). Guarded by the single LMDB writer: only its
   * transactions touch them.
   */
  private final Map<Hash, Integer> taken = new HashMap<>();

  private WriteTxn takenIn;

  /**
   * Whether most blocks of the last batch were new to the pool: then {@link BlockPool#takeNew}
   * (creates first), else {@link BlockPool#take} (adds a reference first).
   */
  private volatile boolean mostlyNew = true;

  /** How leaves stored from now on are compressed in the pool ({@link #objectOf}); null: raw. */
  private volatile Codec codec;

  private final BlockCache disk;

  PoolBlockStore(
      Lmdb db,
      Geometry geometry,
      long cacheBytes,
      BlockPool pool,
      String poolName,
      String holder,
      Compression compression,
      long diskCacheBytes,
      boolean readOnly)
      throws IOException {
    super(db, geometry, cacheBytes, true);
    this.pool = pool;
    this.poolName = poolName;
    this.holder = holder;
    this.codec = Codec.of(compression);
    this.disk = new BlockCache(db, diskCacheBytes, readOnly);
  }

  @Override
  public void close() {
    disk.close();
  }

  BlockCache diskCache() {
    return disk;
  }

  // ---- fetching

  /** A block's checked content, from a cache or the pool; kept in the memory's cache. */
  @Override
  public byte[] load(ReadTxn txn, Hash hash, int level) throws IOException {
    byte[] content = verified.getIfPresent(hash);
    if (content == null) {
      content = notInMemory(txn, hash, level);
      verified.put(hash, content);
    }
    return content;
  }

  @Override
  public void loadLeafInto(ReadTxn txn, Hash hash, byte[] data) throws IOException {
    byte[] content = verified.getIfPresent(hash);
    if (content == null) {
      content = notInMemory(txn, hash, 0);
    }
    System.arraycopy(content, 0, data, 0, content.length);
  }

  /** A block's checked content from the disk's cache, else from the pool (and then cached). */
  private byte[] notInMemory(ReadTxn txn, Hash hash, int level) throws IOException {
    byte[] content = fromDiskCache(txn, hash, level);
    if (content == null) {
      content = loadFromDisk(txn, hash, level);
      disk.offer(hash, content);
    }
    return content;
  }

  /**
   * Block {@code hash}'s content from the disk's cache if it has one that matches the hash, else
   * null (an entry that does not match is replaced once the block is read from the pool).
   */
  private byte[] fromDiskCache(ReadTxn txn, Hash hash, int level) {
    byte[] content = disk.get(txn, hash);
    if (content == null) {
      return null;
    }
    if (content.length <= Math.max(geometry.leafSize, Geometry.NODE_BYTES)
        && hashOf(content, level).equals(hash)) {
      return content;
    }
    warnMismatch(hash);
    return null;
  }

  private static void warnMismatch(Hash hash) {
    LOG.log(
        System.Logger.Level.WARNING,
        "the local cache's copy of block " + hash + " does not match its hash; read from the pool");
  }

  /**
   * Reads the leaves of one request: those in the memory's or the disk's cache at once, the others
   * from the pool in parallel (kept in both caches once checked), copied by {@link
   * LeafReader#finish}.
   */
  @Override
  public LeafReader leafReader(ReadTxn txn, ByteBuffer dst, boolean cache) {
    return new LeafReader() {
      private final List<Runnable> copies = new ArrayList<>();
      private final List<Future<byte[]>> fetches = new ArrayList<>();

      @Override
      public void read(Hash hash, int at, int from, int n) throws IOException {
        byte[] cached = verified.getIfPresent(hash);
        if (cached != null) {
          copy(cached, at, from, n);
          return;
        }
        // the transaction is this thread's: the disk's cache and the row are read here
        if (from == 0 && n == geometry.leafSize && !cache) {
          if (wholeFromDisk(hash, at, n)) {
            return;
          }
        } else {
          cached = fromDiskCache(txn, hash, 0);
          if (cached != null) {
            if (cache) {
              verified.put(hash, cached);
            }
            copy(cached, at, from, n);
            return;
          }
        }
        int length = length(txn, hash);
        if (length == 0) {
          throw new CorruptBlockException(hash, "missing from the store");
        }
        Future<byte[]> f = reads.submit(() -> fetch(hash, length));
        fetches.add(f);
        copies.add(() -> copy(Futures.getUnchecked(f), at, from, n));
      }

      /**
       * A whole leaf not to keep: copied straight from the disk's cache into dst and checked there,
       * as a local store does. False when the cache lacks it or its copy does not match (a read
       * from the pool then overwrites it).
       */
      private boolean wholeFromDisk(Hash hash, int at, int n) {
        int stored = disk.copyInto(txn, hash, dst, at, n);
        if (stored < 0) {
          return false;
        }
        dst.put(at + stored, ZEROS, 0, n - stored);
        if (Hasher.leaf(dst, at, stored, n).equals(hash)) {
          return true;
        }
        warnMismatch(hash);
        return false;
      }

      private void copy(byte[] content, int at, int from, int n) {
        int have = Math.max(0, Math.min(n, content.length - from));
        if (have > 0) {
          dst.put(at, content, from, have);
        }
        dst.put(at + have, ZEROS, 0, n - have);
      }

      @Override
      public void finish() throws IOException {
        for (Future<byte[]> f : fetches) {
          waitFor(f);
        }
        copies.forEach(Runnable::run);
        copies.clear();
        fetches.clear();
      }

      @Override
      public void close() {
        fetches.forEach(f -> f.cancel(false));
      }
    };
  }

  /** A leaf's content from the pool, checked against its hash and kept in both caches. */
  private byte[] fetch(Hash hash, int length) throws IOException {
    byte[] content = checked(hash, 0, fromPool(hash, 0, length));
    verified.put(hash, content);
    disk.offer(hash, content);
    return content;
  }

  /** Waits for a fetch; its failure is the block's, or the pool's (a timeout). */
  private static void waitFor(Future<byte[]> f) throws IOException {
    try {
      Uninterruptibles.getUninterruptibly(f);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof IOException c) {
        throw c;
      }
      Throwables.throwIfUnchecked(e.getCause());
      throw new IllegalStateException(e.getCause());
    }
  }

  // ---- inspecting

  @Override
  public byte[] loadFromDisk(ReadTxn txn, Hash hash, int level) throws IOException {
    byte[] content = loadUnchecked(txn, hash);
    if (content == null) {
      throw new CorruptBlockException(hash, "missing from the store");
    }
    return checked(hash, level, content);
  }

  /**
   * Reads the blocks from the pool at once, up to {@link #IN_FLIGHT} in flight (fsck of a store of
   * a million blocks: minutes, not hours of round trips one after another).
   */
  @Override
  public List<String> checkFromDisk(ReadTxn txn, List<Hash> hashes, int level) throws IOException {
    List<int[]> rows = new ArrayList<>(hashes.size()); // in this thread: the txn is not shared
    for (int i = 0; i < hashes.size(); i++) {
      Hash h = hashes.get(i);
      rows.add(new int[] {i, length(txn, h), level(txn, h)});
    }
    return inParallel(
        reads,
        rows,
        row -> {
          Hash h = hashes.get(row[0]);
          try {
            if (row[1] == 0) {
              throw new CorruptBlockException(h, "missing from the store");
            }
            checked(h, level, fromPool(h, row[2], row[1]));
            return null;
          } catch (CorruptBlockException e) {
            return e.getMessage();
          }
        },
        "checking blocks in " + poolName);
  }

  /** {@code content} if it is block {@code hash}'s, at {@code level}. */
  private byte[] checked(Hash hash, int level, byte[] content) throws CorruptBlockException {
    if (content.length > Math.max(geometry.leafSize, Geometry.NODE_BYTES)
        || !hashOf(content, level).equals(hash)) {
      throw new CorruptBlockException(hash, "its bytes in " + poolName + " do not match its hash");
    }
    return content;
  }

  /**
   * The content in the pool of a block this store counts (decompressed, not checked against its
   * hash); null when it counts none.
   */
  @Override
  public byte[] loadUnchecked(ReadTxn txn, Hash hash) throws IOException {
    int length = length(txn, hash); // 0: no row (a block counted here has a length)
    return length == 0 ? null : fromPool(hash, level(txn, hash), length);
  }

  /** The content of block {@code hash} (of {@code length} bytes at {@code level}) from the pool. */
  private byte[] fromPool(Hash hash, int level, int length) throws IOException {
    return contentOf(hash, level, length, objectFromPool(hash));
  }

  /** The object the pool holds for block {@code hash}, unchecked. */
  private byte[] objectFromPool(Hash hash) throws IOException {
    byte[] content;
    try {
      content = pool.read(hash);
    } catch (PoolTimeoutException e) {
      throw e; // no answer: nothing is known about the block
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

  /** The length of its object in the pool: compressed or not. */
  @Override
  public long packedLength(ReadTxn txn, Hash hash) {
    return objectLength(txn, hash);
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
    return objectLengths(txn);
  }

  // ---- storing and counting

  @Override
  public void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length)
      throws IOException {
    // taken before the caller's commit (perhaps by prepareNew in this transaction); a row still
    // waiting to release it goes (see the class)
    Integer objectLength = takenIn == txn ? taken.remove(hash) : null;
    if (objectLength == null) {
      PoolObject o = objectOf(content, length, level);
      objectLength = pool.take(holder, hash, o.bytes(), o.length()) ? o.length() : 0;
    }
    db.releases.delete(txn, Lmdb.key(hash));
    putOne(txn, hash, level, length, objectLength);
    disk.put(txn, hash, content, length);
    if (level > 0) {
      verified.put(hash, Arrays.copyOf(content, length)); // nodes are read again on every walk
    }
  }

  @Override
  public void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length, Packed packed)
      throws IOException {
    putNew(txn, hash, level, content, length);
  }

  /**
   * Takes the references of {@code blocks} in parallel ({@link #inParallel}); on a failure the
   * references taken are leaks until the transaction is retried and records them, or a reconcile.
   */
  @Override
  public void prepareNew(WriteTxn txn, List<NewBlock> blocks) throws IOException {
    if (takenIn != txn) {
      taken.clear();
      takenIn = txn;
    }
    if (blocks.size() < 2) {
      return; // putNew takes it: no gain
    }
    boolean createFirst = mostlyNew;
    List<Integer> objectLengths =
        inParallel(
            blocks,
            b -> {
              PoolObject o = objectOf(b.content(), b.length(), b.level());
              boolean created =
                  createFirst
                      ? pool.takeNew(holder, b.hash(), o.bytes(), o.length())
                      : pool.take(holder, b.hash(), o.bytes(), o.length());
              return created ? o.length() : 0;
            },
            "taking blocks");
    int n = 0;
    for (int i = 0; i < blocks.size(); i++) {
      int l = objectLengths.get(i);
      taken.put(blocks.get(i).hash(), l);
      n += l > 0 ? 1 : 0;
    }
    mostlyNew = 2 * n >= blocks.size();
  }

  /**
   * The allocation unit of the pool's object store (BlueStore's {@code min_alloc_size}): a
   * compressed object is kept only when it takes fewer units than the raw content.
   */
  static final int POOL_UNIT = 4096;

  /** What a block's object in the pool holds: {@code bytes[0, length)}. */
  record PoolObject(byte[] bytes, int length) {}

  /**
   * The object to store for a block of content {@code content[0, length)}: the content itself, or,
   * for a leaf that the store's codec shrinks by at least one {@link #POOL_UNIT}, the codec's id
   * (one byte) and the compressed bytes (FORMAT.md, "Blocks in a pool"). Any thread.
   */
  private PoolObject objectOf(byte[] content, int length, int level) {
    Codec c = codec;
    if (c == null || level > 0 || length <= POOL_UNIT) {
      return new PoolObject(content, length);
    }
    byte[] packed = c.scratch(length);
    int n = c.compress(content, length, packed);
    if (n < 0 || units(1 + n) >= units(length)) {
      return new PoolObject(content, length);
    }
    byte[] out = new byte[1 + n];
    out[0] = (byte) c.id;
    System.arraycopy(packed, 0, out, 1, n);
    return new PoolObject(out, 1 + n);
  }

  private static int units(int bytes) {
    return (bytes + POOL_UNIT - 1) / POOL_UNIT;
  }

  /**
   * The content of block {@code hash} from its object in the pool, {@code object}: the object
   * itself when it is as long as the content ({@code length}, from the block's row), else the
   * leaf's compressed form (see {@link #objectOf}), decompressed. Checks nothing else: the caller
   * checks the hash.
   */
  private byte[] contentOf(Hash hash, int level, int length, byte[] object)
      throws CorruptBlockException {
    if (object.length >= length || level > 0) {
      return object;
    }
    Codec c = object.length < 2 ? null : Codec.reading(object[0]);
    if (c == null) {
      throw new CorruptBlockException(
          hash, "its object in " + poolName + " is short and names no codec");
    }
    byte[] content = new byte[length];
    c.decompress(
        hash, Arrays.copyOfRange(object, 1, object.length), object.length - 1, content, length);
    return content;
  }

  /** A call to the pool for one item. */
  @FunctionalInterface
  interface PoolCall<X, T> {
    T call(X item) throws IOException;
  }

  /**
   * Runs {@code call} for every item, at most {@link #IN_FLIGHT} at once, and returns the results
   * in order once every call has returned. The first failure met is thrown at once and the calls
   * not started are dropped: with a pool that does not answer, the caller hears so after one
   * timeout, not after one per {@link #IN_FLIGHT} items. Calls already running end on their own;
   * what they take is a leak (as after a crash: a reconcile releases it), what they release is
   * released again with the rest (idempotent).
   */
  private <X, T> List<T> inParallel(List<X> items, PoolCall<X, T> call, String what)
      throws IOException {
    return inParallel(io, items, call, what + " in " + poolName);
  }

  /** {@link #inParallel(List, PoolCall, String)} on the threads of {@code io}. */
  static <X, T> List<T> inParallel(
      ExecutorService io, List<X> items, PoolCall<X, T> call, String what) throws IOException {
    List<Future<T>> calls = new ArrayList<>(items.size());
    for (X item : items) {
      calls.add(io.submit(() -> call.call(item)));
    }
    List<T> out = new ArrayList<>(items.size());
    for (Future<T> f : calls) {
      try {
        out.add(Uninterruptibles.getUninterruptibly(f));
      } catch (ExecutionException e) {
        calls.forEach(c -> c.cancel(false));
        throw e.getCause() instanceof IOException failed
            ? failed
            : new IOException(what, e.getCause());
      }
    }
    return out;
  }

  /**
   * Leaves are compressed on the threads that take them ({@link #objectOf}), not here: the pool's
   * unit of space is not the store's page.
   */
  @Override
  public Packed pack(byte[] content, int length, int level) {
    return null;
  }

  @Override
  public void setCompression(Compression compression) {
    codec = Codec.of(compression);
  }

  /** Forgets a block here and queues the release of its pool reference (see the class). */
  @Override
  void free(WriteTxn txn, Hash hash) {
    deleteCount(txn, hash);
    disk.forget(txn, hash);
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
      forgetTaken(txn, h);
    }
    // all at once; a failure fails the transaction, and every release is repeated (idempotent)
    inParallel(hashes, h -> pool.release(holder, h), "releasing blocks");
    for (Hash h : hashes) {
      db.releases.delete(txn, Lmdb.key(h));
    }
    return hashes.size();
  }

  // ---- space

  /** How old {@link #pooledSpace}'s figures may be before a call measures them again. */
  private static final long SPACE_STALE_NS = TimeUnit.SECONDS.toNanos(5);

  /** The last measurement of {@link #pooledSpace}, and when it ended (nanoTime). */
  private volatile PooledSpace space;

  private volatile long spaceAt;

  /** A measurement runs in the background. */
  private final java.util.concurrent.atomic.AtomicBoolean measuring =
      new java.util.concurrent.atomic.AtomicBoolean();

  @Override
  public PooledSpace pooledSpace() throws IOException {
    PooledSpace last = space;
    if (last == null) {
      return measureSpace();
    }
    if (System.nanoTime() - spaceAt > SPACE_STALE_NS && measuring.compareAndSet(false, true)) {
      io.execute(
          () -> {
            try {
              measureSpace();
            } catch (IOException | RuntimeException e) {
              LOG.log(
                  System.Logger.Level.WARNING,
                  "the space of " + poolName + " was not measured: " + e.getMessage());
            } finally {
              measuring.set(false);
            }
          });
    }
    return last;
  }

  /**
   * Reads the totals of the blocks this store counts (kept in meta) and the pages of its cache, and
   * asks the pool.
   */
  private PooledSpace measureSpace() throws IOException {
    long[] pooledAndCache = db.read(txn -> new long[] {objectLengths(txn), disk.pages(txn)});
    PooledSpace s =
        new PooledSpace(pooledAndCache[0], pool.availableBytes(), pooledAndCache[1] * db.pageSize);
    space = s;
    spaceAt = System.nanoTime();
    return s;
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
    List<Boolean> held =
        inParallel(hashes, h -> pool.takeExisting(holder, h), "taking references by hash");
    List<Hash> missing = new ArrayList<>();
    for (int i = 0; i < held.size(); i++) {
      if (!held.get(i)) {
        missing.add(hashes.get(i));
      }
    }
    return missing;
  }

  @Override
  public void putPooled(WriteTxn txn, Hash hash, int level, int length) {
    db.releases.delete(txn, Lmdb.key(hash)); // as putNew: the reference was taken again
    putOne(txn, hash, level, length, 0); // its object's length: another store's choice
  }

  @Override
  public void releasePooled(List<Hash> hashes) throws IOException {
    inParallel(hashes, h -> pool.release(holder, h), "releasing references");
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
        forgetTaken(txn, h);
        pool.release(holder, h);
        n++;
      }
    }
    return n;
  }

  /** A release in {@code txn}: a take of the same hash ahead of it no longer stands. */
  private void forgetTaken(WriteTxn txn, Hash hash) {
    if (takenIn == txn) {
      taken.remove(hash);
    }
  }

  /** Threads for pool calls, {@link #IN_FLIGHT} at most; idle ones end. */
  static ExecutorService ioThreads(String name) {
    AtomicInteger n = new AtomicInteger();
    ThreadPoolExecutor e =
        new ThreadPoolExecutor(
            IN_FLIGHT,
            IN_FLIGHT,
            10,
            TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(),
            r -> {
              Thread t = new Thread(r, name + n.incrementAndGet());
              t.setDaemon(true);
              return t;
            });
    e.allowCoreThreadTimeOut(true);
    return e;
  }
}
