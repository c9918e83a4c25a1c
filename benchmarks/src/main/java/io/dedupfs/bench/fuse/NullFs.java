package io.dedupfs.bench.fuse;

import io.dedupfs.fs.Connection;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.ConnectionInfo;
import io.dedupfs.fs.fuse.CreatedFile;
import io.dedupfs.fs.fuse.DirectoryFiller;
import io.dedupfs.fs.fuse.Entry;
import io.dedupfs.fs.fuse.ErrnoException;
import io.dedupfs.fs.fuse.FuseOperations;
import io.dedupfs.fs.fuse.OpenFile;
import io.dedupfs.fs.fuse.OptionalOp;
import io.dedupfs.fs.fuse.RequestContext;
import io.dedupfs.fs.fuse.SetAttr;
import io.dedupfs.fs.fuse.Statfs;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicLong;
import jnr.constants.platform.Errno;

/**
 * A do-nothing filesystem on the same libfuse3 binding as dedupfs, for benchmark ceilings: what the
 * kernel, libfuse, jnr-ffi and the binding's worker threads cost with no filesystem work at all.
 *
 * <p>One flat root directory. It starts with {@code files} files of {@code fileSize} bytes ({@code
 * file0}, {@code file1} ...), and more can be created (dd, fio) and removed. Only names and sizes
 * are kept: writes are discarded and answered as done (they extend the size), reads return zeros up
 * to the size. fsync, flush and release do nothing. Directories, links, xattrs and the optional
 * operations other than fallocate are not there (ENOSYS, or EPERM for mkdir and friends).
 *
 * <p>Its failures are {@link ErrnoException}s, which the binding answers with their errno; anything
 * else would be a bug here, answered with EIO and logged (the binding's default error mapper).
 *
 * <p>It sets up the connection as dedupfs does ({@link Connection}: the same INIT, the same 4 MiB
 * readahead; writeback cache per mount option) and answers opens with {@code keep_cache} as dedupfs
 * does, so that the two differ only in the work behind each request.
 */
public final class NullFs implements FuseOperations {
  /** Same {@code st_blksize} as dedupfs: tools size their buffers from it. */
  private static final int BLKSIZE = 128 * 1024;

  private static final long ROOT = 1;
  private static final int O_ACCMODE = 3;
  private static final int O_RDONLY = 0;
  private static final int O_TRUNC = 01000;

  /** Reads are served from this; the binding never asks for more than 1 MiB at once. */
  private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

  private static final long STATFS_BLOCK = 4096;
  private static final long STATFS_BLOCKS = (1L << 40) / STATFS_BLOCK; // 1 TiB, all free

  private final Map<Long, Node> inodes = new ConcurrentHashMap<>();

  /**
   * Root directory entries by name, in name order (readdir offsets are positions in a snapshot).
   */
  private final ConcurrentSkipListMap<String, Node> root = new ConcurrentSkipListMap<>();

  private final AtomicLong nextIno = new AtomicLong(ROOT + 1);
  private final AtomicLong nextHandle = new AtomicLong(1);
  private final Instant started = Instant.now();
  private final int uid;
  private final int gid;

  /** One inode: a regular file whose size is all there is. */
  private static final class Node {
    final long ino;
    final AtomicLong size;
    volatile int mode;
    volatile Instant atime;
    volatile Instant mtime;
    volatile Instant ctime;
    volatile int nlink = 1;

    Node(long ino, int mode, long size, Instant now) {
      this.ino = ino;
      this.mode = mode;
      this.size = new AtomicLong(size);
      this.atime = now;
      this.mtime = now;
      this.ctime = now;
    }
  }

  /**
   * @param files how many files the root directory starts with ({@code file0} ...)
   * @param fileSize the size of each of them, in bytes (they read as zeros)
   * @param uid owner of the root and the initial files
   * @param gid group of the root and the initial files
   */
  public NullFs(int files, long fileSize, int uid, int gid) {
    if (files < 0 || fileSize < 0) {
      throw new IllegalArgumentException("files and fileSize must not be negative");
    }
    this.uid = uid;
    this.gid = gid;
    for (int i = 0; i < files; i++) {
      Node n = new Node(nextIno.getAndIncrement(), Attr.S_IFREG | 0644, fileSize, started);
      inodes.put(n.ino, n);
      root.put("file" + i, n);
    }
  }

  @Override
  public Set<OptionalOp> optionalOps() {
    return EnumSet.of(OptionalOp.FALLOCATE);
  }

  @Override
  public ConnectionInfo init(ConnectionInfo conn) {
    return Connection.negotiate(conn);
  }

  // ---- names

  @Override
  public Entry lookup(long parent, String name) {
    requireRoot(parent);
    Node n = root.get(name);
    if (n == null) {
      throw new ErrnoException(Errno.ENOENT);
    }
    return Entry.of(attr(n));
  }

  @Override
  public Attr getattr(long ino, OptionalLong fh) {
    return ino == ROOT ? rootAttr() : attr(node(ino));
  }

  @Override
  public Attr setattr(RequestContext ctx, long ino, SetAttr c) {
    if (ino == ROOT) {
      return rootAttr(); // nothing of the root is kept
    }
    Node n = node(ino);
    c.mode().ifPresent(m -> n.mode = (n.mode & Attr.S_IFMT) | (m & 07777));
    c.size()
        .ifPresent(
            s -> {
              if (s < 0) {
                throw new ErrnoException(Errno.EINVAL);
              }
              n.size.set(s);
            });
    c.atime().ifPresent(t -> n.atime = t);
    c.mtime().ifPresent(t -> n.mtime = t);
    n.ctime = c.ctime().orElseGet(Instant::now);
    return attr(n);
  }

  @Override
  public Entry mknod(RequestContext ctx, long parent, String name, int mode, long rdev) {
    if ((mode & Attr.S_IFMT) != Attr.S_IFREG) {
      throw new ErrnoException(Errno.EPERM, "only regular files");
    }
    return Entry.of(attr(newFile(parent, name, mode)));
  }

  @Override
  public CreatedFile create(RequestContext ctx, long parent, String name, int mode, int flags) {
    Node n = root.get(name);
    if (n == null) {
      n = newFile(parent, name, mode);
    } else if ((flags & O_TRUNC) != 0) {
      n.size.set(0);
    }
    return new CreatedFile(Entry.of(attr(n)), handle());
  }

  @Override
  public void unlink(long parent, String name) {
    requireRoot(parent);
    Node n = root.remove(name);
    if (n == null) {
      throw new ErrnoException(Errno.ENOENT);
    }
    n.nlink = 0; // the inode stays readable through open handles (and in the map: a few bytes each)
    n.ctime = Instant.now();
  }

  @Override
  public Entry mkdir(RequestContext ctx, long parent, String name, int mode) {
    throw new ErrnoException(Errno.EPERM, "no directories in nullfs");
  }

  // ---- files

  @Override
  public OpenFile open(RequestContext ctx, long ino, int flags) {
    Node n = node(ino);
    if ((flags & O_ACCMODE) != O_RDONLY && (flags & O_TRUNC) != 0) {
      n.size.set(0);
    }
    return handle();
  }

  @Override
  public int read(long ino, long fh, long offset, ByteBuffer dst) {
    long size = node(ino).size.get();
    int n = (int) Math.max(0, Math.min(dst.remaining(), size - offset));
    for (int done = 0; done < n; ) {
      int chunk = Math.min(n - done, ZEROS.capacity());
      dst.put(done, ZEROS, 0, chunk);
      done += chunk;
    }
    return n;
  }

  @Override
  public int write(RequestContext ctx, long ino, long fh, long offset, ByteBuffer data) {
    int n = data.remaining();
    long end = offset + n;
    AtomicLong size = node(ino).size;
    if (size.get() < end) {
      size.accumulateAndGet(end, Math::max);
    }
    return n;
  }

  @Override
  public void flush(long ino, long fh) {}

  @Override
  public void release(long ino, long fh, int flags) {}

  @Override
  public void fsync(long ino, long fh, boolean datasync) {}

  @Override
  public void fallocate(long ino, long fh, int mode, long offset, long length) {
    if ((mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0) {
      throw new ErrnoException(Errno.EOPNOTSUPP, "fallocate mode " + mode);
    }
    if ((mode & FALLOC_FL_KEEP_SIZE) == 0) {
      node(ino).size.accumulateAndGet(offset + length, Math::max);
    }
  }

  // ---- the root directory

  @Override
  public OpenFile opendir(long ino, int flags) {
    if (ino != ROOT) {
      throw new ErrnoException(Errno.ENOTDIR);
    }
    return handle();
  }

  @Override
  public void readdir(long ino, long fh, long offset, DirectoryFiller filler) {
    requireRoot(ino);
    List<Map.Entry<String, Node>> entries = new ArrayList<>();
    entries.add(Map.entry(".", new Node(ROOT, Attr.S_IFDIR | 0755, 0, started)));
    entries.add(Map.entry("..", new Node(ROOT, Attr.S_IFDIR | 0755, 0, started)));
    entries.addAll(root.entrySet());
    for (int i = (int) offset; i < entries.size(); i++) {
      Map.Entry<String, Node> e = entries.get(i);
      if (!filler.add(e.getKey(), e.getValue().ino, e.getValue().mode, i + 1)) {
        return;
      }
    }
  }

  @Override
  public void releasedir(long ino, long fh) {}

  @Override
  public void fsyncdir(long ino, long fh, boolean datasync) {}

  @Override
  public Statfs statfs(long ino) {
    return new Statfs(
        BLKSIZE,
        STATFS_BLOCK,
        STATFS_BLOCKS,
        STATFS_BLOCKS,
        STATFS_BLOCKS,
        1L << 32,
        (1L << 32) - inodes.size(),
        255);
  }

  // ---- helpers

  private Node newFile(long parent, String name, int mode) {
    requireRoot(parent);
    Node n = new Node(nextIno.getAndIncrement(), Attr.S_IFREG | (mode & 07777), 0, Instant.now());
    if (root.putIfAbsent(name, n) != null) {
      throw new ErrnoException(Errno.EEXIST);
    }
    inodes.put(n.ino, n);
    return n;
  }

  private Node node(long ino) {
    Node n = inodes.get(ino);
    if (n == null) {
      throw new ErrnoException(ino == ROOT ? Errno.EISDIR : Errno.ENOENT);
    }
    return n;
  }

  private static void requireRoot(long parent) {
    if (parent != ROOT) {
      throw new ErrnoException(Errno.ENOTDIR);
    }
  }

  private OpenFile handle() {
    return OpenFile.of(nextHandle.getAndIncrement()).withKeepCache(true);
  }

  private Attr rootAttr() {
    return new Attr(
        ROOT, Attr.S_IFDIR | 0755, 2, uid, gid, 0, 0, 0, BLKSIZE, started, started, started);
  }

  private Attr attr(Node n) {
    long size = n.size.get();
    return new Attr(
        n.ino,
        n.mode,
        n.nlink,
        uid,
        gid,
        0,
        size,
        (size + 511) / 512,
        BLKSIZE,
        n.atime,
        n.mtime,
        n.ctime);
  }
}
