package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Content-addressed blocks and their reference counts: the one place that stores, fetches (checked
 * against the hash), counts and frees blocks. The trees ({@link FileTree}, {@link TreeCommit}) and
 * the namespace name blocks by hash and hand their references to this interface; they never see how
 * blocks are kept. {@link LmdbBlockStore} is the implementation in the store's LMDB environment; a
 * decorator (compression) or another implementation (a distributed store) plugs in here. Every
 * method runs inside a transaction its caller holds; nothing here commits, so what a method changes
 * is as durable, and as atomic, as the caller's transaction.
 *
 * <p>A block's content is what {@link #load} returns: a leaf without its trailing zeros, or a
 * node's bitmap and child hashes without trailing zero hashes. It may be kept compressed ({@link
 * #pack}); hashes, lengths and every method's content are those of the uncompressed content, but
 * for {@link #packedLength} and {@link #packedBytes}, which say what the store holds. {@link
 * Hash#ZERO} (an all-zero leaf or subtree) is never stored and never counted: {@link #incref} and
 * {@link #decref} ignore it.
 *
 * <p>References: who owns them. A block's count is the number of references to it: one from each
 * stored node that names it as a child, and one from each file root (an inode, live or in a
 * snapshot) that names it. The holder that creates a reference counts it: {@link #putNew} stores a
 * new block with the count one for its creator; {@link #incref} adds a reference to a stored block.
 * The holder that drops a reference (a file's root replaced or deleted, a node replaced by a new
 * version) calls {@link #decref}, which only queues the decrement, durably with the caller's
 * transaction. {@link #reclaim}, in later transactions, applies queued decrements: a block whose
 * count reaches zero is freed and the references it held to its children are dropped in turn
 * (queued). So within one transaction a block shared by the old and the new version of a tree never
 * drops to zero between the decrement of the old and the increment of the new, a crash leaves
 * either the old state or the new one with its queue, and freeing a large file is spread over many
 * short transactions. The one exception is {@link #takeOver}: a holder replacing a node whose only
 * reference is its own ({@link #soleReference}) inherits the references the node held to its
 * children, instead of counting the unchanged children again, and frees the node at once instead of
 * queueing its decrement.
 */
interface BlockStore {

  /** Stops the store's background work; called before its LMDB environment closes. */
  default void close() {}

  // ---- fetching

  /**
   * The stored content of a block, checked against its hash (perhaps from a cache of checked
   * contents: never changed by the caller).
   *
   * @throws IOException when the block is missing or its bytes do not match its hash
   */
  byte[] load(ReadTxn txn, Hash hash, int level) throws IOException;

  /**
   * The whole leaf {@code hash} into {@code data} (a zeroed leaf-size array), checked, without
   * keeping it in a cache: for a leaf about to be changed.
   */
  void loadLeafInto(ReadTxn txn, Hash hash, byte[] data) throws IOException;

  /**
   * Reads leaves straight into {@code dst} for one read request, checked against their hashes by
   * {@link LeafReader#finish}. {@code cache}: keep the leaves read in the cache of checked contents
   * (small reads; a stream of large ones would only churn it).
   */
  LeafReader leafReader(ReadTxn txn, ByteBuffer dst, boolean cache);

  /**
   * Leaves of one read request: {@link #read} names them, {@link #finish} copies and checks them.
   */
  interface LeafReader extends AutoCloseable {
    /**
     * Bytes {@code [from, from + n)} of the leaf {@code hash} (zeros past its stored content) go to
     * dst's absolute index {@code at}, at once or by {@link #finish}.
     */
    void read(Hash hash, int at, int from, int n) throws IOException;

    /** Completes and checks every read named so far. */
    void finish() throws IOException;

    @Override
    void close();
  }

  /**
   * Keeps {@code content}, which this process has just hashed to {@code hash}, in the cache of
   * checked blocks as if it had been loaded: for a leaf likely to be changed or read again soon.
   * Nobody changes content afterwards.
   */
  void keepChecked(Hash hash, byte[] content);

  // ---- inspecting (fsck, scrub, space figures)

  /** Like {@link #load}, but always from storage and checked again. */
  byte[] loadFromDisk(ReadTxn txn, Hash hash, int level) throws IOException;

  /**
   * Checks blocks {@code hashes}, all of level {@code level}, as {@link #loadFromDisk} does: for
   * each, in order, null when it is intact, else what is wrong with it (a {@link
   * CorruptBlockException}'s message). A store may read them all at once.
   */
  default List<String> checkFromDisk(ReadTxn txn, List<Hash> hashes, int level) throws IOException {
    List<String> found = new ArrayList<>(hashes.size());
    for (Hash h : hashes) {
      try {
        loadFromDisk(txn, h, level);
        found.add(null);
      } catch (CorruptBlockException e) {
        found.add(e.getMessage());
      }
    }
    return found;
  }

  /**
   * Content as stored (decompressed), unchecked; null when absent.
   *
   * @throws IOException when a compressed block does not decompress
   */
  byte[] loadUnchecked(ReadTxn txn, Hash hash) throws IOException;

  /** Bytes of a block's stored content (before compression); 0 when absent. */
  long storedLength(ReadTxn txn, Hash hash);

  /**
   * Bytes the block's content takes as stored: compressed, or the content's length for a block kept
   * raw; 0 when absent.
   */
  long packedLength(ReadTxn txn, Hash hash);

  /** A block's level as recorded with its count; -1 when it is not stored. */
  int level(ReadTxn txn, Hash hash);

  /** The hash that content of a block at {@code level} must have. */
  Hash hashOf(byte[] content, int level);

  boolean exists(ReadTxn txn, Hash hash);

  /** The block's count as stored (queued decrements not applied); 0 when it is not stored. */
  long refcount(ReadTxn txn, Hash hash);

  /** How many blocks have a count (are stored, as far as counting goes). */
  long countedBlocks(ReadTxn txn);

  /** How many blocks have stored content: the same as {@link #countedBlocks} in a sound store. */
  long storedBlocks(ReadTxn txn);

  /** Bytes of every block's stored content (before compression). */
  long storedBytes(ReadTxn txn);

  /** Bytes of every block's content as stored (compressed ones compressed). */
  long packedBytes(ReadTxn txn);

  /**
   * Passes every counted block to {@code visitor}, in hash order, with its stored count and level.
   */
  void forEachCount(ReadTxn txn, CountVisitor visitor);

  /** What {@link #forEachCount} calls for each block. */
  @FunctionalInterface
  interface CountVisitor {
    void visit(Hash hash, long count, int level);
  }

  /**
   * Passes every queued decrement's hash to {@code action}, oldest first (one per queued
   * decrement).
   */
  void forEachQueued(ReadTxn txn, Consumer<Hash> action);

  /** Whether decrements are queued. */
  boolean hasPending(ReadTxn txn);

  // ---- storing and counting (see the class comment for who calls which)

  /**
   * Stores a block that is not stored yet ({@link #exists} is false), with a count of one: the
   * caller's reference. {@code content[0, length)} is its content; for a node, the references to
   * its children are the caller's to count. It is compressed as {@link #pack} decides.
   */
  void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length) throws IOException;

  /**
   * As above, with the form {@link #pack} chose for this content beforehand (outside the
   * transaction, on any thread); null: kept raw.
   */
  void putNew(WriteTxn txn, Hash hash, int level, byte[] content, int length, Packed packed)
      throws IOException;

  /**
   * The compressed form in which this store would keep {@code content[0, length)}, or null when it
   * keeps it raw: compression is off, or does not save at least one page of the store. Needs no
   * transaction; any thread.
   */
  Packed pack(byte[] content, int length, int level);

  /**
   * A block's content compressed by codec {@code codec} ({@link Codec}) into {@code bytes}: what
   * {@link #putNew} stores.
   */
  record Packed(int codec, byte[] bytes) {}

  /** How blocks stored from now on are compressed. */
  void setCompression(Compression compression);

  /** Adds a reference to a stored block. */
  void incref(WriteTxn txn, Hash hash);

  /** Drops a reference: queues one decrement of {@code hash}, which {@link #reclaim} applies. */
  void decref(WriteTxn txn, Hash hash);

  /**
   * Whether the caller's reference to the stored node {@code hash} is its only one: then the caller
   * may, within the same transaction, inherit the references the node holds to its children and end
   * with {@link #takeOver}; otherwise it drops its reference with {@link #decref}.
   */
  boolean soleReference(ReadTxn txn, Hash hash);

  /**
   * Frees the node {@code hash} at once, its children's counts untouched: the caller held its only
   * reference ({@link #soleReference}, in this transaction) and has inherited the references the
   * node held to its children (a new version of the node now holds those it keeps, and the caller
   * has dropped the others with {@link #decref}).
   */
  void takeOver(WriteTxn txn, Hash hash);

  /**
   * Applies up to {@code max} queued decrements, oldest first: a block whose count reaches zero is
   * freed and decrements of its children are queued. Returns how many were applied; zero means the
   * queue is empty.
   */
  int reclaim(WriteTxn txn, int max) throws IOException;

  // ---- a store whose blocks are in a pool ({@link PoolBlockStore}); none for one in its LMDB

  /** Whether blocks freed by committed transactions still hold a reference in the pool. */
  default boolean hasUnreleased(ReadTxn txn) {
    return false;
  }

  /**
   * Releases the pool references of up to {@code max} blocks freed by transactions committed before
   * {@code txn}, and forgets them in {@code txn}. Returns how many; zero means none is left.
   */
  default int releaseFreed(WriteTxn txn, int max) throws IOException {
    return 0;
  }

  /**
   * Prepares the {@link #putNew} calls that {@code txn} will make for {@code blocks} (distinct,
   * none stored): a store whose blocks are in a pool takes their references now, many at once, so
   * that the writer waits for one batch of round trips instead of one per block. Blocks the
   * transaction then does not store are references taken but never recorded (a leak that a
   * reconcile releases, as after a crash). Nothing for a store whose blocks are in its LMDB.
   */
  default void prepareNew(WriteTxn txn, java.util.List<NewBlock> blocks) throws IOException {}

  /** A block that a transaction will store: {@code content[0, length)} at {@code level}. */
  record NewBlock(Hash hash, int level, byte[] content, int length) {}

  /**
   * For {@code statfs} of a store whose blocks are in a pool: the bytes of the blocks this store
   * counts there, what the pool can still take ({@link BlockPool#availableBytes}; -1 when it cannot
   * say), and the bytes of the store's pages that hold its cache on the local disk ({@link
   * BlockCache}), as last measured; null for a store that keeps its blocks in its LMDB. The first
   * call measures (it may wait for the pool's timeout); later ones return at once and measure again
   * in the background when the figures are older than a few seconds.
   */
  default PooledSpace pooledSpace() throws IOException {
    return null;
  }

  /** See {@link #pooledSpace}. */
  public record PooledSpace(long pooledBytes, long availableBytes, long cacheBytes) {}

  /**
   * For fsck: where the sums a store keeps of its blocks' lengths (a pool store's, FORMAT.md)
   * differ from those of its rows; empty when they agree or the store keeps none.
   */
  default List<String> totalsProblems(ReadTxn txn) {
    return List.of();
  }

  /**
   * What names the pool this store keeps its blocks in ({@link BlockPool#identity}), for a receive
   * by reference; null for a store that keeps them in its LMDB (or a pool that cannot say).
   */
  default String poolIdentity() throws IOException {
    return null;
  }

  /**
   * The checked content of block {@code hash} at {@code level} as the pool holds it, whether this
   * store counts it or not (a node of a tree received by reference); null when the pool lacks it.
   */
  default byte[] loadPooled(Hash hash, int level) throws IOException {
    throw new UnsupportedOperationException("this store keeps its blocks in its LMDB");
  }

  /**
   * Takes this store's pool references to {@code hashes}, which another store of the pool stored (a
   * receive by reference: no content crosses), several at once. Returns those the pool lacks:
   * nothing is taken for them. Called inside a write transaction, as {@link #putNew} takes, before
   * the {@link #putPooled} of each hash taken.
   */
  default List<Hash> takePooled(List<Hash> hashes) throws IOException {
    throw new UnsupportedOperationException("this store keeps its blocks in its LMDB");
  }

  /**
   * Records a block this store did not count, whose pool reference {@link #takePooled} took in this
   * transaction, with a count of one: as {@link #putNew}, without its content.
   */
  default void putPooled(WriteTxn txn, Hash hash, int level, int length) throws IOException {
    throw new UnsupportedOperationException("this store keeps its blocks in its LMDB");
  }

  /** Releases pool references {@link #takePooled} took whose transaction then failed. */
  default void releasePooled(List<Hash> hashes) throws IOException {}

  /** Passes every block the pool says this store holds a reference to. */
  default void forEachPooled(Consumer<Hash> action) throws IOException {}

  /**
   * Releases this store's pool references to those of {@code hashes} that it neither counts nor has
   * queued for release (references a crash took but never recorded). Returns how many. Runs in a
   * write transaction, so that no take is in flight.
   */
  default int releaseUnrecorded(WriteTxn txn, List<Hash> hashes) throws IOException {
    return 0;
  }
}
