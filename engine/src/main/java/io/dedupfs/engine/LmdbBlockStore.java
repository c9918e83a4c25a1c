package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The {@link BlockStore} in the store's LMDB environment: tables {@code blocks}, {@code
 * compressed}, {@code refs} and {@code pending} (FORMAT.md). Every method runs inside a transaction
 * its caller holds; nothing here commits. A queued decrement is a row of {@code pending} (key: a
 * sequence number, value: the hash), written in the caller's transaction, so it is as durable as
 * the change that queued it.
 *
 * <p>A block is kept raw in {@code blocks}, or compressed in {@code compressed} when that saves at
 * least one page ({@link #pack}); a reader looks in {@code blocks} first, then in {@code
 * compressed}, and decompresses on its own thread. Either way the content is checked against its
 * hash after it is read (and decompressed).
 */
final class LmdbBlockStore extends CountedBlockStore {
  /**
   * LMDB keeps a value of more than about half a page on overflow pages, behind a header of this
   * size.
   */
  private static final int OVERFLOW_HEADER = 16;

  /**
   * What a key of {@code compressed} holds between the hash and the tail: the codec (1 byte) and
   * the content's length before compression (int32).
   */
  private static final int PACKED_HEADER = 5;

  /** LMDB's header of a node (key and value) on a B-tree leaf page. */
  private static final int NODE_HEADER = 8;

  /**
   * The codec of blocks stored from now on; null: none. Read once per block by {@link #pack}; a
   * change takes effect for the blocks packed after it.
   */
  private volatile Codec codec;

  /**
   * The largest node (key and value) LMDB keeps on a B-tree page; a larger one goes to overflow
   * pages (LMDB's me_nodemax).
   */
  private final int nodeMax;

  LmdbBlockStore(Lmdb db, Geometry geometry, long cacheBytes, Compression compression)
      throws IOException {
    super(db, geometry, cacheBytes, false);
    this.codec = Codec.of(compression);
    this.nodeMax = (((db.pageSize - 16) / 2) & ~1) - 2;
  }

  /**
   * Reads leaves into a destination buffer for one read request, inside the caller's read
   * transaction: leaves in the verified cache are copied at once; the others are found in LMDB (one
   * cursor for the request) and copied and checked against their hashes by {@link #finish},
   * straight from LMDB's map into the destination, on two threads for a large request. A leaf read
   * whole is checked in the destination, after the copy: what is checked is what is delivered.
   * Leaves read in part are checked in a scratch copy, and kept in the cache when asked.
   */
  private final class LmdbLeafReader implements LeafReader {
    private final ReadTxn txn;
    private final ByteBuffer dst;
    private final boolean cache;
    private Finder finder;
    private final List<LeafRead> pending = new ArrayList<>();

    /**
     * {@code cache}: keep leaves read from LMDB in the verified cache (small reads; a stream of
     * large ones would only churn it).
     */
    LmdbLeafReader(ReadTxn txn, ByteBuffer dst, boolean cache) {
      this.txn = txn;
      this.dst = dst;
      this.cache = cache;
    }

    /**
     * Bytes {@code [from, from + n)} of the leaf {@code hash} (zeros past its stored content) go to
     * dst's absolute index {@code at}.
     */
    @Override
    public void read(Hash hash, int at, int from, int n) throws CorruptBlockException {
      byte[] cached = verified.getIfPresent(hash);
      if (cached != null) {
        copyOut(cached, cached.length, from, n, dst, at);
        return;
      }
      if (finder == null) {
        finder = new Finder(txn);
      }
      pending.add(finder.find(hash, at, from, n, cache));
    }

    /** Copies and checks the leaves found in LMDB. */
    @Override
    public void finish() throws CorruptBlockException {
      int count = pending.size();
      if ((long) count * geometry.leafSize < PARALLEL_BYTES) {
        for (LeafRead r : pending) {
          complete(r, dst);
        }
        return;
      }
      int half = count / 2;
      java.util.concurrent.CompletableFuture<Void> other =
          java.util.concurrent.CompletableFuture.runAsync(
              () -> {
                try {
                  for (int i = half; i < count; i++) {
                    complete(pending.get(i), dst);
                  }
                } catch (CorruptBlockException e) {
                  throw new java.util.concurrent.CompletionException(e);
                }
              },
              READ_HELPERS);
      CorruptBlockException mine = null;
      try {
        for (int i = 0; i < half; i++) {
          complete(pending.get(i), dst);
        }
      } catch (CorruptBlockException e) {
        mine = e;
      } catch (RuntimeException | Error e) {
        // the other half copies from LMDB's map into dst: it must end before the read transaction
        // does
        try {
          other.join();
        } catch (RuntimeException again) {
          e.addSuppressed(again);
        }
        throw e;
      }
      try {
        other.join();
      } catch (java.util.concurrent.CompletionException e) {
        if (mine == null && e.getCause() instanceof CorruptBlockException c) {
          mine = c;
        } else if (mine == null) {
          throw e;
        }
      }
      if (mine != null) {
        throw mine;
      }
    }

    @Override
    public void close() {
      if (finder != null) {
        finder.close();
      }
    }
  }

  /**
   * A request for at least this many bytes of leaves from LMDB is copied and checked on two
   * threads.
   */
  private static final int PARALLEL_BYTES = 256 * 1024;

  /**
   * Copies and checks the second half of such requests: daemon threads shared by every store in the
   * JVM, one per core but the caller's. (Handed the common pool, CompletableFuture starts a thread
   * per task where that pool has a single worker, as on 2 cores.)
   */
  private static final ExecutorService READ_HELPERS =
      Executors.newFixedThreadPool(
          Math.max(1, Runtime.getRuntime().availableProcessors() - 1),
          r -> {
            Thread t = new Thread(r, "dedupfs-read-helper");
            t.setDaemon(true);
            return t;
          });

  /**
   * A leaf found in LMDB, not yet copied or checked: its value stays valid while the read
   * transaction is open. {@code codec} 0: kept raw, the content is value and tail; else compressed
   * by that codec ({@link Codec}) into value and tail, from {@code length} bytes of content.
   */
  private record LeafRead(
      Hash hash,
      ByteBuffer value,
      byte[] tail,
      int codec,
      int length,
      int at,
      int from,
      int n,
      boolean cache) {}

  /**
   * Finds leaves in {@code blocks}, then in {@code compressed}, with one cursor on each (opened
   * when first needed) for the length of one read.
   */
  private final class Finder implements AutoCloseable {
    private final ReadTxn txn;
    private TableCursor raw;
    private TableCursor packed;

    Finder(ReadTxn txn) {
      this.txn = txn;
    }

    LeafRead find(Hash hash, int at, int from, int n, boolean cache) throws CorruptBlockException {
      if (raw == null) {
        raw = db.blocks.openCursor(txn);
      }
      TableCursor c = raw;
      int codecId = 0;
      int length = -1;
      int skip = Hash.SIZE;
      if (!c.seek(Lmdb.key(hash)) || !hash.isAt(c.key(), c.key().position())) {
        if (!db.compressed.present()) {
          throw new CorruptBlockException(hash, "missing from the store");
        }
        if (packed == null) {
          packed = db.compressed.openCursor(txn);
        }
        c = packed;
        if (!c.seek(Lmdb.key(hash)) || !hash.isAt(c.key(), c.key().position())) {
          throw new CorruptBlockException(hash, "missing from the store");
        }
        ByteBuffer k = c.key();
        if (k.remaining() < Hash.SIZE + PACKED_HEADER) {
          throw new CorruptBlockException(hash, "its compressed record is cut short");
        }
        codecId = k.get(k.position() + Hash.SIZE) & 0xff;
        length = k.getInt(k.position() + Hash.SIZE + 1);
        skip += PACKED_HEADER;
        if (length <= 0 || length > geometry.leafSize) {
          throw new CorruptBlockException(hash, "its compressed record says " + length + " bytes");
        }
      }
      ByteBuffer k = c.key();
      byte[] tail = new byte[k.remaining() - skip];
      k.get(k.position() + skip, tail);
      ByteBuffer v =
          c.val().duplicate(); // lmdbjava reuses its buffer object; the bytes stay put until the
      // transaction ends
      if (v.remaining() + tail.length > geometry.leafSize) {
        throw new CorruptBlockException(hash, "longer than a leaf");
      }
      return new LeafRead(hash, v, tail, codecId, length, at, from, n, cache);
    }

    @Override
    public void close() {
      if (raw != null) {
        raw.close();
      }
      if (packed != null) {
        packed.close();
      }
    }
  }

  /** Compressed bytes being decompressed, per thread. */
  private static final ThreadLocal<byte[]> PACKED_IN =
      ThreadLocal.withInitial(() -> new byte[Geometry.MAX_LEAF_SIZE]);

  /**
   * Decompresses a compressed leaf found in LMDB into {@code out[0, r.length())}, unchecked.
   *
   * @throws CorruptBlockException when its codec is unknown or its bytes do not decompress
   */
  private static void unpack(LeafRead r, byte[] out) throws CorruptBlockException {
    Codec codec = Codec.reading(r.codec());
    if (codec == null) {
      throw new CorruptBlockException(r.hash(), "compressed by an unknown codec " + r.codec());
    }
    int head = r.value().remaining();
    byte[] in = PACKED_IN.get();
    r.value().get(r.value().position(), in, 0, head);
    System.arraycopy(r.tail(), 0, in, head, r.tail().length);
    codec.decompress(r.hash(), in, head + r.tail().length, out, r.length());
  }

  private static final ThreadLocal<byte[]> SCRATCH =
      ThreadLocal.withInitial(() -> new byte[Geometry.MAX_LEAF_SIZE]);
  private static final byte[] ZEROS = new byte[Geometry.MAX_LEAF_SIZE];

  /**
   * Copies and checks one leaf found in LMDB (any thread; absolute puts only, so threads may share
   * dst).
   */
  private void complete(LeafRead r, ByteBuffer dst) throws CorruptBlockException {
    if (r.codec() != 0) {
      byte[] content = r.cache() ? new byte[r.length()] : SCRATCH.get();
      unpack(r, content);
      if (!Hasher.leaf(content, r.length(), geometry.leafSize).equals(r.hash())) {
        throw new CorruptBlockException(r.hash(), "its bytes do not match its hash");
      }
      if (r.cache()) {
        verified.put(r.hash(), content);
      }
      copyOut(content, r.length(), r.from(), r.n(), dst, r.at());
      return;
    }
    int head = r.value().remaining();
    int stored = head + r.tail().length;
    int leafSize = geometry.leafSize;
    if (r.from() == 0 && r.n() == leafSize && !r.cache()) {
      dst.put(r.at(), r.value(), r.value().position(), head);
      dst.put(r.at() + head, r.tail());
      dst.put(r.at() + stored, ZEROS, 0, leafSize - stored);
      if (!Hasher.leaf(dst, r.at(), stored, leafSize).equals(r.hash())) {
        throw new CorruptBlockException(r.hash(), "its bytes do not match its hash");
      }
      return;
    }
    byte[] content = r.cache() ? new byte[stored] : SCRATCH.get();
    r.value().get(r.value().position(), content, 0, head);
    System.arraycopy(r.tail(), 0, content, head, r.tail().length);
    if (!Hasher.leaf(content, stored, leafSize).equals(r.hash())) {
      throw new CorruptBlockException(r.hash(), "its bytes do not match its hash");
    }
    if (r.cache()) {
      verified.put(r.hash(), content);
    }
    copyOut(content, stored, r.from(), r.n(), dst, r.at());
  }

  /**
   * Bytes [from, from + n) of a leaf whose stored content is content[0, length) (zeros after it)
   * into dst at absolute {@code at}.
   */
  private static void copyOut(byte[] content, int length, int from, int n, ByteBuffer dst, int at) {
    int have = Math.max(0, Math.min(n, length - from));
    if (have > 0) {
      dst.put(at, content, from, have);
    }
    dst.put(at + have, ZEROS, 0, n - have);
  }

  /**
   * The whole leaf {@code hash} into {@code data} (a zeroed leaf-size array), checked, without
   * keeping it in the cache: for a leaf about to be changed.
   */
  @Override
  public void loadLeafInto(ReadTxn txn, Hash hash, byte[] data) throws CorruptBlockException {
    byte[] cached = verified.getIfPresent(hash);
    if (cached != null) {
      System.arraycopy(cached, 0, data, 0, cached.length);
      return;
    }
    try (Finder f = new Finder(txn)) {
      LeafRead r = f.find(hash, 0, 0, data.length, false);
      int length;
      if (r.codec() != 0) {
        unpack(r, data);
        length = r.length();
      } else {
        int head = r.value().remaining();
        r.value().get(r.value().position(), data, 0, head);
        System.arraycopy(r.tail(), 0, data, head, r.tail().length);
        length = head + r.tail().length;
      }
      if (!Hasher.leaf(data, length, geometry.leafSize).equals(hash)) {
        throw new CorruptBlockException(hash, "its bytes do not match its hash");
      }
    }
  }

  /** Like {@link #load}, but always from the store and checked again: for Fsck and scrubbing. */
  @Override
  public byte[] loadFromDisk(ReadTxn txn, Hash hash, int level) throws CorruptBlockException {
    byte[] content = loadUnchecked(txn, hash);
    if (content == null) {
      throw new CorruptBlockException(hash, "missing from the store");
    }
    if (!hashOf(content, level).equals(hash)) {
      throw new CorruptBlockException(hash, "its bytes do not match its hash");
    }
    return content;
  }

  /**
   * How many of a block's last bytes go into its key rather than its value: those that would spill
   * onto one more overflow page, when the key has room for them. An overflow value of n bytes takes
   * ceil((n + 16) / pageSize) pages, so a 4096-byte leaf would take two 4 KiB pages and takes one,
   * and so does a full tree node (4112 bytes). A longer key costs its extra bytes once in a B-tree
   * leaf page; the page it saves costs 4096.
   */
  static int keyTail(int length, int pageSize, int maxTail) {
    int over = (length + OVERFLOW_HEADER) % pageSize;
    return length + OVERFLOW_HEADER > pageSize && over <= maxTail ? over : 0;
  }

  /**
   * Content as stored, unchecked; null when absent. A raw block's content is the value followed by
   * the key's bytes after the hash; a compressed block's is those bytes (after the hash and the
   * codec and length) decompressed.
   */
  @Override
  public byte[] loadUnchecked(ReadTxn txn, Hash hash) throws CorruptBlockException {
    try (TableCursor c = db.blocks.openCursor(txn)) {
      if (c.seek(Lmdb.key(hash)) && hash.isAt(c.key(), c.key().position())) {
        return Lmdb.concat(c.val(), c.key(), Hash.SIZE);
      }
    }
    if (!db.compressed.present()) {
      return null;
    }
    try (TableCursor c = db.compressed.openCursor(txn)) {
      if (!c.seek(Lmdb.key(hash)) || !hash.isAt(c.key(), c.key().position())) {
        return null;
      }
      ByteBuffer k = c.key();
      if (k.remaining() < Hash.SIZE + PACKED_HEADER) {
        throw new CorruptBlockException(hash, "its compressed record is cut short");
      }
      int id = k.get(k.position() + Hash.SIZE) & 0xff;
      int length = k.getInt(k.position() + Hash.SIZE + 1);
      Codec codec = Codec.reading(id);
      if (codec == null) {
        throw new CorruptBlockException(hash, "compressed by an unknown codec " + id);
      }
      if (length <= 0 || length > Math.max(geometry.leafSize, Geometry.NODE_BYTES)) {
        throw new CorruptBlockException(hash, "its compressed record says " + length + " bytes");
      }
      byte[] in = Lmdb.concat(c.val(), k, Hash.SIZE + PACKED_HEADER);
      byte[] content = new byte[length];
      codec.decompress(hash, in, in.length, content, length);
      return content;
    }
  }

  /**
   * Bytes of a block's stored content (value and key tail; for a compressed block, the length
   * before compression in its key), without reading overflow pages; 0 when absent.
   */
  @Override
  public long storedLength(ReadTxn txn, Hash hash) {
    return length(txn, hash, false);
  }

  @Override
  public long packedLength(ReadTxn txn, Hash hash) {
    return length(txn, hash, true);
  }

  private long length(ReadTxn txn, Hash hash, boolean packed) {
    try (TableCursor c = db.blocks.openCursor(txn)) {
      if (c.seek(Lmdb.key(hash)) && hash.isAt(c.key(), c.key().position())) {
        return c.key().remaining() - Hash.SIZE + c.val().remaining();
      }
    }
    if (!db.compressed.present()) {
      return 0;
    }
    try (TableCursor c = db.compressed.openCursor(txn)) {
      if (!c.seek(Lmdb.key(hash)) || !hash.isAt(c.key(), c.key().position())) {
        return 0;
      }
      return packed ? packedLength(c) : unpackedLength(c);
    }
  }

  /** Bytes of a compressed block at {@code c} as stored: value and key tail. */
  private static long packedLength(TableCursor c) {
    return c.key().remaining() - Hash.SIZE - PACKED_HEADER + c.val().remaining();
  }

  /** Bytes of a compressed block's content at {@code c}, as its key records. */
  private static long unpackedLength(TableCursor c) {
    ByteBuffer k = c.key();
    return k.remaining() < Hash.SIZE + PACKED_HEADER ? 0 : k.getInt(k.position() + Hash.SIZE + 1);
  }

  /** Stores a block that is not stored yet, with a count of one. */
  @Override
  public void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length) {
    putNew(txn, hash, level, content, length, pack(content, length, level));
  }

  @Override
  public void putNew(
      WriteTxn txn, Hash hash, int level, byte[] content, int length, Packed packed) {
    if (packed == null) {
      int tail = keyTail(length, db.pageSize, db.maxKeyTail);
      ByteBuffer key = Lmdb.key();
      hash.writeTo(key);
      key.put(content, length - tail, tail).flip();
      ByteBuffer value = db.blocks.reserve(txn, key, length - tail);
      value.put(0, content, 0, length - tail);
    } else {
      byte[] b = packed.bytes();
      int tail = keyTail(b.length, db.pageSize, db.maxKeyTail - PACKED_HEADER);
      ByteBuffer key = Lmdb.key();
      hash.writeTo(key);
      key.put((byte) packed.codec()).putInt(length).put(b, b.length - tail, tail).flip();
      ByteBuffer value = db.compressed.reserve(txn, key, b.length - tail);
      value.put(0, b, 0, b.length - tail);
    }
    putOne(txn, hash, level);
    if (level > 0) {
      verified.put(hash, Arrays.copyOf(content, length)); // nodes are read again on every walk
    }
  }

  /**
   * Compresses a leaf when the store's codec saves at least one page of the store by it (see {@link
   * #cost}). Nodes are kept raw: 128 SHA-256 hashes do not compress.
   */
  @Override
  public Packed pack(byte[] content, int length, int level) {
    Codec c = codec;
    if (c == null || level > 0) {
      return null;
    }
    int budget = cost(length, Hash.SIZE, db.maxKeyTail) - db.pageSize;
    if (budget <= 0) {
      return null; // a leaf of at most a page cannot save one
    }
    byte[] out = c.scratch(length);
    int n = c.compress(content, length, out);
    if (n < 0 || cost(n, Hash.SIZE + PACKED_HEADER, db.maxKeyTail - PACKED_HEADER) > budget) {
      return null;
    }
    return new Packed(c.id, Arrays.copyOf(out, n));
  }

  /**
   * Bytes of the store that a value of {@code length} bytes takes under a key of {@code keyBase}
   * bytes plus its tail ({@link #keyTail}): whole overflow pages for a value too large for a B-tree
   * page, else its node on a B-tree page, counted half again for the room that B-tree pages keep
   * free (they are about two thirds full after random inserts).
   */
  int cost(int length, int keyBase, int maxTail) {
    int tail = keyTail(length, db.pageSize, maxTail);
    int value = length - tail;
    if (NODE_HEADER + keyBase + tail + value <= nodeMax) {
      return (NODE_HEADER + keyBase + value + 2) * 3 / 2;
    }
    return (value + OVERFLOW_HEADER + db.pageSize - 1) / db.pageSize * db.pageSize;
  }

  @Override
  public void setCompression(Compression compression) {
    codec = Codec.of(compression);
  }

  @Override
  public long storedBlocks(ReadTxn txn) {
    return db.blocks.stat(txn).entries
        + (db.compressed.present() ? db.compressed.stat(txn).entries : 0);
  }

  @Override
  public long storedBytes(ReadTxn txn) {
    return sum(txn, false);
  }

  @Override
  public long packedBytes(ReadTxn txn) {
    return sum(txn, true);
  }

  /** Bytes of every block, raw and compressed ({@code packed}: as stored; else before). */
  private long sum(ReadTxn txn, boolean packed) {
    long stored = 0;
    try (TableCursor c = db.blocks.openCursor(txn)) {
      for (boolean ok = c.first(); ok; ok = c.next()) {
        stored += c.key().remaining() - Hash.SIZE + c.val().remaining();
      }
    }
    if (db.compressed.present()) {
      try (TableCursor c = db.compressed.openCursor(txn)) {
        for (boolean ok = c.first(); ok; ok = c.next()) {
          stored += packed ? packedLength(c) : unpackedLength(c);
        }
      }
    }
    return stored;
  }

  @Override
  public LeafReader leafReader(ReadTxn txn, ByteBuffer dst, boolean cache) {
    return new LmdbLeafReader(txn, dst, cache);
  }

  @Override
  void free(WriteTxn txn, Hash hash) {
    if (!delete(txn, db.blocks, hash) && db.compressed.present()) {
      delete(txn, db.compressed, hash);
    }
    deleteCount(txn, hash);
  }

  /** Deletes the entry of {@code hash} from {@code table}; false when it has none. */
  private static boolean delete(WriteTxn txn, Table table, Hash hash) {
    try (TableCursor c = table.openCursor(txn)) {
      if (c.seek(Lmdb.key(hash)) && hash.isAt(c.key(), c.key().position())) {
        c.delete();
        return true;
      }
      return false;
    }
  }
}
