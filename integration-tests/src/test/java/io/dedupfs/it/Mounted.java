package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A dedupfs mount made the way an administrator makes one: {@code mount-scripts/dedupfs mount -f
 * [options] STORE MOUNTPOINT}, as a child process in the foreground, so that a test can SIGKILL or
 * SIGTERM the daemon. The daemon's stdout and stderr go to a log file in the given directory.
 *
 * <pre>{@code
 * try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
 *     Files.writeString(m.mountpoint().resolve("a"), "hello");
 * }
 * }</pre>
 *
 * Register {@link PrintLogsOnFailure} ({@code @ExtendWith(Mounted.PrintLogsOnFailure.class)}) to
 * get the daemon logs of a failed test printed.
 */
public final class Mounted implements AutoCloseable {

  public static final String FSTYPE = "fuse.dedupfs";
  public static final Duration MOUNT_TIMEOUT = Duration.ofSeconds(60);
  public static final Duration STOP_TIMEOUT = Duration.ofSeconds(120);

  private static final List<Mounted> RECENT = Collections.synchronizedList(new ArrayList<>());

  private final Path store;
  private final Path mountpoint;
  private final Path log;
  private final Process process;
  private boolean killed;
  private boolean stopped;
  private boolean closed;
  private String finalLog;

  private Mounted(Path store, Path mountpoint, Path log, Process process) {
    this.store = store;
    this.mountpoint = mountpoint;
    this.log = log;
    this.process = process;
  }

  /**
   * Runs {@code dedupfs mount -f OPTIONS STORE MOUNTPOINT} and returns once {@code
   * /proc/self/mountinfo} shows a {@value #FSTYPE} mount on MOUNTPOINT. Creates MOUNTPOINT if
   * missing, and STORE with {@code dedupfs create} if it is no store yet (a {@code --leaf-size
   * SIZE} among the options goes to create, not to mount). Fails with the daemon's output if it
   * exits first or does not mount in time.
   */
  /**
   * Options added to every mount: {@code DEDUPFS_IT_MOUNT_OPTIONS}, split on spaces (e.g. {@code
   * --io-uring}, to run every test through FUSE over io_uring).
   */
  private static final List<String> EXTRA_OPTIONS =
      List.of(System.getenv().getOrDefault("DEDUPFS_IT_MOUNT_OPTIONS", "").split(" ")).stream()
          .filter(o -> !o.isEmpty())
          .toList();

  public static Mounted mount(Path store, Path mountpoint, Path logDir, String... options) {
    return mount(Map.of(), store, mountpoint, logDir, options);
  }

  /**
   * {@link #mount(Path, Path, Path, String...)}, the daemon with {@code env} in its environment.
   */
  public static Mounted mount(
      Map<String, String> env, Path store, Path mountpoint, Path logDir, String... options) {
    List<String> mountOptions = new ArrayList<>(List.of(options));
    EXTRA_OPTIONS.stream().filter(o -> !mountOptions.contains(o)).forEach(mountOptions::add);
    int leaf = mountOptions.indexOf("--leaf-size");
    List<String> create = new ArrayList<>(List.of("create"));
    if (leaf >= 0) {
      create.addAll(mountOptions.subList(leaf, leaf + 2));
      mountOptions.subList(leaf, leaf + 2).clear();
    }
    if (!io.dedupfs.engine.Datastore.isStore(store)) {
      create.add(store.toString());
      Shell.Result r = cli(create.toArray(String[]::new));
      if (r.exitCode() != 0) {
        throw new AssertionError(
            "`dedupfs " + String.join(" ", create) + "` failed: " + r.stderr());
      }
    }
    try {
      Files.createDirectories(mountpoint);
      Path mnt = mountpoint.toRealPath();
      if (isMounted(mnt)) {
        throw new AssertionError(mnt + " is already mounted: " + fstypeAt(mnt).orElse("?"));
      }
      Files.createDirectories(logDir);
      Path log = Files.createTempFile(logDir, "dedupfs-" + mnt.getFileName() + "-", ".log");
      List<String> cmd = new ArrayList<>(List.of(script().toString(), "mount", "-f"));
      cmd.addAll(mountOptions);
      cmd.add(store.toString());
      cmd.add(mnt.toString());
      ProcessBuilder pb =
          new ProcessBuilder(cmd)
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
              .redirectErrorStream(true);
      pb.environment().putAll(cliEnv());
      pb.environment().putAll(env);
      Mounted m = new Mounted(store, mnt, log, pb.start());
      RECENT.add(m);
      m.awaitMounted(String.join(" ", cmd));
      return m;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private void awaitMounted(String command) {
    long deadline = System.nanoTime() + MOUNT_TIMEOUT.toNanos();
    while (true) {
      if (FSTYPE.equals(fstypeAt(mountpoint).orElse(null))) {
        return;
      }
      if (!process.isAlive()) {
        throw new AssertionError(
            "`"
                + command
                + "` exited with code "
                + process.exitValue()
                + " before "
                + mountpoint
                + " was mounted. Its output:\n"
                + output());
      }
      if (System.nanoTime() > deadline) {
        process.destroyForcibly();
        forceUnmount(mountpoint);
        throw new AssertionError(
            "`"
                + command
                + "` did not mount "
                + mountpoint
                + " within "
                + MOUNT_TIMEOUT
                + " (killed). Its output:\n"
                + output());
      }
      sleep(100);
    }
  }

  public Path store() {
    return store;
  }

  /** The mountpoint, as a real path (as the kernel shows it in mountinfo). */
  public Path mountpoint() {
    return mountpoint;
  }

  /** The file holding the daemon's stdout and stderr. */
  public Path log() {
    return log;
  }

  /** The daemon's pid: the JVM's, since mount-scripts/dedupfs execs java. */
  public long pid() {
    return process.pid();
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  /** What the daemon printed so far (or until close). */
  public String output() {
    if (finalLog != null) {
      return finalLog;
    }
    try {
      return new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "(cannot read " + log + ": " + e + ")";
    }
  }

  /**
   * SIGKILL the daemon and wait for it to die. Leaves a dead mount; {@link #close()} detaches it.
   */
  public void kill9() {
    killed = true;
    process.destroyForcibly(); // SIGKILL on Linux
    if (!waitFor(Duration.ofSeconds(30))) {
      throw new AssertionError("pid " + pid() + " survived SIGKILL for 30 s");
    }
  }

  /**
   * SIGTERM the daemon (what systemd's stop does) and wait for it to exit, which it must do after
   * flushing and unmounting. Returns its exit code.
   */
  public int stopGracefully() {
    stopped = true;
    process.destroy(); // SIGTERM on Linux
    if (!waitFor(STOP_TIMEOUT)) {
      throw new AssertionError(
          "dedupfs (pid "
              + pid()
              + ") did not exit within "
              + STOP_TIMEOUT
              + " of SIGTERM. Its output:\n"
              + output());
    }
    return process.exitValue();
  }

  /**
   * Unmounts with {@code dedupfs umount} (falling back to {@code umount -l}), waits for the daemon
   * to exit (killing it if it does not), and fails if the daemon was alive but the CLI's umount
   * failed, or the daemon did not exit cleanly. Bounded in time; idempotent.
   */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    List<String> problems = new ArrayList<>();
    boolean daemonWasAlive = process.isAlive() && !killed;
    if (!process.isAlive() && !killed && !stopped && process.exitValue() != 0) {
      problems.add("daemon exited by itself with code " + process.exitValue() + " before close()");
    }
    if (isMounted(mountpoint)) {
      String umount;
      try {
        Shell.Result r = cli(STOP_TIMEOUT, "umount", mountpoint.toString());
        umount = r.ok() ? null : r.describe();
      } catch (IllegalStateException e) { // timed out
        umount = e.getMessage();
      }
      if (umount != null && daemonWasAlive) {
        problems.add("dedupfs umount failed:\n" + umount);
      }
      if (isMounted(mountpoint)) {
        forceUnmount(mountpoint);
        if (daemonWasAlive && umount == null) {
          problems.add("dedupfs umount exited 0 but " + mountpoint + " was still mounted");
        }
      }
    }
    if (!waitFor(STOP_TIMEOUT)) {
      problems.add(
          "daemon (pid "
              + pid()
              + ") still running "
              + STOP_TIMEOUT
              + " after the unmount: killed");
      process.destroyForcibly();
      waitFor(Duration.ofSeconds(30));
    } else if (daemonWasAlive && process.exitValue() != 0) {
      problems.add("daemon exited with code " + process.exitValue() + " after the unmount");
    }
    finalLog = output();
    if (!problems.isEmpty()) {
      throw new AssertionError(
          String.join("\n", problems) + "\nDaemon output (" + log + "):\n" + finalLog);
    }
  }

  private boolean waitFor(Duration timeout) {
    try {
      return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  // ---- the CLI -------------------------------------------------------------------------------

  /** The repository root: system property dedupfs.repo.root, else found upwards from user.dir. */
  public static Path repoRoot() {
    String prop = System.getProperty("dedupfs.repo.root");
    if (prop != null && Files.isExecutable(Path.of(prop, "mount-scripts", "dedupfs"))) {
      return Path.of(prop).toAbsolutePath();
    }
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      if (Files.isExecutable(p.resolve("mount-scripts/dedupfs"))) {
        return p;
      }
    }
    throw new IllegalStateException(
        "mount-scripts/dedupfs not found (dedupfs.repo.root="
            + prop
            + ", user.dir="
            + System.getProperty("user.dir")
            + ")");
  }

  /** {@code mount-scripts/dedupfs}, the launcher an administrator runs. */
  public static Path script() {
    return repoRoot().resolve("mount-scripts/dedupfs");
  }

  /**
   * Environment for the launcher: DEDUPFS_JAR is a private copy of the jar named by system property
   * dedupfs.jar (or of the checkout's fs/target/dedupfs.jar), taken once per test JVM. A copy,
   * because a JVM loads classes from its jar lazily: a build that rewrites fs/target/dedupfs.jar
   * while a daemon runs (another developer's {@code mvn package}) makes the daemon's next new class
   * a NoClassDefFoundError, answered with EIO.
   */
  public static Map<String, String> cliEnv() {
    Path jar = privateJar();
    return jar != null ? Map.of("DEDUPFS_JAR", jar.toString()) : Map.of();
  }

  private static Path privateJar;

  private static synchronized Path privateJar() {
    if (privateJar != null) {
      return privateJar;
    }
    String prop = System.getProperty("dedupfs.jar");
    Path built = prop != null ? Path.of(prop) : repoRoot().resolve("fs/target/dedupfs.jar");
    if (!Files.isRegularFile(built)) {
      return null; // the launcher says what is missing
    }
    IOException last = null;
    for (int attempt = 0; attempt < 10; attempt++) {
      try {
        Path copy = Files.createTempFile("dedupfs-it-", ".jar");
        copy.toFile().deleteOnExit();
        Files.copy(built, copy, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        verifyJar(copy); // a build may have been writing it while we copied
        privateJar = copy;
        return copy;
      } catch (IOException e) {
        last = e;
        sleep(2000);
      }
    }
    throw new UncheckedIOException("cannot take a consistent copy of " + built, last);
  }

  /** Reads every entry, so that a torn copy fails here (format or CRC error), not in a daemon. */
  private static void verifyJar(Path jar) throws IOException {
    try (java.util.zip.ZipFile zip = new java.util.zip.ZipFile(jar.toFile())) {
      if (zip.getEntry("io/dedupfs/fs/cli/Main.class") == null) {
        throw new IOException(jar + " has no io/dedupfs/fs/cli/Main.class");
      }
    }
    try (java.util.zip.ZipInputStream in =
        new java.util.zip.ZipInputStream(Files.newInputStream(jar))) {
      byte[] buf = new byte[1 << 16];
      while (in.getNextEntry() != null) {
        while (in.read(buf) >= 0) {
          // ZipInputStream checks each entry's CRC at its end
        }
      }
    }
  }

  /** Runs {@code mount-scripts/dedupfs ARGS...} to completion. */
  public static Shell.Result cli(String... args) {
    return cli(Shell.DEFAULT_TIMEOUT, args);
  }

  public static Shell.Result cli(Duration timeout, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(script().toString());
    cmd.addAll(List.of(args));
    return Shell.run(timeout, cliEnv(), cmd);
  }

  // ---- mounts --------------------------------------------------------------------------------

  /** Skips the test unless this machine can mount FUSE filesystems with libfuse3. */
  /**
   * Unmounts each of {@code mounts}; asserts that no daemon logged a failed request or an error.
   */
  static void closeAll(List<Mounted> mounts) {
    for (Mounted m : mounts) {
      m.close();
      assertThat(m.output())
          .as("daemon log of %s", m.mountpoint())
          .doesNotContain("request failed unexpectedly")
          .doesNotContain(" ERROR ");
    }
  }

  public static void assumeFuseAvailable() {
    Path dev = Path.of("/dev/fuse");
    assumeTrue(Files.isReadable(dev) && Files.isWritable(dev), "no usable /dev/fuse");
    boolean lib =
        Stream.of(
                "/usr/lib/x86_64-linux-gnu",
                "/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/lib/aarch64-linux-gnu",
                "/usr/lib64",
                "/usr/lib")
            .anyMatch(d -> Files.isReadable(Path.of(d, "libfuse3.so.3")));
    assumeTrue(lib, "libfuse3.so.3 not installed (apt-get install libfuse3-3)");
  }

  /** Whether anything is mounted on {@code mountpoint} (a real path). */
  public static boolean isMounted(Path mountpoint) {
    return fstypeAt(mountpoint).isPresent();
  }

  /**
   * The type of the topmost mount on {@code mountpoint} (a real path), per /proc/self/mountinfo.
   */
  public static Optional<String> fstypeAt(Path mountpoint) {
    String target = mountpoint.toAbsolutePath().normalize().toString();
    String type = null;
    List<String> lines;
    try {
      lines = Files.readAllLines(Path.of("/proc/self/mountinfo"), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    for (String line : lines) {
      // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
      String[] f = line.split(" ");
      int sep = List.of(f).indexOf("-");
      if (f.length > 4 && sep > 4 && sep + 1 < f.length && unescape(f[4]).equals(target)) {
        type = f[sep + 1]; // later lines are mounted on top of earlier ones
      }
    }
    return Optional.ofNullable(type);
  }

  /** Detaches whatever is mounted on {@code mountpoint}: {@code umount -l}, then fusermount3. */
  public static void forceUnmount(Path mountpoint) {
    String mnt = mountpoint.toString();
    for (int i = 0; i < 5 && isMounted(mountpoint); i++) {
      try {
        if (!Shell.run(Duration.ofSeconds(30), "umount", "-l", mnt).ok()) {
          Shell.run(Duration.ofSeconds(30), "fusermount3", "-u", "-z", mnt);
        }
      } catch (RuntimeException e) {
        // timed out, or no such command: try again
      }
    }
  }

  /** mountinfo escapes space, tab, newline and backslash as \ooo. */
  private static String unescape(String s) {
    if (s.indexOf('\\') < 0) {
      return s;
    }
    StringBuilder b = new StringBuilder(s.length());
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 3 < s.length() && s.substring(i + 1, i + 4).matches("[0-7]{3}")) {
        b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /**
   * Prints the daemon output of every mount made during a test, if the test failed. Use with
   * {@code @ExtendWith(Mounted.PrintLogsOnFailure.class)}.
   */
  public static final class PrintLogsOnFailure implements TestWatcher {
    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
      synchronized (RECENT) {
        for (Mounted m : RECENT) {
          System.out.println(
              "---- dedupfs daemon output for "
                  + m.mountpoint()
                  + " (test "
                  + context.getDisplayName()
                  + ") ----\n"
                  + m.output());
        }
        RECENT.clear();
      }
    }

    @Override
    public void testSuccessful(ExtensionContext context) {
      RECENT.clear();
    }

    @Override
    public void testAborted(ExtensionContext context, Throwable cause) {
      RECENT.clear();
    }

    @Override
    public void testDisabled(ExtensionContext context, Optional<String> reason) {
      RECENT.clear();
    }
  }
}
