package io.dedupfs.rados;

import static org.junit.jupiter.api.Assertions.fail;

import io.dedupfs.engine.Hash;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * The one-node Ceph cluster the RADOS tests share: one per test JVM, started on first use by {@code
 * scripts/ceph.sh start} in a temporary directory and stopped (by its pid files) and deleted when
 * the JVM exits. Without Ceph installed the tests are skipped, except where {@code CI=true}: there
 * a missing cluster is a failure, so that the README's test command runs them for real. With {@code
 * DEDUPFS_TEST_CEPH_DIR} set, the tests use the cluster that {@code scripts/ceph.sh start} started
 * in that directory instead, and leave it running.
 */
public final class TestCeph {
  private static final int FIRST_PORT = 17400;
  private static final int PORTS = 20; // ceph.sh's range: the mon's port and 19 more
  private static TestCeph cluster;

  /** The cluster's directory (ceph.sh's DIR): ceph.conf, run/osd.0.pid, log/. */
  final Path dir;

  private TestCeph(Path dir) {
    this.dir = dir;
  }

  /** The shared cluster, started now if it is not yet up; skips the test if Ceph is missing. */
  public static synchronized TestCeph get() {
    String given = System.getenv("DEDUPFS_TEST_CEPH_DIR");
    if (cluster == null && given != null && !given.isEmpty()) {
      cluster = new TestCeph(Path.of(given)); // a running cluster of ceph.sh's, left running
    }
    if (cluster == null) {
      boolean ci = "true".equals(System.getenv("CI"));
      if (!ci && !Files.isExecutable(Path.of("/usr/bin/ceph-mon"))) {
        Assumptions.abort(
            "Ceph is not installed (scripts/deps.sh installs it): RADOS tests skipped");
      }
      try {
        cluster = start();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return cluster;
  }

  public Path conf() {
    return dir.resolve("ceph.conf");
  }

  /** The OSD's pid, from its pid file. */
  long osdPid() throws IOException {
    return Long.parseLong(Files.readString(dir.resolve("run/osd.0.pid")).trim());
  }

  /** Stops the OSD ({@code scripts/ceph.sh stop-osd}, by its pid file), as a host going down. */
  public void stopOsd() throws IOException {
    osd("stop-osd");
  }

  /**
   * Starts the OSD again and waits until every placement group is active+clean. A start that fails
   * (once in CI ceph-osd hung before it logged anything) is tried once more, after stopping
   * whatever of it runs: the tests are about dedupfs, not about Ceph's start.
   */
  public void startOsd() throws IOException {
    String failed = tryOsd("start-osd");
    if (failed == null) {
      return;
    }
    System.err.println("TestCeph: " + failed + "\nTestCeph: stopping osd.0 and starting it again");
    tryOsd("stop-osd"); // fails when nothing runs: fine
    String again = tryOsd("start-osd");
    if (again != null) {
      fail(failed + "\nand again: " + again);
    }
  }

  private void osd(String command) throws IOException {
    String failed = tryOsd(command);
    if (failed != null) {
      fail(failed);
    }
  }

  /** Runs {@code scripts/ceph.sh COMMAND}; null when it succeeds, else what it printed. */
  private String tryOsd(String command) throws IOException {
    Path log = Files.createTempFile("dedupfs-ceph-" + command + "-", ".log");
    try {
      int rc = run(log, "bash", script().toString(), command, dir.toString());
      return rc == 0
          ? null
          : "scripts/ceph.sh " + command + " failed (exit " + rc + "):\n" + Files.readString(log);
    } finally {
      Files.deleteIfExists(log);
    }
  }

  /** Sends {@code signal} (STOP, CONT) to the OSD. */
  public void signalOsd(String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(osdPid())).start();
    if (kill.waitFor() != 0) {
      fail("kill -" + signal + " of the OSD failed");
    }
  }

  private static TestCeph start() throws IOException {
    Path script = script();
    Path home = Files.createTempDirectory("dedupfs-ceph-");
    Path dir = home.resolve("cluster");
    Path log = home.resolve("ceph.sh.log");
    int port = freePorts();
    int rc = run(log, "bash", script.toString(), "start", dir.toString(), "--port", "" + port);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(script, home, dir)));
    if (rc != 0) {
      fail(
          "scripts/ceph.sh start failed (exit "
              + rc
              + "):\n"
              + Files.readString(log, StandardCharsets.UTF_8));
    }
    return new TestCeph(dir);
  }

  private static void stop(Path script, Path home, Path dir) {
    try {
      run(home.resolve("ceph.sh-stop.log"), "bash", script.toString(), "stop", dir.toString());
      try (Stream<Path> files = Files.walk(home)) {
        for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    } catch (IOException e) {
      System.err.println("stopping the test Ceph cluster in " + dir + ": " + e);
    }
  }

  private static int run(Path log, String... command) throws IOException {
    Process p =
        new ProcessBuilder(command)
            .redirectErrorStream(true)
            .redirectOutput(log.toFile())
            .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
            .start();
    try {
      return p.waitFor();
    } catch (InterruptedException e) {
      p.destroy();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while running " + String.join(" ", command), e);
    }
  }

  /** scripts/ceph.sh of this checkout, found from the working directory (a module or the root). */
  private static Path script() {
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      Path s = d.resolve("scripts/ceph.sh");
      if (Files.isRegularFile(s)) {
        return s;
      }
    }
    throw new IllegalStateException(
        "scripts/ceph.sh not found above " + Path.of("").toAbsolutePath());
  }

  /** The first port from FIRST_PORT, in steps of PORTS, whose whole range is free on 127.0.0.1. */
  private static int freePorts() throws IOException {
    InetAddress loopback = InetAddress.getLoopbackAddress();
    search:
    for (int base = FIRST_PORT; base < FIRST_PORT + 50 * PORTS; base += PORTS) {
      for (int p = base; p < base + PORTS; p++) {
        try (ServerSocket s = new ServerSocket(p, 1, loopback)) {
          s.setReuseAddress(true);
        } catch (IOException taken) {
          continue search;
        }
      }
      return base;
    }
    throw new IOException("no free range of " + PORTS + " ports from " + FIRST_PORT);
  }

  /** A test block's name: the SHA-256 of its content. */
  static Hash sha256(byte[] block) {
    try {
      return Hash.of(java.security.MessageDigest.getInstance("SHA-256").digest(block));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
