package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import jnr.constants.platform.Errno;

/**
 * A mounted libfuse3 low-level session whose requests are served by {@link FuseOperations}.
 *
 * <p>{@link #mount} creates the session ({@code fuse_session_new}), mounts it ({@code
 * fuse_session_mount}), starts {@link MountOptions#threads()} {@link Worker}s and returns once the
 * kernel's INIT has been answered. Each worker is a JVM thread looping on {@code
 * fuse_session_receive_buf} / {@code fuse_session_process_buf}, so libfuse calls the operation
 * callbacks on JVM-owned threads: no native thread is ever attached to the JVM per request, and
 * several requests are served at once. With {@link MountOptions#ioUring} (FUSE over io_uring, Linux
 * 6.14 and later) more workers take their requests from rings of their own ({@link Ring}) once INIT
 * is answered; the /dev/fuse workers then see only what the kernel still sends there (forgets,
 * interrupts).
 *
 * <p>This class is the session's lifecycle: mount, workers, readahead, invalidation, unmount and
 * abort. The operations table, whose callbacks decode each request, call {@link FuseOperations} and
 * reply, is the {@link Dispatcher}'s. No callback lets an exception cross into native code: a
 * failure is answered with an {@link ErrnoException}'s errno, or else the one the {@link
 * ErrorMapper} given to {@link #mount} decides.
 *
 * <p>The session ends when the filesystem is unmounted from outside ({@code umount}, {@code
 * fusermount3 -u}), which makes every worker's receive return 0, or when {@link #close} is called.
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

  /**
   * Holds the callbacks of libfuse's copy of the operations table: lives as long as the session.
   */
  private final Dispatcher dispatcher;

  private final MountOptions options;
  private final Path mountpoint;
  private final CountDownLatch workersDone;
  private final List<Worker> workers = new ArrayList<>();
  private final boolean dropsPrivileges;
  private long se;
  private boolean mounted;

  /** The INIT reply's hook, while the session lives (null when not asked for or not possible). */
  private InitReply initReply;

  /** Counted down by each ring worker as it stops; null until ring workers start. */
  private volatile CountDownLatch ringsDone;

  private final AtomicBoolean ringFailureLogged = new AtomicBoolean();

  private boolean closed;

  private FuseSession(
      Native.LibFuse lib,
      Path mountpoint,
      MountOptions options,
      FuseOperations ops,
      ErrorMapper errors) {
    this.lib = lib;
    this.mountpoint = mountpoint;
    this.options = options;
    this.dispatcher = new Dispatcher(lib, ops, errors, options);
    this.dropsPrivileges = ops.dropsPrivileges();
    this.workersDone = new CountDownLatch(options.threads());
  }

  /**
   * Mounts {@code ops}, whose only expected failures are {@link ErrnoException}s, with the default
   * error mapper: anything else is logged with its stack trace and answered with EIO. For a
   * filesystem that has no exceptions of its own to map, such as the benchmarks' do-nothing one.
   *
   * @see #mount(Path, MountOptions, FuseOperations, ErrorMapper)
   */
  public static FuseSession mount(Path mountpoint, MountOptions options, FuseOperations ops)
      throws IOException {
    return mount(mountpoint, options, ops, FuseSession::unexpected);
  }

  private static int unexpected(Throwable failure) {
    LOG.log(System.Logger.Level.WARNING, "request failed unexpectedly; answering EIO", failure);
    return Errno.EIO.intValue();
  }

  /**
   * Mounts {@code ops} on {@code mountpoint} and returns once the kernel's INIT has been answered.
   *
   * @throws IOException when libfuse cannot be loaded, the session cannot be created or mounted, or
   *     INIT does not arrive within {@link MountOptions#initTimeout()}
   */
  public static FuseSession mount(
      Path mountpoint, MountOptions options, FuseOperations ops, ErrorMapper errors)
      throws IOException {
    Native.LibFuse lib;
    try {
      lib = Native.fuse();
    } catch (UnsatisfiedLinkError e) {
      throw new IOException(
          "cannot load " + Native.LIBFUSE + " (install the libfuse3-3 package): " + e.getMessage(),
          e);
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
      dispatcher.fill(opsTable);
      se = newSession(opsTable);
    } finally {
      MEM.freeMemory(opsTable); // fuse_session_new copies the table
    }
    Native.LibUring uring = options.ioUring() ? loadUring() : null;
    if (uring != null) {
      enableUring();
    }
    int res = lib.fuse_session_mount(se, mountpoint.toString());
    if (res != 0) {
      throw new IOException("cannot mount on " + mountpoint + " (libfuse's message is above)");
    }
    mounted = true;
    // See InitReply: one worker until INIT's reply has gone out through the hook.
    boolean killPriv = dropsPrivileges && !options.writebackCache();
    initReply =
        killPriv || uring != null
            ? InitReply.install(
                se,
                killPriv,
                uring != null,
                dispatcher::kernelInitFlags,
                dispatcher::kernelInitFlags2)
            : null;
    startWorkers(initReply == null ? options.threads() : 1);
    try {
      if (!dispatcher.awaitInit(options.initTimeout())
          || (initReply != null && !initReply.awaitReplied(options.initTimeout()))) {
        throw new IOException("the kernel did not send INIT within " + options.initTimeout());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while waiting for the kernel's INIT", e);
    }
    Throwable initFailure = dispatcher.initFailure();
    if (initFailure != null) {
      throw new IOException("the filesystem's init failed: " + initFailure, initFailure);
    }
    startWorkers(options.threads());
    if (initReply != null && initReply.ioUringAsked()) {
      startRingWorkers(uring, initReply.payloadCapacity());
    }
  }

  /** liburing, or null (logged) where it is not installed. */
  private static Native.LibUring loadUring() {
    try {
      return Native.uring();
    } catch (UnsatisfiedLinkError e) {
      LOG.log(
          System.Logger.Level.WARNING,
          "cannot load "
              + Native.LIBURING
              + " (install the liburing2 package): requests go through /dev/fuse");
      return null;
    }
  }

  /**
   * Before mounting with {@link MountOptions#ioUring}: has the kernel offer FUSE over io_uring to
   * new mounts (its parameter {@code enable_uring}, off by default; other FUSE daemons that do not
   * ask for io_uring are not affected), where it has the parameter and we may set it.
   */
  private static void enableUring() {
    Path p = Path.of("/sys/module/fuse/parameters/enable_uring");
    try {
      if (Files.exists(p) && Files.readString(p).trim().equals("N")) {
        Files.writeString(p, "Y");
        LOG.log(System.Logger.Level.INFO, "set " + p + " to Y (FUSE over io_uring)");
      }
    } catch (IOException e) {
      LOG.log(System.Logger.Level.WARNING, "cannot set " + p + " to Y: " + e);
    }
  }

  /**
   * Starts the io_uring workers: for each of the kernel's queues (one per possible CPU), {@link
   * MountOptions#threads()} spread over the queues, at least two each, each with a ring of its own
   * whose entry takes payloads of {@code payloadCapacity} bytes. Requests go through the rings once
   * every queue has registered an entry; until then, and if the kernel refuses the rings (logged
   * once by {@link #ringFailed}; each worker stops), they go through /dev/fuse.
   */
  private void startRingWorkers(Native.LibUring uring, int payloadCapacity) throws IOException {
    int queues = possibleCpus();
    int perQueue = Math.max(2, (options.threads() + queues - 1) / queues);
    int fd = Native.fuseIo().fuse_session_fd(se);
    List<Ring> rings = new ArrayList<>();
    try {
      for (int q = 0; q < queues; q++) {
        for (int i = 0; i < perQueue; i++) {
          rings.add(Ring.open(uring, fd, q, payloadCapacity));
        }
      }
    } catch (IllegalStateException e) {
      rings.forEach(Ring::close);
      LOG.log(System.Logger.Level.WARNING, e.getMessage() + ": requests go through /dev/fuse");
      return;
    }
    ringsDone = new CountDownLatch(rings.size());
    for (int i = 0; i < rings.size(); i++) {
      Worker w = new Worker(this, lib, se, i % perQueue, rings.get(i));
      workers.add(w);
      w.start();
    }
    LOG.log(
        System.Logger.Level.INFO,
        "FUSE over io_uring: "
            + queues
            + " queues, "
            + perQueue
            + " workers each, payloads of "
            + payloadCapacity
            + " bytes");
  }

  /** The kernel's number of ring queues: its possible CPUs ({@code 0-N} in sysfs). */
  private static int possibleCpus() throws IOException {
    String possible = Files.readString(Path.of("/sys/devices/system/cpu/possible")).trim();
    int last = 0;
    for (String range : possible.split(",")) {
      last = Math.max(last, Integer.parseInt(range.substring(range.lastIndexOf('-') + 1)));
    }
    return last + 1;
  }

  /**
   * The ring of worker {@code name} failed with {@code errno}: the kernel refused it, or a command
   * on it failed. Logged once per session: the other rings fail alike.
   */
  void ringFailed(String name, int errno) {
    if (ringFailureLogged.compareAndSet(false, true)) {
      LOG.log(
          System.Logger.Level.ERROR,
          "FUSE over io_uring: the ring of "
              + name
              + " failed with errno "
              + errno
              + " (at registration: requests go on through /dev/fuse; later: its queue has one"
              + " ring fewer to serve it)");
    }
  }

  void ringWorkerExited() {
    ringsDone.countDown();
  }

  /** Starts workers until there are {@code count}. */
  private void startWorkers(int count) {
    for (int i = workers.size(); i < count; i++) {
      Worker w = new Worker(this, lib, se, i);
      workers.add(w);
      w.start();
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
        throw new IOException(
            "fuse_session_new failed for options " + argv + " (libfuse's message is above)");
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

  /**
   * Blocks until every worker has stopped: the filesystem was unmounted or {@link #close} was
   * called.
   */
  public void awaitUnmounted() throws InterruptedException {
    workersDone.await();
  }

  /**
   * Tells the kernel to drop its cached data of {@code ino} in {@code [offset, offset+length)}
   * (length 0: to the end) and its cached attributes. Must not be called from a request on the same
   * inode.
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
   * Ends the session: unmounts (lazily, as libfuse does as root), waits up to {@link
   * MountOptions#unmountTimeout()} for the workers to finish the requests in flight, aborts the
   * connection if they have not, and destroys the session (which calls {@link
   * FuseOperations#destroy}).
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
    for (int i = workers.size(); i < options.threads(); i++) {
      workersDone.countDown(); // never started (a mount that failed before INIT's reply)
    }
    if (mounted) {
      lib.fuse_session_unmount(se);
      mounted = false;
    }
    if (!workers.isEmpty()) {
      try {
        if (!workersDone.await(options.unmountTimeout().toMillis(), TimeUnit.MILLISECONDS)
            || !ringsStopped(options.unmountTimeout())) {
          LOG.log(
              System.Logger.Level.WARNING,
              "the mount "
                  + mountpoint
                  + " is still busy after "
                  + options.unmountTimeout()
                  + "; aborting its FUSE connection");
          abortConnections();
          workersDone.await(options.unmountTimeout().toMillis(), TimeUnit.MILLISECONDS);
          ringsStopped(options.unmountTimeout());
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (workersDone.getCount() == 0 && (ringsDone == null || ringsDone.getCount() == 0)) {
      lib.fuse_session_destroy(se);
    } else {
      LOG.log(
          System.Logger.Level.ERROR, "FUSE workers did not stop; leaving the session undestroyed");
    }
    se = 0;
  }

  /** Waits up to {@code timeout} for the ring workers to stop; true when none runs. */
  private boolean ringsStopped(Duration timeout) throws InterruptedException {
    CountDownLatch done = ringsDone;
    return done == null || done.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * Sets the kernel's readahead for this mount. The kernel caps it at 128 KiB whatever INIT asks
   * for, so sequential reads arrive as 128 KiB requests unless the mount's bdi is told otherwise
   * (root only).
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
   * The device number ({@code st_dev}) of files on this mount: FUSE mounts have major 0 and the
   * connection number as minor. -1 once the mount is gone.
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
}
