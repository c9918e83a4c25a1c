package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Future;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import org.lmdbjava.CopyFlags;
import org.lmdbjava.Dbi;
import org.lmdbjava.DbiFlags;
import org.lmdbjava.Env;
import org.lmdbjava.EnvFlags;
import org.lmdbjava.LmdbException;
import org.lmdbjava.LmdbNativeException;
import org.lmdbjava.Stat;
import org.lmdbjava.Txn;

/**
 * The one LMDB environment of a store and its tables (see FORMAT.md): the one door to LMDB. Only
 * this class and its helpers {@link Table}, {@link TableCursor}, {@link ReadTxn} and {@link
 * WriteTxn} use lmdbjava; the rest of the engine reads and changes the tables through them. Every
 * transaction goes through {@link #read} or {@link #write}, for the length of one callback (so it
 * is short and always ended: closed, or a read transaction reset and kept for its thread's next
 * read); a full map grows and a full disk becomes {@link StoreFullException} here.
 *
 * <p>Locks: {@link #writer} admits one write transaction at a time (LMDB allows only one; holding a
 * Java lock keeps waiting threads visible to Java tools). {@link #mapLock} is held shared by every
 * transaction and exclusively only while the map is resized, or the environment is closed and
 * reopened by {@link #compact}, both of which LMDB requires to happen with no transaction open in
 * the process. Order: writer, then mapLock.
 */
final class Lmdb implements AutoCloseable {
  private static final System.Logger LOG = System.getLogger(Lmdb.class.getName());

  /** What {@code meta} holds under {@code magic} in every dedupfs store. */
  static final String MAGIC = "dedupfs";

  /**
   * The format this code writes: FORMAT.md. It reads stores of {@link #OLDEST_FORMAT_VERSION} and
   * later too, and brings them up to this version when it opens them for writing, one step per
   * version ({@link #upgrade}). A new format change adds a step there and raises this number.
   */
  static final int FORMAT_VERSION = 7;

  /**
   * The oldest format this code opens: 1, the format before compressed blocks and the intent log.
   */
  static final int OLDEST_FORMAT_VERSION = 1;

  /** Address space only: the file grows as pages are written, not to the map's size. */
  static final long DEFAULT_MAP_SIZE = 1L << 40;

  private static final int EIO = 5;
  private static final int ENOSPC = 28;
  private static final int EDQUOT = 122;

  /** Room kept beside a compacted copy of the store. */
  private static final long NEARLY_FULL = 1 << 20;

  /**
   * Below this much unallocated space (statvfs f_bfree), an EIO from LMDB is taken for a full disk
   * (see {@link #isDiskFull}). Filesystems keep space back that f_bfree still counts as free but
   * nobody can allocate: ext4 min(2 %, 4096) clusters (16 MiB on disks of 800 MiB or more), XFS
   * min(5 %, 8192) blocks (32 MiB); so the bound is above both.
   */
  private static final long FULL_BELOW = 64L << 20;

  /**
   * Where {@link #compact} writes its copy, inside the store's directory; removed when done (or at
   * the next open).
   */
  static final String COMPACT_DIR = "compact.tmp";

  // The environment (and what the tables refer to) is replaced only by compact(), with mapLock held
  // exclusively: use it only inside read() or write(), never keep a reference.
  private Env<ByteBuffer> env;
  final Table meta = new Table("meta");
  final Table inodes = new Table("inodes");
  final Table dirents = new Table("dirents");
  final Table xattrs = new Table("xattrs");
  final Table blocks = new Table("blocks");
  final Table refs = new Table("refs");
  final Table pending = new Table("pending");
  final Table orphans = new Table("orphans");

  /**
   * The snapshot index; not {@link Table#present} only in a store opened read-only that has never
   * had it (a store written before snapshots).
   */
  final Table snapshots = new Table("snapshots");

  /**
   * For each file whose commits have folded intent-log records, the last record folded (see {@link
   * IntentLog}); not {@link Table#present} only in a store of version 1 or 2 opened read-only.
   */
  final Table folded = new Table("folded");

  /**
   * Compressed blocks (format version 2); not {@link Table#present} only in a store of version 1
   * opened read-only, which has none.
   */
  final Table compressed = new Table("compressed");

  /**
   * Blocks freed here whose reference in the store's block pool is still to be released (format
   * version 4; {@link PoolBlockStore}): key the hash, value empty. Not {@link Table#present} only
   * in a store of an older version opened read-only.
   */
  final Table releases = new Table("releases");

  /**
   * A pool store's cache of blocks on the local disk (format version 7; {@link BlockCache}): key
   * the hash, the entry's sequence number and the content's last bytes, value the rest of the
   * content. Empty in a store whose blocks are in its LMDB. Not {@link Table#present} only in a
   * store of an older version opened read-only.
   */
  final Table cache = new Table("cache");

  /** The order of {@link #cache}'s entries: sequence number (int64) -> hash (version 7). */
  final Table cacheOrder = new Table("cacheorder");

  final int pageSize;

  /**
   * The store has no format record yet: it is being created (or its creation was interrupted before
   * its first commit).
   */
  final boolean isNew;

  /**
   * The format version the store had when it was opened ({@link #FORMAT_VERSION} for a new one).
   */
  final int storedVersion;

  /** The most bytes a key may hold after a 32-byte hash. */
  final int maxKeyTail;

  private final Path dir;
  private final boolean readOnly;

  /**
   * Flushes {@code data.mdb} during long commits; null in a read-only store. Starts its thread at
   * the first commit, so a store that fails to open leaves none behind.
   */
  private final FlushAhead flushAhead;

  /**
   * Held for every write transaction, and by {@link #compact} for the whole copy: one writer at a
   * time.
   */
  private final ReentrantLock writer = new ReentrantLock();

  /**
   * Held shared by every transaction, exclusively to resize the map or swap in a compacted copy.
   */
  private final ReentrantReadWriteLock mapLock = new ReentrantReadWriteLock();

  /** A unit of work inside one read transaction. */
  @FunctionalInterface
  interface ReadWork<T> {
    T run(ReadTxn txn) throws IOException;
  }

  /**
   * A unit of work inside one write transaction; it may run more than once (after a map resize).
   */
  @FunctionalInterface
  interface WriteWork<T> {
    T run(WriteTxn txn) throws IOException;
  }

  /**
   * Opens the environment in {@code dir} and checks its format record before touching anything
   * else; creates the tables only when {@code fresh} (the directory was empty) or when a creation
   * was interrupted before its first commit. The {@code snapshots} table, which stores written
   * before snapshots existed lack, is created in a store opened for writing.
   */
  /** Where the first meta page holds LMDB's magic number (after the 16-byte page header). */
  private static final long LMDB_MAGIC_OFFSET = 16;

  private static final int LMDB_MAGIC = 0xBEEFC0DE;

  Lmdb(Path dir, boolean readOnly, boolean fresh, long mapSize) throws StoreException {
    this.dir = dir;
    this.readOnly = readOnly;
    flushAhead = readOnly ? null : new FlushAhead(dir.resolve("data.mdb"));
    env = openEnv(mapSize);
    try {
      env.readerCheck(); // frees reader slots that a killed process left behind
      meta.dbi =
          env.openDbi("meta", fresh ? new DbiFlags[] {DbiFlags.MDB_CREATE} : new DbiFlags[0]);
      int version = checkFormat(dir);
      isNew = version == 0;
      storedVersion = isNew ? FORMAT_VERSION : version;
      if (isNew && readOnly) {
        throw new StoreException(
            dir + " holds no dedupfs store yet, and a read-only open cannot create one");
      }
      openTables(isNew);
      if (!isNew && !readOnly && version < FORMAT_VERSION) {
        upgrade(version);
      }
    } catch (LmdbException e) {
      env.close();
      throw new StoreException(
          dir + " is an LMDB environment but not a dedupfs store: " + e.getMessage());
    } catch (StoreException e) {
      env.close();
      throw e;
    }
    pageSize = env.stat().pageSize;
    maxKeyTail = env.getMaxKeySize() - Hash.SIZE;
  }

  private Env<ByteBuffer> openEnv(long mapSize) throws StoreException {
    EnvFlags[] flags;
    if (!readOnly) {
      flags = new EnvFlags[] {EnvFlags.MDB_NOTLS};
    } else if (Files.isWritable(dir)) {
      flags = new EnvFlags[] {EnvFlags.MDB_NOTLS, EnvFlags.MDB_RDONLY_ENV};
    } else {
      // A store on a read-only filesystem (a backup, a read-only bind mount): LMDB cannot keep its
      // reader table in lock.mdb there, and needs none, since nothing can write the store.
      flags = new EnvFlags[] {EnvFlags.MDB_NOTLS, EnvFlags.MDB_RDONLY_ENV, EnvFlags.MDB_NOLOCK};
    }
    try {
      return Env.create()
          .setMapSize(mapSize)
          .setMaxDbs(16)
          .setMaxReaders(1024)
          .open(dir.toFile(), flags);
    } catch (LmdbException e) {
      throw new StoreException(
          dir + " does not hold a readable LMDB environment: " + e.getMessage());
    }
  }

  /**
   * Refuses a {@code data.mdb} that is not an LMDB environment before anything is created beside it
   * (LMDB would leave a {@code lock.mdb}; an open, its {@code dedupfs.lock}). An empty one is a
   * creation that stopped before its first commit, which LMDB initialises.
   */
  static void requireLmdbFile(Path data) throws StoreException {
    try (FileChannel ch = FileChannel.open(data, StandardOpenOption.READ)) {
      if (ch.size() == 0) {
        return;
      }
      ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
      if (ch.read(b, LMDB_MAGIC_OFFSET) != 4 || b.getInt(0) != LMDB_MAGIC) {
        throw new StoreException(data + " is not an LMDB environment, so not a dedupfs store");
      }
    } catch (NoSuchFileException e) {
      // a new store: LMDB creates it
    } catch (IOException e) {
      throw new StoreException("cannot read " + data + ": " + e.getMessage());
    }
  }

  /** Opens every table but {@code meta}; {@code create}: the store is being made. */
  private void openTables(boolean create) {
    DbiFlags[] flags = create ? new DbiFlags[] {DbiFlags.MDB_CREATE} : new DbiFlags[0];
    for (Table t : List.of(inodes, dirents, xattrs, blocks, refs, pending, orphans)) {
      t.dbi = env.openDbi(t.name, flags);
    }
    if (!readOnly) {
      snapshots.dbi = env.openDbi(snapshots.name, DbiFlags.MDB_CREATE);
    } else if (hasTable(snapshots.name)) {
      snapshots.dbi = env.openDbi(snapshots.name);
    }
    // made at creation, or by an upgrade
    for (Table t : List.of(compressed, folded, releases, cache, cacheOrder)) {
      if (create) {
        t.dbi = env.openDbi(t.name, DbiFlags.MDB_CREATE);
      } else if (hasTable(t.name)) {
        t.dbi = env.openDbi(t.name);
      }
    }
  }

  /**
   * Brings a store of format {@code from} up to {@link #FORMAT_VERSION}, in one write transaction
   * (a crash leaves the old version, which the next open upgrades again): each version's step, in
   * order, then the new version number. The one place where format versions are stepped; a step
   * must leave a store that this code reads as if it had been created at the new version.
   */
  private void upgrade(int from) {
    try (Txn<ByteBuffer> t = env.txnWrite()) {
      WriteTxn txn = new WriteTxn(t);
      for (int to = from + 1; to <= FORMAT_VERSION; to++) {
        switch (to) {
          case 2 -> // compressed blocks: their table; the store takes the default compression
          {
            create(t, compressed);
            if (metaString(txn, COMPRESSION) == null) {
              putMeta(txn, COMPRESSION, Compression.DEFAULT.toString());
            }
          }
          case 3 -> // the intent log: which records each file folded (the log itself: Datastore)
              create(t, folded);
          case 4 -> // blocks in a pool: pool references to release (meta "blocks": Datastore)
              create(t, releases);
          case 5 -> {
            // compressed objects in a pool, 17-byte refs rows: nothing to change in the store
          }
          case 6 -> { // a pool store's totals of its rows' lengths (CountedBlockStore)
            if (metaString(txn, Datastore.META_BLOCKS) != null) {
              long[] sums = CountedBlockStore.walkTotals(txn, this);
              CountedBlockStore.putTotals(txn, this, sums[0], sums[1]);
            }
          }
          case 7 -> { // a pool store's cache of blocks on the local disk (BlockCache)
            create(t, cache);
            create(t, cacheOrder);
          }
          default -> throw new AssertionError("no format step to version " + to);
        }
      }
      putMeta(txn, "formatVersion", Integer.toString(FORMAT_VERSION));
      t.commit();
    }
  }

  /** Creates {@code table} in the upgrade's transaction {@code t}. */
  private void create(Txn<ByteBuffer> t, Table table) {
    table.dbi =
        env.openDbi(
            t, table.name.getBytes(StandardCharsets.US_ASCII), null, false, DbiFlags.MDB_CREATE);
  }

  /** The key of the store's compression in {@code meta} (format version 2). */
  static final String COMPRESSION = "compression";

  /** Writes a text record of {@code meta}. */
  void putMeta(WriteTxn txn, String key, String value) {
    byte[] v = value.getBytes(StandardCharsets.UTF_8);
    meta.put(
        txn,
        key().put(key.getBytes(StandardCharsets.US_ASCII)).flip(),
        value(v.length).put(v).flip());
  }

  private boolean hasTable(String name) {
    byte[] want = name.getBytes(StandardCharsets.US_ASCII);
    for (byte[] n : env.getDbiNames()) {
      if (java.util.Arrays.equals(n, want)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Refuses another program's environment or a format version this code does not read; returns the
   * store's format version, 0 when there is no format record yet.
   */
  private int checkFormat(Path dir) throws StoreException {
    try (Txn<ByteBuffer> t = env.txnRead()) {
      ReadTxn txn = new ReadTxn(t);
      if (meta.stat(txn).entries == 0) {
        return 0;
      }
      String magic = metaString(txn, "magic");
      if (!MAGIC.equals(magic)) {
        throw new StoreException(dir + " is an LMDB environment but not a dedupfs store");
      }
      String version = metaString(txn, "formatVersion");
      for (int v = OLDEST_FORMAT_VERSION; v <= FORMAT_VERSION; v++) {
        if (Integer.toString(v).equals(version)) {
          return v;
        }
      }
      throw new StoreException(
          "the store "
              + dir
              + " has format version "
              + version
              + "; this dedupfs reads versions "
              + OLDEST_FORMAT_VERSION
              + " to "
              + FORMAT_VERSION
              + " only");
    }
  }

  /** A text record of {@code meta}, or null. */
  String metaString(ReadTxn txn, String key) {
    ByteBuffer v = meta.get(txn, key().put(key.getBytes(StandardCharsets.US_ASCII)).flip());
    return v == null ? null : new String(bytes(v), StandardCharsets.UTF_8);
  }

  <T> T read(ReadWork<T> work) throws IOException {
    mapLock.readLock().lock();
    try {
      Txn<ByteBuffer> txn = takeRead();
      try {
        return work.run(new ReadTxn(txn));
      } finally {
        keepRead(txn);
      }
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /**
   * Read transactions kept between reads, one per thread that reads, reset (LMDB's {@code
   * mdb_txn_reset}: no snapshot held, only a reader slot): {@link #read} renews its thread's
   * instead of beginning one, which costs a {@code calloc} under malloc's lock each time (README,
   * Benchmarks). A thread takes its own out while it reads (a read nested in it begins another) and
   * puts it back after, holding mapLock shared; {@link #closeKept} closes them all holding mapLock
   * exclusively, before the environment is closed, as LMDB requires; those of threads that ended
   * are closed when a thread begins its first.
   */
  private final Map<Thread, Txn<ByteBuffer>> kept = new ConcurrentHashMap<>();

  /** This thread's kept read transaction, renewed, or a new one. Caller holds mapLock shared. */
  private Txn<ByteBuffer> takeRead() {
    Txn<ByteBuffer> txn = kept.remove(Thread.currentThread());
    if (txn == null) {
      kept.forEach(
          (thread, old) -> {
            if (!thread.isAlive() && kept.remove(thread, old)) {
              discard(old);
            }
          });
      return env.txnRead();
    }
    try {
      txn.renew();
    } catch (RuntimeException e) {
      txn.close();
      throw e;
    }
    return txn;
  }

  /** Resets {@code txn} and keeps it for this thread's next read (one at most). */
  private void keepRead(Txn<ByteBuffer> txn) {
    try {
      txn.reset();
    } catch (RuntimeException e) {
      txn.close();
      throw e;
    }
    if (kept.putIfAbsent(Thread.currentThread(), txn) != null) {
      discard(txn); // an outer read's, whose nested read kept its own
    }
  }

  /** Closes every kept read transaction. Caller holds mapLock exclusively. */
  private void closeKept() {
    kept.values().forEach(Lmdb::discard);
    kept.clear();
  }

  /**
   * Closes a kept (reset) read transaction and frees its reader slot: lmdbjava's close aborts only
   * a transaction that is not reset, so it is renewed first (if that fails, the slot stays taken
   * until the environment is closed: nothing is lost, and the close goes on).
   */
  private static void discard(Txn<ByteBuffer> txn) {
    try {
      txn.renew();
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.DEBUG, "renewing a kept read transaction to close it failed", e);
    }
    txn.close();
  }

  /**
   * Runs {@code work} in a write transaction and commits it durably. A full map is grown and the
   * work run again; a full disk aborts the transaction and throws {@link StoreFullException},
   * leaving the store as it was.
   */
  <T> T write(WriteWork<T> work) throws IOException {
    writer.lock();
    try {
      while (true) {
        try {
          return writeOnce(work);
        } catch (Env.MapFullException e) {
          growMap(e);
        } catch (LmdbNativeException e) {
          if (isDiskFull(e.getResultCode())) {
            throw new StoreFullException("no space left on the disk under the store " + dir, e);
          }
          throw new IOException("LMDB: " + e.getMessage(), e);
        }
      }
    } finally {
      writer.unlock();
    }
  }

  /**
   * Runs {@code work} in a write transaction as {@link #write} does (one writer at a time, a full
   * map grown and the work run again), then aborts the transaction instead of committing it:
   * nothing it wrote is ever seen. For a dry run of a change: its result says what the change would
   * do.
   */
  @SuppressWarnings("unchecked")
  <T> T writeAndAbort(WriteWork<T> work) throws IOException {
    try {
      write(
          txn -> {
            throw new Aborted(
                work.run(
                    txn)); // leaves writeOnce before its commit: closing the transaction aborts it
          });
    } catch (Aborted a) {
      return (T) a.result;
    }
    throw new AssertionError("a dry run's transaction was committed");
  }

  /** Carries the result of {@link #writeAndAbort}'s work out of its transaction, uncommitted. */
  private static final class Aborted extends RuntimeException {
    final transient Object result;

    Aborted(Object result) {
      super(null, null, false, false);
      this.result = result;
    }
  }

  private <T> T writeOnce(WriteWork<T> work) throws IOException {
    mapLock.readLock().lock();
    try (Txn<ByteBuffer> txn = env.txnWrite()) {
      T result = work.run(new WriteTxn(txn));
      Future<?> ahead = flushAhead == null ? null : flushAhead.during();
      try {
        txn.commit();
      } finally {
        if (ahead != null) {
          ahead.cancel(false);
        }
      }
      return result;
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /**
   * LMDB reports ENOSPC or EDQUOT when a write fails outright, but EIO when it was short, as the
   * last write to a full disk is: so EIO counts as a full disk when almost nothing is free.
   */
  private boolean isDiskFull(int rc) {
    if (rc == ENOSPC || rc == EDQUOT) {
      return true;
    }
    try {
      return rc == EIO && Files.getFileStore(dir).getUnallocatedSpace() < FULL_BELOW;
    } catch (IOException e) {
      return false;
    }
  }

  private void growMap(Env.MapFullException cause) throws StoreFullException {
    mapLock.writeLock().lock();
    try {
      long size = env.info().mapSize;
      if (size >= Long.MAX_VALUE / 4) {
        throw new StoreFullException(
            "the store's map cannot grow beyond " + size + " bytes", cause);
      }
      env.setMapSize(size * 2);
    } finally {
      mapLock.writeLock().unlock();
    }
  }

  /** The map's current size: how far the store may grow before the map is resized. */
  long mapSize() {
    mapLock.readLock().lock();
    try {
      return env.info().mapSize;
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /** Bytes up to LMDB's last page: what the store's tables and their free pages take. */
  long usedBytes() {
    mapLock.readLock().lock();
    try {
      return (env.info().lastPageNumber + 1) * pageSize;
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /**
   * Bytes of the pages that hold data (every table's B-tree and overflow pages, and the two meta
   * pages): what a compacting copy writes. The rest of the file up to {@link #usedBytes} is free
   * pages that later commits reuse. Takes mapLock shared (statfs calls it while compact may swap
   * the environment).
   */
  long pagesInUse() {
    mapLock.readLock().lock();
    try {
      long pages = 2 + pages(env.stat());
      try (Txn<ByteBuffer> txn = env.txnRead()) {
        for (Dbi<ByteBuffer> t : tables()) {
          pages += pages(t.stat(txn));
        }
      }
      return pages * pageSize;
    } finally {
      mapLock.readLock().unlock();
    }
  }

  private static long pages(Stat s) {
    return s.branchPages + s.leafPages + s.overflowPages;
  }

  /** Every table the store has, {@code meta} first. */
  private List<Table> presentTables() {
    List<Table> all = new ArrayList<>();
    for (Table t :
        List.of(
            meta,
            inodes,
            dirents,
            xattrs,
            blocks,
            refs,
            pending,
            orphans,
            snapshots,
            compressed,
            folded,
            releases,
            cache,
            cacheOrder)) {
      if (t.present()) {
        all.add(t);
      }
    }
    return all;
  }

  private List<Dbi<ByteBuffer>> tables() {
    return presentTables().stream().map(t -> t.dbi).toList();
  }

  /** The entries of each table, in {@link #tables} order, to check a copy against. */
  private static List<Long> entries(Env<ByteBuffer> e, List<Dbi<ByteBuffer>> tables) {
    List<Long> out = new ArrayList<>();
    try (Txn<ByteBuffer> txn = e.txnRead()) {
      for (Dbi<ByteBuffer> t : tables) {
        out.add(t.stat(txn).entries);
      }
    }
    return out;
  }

  /**
   * Gives free pages back to the disk: writes a compacted copy of the environment (LMDB's
   * MDB_CP_COMPACT: pages in use only, renumbered) into {@link #COMPACT_DIR}, checks it, and
   * renames it over {@code data.mdb} with no transaction open (writer held, then mapLock
   * exclusively: close, rename, reopen). Writers wait for the whole copy, so that it misses no
   * commit; readers go on until the swap. Without room on the disk for the copy this throws {@link
   * StoreFullException} and the store is unchanged.
   */
  CompactResult compact(Consumer<Progress> progress) throws IOException {
    Path data = dir.resolve("data.mdb");
    Path tmp = dir.resolve(COMPACT_DIR);
    Path copy = tmp.resolve("data.mdb");
    writer.lock();
    try {
      long before = Files.size(data);
      long need;
      mapLock.readLock().lock();
      try {
        need = pagesInUse();
      } finally {
        mapLock.readLock().unlock();
      }
      removeCompactDir(dir);
      long free = Files.getFileStore(dir).getUsableSpace();
      if (free < need + NEARLY_FULL) {
        throw new StoreFullException(
            "compacting the store "
                + dir
                + " needs "
                + need
                + " bytes free on its disk; "
                + free
                + " are",
            null);
      }
      Files.createDirectory(tmp);
      try {
        copyCompacted(tmp, copy, need, progress);
        progress.accept(new Progress("check", 0, 1));
        List<String> names = presentTables().stream().map(t -> t.name).toList();
        List<Long> want;
        mapLock.readLock().lock();
        try {
          want = entries(env, tables());
        } finally {
          mapLock.readLock().unlock();
        }
        try (Env<ByteBuffer> c =
            Env.create()
                .setMaxDbs(16)
                .open(tmp.toFile(), EnvFlags.MDB_RDONLY_ENV, EnvFlags.MDB_NOLOCK)) {
          List<Dbi<ByteBuffer>> copied = new ArrayList<>();
          for (String n : names) {
            copied.add(c.openDbi(n));
          }
          List<Long> got = entries(c, copied);
          if (!got.equals(want)) {
            throw new IOException(
                "the compacted copy of "
                    + dir
                    + " does not hold what the store holds: "
                    + got
                    + " entries, not "
                    + want);
          }
        }
        try (FileChannel ch = FileChannel.open(copy, StandardOpenOption.WRITE)) {
          ch.force(true);
        }
        progress.accept(new Progress("swap", 0, 1));
        swapIn(copy, data);
      } finally {
        removeCompactDir(dir);
      }
      long after = Files.size(data);
      progress.accept(new Progress("done", 1, 1));
      return new CompactResult(before, after);
    } finally {
      writer.unlock();
    }
  }

  /**
   * Runs LMDB's compacting copy on a helper thread (holding mapLock shared) and reports the copy's
   * growth from this one.
   */
  private void copyCompacted(Path tmp, Path copy, long need, Consumer<Progress> progress)
      throws IOException {
    RuntimeException[] failure = new RuntimeException[1];
    Thread t =
        new Thread(
            () -> {
              mapLock.readLock().lock();
              try {
                env.copy(tmp.toFile(), CopyFlags.MDB_CP_COMPACT);
              } catch (RuntimeException e) {
                failure[0] = e;
              } finally {
                mapLock.readLock().unlock();
              }
            },
            "dedupfs-compact");
    t.start();
    progress.accept(new Progress("copy", 0, need));
    try {
      while (t.isAlive()) {
        t.join(250);
        progress.accept(
            new Progress("copy", Files.exists(copy) ? Math.min(need, Files.size(copy)) : 0, need));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      joinUninterruptibly(t);
      throw new java.io.InterruptedIOException("compact interrupted; the store is unchanged");
    }
    if (failure[0] instanceof LmdbNativeException e && isDiskFull(e.getResultCode())) {
      throw new StoreFullException(
          "no space left on the disk under the store " + dir + " for its compacted copy", e);
    }
    if (failure[0] != null) {
      throw new IOException(
          "LMDB could not copy the store " + dir + ": " + failure[0].getMessage(), failure[0]);
    }
  }

  private static void joinUninterruptibly(Thread t) {
    while (t.isAlive()) {
      try {
        t.join();
      } catch (InterruptedException again) {
        // the copy holds the map lock: wait for it to end whatever happens
      }
    }
  }

  /**
   * Caller holds the writer lock: closes the environment, renames the copy over {@code data.mdb},
   * reopens it.
   */
  private void swapIn(Path copy, Path data) throws IOException {
    mapLock.writeLock().lock();
    try {
      long mapSize = env.info().mapSize;
      closeKept();
      env.close();
      try {
        Files.move(copy, data, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
          d.force(true); // the rename itself
        }
      } finally {
        env = openEnv(mapSize); // the new file after a rename, else the old one
        meta.dbi = env.openDbi("meta");
        openTables(false);
      }
    } finally {
      mapLock.writeLock().unlock();
    }
  }

  /** Removes what an interrupted {@link #compact} left in the store's directory. */
  static void removeCompactDir(Path dir) throws IOException {
    Path tmp = dir.resolve(COMPACT_DIR);
    if (!Files.isDirectory(tmp, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (java.util.stream.Stream<Path> files = Files.list(tmp)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Files.delete(f);
      }
    }
    Files.delete(tmp);
  }

  @Override
  public void close() {
    if (flushAhead != null) {
      flushAhead.close();
    }
    mapLock.writeLock().lock();
    try {
      closeKept();
      env.close();
    } finally {
      mapLock.writeLock().unlock();
    }
  }

  // ---- small direct buffers, one set per thread: LMDB needs direct memory for keys and values.
  // A buffer is only borrowed for the duration of one LMDB call, which copies it.

  private static final ThreadLocal<ByteBuffer> KEY =
      ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(512));
  private static final ThreadLocal<ByteBuffer> VAL =
      ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(64 * 1024));

  static ByteBuffer key() {
    return KEY.get().clear();
  }

  static ByteBuffer key(long id) {
    return key().putLong(id).flip();
  }

  static ByteBuffer key(Hash hash) {
    ByteBuffer b = key();
    hash.writeTo(b);
    return b.flip();
  }

  static ByteBuffer value(int capacity) {
    ByteBuffer b = VAL.get();
    if (b.capacity() < capacity) {
      b = ByteBuffer.allocateDirect(Integer.highestOneBit(capacity) << 1);
      VAL.set(b);
    }
    return b.clear();
  }

  /** {@code value} followed by {@code key}'s bytes from {@code skip} on, in a new array. */
  static byte[] concat(ByteBuffer value, ByteBuffer key, int skip) {
    int head = value.remaining();
    int tail = key.remaining() - skip;
    byte[] out = new byte[head + tail];
    value.get(value.position(), out, 0, head);
    key.get(key.position() + skip, out, head, tail);
    return out;
  }

  static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.get(b.position(), out);
    return out;
  }
}
