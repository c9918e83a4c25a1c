package io.dedupfs.fs;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.CreatedFile;
import io.dedupfs.fs.fuse.Entry;
import io.dedupfs.fs.fuse.FuseOperations;
import io.dedupfs.fs.fuse.OpenFile;
import io.dedupfs.fs.fuse.RequestContext;
import io.dedupfs.fs.fuse.SetAttr;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Random;

/**
 * Plays the kernel's part against a {@link DedupFs} on a real store, without /dev/fuse: the FUSE
 * requests that programs cause, in the order a mount with {@code --debug-fuse} shows them (traced
 * on Linux 6.x with libfuse 3.14, coreutils 9.1 and qemu-img 7.2). Like the kernel it counts the
 * lookups it was answered and returns them with {@link #forget}; a failed request is turned into
 * its errno by {@link Errnos}, as the session does.
 */
final class Kernel implements AutoCloseable {
  static final int O_RDONLY = 0;
  static final int O_WRONLY = 01;
  static final int O_RDWR = 02;
  static final int O_CREAT = 0100;
  static final int O_EXCL = 0200;
  static final int O_TRUNC = 01000;

  /** The kernel adds it to every open of a 64-bit process. */
  static final int O_LARGEFILE = 0100000;

  static final int O_CLOEXEC = 02000000;

  /** What cp reads and writes at a time, and so the size of its write requests. */
  static final int PIECE = 128 * 1024;

  /** qemu-img asks every new image for its project id (FS_IOC_FSGETXATTR): ENOTTY. */
  static final int FS_IOC_FSGETXATTR = 0x801c581f;

  /** The caller: a user's process (this JVM's pid, so that /proc/PID/fd names its descriptors). */
  static final RequestContext CALLER =
      new RequestContext(1000, 1000, (int) ProcessHandle.current().pid(), 022, false);

  final Datastore store;
  final DedupFs fs;
  private final Errnos errnos = new Errnos();

  /** Lookups answered per inode, not yet forgotten. */
  private final Map<Long, Long> lookups = new HashMap<>();

  private Kernel(Datastore store, boolean readOnly) {
    this.store = store;
    this.fs =
        new DedupFs(
            store, readOnly,
            false); // .snapshots hidden from the root's listing, as mounted by default
  }

  /** A new store in {@code dir}, served read-write. */
  static Kernel mount(Path dir) throws IOException {
    return new Kernel(Datastore.open(dir, config()), false);
  }

  /** The existing store in {@code dir}, opened and served read-only (dedupfs mount -r). */
  static Kernel mountReadOnly(Path dir) throws IOException {
    return new Kernel(Datastore.open(dir, config().withReadOnly(true)), true);
  }

  private static DatastoreConfig config() {
    return DatastoreConfig.defaults().withDirtyLimit(64L << 20).withLogBytes(4L << 20);
  }

  @Override
  public void close() throws IOException {
    store.close();
  }

  /** An open file or directory: its inode and handle. */
  record Open(long ino, long fh) {}

  /** A request, for {@link #errno}. */
  @FunctionalInterface
  interface Request {
    void send() throws Exception;
  }

  /** The errno the session answers for a request that must fail. */
  int errno(Request r) {
    try {
      r.send();
    } catch (Throwable t) {
      return errnos.errno(t);
    }
    throw new AssertionError("the request succeeded; an error was expected");
  }

  /**
   * 0 when the request succeeds, else its errno (for requests whose failure the program ignores).
   */
  int result(Request r) {
    try {
      r.send();
      return 0;
    } catch (Throwable t) {
      return errnos.errno(t);
    }
  }

  // ---- single requests

  long lookup(long parent, String name) throws Exception {
    return counted(fs.lookup(parent, name));
  }

  /** A lookup that must answer ENOENT (a program checking that a name is free). */
  void lookupMissing(long parent, String name) {
    assertThat(errno(() -> fs.lookup(parent, name)))
        .as("lookup of %s", name)
        .isEqualTo(Errnos.ENOENT);
  }

  Attr getattr(long ino) throws Exception {
    return fs.getattr(ino, OptionalLong.empty());
  }

  Attr fstat(Open f) throws Exception {
    return fs.getattr(f.ino(), OptionalLong.of(f.fh()));
  }

  long mkdir(long parent, String name) throws Exception {
    return counted(fs.mkdir(CALLER, parent, name, 0755));
  }

  /** create(2) of a new regular file: the kernel looks the name up first, then sends CREATE. */
  Open create(long parent, String name, int mode, int flags) throws Exception {
    lookupMissing(parent, name);
    CreatedFile c =
        fs.create(CALLER, parent, name, Attr.S_IFREG | mode, flags | O_CREAT | O_LARGEFILE);
    counted(c.entry());
    assertThat(c.entry().attr().size()).isZero();
    assertThat(c.entry().attr().mode()).isEqualTo(Attr.S_IFREG | mode);
    return new Open(c.entry().attr().ino(), c.file().fh());
  }

  Open open(long ino, int flags) throws Exception {
    OpenFile f = fs.open(CALLER, ino, flags | O_LARGEFILE);
    return new Open(ino, f.fh());
  }

  Open opendir(long ino) throws Exception {
    return new Open(ino, fs.opendir(ino, O_RDONLY | O_LARGEFILE).fh());
  }

  /** close(2) of the last descriptor: FLUSH, then RELEASE. */
  void close(Open f) throws Exception {
    fs.flush(f.ino(), f.fh());
    fs.release(f.ino(), f.fh(), 0);
  }

  /** The kernel drops the inode from its cache: every lookup it was answered goes back at once. */
  void forget(long ino) throws Exception {
    Long n = lookups.remove(ino);
    if (n != null) {
      fs.forget(ino, n);
    }
  }

  /** A FORGET of some of the lookups of {@code ino} (the kernel may return them in parts). */
  void forget(long ino, long n) throws Exception {
    assertThat(lookups.get(ino)).as("lookups of %d", ino).isGreaterThan(n);
    lookups.merge(ino, -n, Long::sum);
    fs.forget(ino, n);
  }

  /** write(2) of {@code data} at {@code offset}, sent in requests of {@code piece} bytes. */
  void write(Open f, long offset, byte[] data, int piece) throws Exception {
    for (int at = 0; at < data.length; at += piece) {
      int n = Math.min(piece, data.length - at);
      ByteBuffer b = ByteBuffer.wrap(data, at, n).slice().asReadOnlyBuffer();
      assertThat(fs.write(CALLER, f.ino(), f.fh(), offset + at, b))
          .as("write at %d", offset + at)
          .isEqualTo(n);
    }
  }

  void write(Open f, long offset, byte[] data) throws Exception {
    write(f, offset, data, PIECE);
  }

  /**
   * read(2) of up to {@code length} bytes at {@code offset}, in 128 KiB requests, up to end of
   * file.
   */
  byte[] read(Open f, long offset, int length) throws Exception {
    ByteBuffer all = ByteBuffer.allocate(length);
    while (all.hasRemaining()) {
      ByteBuffer dst = ByteBuffer.allocateDirect(Math.min(PIECE, all.remaining()));
      int n = fs.read(f.ino(), f.fh(), offset + all.position(), dst);
      all.put(dst.flip().limit(n));
      if (n < dst.capacity()) {
        break;
      }
    }
    return Arrays.copyOf(all.array(), all.position());
  }

  /** Everything in the file, read through {@code f}: what {@code cat} sees. */
  byte[] readAll(Open f) throws Exception {
    return read(f, 0, Math.toIntExact(fstat(f).size()));
  }

  /** Everything in the file {@code ino}, through an open of its own. */
  byte[] contents(long ino) throws Exception {
    Open f = open(ino, O_RDONLY);
    try {
      return readAll(f);
    } finally {
      close(f);
    }
  }

  /**
   * lseek(2) with SEEK_DATA or SEEK_HOLE: the offset, or -1 for ENXIO (no more data past the
   * offset).
   */
  long lseek(Open f, long offset, int whence) {
    long[] r = new long[1];
    int errno = result(() -> r[0] = fs.lseek(f.ino(), f.fh(), offset, whence));
    if (errno == Errnos.ENXIO) {
      return -1;
    }
    assertThat(errno).as("lseek(%d, %d)", offset, whence).isZero();
    return r[0];
  }

  /** The data extents of a file as qemu-img finds them: SEEK_DATA then SEEK_HOLE, until ENXIO. */
  List<long[]> dataExtents(Open f) {
    List<long[]> out = new ArrayList<>();
    long at = 0;
    while (true) {
      long data = lseek(f, at, FuseOperations.SEEK_DATA);
      if (data < 0) {
        return out;
      }
      long hole = lseek(f, data, FuseOperations.SEEK_HOLE);
      out.add(new long[] {data, hole});
      at = hole;
    }
  }

  /**
   * Every entry of a directory by readdir requests whose replies hold at most {@code perReply}
   * entries.
   */
  List<Listed> readdir(long dir, int perReply) throws Exception {
    Open d = opendir(dir);
    List<Listed> all = new ArrayList<>();
    long offset = 0;
    while (true) {
      List<Listed> reply = readdirOnce(d, offset, perReply);
      if (reply.isEmpty()) {
        fs.releasedir(dir, d.fh());
        return all;
      }
      all.addAll(reply);
      offset = reply.get(reply.size() - 1).nextOffset();
    }
  }

  /** One readdir reply from {@code offset}, with room for {@code room} entries. */
  List<Listed> readdirOnce(Open d, long offset, int room) throws Exception {
    List<Listed> reply = new ArrayList<>();
    fs.readdir(
        d.ino(),
        d.fh(),
        offset,
        (name, ino, mode, next) -> {
          if (reply.size() == room) {
            return false;
          }
          reply.add(new Listed(name, ino, mode, next));
          return true;
        });
    return reply;
  }

  /** One entry of a readdir reply. */
  record Listed(String name, long ino, int mode, long nextOffset) {}

  // ---- setattr as the kernel sends it

  static SetAttr size(long size, Open f) {
    return new SetAttr(
        OptionalInt.empty(),
        OptionalInt.empty(),
        OptionalInt.empty(),
        OptionalLong.of(size),
        Optional.empty(),
        Optional.empty(),
        Optional.empty(),
        OptionalLong.of(f.fh()));
  }

  static SetAttr times(Instant atime, Instant mtime, Open f) {
    return new SetAttr(
        OptionalInt.empty(),
        OptionalInt.empty(),
        OptionalInt.empty(),
        OptionalLong.empty(),
        Optional.of(atime),
        Optional.of(mtime),
        Optional.empty(),
        OptionalLong.of(f.fh()));
  }

  static SetAttr mode(int mode, Open f) {
    return new SetAttr(
        OptionalInt.of(mode),
        OptionalInt.empty(),
        OptionalInt.empty(),
        OptionalLong.empty(),
        Optional.empty(),
        Optional.empty(),
        Optional.empty(),
        OptionalLong.of(f.fh()));
  }

  Attr setattr(long ino, SetAttr change) throws Exception {
    return fs.setattr(CALLER, ino, change);
  }

  // ---- what programs do

  /**
   * {@code cp SRC NAME} with SRC on another filesystem: NAME is looked up twice (stat, then open),
   * created, written in 128 KiB requests (a GETXATTR of security.capability before each, as the
   * kernel asks before every write), flushed and released. Returns the new file's inode.
   */
  long cpFromOutside(byte[] src, long parent, String name) throws Exception {
    lookupMissing(parent, name);
    Open dst = create(parent, name, 0644, O_WRONLY | O_EXCL);
    for (int at = 0; at < src.length; at += PIECE) {
      assertThat(errno(() -> fs.getxattr(dst.ino(), "security.capability")))
          .isEqualTo(Errnos.ENODATA);
      write(dst, at, Arrays.copyOfRange(src, at, Math.min(src.length, at + PIECE)));
    }
    close(dst);
    return dst.ino();
  }

  /**
   * {@code cp [-p] SRC NAME} within the mount: SRC is opened, NAME created, the bytes copied with
   * copy_file_range until it answers 0; with -p the times are set through the new file, its ACL is
   * copied (getxattr on the source, setxattr on the copy: cp goes on when that is refused) and its
   * mode set. Both files are then closed, the copy first.
   */
  long cpWithin(long srcIno, long parent, String name, boolean preserve) throws Exception {
    lookupMissing(parent, name);
    Attr srcAttr = getattr(srcIno);
    Open src = open(srcIno, O_RDONLY);
    Open dst = create(parent, name, preserve ? 0600 : 0644, O_WRONLY | O_EXCL);
    long at = 0;
    long n;
    // cp asks for all there is (SSIZE_MAX rounded down); the kernel caps a request at 0xfffff000
    while ((n = fs.copyFileRange(src.ino(), src.fh(), at, dst.ino(), dst.fh(), at, 0xfffff000L, 0))
        > 0) {
      at += n;
    }
    if (preserve) {
      setattr(dst.ino(), times(srcAttr.atime(), srcAttr.mtime(), dst));
      assertThat(errno(() -> fs.getxattr(srcIno, "system.posix_acl_access")))
          .isEqualTo(Errnos.ENODATA);
      result(() -> fs.setxattr(dst.ino(), "system.posix_acl_access", new byte[28], 0));
      setattr(dst.ino(), mode(srcAttr.mode(), dst));
    }
    close(dst);
    close(src);
    return dst.ino();
  }

  /**
   * {@code cp SRC NAME} onto an existing NAME (src from another filesystem): NAME is opened with
   * O_TRUNC (the kernel passes it on: atomic_o_trunc), then written and closed.
   */
  void cpOver(byte[] src, long parent, String name) throws Exception {
    long ino = lookup(parent, name);
    Open dst = open(ino, O_WRONLY | O_TRUNC);
    assertThat(fstat(dst).size()).isZero();
    write(dst, 0, src);
    close(dst);
  }

  /**
   * {@code qemu-img create -f raw NAME SIZE}, also the first step of {@code qemu-img convert} to a
   * new image: lookups, CREATE (O_RDWR), ftruncate to 0, a probing open with an ioctl that gets
   * ENOTTY, ftruncate to the size, a write of 4 KiB of zeros at 0 (qemu's alignment probe), close.
   */
  long qemuImgCreate(long parent, String name, long size) throws Exception {
    for (int i = 0; i < 4; i++) {
      lookupMissing(parent, name);
    }
    Open img = create(parent, name, 0644, O_RDWR | O_CLOEXEC);
    setattr(img.ino(), size(0, img));
    Open probe = open(img.ino(), O_RDWR | O_CLOEXEC);
    assertThat(
            errno(
                () ->
                    fs.ioctl(
                        CALLER, img.ino(), probe.fh(), FS_IOC_FSGETXATTR, 0, 0, new byte[0], 28)))
        .isEqualTo(Errnos.ENOTTY);
    fs.release(img.ino(), probe.fh(), 0);
    assertThat(setattr(img.ino(), size(size, img)).size()).isEqualTo(size);
    write(img, 0, new byte[4096]);
    close(img);
    return img.ino();
  }

  /**
   * {@code qemu-img convert -f raw -O raw SRC DST} with both on the mount. DST is created as by
   * qemu-img create (unless {@code existing}: {@code convert -n}), then opened O_RDWR; the source's
   * extents are found with SEEK_DATA/SEEK_HOLE, the data copied with pwrite and, into an existing
   * image, the holes punched (PUNCH_HOLE | KEEP_SIZE); an existing image is fdatasync'd at the end.
   */
  long qemuImgConvert(long srcIno, long parent, String name, boolean existing) throws Exception {
    long size = getattr(srcIno).size();
    Open src = open(srcIno, O_RDONLY | O_CLOEXEC);
    long dstIno = existing ? lookup(parent, name) : qemuImgCreate(parent, name, size);
    Open dst = open(dstIno, O_RDWR | O_CLOEXEC);
    long at = 0;
    for (long[] e : dataExtents(src)) {
      if (existing && e[0] > at) {
        fs.fallocate(
            dstIno,
            dst.fh(),
            FuseOperations.FALLOC_FL_PUNCH_HOLE | FuseOperations.FALLOC_FL_KEEP_SIZE,
            at,
            e[0] - at);
      }
      write(dst, e[0], read(src, e[0], Math.toIntExact(e[1] - e[0])), 2 << 20);
      at = e[1];
    }
    if (existing && at < size) {
      fs.fallocate(
          dstIno,
          dst.fh(),
          FuseOperations.FALLOC_FL_PUNCH_HOLE | FuseOperations.FALLOC_FL_KEEP_SIZE,
          at,
          size - at);
    }
    if (existing) {
      fs.fsync(dstIno, dst.fh(), true);
    }
    close(dst);
    close(src);
    return dstIno;
  }

  // ---- helpers

  private long counted(Entry e) {
    lookups.merge(e.attr().ino(), 1L, Long::sum);
    return e.attr().ino();
  }

  static byte[] random(long seed, int size) {
    byte[] b = new byte[size];
    new Random(seed).nextBytes(b);
    return b;
  }

  /** What a file should hold: its bytes up to its size. */
  static final class Model {
    private byte[] bytes = new byte[0];

    void write(long offset, byte[] data) {
      int end = Math.toIntExact(offset + data.length);
      if (end > bytes.length) {
        bytes = Arrays.copyOf(bytes, end);
      }
      System.arraycopy(data, 0, bytes, (int) offset, data.length);
    }

    /** Zeroes {@code [offset, offset + length)} that lies within the size. */
    void zero(long offset, long length) {
      Arrays.fill(
          bytes,
          (int) Math.min(offset, bytes.length),
          (int) Math.min(offset + length, bytes.length),
          (byte) 0);
    }

    void resize(long size) {
      bytes = Arrays.copyOf(bytes, Math.toIntExact(size));
    }

    long size() {
      return bytes.length;
    }

    byte[] bytes() {
      return bytes.clone();
    }
  }
}
