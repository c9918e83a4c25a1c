package io.dedupfs.fs;

import io.dedupfs.engine.Attributes;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DirEntry;
import io.dedupfs.engine.FsException;
import io.dedupfs.engine.SetAttributes;
import io.dedupfs.engine.SpaceUsage;
import io.dedupfs.engine.StoreStats;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.ConnectionInfo;
import io.dedupfs.fs.fuse.CreatedFile;
import io.dedupfs.fs.fuse.DirectoryFiller;
import io.dedupfs.fs.fuse.Entry;
import io.dedupfs.fs.fuse.ErrnoException;
import io.dedupfs.fs.fuse.FuseOperations;
import io.dedupfs.fs.fuse.FuseSession;
import io.dedupfs.fs.fuse.IoctlResult;
import io.dedupfs.fs.fuse.OpenFile;
import io.dedupfs.fs.fuse.OptionalOp;
import io.dedupfs.fs.fuse.RequestContext;
import io.dedupfs.fs.fuse.SetAttr;
import io.dedupfs.fs.fuse.Statfs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.EnumSet;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import jnr.constants.platform.Errno;

/**
 * The mount: FUSE requests, in inode numbers, answered by the engine's {@link Datastore}. Thin on
 * purpose: it converts arguments and results, keeps the kernel's lookup counts and the open
 * handles, and leaves every decision about the data to the engine. Failures are thrown and turned
 * into errno values by {@link Errnos}.
 */
final class DedupFs implements FuseOperations {
  /**
   * {@code st_blksize}: what cp and friends use as their buffer size (they take at least 128 KiB
   * anyway).
   */
  private static final int BLKSIZE = 128 * 1024;

  /** Prefix of the computed space figures readable as extended attributes. */
  static final String FIGURES = "user.dedupfs.";

  /** Stackless and shared: see {@link #getxattr}. */
  private static final ErrnoException NO_SUCH_ATTRIBUTE = new ErrnoException(Errno.ENODATA);

  private static final System.Logger LOG = System.getLogger(DedupFs.class.getName());

  /**
   * What the kernel asks for before a write to a file (to drop it, as a write must): before the
   * first write to each inode that has no set-ID bits, and every write to one that has them, or
   * before every write where the kernel does not leave privileges to dedupfs ({@link
   * #dropsPrivileges}).
   */
  static final String CAPABILITY = "security.capability";

  /** The namespaces stored as given; the kernel decides who may read and set each. */
  private static final List<String> NAMESPACES = List.of("user.", "trusted.", "security.");

  private static final int O_ACCMODE = 3;
  private static final int O_RDONLY = 0;
  private static final int O_TRUNC = 01000;
  private static final int O_DIRECT = 040000;
  private static final int S_ISUID = 04000;
  private static final int S_ISGID = 02000;
  private static final int S_IXGRP = 010;
  private static final int FALLOC_FL_KEEP_SIZE = 0x01;
  private static final int FALLOC_FL_PUNCH_HOLE = 0x02;
  private static final int FALLOC_FL_ZERO_RANGE = 0x10;
  private static final long STATFS_BLOCK = 4096;

  /** Inode numbers are 64-bit and never run out; statfs shows a large, fixed total. */
  private static final long STATFS_FILES = 1L << 32;

  private final Datastore store;
  private final boolean readOnly;

  /** Whether readdir of the root lists {@code .snapshots} (a lookup by name always finds it). */
  private final boolean snapdirVisible;

  private final CloneIoctl clones;
  private volatile FuseSession session;

  /**
   * Whether some file may have {@link #CAPABILITY}: false until one is set, so that the kernel's
   * probe before writes is answered without a store transaction on the usual store that has none.
   * Only ever turns true while mounted.
   */
  private volatile boolean capabilities;

  /**
   * Files that may hold privileges a write must drop (set-user-ID or set-group-ID bits, a {@link
   * #CAPABILITY}) while open for writing. The kernel leaves dropping them to dedupfs ({@link
   * #dropsPrivileges}; a direct-I/O open's writes also skip the kernel's check, see {@link
   * #open(long, int, boolean)}), so {@link #write} drops them. A file joins when opened for writing
   * with privileges, or given privileges by chmod or setxattr; it leaves when a write finds none
   * left. Usually empty, so a write pays one emptiness check.
   */
  private final Set<Long> privileged = ConcurrentHashMap.newKeySet();

  /**
   * Whether O_DIRECT opens get FUSE's direct I/O: not with the kernel's writeback cache, whose
   * dirty pages a direct-I/O read would not see (the kernel flushes them only before an O_DIRECT
   * read it serves itself). Set by {@link #init}.
   */
  private volatile boolean directForODirect;

  /** The kernel's lookup count per inode; an inode leaves the map when it drops to zero. */
  private final ConcurrentHashMap<Long, Long> lookups = new ConcurrentHashMap<>();

  /** Open files and directories by handle; a request with an unknown handle gets EBADF. */
  private final ConcurrentHashMap<Long, Handle> handles = new ConcurrentHashMap<>();

  private final AtomicLong nextHandle = new AtomicLong(1);

  DedupFs(Datastore store, boolean readOnly, boolean snapdirVisible) {
    this.store = store;
    this.readOnly = readOnly;
    this.snapdirVisible = snapdirVisible;
    this.clones = new CloneIoctl(store);
    try {
      this.capabilities = store.anyXattrNamed(CAPABILITY);
    } catch (IOException | RuntimeException e) {
      LOG.log(
          System.Logger.Level.WARNING,
          "cannot tell whether any file has " + CAPABILITY + "; asking the store each time",
          e);
      this.capabilities = true;
    }
  }

  /**
   * The session serving this filesystem, for cache invalidation after changes the kernel did not
   * make.
   */
  void bind(FuseSession session) {
    this.session = session;
  }

  @Override
  public Set<OptionalOp> optionalOps() {
    return EnumSet.allOf(OptionalOp.class);
  }

  @Override
  public ConnectionInfo init(ConnectionInfo conn) {
    ConnectionInfo chosen = Connection.negotiate(conn);
    directForODirect = !chosen.wants(ConnectionInfo.CAP_WRITEBACK_CACHE);
    return chosen;
  }

  @Override
  public void destroy() {
    // The store is closed by whoever opened it, after the session has ended.
  }

  // ---- names

  @Override
  public Entry lookup(long parent, String name) throws IOException {
    return entry(store.lookup(parent, name));
  }

  @Override
  public void forget(long ino, long nlookup) throws IOException {
    Long left = lookups.computeIfPresent(ino, (k, n) -> n > nlookup ? n - nlookup : null);
    if (left == null && ino != Datastore.ROOT) {
      store.forget(ino);
    }
  }

  @Override
  public Attr getattr(long ino, OptionalLong fh) throws IOException {
    return attr(store.getattr(ino));
  }

  /** See {@link #dropPrivileges}: dedupfs drops them, and the kernel then asks less. */
  @Override
  public boolean dropsPrivileges() {
    return true;
  }

  @Override
  public Attr setattr(RequestContext ctx, long ino, SetAttr c) throws IOException {
    Integer mode = c.mode().isPresent() ? c.mode().getAsInt() : null;
    if (mode == null && ctx.killSuidGid()) { // a chown, or a truncate without CAP_FSETID
      Attributes a = store.getattr(ino);
      int drop = a.isDirectory() ? 0 : setIdBitsToDrop(ctx, a.mode(), a.gid());
      mode = drop == 0 ? null : a.mode() & ~drop;
    }
    SetAttributes change =
        new SetAttributes(
            mode,
            c.uid().isPresent() ? c.uid().getAsInt() : null,
            c.gid().isPresent() ? c.gid().getAsInt() : null,
            c.size().isPresent() ? c.size().getAsLong() : null,
            c.atime().map(DedupFs::nanos).orElse(null),
            c.mtime().map(DedupFs::nanos).orElse(null),
            c.ctime().map(DedupFs::nanos).orElse(null));
    if (c.mode().isPresent() && (c.mode().getAsInt() & (S_ISUID | S_ISGID)) != 0) {
      privileged.add(ino); // before the store has them: a direct write in between checks
    }
    return attr(store.setattr(ino, change));
  }

  @Override
  public String readlink(long ino) throws IOException {
    return store.readlink(ino);
  }

  @Override
  public Entry mknod(RequestContext ctx, long parent, String name, int mode, long rdev)
      throws IOException {
    return entry(store.mknod(parent, name, mode, rdev, ctx.uid(), ctx.gid()));
  }

  @Override
  public Entry mkdir(RequestContext ctx, long parent, String name, int mode) throws IOException {
    return entry(store.mkdir(parent, name, mode, ctx.uid(), ctx.gid()));
  }

  @Override
  public Entry symlink(RequestContext ctx, String target, long parent, String name)
      throws IOException {
    return entry(store.symlink(parent, name, target, ctx.uid(), ctx.gid()));
  }

  @Override
  public Entry link(long ino, long newParent, String newName) throws IOException {
    return entry(store.link(ino, newParent, newName));
  }

  @Override
  public void unlink(long parent, String name) throws IOException {
    store.unlink(parent, name);
  }

  @Override
  public void rmdir(long parent, String name) throws IOException {
    store.rmdir(parent, name);
  }

  @Override
  public void rename(long parent, String name, long newParent, String newName, int flags)
      throws IOException {
    store.rename(parent, name, newParent, newName, flags);
  }

  // ---- files

  @Override
  public OpenFile open(RequestContext ctx, long ino, int flags) throws IOException {
    boolean writing = (flags & O_ACCMODE) != O_RDONLY;
    if (writing && (flags & O_TRUNC) != 0) {
      Integer mode = null;
      if (ctx.killSuidGid()) {
        Attributes a = store.getattr(ino);
        int drop = setIdBitsToDrop(ctx, a.mode(), a.gid());
        mode = drop == 0 ? null : a.mode() & ~drop;
      }
      store.setattr(ino, new SetAttributes(mode, null, null, 0L, null, null));
      FuseSession s = session;
      if (mode != null && s != null) {
        s.invalidateInode(ino, -1, 0); // its mode: attributes only, safe inside this open
      }
    } else if (writing) {
      // A snapshot's file opened for writing would let a shared mmap change the kernel's cached
      // pages, which every reader then sees although the store refuses the write-back: refuse the
      // open itself with EROFS, as a read-only filesystem does. An empty copy into the file is
      // refused (READ_ONLY) for a snapshot's file and changes nothing otherwise.
      store.copyRange(ino, 0, ino, 0, 0);
    }
    return open(ino, flags, false);
  }

  @Override
  public CreatedFile create(RequestContext ctx, long parent, String name, int mode, int flags)
      throws IOException {
    Entry e = entry(store.mknod(parent, name, mode, 0, ctx.uid(), ctx.gid()));
    return new CreatedFile(e, open(e.attr().ino(), flags, false));
  }

  @Override
  public int read(long ino, long fh, long offset, ByteBuffer dst) throws IOException {
    requireHandle(fh);
    return store.read(ino, offset, dst);
  }

  @Override
  public int write(RequestContext ctx, long ino, long fh, long offset, ByteBuffer data)
      throws IOException {
    requireHandle(fh);
    if (!privileged.isEmpty() && privileged.contains(ino)) {
      dropPrivileges(ctx, ino);
    }
    return store.write(ino, offset, data);
  }

  /**
   * Every close(2) of a descriptor open for writing: what was written through this file becomes
   * durable before close returns (through the intent log, as an fsync). A read-only descriptor
   * wrote nothing, and its close must not fail because another writer's data cannot be committed (a
   * full disk).
   */
  @Override
  public void flush(long ino, long fh) throws IOException {
    if ((handle(fh).flags() & O_ACCMODE) != O_RDONLY) {
      store.fsync(ino);
    }
  }

  @Override
  public void release(long ino, long fh, int flags) {
    handles.remove(fh);
  }

  @Override
  public void fsync(long ino, long fh, boolean datasync) throws IOException {
    store.fsync(ino);
  }

  @Override
  public void fallocate(long ino, long fh, int mode, long offset, long length) throws IOException {
    requireHandle(fh);
    boolean keepSize = (mode & FALLOC_FL_KEEP_SIZE) != 0;
    switch (mode & ~FALLOC_FL_KEEP_SIZE) {
      case 0 -> store.allocate(ino, offset, length, keepSize);
      case FALLOC_FL_PUNCH_HOLE -> store.punchHole(ino, offset, length);
      case FALLOC_FL_ZERO_RANGE -> store.zeroRange(ino, offset, length, keepSize);
      default -> throw new ErrnoException(Errno.EOPNOTSUPP, "fallocate mode " + mode);
    }
  }

  @Override
  public long lseek(long ino, long fh, long offset, int whence) throws IOException {
    return switch (whence) {
      case SEEK_DATA -> store.seekData(ino, offset);
      case SEEK_HOLE -> store.seekHole(ino, offset);
      default -> throw new ErrnoException(Errno.EINVAL, "whence " + whence);
    };
  }

  @Override
  public long copyFileRange(
      long inoIn, long fhIn, long offIn, long inoOut, long fhOut, long offOut, long len, int flags)
      throws IOException {
    requireHandle(fhIn);
    requireHandle(fhOut);
    if (flags != 0) {
      throw new ErrnoException(Errno.EINVAL, "copy_file_range flags " + flags);
    }
    return store.copyRange(inoIn, offIn, inoOut, offOut, len);
  }

  @Override
  public IoctlResult ioctl(
      RequestContext ctx, long ino, long fh, int cmd, long arg, int flags, byte[] in, int outSize)
      throws IOException {
    if (cmd != CloneIoctl.CMD) {
      throw new ErrnoException(Errno.ENOTTY, String.format("ioctl 0x%08x", cmd));
    }
    if ((handle(fh).flags() & O_ACCMODE) == O_RDONLY) {
      throw new ErrnoException(Errno.EBADF, "the clone's destination is not open for writing");
    }
    FuseSession s = session;
    long changed = clones.clone(ctx, ino, in, s == null ? -1 : s.deviceNumber());
    if (s != null) {
      s.invalidateInode(changed, 0, 0);
    }
    return IoctlResult.of(0);
  }

  // ---- directories

  @Override
  public OpenFile opendir(long ino, int flags) throws IOException {
    if (!store.getattr(ino).isDirectory()) {
      throw new ErrnoException(Errno.ENOTDIR);
    }
    return open(ino, flags, true);
  }

  @Override
  public void readdir(long ino, long fh, long offset, DirectoryFiller filler) throws IOException {
    requireHandle(fh);
    long at = offset;
    while (true) {
      List<DirEntry> batch = store.readdir(ino, at, 256);
      for (DirEntry e : batch) {
        // Like ZFS's snapdir=hidden: libvirt's pool listing, du and find leave the snapshots alone.
        boolean hidden =
            ino == Datastore.ROOT && !snapdirVisible && e.name().equals(Datastore.SNAPSHOTS);
        if (!hidden && !filler.add(e.name(), e.ino(), e.mode(), e.nextOffset())) {
          return;
        }
        at = e.nextOffset();
      }
      if (batch.size() < 256) {
        return;
      }
    }
  }

  @Override
  public void releasedir(long ino, long fh) {
    handles.remove(fh);
  }

  @Override
  public void fsyncdir(long ino, long fh, boolean datasync) {
    // Namespace changes are committed durably before they are answered.
  }

  // ---- the rest

  @Override
  public Statfs statfs(long ino) throws IOException {
    // As ZFS after a delete: used is what the store's live pages take, available the disk's free
    // space plus the store's free pages (writes reuse them before the file grows). For blocks in a
    // pool: used includes them, available is the pool's.
    StoreStats s = store.stats();
    long used = ceilDiv(s.usedBytes(), STATFS_BLOCK);
    long free = s.freeBytes() / STATFS_BLOCK;
    return new Statfs(
        BLKSIZE,
        STATFS_BLOCK,
        used + free,
        free,
        free,
        STATFS_FILES,
        Math.max(0, STATFS_FILES - s.inodes()),
        255);
  }

  @Override
  public void setxattr(long ino, String name, byte[] value, int flags) throws IOException {
    requireStorableName(name);
    if (name.equals(CAPABILITY)) {
      capabilities = true; // before the store has it: a probe in between goes to the store
      privileged.add(ino);
    }
    store.setxattr(ino, name, value, flags);
  }

  @Override
  public byte[] getxattr(long ino, String name) throws IOException {
    if (name.startsWith(FIGURES)) {
      return figure(ino, name.substring(FIGURES.length()));
    }
    if (name.equals(CAPABILITY) && !capabilities) {
      // The kernel asks for it before writes (see CAPABILITY): answered here while no file has
      // one, without a store transaction or a stack trace.
      throw NO_SUCH_ATTRIBUTE;
    }
    if (!storable(name)) {
      throw NO_SUCH_ATTRIBUTE; // could never have been set
    }
    return store.getxattr(ino, name);
  }

  @Override
  public List<String> listxattr(long ino) throws IOException {
    return store.listxattr(ino);
  }

  @Override
  public void removexattr(long ino, String name) throws IOException {
    store.removexattr(ino, name);
  }

  /**
   * Only reached without default_permissions; dedupfs always mounts with it, so existence is all to
   * check.
   */
  @Override
  public void access(RequestContext ctx, long ino, int mask) throws IOException {
    store.getattr(ino);
  }

  // ---- helpers

  /**
   * The space figures of {@code ino} as extended attributes {@code user.dedupfs.NAME} (decimal
   * ASCII), computed when read and not listed by listxattr, so that copies with {@code cp -a} or
   * {@code rsync -X} do not carry stale figures along.
   */
  private byte[] figure(long ino, String name) throws IOException {
    String path;
    try {
      path = store.pathOf(ino);
    } catch (java.nio.file.NoSuchFileException e) {
      store.getattr(ino); // ENOENT if the inode itself is gone
      throw new ErrnoException(
          Errno.ENODATA, "an unlinked file has no space figures (they are computed by path)");
    }
    SpaceUsage u = store.usage(path);
    String value =
        switch (name) {
          case "logical" -> Long.toString(u.logicalBytes());
          case "stored" -> Long.toString(u.storedBytes());
          case "exclusive" -> Long.toString(u.exclusiveBytes());
          case "shared" -> Long.toString(u.sharedBytes());
          case "referenced" -> Long.toString(u.referencedBytes());
          case "ratio" -> String.format(java.util.Locale.ROOT, "%.3f", u.dedupeRatio());
          case "compressed" -> Long.toString(u.compressedBytes());
          case "compressratio" -> String.format(java.util.Locale.ROOT, "%.3f", u.compressRatio());
          default -> throw new ErrnoException(Errno.ENODATA, FIGURES + name);
        };
    return value.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
  }

  private Entry entry(Attributes a) {
    lookups.merge(a.ino(), 1L, Long::sum);
    return Entry.of(attr(a));
  }

  private static Attr attr(Attributes a) {
    return new Attr(
        a.ino(),
        a.mode(),
        a.nlink(),
        a.uid(),
        a.gid(),
        a.rdev(),
        a.size(),
        a.blocks(),
        BLKSIZE,
        instant(a.atimeNs()),
        instant(a.mtimeNs()),
        instant(a.ctimeNs()));
  }

  /**
   * An open file or directory: its inode, its open(2) flags and whether it is served with FUSE's
   * direct I/O.
   */
  private record Handle(long ino, int flags, boolean direct) {}

  /**
   * A file opened with O_DIRECT (qemu's cache=none) gets FUSE's direct I/O: its reads and writes
   * bypass the page cache as O_DIRECT asks, and the kernel does not ask for {@link #CAPABILITY}
   * before each write, nor drop the file's privileges itself: {@link #write} does, for the files in
   * {@link #privileged}, as for every file opened for writing when the kernel leaves it to dedupfs.
   * Shared mmap of such an open fails (ENODEV), as on any FUSE direct-I/O file. Not on a mount with
   * the writeback cache ({@link #directForODirect}).
   */
  private OpenFile open(long ino, int flags, boolean directory) throws IOException {
    boolean direct = !directory && directForODirect && (flags & O_DIRECT) != 0;
    if (!directory && (flags & O_ACCMODE) != O_RDONLY && hasPrivileges(ino)) {
      privileged.add(ino);
    }
    long fh = nextHandle.getAndIncrement();
    handles.put(fh, new Handle(ino, flags, direct));
    return directory ? OpenFile.of(fh) : OpenFile.of(fh).withKeepCache(true).withDirectIo(direct);
  }

  private boolean hasPrivileges(long ino) throws IOException {
    return (store.getattr(ino).mode() & (S_ISUID | S_ISGID)) != 0 || hasCapability(ino);
  }

  private boolean hasCapability(long ino) throws IOException {
    if (!capabilities) {
      return false;
    }
    try {
      store.getxattr(ino, CAPABILITY);
      return true;
    } catch (FsException e) {
      if (e.kind() == FsException.Kind.NO_SUCH_ATTRIBUTE) {
        return false;
      }
      throw e;
    }
  }

  /**
   * What the kernel does before a write to a file on a local filesystem (file_remove_privs): a
   * writer without CAP_FSETID (the kernel says so, {@link RequestContext#killSuidGid}) drops the
   * set-user-ID and set-group-ID bits ({@link #setIdBitsToDrop}); any write drops {@link
   * #CAPABILITY}. The file leaves {@link #privileged} when nothing is left to drop.
   */
  private void dropPrivileges(RequestContext ctx, long ino) throws IOException {
    privileged.remove(ino); // first: a chmod meanwhile adds it back
    Attributes a = store.getattr(ino);
    int mode = a.mode();
    int kill = ctx.killSuidGid() ? setIdBitsToDrop(ctx, mode, a.gid()) : 0;
    boolean changed = false;
    if (kill != 0) {
      store.setattr(ino, SetAttributes.mode(mode & ~kill));
      changed = true;
    }
    if (hasCapability(ino)) {
      store.removexattr(ino, CAPABILITY);
      changed = true;
    }
    if ((mode & ~kill & (S_ISUID | S_ISGID)) != 0) {
      privileged.add(ino); // kept (a root writer, or set-group-ID without group x)
    }
    FuseSession s = session;
    if (changed && s != null) {
      s.invalidateInode(ino, -1, 0); // attributes only: no page lock, safe inside this write
    }
  }

  /**
   * The bits Linux 6's VFS drops from a file of {@code mode} and group {@code gid} when the kernel
   * asks ({@link RequestContext#killSuidGid}: a write, truncate or O_TRUNC open by a caller without
   * CAP_FSETID, or a chown): set-user-ID always; set-group-ID when the group may execute the file,
   * or when the caller is neither in the file's group nor root (setattr_should_drop_sgid). A
   * set-group-ID bit without group x otherwise stays: it marks mandatory locking.
   */
  private static int setIdBitsToDrop(RequestContext ctx, int mode, int gid) {
    int drop = mode & S_ISUID;
    if ((mode & S_ISGID) != 0
        && ((mode & S_IXGRP) != 0 || (ctx.uid() != 0 && !inGroup(ctx, gid)))) {
      drop |= S_ISGID;
    }
    return drop;
  }

  /**
   * Whether the caller's filesystem group or one of its supplementary groups (from its {@code
   * /proc/PID/status}, as libfuse's fuse_req_getgroups reads them) is {@code gid}. False when the
   * caller is gone.
   */
  private static boolean inGroup(RequestContext ctx, int gid) {
    if (ctx.gid() == gid) {
      return true;
    }
    try {
      for (String line :
          Files.readAllLines(Path.of("/proc", Integer.toString(ctx.pid()), "status"))) {
        if (line.startsWith("Groups:")) {
          for (String g : line.substring("Groups:".length()).trim().split("\\s+")) {
            if (!g.isEmpty() && Integer.parseInt(g) == gid) {
              return true;
            }
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      LOG.log(System.Logger.Level.DEBUG, "cannot read the groups of pid " + ctx.pid() + ": " + e);
    }
    return false;
  }

  private Handle handle(long fh) {
    Handle h = handles.get(fh);
    if (h == null) {
      throw new ErrnoException(Errno.EBADF, "unknown file handle " + fh);
    }
    return h;
  }

  private void requireHandle(long fh) {
    handle(fh);
  }

  /**
   * security.* and trusted.* would promise enforcement this filesystem does not do; system.* are
   * ACLs.
   */
  private static boolean storable(String name) {
    for (String ns : NAMESPACES) {
      if (name.startsWith(ns) && name.length() > ns.length()) {
        return true;
      }
    }
    return false;
  }

  private void requireStorableName(String name) {
    if (name.startsWith(FIGURES)) {
      throw new ErrnoException(
          Errno.EPERM, name + " is a figure dedupfs computes; it cannot be set");
    }
    if (readOnly) {
      throw new ErrnoException(Errno.EROFS);
    }
    if (!storable(name)) {
      throw new ErrnoException(
          Errno.EOPNOTSUPP,
          "extended attribute " + name + ": only user.*, trusted.* and security.* are supported");
    }
  }

  private static Instant instant(long nanos) {
    return Instant.ofEpochSecond(
        Math.floorDiv(nanos, 1_000_000_000L), Math.floorMod(nanos, 1_000_000_000L));
  }

  private static long nanos(Instant t) {
    return t.getEpochSecond() * 1_000_000_000L + t.getNano();
  }

  private static long ceilDiv(long a, long b) {
    return (a + b - 1) / b;
  }
}
