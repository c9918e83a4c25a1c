package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A child JVM writes and flushes in a loop and is killed with SIGKILL at a random moment; on
 * reopen every write whose flush it reported is intact, every directory it reported exists, any
 * later record is either whole or absent, and the store is consistent. The rounds share one store,
 * so each reopen recovers from the previous kill too.
 */
class CrashTest {
  @TempDir Path dir;

  @Test
  void everyReportedFlushSurvivesSigkill() throws Exception {
    SplittableRandom r = new SplittableRandom(42);
    int rounds = TestStores.longRuns() ? 20 : 4;
    for (int round = 0; round < rounds; round++) {
      String name = "crash" + round;
      long seed = r.nextLong();
      int killAfter = 8 + r.nextInt(60);
      Reported reported = runAndKill(name, seed, killAfter, r.nextInt(30));
      assertThat(reported.lastFlushed).as("round %d: the child flushed something before the kill", round).isGreaterThanOrEqualTo(0);
      try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
        long ino = ds.lookup(Datastore.ROOT, name).ino();
        long size = ds.getattr(ino).size();
        assertThat(size).isGreaterThanOrEqualTo((reported.lastFlushed + 1L) * CrashWriter.RECORD);
        for (int i = 0; (long) i * CrashWriter.RECORD < size; i++) {
          byte[] got = TestStores.read(ds, ino, (long) i * CrashWriter.RECORD, CrashWriter.RECORD);
          byte[] want = CrashWriter.record(seed, i);
          if (i <= reported.lastFlushed) {
            assertThat(got).as("round %d: record %d was reported flushed", round, i).isEqualTo(want);
          } else {
            boolean whole = Arrays.equals(got, Arrays.copyOf(want, got.length));
            boolean absent = Arrays.equals(got, new byte[got.length]);
            assertThat(whole || absent).as("round %d: record %d, after the last reported flush, is whole or absent", round, i).isTrue();
          }
        }
        for (int d : reported.dirs) {
          assertThat(ds.lookup(Datastore.ROOT, name + "-dir" + d).isDirectory()).isTrue();
        }
        assertConsistent(ds);
      }
    }
  }

  private record Reported(int lastFlushed, List<Integer> dirs) {}

  /** Runs a {@link CrashWriter} until it has reported {@code killAfter} lines, then kills it. */
  private Reported runAndKill(String name, long seed, int killAfter, int delayMs) throws Exception {
    String jvmFlags = Objects.requireNonNull(System.getProperty("lmdb.jvm.args"),
        "lmdb.jvm.args is not set: run this test through Maven, whose surefire passes it");
    List<String> cmd = new ArrayList<>();
    cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(Arrays.asList(jvmFlags.trim().split("\\s+")));
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), CrashWriter.class.getName(),
        dir.toString(), name, Long.toString(seed)));
    Process child = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    int lastFlushed = -1;
    List<Integer> dirs = new ArrayList<>();
    try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      int lines = 0;
      for (String line; lines < killAfter && (line = out.readLine()) != null; lines++) {
        String[] words = line.split(" ");
        if (words[0].equals("flushed")) {
          lastFlushed = Integer.parseInt(words[1]);
        } else if (words[0].equals("mkdir")) {
          dirs.add(Integer.parseInt(words[1]));
        }
      }
      Thread.sleep(delayMs); // let it get into the middle of something; what it reports meanwhile goes unchecked
      child.destroyForcibly();
      assertThat(child.waitFor(30, TimeUnit.SECONDS)).isTrue();
    } finally {
      child.destroyForcibly();
    }
    assertThat(child.exitValue()).as("the child was killed, not stopped by an error").isEqualTo(137);
    return new Reported(lastFlushed, dirs);
  }
}
