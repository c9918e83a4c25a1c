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
 * The operations table of a {@link FuseSession}: one native callback per FUSE operation, which decodes
 * libfuse's arguments, calls {@link FuseOperations} and writes the reply.
 *
 * <p>Callbacks run on the session's {@link Worker} threads (libfuse calls them from
 * {@code fuse_session_process_buf}) and use the worker's native scratch memory for replies, so a request
 * allocates nothing here beyond what the filesystem's answer is made of.
 *
 * <p>Every callback catches everything: an exception never crosses into native code. A failure is answered
 * with the errno that the {@link FuseSession.ErrorMapper} decides.
 */
final class Dispatcher {
    private static final System.Logger LOG = System.getLogger(FuseSession.class.getName());

    private final Native.LibFuse lib;
    private final FuseOperations ops;
    private final FuseSession.ErrorMapper errors;
    private final MountOptions options;
    /** The jnr closures behind the function pointers in libfuse's copy of the operations table: kept alive here. */
    private final List<Object> closures = new ArrayList<>();
    private final CountDownLatch initDone = new CountDownLatch(1);
    private volatile Throwable initFailure;

    Dispatcher(Native.LibFuse lib, FuseOperations ops, FuseSession.ErrorMapper errors, MountOptions options) {
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

    /** Fills the {@code struct fuse_lowlevel_ops} at {@code t} (zeroed, {@link Layout#OPS_SIZEOF} bytes). */
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
            ConnectionInfo offered = ConnectionInfo.read(conn);
            int want = offered.want() & ~ConnectionInfo.CAP_SPLICE_ALL & ~ConnectionInfo.CAP_HANDLE_KILLPRIV;
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

    private void lookup(long req, long parent, long name) {
        try {
            replyEntry(req, ops.lookup(parent, worker().name(name)));
        } catch (Throwable t) {
            fail(req, t);
        }
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

    private void getattr(long req, long ino, long fi) {
        try {
            replyAttr(req, ops.getattr(ino, fi == 0 ? OptionalLong.empty() : OptionalLong.of(fh(fi))));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void setattr(long req, long ino, long attr, int toSet, long fi) {
        try {
            SetAttr changes = SetAttr.decode(attr, toSet, fi == 0 ? OptionalLong.empty() : OptionalLong.of(fh(fi)));
            replyAttr(req, ops.setattr(context(req), ino, changes));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void readlink(long req, long ino) {
        try {
            String target = ops.readlink(ino);
            lib.fuse_reply_readlink(req, worker().cString(target));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void mknod(long req, long parent, long name, int mode, long rdev) {
        try {
            replyEntry(req, ops.mknod(context(req), parent, worker().name(name), mode, rdev));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void mkdir(long req, long parent, long name, int mode) {
        try {
            replyEntry(req, ops.mkdir(context(req), parent, worker().name(name), mode));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void unlink(long req, long parent, long name) {
        try {
            ops.unlink(parent, worker().name(name));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void rmdir(long req, long parent, long name) {
        try {
            ops.rmdir(parent, worker().name(name));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void symlink(long req, long link, long parent, long name) {
        try {
            Worker w = worker();
            replyEntry(req, ops.symlink(context(req), w.name(link), parent, w.name(name)));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void rename(long req, long parent, long name, long newParent, long newName, int flags) {
        try {
            Worker w = worker();
            ops.rename(parent, w.name(name), newParent, w.name(newName), flags);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void link(long req, long ino, long newParent, long newName) {
        try {
            replyEntry(req, ops.link(ino, newParent, worker().name(newName)));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void open(long req, long ino, long fi) {
        try {
            OpenFile f = ops.open(ino, MEM.getInt(fi + Layout.FI_FLAGS));
            setOpenFile(fi, f);
            if (lib.fuse_reply_open(req, fi) != 0) {
                // The opener was interrupted: the kernel will never send release for this handle.
                ops.release(ino, f.fh(), MEM.getInt(fi + Layout.FI_FLAGS));
            }
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void read(long req, long ino, long size, long off, long fi) {
        try {
            Worker w = worker();
            ByteBuffer dst = w.replyBuffer((int) size);
            int n = ops.read(ino, fh(fi), off, dst);
            lib.fuse_reply_buf(req, w.replyAddress(), n);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void write(long req, long ino, long buf, long size, long off, long fi) {
        try {
            int n = ops.write(ino, fh(fi), off, worker().payload(buf, (int) size));
            lib.fuse_reply_write(req, n);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void flush(long req, long ino, long fi) {
        try {
            ops.flush(ino, fh(fi));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void release(long req, long ino, long fi) {
        try {
            ops.release(ino, fh(fi), MEM.getInt(fi + Layout.FI_FLAGS));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void fsync(long req, long ino, int datasync, long fi) {
        try {
            ops.fsync(ino, fh(fi), datasync != 0);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void opendir(long req, long ino, long fi) {
        try {
            setOpenFile(fi, ops.opendir(ino, MEM.getInt(fi + Layout.FI_FLAGS)));
            lib.fuse_reply_open(req, fi);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void readdir(long req, long ino, long size, long off, long fi) {
        Worker w = null;
        try {
            w = worker();
            w.filler.begin((int) size);
            ops.readdir(ino, fh(fi), off, w.filler);
            int n = w.filler.end();
            lib.fuse_reply_buf(req, w.replyAddress(), n);
        } catch (Throwable t) {
            if (w != null) {
                w.filler.end();
            }
            fail(req, t);
        }
    }

    private void releasedir(long req, long ino, long fi) {
        try {
            ops.releasedir(ino, fh(fi));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void fsyncdir(long req, long ino, int datasync, long fi) {
        try {
            ops.fsyncdir(ino, fh(fi), datasync != 0);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void statfs(long req, long ino) {
        try {
            Statfs s = ops.statfs(ino);
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
            lib.fuse_reply_statfs(req, v);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void setxattr(long req, long ino, long name, long value, long size, int flags) {
        try {
            byte[] v = new byte[(int) size];
            MEM.getByteArray(value, v, 0, v.length);
            ops.setxattr(ino, worker().name(name), v, flags);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void getxattr(long req, long ino, long name, long size) {
        try {
            replySized(req, ops.getxattr(ino, worker().name(name)), size);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void listxattr(long req, long ino, long size) {
        try {
            StringBuilder names = new StringBuilder();
            for (String n : ops.listxattr(ino)) {
                names.append(n).append('\0');
            }
            replySized(req, names.toString().getBytes(StandardCharsets.UTF_8), size);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void removexattr(long req, long ino, long name) {
        try {
            ops.removexattr(ino, worker().name(name));
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void access(long req, long ino, int mask) {
        try {
            ops.access(context(req), ino, mask);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void create(long req, long parent, long name, int mode, long fi) {
        try {
            CreatedFile c = ops.create(context(req), parent, worker().name(name), mode, MEM.getInt(fi + Layout.FI_FLAGS));
            setOpenFile(fi, c.file());
            long ep = fillEntry(c.entry());
            if (lib.fuse_reply_create(req, ep, fi) != 0) {
                ops.release(c.entry().attr().ino(), c.file().fh(), MEM.getInt(fi + Layout.FI_FLAGS));
            }
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void ioctl(long req, long ino, int cmd, long arg, long fi, int flags, long inBuf, long inSize,
                       long outSize) {
        try {
            byte[] in = new byte[(int) inSize];
            if (inSize > 0) {
                MEM.getByteArray(inBuf, in, 0, in.length);
            }
            IoctlResult r = ops.ioctl(context(req), ino, fh(fi), cmd, arg, flags, in, (int) outSize);
            byte[] out = r.out();
            int n = (int) Math.min(out.length, outSize);
            long addr = 0;
            if (n > 0) {
                Worker w = worker();
                w.replyBuffer(n).put(out, 0, n);
                addr = w.replyAddress();
            }
            lib.fuse_reply_ioctl(req, r.result(), addr, n);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void fallocate(long req, long ino, int mode, long offset, long length, long fi) {
        try {
            ops.fallocate(ino, fh(fi), mode, offset, length);
            ok(req);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void copyFileRange(long req, long inoIn, long offIn, long fiIn, long inoOut, long offOut, long fiOut,
                               long len, int flags) {
        try {
            long n = ops.copyFileRange(inoIn, fh(fiIn), offIn, inoOut, fh(fiOut), offOut, len, flags);
            lib.fuse_reply_write(req, n);
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    private void lseek(long req, long ino, long off, int whence, long fi) {
        try {
            lib.fuse_reply_lseek(req, ops.lseek(ino, fh(fi), off, whence));
        } catch (Throwable t) {
            fail(req, t);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Replies and decoding

    private static Worker worker() {
        if (Thread.currentThread() instanceof Worker w) {
            return w;
        }
        throw new IllegalStateException("a FUSE request arrived on " + Thread.currentThread().getName()
                + ", which is not a session worker");
    }

    private void ok(long req) {
        lib.fuse_reply_err(req, 0);
    }

    private void fail(long req, Throwable t) {
        int errno;
        try {
            errno = errors.errno(t);
        } catch (Throwable mapperFailure) {
            LOG.log(System.Logger.Level.ERROR, "the error mapper failed on " + t, mapperFailure);
            errno = Errno.EIO.intValue();
        }
        try {
            lib.fuse_reply_err(req, errno > 0 ? errno : Errno.EIO.intValue());
        } catch (Throwable replyFailure) {
            LOG.log(System.Logger.Level.ERROR, "cannot send an error reply", replyFailure);
        }
    }

    /** Answers a size probe ({@code size == 0}) with the length, else the bytes, or ERANGE if they do not fit. */
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
        int mask = Layout.FI_BIT_DIRECT_IO | Layout.FI_BIT_KEEP_CACHE | Layout.FI_BIT_NONSEEKABLE
                | Layout.FI_BIT_CACHE_READDIR | Layout.FI_BIT_NOFLUSH;
        MEM.putInt(fi + Layout.FI_BITS, (bits & ~mask) | f.bits());
    }

    private RequestContext context(long req) {
        long ctx = lib.fuse_req_ctx(req);
        return new RequestContext(MEM.getInt(ctx + Layout.CTX_UID), MEM.getInt(ctx + Layout.CTX_GID),
                MEM.getInt(ctx + Layout.CTX_PID), MEM.getInt(ctx + Layout.CTX_UMASK));
    }
}
