package io.dedupfs.engine;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * A dedupfs datastore: the whole namespace and every file's contents, as Merkle trees of
 * content-addressed blocks in one LMDB environment. This is the engine's only entry point; the
 * mount is a thin adapter over it. Thread-safe.
 *
 * <p>Inodes are addressed by number ({@link #ROOT} is the root directory), as the kernel does.
 * Namespace changes commit at once, atomically. Writes are buffered per file and committed by
 * {@link #flush}, {@link #sync}, a timer, or when buffered data reaches its memory limit; once a
 * flush returns, what it covered survives a crash of the process or the machine.
 *
 * <p>Errors: {@link NoSuchFileException}, {@link FileAlreadyExistsException},
 * {@link NotDirectoryException}, {@link DirectoryNotEmptyException}, {@link FsException} (with a
 * kind), {@link StoreFullException}, {@link CorruptBlockException}, {@link StoreException}.
 *
 * <p>Commits. A file's buffered changes are committed by a flush, a sync, the timer, or in the
 * background once the file buffers its share of the dirty limit (a quarter). A commit freezes the
 * file's overlay under the file's lock, then hashes and stores it without that lock (holding only
 * the file's {@link FileContent#commitLock}), so writers and readers go on meanwhile (see
 * {@link FileTree}); a flush waits for the commit in flight, then commits what is left. A writer
 * that finds the whole store's buffered data, frozen or not, at the dirty limit waits for commits
 * first (back-pressure).
 *
 * <p>Locks, in the order they are taken: a file's {@link FileContent#commitLock}, then its
 * {@link FileContent#lock} (several files: in ascending inode order, each file's pair together,
 * as a copy takes two and a restore all it may replace), then {@link Lmdb}'s writer and map
 * locks, which are held only for one transaction (or for a compact's copy and swap). No file lock
 * is taken inside a transaction, and whoever holds a file's lock waits for no commit lock.
 * Namespace operations, snapshots and their deletion take only the LMDB locks: LMDB's single
 * writer makes each of them atomic.
 *
 * <p>Snapshots live under {@link #SNAPSHOTS} in the root; nothing there can be changed through
 * this class but by {@link #deleteSnapshot} ({@link FsException.Kind#READ_ONLY} otherwise).
 */
public final class Datastore implements Closeable {
  public static final long ROOT = Namespace.ROOT;
  /** The read-only directory below the root where snapshots are, {@code .snapshots/NAME}. */
  public static final String SNAPSHOTS = Snapshots.DIR;
  public static final int RENAME_NOREPLACE = 1;
  public static final int RENAME_EXCHANGE = 2;
  public static final int XATTR_CREATE = 1;
  public static final int XATTR_REPLACE = 2;
  private static final int MAX_LINKS = 65000;
  private static final int XATTR_MAX = 64 * 1024;
  private static final int RECLAIM_BATCH = 2048;
  /** After a failed commit (a full disk), a file is not committed in the background again for this long. */
  private static final long RETRY_FAILED_NS = 1_000_000_000L;
  private static final System.Logger LOG = System.getLogger(Datastore.class.getName());

  private final Path dir;
  private final DatastoreConfig config;
  private final FileChannel lockFile;
  private final FileLock lock;
  private final Lmdb db;
  private final Geometry geometry;
  private final BlockStore blocks;
  private final Namespace ns;
  private final Snapshots snapshots;
  /** The contents of regular files in use, loaded on first use; removed (and retired) by forget. */
  private final ConcurrentHashMap<Long, FileContent> files = new ConcurrentHashMap<>();
  /**
   * Counts contents removed from {@link #files} (forget, restore): {@link #content} loads a file's
   * inode outside any lock, and loads again when a removal happened meanwhile, since what it read
   * may be contents that a restore has just replaced.
   */
  private final AtomicLong removals = new AtomicLong();
  /** Bytes of leaves and nodes buffered in every file's overlay and not frozen by a commit (each FileTree keeps it). */
  private final AtomicLong dirtyBytes = new AtomicLong();
  /** Bytes frozen by commits in flight: buffered still, until their commits end. */
  private final AtomicLong inFlightBytes = new AtomicLong();
  /** Counts commits that ended (stored or not); {@link #commitEnded} is notified at each. */
  private long commitsEnded;
  private final Object commitEnded = new Object();
  /** Runs the commits of files that reached their share of the dirty limit, so that their writers go on. */
  private final ExecutorService committer =
      Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "dedupfs-committer");
        t.setDaemon(true);
        return t;
      });
  private final ScheduledExecutorService background =
      Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "dedupfs-background");
        t.setDaemon(true);
        return t;
      });
  private volatile boolean closed;

  private Datastore(Path dir, DatastoreConfig config, boolean fresh, FileChannel lockFile, FileLock lock, long mapSize)
      throws IOException {
    this.dir = dir;
    this.config = config;
    this.lockFile = lockFile;
    this.lock = lock;
    this.db = new Lmdb(dir, config.readOnly(), fresh, mapSize);
    try {
      this.ns = new Namespace(db);
      this.geometry = new Geometry(initMeta());
      this.blocks = new LmdbBlockStore(db, geometry, config.cacheBytes());
      this.snapshots = new Snapshots(db, ns, blocks);
      if (!config.readOnly()) {
        Lmdb.removeCompactDir(dir);
        purgeOrphans();
        long period = Math.max(100, config.flushInterval().toMillis() / 2);
        background.scheduleWithFixedDelay(this::flushOld, period, period, TimeUnit.MILLISECONDS);
        background.execute(this::reclaimQuietly);
      }
    } catch (IOException | RuntimeException e) {
      background.shutdownNow();
      committer.shutdownNow();
      db.close();
      throw e;
    }
  }

  /**
   * Opens the store in {@code dir}, creating it when {@code dir} is missing or empty. Refuses a
   * directory that holds anything else, a store of another format version, and a store that
   * another process (or another open in this one) is using.
   */
  public static Datastore open(Path dir, DatastoreConfig config) throws IOException {
    return open(dir, config, Lmdb.DEFAULT_MAP_SIZE);
  }

  /** {@link #open(Path, DatastoreConfig)} with the LMDB map starting at {@code mapSize} bytes (tests make it small). */
  static Datastore open(Path dir, DatastoreConfig config, long mapSize) throws IOException {
    boolean fresh = !Files.exists(dir) || isEmptyDir(dir);
    if (fresh && config.readOnly()) {
      throw new StoreException(dir + " holds no dedupfs store, and a read-only open cannot create one");
    }
    if (!fresh && !Files.isDirectory(dir)) {
      throw new StoreException(dir + " is not a directory");
    }
    if (!fresh && !Files.exists(dir.resolve("data.mdb"))) {
      throw new StoreException(dir + " is not a dedupfs store (it is not empty and has no data.mdb)");
    }
    if (!fresh) {
      Lmdb.requireLmdbFile(dir.resolve("data.mdb"));
    }
    FileChannel ch;
    if (config.readOnly()) {
      // Shared, and with read access only: works on a read-only filesystem, and excludes a writer.
      if (!Files.exists(dir.resolve("dedupfs.lock"))) {
        throw new StoreException(dir + " is not a dedupfs store (it has no dedupfs.lock)");
      }
      ch = FileChannel.open(dir.resolve("dedupfs.lock"), StandardOpenOption.READ);
    } else {
      Files.createDirectories(dir);
      ch = FileChannel.open(dir.resolve("dedupfs.lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    }
    FileLock lock;
    try {
      lock = ch.tryLock(0, Long.MAX_VALUE, config.readOnly());
    } catch (OverlappingFileLockException e) {
      lock = null;
    }
    if (lock == null) {
      ch.close();
      throw new StoreException("the store " + dir + " is in use by another process (is it mounted already?)");
    }
    try {
      return new Datastore(dir, config, fresh, ch, lock, mapSize);
    } catch (IOException | RuntimeException e) {
      lock.release();
      ch.close();
      throw e;
    }
  }

  /** True when {@code dir} holds a dedupfs store. */
  public static boolean isStore(Path dir) {
    return Files.isRegularFile(dir.resolve("data.mdb")) && Files.exists(dir.resolve("dedupfs.lock"));
  }

  private static boolean isEmptyDir(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return false;
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.findAny().isEmpty();
    }
  }

  /** Writes the format record and the root directory into a new store; returns the store's leaf size. */
  private int initMeta() throws IOException {
    if (!db.isNew) {
      return Integer.parseInt(metaString("leafSize"));
    }
    long now = now();
    db.write(txn -> {
      putMeta(txn, "magic", Lmdb.MAGIC);
      putMeta(txn, "formatVersion", Integer.toString(Lmdb.FORMAT_VERSION));
      putMeta(txn, "leafSize", Integer.toString(config.leafSize()));
      ns.put(txn, new Inode(ROOT, Inode.S_IFDIR | 0755, 0, 0, 2, 0, now, now, now, 0, ROOT, 0, 0, 0, Hash.ZERO, ""));
      return null;
    });
    return config.leafSize();
  }

  private String metaString(String key) throws IOException {
    return db.read(txn -> db.metaString(txn, key));
  }

  private void putMeta(WriteTxn txn, String key, String value) {
    byte[] v = value.getBytes(StandardCharsets.UTF_8);
    db.meta.put(txn, Lmdb.key().put(key.getBytes(StandardCharsets.US_ASCII)).flip(), Lmdb.value(v.length).put(v).flip());
  }

  public int leafSize() {
    return geometry.leafSize;
  }

  public Path directory() {
    return dir;
  }

  // ================================================================ namespace

  public Attributes getattr(long ino) throws IOException {
    Inode i = db.read(txn -> ns.inode(txn, ino));
    return attributes(i);
  }

  public Attributes lookup(long parent, String name) throws IOException {
    checkName(name);
    Inode i = db.read(txn -> {
      requireDir(ns.inode(txn, parent));
      long[] e = ns.entry(txn, parent, name);
      if (e == null) {
        throw new NoSuchFileException(name);
      }
      return ns.inode(txn, e[0]);
    });
    return attributes(i);
  }

  /** Creates a regular file, device, fifo or socket ({@code mode} holds the type; none means a regular file). */
  public Attributes mknod(long parent, String name, int mode, long rdev, int uid, int gid) throws IOException {
    int type = mode & Inode.S_IFMT;
    if (type == Inode.S_IFDIR || type == Inode.S_IFLNK) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "mknod makes neither directories nor symlinks");
    }
    int m = type == 0 ? mode | Inode.S_IFREG : mode;
    return createEntry(parent, name, (ino, now) -> new Inode(ino, m, uid, gid, 1, 0, now, now, now, rdev, 0, 0, 0, 0, Hash.ZERO, ""));
  }

  public Attributes mkdir(long parent, String name, int mode, int uid, int gid) throws IOException {
    int m = (mode & 07777) | Inode.S_IFDIR;
    return createEntry(parent, name, (ino, now) -> new Inode(ino, m, uid, gid, 2, 0, now, now, now, 0, parent, 0, 0, 0, Hash.ZERO, ""));
  }

  public Attributes symlink(long parent, String name, String target, int uid, int gid) throws IOException {
    if (target.isEmpty() || target.getBytes(StandardCharsets.UTF_8).length > 4095) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "a symlink target has 1 to 4095 bytes");
    }
    long size = target.getBytes(StandardCharsets.UTF_8).length;
    return createEntry(parent, name,
        (ino, now) -> new Inode(ino, Inode.S_IFLNK | 0777, uid, gid, 1, size, now, now, now, 0, 0, 0, 0, 0, Hash.ZERO, target));
  }

  private interface InodeMaker {
    Inode make(long ino, long now);
  }

  private Attributes createEntry(long parent, String name, InodeMaker maker) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    Inode created = db.write(txn -> {
      Inode p = requireLiveDir(ns.inode(txn, parent));
      requireChangeable(p, parent, name);
      if (ns.entry(txn, parent, name) != null) {
        throw new FileAlreadyExistsException(name);
      }
      Inode i = maker.make(ns.allocateIno(txn), now);
      ns.put(txn, i);
      ns.putEntry(txn, parent, name, i.ino(), i.mode());
      int links = i.isDirectory() ? p.nlink() + 1 : p.nlink();
      if (links > MAX_LINKS) {
        throw new FsException(FsException.Kind.TOO_MANY_LINKS, name, "too many subdirectories");
      }
      ns.put(txn, p.withNlink(links, now).withTimes(p.atimeNs(), now, now));
      return i;
    });
    return attributes(created);
  }

  public String readlink(long ino) throws IOException {
    Inode i = db.read(txn -> ns.inode(txn, ino));
    if (!i.isSymlink()) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "not a symlink");
    }
    return i.target();
  }

  public Attributes link(long ino, long newParent, String newName) throws IOException {
    requireWritable();
    checkName(newName);
    long now = now();
    Inode linked = db.write(txn -> {
      Inode i = ns.inode(txn, ino);
      requireChangeable(i);
      if (i.isDirectory()) {
        throw new FsException(FsException.Kind.NOT_PERMITTED, newName, "hard links to directories are not allowed");
      }
      if (i.nlink() == 0) {
        throw new NoSuchFileException("inode " + ino, null, "it has no name left to link to");
      }
      if (i.nlink() >= MAX_LINKS) {
        throw new FsException(FsException.Kind.TOO_MANY_LINKS, newName, "too many links");
      }
      Inode p = requireLiveDir(ns.inode(txn, newParent));
      requireChangeable(p, newParent, newName);
      if (ns.entry(txn, newParent, newName) != null) {
        throw new FileAlreadyExistsException(newName);
      }
      ns.putEntry(txn, newParent, newName, ino, i.mode());
      ns.put(txn, p.withTimes(p.atimeNs(), now, now));
      Inode l = i.withNlink(i.nlink() + 1, now);
      ns.put(txn, l);
      return l;
    });
    return attributes(linked);
  }

  public void unlink(long parent, String name) throws IOException {
    removeEntry(parent, name, false);
  }

  public void rmdir(long parent, String name) throws IOException {
    removeEntry(parent, name, true);
  }

  private void removeEntry(long parent, String name, boolean directory) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    db.write(txn -> {
      Inode p = requireDir(ns.inode(txn, parent));
      requireChangeable(p, parent, name);
      long[] e = ns.entry(txn, parent, name);
      if (e == null) {
        throw new NoSuchFileException(name);
      }
      Inode victim = ns.inode(txn, e[0]);
      if (directory && !victim.isDirectory()) {
        throw new NotDirectoryException(name);
      }
      if (!directory && victim.isDirectory()) {
        throw new FsException(FsException.Kind.IS_DIRECTORY, name, "is a directory");
      }
      if (directory && !ns.isEmpty(txn, victim.ino())) {
        throw new DirectoryNotEmptyException(name);
      }
      ns.deleteEntry(txn, parent, name);
      dropLink(txn, victim, now);
      int links = directory ? p.nlink() - 1 : p.nlink();
      ns.put(txn, p.withNlink(links, now).withTimes(p.atimeNs(), now, now));
      return null;
    });
  }

  /** One name of {@code victim} is gone; with none left it becomes an orphan until {@link #forget}. */
  private void dropLink(WriteTxn txn, Inode victim, long now) {
    int links = victim.isDirectory() ? 0 : victim.nlink() - 1;
    ns.put(txn, victim.withNlink(links, now));
    if (links == 0) {
      ns.markOrphan(txn, victim.ino());
    }
  }

  public void rename(long parent, String name, long newParent, String newName, int flags) throws IOException {
    requireWritable();
    checkName(name);
    checkName(newName);
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0
        || flags == (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "unknown rename flags " + flags);
    }
    long now = now();
    db.write(txn -> {
      requireChangeable(requireDir(ns.inode(txn, parent)), parent, name);
      requireChangeable(requireLiveDir(ns.inode(txn, newParent)), newParent, newName);
      long[] se = ns.entry(txn, parent, name);
      if (se == null) {
        throw new NoSuchFileException(name);
      }
      Inode s = ns.inode(txn, se[0]);
      long[] de = ns.entry(txn, newParent, newName);
      if ((flags & RENAME_EXCHANGE) != 0) {
        if (de == null) {
          throw new NoSuchFileException(newName);
        }
        Inode d = ns.inode(txn, de[0]);
        if (s.isDirectory()) {
          requireNotInside(txn, newParent, s.ino(), name);
        }
        if (d.isDirectory()) {
          requireNotInside(txn, parent, d.ino(), newName);
        }
        ns.putEntry(txn, parent, name, d.ino(), d.mode());
        ns.putEntry(txn, newParent, newName, s.ino(), s.mode());
        moveDir(txn, s, parent, newParent, now);
        moveDir(txn, d, newParent, parent, now);
        ns.put(txn, ns.inode(txn, s.ino()).touched(now));
        ns.put(txn, ns.inode(txn, d.ino()).touched(now));
        touchDirs(txn, parent, newParent, now);
        return null;
      }
      if (parent == newParent && name.equals(newName)) {
        return null;
      }
      if (de != null && (flags & RENAME_NOREPLACE) != 0) {
        throw new FileAlreadyExistsException(newName);
      }
      if (s.isDirectory()) {
        requireNotInside(txn, newParent, s.ino(), name);
      }
      if (de != null) {
        if (de[0] == s.ino()) {
          return null; // two names of one inode: POSIX says rename does nothing
        }
        Inode d = ns.inode(txn, de[0]);
        if (s.isDirectory() && !d.isDirectory()) {
          throw new NotDirectoryException(newName);
        }
        if (!s.isDirectory() && d.isDirectory()) {
          throw new FsException(FsException.Kind.IS_DIRECTORY, newName, "is a directory");
        }
        if (d.isDirectory()) {
          if (!ns.isEmpty(txn, d.ino())) {
            throw new DirectoryNotEmptyException(newName);
          }
          Inode np = ns.inode(txn, newParent);
          ns.put(txn, np.withNlink(np.nlink() - 1, now));
        }
        dropLink(txn, d, now);
      }
      ns.deleteEntry(txn, parent, name);
      ns.putEntry(txn, newParent, newName, s.ino(), s.mode());
      moveDir(txn, s, parent, newParent, now);
      ns.put(txn, ns.inode(txn, s.ino()).touched(now));
      touchDirs(txn, parent, newParent, now);
      return null;
    });
  }

  /** A directory moved from {@code from} to {@code to}: its ".." and both link counts follow. */
  private void moveDir(WriteTxn txn, Inode moved, long from, long to, long now) throws IOException {
    if (!moved.isDirectory() || from == to) {
      return;
    }
    ns.put(txn, ns.inode(txn, moved.ino()).withParent(to, now));
    Inode f = ns.inode(txn, from);
    ns.put(txn, f.withNlink(f.nlink() - 1, now));
    Inode t = ns.inode(txn, to);
    ns.put(txn, t.withNlink(t.nlink() + 1, now));
  }

  private void touchDirs(WriteTxn txn, long a, long b, long now) throws IOException {
    Inode x = ns.inode(txn, a);
    ns.put(txn, x.withTimes(x.atimeNs(), now, now));
    if (b != a) {
      Inode y = ns.inode(txn, b);
      ns.put(txn, y.withTimes(y.atimeNs(), now, now));
    }
  }

  /** Refuses to move directory {@code moved} into itself or below it (EINVAL, as ext4). */
  private void requireNotInside(ReadTxn txn, long target, long moved, String name) throws IOException {
    for (long d = target; ; d = ns.inode(txn, d).parent()) {
      if (d == moved) {
        throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "a directory cannot move below itself");
      }
      if (d == ROOT) {
        return;
      }
    }
  }

  public Attributes setattr(long ino, SetAttributes change) throws IOException {
    requireWritable();
    long now = now();
    Inode before = db.read(txn -> ns.inode(txn, ino));
    requireChangeable(before);
    if (change.size() != null) {
      truncate(before, change.size());
    } else if (before.isRegular()) {
      flush(ino); // so that the pending write times do not overwrite what is set here
    }
    db.write(txn -> {
      Inode i = ns.inode(txn, ino);
      int mode = change.mode() == null ? i.mode() : (i.mode() & Inode.S_IFMT) | (change.mode() & 07777);
      int uid = change.uid() == null ? i.uid() : change.uid();
      int gid = change.gid() == null ? i.gid() : change.gid();
      long atime = change.atimeNs() == null ? i.atimeNs() : change.atimeNs() == SetAttributes.NOW ? now : change.atimeNs();
      long mtime = change.mtimeNs() == null ? i.mtimeNs() : change.mtimeNs() == SetAttributes.NOW ? now : change.mtimeNs();
      long ctime = change.ctimeNs() == null ? now : change.ctimeNs();
      ns.put(txn, i.withOwner(mode, uid, gid, ctime).withTimes(atime, mtime, ctime));
      return null;
    });
    return getattr(ino);
  }

  private void truncate(Inode i, long size) throws IOException {
    if (i.isDirectory()) {
      throw new FsException(FsException.Kind.IS_DIRECTORY, "inode " + i.ino(), "is a directory");
    }
    if (!i.isRegular() || size < 0) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + i.ino(), "cannot truncate this to " + size);
    }
    if (size > Geometry.MAX_FILE_SIZE) {
      throw new FsException(FsException.Kind.FILE_TOO_BIG, "inode " + i.ino(), "beyond the largest file size");
    }
    withContent(i.ino(), true, fc -> {
      db.read(txn -> {
        fc.tree.truncate(txn, size);
        return null;
      });
      fc.touch(now());
      return null;
    });
    flush(i.ino());
  }

  /**
   * Up to {@code max} entries of a directory, starting at {@code offset} (0 for the start, else
   * the {@link DirEntry#nextOffset} of the last entry seen). "." and ".." come first.
   */
  public List<DirEntry> readdir(long ino, long offset, int max) throws IOException {
    return db.read(txn -> {
      Inode d = requireDir(ns.inode(txn, ino));
      List<DirEntry> out = new ArrayList<>();
      if (offset < 1 && out.size() < max) {
        out.add(new DirEntry(".", ino, Inode.S_IFDIR, 1));
      }
      if (offset < 2 && out.size() < max) {
        out.add(new DirEntry("..", d.parent(), Inode.S_IFDIR, 2));
      }
      out.addAll(ns.list(txn, ino, Math.max(offset, Namespace.FIRST_COOKIE), max - out.size()));
      return out;
    });
  }

  // ---- extended attributes

  public byte[] getxattr(long ino, String name) throws IOException {
    byte[] v = db.read(txn -> {
      ns.inode(txn, ino);
      return ns.xattr(txn, ino, name);
    });
    if (v == null) {
      throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
    }
    return v;
  }

  public List<String> listxattr(long ino) throws IOException {
    return db.read(txn -> {
      ns.inode(txn, ino);
      return ns.xattrNames(txn, ino);
    });
  }

  public void setxattr(long ino, String name, byte[] value, int flags) throws IOException {
    requireWritable();
    if (name.isEmpty() || name.getBytes(StandardCharsets.UTF_8).length > Namespace.NAME_MAX) {
      throw new FsException(FsException.Kind.NAME_TOO_LONG, name, "an attribute name has 1 to 255 bytes");
    }
    if (value.length > XATTR_MAX) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "attribute values are limited to 64 KiB");
    }
    long now = now();
    db.write(txn -> {
      Inode i = requireChangeable(ns.inode(txn, ino));
      boolean exists = ns.xattr(txn, ino, name) != null;
      if (exists && (flags & XATTR_CREATE) != 0) {
        throw new FsException(FsException.Kind.ATTRIBUTE_EXISTS, name, "attribute exists");
      }
      if (!exists && (flags & XATTR_REPLACE) != 0) {
        throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
      }
      ns.putXattr(txn, ino, name, value);
      ns.put(txn, i.touched(now));
      return null;
    });
  }

  public void removexattr(long ino, String name) throws IOException {
    requireWritable();
    long now = now();
    db.write(txn -> {
      Inode i = requireChangeable(ns.inode(txn, ino));
      if (!ns.deleteXattr(txn, ino, name)) {
        throw new FsException(FsException.Kind.NO_SUCH_ATTRIBUTE, name, "no such attribute");
      }
      ns.put(txn, i.touched(now));
      return null;
    });
  }

  /**
   * The kernel holds no more references to {@code ino}: if no name is left for it, it is deleted
   * and its contents' blocks are freed in the background.
   */
  public void forget(long ino) throws IOException {
    if (config.readOnly() || ino == ROOT) {
      return;
    }
    boolean deleted = db.write(txn -> {
      Inode i;
      try {
        i = ns.inode(txn, ino);
      } catch (NoSuchFileException e) {
        return false;
      }
      if (i.nlink() > 0) {
        return false;
      }
      ns.delete(txn, ino);
      blocks.decref(txn, i.root());
      return true;
    });
    FileContent fc = files.get(ino);
    if (fc != null) {
      fc.lock.writeLock().lock();
      try {
        if (deleted || !fc.busy()) { // a clean one is loaded again when needed
          retire(fc);
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
    if (deleted) {
      background.execute(this::reclaimQuietly);
    }
  }

  private void purgeOrphans() throws IOException {
    for (long ino : db.read(ns::orphans)) {
      forget(ino);
    }
  }

  public StoreStats stats() throws IOException {
    long inodes = db.read(ns::inodeCount);
    long used = db.usedBytes();
    return new StoreStats(used, Files.getFileStore(dir).getUsableSpace(), inodes, geometry.leafSize);
  }

  // ================================================================ contents

  public int read(long ino, long offset, ByteBuffer dst) throws IOException {
    requireOffset(offset);
    return withContent(ino, false, fc -> db.read(txn -> fc.tree.read(txn, offset, dst)));
  }

  /**
   * Writes all of {@code src} at {@code offset}; returns the count written. The data is buffered
   * until a flush. A file whose buffered data reaches its share of the dirty limit is committed
   * in the background while its writers go on. A writer that finds the store's buffered data
   * (including commits in flight) at the dirty limit waits for commits to make room first; on a
   * full disk such a commit fails and this write is refused with {@link StoreFullException}
   * before it changes anything, while what was buffered stays buffered (and readable) until a
   * flush finds room.
   */
  public int write(long ino, long offset, ByteBuffer src) throws IOException {
    requireWritable();
    requireOffset(offset);
    int n = src.remaining();
    if (n == 0) {
      return 0;
    }
    if (offset + n > Geometry.MAX_FILE_SIZE) {
      throw new FsException(FsException.Kind.FILE_TOO_BIG, "inode " + ino, "beyond the largest file size");
    }
    while (true) {
      FileContent fc = content(ino);
      requireChangeable(fc);
      if (dirtyBytes.get() + inFlightBytes.get() >= config.dirtyLimitBytes()) {
        makeRoom(fc); // room first: when the disk is full, the write is refused before it changes anything
      }
      fc.lock.writeLock().lock();
      try {
        if (fc.retired) {
          continue;
        }
        db.read(txn -> {
          fc.tree.write(txn, offset, src);
          return null;
        });
        fc.touch(now());
        if (fc.tree.dirtyBytes() >= fileShare()) {
          scheduleCommit(fc);
        }
        return n;
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
  }

  /** How much one file may buffer before it is committed in the background. */
  private long fileShare() {
    return config.dirtyLimitBytes() / 4;
  }

  /**
   * Waits until the store's buffered data is below the dirty limit: for commits in flight to end,
   * or, when none is, by committing the writer's own file (or else the file that buffers most)
   * itself. Throws what such a commit throws, and {@link StoreFullException} when a commit of
   * this file ended in a full disk while the limit is reached. Holds no lock.
   */
  private void makeRoom(FileContent fc) throws IOException {
    long limit = config.dirtyLimitBytes();
    while (dirtyBytes.get() + inFlightBytes.get() >= limit) {
      if (inFlightBytes.get() > 0) {
        long seen;
        synchronized (commitEnded) {
          seen = commitsEnded;
        }
        kickCommits();
        synchronized (commitEnded) {
          while (commitsEnded == seen && inFlightBytes.get() > 0) {
            try {
              commitEnded.wait(100);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new java.io.InterruptedIOException("interrupted while waiting for room in the dirty limit");
            }
          }
        }
        if (fc.lastFailure instanceof StoreFullException full) {
          throw new StoreFullException(full.getMessage(), full);
        }
        continue;
      }
      FileContent victim = fc.tree.dirtyBytes() > 0 || fc.isDirty() ? fc : largestDirty();
      if (victim != null) {
        commitFile(victim);
      }
      return;
    }
  }

  /** Makes sure the files that buffer the most have background commits coming. */
  private void kickCommits() {
    FileContent largest = largestDirty();
    if (largest != null) {
      largest.lock.writeLock().lock();
      try {
        scheduleCommit(largest);
      } finally {
        largest.lock.writeLock().unlock();
      }
    }
  }

  /** The loaded file with the most unfrozen buffered data, or null when none has any (read without locks: a hint). */
  private FileContent largestDirty() {
    FileContent best = null;
    long most = 0;
    for (FileContent fc : files.values()) {
      long b = fc.tree.dirtyBytes();
      if (b > most) {
        most = b;
        best = fc;
      }
    }
    return best;
  }

  /**
   * Queues a background commit of fc unless one is queued or running, or its last commit failed
   * less than a second ago (a full disk: writers then meet the dirty limit and are told). Caller
   * holds fc's write lock.
   */
  private void scheduleCommit(FileContent fc) {
    if (fc.commitScheduled || closed || (fc.failedAt != 0 && System.nanoTime() - fc.failedAt < RETRY_FAILED_NS)) {
      return;
    }
    fc.commitScheduled = true;
    try {
      committer.execute(() -> backgroundCommit(fc));
    } catch (java.util.concurrent.RejectedExecutionException e) {
      fc.commitScheduled = false; // closing
    }
  }

  /** Commits fc, again while it has reached its share meanwhile. */
  private void backgroundCommit(FileContent fc) {
    while (true) {
      boolean failed = false;
      try {
        commitFile(fc);
      } catch (IOException | RuntimeException e) {
        failed = true;
        LOG.log(System.Logger.Level.DEBUG, "background commit of inode " + fc.ino + " failed; its data stays buffered", e);
      }
      fc.lock.writeLock().lock();
      try {
        if (failed || closed || fc.retired || fc.tree.dirtyBytes() < fileShare()) {
          fc.commitScheduled = false;
          return;
        }
      } finally {
        fc.lock.writeLock().unlock();
      }
    }
  }

  /** Deallocates {@code [offset, offset + length)}: it reads as zeros and costs no space. The size stays. */
  public void punchHole(long ino, long offset, long length) throws IOException {
    changeContent(ino, offset, length, false, (txn, tree) -> tree.zero(txn, offset, offset + length));
  }

  /** Zeroes {@code [offset, offset + length)}, growing the file unless {@code keepSize}. */
  public void zeroRange(long ino, long offset, long length, boolean keepSize) throws IOException {
    changeContent(ino, offset, length, !keepSize, (txn, tree) -> tree.zero(txn, offset, offset + length));
  }

  /**
   * fallocate's default mode: grows the file to {@code offset + length} unless {@code keepSize}.
   * Space cannot be reserved in a deduplicating store (what a write will need depends on what it
   * writes), so nothing is reserved; a later write can still find the disk full.
   */
  public void allocate(long ino, long offset, long length, boolean keepSize) throws IOException {
    changeContent(ino, offset, length, !keepSize, (txn, tree) -> {});
  }

  private interface TreeChange {
    void apply(ReadTxn txn, FileTree tree) throws IOException;
  }

  private void changeContent(long ino, long offset, long length, boolean grow, TreeChange change) throws IOException {
    requireWritable();
    requireOffset(offset);
    if (length <= 0) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "length must be positive");
    }
    if (offset + length > Geometry.MAX_FILE_SIZE) {
      throw new FsException(FsException.Kind.FILE_TOO_BIG, "inode " + ino, "beyond the largest file size");
    }
    withContent(ino, true, fc -> {
      requireChangeable(fc);
      db.read(txn -> {
        change.apply(txn, fc.tree);
        if (grow && offset + length > fc.tree.length()) {
          fc.tree.truncate(txn, offset + length);
        }
        return null;
      });
      fc.touch(now());
      return null;
    });
  }

  /** The first offset at or after {@code offset} holding data; ENXIO ({@link FsException.Kind#NO_SUCH_OFFSET}) if none. */
  public long seekData(long ino, long offset) throws IOException {
    return seek(ino, offset, true);
  }

  /** The first offset at or after {@code offset} in a hole (the end of the file counts as one). */
  public long seekHole(long ino, long offset) throws IOException {
    return seek(ino, offset, false);
  }

  private long seek(long ino, long offset, boolean data) throws IOException {
    requireOffset(offset);
    long r = withContent(ino, false, fc -> db.read(txn -> fc.tree.seek(txn, offset, data)));
    if (r < 0) {
      throw new FsException(FsException.Kind.NO_SUCH_OFFSET, "inode " + ino, "no " + (data ? "data" : "hole") + " at or after " + offset);
    }
    return r;
  }

  /**
   * Copies {@code length} bytes (fewer at the source's end) from one file to another, or within
   * one file between ranges that do not overlap. Whole subtrees are shared, not copied, wherever
   * the two offsets allow it; only edges that are not leaf-aligned are copied as bytes. The copy
   * is committed before this returns. Returns the count copied.
   */
  public long copyRange(long srcIno, long srcOffset, long dstIno, long dstOffset, long length) throws IOException {
    requireWritable();
    requireOffset(srcOffset);
    requireOffset(dstOffset);
    while (true) {
      FileContent src = content(srcIno);
      FileContent dst = content(dstIno);
      List<FileContent> both = src == dst ? List.of(src) : srcIno < dstIno ? List.of(src, dst) : List.of(dst, src);
      List<FileContent> locked = new ArrayList<>();
      try {
        for (FileContent fc : both) {
          lockForCommit(fc);
          locked.add(fc);
        }
        if (!src.retired && !dst.retired) {
          return copyLocked(src, srcOffset, dst, dstOffset, length);
        }
      } finally {
        unlockAll(locked);
      }
    }
  }

  /** Takes fc's commit lock, then its write lock: no commit of it is in flight until {@link #unlockAll}. */
  private static void lockForCommit(FileContent fc) {
    fc.commitLock.lock();
    fc.lock.writeLock().lock();
  }

  /** Undoes {@link #lockForCommit} of each, in reverse order. */
  private static void unlockAll(List<FileContent> locked) {
    for (int i = locked.size() - 1; i >= 0; i--) {
      FileContent fc = locked.get(i);
      fc.lock.writeLock().unlock();
      fc.commitLock.unlock();
    }
  }

  /** {@link #copyRange} with both files' commit locks and locks held. */
  private long copyLocked(FileContent src, long srcOffset, FileContent dst, long dstOffset, long length)
      throws IOException {
    requireChangeable(dst);
    long n = Math.min(length, Math.max(0, src.tree.length() - srcOffset));
    if (n == 0) {
      return 0;
    }
    if (src == dst && srcOffset < dstOffset + n && dstOffset < srcOffset + n) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + src.ino, "overlapping copy within one file");
    }
    if (dstOffset + n > Geometry.MAX_FILE_SIZE) {
      throw new FsException(FsException.Kind.FILE_TOO_BIG, "inode " + dst.ino, "beyond the largest file size");
    }
    commitLocked(src, true);
    commitLocked(dst, true); // so that a copy that fails can be undone by discarding dst's changes
    try {
      new RangeCopy(geometry, db, src.tree, dst.tree, srcOffset, dstOffset, n).run();
      dst.touch(now());
      commitLocked(dst, true); // now: the shared subtrees are counted for the source only until dst counts them
    } catch (IOException | RuntimeException e) {
      // dst's overlay may name blocks of src that only this commit would have counted: drop it
      dst.tree.discard();
      dst.timesChanged = false;
      dst.timesDirty = false;
      throw e;
    }
    return n;
  }

  /**
   * Commits a file's buffered writes, after the commit of it in flight, if any. When it returns,
   * everything written to the file before it was called survives a crash.
   */
  public void flush(long ino) throws IOException {
    FileContent fc = files.get(ino);
    if (fc != null) {
      commitFile(fc);
    }
  }

  /** Commits every file's buffered writes. */
  public void sync() throws IOException {
    for (long ino : files.keySet()) {
      flush(ino);
    }
  }

  /** One whole commit of fc: waits for the one in flight, then freezes, stores and settles what is buffered. Holds no lock of fc. */
  private void commitFile(FileContent fc) throws IOException {
    fc.commitLock.lock();
    try {
      commitLocked(fc, false);
    } finally {
      fc.commitLock.unlock();
    }
  }

  /** What a commit froze of a file, beside its tree: the times to store, and what to give back if it fails. */
  private record Frozen(TreeCommit tree, boolean times, long mtimeNs, long ctimeNs, long touches, long dirtySince) {}

  /**
   * Commits fc's buffered changes. The caller holds fc's commit lock; with {@code holding}, also
   * fc's write lock, kept throughout. Otherwise the write lock is taken only to freeze the
   * overlay and to settle it afterwards: hashing and the durable transaction run without it,
   * while writers change copies of what is frozen and readers still read it. On failure the
   * frozen changes are buffered again (nothing is lost) and the failure is thrown.
   */
  private void commitLocked(FileContent fc, boolean holding) throws IOException {
    Lock w = fc.lock.writeLock();
    Frozen f;
    if (!holding) {
      w.lock();
    }
    try {
      if (fc.retired || !fc.isDirty()) {
        return;
      }
      TreeCommit c = db.read(fc.tree::freeze);
      f = new Frozen(c, fc.timesChanged, fc.mtimeNs, fc.ctimeNs, fc.touches, fc.dirtySince);
      fc.timesChanged = false;
      inFlightBytes.addAndGet(c.bytes);
    } finally {
      if (!holding) {
        w.unlock();
      }
    }
    boolean applied = false;
    Throwable failure = null;
    CommitHook hook = commitHook;
    try {
      if (hook != null) {
        hook.frozen(fc.ino);
      }
      TreeCommit c = f.tree();
      c.hash();
      applied = db.write(txn -> {
        Inode i;
        try {
          i = ns.inode(txn, fc.ino);
        } catch (NoSuchFileException gone) {
          return false;
        }
        c.apply(txn);
        ns.put(txn, i.withContent(c.root(), c.newHeight, c.length,
            f.times() ? f.mtimeNs() : i.mtimeNs(), f.times() ? f.ctimeNs() : i.ctimeNs()));
        return true;
      });
    } catch (IOException | RuntimeException | Error e) {
      failure = e;
    }
    if (!holding) {
      w.lock();
    }
    try {
      if (applied) {
        fc.tree.finish(f.tree());
        if (fc.touches == f.touches()) {
          fc.timesDirty = false;
        }
        fc.failedAt = 0;
        fc.lastFailure = null;
      } else {
        fc.tree.rollback(f.tree());
        fc.timesChanged |= f.times();
        fc.dirtySince = f.dirtySince();
        if (fc.retired) {
          fc.tree.release(); // nobody counts a retired file's buffer
        }
        if (failure != null) {
          fc.failedAt = Math.max(1, System.nanoTime());
          fc.lastFailure = failure instanceof Exception e ? e : new IOException(failure);
        }
      }
    } finally {
      inFlightBytes.addAndGet(-f.tree().bytes);
      if (!holding) {
        w.unlock();
      }
      synchronized (commitEnded) {
        commitsEnded++;
        commitEnded.notifyAll();
      }
      if (hook != null) {
        hook.ended(fc.ino, applied);
      }
    }
    if (failure instanceof IOException e) {
      throw e;
    } else if (failure instanceof RuntimeException e) {
      throw e;
    } else if (failure instanceof Error e) {
      throw e;
    }
    if (applied) {
      reclaimSoon();
    }
  }

  /** Queues a reclaim in the background (none once the store is closing). */
  private void reclaimSoon() {
    try {
      background.execute(this::reclaimQuietly);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing: the next open reclaims
    }
  }

  // ================================================================ paths

  /** The inode at {@code path} ("/"-separated, relative to the root, "" for the root); symlinks are not followed. */
  public long resolve(String path) throws IOException {
    return db.read(txn -> ns.resolve(txn, path));
  }

  /** A path of {@code ino} (one of its names), for reports; NoSuchFileException if it has none. Reads every entry. */
  public String pathOf(long ino) throws IOException {
    return db.read(txn -> {
      ns.inode(txn, ino);
      String p = ns.paths(txn, Set.of(ino)).get(ino);
      if (p == null) {
        throw new NoSuchFileException("inode " + ino, null, "it has no name (unlinked while open)");
      }
      return p;
    });
  }

  /** The regular files at or below {@code top}, each once, by inode number; the root's {@code .snapshots} is left out. */
  private SortedMap<Long, Inode> regularFilesBelow(ReadTxn txn, long top) throws IOException {
    SortedMap<Long, Inode> out = new TreeMap<>();
    Inode t = ns.inode(txn, top);
    if (t.isRegular()) {
      out.put(top, t);
    }
    Deque<Long> dirs = new ArrayDeque<>();
    if (t.isDirectory()) {
      dirs.push(top);
    }
    while (!dirs.isEmpty()) {
      long d = dirs.pop();
      for (DirEntry e : ns.listAll(txn, d)) {
        if (e.mode() == Inode.S_IFDIR && !(d == ROOT && e.name().equals(SNAPSHOTS))) {
          dirs.push(e.ino());
        } else if (e.mode() == Inode.S_IFREG && !out.containsKey(e.ino())) {
          out.put(e.ino(), ns.inode(txn, e.ino()));
        }
      }
    }
    return out;
  }

  /** Commits the buffered writes of every file at or below {@code path}. */
  private void flushBelow(String path) throws IOException {
    if (config.readOnly()) {
      return;
    }
    if (path.isEmpty()) {
      sync();
      return;
    }
    for (long ino : db.read(txn -> regularFilesBelow(txn, ns.resolve(txn, path))).keySet()) {
      if (files.containsKey(ino)) {
        flush(ino);
      }
    }
  }

  // ================================================================ snapshots

  /**
   * Takes snapshot {@code name} of the file or directory at {@code sourcePath} ("" for the whole
   * store): flushes the files below it, then in one transaction copies its namespace records into
   * {@code .snapshots/name} (a directory's contents directly there, a file under its own name)
   * and gives each file's tree one more reference. It costs work per inode, none per byte: the
   * snapshot shares every block, and later writes copy only the paths they change.
   *
   * @throws FileAlreadyExistsException when a snapshot of that name exists
   */
  public SnapshotInfo createSnapshot(String name, String sourcePath) throws IOException {
    requireWritable();
    checkName(name);
    String source = Namespace.normalize(sourcePath);
    flushBelow(source);
    long now = now();
    return db.write(txn -> snapshots.create(txn, name, source, now));
  }

  /** Every snapshot, oldest first. */
  public List<SnapshotInfo> snapshots() throws IOException {
    return db.read(snapshots::list);
  }

  /** Deletes snapshot {@code name}; the space only it used comes back with the next reclaim (soon, in the background). */
  public void deleteSnapshot(String name) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    db.write(txn -> {
      snapshots.delete(txn, name, now, files::containsKey);
      return null;
    });
    background.execute(this::reclaimQuietly);
  }

  /**
   * Makes {@code targetPath} equal to {@code pathInSnapshot} of snapshot {@code name}, in one
   * transaction. {@code pathInSnapshot} "" is the whole snapshot; {@code targetPath} null is where
   * it came from. A regular file restored onto a regular file keeps its inode number: open
   * handles see the snapshot's bytes (its unflushed writes are discarded). A directory's tree is
   * made equal to the snapshot's: same-named files replaced in place, others created, entries the
   * snapshot lacks removed ({@code .snapshots} excepted).
   */
  public Restored restoreSnapshot(String name, String pathInSnapshot, String targetPath) throws IOException {
    requireWritable();
    checkName(name);
    String inSnapshot = Namespace.normalize(pathInSnapshot == null ? "" : pathInSnapshot);
    RestorePlan plan = db.read(txn -> planRestore(txn, name, inSnapshot, targetPath, true));
    Set<Long> openBefore = new HashSet<>();
    for (long ino : plan.files()) {
      if (files.containsKey(ino)) {
        openBefore.add(ino);
      }
    }
    List<FileContent> locked = lockContents(plan.files());
    try {
      Set<Long> lockedInos = new HashSet<>();
      Set<Long> dirty = new HashSet<>();
      for (FileContent fc : locked) {
        lockedInos.add(fc.ino);
        if (fc.isDirty()) {
          dirty.add(fc.ino);
        }
      }
      long now = now();
      Restored r = db.write(txn -> {
        RestorePlan p = planRestore(txn, name, inSnapshot, targetPath, false); // as it is now
        Restore restore = new Restore(ns, blocks, txn, now, lockedInos::contains, dirty::contains,
            ino -> files.containsKey(ino) && (!lockedInos.contains(ino) || openBefore.contains(ino) || dirty.contains(ino)));
        return restore.run(ns.inode(txn, p.source()), p.targetParent(), p.targetName());
      });
      Set<Long> replaced = new HashSet<>(r.changedInodes());
      for (FileContent fc : locked) {
        if (replaced.contains(fc.ino) || (!openBefore.contains(fc.ino) && !fc.isDirty())) {
          retire(fc); // its overlay (discarded) and tree are of the old contents; whoever comes next loads the new
        }
      }
      background.execute(this::reclaimQuietly);
      return r;
    } finally {
      unlockAll(locked);
    }
  }

  /**
   * What a restore works on: the snapshot inode, the target's directory and name (directory 0:
   * the root itself), and the regular files now at or below the target, which it may replace in
   * place.
   */
  private record RestorePlan(long source, long targetParent, String targetName, SortedSet<Long> files) {}

  private RestorePlan planRestore(ReadTxn txn, String name, String inSnapshot, String targetPath,
      boolean withFiles) throws IOException {
    SnapshotInfo info = snapshots.find(txn, name);
    long source;
    String target;
    if (info.directory()) {
      source = ns.resolve(txn, info.ino(), inSnapshot);
      target = targetPath != null ? targetPath : (info.sourcePath().isEmpty() ? inSnapshot
          : inSnapshot.isEmpty() ? info.sourcePath() : info.sourcePath() + "/" + inSnapshot);
    } else {
      List<DirEntry> only = ns.listAll(txn, info.ino());
      if (only.size() != 1 || !(inSnapshot.isEmpty() || inSnapshot.equals(only.get(0).name()))) {
        throw new NoSuchFileException(inSnapshot, null, "snapshot " + name + " holds the file " + only.get(0).name() + " only");
      }
      source = only.get(0).ino();
      target = targetPath != null ? targetPath : info.sourcePath();
    }
    List<String> parts = Namespace.components(target);
    if (parts.isEmpty()) {
      return new RestorePlan(source, 0, "", withFiles ? new TreeSet<>(regularFilesBelow(txn, ROOT).keySet()) : new TreeSet<>());
    }
    String last = parts.get(parts.size() - 1);
    checkName(last);
    long parent = ns.resolve(txn, String.join("/", parts.subList(0, parts.size() - 1)));
    requireDir(ns.inode(txn, parent));
    long[] e = ns.entry(txn, parent, last);
    SortedSet<Long> below = e == null || !withFiles ? new TreeSet<>() : new TreeSet<>(regularFilesBelow(txn, e[0]).keySet());
    return new RestorePlan(source, parent, last, below);
  }

  /** Loads the contents of each of {@code inos} (regular files) and takes their commit locks and write locks in ascending order, the lock order; skips files gone meanwhile. */
  private List<FileContent> lockContents(SortedSet<Long> inos) throws IOException {
    List<FileContent> out = new ArrayList<>();
    try {
      for (long ino : inos) {
        while (true) {
          FileContent fc;
          try {
            fc = content(ino);
          } catch (NoSuchFileException gone) {
            break;
          }
          lockForCommit(fc);
          if (!fc.retired) {
            out.add(fc);
            break;
          }
          unlockAll(List.of(fc));
        }
      }
    } catch (IOException | RuntimeException e) {
      unlockAll(out);
      throw e;
    }
    return out;
  }

  /** Drops loaded contents (and their unflushed changes): the next user loads the inode afresh. Caller holds fc's write lock. */
  private void retire(FileContent fc) {
    fc.tree.release();
    fc.retired = true;
    removals.incrementAndGet(); // before the removal: a load that then finds no contents sees it (content)
    files.remove(fc.ino, fc);
  }

  // ================================================================ space, integrity

  /**
   * Space figures of the file or directory tree at {@code path} (a snapshot's directory too), or
   * of the whole store for "" (snapshots included): see {@link SpaceUsage}. Exact: what
   * {@code exclusiveBytes} names is what deleting those files would free. Flushes them first.
   * Costs work per block of the files (nodes are read, leaves only looked up), never a scan of
   * the store for one file.
   */
  public SpaceUsage usage(String path) throws IOException {
    String p = Namespace.normalize(path);
    flushBelow(p);
    reclaimFirst("usage"); // not needed for exactness, but it keeps the queue to work through short
    return db.read(txn -> {
      PendingView pending = PendingView.of(txn, blocks);
      SpaceCounter counter = new SpaceCounter(txn, db, blocks, pending);
      return p.isEmpty() ? counter.wholeStore() : counter.usage(regularFilesBelow(txn, ns.resolve(txn, p)).values());
    });
  }

  /**
   * Reads every block reachable from any inode (snapshots included), rehashes it and reports each
   * damaged one per file that uses it, with the byte range it covers. Runs beside other work: it
   * reads in short transactions. {@code progress} counts blocks.
   */
  public ScrubReport scrub(Consumer<Progress> progress) throws IOException {
    return new Scrubber(db, ns, blocks, geometry, Progresses.throttled(progress)).run();
  }

  /**
   * Checks that every reference resolves to an intact block, every count equals the references,
   * and the namespace is consistent; one line per problem, none when all is well. Works on a store
   * in use: it applies queued decrements first and accounts for any queued meanwhile, in one read
   * transaction. {@code progress} counts blocks, then inodes.
   */
  public List<String> fsck(Consumer<Progress> progress) throws IOException {
    reclaimFirst("fsck");
    return new Fsck(this).check(Progresses.throttled(progress));
  }

  /** Applies the queued decrements before {@code what}, which accounts for any it cannot apply. */
  private void reclaimFirst(String what) {
    if (config.readOnly()) {
      return;
    }
    try {
      reclaim();
    } catch (IOException | RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "reclaim before " + what + " failed; " + what + " goes on with the queue", e);
    }
  }

  /**
   * Gives the free pages of {@code data.mdb} back to the disk: a compacted copy is written next to
   * it and renamed over it. Works on a store in use: readers go on, writers wait for the copy (at
   * worst a few seconds per GiB). Needs room on the disk for the copy, else
   * {@link StoreFullException} and nothing changed.
   */
  public CompactResult compact(Consumer<Progress> progress) throws IOException {
    requireWritable();
    reclaim();
    return db.compact(Progresses.throttled(progress));
  }

  // ================================================================ maintenance

  /**
   * Frees every block that nothing references any more; returns how many decrements it applied.
   * Each transaction applies up to {@value #RECLAIM_BATCH} decrements; on a full disk, where a
   * transaction finds few free pages, batches shrink (down to one decrement) and grow again as
   * the pages they free become usable.
   */
  public long reclaim() throws IOException {
    long total = 0;
    int batch = RECLAIM_BATCH;
    while (true) {
      int max = batch;
      int n;
      try {
        n = db.write(txn -> blocks.reclaim(txn, max));
      } catch (StoreFullException e) {
        if (batch == 1) {
          throw e;
        }
        batch = Math.max(1, batch / 16);
        continue;
      }
      if (n == 0) {
        return total;
      }
      total += n;
      batch = Math.min(RECLAIM_BATCH, batch * 2);
    }
  }

  private void reclaimQuietly() {
    if (closed) {
      return;
    }
    try {
      reclaim();
    } catch (IOException | RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "reclaiming space failed; will retry after the next change", e);
    }
  }

  private void flushOld() {
    long cutoff = System.nanoTime() - config.flushInterval().toNanos();
    for (FileContent fc : files.values()) {
      if (closed) {
        return;
      }
      if (fc.lock.writeLock().tryLock()) {
        try {
          if (fc.isDirty() && fc.dirtySince - cutoff <= 0) {
            scheduleCommit(fc);
          }
        } finally {
          fc.lock.writeLock().unlock();
        }
      }
    }
  }

  /** Flushes everything, stops the background work and closes the store. */
  @Override
  public void close() throws IOException {
    if (closed) {
      return;
    }
    try {
      if (!config.readOnly()) {
        sync();
      }
    } finally {
      closed = true;
      committer.shutdown();
      background.shutdown();
      try {
        committer.awaitTermination(60, TimeUnit.SECONDS);
        background.awaitTermination(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      db.close();
      lock.release();
      lockFile.close();
    }
  }

  // ================================================================ helpers

  FileContent content(long ino) throws IOException {
    while (true) {
      FileContent fc = files.get(ino);
      if (fc != null) {
        return fc;
      }
      long seen = removals.get(); // before the inode is read: see removals
      Inode i = db.read(txn -> ns.inode(txn, ino));
      LoadHook hook = loadHook;
      if (hook != null) {
        hook.inodeRead(ino);
      }
      if (i.isDirectory()) {
        throw new FsException(FsException.Kind.IS_DIRECTORY, "inode " + ino, "is a directory");
      }
      if (!i.isRegular()) {
        throw new FsException(FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "not a regular file");
      }
      FileContent loaded = new FileContent(ino, i.isReadOnly(), new FileTree(geometry, blocks, i.root(), i.height(), i.size(), dirtyBytes));
      FileContent raced = files.putIfAbsent(ino, loaded);
      if (raced != null) {
        return raced;
      }
      if (removals.get() == seen) {
        return loaded;
      }
      // Contents were removed while the inode was read: perhaps this file's, replaced by a restore
      // that committed after the read. Whoever took these meanwhile finds them retired and loads again.
      loaded.lock.writeLock().lock();
      try {
        retire(loaded);
      } finally {
        loaded.lock.writeLock().unlock();
      }
    }
  }

  /** What an operation does with a file's contents while it holds their lock. */
  private interface ContentAction<T> {
    T run(FileContent fc) throws IOException;
  }

  /**
   * Runs {@code action} on the contents of {@code ino} holding their lock, shared or exclusive
   * (each FileTree counts the dirty bytes it adds). Contents that {@link #forget} retired while
   * this waited for the lock are loaded afresh.
   */
  private <T> T withContent(long ino, boolean exclusive, ContentAction<T> action) throws IOException {
    while (true) {
      FileContent fc = content(ino);
      Lock lock = exclusive ? fc.lock.writeLock() : fc.lock.readLock();
      lock.lock();
      try {
        if (!fc.retired) {
          return action.run(fc);
        }
      } finally {
        lock.unlock();
      }
    }
  }

  private Attributes attributes(Inode i) {
    FileContent fc = i.isRegular() ? files.get(i.ino()) : null;
    if (fc == null) {
      return Attributes.of(i, i.size(), i.mtimeNs(), i.ctimeNs());
    }
    fc.lock.readLock().lock();
    try {
      return fc.timesDirty
          ? Attributes.of(i, fc.tree.length(), fc.mtimeNs, fc.ctimeNs)
          : Attributes.of(i, fc.tree.length(), i.mtimeNs(), i.ctimeNs());
    } finally {
      fc.lock.readLock().unlock();
    }
  }

  private static Inode requireDir(Inode i) throws NotDirectoryException {
    if (!i.isDirectory()) {
      throw new NotDirectoryException("inode " + i.ino());
    }
    return i;
  }

  /** A directory that new names may go into: not removed (ENOENT, as ext4 answers). */
  private static Inode requireLiveDir(Inode i) throws IOException {
    if (requireDir(i).nlink() == 0) {
      throw new NoSuchFileException("inode " + i.ino(), null, "the directory has been removed");
    }
    return i;
  }

  /** Refuses to change an inode of the snapshot area (EROFS). */
  private static Inode requireChangeable(Inode i) throws FsException {
    if (i.isReadOnly()) {
      throw new FsException(FsException.Kind.READ_ONLY, "inode " + i.ino(), "snapshots are read-only");
    }
    return i;
  }

  private static void requireChangeable(FileContent fc) throws FsException {
    if (fc.readOnly) {
      throw new FsException(FsException.Kind.READ_ONLY, "inode " + fc.ino, "snapshots are read-only");
    }
  }

  /**
   * Refuses to add, remove or rename {@code name} in directory {@code dir}: a directory of the
   * snapshot area, or {@code .snapshots} in the root, whether it exists yet or not.
   */
  private static void requireChangeable(Inode dir, long dirIno, String name) throws FsException {
    requireChangeable(dir);
    if (dirIno == ROOT && name.equals(SNAPSHOTS)) {
      throw new FsException(FsException.Kind.READ_ONLY, name, "the name " + SNAPSHOTS + " is kept for snapshots");
    }
  }

  private static void checkName(String name) throws FsException {
    if (name.isEmpty() || name.equals(".") || name.equals("..") || name.indexOf('/') >= 0 || name.indexOf('\0') >= 0) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "not a valid file name");
    }
    if (name.getBytes(StandardCharsets.UTF_8).length > Namespace.NAME_MAX) {
      throw new FsException(FsException.Kind.NAME_TOO_LONG, name, "longer than 255 bytes");
    }
  }

  private static void requireOffset(long offset) throws FsException {
    if (offset < 0) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, "offset " + offset, "negative offset");
    }
  }

  private void requireWritable() throws FsException {
    if (config.readOnly()) {
      throw new FsException(FsException.Kind.READ_ONLY, dir.toString(), "the store is open read-only");
    }
  }

  private static long now() {
    Instant t = Instant.now();
    return t.getEpochSecond() * 1_000_000_000L + t.getNano();
  }

  // ---- for tests and tools in this package

  Lmdb lmdb() {
    return db;
  }

  BlockStore blockStore() {
    return blocks;
  }

  /** What the last snapshot taken copied. */
  Snapshots.Cost snapshotCost() {
    return snapshots.lastCost();
  }

  /** For tests: told of every commit once it has frozen a file's overlay, before hashing and storing it, and when it has ended. */
  interface CommitHook {
    /** Runs without the file's lock (but for commits made under it, as a copy's); what it throws fails the commit. */
    void frozen(long ino) throws IOException;

    default void ended(long ino, boolean stored) {}
  }

  volatile CommitHook commitHook;

  /** For tests: told when {@link #content} has read a file's inode, before it publishes the contents it loads from it. */
  interface LoadHook {
    void inodeRead(long ino) throws IOException;
  }

  volatile LoadHook loadHook;

  /** For tests: starts a commit of {@code ino} on a committer thread, as a writer that reaches its share does. */
  void commitInBackground(long ino) throws IOException {
    FileContent fc = content(ino);
    committer.execute(() -> {
      try {
        commitFile(fc);
      } catch (IOException | RuntimeException e) {
        LOG.log(System.Logger.Level.DEBUG, "background commit of inode " + fc.ino + " failed", e);
      }
    });
  }

  /** Bytes of written leaves (and nodes) held in memory, not yet committed, over all files: buffered and frozen by commits in flight. */
  long dirtyBytes() {
    return dirtyBytes.get() + inFlightBytes.get();
  }
}
