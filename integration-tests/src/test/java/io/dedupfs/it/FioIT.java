package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * fio with data verification on a real mount: random writes of 4 KiB and of 64 KiB by four jobs,
 * each on its own file, every block stamped with a CRC32C header and read back by fio; buffered,
 * with O_DIRECT (libaio, several requests in flight per file) and with the mount's writeback cache.
 * After each run the store is unmounted, mounted again and the same workload verified again ({@code
 * --verify_only}): what fio wrote survived. A last test makes sure a changed byte does make this
 * harness fail.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class FioIT {
  private static final int JOBS = 4;
  private static final Duration FIO_TIMEOUT = Duration.ofMinutes(8);

  @TempDir Path tempDir;

  private Path tmp;

  @BeforeEach
  void realTmp() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = tempDir.toRealPath();
  }

  private final List<Mounted> mounts = new ArrayList<>();

  private Mounted mount(Path store, Path mnt, Path logDir, String... options) {
    Mounted m = Mounted.mount(store, mnt, logDir, options);
    mounts.add(m);
    return m;
  }

  @AfterEach
  void daemonLogsAreClean() {
    for (Mounted m : mounts) {
      m.close(); // no-op unless a test left it open
      logIsClean(m);
    }
  }

  @Test
  void randomWritesOf4KiBByFourJobsVerify() {
    writeVerifyRemountVerify(List.of(), 64L << 20, "--bs=4k", "--ioengine=psync");
  }

  @Test
  void randomWritesOf64KiBByFourJobsVerify() {
    writeVerifyRemountVerify(List.of(), 128L << 20, "--bs=64k", "--ioengine=psync");
  }

  /** O_DIRECT (qemu's cache=none path): 4 KiB and 64 KiB writes, 8 in flight per file. */
  @Test
  void directIoRandomWritesVerify() {
    writeVerifyRemountVerify(
        List.of(),
        64L << 20,
        "--direct=1",
        "--ioengine=libaio",
        "--iodepth=8",
        "--bssplit=4k/50:64k/50");
  }

  /**
   * The kernel caches and merges writes; fio's reads come back through the same cache, then from
   * the store after a new mount.
   */
  @Test
  void writebackCacheMountRandomWritesVerify() {
    writeVerifyRemountVerify(
        List.of("--writeback-cache"), 64L << 20, "--ioengine=psync", "--bssplit=4k/50:64k/50");
  }

  /** The harness itself: one flipped byte in a file fio wrote must fail the verification. */
  @Test
  void aChangedByteFailsTheVerification() throws IOException {
    try (Mounted m = mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      List<String> job = job(m.mountpoint(), "small", 1, 4L << 20, "--bs=4k", "--ioengine=psync");
      expectClean(fio(job, "--do_verify=1"), 1, 4L << 20, "write and verify");
      Path file = m.mountpoint().resolve("small.0.0");
      assertThat(file).exists();
      try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
        f.seek(100_000);
        int b = f.read();
        f.seek(100_000);
        f.write(b ^ 0x5a);
      }
      FioRun bad = fio(job, "--verify_only");
      assertThat(bad.exitCode()).as("fio exit code after a byte was changed\n%s", bad).isNotZero();
      assertThat(bad.stderr() + bad.json()).contains("verify failed");
    }
  }

  /**
   * The daemon's log (read after close) has no unexpected failure: no EIO answered for an
   * exception, no stack trace.
   */
  private static void logIsClean(Mounted m) {
    assertThat(m.output())
        .as("daemon log of %s", m.mountpoint())
        .doesNotContain("request failed unexpectedly")
        .doesNotContain("Exception")
        .doesNotContain(" ERROR ");
  }

  // ---- the workload --------------------------------------------------------------------------

  private void writeVerifyRemountVerify(
      List<String> mountOptions, long sizePerJob, String... fioOptions) {
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");
    List<String> job;
    try (Mounted m = mount(store, mnt, tmp, mountOptions.toArray(String[]::new))) {
      job = job(m.mountpoint(), "verify", JOBS, sizePerJob, fioOptions);
      expectClean(fio(job, "--do_verify=1"), JOBS, sizePerJob, "write and verify");
      for (int j = 0; j < JOBS; j++) {
        assertThat(m.mountpoint().resolve("verify." + j + ".0"))
            .as("fio's file of job " + j)
            .hasSize(sizePerJob);
      }
    }
    try (Mounted m = mount(store, mnt, tmp)) {
      expectClean(fio(job, "--verify_only"), JOBS, sizePerJob, "verify after a new mount");
    }
  }

  /**
   * fio options for {@code jobs} jobs of random writes over {@code size} bytes each,
   * CRC32C-verified.
   */
  private static List<String> job(Path dir, String name, int jobs, long size, String... extra) {
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "fio",
                "--name=" + name,
                "--directory=" + dir,
                "--rw=randwrite",
                "--size=" + size,
                "--numjobs=" + jobs,
                "--verify=crc32c",
                "--verify_fatal=1",
                "--verify_dump=0",
                "--verify_state_save=0",
                "--randrepeat=1",
                "--output-format=json"));
    cmd.addAll(List.of(extra));
    return cmd;
  }

  private record FioRun(List<String> command, int exitCode, String json, String stderr) {
    @Override
    public String toString() {
      return "$ "
          + String.join(" ", command)
          + "\nexit code: "
          + exitCode
          + "\n--- stderr ---\n"
          + stderr
          + "\n--- json ---\n"
          + (json.length() > 20_000 ? json.substring(0, 20_000) + "..." : json);
    }
  }

  private FioRun fio(List<String> job, String... more) {
    try {
      Path out = Files.createTempFile(tmp, "fio-", ".json");
      List<String> cmd = new ArrayList<>(job);
      cmd.addAll(List.of(more));
      cmd.add("--output=" + out);
      Shell.Result r = Shell.run(FIO_TIMEOUT, Map.of(), cmd);
      return new FioRun(cmd, r.exitCode(), Files.readString(out), r.stdout() + r.stderr());
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /**
   * Exit code 0, and per job: error 0, and every byte written (or pretended, for verify_only) read
   * back and verified.
   */
  private static void expectClean(FioRun run, int jobs, long sizePerJob, String what) {
    assertThat(run.exitCode()).as("%s: fio exit code\n%s", what, run).isZero();
    assertThat(run.stderr() + run.json())
        .as("%s: fio output\n%s", what, run)
        .doesNotContain("verify failed")
        .doesNotContain("bad magic")
        .doesNotContain("bad header");
    Object root;
    try {
      root = Json.parse(run.json());
    } catch (IllegalArgumentException e) {
      throw new AssertionError(
          what + ": fio's JSON output does not parse (" + e.getMessage() + ")\n" + run, e);
    }
    @SuppressWarnings("unchecked")
    List<Object> results = (List<Object>) Json.at(root, "jobs");
    assertThat(results).as("%s: jobs in fio's report\n%s", what, run).hasSize(jobs);
    for (int j = 0; j < jobs; j++) {
      assertThat(Json.longAt(root, "jobs", j, "error"))
          .as("%s: job %d error\n%s", what, j, run)
          .isZero();
      assertThat(Json.longAt(root, "jobs", j, "write", "io_bytes"))
          .as("%s: job %d bytes written", what, j)
          .isEqualTo(sizePerJob);
      assertThat(Json.longAt(root, "jobs", j, "read", "io_bytes"))
          .as("%s: job %d bytes verified", what, j)
          .isEqualTo(sizePerJob);
    }
  }
}
