package io.dedupfs.engine;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * A dedupfs datastore: the whole namespace and every file's contents, as Merkle trees of
 * content-addressed blocks in one LMDB environment. This is the engine's only entry point; the
 * mount is a thin adapter over it. Thread-safe.
 *
 * <p>Inodes are addressed by number ({@link #ROOT} is the root directory), as the kernel does.
 * Namespace changes commit at once, atomically. Writes are buffered per file and committed by
 * {@link #flush}, {@link #sync}, a timer, or when buffered data reaches its memory limit; once a
 * flush returns, what it covered survives a crash of the process or the machine. {@link #fsync}
 * gives the same promise through the intent log ({@link IntentLog}), replayed at the next open.
 *
 * <p>Errors: {@link NoSuchFileException}, {@link FileAlreadyExistsException}, {@link
 * NotDirectoryException}, {@link DirectoryNotEmptyException}, {@link FsException} (with a kind),
 * {@link StoreFullException}, {@link CorruptBlockException}, {@link StoreException}.
 *
 * <p>This class is a facade over parts that each own one job: {@link NamespaceOps} (the namespace
 * rules), {@link OpenFiles} (the contents in use and their locks), {@link Contents} (reads and
 * changes of contents), {@link WriteBack} (buffered writes, commits, fsync through the {@link
 * IntentLog}, and the background threads), {@link SnapshotOps} (snapshots), {@link Maintenance}
 * (reclaim, usage, scrub, fsck, compact) and {@link StoreDirectory} (the directory and its lock).
 *
 * <p>Commits. A file's buffered changes are committed by a flush, a sync, the timer, or in the
 * background once the file buffers its share of the dirty limit (a quarter). A commit freezes the
 * file's overlay under the file's lock, then hashes and stores it without that lock (holding only
 * the file's {@link FileContent#commitLock}), so writers and readers go on meanwhile (see {@link
 * FileTree} and {@link WriteBack}); a flush waits for the commit in flight, then commits what is
 * left. A writer that finds the whole store's buffered data, frozen or not, at the dirty limit
 * waits for commits first (back-pressure).
 *
 * <p>Locks, in the order they are taken: a file's {@link FileContent#commitLock}, then its {@link
 * FileContent#lock} (several files: in ascending inode order, each file's pair together, as a copy
 * takes two and a restore all it may replace), then {@link Lmdb}'s writer and map locks, which are
 * held only for one transaction (or for a compact's copy and swap). No file lock is taken inside a
 * transaction, and whoever holds a file's lock waits for no commit lock. Namespace operations,
 * snapshots and their deletion take only the LMDB locks: LMDB's single writer makes each of them
 * atomic.
 *
 * <p>Snapshots live under {@link #SNAPSHOTS} in the root; nothing there can be changed through this
 * class but by {@link #deleteSnapshot} ({@link FsException.Kind#READ_ONLY} otherwise).
 */
public final class Datastore implements Closeable {
  public static final long ROOT = Namespace.ROOT;

  /** The read-only directory below the root where snapshots are, {@code .snapshots/NAME}. */
  public static final String SNAPSHOTS = Snapshots.DIR;

  public static final int RENAME_NOREPLACE = 1;
  public static final int RENAME_EXCHANGE = 2;
  public static final int XATTR_CREATE = 1;
  public static final int XATTR_REPLACE = 2;

  private static final System.Logger LOG = System.getLogger(Datastore.class.getName());

  private final Path dir;
  private final DatastoreConfig config;
  private final StoreDirectory home;
  // The parts, each with one job (see above). Those package-private are reached by the engine's
  // tests: the tables, the block store, the contents in use, write-back and snapshots.
  final Lmdb db;
  private final Geometry geometry;
  final BlockStore blocks;
  private final Namespace ns;
  final OpenFiles files;
  final WriteBack writeBack;
  private final Contents contents;
  private final NamespaceOps namespace;
  final SnapshotOps snapshotOps;
  private final Maintenance maintenance;

  /** The intent log; null only in a version-1 store opened read-only, which has none. */
  private final IntentLog log;

  /** The pool that holds the store's blocks; null when they are in its LMDB. */
  private final BlockPool pool;

  /** The store's entry on its pool's list, kept fresh; null unless a pool store open writable. */
  private PoolHeartbeat heartbeat;

  /** Keys of {@code meta} for a store whose blocks are in a pool (FORMAT.md). */
  static final String META_BLOCKS = "blocks";

  static final String META_BLOCKS_CONF = "blocks.conf";
  static final String META_BLOCKS_CLIENT = "blocks.client";
  static final String META_STORE_ID = "storeId";

  /**
   * A store over {@code db}, the LMDB environment opened in {@code home}; it owns both from here on
   * (on failure it closes {@code db}, the caller {@code home}). Writes a new store's format record
   * and root, and on a writable store purges the orphans that a crash left and starts the
   * background work.
   */
  Datastore(StoreDirectory home, DatastoreConfig config, Lmdb db) throws IOException {
    this.dir = home.dir;
    this.config = config;
    this.home = home;
    this.db = db;
    WriteBack wb = null;
    IntentLog il = null;
    BlockPool bp = null;
    BlockStore bs = null;
    try {
      String destroying = metaString(Destroy.META_DESTROYING);
      if (destroying != null) {
        throw new StoreException(
            "the store "
                + dir
                + " is being destroyed (since "
                + destroying
                + "; some of its blocks may be gone): run dedupfs destroy "
                + dir
                + " again to finish");
      }
      this.ns = new Namespace(db);
      this.pool = bp = openPool(); // first: a store is not created in a pool that does not open
      this.geometry = new Geometry(initMeta());
      PoolHeartbeat.Read entryAtOpen = pool == null ? null : requireNotForgotten();
      this.log = il = openLog();
      this.blocks =
          bs =
              pool == null
                  ? new LmdbBlockStore(db, geometry, config.cacheBytes(), readCompression())
                  : new PoolBlockStore(
                      db,
                      geometry,
                      config.cacheBytes(),
                      pool,
                      metaString(META_BLOCKS),
                      metaString(META_STORE_ID),
                      readCompression(),
                      config.poolCacheBytes(),
                      config.readOnly());
      this.files = new OpenFiles(db, ns, geometry, blocks, log, config.dirtyLimitBytes());
      this.maintenance = new Maintenance(dir, config, db, ns, geometry, blocks);
      this.writeBack =
          wb =
              new WriteBack(
                  db,
                  ns,
                  config,
                  files,
                  config.readOnly() || config.logBytes() == 0 ? null : log,
                  maintenance::reclaimQuietly);
      this.contents = new Contents(db, geometry, files, writeBack);
      this.namespace = new NamespaceOps(dir, config, db, ns, blocks, files, contents, writeBack);
      this.snapshotOps = new SnapshotOps(dir, config, db, ns, blocks, files, writeBack);
      List<IntentLog.Record> replayed = log == null ? List.of() : writeBack.replay(log.recovered());
      if (!config.readOnly()) {
        Lmdb.removeCompactDir(dir);
        try {
          writeBack.sync(); // what the log held is folded
          newLogGeneration();
        } catch (StoreFullException full) {
          LOG.log(
              System.Logger.Level.WARNING,
              "no room on the disk to commit what the intent log of "
                  + dir
                  + " held: it stays in memory and in the log until there is");
          log.keep(replayed);
        }
        namespace.purgeOrphans();
        if (pool != null && db.read(blocks::hasUnreleased)) {
          maintenance.reclaimQuietly(); // pool references that a crash left to release
        }
        writeBack.start();
        if (pool != null) {
          heartbeat =
              new PoolHeartbeat(
                  pool, metaString(META_STORE_ID), dir, config.poolHeartbeat(), entryAtOpen);
        }
      }
      if (log != null) {
        log.recovered().clear();
      }
    } catch (IOException | RuntimeException e) {
      if (wb != null) {
        wb.shutdownNow();
      }
      if (bs != null) {
        bs.close();
      }
      if (il != null) {
        il.close();
      }
      if (bp != null) {
        bp.close();
      }
      db.close();
      throw e;
    }
  }

  /**
   * Opens the store in {@code dir}, creating it when {@code dir} is missing or empty (with its
   * blocks in the pool {@link DatastoreConfig#blocksIn} names, if any: nothing is created when that
   * pool does not open). Refuses a directory that holds anything else, a store of another format
   * version, and a store that another process (or another open in this one) is using.
   */
  public static Datastore open(Path dir, DatastoreConfig config) throws IOException {
    if (config.blocksIn() != null && !isStore(dir)) {
      // a store is not made in a pool that does not open: try it before anything is created
      if (config.pools() == null) {
        throw new IllegalArgumentException("a store in a block pool needs a pool opener");
      }
      config.pools().open(config.blocksIn()).close();
    }
    StoreDirectory home = StoreDirectory.lock(dir, config.readOnly());
    try {
      return new Datastore(home, config, home.openLmdb(Lmdb.DEFAULT_MAP_SIZE));
    } catch (IOException | RuntimeException e) {
      home.close();
      throw e;
    }
  }

  /** True when {@code dir} holds a dedupfs store. */
  public static boolean isStore(Path dir) {
    return StoreDirectory.isStore(dir);
  }

  /**
   * Writes the format record and the root directory into a new store; returns the store's leaf
   * size.
   */
  private int initMeta() throws IOException {
    if (!db.isNew) {
      return Integer.parseInt(metaString("leafSize"));
    }
    BlockPool.Location in = config.blocksIn();
    long now = Checks.now();
    db.write(
        txn -> {
          putMeta(txn, "magic", Lmdb.MAGIC);
          putMeta(txn, "formatVersion", Integer.toString(Lmdb.FORMAT_VERSION));
          putMeta(txn, "leafSize", Integer.toString(config.leafSize()));
          putMeta(txn, Lmdb.COMPRESSION, config.compression().toString());
          if (in != null) {
            putMeta(txn, META_BLOCKS, in.name());
            putMeta(txn, META_BLOCKS_CONF, in.conf());
            putMeta(txn, META_BLOCKS_CLIENT, in.client());
            putMeta(txn, META_STORE_ID, newStoreId());
          }
          ns.put(
              txn,
              new Inode(
                  ROOT,
                  Inode.S_IFDIR | 0755,
                  0,
                  0,
                  2,
                  0,
                  now,
                  now,
                  now,
                  0,
                  ROOT,
                  0,
                  0,
                  0,
                  Hash.ZERO,
                  ""));
          return null;
        });
    return config.leafSize();
  }

  /**
   * Connects to the pool that holds the store's blocks, as its {@code meta} records (a new store:
   * as its config says); null for a store whose blocks are in its LMDB. Refuses a store in a pool
   * when no pool opener is given.
   */
  private BlockPool openPool() throws IOException {
    BlockPool.Location where = db.isNew ? config.blocksIn() : blocksIn();
    if (where == null) {
      return null;
    }
    if (config.pools() == null) {
      throw new StoreException(
          "the store "
              + dir
              + " keeps its blocks in "
              + where
              + ": it opens only with that pool given (the dedupfs command gives it)");
    }
    return config.pools().open(where);
  }

  /**
   * Refuses a store that {@code dedupfs pool forget} released ({@link PoolStores#FORGOTTEN}):
   * blocks it uses may be gone from the pool. Returns the store's entry as read, for the heartbeat
   * to write over; null when the pool did not answer, which is logged, not refused: the open's next
   * calls to it say what is wrong.
   */
  private PoolHeartbeat.Read requireNotForgotten() throws StoreException {
    String entry;
    try {
      entry = pool.registered(metaString(META_STORE_ID));
    } catch (IOException e) {
      LOG.log(
          System.Logger.Level.WARNING,
          "could not read the pool's list of stores for " + dir + ": " + e.getMessage());
      return null;
    }
    if (PoolStores.isForgotten(entry)) {
      throw PoolHeartbeat.forgottenException(dir, entry);
    }
    return new PoolHeartbeat.Read(entry);
  }

  /**
   * Deletes the store in {@code dir} (not open anywhere), with its files: for a store whose blocks
   * are in a pool, first releases every pool reference it records and takes it off the pool's list
   * of stores (blocks no other store holds leave the pool). Says which pool and how many references
   * it released; tells {@code progress} how far it has come (phase "release", blocks). Interrupted,
   * it leaves a store that refuses to open and is finished by running it again. References a crash
   * left unrecorded are not among them: {@link PoolStores#forget} finds those.
   */
  public static DestroyReport destroy(Path dir, DatastoreConfig config, Consumer<Progress> progress)
      throws IOException {
    return Destroy.run(dir, config, progress);
  }

  /**
   * Moves the intent log of the store in {@code dir}, which no one may have open, to {@code file}
   * (absolute, new, on another file system; FORMAT.md, "Files"), or with null back into the store's
   * directory. What the log holds moves with it. Returns where it is now.
   */
  public static Path moveLog(Path dir, Path file) throws IOException {
    if (!isStore(dir)) {
      throw new StoreException(dir + " holds no dedupfs store");
    }
    if (file != null && !file.isAbsolute()) {
      throw new IllegalArgumentException("the intent log's path must be absolute: " + file);
    }
    try (StoreDirectory home = StoreDirectory.lock(dir, false)) {
      return IntentLog.move(dir, file);
    }
  }

  /** A new store's name among a pool's holders: 128 random bits, hex. */
  private static String newStoreId() {
    byte[] id = new byte[16];
    new java.security.SecureRandom().nextBytes(id);
    return java.util.HexFormat.of().formatHex(id);
  }

  /** Where the store keeps its blocks: null in its LMDB, else the pool it records. */
  public BlockPool.Location blocksIn() throws IOException {
    String name = metaString(META_BLOCKS);
    return name == null
        ? null
        : new BlockPool.Location(
            name, metaString(META_BLOCKS_CONF), metaString(META_BLOCKS_CLIENT));
  }

  /**
   * Opens the intent log and reads what it holds. A store without one (a new store, or one of
   * format version 1 or 2, raised to 3 by {@link Lmdb}) gets one when opened for writing
   * (FORMAT.md): a new store where {@link DatastoreConfig#logFile} says. A log that has gone
   * missing from the store's directory is made anew there, with a warning: what it held is lost. A
   * log kept elsewhere that is missing (its file system not mounted, say) refuses the open: what it
   * holds comes back once it is there again.
   */
  private IntentLog openLog() throws IOException {
    String id = metaString(IntentLog.META_ID);
    if (id != null && Files.exists(dir.resolve(IntentLog.FILE))) {
      return IntentLog.open(dir, Long.parseLong(id), config.readOnly());
    }
    Path linked = IntentLog.linkedFile(dir);
    if (id != null && linked != null) {
      throw new StoreException(
          "the intent log of "
              + dir
              + " is missing: "
              + dir.resolve(IntentLog.FILE)
              + " links to "
              + linked
              + ", which is not there (is its file system mounted?). It holds the writes fsynced"
              + " since the last commit; the store opens once it is back. To open the store without"
              + " them, remove the link: a new log is then made in the store's directory.");
    }
    if (config.readOnly()) {
      if (id != null) {
        LOG.log(
            System.Logger.Level.WARNING,
            "the intent log of "
                + dir
                + " is missing: writes fsynced since the last commit are not seen");
      }
      return null;
    }
    if (id != null) {
      LOG.log(
          System.Logger.Level.WARNING,
          "the intent log of "
              + dir
              + " is missing: writes fsynced since the last commit before it went are lost;"
              + " making a new one");
    }
    long newId = newLogId();
    Path elsewhere = id == null ? config.logFile() : null;
    IntentLog.create(dir, logSize(elsewhere == null ? dir : elsewhere.getParent()), elsewhere);
    db.write(
        txn -> {
          putMeta(txn, IntentLog.META_ID, Long.toString(newId));
          return null;
        });
    return IntentLog.open(dir, newId, false);
  }

  /**
   * The size of a new intent log: as configured (128 MiB by default), but at most a sixteenth of
   * the disk space free in {@code where}, and at least {@link DatastoreConfig#MIN_LOG_BYTES}, so
   * that a store on a small disk keeps its room for data.
   */
  private long logSize(Path where) throws IOException {
    long want = config.logBytes() > 0 ? config.logBytes() : IntentLog.DEFAULT_BYTES;
    long free = Files.getFileStore(where).getUsableSpace();
    return Math.max(DatastoreConfig.MIN_LOG_BYTES, Math.min(want, free / 16));
  }

  /**
   * Once what the log held is folded: gives the log a new id, so that none of its records is ever
   * read again, and forgets which records each file folded. Records then start from 1.
   */
  private void newLogGeneration() throws IOException {
    long id = newLogId();
    db.write(
        txn -> {
          putMeta(txn, IntentLog.META_ID, Long.toString(id));
          db.folded.clear(txn);
          return null;
        });
    log.newGeneration(id);
    for (FileContent fc : files.all()) {
      fc.lock.writeLock().lock();
      try {
        fc.newLogGeneration();
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
  }

  private static long newLogId() {
    long id;
    do {
      id = new java.security.SecureRandom().nextLong();
    } while (id == 0);
    return id;
  }

  /**
   * The store's compression, as its {@code meta} record says (a store opened read-only at format
   * version 1 has none: it stores nothing).
   */
  private Compression readCompression() throws IOException {
    String c = metaString(Lmdb.COMPRESSION);
    try {
      return c == null ? Compression.NONE : Compression.parse(c);
    } catch (IllegalArgumentException e) {
      throw new StoreException("the store " + dir + " has an unknown compression: " + c);
    }
  }

  /**
   * The file of the store's intent log, its link followed (another file system's, when the store
   * keeps it there), and its size; null when the store has none (opened read-only without one).
   */
  public LogFile intentLog() throws IOException {
    return log == null
        ? null
        : new LogFile(dir.resolve(IntentLog.FILE).toRealPath(), log.fileBytes(), log.activity());
  }

  /** See {@link #intentLog}; {@code activity}: what the log did since the store was opened. */
  public record LogFile(Path path, long bytes, LogActivity activity) {}

  /**
   * What a store's intent log did since the store was opened: {@code records} appended (one an
   * fsync that had changes to log), taking {@code recordBytes} of the ring; appends {@code refused}
   * for want of room (those fsyncs committed instead, each a whole commit); {@code foldsForRoom},
   * the times the ring was found half full of records no commit had folded and their files' commits
   * were queued early (often: a log small for the writes it takes); {@code writes} that made
   * records durable, each a write and a device flush shared by the records appended meanwhile
   * (group commit), how long they took on average and the power of two of microseconds that 99 % of
   * them took less than; and {@code unfoldedBytes}, what the ring holds now that no commit has
   * folded yet.
   */
  public record LogActivity(
      long records,
      long recordBytes,
      long refused,
      long foldsForRoom,
      long writes,
      long writeMicrosMean,
      long writeMicrosP99,
      long unfoldedBytes) {}

  /** How blocks stored from now on are compressed. */
  public Compression compression() throws IOException {
    return readCompression();
  }

  /**
   * Compresses the blocks stored from now on with {@code c}; blocks already stored keep their form
   * (every form stays readable). Recorded in the store: it lasts across reopens.
   */
  public void setCompression(Compression c) throws IOException {
    Checks.requireWritable(config, dir);
    db.write(
        txn -> {
          putMeta(txn, Lmdb.COMPRESSION, c.toString());
          return null;
        });
    blocks.setCompression(c);
  }

  private String metaString(String key) throws IOException {
    return db.read(txn -> db.metaString(txn, key));
  }

  private void putMeta(WriteTxn txn, String key, String value) {
    db.putMeta(txn, key, value);
  }

  public int leafSize() {
    return geometry.leafSize;
  }

  public Path directory() {
    return dir;
  }

  // ================================================================ namespace (NamespaceOps)

  public Attributes getattr(long ino) throws IOException {
    return namespace.getattr(ino);
  }

  public Attributes lookup(long parent, String name) throws IOException {
    return namespace.lookup(parent, name);
  }

  /**
   * Creates a regular file, device, fifo or socket ({@code mode} holds the type; none means a
   * regular file).
   */
  public Attributes mknod(long parent, String name, int mode, long rdev, int uid, int gid)
      throws IOException {
    return namespace.mknod(parent, name, mode, rdev, uid, gid);
  }

  public Attributes mkdir(long parent, String name, int mode, int uid, int gid) throws IOException {
    return namespace.mkdir(parent, name, mode, uid, gid);
  }

  public Attributes symlink(long parent, String name, String target, int uid, int gid)
      throws IOException {
    return namespace.symlink(parent, name, target, uid, gid);
  }

  public String readlink(long ino) throws IOException {
    return namespace.readlink(ino);
  }

  public Attributes link(long ino, long newParent, String newName) throws IOException {
    return namespace.link(ino, newParent, newName);
  }

  public void unlink(long parent, String name) throws IOException {
    namespace.unlink(parent, name);
  }

  public void rmdir(long parent, String name) throws IOException {
    namespace.rmdir(parent, name);
  }

  public void rename(long parent, String name, long newParent, String newName, int flags)
      throws IOException {
    namespace.rename(parent, name, newParent, newName, flags);
  }

  public Attributes setattr(long ino, SetAttributes change) throws IOException {
    return namespace.setattr(ino, change);
  }

  /**
   * Up to {@code max} entries of a directory, starting at {@code offset} (0 for the start, else the
   * {@link DirEntry#nextOffset} of the last entry seen). "." and ".." come first.
   */
  public List<DirEntry> readdir(long ino, long offset, int max) throws IOException {
    return namespace.readdir(ino, offset, max);
  }

  public byte[] getxattr(long ino, String name) throws IOException {
    return namespace.getxattr(ino, name);
  }

  public List<String> listxattr(long ino) throws IOException {
    return namespace.listxattr(ino);
  }

  /**
   * Whether any file or directory has an extended attribute called {@code name}: a scan of every
   * attribute, for a mount that wants to answer a frequent probe (the kernel's {@code
   * security.capability} before each write) without a transaction while none exists.
   */
  public boolean anyXattrNamed(String name) throws IOException {
    return namespace.anyXattrNamed(name);
  }

  public void setxattr(long ino, String name, byte[] value, int flags) throws IOException {
    namespace.setxattr(ino, name, value, flags);
  }

  public void removexattr(long ino, String name) throws IOException {
    namespace.removexattr(ino, name);
  }

  /**
   * The kernel holds no more references to {@code ino}: if no name is left for it, it is deleted
   * and its contents' blocks are freed in the background.
   */
  public void forget(long ino) throws IOException {
    namespace.forget(ino);
  }

  /**
   * The inode at {@code path} ("/"-separated, relative to the root, "" for the root); symlinks are
   * not followed.
   */
  public long resolve(String path) throws IOException {
    return namespace.resolve(path);
  }

  /**
   * A path of {@code ino} (one of its names), for reports; NoSuchFileException if it has none.
   * Reads every entry.
   */
  public String pathOf(long ino) throws IOException {
    return namespace.pathOf(ino);
  }

  public StoreStats stats() throws IOException {
    long inodes = db.read(ns::inodeCount);
    long used = db.usedBytes();
    long live = Math.min(used, db.pagesInUse());
    return new StoreStats(
        used,
        live,
        Files.getFileStore(dir).getUsableSpace(),
        inodes,
        geometry.leafSize,
        blocks.pooledSpace());
  }

  // ================================================================ contents (Contents, WriteBack)

  public int read(long ino, long offset, ByteBuffer dst) throws IOException {
    return contents.read(ino, offset, dst);
  }

  /**
   * Writes all of {@code src} at {@code offset}; returns the count written. The data is buffered
   * until a flush. A file whose buffered data reaches its share of the dirty limit is committed in
   * the background while its writers go on. A writer that finds the store's buffered data
   * (including commits in flight) at the dirty limit waits for commits to make room first; on a
   * full disk such a commit fails and this write is refused with {@link StoreFullException} before
   * it changes anything, while what was buffered stays buffered (and readable) until a flush finds
   * room.
   */
  public int write(long ino, long offset, ByteBuffer src) throws IOException {
    requireWritable();
    Checks.requireOffset(offset);
    int n = src.remaining();
    if (n == 0) {
      return 0;
    }
    if (offset + n > Geometry.MAX_FILE_SIZE) {
      throw new FsException(
          FsException.Kind.FILE_TOO_BIG, "inode " + ino, "beyond the largest file size");
    }
    return writeBack.write(ino, offset, src);
  }

  /**
   * Deallocates {@code [offset, offset + length)}: it reads as zeros and costs no space. The size
   * stays.
   */
  public void punchHole(long ino, long offset, long length) throws IOException {
    requireWritable();
    contents.punchHole(ino, offset, length);
  }

  /** Zeroes {@code [offset, offset + length)}, growing the file unless {@code keepSize}. */
  public void zeroRange(long ino, long offset, long length, boolean keepSize) throws IOException {
    requireWritable();
    contents.zeroRange(ino, offset, length, keepSize);
  }

  /**
   * fallocate's default mode: grows the file to {@code offset + length} unless {@code keepSize}.
   * Space cannot be reserved in a deduplicating store (what a write will need depends on what it
   * writes), so nothing is reserved; a later write can still find the disk full.
   */
  public void allocate(long ino, long offset, long length, boolean keepSize) throws IOException {
    requireWritable();
    contents.allocate(ino, offset, length, keepSize);
  }

  /**
   * The first offset at or after {@code offset} holding data; ENXIO ({@link
   * FsException.Kind#NO_SUCH_OFFSET}) if none.
   */
  public long seekData(long ino, long offset) throws IOException {
    return contents.seek(ino, offset, true);
  }

  /** The first offset at or after {@code offset} in a hole (the end of the file counts as one). */
  public long seekHole(long ino, long offset) throws IOException {
    return contents.seek(ino, offset, false);
  }

  /**
   * Copies {@code length} bytes (fewer at the source's end) from one file to another, or within one
   * file between ranges that do not overlap. Whole subtrees are shared, not copied, wherever the
   * two offsets allow it; only edges that are not leaf-aligned are copied as bytes. The copy is
   * committed before this returns. Returns the count copied.
   */
  public long copyRange(long srcIno, long srcOffset, long dstIno, long dstOffset, long length)
      throws IOException {
    requireWritable();
    return contents.copyRange(srcIno, srcOffset, dstIno, dstOffset, length);
  }

  /**
   * Commits a file's buffered writes, after the commit of it in flight, if any. When it returns,
   * everything written to the file before it was called survives a crash.
   */
  public void flush(long ino) throws IOException {
    writeBack.flush(ino);
  }

  /**
   * Makes what was written to {@code ino} durable, as {@link #flush} does, at the cost of one
   * append to the intent log and one device flush shared with the fsyncs that arrive meanwhile; the
   * changes reach the file's tree with a later commit (FORMAT.md, "Intent log"). For fsync,
   * fdatasync and close.
   */
  public void fsync(long ino) throws IOException {
    writeBack.fsync(ino);
  }

  /** Commits every file's buffered writes. */
  public void sync() throws IOException {
    writeBack.sync();
  }

  // ================================================================ snapshots (SnapshotOps)

  /**
   * Takes snapshot {@code name} of the file or directory at {@code sourcePath} ("" for the whole
   * store): flushes the files below it, then in one transaction copies its namespace records into
   * {@code .snapshots/name} (a directory's contents directly there, a file under its own name) and
   * gives each file's tree one more reference. It costs work per inode, none per byte: the snapshot
   * shares every block, and later writes copy only the paths they change.
   *
   * @throws FileAlreadyExistsException when a snapshot of that name exists
   */
  public SnapshotInfo createSnapshot(String name, String sourcePath) throws IOException {
    return snapshotOps.create(name, sourcePath);
  }

  /** Every snapshot, oldest first. */
  public List<SnapshotInfo> snapshots() throws IOException {
    return snapshotOps.list();
  }

  /**
   * Deletes snapshot {@code name}; the space only it used comes back with the next reclaim (soon,
   * in the background).
   */
  public void deleteSnapshot(String name) throws IOException {
    snapshotOps.delete(name);
  }

  /**
   * Makes {@code targetPath} equal to {@code pathInSnapshot} of snapshot {@code name}, in one
   * transaction. {@code pathInSnapshot} "" is the whole snapshot; {@code targetPath} null is where
   * it came from. A regular file restored onto a regular file keeps its inode number: open handles
   * see the snapshot's bytes (its unflushed writes are discarded). A directory's tree is made equal
   * to the snapshot's: same-named files replaced in place, others created, entries the snapshot
   * lacks removed ({@code .snapshots} excepted).
   */
  public Restored restoreSnapshot(String name, String pathInSnapshot, String targetPath)
      throws IOException {
    return snapshotOps.restore(name, pathInSnapshot, targetPath);
  }

  /**
   * {@link #restoreSnapshot(String, String, String)}, or with {@code dryRun} the very same restore
   * in a transaction that is aborted: it reports in {@link Restored#changes} what the restore would
   * change (each path: replaced, created, removed, or a directory's attributes) and changes nothing
   * (no block reference, queued decrement or file contents; unflushed writes are kept).
   */
  public Restored restoreSnapshot(
      String name, String pathInSnapshot, String targetPath, boolean dryRun) throws IOException {
    return snapshotOps.restore(name, pathInSnapshot, targetPath, dryRun);
  }

  // ================================================================ replication (Send, Receive)

  /**
   * Writes snapshot {@code name} to {@code out} as a send stream (FORMAT.md, "Send streams"): its
   * blocks, then its namespace, then a digest of it all. With {@code from} (a snapshot the receiver
   * holds) only the blocks below subtrees that differ from {@code from}'s files of the same paths.
   * Reads in short transactions; works on a read-only store. {@code progress} counts bytes.
   */
  public SendReport send(String name, String from, OutputStream out, Consumer<Progress> progress)
      throws IOException {
    return send(name, from, null, null, out, progress);
  }

  /**
   * {@link #send(String, String, OutputStream, Consumer)}, resumed after what a token says the
   * receiver holds ({@code resumeToken}, or null), or asking {@code receiver} (or null) which
   * blocks it holds and leaving those out.
   */
  public SendReport send(
      String name,
      String from,
      String resumeToken,
      BlockQuery receiver,
      OutputStream out,
      Consumer<Progress> progress)
      throws IOException {
    return send(name, from, resumeToken, receiver, false, out, progress);
  }

  /**
   * As above; {@code byReference}: the stream names the snapshot's blocks by hash instead of
   * carrying them, for a receiver that keeps its blocks in the same pool as this store ({@link
   * #poolIdentity}); StreamException when this store keeps its blocks in its LMDB.
   */
  public SendReport send(
      String name,
      String from,
      String resumeToken,
      BlockQuery receiver,
      boolean byReference,
      OutputStream out,
      Consumer<Progress> progress)
      throws IOException {
    return new Send(db, ns, blocks, snapshotOps.snapshots, geometry)
        .send(name, from, resumeToken, receiver, byReference, out, progress);
  }

  /**
   * What names the pool this store keeps its blocks in, the same from every host (for a RADOS pool
   * its name and its cluster's fsid); null for a store that keeps them in its LMDB. Two stores with
   * equal identities can send snapshots to each other by reference.
   */
  public String poolIdentity() throws IOException {
    return blocks.poolIdentity();
  }

  /**
   * Reads a send stream from {@code in} and creates its snapshot, atomically: {@link
   * StreamException} for a damaged, truncated or unsuitable stream, and then nothing of it is
   * visible (the blocks that arrived are kept for a resumed send; see {@link #abortReceive}).
   */
  public ReceiveReport receive(InputStream in, Consumer<Progress> progress) throws IOException {
    requireWritable();
    try {
      return receiver().receive(in, progress);
    } finally {
      writeBack.reclaimSoon();
    }
  }

  /** For each hash, whether this store holds the block (a receiver's answer to a two-way send). */
  public boolean[] hasBlocks(List<Hash> hashes) throws IOException {
    return db.read(
        txn -> {
          boolean[] out = new boolean[hashes.size()];
          for (int i = 0; i < out.length; i++) {
            out[i] = blocks.exists(txn, hashes.get(i));
          }
          return out;
        });
  }

  /** The receives that stopped before their end and keep the blocks that arrived. */
  public List<InterruptedReceive> interruptedReceives() throws IOException {
    return receiver().interrupted();
  }

  /** Drops the blocks an interrupted receive kept (freed by the next reclaim). */
  public void abortReceive(String token) throws IOException {
    requireWritable();
    receiver().abort(token);
    writeBack.reclaimSoon();
  }

  /**
   * What differs between snapshot {@code older} and snapshot {@code newer}, or, for {@code newer}
   * null, the live tree it was taken of (flushed first): each path added, removed, modified (with
   * the exact byte ranges that differ) or with other attributes, in path order. Paths are relative
   * to the snapshot's directory (a file snapshot's file is "/NAME"). Skips every subtree of a file
   * that is the same on both sides, so the data work is proportional to what changed.
   */
  public List<Difference> diff(String older, String newer) throws IOException {
    SnapshotInfo o = db.read(txn -> snapshotOps.snapshots.find(txn, older));
    if (newer == null) {
      writeBack.flushBelow(o.sourcePath());
    }
    return db.read(
        txn -> new Diff(ns, blocks, geometry, txn).snapshots(snapshotOps.snapshots, o, newer));
  }

  private Receive receiver() {
    return new Receive(db, ns, blocks, snapshotOps.snapshots, geometry);
  }

  // ================================================================ maintenance (Maintenance)

  /**
   * Space figures of the file or directory tree at {@code path} (a snapshot's directory too), or of
   * the whole store for "" (snapshots included): see {@link SpaceUsage}. Exact: what {@code
   * exclusiveBytes} names is what deleting those files would free. Flushes them first. Costs work
   * per block of the files (nodes are read, leaves only looked up), never a scan of the store for
   * one file.
   */
  public SpaceUsage usage(String path) throws IOException {
    String p = Namespace.normalize(path);
    writeBack.flushBelow(p);
    return maintenance.usage(p);
  }

  /**
   * Reads every block reachable from any inode (snapshots included), rehashes it and reports each
   * damaged one per file that uses it, with the byte range it covers. Runs beside other work: it
   * reads in short transactions. {@code progress} counts blocks.
   */
  public ScrubReport scrub(Consumer<Progress> progress) throws IOException {
    return maintenance.scrub(progress);
  }

  /**
   * Checks that every reference resolves to an intact block, every count equals the references, and
   * the namespace is consistent; one line per problem, none when all is well. Works on a store in
   * use: it applies queued decrements first and accounts for any queued meanwhile, in one read
   * transaction. {@code progress} counts blocks, then inodes.
   */
  public List<String> fsck(Consumer<Progress> progress) throws IOException {
    return maintenance.fsck(progress);
  }

  /**
   * Gives the free pages of {@code data.mdb} back to the disk: a compacted copy is written next to
   * it and renamed over it. Works on a store in use: readers go on, writers wait for the copy (at
   * worst a few seconds per GiB). Needs room on the disk for the copy, else {@link
   * StoreFullException} and nothing changed.
   */
  public CompactResult compact(Consumer<Progress> progress) throws IOException {
    return maintenance.compact(progress);
  }

  /**
   * Frees every block that nothing references any more; returns how many decrements it applied.
   * Each transaction applies up to {@value Maintenance#RECLAIM_BATCH} decrements; on a full disk,
   * where a transaction finds few free pages, batches shrink (down to one decrement) and grow again
   * as the pages they free become usable.
   */
  public long reclaim() throws IOException {
    return maintenance.reclaim();
  }

  /**
   * For a store whose blocks are in a pool: releases the pool references this store holds but does
   * not record (taken for a block whose transaction then failed, or before a crash), after a
   * reclaim. Lists the whole pool (one round trip per object); returns how many it released. A
   * store whose blocks are in its LMDB has none.
   */
  public long reconcile() throws IOException {
    return reconcile(p -> {});
  }

  /**
   * {@link #reconcile()}, telling {@code progress} how far it has come: phase "list" counts the
   * blocks of the pool this store holds as they are found (total 0 until the listing ends), phase
   * "release" the blocks checked against the store's counts.
   */
  public long reconcile(Consumer<Progress> progress) throws IOException {
    return maintenance.reconcile(progress);
  }

  /** Flushes everything, stops the background work and closes the store. */
  @Override
  public void close() throws IOException {
    if (writeBack.isClosed()) {
      return;
    }
    try {
      if (!config.readOnly()) {
        sync();
      }
    } finally {
      writeBack.close();
      files.close();
      blocks.close();
      if (log != null) {
        log.close();
      }
      if (heartbeat != null) {
        heartbeat.close(); // before the lock goes: a next open's entry must not be overwritten
      }
      db.close();
      home.close();
      if (pool != null) {
        pool.close();
      }
    }
  }

  /**
   * For tests: stops as a killed process would, committing nothing: what is buffered is lost, what
   * was made durable (commits, the log up to its last flush) stays.
   */
  void abandon() throws IOException {
    if (heartbeat != null) {
      heartbeat.stop();
    }
    writeBack.abandon();
    blocks.close();
    if (log != null) {
      log.close();
    }
    db.close();
    home.close();
    if (pool != null) {
      pool.close();
    }
  }

  private void requireWritable() throws FsException {
    Checks.requireWritable(config, dir);
  }
}
