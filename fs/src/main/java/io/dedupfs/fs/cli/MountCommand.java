package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.fs.Mount;
import io.dedupfs.fs.fuse.MountOptions;
import io.dedupfs.fs.fuse.Posix;
import io.dedupfs.rados.RadosPool;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs mount}: like other mount programs it returns once the mount answers and leaves a
 * daemon serving it; {@code -f} serves in the foreground instead (systemd, tests). The daemon
 * flushes everything and closes the store on unmount and on SIGINT/SIGTERM.
 *
 * <p>The background daemon is this same program run again with {@code -f} in a new session. Until
 * it is ready its output comes through a pipe to this process, which shows it (so a failure is
 * reported here, with the daemon's exit code); once it is mounted it prints {@link #READY} and
 * points its stdout and stderr at its log file.
 */
@Command(
    name = "mount",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Mount the datastore STORE on MOUNTPOINT (an empty directory).",
      "STORE must be a store: 'dedupfs create STORE' makes one; mount never does."
    })
final class MountCommand implements Callable<Integer> {
  private static final System.Logger LOG = System.getLogger(MountCommand.class.getName());
  static final String READY = "dedupfs-daemon-ready";
  private static final String READY_LOG_ENV = "DEDUPFS_DAEMON_LOG";

  @Option(
      names = {"-f", "--foreground"},
      description = "Serve in the foreground until unmounted.")
  boolean foreground;

  @Option(
      names = "-o",
      paramLabel = "OPT[,OPT...]",
      split = ",",
      description = {
        "Mount options: allow_other, noallow_other, ro, rw, writeback_cache, io_uring, noio_uring,",
        "threads=N, snapdir=hidden|visible, pool_timeout=SECONDS, pool_cache=SIZE, fsync=log|commit, log=FILE, debug; nosuid, nodev, noexec, noatime... go to the kernel; defaults, nofail,",
        "_netdev, auto, noauto, user, users, x-* and comment=* (for fstab) are ignored."
      })
  List<String> options = new ArrayList<>();

  /** Null until {@link #call}: then the flag, the -o option, or {@link #defaultAllowOther()}. */
  @Option(
      names = "--allow-other",
      negatable = true,
      description = {
        "Let users other than the mounting one use the mount, by its files' permissions",
        "(libvirt's qemu runs as its own user). Default: on as root, and for other users where",
        "/etc/fuse.conf says user_allow_other."
      })
  Boolean allowOther;

  @Option(
      names = {"-r", "--read-only"},
      description = "Mount read-only.")
  boolean readOnly;

  @Option(
      names = "--writeback-cache",
      description = "Let the kernel cache writes (faster small writes).")
  boolean writebackCache;

  @Option(
      names = "--io-uring",
      negatable = true,
      defaultValue = "true",
      fallbackValue = "true",
      description = {
        "Take requests through io_uring where the kernel offers it (Linux 6.14 or later; sets",
        "/sys/module/fuse/parameters/enable_uring to Y when it is N): THREADS workers spread over",
        "the CPUs' queues, at least 2 on each, besides THREADS that read /dev/fuse. Default: on;",
        "elsewhere, and with --no-io-uring, requests go through /dev/fuse."
      })
  boolean ioUring;

  /**
   * Refused with a pointer to {@code dedupfs create}: a mount never makes a store, so has no leaf
   * size to choose.
   */
  @Option(names = "--leaf-size", paramLabel = "SIZE", converter = Sizes.class, hidden = true)
  Integer leafSize;

  @Option(
      names = "--snapdir",
      paramLabel = "hidden|visible",
      description = {
        "Whether listing the mount's root shows .snapshots (default: ${DEFAULT-VALUE});",
        "hidden, it is still there by name: ls MOUNTPOINT/.snapshots."
      })
  Snapdir snapdir = Snapdir.hidden;

  /** ZFS's names for the same choice. */
  enum Snapdir {
    hidden,
    visible
  }

  @Option(
      names = "--threads",
      paramLabel = "N",
      description = "Requests served at once (default: ${DEFAULT-VALUE}).")
  int threads = 8;

  @Option(
      names = "--pool-timeout",
      paramLabel = "SECONDS",
      description = {
        "For a store whose blocks are in a pool: how long a call to the pool waits for an answer",
        "before the request that needs it fails with EIO (default: "
            + RadosPool.DEFAULT_TIMEOUT_SECONDS
            + "; 1 to 3600)."
      })
  int poolTimeout = (int) RadosPool.DEFAULT_TIMEOUT_SECONDS;

  @Option(
      names = "--pool-cache",
      paramLabel = "SIZE",
      description = {
        "For a store whose blocks are in a pool: how much of the blocks written and read lately",
        "stays on the local disk, in the store, to be read without a round trip, after a remount too",
        "(default: 1G; 0: none, and the mount empties the cache)."
      })
  String poolCache;

  @Option(
      names = "--fsync",
      paramLabel = "log|commit",
      description = {
        "What fsync waits for: log, the store's intent log on the local disk (fast; committed",
        "within 5 s), or commit, the commit of the file's data (for a store whose blocks are in a",
        "pool: every block in the pool before fsync returns) (default: ${DEFAULT-VALUE})."
      })
  Fsync fsync = Fsync.log;

  /** What fsync waits for. */
  enum Fsync {
    log,
    commit
  }

  /** {@link #poolCache} in bytes. */
  private long poolCacheBytes = DatastoreConfig.DEFAULT_POOL_CACHE_BYTES;

  @Option(
      names = "--log",
      paramLabel = "FILE",
      description =
          "The background daemon's log (default: /var/log/dedupfs/MOUNTPOINT-PATH.log as root).")
  Path log;

  @Option(
      names = "--debug-fuse",
      description = "libfuse's debug output (every request) in the log.")
  boolean debugFuse;

  @Parameters(index = "0", paramLabel = "STORE", description = "The store's directory.")
  Path store;

  @Parameters(index = "1", paramLabel = "MOUNTPOINT", description = "An empty directory.")
  Path mountpoint;

  @Spec CommandSpec spec;

  private final List<String> kernelOptions = new ArrayList<>();

  @Override
  public Integer call() throws Exception {
    applyOptions();
    if (leafSize != null) {
      throw new Main.UsageException(
          "the leaf size is fixed when a store is created "
              + "(dedupfs create --leaf-size SIZE STORE); a mount uses the store's own");
    }
    Path mnt = StorePaths.requireMountpoint(mountpoint);
    StorePaths.requireStore(store);
    if (allowOther == null) {
      allowOther = defaultAllowOther();
    }
    return foreground ? serve(mnt) : daemonize(mnt);
  }

  private void applyOptions() {
    for (String o : options) {
      String key = o.contains("=") ? o.substring(0, o.indexOf('=')) : o;
      String value = o.contains("=") ? o.substring(o.indexOf('=') + 1) : null;
      switch (key) {
        case "allow_other" -> allowOther = true;
        case "noallow_other" -> allowOther = false;
        case "ro" -> readOnly = true;
        case "rw" -> readOnly = false;
        case "writeback_cache" -> writebackCache = true;
        case "io_uring" -> ioUring = true;
        case "noio_uring" -> ioUring = false;
        case "leaf_size" -> leafSize = new Sizes().convert(required(o, value));
        case "threads" -> threads = parseNumber(o, required(o, value));
        case "snapdir" ->
            snapdir =
                switch (required(o, value)) {
                  case "hidden" -> Snapdir.hidden;
                  case "visible" -> Snapdir.visible;
                  default ->
                      throw new Main.UsageException("mount option '" + o + "': hidden or visible");
                };
        case "pool_timeout" -> poolTimeout = parseNumber(o, required(o, value));
        case "pool_cache" -> poolCache = required(o, value);
        case "fsync" -> fsync = fsyncMode(required(o, value));
        case "log" -> log = Path.of(required(o, value));
        case "debug" -> debugFuse = true;
        case "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "noatime",
            "atime",
            "relatime",
            "strictatime",
            "nodiratime",
            "diratime",
            "sync",
            "async",
            "dirsync" ->
            kernelOptions.add(o);
        case "defaults",
            "nofail",
            "_netdev",
            "auto",
            "noauto",
            "user",
            "users",
            "nouser",
            "owner",
            "group",
            "comment",
            "" -> {}
        default -> {
          if (!key.startsWith("x-")) {
            throw new Main.UsageException("unknown mount option '" + o + "'");
          }
        }
      }
    }
    if (threads < 1 || threads > 256) {
      throw new Main.UsageException("threads must be from 1 to 256, not " + threads);
    }
    if (poolTimeout < 1 || poolTimeout > 3600) {
      throw new Main.UsageException(
          "the pool timeout is from 1 to 3600 seconds, not " + poolTimeout);
    }
    if (poolCache != null) {
      try {
        poolCacheBytes = Sizes.parse(poolCache);
      } catch (CommandLine.TypeConversionException e) {
        throw new Main.UsageException(
            "the pool cache is a size (e.g. 1G, 512M, 0), not '" + poolCache + "'");
      }
    }
  }

  /**
   * A datastore is shared by the host's users (libvirt runs qemu as its own user): other users get
   * in, by the files' permissions (the kernel checks them, default_permissions), wherever FUSE lets
   * the mounting user say so: always for root, else only with user_allow_other.
   */
  private static boolean defaultAllowOther() {
    if (Posix.euid() == 0) {
      return true;
    }
    try {
      return Files.readAllLines(Path.of("/etc/fuse.conf")).stream()
          .map(String::strip)
          .anyMatch("user_allow_other"::equals);
    } catch (IOException e) {
      return false;
    }
  }

  private static Fsync fsyncMode(String value) {
    try {
      return Fsync.valueOf(value);
    } catch (IllegalArgumentException e) {
      throw new Main.UsageException("mount option fsync is log or commit, not '" + value + "'");
    }
  }

  private static String required(String option, String value) {
    if (value == null || value.isEmpty()) {
      throw new Main.UsageException("mount option '" + option + "' needs a value");
    }
    return value;
  }

  private static int parseNumber(String option, String value) {
    try {
      return Integer.parseInt(value);
    } catch (NumberFormatException e) {
      throw new Main.UsageException("mount option '" + option + "': not a number");
    }
  }

  // ---------------------------------------------------------------- foreground: the daemon

  private int serve(Path mnt) throws Exception {
    Path storeDir = store.toAbsolutePath().normalize();
    DatastoreConfig config =
        StorePaths.config(Duration.ofSeconds(poolTimeout))
            .withReadOnly(readOnly)
            .withPoolCacheBytes(poolCacheBytes)
            .withDirtyLimit(dirtyLimitFor(Runtime.getRuntime().maxMemory()));
    if (fsync == Fsync.commit) {
      config = config.withLogBytes(0);
    }
    Datastore ds = Datastore.open(storeDir, config);
    Mount m;
    try {
      m = Mount.start(ds, mnt, mountOptions(storeDir), snapdir == Snapdir.visible);
    } catch (IOException | RuntimeException e) {
      ds.close();
      throw e;
    }
    Admin.Server control;
    try {
      control = new Admin.Server(storeDir, new Admin.Context(ds, m));
    } catch (IOException | RuntimeException e) {
      m.close();
      ds.close();
      throw e;
    }
    Stopper stopper = new Stopper(m, control, ds);
    Runtime.getRuntime().addShutdownHook(new Thread(stopper::stop, "dedupfs-shutdown"));
    // Logged while the process is not yet shutting down (java.util.logging closes its handlers
    // then). The process exits afterwards, as it did on the signal before: a file still open on
    // the mount keeps the kernel's connection (and so the session) alive after the unmount.
    for (String signal : List.of("TERM", "INT", "HUP")) {
      sun.misc.Signal.handle(
          new sun.misc.Signal(signal),
          s -> {
            LOG.log(
                System.Logger.Level.INFO,
                "SIG" + s.getName() + ": flushing, unmounting " + mnt + " and closing the store");
            stopper.stop();
            LOG.log(System.Logger.Level.INFO, "unmounted " + mnt + "; store closed");
            System.exit(0);
          });
    }
    String daemonLog = System.getenv(READY_LOG_ENV);
    if (daemonLog != null) {
      System.out.println(READY);
      System.out.flush();
      Posix.redirectStdoutAndStderr(Path.of(daemonLog)); // from here on, everything goes to the log
    }
    LOG.log(
        System.Logger.Level.INFO,
        "serving "
            + storeDir
            + " on "
            + mnt
            + " (pid "
            + ProcessHandle.current().pid()
            + ", leaf size "
            + ds.leafSize()
            + ", dirty limit "
            + (config.dirtyLimitBytes() >> 20)
            + " MiB"
            + (readOnly ? ", read-only" : "")
            + (allowOther ? ", allow_other" : "")
            + ", "
            + new Main.Version().getVersion()[0]
            + ")");
    m.awaitUnmounted();
    stopper.stop();
    LOG.log(System.Logger.Level.INFO, "unmounted " + mnt + "; store closed");
    return 0;
  }

  /**
   * How much written data the daemon buffers before writers wait for commits: three eighths of its
   * heap (768 MiB of the 2 GiB that mount-scripts/dedupfs gives it), at most 1 GiB, at least 64
   * MiB. The rest of the heap holds the cache of checked blocks (256 MiB) and the garbage the
   * collector has not reached yet. At 512 MiB a guest rewriting a 256 MiB file (sync-bench's qd16
   * job) could not hold a whole commit of the file and a whole new overlay at once and crawled at
   * the commits' speed half of the time (benchmarks/README.md).
   */
  static long dirtyLimitFor(long maxHeap) {
    return Math.max(64L << 20, Math.min(1L << 30, maxHeap / 8 * 3));
  }

  private MountOptions mountOptions(Path storeDir) {
    List<String> extra = new ArrayList<>(kernelOptions);
    // Reads never update atime here; say so in the mount table instead of the kernel's default
    // relatime.
    if (extra.stream()
        .noneMatch(List.of("noatime", "atime", "relatime", "strictatime")::contains)) {
      extra.add("noatime");
    }
    return MountOptions.builder()
        .fsname(storeDir.toString())
        .subtype("dedupfs")
        .allowOther(allowOther)
        .readOnly(readOnly)
        .writebackCache(writebackCache)
        .ioUring(ioUring)
        .threads(threads)
        .debug(debugFuse)
        .extraOptions(extra)
        .build();
  }

  /**
   * Unmounts, closes the control socket, then flushes and closes the store, once, whoever asks
   * first (the main thread or a signal).
   */
  private static final class Stopper {
    private final Mount mount;
    private final Admin.Server control;
    private final Datastore store;
    private boolean stopped;

    Stopper(Mount mount, Admin.Server control, Datastore store) {
      this.mount = mount;
      this.control = control;
      this.store = store;
    }

    synchronized void stop() {
      if (stopped) {
        return;
      }
      stopped = true;
      mount.close();
      control.close();
      try {
        store.close();
      } catch (IOException | RuntimeException e) {
        LOG.log(System.Logger.Level.ERROR, "closing the store failed: " + e.getMessage(), e);
      }
    }
  }

  // ---------------------------------------------------------------- background: start the daemon

  private int daemonize(Path mnt) throws IOException, InterruptedException {
    Path logFile = (log != null ? log : defaultLog(mnt)).toAbsolutePath();
    Files.createDirectories(logFile.getParent());
    List<String> cmd = new ArrayList<>();
    if (new File("/usr/bin/setsid").canExecute()) {
      cmd.add("/usr/bin/setsid"); // its own session: no terminal signals reach the daemon
    }
    cmd.add(
        ProcessHandle.current()
            .info()
            .command()
            .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    cmd.addAll(
        List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "mount", "-f"));
    cmd.addAll(
        spec.commandLine()
            .getParseResult()
            .originalArgs()
            .subList(1, spec.commandLine().getParseResult().originalArgs().size()));
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectErrorStream(true);
    pb.environment().put(READY_LOG_ENV, logFile.toString());
    try { // with the mode the daemon gives it when it opens it first
      Files.createFile(
          logFile,
          PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r-----")));
    } catch (FileAlreadyExistsException e) {
      // appended to
    }
    Process p = pb.start();
    // What the daemon prints before it is ready (it writes to its log itself from then on) goes to
    // the log; all but records of level INFO go to the terminal too: errors and warnings (a mount
    // that fails says why there), not the daemon's story.
    try (BufferedReader out =
            new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        Writer early =
            Files.newBufferedWriter(
                logFile,
                StandardCharsets.UTF_8,
                StandardOpenOption.CREATE,
                StandardOpenOption.APPEND)) {
      for (String line; (line = out.readLine()) != null; ) {
        if (line.equals(READY)) {
          System.err.println(
              "dedupfs: mounted "
                  + store.toAbsolutePath().normalize()
                  + " on "
                  + mnt
                  + " (daemon pid "
                  + p.pid()
                  + ", log "
                  + logFile
                  + ")");
          return 0;
        }
        early.write(line + "\n");
        early.flush();
        if (!INFO_RECORD.matcher(line).lookingAt()) {
          System.err.println(line);
        }
      }
    }
    int code = p.waitFor();
    return code == 0 ? Main.EXIT_FAILURE : code;
  }

  /** The first line of a log record of level INFO, as the daemon prints them. */
  private static final Pattern INFO_RECORD =
      Pattern.compile("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d INFO ");

  private static Path defaultLog(Path mnt) {
    String name = mnt.toString().replaceAll("^/+", "").replace('/', '-') + ".log";
    if (Posix.euid() == 0) {
      return Path.of("/var/log/dedupfs", name.isEmpty() ? "root.log" : name);
    }
    String state = System.getenv("XDG_STATE_HOME");
    Path base =
        state != null
            ? Path.of(state)
            : Path.of(System.getProperty("user.home"), ".local", "state");
    return base.resolve("dedupfs").resolve(name);
  }
}
