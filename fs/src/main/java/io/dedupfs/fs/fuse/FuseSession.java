package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * A mounted libfuse3 low-level session whose requests are served by {@link FuseOperations}.
 *
 * <p>{@link #mount} creates the session ({@code fuse_session_new}), mounts it ({@code fuse_session_mount}),
 * starts {@link MountOptions#threads()} {@link Worker}s and returns once the kernel's INIT has been answered.
 * Each worker is a JVM thread looping on {@code fuse_session_receive_buf} / {@code fuse_session_process_buf},
 * so libfuse calls the operation callbacks on JVM-owned threads: no native thread is ever attached to the
 * JVM per request, and several requests are served at once.
 *
 * <p>Every callback catches everything: an exception never crosses into native code. A failure is answered
 * with the errno that the {@link ErrorMapper} given to {@link #mount} decides.
 *
 * <p>The session ends when the filesystem is unmounted from outside ({@code umount}, {@code fusermount3 -u}),
 * which makes every worker's receive return 0, or when {@link #close} is called.
 */
public final class FuseSession implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(FuseSession.class.getName());

    /** Decides the errno of a failed request. */
    @FunctionalInterface
    public interface ErrorMapper {
        /** A positive errno for {@code failure}; may log it. */
        int errno(Throwable failure);
    }

    private final Native.LibFuse lib;
    private final FuseOperations ops;
    private final ErrorMapper errors;
    private final MountOptions options;
    private final Path mountpoint;
    /** The jnr closures behind the function pointers in libfuse's copy of the operations table: kept alive here. */
    private final List<Object> closures = new ArrayList<>();
    private final CountDownLatch initDone = new CountDownLatch(1);
    private final CountDownLatch workersDone;
    private final List<Worker> workers = new ArrayList<>();
    private volatile Throwable initFailure;
    private long se;
    private boolean mounted;
    private boolean closed;

    private FuseSession(Native.LibFuse lib, Path mountpoint, MountOptions options, FuseOperations ops,
                        ErrorMapper errors) {
        this.lib = lib;
        this.mountpoint = mountpoint;
        this.options = options;
        this.ops = ops;
        this.errors = errors;
        this.workersDone = new CountDownLatch(options.threads());
    }

    /**
     * Mounts {@code ops} on {@code mountpoint} and returns once the kernel's INIT has been answered.
     *
     * @throws IOException when libfuse cannot be loaded, the session cannot be created or mounted, or INIT
     *                     does not arrive within {@link MountOptions#initTimeout()}
     */
    public static FuseSession mount(Path mountpoint, MountOptions options, FuseOperations ops, ErrorMapper errors)
            throws IOException {
        Native.LibFuse lib;
        try {
            lib = Native.fuse();
        } catch (UnsatisfiedLinkError e) {
            throw new IOException("cannot load " + Native.LIBFUSE + " (install the libfuse3-3 package): "
                    + e.getMessage(), e);
        }
        if (!Files.exists(Path.of("/dev/fuse"))) {
            throw new IOException("/dev/fuse is missing: load the fuse kernel module (modprobe fuse)");
        }
        FuseSession s = new FuseSession(lib, mountpoint, options, ops, errors);
        try {
            s.start();
            return s;
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    private void start() throws IOException {
        long opsTable = MEM.allocateMemory(Layout.OPS_SIZEOF, true);
        try {
            fillOperations(opsTable);
            se = newSession(opsTable);
        } finally {
            MEM.freeMemory(opsTable); // fuse_session_new copies the table
        }
        int res = lib.fuse_session_mount(se, mountpoint.toString());
        if (res != 0) {
            throw new IOException("cannot mount on " + mountpoint + " (libfuse's message is above)");
        }
        mounted = true;
        for (int i = 0; i < options.threads(); i++) {
            Worker w = new Worker(this, lib, se, i);
            workers.add(w);
            w.start();
        }
        try {
            if (!initDone.await(options.initTimeout().toMillis(), TimeUnit.MILLISECONDS)) {
                throw new IOException("the kernel did not send INIT within " + options.initTimeout());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for the kernel's INIT", e);
        }
        if (initFailure != null) {
            throw new IOException("the filesystem's init failed: " + initFailure, initFailure);
        }
    }

    private long newSession(long opsTable) throws IOException {
        List<String> argv = options.toArgs();
        List<Long> strings = new ArrayList<>();
        long argvArray = MEM.allocateMemory(8L * (argv.size() + 1), true);
        long args = MEM.allocateMemory(Layout.ARGS_SIZEOF, true);
        try {
            for (int i = 0; i < argv.size(); i++) {
                byte[] b = argv.get(i).getBytes(StandardCharsets.UTF_8);
                long str = MEM.allocateMemory(b.length + 1, true);
                MEM.putByteArray(str, b, 0, b.length);
                strings.add(str);
                MEM.putAddress(argvArray + 8L * i, str);
            }
            MEM.putInt(args + Layout.ARGS_ARGC, argv.size());
            MEM.putAddress(args + Layout.ARGS_ARGV, argvArray);
            MEM.putInt(args + Layout.ARGS_ALLOCATED, 0); // ours: libfuse must not free it
            long session = lib.fuse_session_new(args, opsTable, Layout.OPS_SIZEOF, 0);
            // fuse_opt_parse replaced the vector with one it allocated (allocated = 1); free that one.
            if (MEM.getInt(args + Layout.ARGS_ALLOCATED) != 0) {
                lib.fuse_opt_free_args(args);
            }
            if (session == 0) {
                throw new IOException("fuse_session_new failed for options " + argv + " (libfuse's message is above)");
            }
            return session;
        } finally {
            strings.forEach(MEM::freeMemory);
            MEM.freeMemory(argvArray);
            MEM.freeMemory(args);
        }
    }

    /** The mountpoint this session serves. */
    public Path mountpoint() {
        return mountpoint;
    }

    /** Blocks until every worker has stopped: the filesystem was unmounted or {@link #close} was called. */
    public void awaitUnmounted() throws InterruptedException {
        workersDone.await();
    }

    /**
     * Tells the kernel to drop its cached data of {@code ino} in {@code [offset, offset+length)} (length 0: to
     * the end) and its cached attributes. Must not be called from a request on the same inode.
     */
    public void invalidateInode(long ino, long offset, long length) {
        int res = lib.fuse_lowlevel_notify_inval_inode(se, ino, offset, length);
        if (res != 0 && res != -Errno.ENOENT.intValue()) {
            LOG.log(System.Logger.Level.DEBUG, "inval_inode " + ino + ": errno " + -res);
        }
    }

    /** Tells the kernel to forget the name {@code name} in directory {@code parent}. */
    public void invalidateEntry(long parent, String name) {
        byte[] b = name.getBytes(StandardCharsets.UTF_8);
        int res = lib.fuse_lowlevel_notify_inval_entry(se, parent, b, b.length);
        if (res != 0 && res != -Errno.ENOENT.intValue()) {
            LOG.log(System.Logger.Level.DEBUG, "inval_entry " + parent + "/" + name + ": errno " + -res);
        }
    }

    /**
     * Ends the session: unmounts (lazily, as libfuse does as root), waits up to
     * {@link MountOptions#unmountTimeout()} for the workers to finish the requests in flight, aborts the
     * connection if they have not, and destroys the session (which calls {@link FuseOperations#destroy}).
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (se == 0) {
            return;
        }
        lib.fuse_session_exit(se);
        if (mounted) {
            lib.fuse_session_unmount(se);
            mounted = false;
        }
        if (!workers.isEmpty()) {
            try {
                if (!workersDone.await(options.unmountTimeout().toMillis(), TimeUnit.MILLISECONDS)) {
                    LOG.log(System.Logger.Level.WARNING, "the mount " + mountpoint + " is still busy after "
                            + options.unmountTimeout() + "; aborting its FUSE connection");
                    abortConnections();
                    workersDone.await(options.unmountTimeout().toMillis(), TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (workersDone.getCount() == 0) {
            lib.fuse_session_destroy(se);
        } else {
            LOG.log(System.Logger.Level.ERROR, "FUSE workers did not stop; leaving the session undestroyed");
        }
        se = 0;
    }

    /**
     * Sets the kernel's readahead for this mount. The kernel caps it at 128 KiB whatever INIT asks for, so
     * sequential reads arrive as 128 KiB requests unless the mount's bdi is told otherwise (root only).
     */
    public void setReadAheadKb(int kb) {
        long dev = mountDevice();
        Path f = Path.of("/sys/class/bdi/0:" + dev + "/read_ahead_kb");
        try {
            if (dev >= 0 && Files.isWritable(f)) {
                Files.writeString(f, Integer.toString(kb));
            }
        } catch (IOException e) {
            LOG.log(System.Logger.Level.INFO, "cannot set the readahead of " + mountpoint + ": " + e);
        }
    }

    /** Writes to /sys/fs/fuse/connections/N/abort for connections whose workers are still blocked. */
    private void abortConnections() {
        Path dir = Path.of("/sys/fs/fuse/connections");
        long dev = mountDevice();
        if (dev < 0 || !Files.isDirectory(dir)) {
            return;
        }
        try {
            Files.writeString(dir.resolve(Long.toString(dev)).resolve("abort"), "1");
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "cannot abort the FUSE connection " + dev + ": " + e);
        }
    }

    /**
     * The device number ({@code st_dev}) of files on this mount: FUSE mounts have major 0 and the connection
     * number as minor. -1 once the mount is gone.
     */
    public long deviceNumber() {
        long minor = mountDevice();
        // glibc's makedev(0, minor)
        return minor < 0 ? -1 : ((minor & 0xfffff00L) << 12) | (minor & 0xffL);
    }

    /** The minor device number of this mount (the FUSE connection number), or -1 once it is gone. */
    private long mountDevice() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] f = line.split(" ");
                if (f.length > 4 && f[4].equals(mountpoint.toString())) {
                    return Long.parseLong(f[2].substring(f[2].indexOf(':') + 1));
                }
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.DEBUG, "reading mountinfo: " + e);
        }
        return -1;
    }

    void workerExited() {
        workersDone.countDown();
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

    private void fillOperations(long t) {
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
