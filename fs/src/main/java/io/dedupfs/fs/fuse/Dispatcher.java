package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import jnr.constants.platform.Errno;
import jnr.ffi.Pointer;
import jnr.ffi.provider.ClosureManager;

/**
 * The operations table of a {@link FuseSession}: one native callback per FUSE operation, which
 * decodes libfuse's arguments, calls {@link FuseOperations} and writes the reply.
 *
 * <p>Callbacks run on the session's {@link Worker} threads (libfuse calls them from {@code
 * fuse_session_process_buf}) and use the worker's native scratch memory for replies, so a request
 * allocates nothing here beyond what the filesystem's answer is made of.
 *
 * <p>Each request callback answers exactly once and lets nothing escape into native code: its work
 * runs in {@link #run}, which answers any failure with an errno ({@link ErrnoException}'s own, else
 * the one the {@link FuseSession.ErrorMapper} decides). init, destroy and forget have no error
 * reply and catch for themselves.
 */
final class Dispatcher {
  private static final System.Logger LOG = System.getLogger(FuseSession.class.getName());
  private static final int EIO = Errno.EIO.intValue();

  /**
   * A request's work: decode, call the filesystem, reply. Whatever it throws, {@link #run} answers.
   *
   * <p>It gets everything as arguments: the dispatcher, the request and the callback's arguments
   * after it ({@code int}s widened; 0 where the callback has fewer), so the lambdas capture nothing
   * and the JVM makes each of them once, not once per request. (A capturing lambda was measured
   * being allocated per request: {@link #run}, shared by all callbacks, is compiled on its own and
   * not inlined into them, so escape analysis cannot remove it.)
   */
  @FunctionalInterface
  private interface Op {
    void run(Dispatcher d, long req, long a1, long a2, long a3, long a4, long a5) throws Exception;
  }

  private final Native.LibFuse lib;
  private final FuseOperations ops;
  private final FuseSession.ErrorMapper errors;
  private final MountOptions options;

  /**
   * The jnr closures behind the function pointers in libfuse's copy of the operations table: kept
   * alive here.
   */
  private final List<Object> closures = new ArrayList<>();

  private final CountDownLatch initDone = new CountDownLatch(1);
  private volatile int kernelInitFlags;

  private volatile int kernelInitFlags2;
  private volatile Throwable initFailure;

  Dispatcher(
      Native.LibFuse lib,
      FuseOperations ops,
      FuseSession.ErrorMapper errors,
      MountOptions options) {
    this.lib = lib;
    this.ops = ops;
    this.errors = errors;
    this.options = options;
  }

  /**
   * Waits for the kernel's INIT to have been answered.
   *
   * @return false if it did not arrive within {@code timeout}
   */
  boolean awaitInit(Duration timeout) throws InterruptedException {
    return initDone.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** The flags of the kernel's INIT request (0 until it arrived): what the kernel offers. */
  int kernelInitFlags() {
    return kernelInitFlags;
  }

  /** The flags2 of the kernel's INIT request (0 until it arrived, or before protocol 7.36). */
  int kernelInitFlags2() {
    return kernelInitFlags2;
  }

  /** What {@link FuseOperations#init} threw, or null. */
  Throwable initFailure() {
    return initFailure;
  }

  // ------------------------------------------------------------------------------------------------
  // The operations table

  private <T> void register(long table, Layout.Op op, Class<T> type, T handler) {
    ClosureManager cm = jnr.ffi.Runtime.getSystemRuntime().getClosureManager();
    Pointer p = cm.getClosurePointer(type, handler);
    closures.add(handler);
    closures.add(p);
    MEM.putAddress(table + op.offset(), p.address());
  }

  /**
   * Fills the {@code struct fuse_lowlevel_ops} at {@code t} (zeroed, {@link Layout#OPS_SIZEOF}
   * bytes).
   */
  void fill(long t) {
    Set<OptionalOp> optional = ops.optionalOps();
    register(t, Layout.Op.INIT, Callbacks.Init.class, this::init);
    register(t, Layout.Op.DESTROY, Callbacks.Destroy.class, this::destroy);
    register(t, Layout.Op.LOOKUP, Callbacks.InoName.class, this::lookup);
    register(t, Layout.Op.FORGET, Callbacks.Forget.class, this::forget);
    register(t, Layout.Op.FORGET_MULTI, Callbacks.ForgetMulti.class, this::forgetMulti);
    register(t, Layout.Op.GETATTR, Callbacks.InoFi.class, this::getattr);
    register(t, Layout.Op.SETATTR, Callbacks.Setattr.class, this::setattr);
    register(t, Layout.Op.READLINK, Callbacks.Ino.class, this::readlink);
    register(t, Layout.Op.MKNOD, Callbacks.Mknod.class, this::mknod);
    register(t, Layout.Op.MKDIR, Callbacks.Mkdir.class, this::mkdir);
    register(t, Layout.Op.UNLINK, Callbacks.InoName.class, this::unlink);
    register(t, Layout.Op.RMDIR, Callbacks.InoName.class, this::rmdir);
    register(t, Layout.Op.SYMLINK, Callbacks.Symlink.class, this::symlink);
    register(t, Layout.Op.RENAME, Callbacks.Rename.class, this::rename);
    register(t, Layout.Op.LINK, Callbacks.Link.class, this::link);
    register(t, Layout.Op.OPEN, Callbacks.InoFi.class, this::open);
    register(t, Layout.Op.READ, Callbacks.Read.class, this::read);
    register(t, Layout.Op.WRITE, Callbacks.Write.class, this::write);
    register(t, Layout.Op.FLUSH, Callbacks.InoFi.class, this::flush);
    register(t, Layout.Op.RELEASE, Callbacks.InoFi.class, this::release);
    register(t, Layout.Op.FSYNC, Callbacks.Fsync.class, this::fsync);
    register(t, Layout.Op.OPENDIR, Callbacks.InoFi.class, this::opendir);
    register(t, Layout.Op.READDIR, Callbacks.Read.class, this::readdir);
    register(t, Layout.Op.RELEASEDIR, Callbacks.InoFi.class, this::releasedir);
    register(t, Layout.Op.FSYNCDIR, Callbacks.Fsync.class, this::fsyncdir);
    register(t, Layout.Op.STATFS, Callbacks.Ino.class, this::statfs);
    register(t, Layout.Op.SETXATTR, Callbacks.Setxattr.class, this::setxattr);
    register(t, Layout.Op.GETXATTR, Callbacks.Getxattr.class, this::getxattr);
    register(t, Layout.Op.LISTXATTR, Callbacks.Listxattr.class, this::listxattr);
    register(t, Layout.Op.REMOVEXATTR, Callbacks.InoName.class, this::removexattr);
    register(t, Layout.Op.ACCESS, Callbacks.Access.class, this::access);
    register(t, Layout.Op.CREATE, Callbacks.Create.class, this::create);
    if (optional.contains(OptionalOp.IOCTL)) {
      register(t, Layout.Op.IOCTL, Callbacks.Ioctl.class, this::ioctl);
    }
    if (optional.contains(OptionalOp.FALLOCATE)) {
      register(t, Layout.Op.FALLOCATE, Callbacks.Fallocate.class, this::fallocate);
    }
    if (optional.contains(OptionalOp.COPY_FILE_RANGE)) {
      register(t, Layout.Op.COPY_FILE_RANGE, Callbacks.CopyFileRange.class, this::copyFileRange);
    }
    if (optional.contains(OptionalOp.LSEEK)) {
      register(t, Layout.Op.LSEEK, Callbacks.Lseek.class, this::lseek);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Callbacks. Each one answers exactly once (forget: fuse_reply_none) and lets nothing escape.

  private void init(long userdata, long conn) {
    try {
      kernelInitFlags = worker().requestInt(Layout.IN_HEADER_SIZEOF + Layout.INIT_IN_FLAGS);
      if ((kernelInitFlags & Layout.INIT_EXT) != 0) {
        kernelInitFlags2 = worker().requestInt(Layout.IN_HEADER_SIZEOF + Layout.INIT_IN_FLAGS2);
      }
      ConnectionInfo offered = ConnectionInfo.read(conn);
      int want =
          offered.want() & ~ConnectionInfo.CAP_SPLICE_ALL & ~ConnectionInfo.CAP_HANDLE_KILLPRIV;
      if (options.writebackCache()) {
        want |= ConnectionInfo.CAP_WRITEBACK_CACHE & offered.capable();
      } else {
        want &= ~ConnectionInfo.CAP_WRITEBACK_CACHE;
      }
      ConnectionInfo proposed = offered.withWant(want);
      ConnectionInfo chosen = ops.init(proposed);
      chosen.write(conn, offered);
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "init failed", t);
      initFailure = t;
    } finally {
      initDone.countDown();
    }
  }

  private void destroy(long userdata) {
    try {
      ops.destroy();
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "destroy failed", t);
    }
  }

  private void lookup(long req, long a1, long a2) {
    run(
        req,
        "lookup",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, parent, name, u3, u4, u5) ->
            d.replyEntry(r, d.ops.lookup(parent, worker().name(name))));
  }

  private void forget(long req, long ino, long nlookup) {
    try {
      ops.forget(ino, nlookup);
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.WARNING, "forget of inode " + ino + " failed", t);
    } finally {
      lib.fuse_reply_none(req);
    }
  }

  private void forgetMulti(long req, long count, long forgets) {
    try {
      for (long i = 0; i < count; i++) {
        long f = forgets + i * Layout.FORGET_SIZEOF;
        long ino = MEM.getLong(f + Layout.FORGET_INO);
        try {
          ops.forget(ino, MEM.getLong(f + Layout.FORGET_NLOOKUP));
        } catch (Throwable t) {
          LOG.log(System.Logger.Level.WARNING, "forget of inode " + ino + " failed", t);
        }
      }
    } finally {
      lib.fuse_reply_none(req);
    }
  }

  private void getattr(long req, long a1, long a2) {
    run(
        req,
        "getattr",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) ->
            d.replyAttr(
                r, d.ops.getattr(ino, fi == 0 ? OptionalLong.empty() : OptionalLong.of(fh(fi)))));
  }

  private void setattr(long req, long a1, long a2, int a3, long a4) {
    run(
        req,
        "setattr",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, ino, attr, toSet, fi, u5) -> {
          SetAttr changes =
              SetAttr.decode(
                  attr, (int) toSet, fi == 0 ? OptionalLong.empty() : OptionalLong.of(fh(fi)));
          d.replyAttr(r, d.ops.setattr(d.context(r), ino, changes));
        });
  }

  private void readlink(long req, long a1) {
    run(
        req,
        "readlink",
        a1,
        0,
        0,
        0,
        0,
        (d, r, ino, u2, u3, u4, u5) ->
            d.lib.fuse_reply_readlink(r, worker().cString(d.ops.readlink(ino))));
  }

  private void mknod(long req, long a1, long a2, int a3, long a4) {
    run(
        req,
        "mknod",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, parent, name, mode, rdev, u5) ->
            d.replyEntry(
                r, d.ops.mknod(d.context(r), parent, worker().name(name), (int) mode, rdev)));
  }

  private void mkdir(long req, long a1, long a2, int a3) {
    run(
        req,
        "mkdir",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, parent, name, mode, u4, u5) ->
            d.replyEntry(r, d.ops.mkdir(d.context(r), parent, worker().name(name), (int) mode)));
  }

  private void unlink(long req, long a1, long a2) {
    run(
        req,
        "unlink",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, parent, name, u3, u4, u5) -> {
          d.ops.unlink(parent, worker().name(name));
          d.ok(r);
        });
  }

  private void rmdir(long req, long a1, long a2) {
    run(
        req,
        "rmdir",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, parent, name, u3, u4, u5) -> {
          d.ops.rmdir(parent, worker().name(name));
          d.ok(r);
        });
  }

  private void symlink(long req, long a1, long a2, long a3) {
    run(
        req,
        "symlink",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, link, parent, name, u4, u5) -> {
          Worker w = worker();
          d.replyEntry(r, d.ops.symlink(d.context(r), w.name(link), parent, w.name(name)));
        });
  }

  private void rename(long req, long a1, long a2, long a3, long a4, int a5) {
    run(
        req,
        "rename",
        a1,
        a2,
        a3,
        a4,
        a5,
        (d, r, parent, name, newParent, newName, flags) -> {
          Worker w = worker();
          d.ops.rename(parent, w.name(name), newParent, w.name(newName), (int) flags);
          d.ok(r);
        });
  }

  private void link(long req, long a1, long a2, long a3) {
    run(
        req,
        "link",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, ino, newParent, newName, u4, u5) ->
            d.replyEntry(r, d.ops.link(ino, newParent, worker().name(newName))));
  }

  private void open(long req, long a1, long a2) {
    run(
        req,
        "open",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) -> {
          OpenFile f = d.ops.open(d.context(r), ino, MEM.getInt(fi + Layout.FI_FLAGS));
          setOpenFile(fi, f);
          if (d.lib.fuse_reply_open(r, fi) != 0) {
            // The opener was interrupted: the kernel will never send release for this handle.
            d.ops.release(ino, f.fh(), MEM.getInt(fi + Layout.FI_FLAGS));
          }
        });
  }

  private void read(long req, long a1, long a2, long a3, long a4) {
    run(
        req,
        "read",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, ino, size, off, fi, u5) -> {
          Worker w = worker();
          ByteBuffer dst = w.replyBuffer((int) size);
          int n = d.ops.read(ino, fh(fi), off, dst);
          d.lib.fuse_reply_buf(r, w.replyAddress(), n);
        });
  }

  private void write(long req, long a1, long a2, long a3, long a4, long a5) {
    run(
        req,
        "write",
        a1,
        a2,
        a3,
        a4,
        a5,
        (d, r, ino, buf, size, off, fi) -> {
          int n = d.ops.write(d.context(r), ino, fh(fi), off, worker().payload(buf, (int) size));
          d.lib.fuse_reply_write(r, n);
        });
  }

  private void flush(long req, long a1, long a2) {
    run(
        req,
        "flush",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) -> {
          d.ops.flush(ino, fh(fi));
          d.ok(r);
        });
  }

  private void release(long req, long a1, long a2) {
    run(
        req,
        "release",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) -> {
          d.ops.release(ino, fh(fi), MEM.getInt(fi + Layout.FI_FLAGS));
          d.ok(r);
        });
  }

  private void fsync(long req, long a1, int a2, long a3) {
    run(
        req,
        "fsync",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, ino, datasync, fi, u4, u5) -> {
          d.ops.fsync(ino, fh(fi), datasync != 0);
          d.ok(r);
        });
  }

  private void opendir(long req, long a1, long a2) {
    run(
        req,
        "opendir",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) -> {
          setOpenFile(fi, d.ops.opendir(ino, MEM.getInt(fi + Layout.FI_FLAGS)));
          d.lib.fuse_reply_open(r, fi);
        });
  }

  private void readdir(long req, long a1, long a2, long a3, long a4) {
    run(
        req,
        "readdir",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, ino, size, off, fi, u5) -> {
          Worker w = worker();
          w.filler.begin((int) size);
          int n;
          try {
            d.ops.readdir(ino, fh(fi), off, w.filler);
          } finally {
            n = w.filler.end();
          }
          d.lib.fuse_reply_buf(r, w.replyAddress(), n);
        });
  }

  private void releasedir(long req, long a1, long a2) {
    run(
        req,
        "releasedir",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, fi, u3, u4, u5) -> {
          d.ops.releasedir(ino, fh(fi));
          d.ok(r);
        });
  }

  private void fsyncdir(long req, long a1, int a2, long a3) {
    run(
        req,
        "fsyncdir",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, ino, datasync, fi, u4, u5) -> {
          d.ops.fsyncdir(ino, fh(fi), datasync != 0);
          d.ok(r);
        });
  }

  private void statfs(long req, long a1) {
    run(
        req,
        "statfs",
        a1,
        0,
        0,
        0,
        0,
        (d, r, ino, u2, u3, u4, u5) -> {
          Statfs s = d.ops.statfs(ino);
          long v = worker().statvfs();
          MEM.setMemory(v, Layout.SV_SIZEOF, (byte) 0);
          MEM.putLong(v + Layout.SV_BSIZE, s.blockSize());
          MEM.putLong(v + Layout.SV_FRSIZE, s.fragmentSize());
          MEM.putLong(v + Layout.SV_BLOCKS, s.blocks());
          MEM.putLong(v + Layout.SV_BFREE, s.blocksFree());
          MEM.putLong(v + Layout.SV_BAVAIL, s.blocksAvail());
          MEM.putLong(v + Layout.SV_FILES, s.files());
          MEM.putLong(v + Layout.SV_FFREE, s.filesFree());
          MEM.putLong(v + Layout.SV_FAVAIL, s.filesFree());
          MEM.putLong(v + Layout.SV_NAMEMAX, s.nameMax());
          d.lib.fuse_reply_statfs(r, v);
        });
  }

  private void setxattr(long req, long a1, long a2, long a3, long a4, int a5) {
    run(
        req,
        "setxattr",
        a1,
        a2,
        a3,
        a4,
        a5,
        (d, r, ino, name, value, size, flags) -> {
          byte[] v = new byte[(int) size];
          MEM.getByteArray(value, v, 0, v.length);
          d.ops.setxattr(ino, worker().name(name), v, (int) flags);
          d.ok(r);
        });
  }

  private void getxattr(long req, long a1, long a2, long a3) {
    run(
        req,
        "getxattr",
        a1,
        a2,
        a3,
        0,
        0,
        (d, r, ino, name, size, u4, u5) ->
            d.replySized(r, d.ops.getxattr(ino, worker().name(name)), size));
  }

  private void listxattr(long req, long a1, long a2) {
    run(
        req,
        "listxattr",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, size, u3, u4, u5) -> {
          StringBuilder names = new StringBuilder();
          for (String n : d.ops.listxattr(ino)) {
            names.append(n).append('\0');
          }
          d.replySized(r, names.toString().getBytes(StandardCharsets.UTF_8), size);
        });
  }

  private void removexattr(long req, long a1, long a2) {
    run(
        req,
        "removexattr",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, name, u3, u4, u5) -> {
          d.ops.removexattr(ino, worker().name(name));
          d.ok(r);
        });
  }

  private void access(long req, long a1, int a2) {
    run(
        req,
        "access",
        a1,
        a2,
        0,
        0,
        0,
        (d, r, ino, mask, u3, u4, u5) -> {
          d.ops.access(d.context(r), ino, (int) mask);
          d.ok(r);
        });
  }

  private void create(long req, long a1, long a2, int a3, long a4) {
    run(
        req,
        "create",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, parent, name, mode, fi, u5) -> {
          int flags = MEM.getInt(fi + Layout.FI_FLAGS);
          CreatedFile c =
              d.ops.create(d.context(r), parent, worker().name(name), (int) mode, flags);
          setOpenFile(fi, c.file());
          long ep = d.fillEntry(c.entry());
          if (d.lib.fuse_reply_create(r, ep, fi) != 0) {
            d.ops.release(c.entry().attr().ino(), c.file().fh(), flags);
          }
        });
  }

  /**
   * Rare, and with more arguments than {@link Op} has: a capturing lambda (allocated per request).
   */
  private void ioctl(
      long req,
      long ino,
      int cmd,
      long arg,
      long fi,
      int flags,
      long inBuf,
      long inSize,
      long outSize) {
    run(
        req,
        "ioctl",
        0,
        0,
        0,
        0,
        0,
        (d, r, u1, u2, u3, u4, u5) -> {
          byte[] in = new byte[(int) inSize];
          if (inSize > 0) {
            MEM.getByteArray(inBuf, in, 0, in.length);
          }
          IoctlResult res = ops.ioctl(context(r), ino, fh(fi), cmd, arg, flags, in, (int) outSize);
          byte[] out = res.out();
          int n = (int) Math.min(out.length, outSize);
          long addr = 0;
          if (n > 0) {
            Worker w = worker();
            w.replyBuffer(n).put(out, 0, n);
            addr = w.replyAddress();
          }
          lib.fuse_reply_ioctl(r, res.result(), addr, n);
        });
  }

  private void fallocate(long req, long a1, int a2, long a3, long a4, long a5) {
    run(
        req,
        "fallocate",
        a1,
        a2,
        a3,
        a4,
        a5,
        (d, r, ino, mode, offset, length, fi) -> {
          d.ops.fallocate(ino, fh(fi), (int) mode, offset, length);
          d.ok(r);
        });
  }

  /**
   * Rare, and with more arguments than {@link Op} has: a capturing lambda (allocated per request).
   */
  private void copyFileRange(
      long req,
      long inoIn,
      long offIn,
      long fiIn,
      long inoOut,
      long offOut,
      long fiOut,
      long len,
      int flags) {
    run(
        req,
        "copy_file_range",
        0,
        0,
        0,
        0,
        0,
        (d, r, u1, u2, u3, u4, u5) ->
            lib.fuse_reply_write(
                r,
                ops.copyFileRange(inoIn, fh(fiIn), offIn, inoOut, fh(fiOut), offOut, len, flags)));
  }

  private void lseek(long req, long a1, long a2, int a3, long a4) {
    run(
        req,
        "lseek",
        a1,
        a2,
        a3,
        a4,
        0,
        (d, r, ino, off, whence, fi, u5) ->
            d.lib.fuse_reply_lseek(r, d.ops.lseek(ino, fh(fi), off, (int) whence)));
  }

  // ------------------------------------------------------------------------------------------------
  // The one error path of requests

  /**
   * Runs a request's {@code op} with the callback's arguments; if it throws, answers the request
   * with an errno instead (see {@link #fail}). Nothing escapes into native code.
   *
   * @param name the operation, for the debug log
   */
  private void run(long req, String name, long a1, long a2, long a3, long a4, long a5, Op op) {
    try {
      op.run(this, req, a1, a2, a3, a4, a5);
    } catch (Throwable t) {
      fail(req, name, t);
    }
  }

  /**
   * Answers a failed request: an {@link ErrnoException}'s own errno (an expected answer, such as
   * ENOENT), else the error mapper's (which logs what it did not expect), EIO if the mapper itself
   * fails.
   */
  private void fail(long req, String name, Throwable t) {
    int errno;
    if (t instanceof ErrnoException e) {
      errno = e.errno();
    } else {
      try {
        errno = errors.errno(t);
      } catch (Throwable mapperFailure) {
        LOG.log(System.Logger.Level.ERROR, "the error mapper failed on " + t, mapperFailure);
        errno = EIO;
      }
    }
    if (errno <= 0) {
      errno = EIO;
    }
    if (LOG.isLoggable(System.Logger.Level.DEBUG)) {
      LOG.log(System.Logger.Level.DEBUG, name + ": errno " + errno + " (" + t + ")");
    }
    try {
      lib.fuse_reply_err(req, errno);
    } catch (Throwable replyFailure) {
      LOG.log(System.Logger.Level.ERROR, "cannot send an error reply", replyFailure);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Replies and decoding

  private static Worker worker() {
    if (Thread.currentThread() instanceof Worker w) {
      return w;
    }
    throw new IllegalStateException(
        "a FUSE request arrived on "
            + Thread.currentThread().getName()
            + ", which is not a session worker");
  }

  private void ok(long req) {
    lib.fuse_reply_err(req, 0);
  }

  /**
   * Answers a size probe ({@code size == 0}) with the length, else the bytes, or ERANGE if they do
   * not fit.
   */
  private void replySized(long req, byte[] value, long size) {
    if (size == 0) {
      lib.fuse_reply_xattr(req, value.length);
    } else if (value.length > size) {
      lib.fuse_reply_err(req, Errno.ERANGE.intValue());
    } else {
      Worker w = worker();
      w.replyBuffer(value.length).put(value);
      lib.fuse_reply_buf(req, w.replyAddress(), value.length);
    }
  }

  private void replyEntry(long req, Entry e) {
    lib.fuse_reply_entry(req, fillEntry(e));
  }

  private long fillEntry(Entry e) {
    long ep = worker().entryParam();
    MEM.setMemory(ep, Layout.EP_SIZEOF, (byte) 0);
    MEM.putLong(ep + Layout.EP_INO, e.attr().ino());
    MEM.putLong(ep + Layout.EP_GENERATION, e.generation());
    fillStat(ep + Layout.EP_ATTR, e.attr());
    MEM.putDouble(ep + Layout.EP_ATTR_TIMEOUT, options.attrTimeout());
    MEM.putDouble(ep + Layout.EP_ENTRY_TIMEOUT, options.entryTimeout());
    return ep;
  }

  private void replyAttr(long req, Attr a) {
    long st = worker().stat();
    fillStat(st, a);
    lib.fuse_reply_attr(req, st, options.attrTimeout());
  }

  private static void fillStat(long st, Attr a) {
    MEM.setMemory(st, Layout.ST_SIZEOF, (byte) 0);
    MEM.putLong(st + Layout.ST_INO, a.ino());
    MEM.putLong(st + Layout.ST_NLINK, a.nlink());
    MEM.putInt(st + Layout.ST_MODE, a.mode());
    MEM.putInt(st + Layout.ST_UID, a.uid());
    MEM.putInt(st + Layout.ST_GID, a.gid());
    MEM.putLong(st + Layout.ST_RDEV, a.rdev());
    MEM.putLong(st + Layout.ST_SIZE, a.size());
    MEM.putLong(st + Layout.ST_BLKSIZE, a.blksize());
    MEM.putLong(st + Layout.ST_BLOCKS, a.blocks());
    putTime(st + Layout.ST_ATIM, a.atime());
    putTime(st + Layout.ST_MTIM, a.mtime());
    putTime(st + Layout.ST_CTIM, a.ctime());
  }

  private static void putTime(long ts, java.time.Instant t) {
    MEM.putLong(ts, t.getEpochSecond());
    MEM.putLong(ts + 8, t.getNano());
  }

  private static long fh(long fi) {
    return MEM.getLong(fi + Layout.FI_FH);
  }

  private static void setOpenFile(long fi, OpenFile f) {
    MEM.putLong(fi + Layout.FI_FH, f.fh());
    int bits = MEM.getInt(fi + Layout.FI_BITS);
    int mask =
        Layout.FI_BIT_DIRECT_IO
            | Layout.FI_BIT_KEEP_CACHE
            | Layout.FI_BIT_NONSEEKABLE
            | Layout.FI_BIT_CACHE_READDIR
            | Layout.FI_BIT_NOFLUSH;
    MEM.putInt(fi + Layout.FI_BITS, (bits & ~mask) | f.bits());
  }

  private RequestContext context(long req) {
    long ctx = lib.fuse_req_ctx(req);
    return new RequestContext(
        MEM.getInt(ctx + Layout.CTX_UID),
        MEM.getInt(ctx + Layout.CTX_GID),
        MEM.getInt(ctx + Layout.CTX_PID),
        MEM.getInt(ctx + Layout.CTX_UMASK),
        killSuidGid(worker()));
  }

  /**
   * Whether the kernel's request being served asks the filesystem to drop set-user-ID and
   * set-group-ID bits: a flag libfuse 3.14 does not pass on, read from the request itself.
   */
  private static boolean killSuidGid(Worker w) {
    int args = Layout.IN_HEADER_SIZEOF;
    return switch (w.requestInt(Layout.IN_OPCODE)) {
      case Layout.OPCODE_WRITE ->
          (w.requestInt(args + Layout.WRITE_FLAGS) & Layout.WRITE_KILL_SUIDGID) != 0;
      case Layout.OPCODE_SETATTR ->
          (w.requestInt(args + Layout.SETATTR_VALID) & Layout.FATTR_KILL_SUIDGID) != 0;
      case Layout.OPCODE_OPEN ->
          (w.requestInt(args + Layout.OPEN_OPEN_FLAGS) & Layout.OPEN_KILL_SUIDGID) != 0;
      case Layout.OPCODE_CREATE ->
          (w.requestInt(args + Layout.CREATE_OPEN_FLAGS) & Layout.OPEN_KILL_SUIDGID) != 0;
      default -> false;
    };
  }
}
