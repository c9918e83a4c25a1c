package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The do-nothing filesystem that benchmarks/fuse-bench.sh measures dedupfs against ({@code
 * benchmarks/nullfs}, from the benchmarks module: not in the product jar): it mounts, dd and fio
 * run on it unmodified (with and without the writeback cache, whose close sends a utimens setattr),
 * reads return zeros up to the size written, and {@code umount} ends the process with exit code 0.
 * A smoke test, so that the benchmark's ceiling does not silently rot.
 */
class NullFsIT {
  private static final String FSTYPE = "fuse.nullfs";

  @TempDir Path tempDir;

  private Path tmp;

  @BeforeEach
  void setUp() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = tempDir.toRealPath();
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"--threads=8", "--writeback-cache"})
  void ddAndFioRunOnTheDoNothingMount(String option) throws Exception {
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));
    Path log = tmp.resolve("nullfs.log");
    List<String> cmd =
        new ArrayList<>(
            List.of(
                Mounted.repoRoot().resolve("benchmarks/nullfs").toString(),
                "-f",
                option,
                "--files=3",
                "--file-size=8M",
                mnt.toString()));
    ProcessBuilder pb =
        new ProcessBuilder(cmd)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(log.toFile())
            .redirectErrorStream(true);
    pb.environment().putAll(Mounted.cliEnv());
    Process p = pb.start();
    try {
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (!FSTYPE.equals(Mounted.fstypeAt(mnt).orElse(null))) {
        assertThat(p.isAlive()).as("nullfs exited early: %s", Files.readString(log)).isTrue();
        assertThat(System.nanoTime()).as("nullfs did not mount in 60 s").isLessThan(deadline);
        Thread.sleep(100);
      }
      assertThat(mnt.toFile().list()).containsExactlyInAnyOrder("file0", "file1", "file2");
      assertThat(mnt.resolve("file1")).hasSize(8L << 20);
      assertThat(
              Files.mismatch(
                  mnt.resolve("file2"), Files.write(tmp.resolve("zeros"), new byte[8 << 20])))
          .isEqualTo(-1L);

      ok(
          Shell.run(
              "dd",
              "if=/dev/urandom",
              "of=" + mnt.resolve("seq"),
              "bs=1M",
              "count=16",
              "conv=fdatasync"));
      ok(
          Shell.run(
              "dd",
              "if=/dev/urandom",
              "of=" + mnt.resolve("direct"),
              "bs=1M",
              "count=16",
              "oflag=direct"));
      assertThat(mnt.resolve("seq")).hasSize(16L << 20);
      assertThat(mnt.resolve("direct")).hasSize(16L << 20);
      // What was written is gone: past the page cache (which keeps what a buffered write put
      // there), zeros.
      ok(
          Shell.run(
              "sh",
              "-c",
              "dd if="
                  + mnt.resolve("direct")
                  + " iflag=direct bs=1M status=none"
                  + " | cmp -n 16777216 - /dev/zero"));
      for (String rw : List.of("randwrite", "randread")) {
        ok(
            Shell.run(
                Duration.ofMinutes(2),
                "fio",
                "--name=n",
                "--directory=" + mnt,
                "--rw=" + rw,
                "--bs=4k",
                "--size=16M",
                "--numjobs=2",
                "--direct=1",
                "--time_based",
                "--runtime=1",
                "--output-format=terse"));
      }
      Files.delete(mnt.resolve("seq"));
      assertThat(mnt.resolve("seq")).doesNotExist();
      assertThat(ok(Shell.run("df", "--output=fstype,size", mnt.toString())).stdout())
          .contains(FSTYPE);

      ok(Shell.run("umount", mnt.toString()));
      assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("nullfs exits after umount").isTrue();
      assertThat(p.exitValue()).as("exit code; log:\n%s", Files.readString(log)).isZero();
      assertThat(Files.readString(log)).doesNotContain("Exception").doesNotContain("answering EIO");
    } finally {
      if (Mounted.isMounted(mnt)) {
        Mounted.forceUnmount(mnt);
      }
      p.destroyForcibly();
      p.waitFor(30, TimeUnit.SECONDS);
    }
  }

  private static Shell.Result ok(Shell.Result r) {
    assertThat(r.exitCode()).as("%s", r.describe()).isZero();
    return r;
  }
}
