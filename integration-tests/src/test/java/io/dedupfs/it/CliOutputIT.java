package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 11, items 8, 10 and 13: the administrative commands' output for scripts (--json, -H, -p),
 * snapshot list's space columns, stats of several paths and --per-file, progress in a pipe and on a
 * terminal, and the messages that name what is wrong. Figures are checked against what the test
 * wrote: two identical 4 MiB files of random bytes, then a snapshot of everything.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class CliOutputIT {

  private static final long MIB = 1 << 20;

  /** Tree nodes come on top of the 4 MiB of leaves: a few KiB; 64 KiB is a generous bound. */
  private static final long NODES = 64 * 1024;

  @TempDir Path tempDir;

  @Test
  void jsonAndTablesGiveTheFiguresOfWhatWasWritten() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path mnt = m.mountpoint();
      Path vms = Files.createDirectories(mnt.resolve("vms"));
      byte[] data = new byte[(int) (4 * MIB)];
      new Random(11).nextBytes(data);
      Files.write(vms.resolve("vm1.img"), data);
      Files.write(vms.resolve("vm2.img"), data);

      // before any snapshot: the two files share every block; vms/ alone holds them
      Object stats =
          json(cli("stats", "--json", vms.toString(), vms.resolve("vm1.img").toString()));
      assertThat(Json.at(stats, "type")).isEqualTo("stats");
      assertThat(Json.at(stats, "paths", 0, "path")).isEqualTo("/vms");
      assertThat(Json.longAt(stats, "paths", 0, "files")).isEqualTo(2);
      assertThat(Json.longAt(stats, "paths", 0, "logical_bytes")).isEqualTo(8 * MIB);
      long stored = Json.longAt(stats, "paths", 0, "stored_bytes");
      assertThat(stored).isBetween(4 * MIB, 4 * MIB + NODES);
      assertThat(Json.longAt(stats, "paths", 0, "exclusive_bytes")).isEqualTo(stored);
      assertThat(Json.longAt(stats, "paths", 0, "shared_bytes")).isZero();
      // referenced: each file's non-zero leaves up to their last non-zero byte; the ratio is
      // referenced / stored
      long referenced = 2 * referencedOf(data, 16384);
      assertThat(Json.longAt(stats, "paths", 0, "referenced_bytes")).isEqualTo(referenced);
      assertThat((Double) Json.at(stats, "paths", 0, "dedupe_ratio"))
          .as("two files sharing every block")
          .isEqualTo(Math.round(100.0 * referenced / stored) / 100.0)
          .isEqualTo(2.0);
      assertThat(Json.longAt(stats, "paths", 1, "referenced_bytes")).isEqualTo(referenced / 2);
      assertThat(Json.at(stats, "paths", 1, "path")).isEqualTo("/vms/vm1.img");
      assertThat(Json.longAt(stats, "paths", 1, "files")).isEqualTo(1);
      assertThat(Json.longAt(stats, "paths", 1, "logical_bytes")).isEqualTo(4 * MIB);
      assertThat(Json.longAt(stats, "paths", 1, "stored_bytes")).isEqualTo(stored);
      assertThat(Json.longAt(stats, "paths", 1, "exclusive_bytes"))
          .as("vm2.img has the same blocks")
          .isZero();
      assertThat(Json.longAt(stats, "store", "leaf_size")).isEqualTo(16384);
      assertThat(Json.longAt(stats, "store", "store_bytes")).isGreaterThan(stored);
      StoreTools.Figures x = StoreTools.xattrFigures(vms);
      assertThat(x.stored()).as("the figures of user.dedupfs.stored").isEqualTo(stored);
      assertThat(x.referenced()).as("the figures of user.dedupfs.referenced").isEqualTo(referenced);
      assertThat(StoreTools.xattrText(vms, "ratio"))
          .isEqualTo(String.format(java.util.Locale.ROOT, "%.3f", x.ratio()));

      // --per-file: each file, then the directory's total (as btrfs filesystem du)
      String s = Long.toString(stored);
      assertThat(cli("stats", "--per-file", "-H", "-p", vms.toString()).lines())
          .containsExactly(
              String.join("\t", "4194304", s, "0", s, "/vms/vm1.img"),
              String.join("\t", "4194304", s, "0", s, "/vms/vm2.img"),
              String.join("\t", "8388608", s, s, "0", "/vms"));
      List<String> perFile =
          cli("stats", "--per-file", vms.toString(), mnt.resolve("vms/vm2.img").toString())
              .lines()
              .toList();
      assertThat(perFile.get(0)).matches("LOGICAL +STORED +EXCLUSIVE +SHARED +PATH");
      assertThat(perFile.subList(1, perFile.size())).hasSize(4);
      assertThat(perFile.get(1)).matches(" *4\\.0 MiB +4\\.0 MiB +0 B +4\\.0 MiB +/vms/vm1\\.img");
      assertThat(perFile.get(3)).matches(" *8\\.0 MiB +4\\.0 MiB +4\\.0 MiB +0 B +/vms");
      assertThat(perFile.get(4)).as("a file named is its own total").endsWith(" /vms/vm2.img");
      Object perFileJson = json(cli("stats", "--per-file", "--json", vms.toString()));
      assertThat(Json.at(perFileJson, "paths", 0, "per_file", 1, "path")).isEqualTo("/vms/vm2.img");
      assertThat(Json.longAt(perFileJson, "paths", 0, "per_file", 1, "logical_bytes"))
          .isEqualTo(4 * MIB);
      assertThat(Json.longAt(perFileJson, "paths", 0, "per_file", 1, "exclusive_bytes")).isZero();

      assertThat(cli("snapshot", "create", "nightly", mnt.toString()))
          .contains("created snapshot nightly");

      // the snapshot refers to the same blocks: nothing is exclusive to it, nor to vms/ any more
      Object list = json(cli("snapshot", "list", "--json", mnt.toString()));
      assertThat(Json.at(list, "type")).isEqualTo("snapshots");
      assertThat((List<?>) Json.at(list, "snapshots")).hasSize(1);
      assertThat(Json.at(list, "snapshots", 0, "name")).isEqualTo("nightly");
      assertThat(Json.at(list, "snapshots", 0, "kind")).isEqualTo("directory");
      assertThat(Json.at(list, "snapshots", 0, "source")).isEqualTo("/");
      assertThat((String) Json.at(list, "snapshots", 0, "created"))
          .matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d.*Z");
      assertThat(Json.longAt(list, "snapshots", 0, "files")).isEqualTo(2);
      assertThat(Json.longAt(list, "snapshots", 0, "logical_bytes")).isEqualTo(8 * MIB);
      assertThat(Json.longAt(list, "snapshots", 0, "stored_bytes")).isEqualTo(stored);
      assertThat(Json.longAt(list, "snapshots", 0, "exclusive_bytes")).isZero();
      Object after = json(cli("stats", "--json", vms.toString()));
      assertThat(Json.longAt(after, "paths", 0, "exclusive_bytes"))
          .as("the snapshot shares them")
          .isZero();
      assertThat(Json.longAt(after, "paths", 0, "shared_bytes")).isEqualTo(stored);

      // -H -p: one tab-separated line per snapshot, the creation time in seconds since the epoch
      String[] row = cli("snapshot", "list", "-H", "-p", mnt.toString()).strip().split("\t", -1);
      assertThat(row).hasSize(7);
      assertThat(List.of(row[0], row[2], row[3], row[4], row[5], row[6]))
          .containsExactly("nightly", "directory", "8388608", s, "0", "/");
      assertThat(Long.parseLong(row[1]))
          .isCloseTo(System.currentTimeMillis() / 1000, org.assertj.core.data.Offset.offset(3600L));
      List<String> table = cli("snapshot", "list", mnt.toString()).lines().toList();
      assertThat(table).hasSize(2);
      assertThat(table.get(0)).matches("NAME +CREATED +KIND +LOGICAL +STORED +EXCLUSIVE +SOURCE");
      assertThat(table.get(1))
          .matches("nightly +\\S+ \\S+ +directory +8\\.0 MiB +4\\.0 MiB +0 B +/");

      // stats of several paths for people; -p; -H
      String two = cli("stats", mnt.toString(), vms.toString());
      assertThat(two)
          .containsPattern("(?m)^path: +/ \\(the whole datastore\\)$")
          .containsPattern("(?m)^path: +/vms$")
          .containsPattern("(?m)^logical: +16\\.0 MiB \\(16,777,216 bytes\\)$");
      assertThat(cli("stats", "-p", vms.toString()))
          .containsPattern("(?m)^logical: +8388608$")
          .containsPattern("(?m)^referenced: +" + referenced + " ")
          .containsPattern("(?m)^exclusive: +0 ")
          .containsPattern("(?m)^files: +2$");
      assertThat(cli("stats", "-H", "-p", vms.toString(), mnt.toString()).lines())
          .containsExactly(
              String.join("\t", "/vms", "2", "8388608", s, "0", s),
              String.join("\t", "/", "4", "16777216", s, s, "0"));

      // deleting the files leaves the snapshot the only holder: deleting it would free all it
      // stores
      Files.delete(vms.resolve("vm1.img"));
      Files.delete(vms.resolve("vm2.img"));
      Object alone = json(cli("snapshot", "list", "--json", mnt.toString()));
      assertThat(Json.longAt(alone, "snapshots", 0, "exclusive_bytes")).isEqualTo(stored);

      // scrub, fsck, compact: every line is a JSON object; progress first, the report last
      List<Object> scrub = jsonLines(cli("scrub", "--json", mnt.toString()));
      Object report = scrub.get(scrub.size() - 1);
      assertThat(Json.at(report, "type")).isEqualTo("scrub");
      assertThat(Json.longAt(report, "blocks_checked")).isGreaterThanOrEqualTo(4 * MIB / 16384);
      assertThat(Json.longAt(report, "bytes_checked")).isBetween(4 * MIB, 4 * MIB + NODES);
      assertThat((List<?>) Json.at(report, "damaged")).isEmpty();
      assertProgress(scrub.subList(0, scrub.size() - 1), "scrub", "blocks");

      List<Object> fsck = jsonLines(cli("fsck", "--json", mnt.toString()));
      assertThat(Json.at(fsck.get(fsck.size() - 1), "type")).isEqualTo("fsck");
      assertThat(Json.at(fsck.get(fsck.size() - 1), "clean")).isEqualTo(true);
      assertThat((List<?>) Json.at(fsck.get(fsck.size() - 1), "problems")).isEmpty();
      assertProgress(fsck.subList(0, fsck.size() - 1), "namespace", "inodes");

      List<Object> compact = jsonLines(cli("compact", "--json", mnt.toString()));
      Object c = compact.get(compact.size() - 1);
      assertThat(Json.at(c, "type")).isEqualTo("compact");
      assertThat(Json.longAt(c, "bytes_after"))
          .isPositive()
          .isLessThanOrEqualTo(Json.longAt(c, "bytes_before"));
      assertProgress(compact.subList(0, compact.size() - 1), "copy", "bytes");
    }
  }

  @Test
  void progressIsPlainLinesInAPipeAndOneRedrawnLineOnATerminal() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path mnt = m.mountpoint();
      StoreTools.unique(mnt.resolve("a.img"), 64 * MIB, 7);
      StoreTools.unique(mnt.resolve("b.img"), 64 * MIB, 8);
      Files.delete(mnt.resolve("b.img"));

      long t0 = System.nanoTime();
      List<String> scrub = cli("scrub", mnt.toString()).lines().toList();
      long seconds = (System.nanoTime() - t0) / 1_000_000_000L;
      assertThat(String.join("\n", scrub)).doesNotContain("\r");
      assertThat(scrub.get(scrub.size() - 1))
          .matches("scrub: [0-9,]+ blocks, [0-9.]+ MiB \\([0-9,]+ bytes\\) checked; 0 damaged");
      List<String> progress = scrub.subList(0, scrub.size() - 1);
      assertThat(progress).first().asString().matches("scrub: 0/[0-9,]+ blocks \\(0%\\)");
      assertThat(progress)
          .last()
          .asString()
          .matches("scrub: ([0-9,]+)/\\1 blocks \\(100%\\)(, [0-9,]+ blocks/s)?");
      assertThat(progress)
          .allMatch(
              l ->
                  l.matches(
                      "scrub: [0-9,]+/[0-9,]+ blocks \\(\\d+%\\)(, [0-9,]+ blocks/s(, ETA \\w+)?)?"));
      assertThat(progress.size())
          .as("at most about one line a second, and each phase's first and last")
          .isLessThanOrEqualTo((int) seconds + 3);

      List<String> compact = cli("compact", mnt.toString()).lines().toList();
      assertThat(compact)
          .anyMatch(l -> l.matches("copy: [0-9.]+ [KMG]iB/[0-9.]+ [KMG]iB \\(\\d+%\\).*"))
          .noneMatch(l -> l.matches("copy: [0-9,]+/.*"));
      assertThat(compact.get(compact.size() - 1))
          .matches(
              "compact: [0-9.]+ MiB \\([0-9,]+ bytes\\) -> [0-9.]+ MiB \\([0-9,]+ bytes\\) on disk");
      List<String> exact = cli("compact", "-p", mnt.toString()).lines().toList();
      assertThat(exact).anyMatch(l -> l.matches("copy: [0-9]+/[0-9]+ \\(\\d+%\\).*"));
      assertThat(exact.get(exact.size() - 1)).matches("compact: [0-9]+ -> [0-9]+ bytes on disk");

      // a terminal (script(1) gives the command a pty): one line redrawn with \r, cleared before
      // the report
      assumeTrue(
          Shell.run("sh", "-c", "command -v script").ok(), "script(1) (util-linux) not installed");
      List<String> cmd =
          new ArrayList<>(
              List.of("script", "-qec", Mounted.script() + " scrub " + mnt, "/dev/null"));
      Map<String, String> env = new java.util.HashMap<>(Mounted.cliEnv());
      env.put("TERM", "xterm");
      Shell.Result tty = Shell.run(Duration.ofMinutes(2), env, cmd);
      assertThat(tty.exitCode()).as("%s", tty).isZero();
      String out = tty.stdout().replace("\r\n", "\n");
      assertThat(out)
          .contains("\rscrub: 0/")
          .containsPattern("\rscrub: [0-9,]+/[0-9,]+ blocks \\(100%\\)");
      String last = out.substring(out.lastIndexOf('\r') + 1);
      assertThat(last)
          .as("the progress line is cleared; the report follows on a clean line")
          .matches("scrub: [0-9,]+ blocks, .* checked; 0 damaged\n");
      assertThat(out.substring(0, out.lastIndexOf('\r'))).doesNotContain("\n");
    }
  }

  @Test
  void messagesNameTheProblem() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Files.setPosixFilePermissions(
        tmp, PosixFilePermissions.fromString("rwxr-xr-x")); // for nobody, below
    try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path mnt = m.mountpoint();
      Path vms = Files.createDirectories(mnt.resolve("vms"));
      Files.writeString(vms.resolve("vm2.img"), "disk\n");
      cli("snapshot", "create", "nightly", mnt.toString());
      cli("snapshot", "create", "one", vms.resolve("vm2.img").toString());

      assertError(
          Mounted.cli(
              "snapshot",
              "restore",
              "nightly",
              "--to",
              vms.resolve("vm2.img").toString(),
              mnt.toString()),
          2,
          "--to "
              + vms.resolve("vm2.img")
              + ": is a file, and snapshot nightly is a directory: restore it to a "
              + "directory or a new name, or one file of it with --path");
      assertError(
          Mounted.cli("snapshot", "restore", "one", "--to", vms.toString(), mnt.toString()),
          2,
          "--to "
              + vms
              + ": is a directory, and snapshot one is a file: give the file's path, e.g. --to "
              + vms
              + "/vm2.img");
      assertError(
          Mounted.cli("snapshot", "restore", "nosuch", mnt.toString()),
          2,
          "no such snapshot: nosuch (snapshots: nightly, one)");
      assertError(
          Mounted.cli("snapshot", "delete", "nosuch", mnt.toString()),
          2,
          "no such snapshot: nosuch (snapshots: nightly, one)");
      assertError(
          Mounted.cli("snapshot", "restore", "nightly", "--path", "vms/nosuch.img", mnt.toString()),
          2,
          "--path vms/nosuch.img: no such file or directory in snapshot nightly");
      assertThat(vms.resolve("vm2.img")).hasContent("disk");
      // what works still works: one file of the snapshot onto the file
      Files.writeString(vms.resolve("vm2.img"), "changed\n");
      cli(
          "snapshot",
          "restore",
          "nightly",
          "--path",
          "vms/vm2.img",
          "--to",
          vms.resolve("vm2.img").toString(),
          mnt.toString());
      assertThat(vms.resolve("vm2.img")).hasContent("disk");

      // not root: the control socket is root-only, and the message says so
      assumeTrue(Tools.isRoot(), "switching to another user needs root");
      Path jar = tmp.resolve("dedupfs.jar");
      Files.copy(Path.of(Mounted.cliEnv().get("DEDUPFS_JAR")), jar);
      Files.setPosixFilePermissions(jar, PosixFilePermissions.fromString("rw-r--r--"));
      Shell.Result r =
          Shell.run(
              Duration.ofMinutes(2),
              Map.of("DEDUPFS_JAR", jar.toString()),
              List.of(
                  "setpriv",
                  "--reuid=65534",
                  "--regid=65534",
                  "--clear-groups",
                  Mounted.script().toString(),
                  "stats",
                  mnt.toString()));
      assertError(
          r,
          1,
          "the store is mounted and its control socket "
              + m.store().resolve("dedupfs.sock")
              + " is root-only: run as root");
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  private static String cli(String... args) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), args);
    assertThat(r.exitCode()).as("%s", r).isZero();
    return r.stdout();
  }

  /** One JSON document on one line. */
  private static Object json(String out) {
    assertThat(out).endsWith("\n");
    assertThat(out.strip()).doesNotContain("\n");
    return Json.parse(out);
  }

  /** Every line a JSON object. */
  private static List<Object> jsonLines(String out) {
    List<Object> all = new ArrayList<>();
    for (String line : out.lines().toList()) {
      all.add(Json.parse(line));
    }
    assertThat(all).isNotEmpty();
    return all;
  }

  /** Progress objects only, among them phase {@code phase} counted in {@code unit}. */
  private static void assertProgress(List<Object> lines, String phase, String unit) {
    assertThat(lines).isNotEmpty().allMatch(o -> "progress".equals(Json.at(o, "type")));
    assertThat(lines)
        .anyMatch(
            o ->
                phase.equals(Json.at(o, "phase"))
                    && unit.equals(Json.at(o, "unit"))
                    && Json.longAt(o, "total") > 0);
  }

  private static void assertError(Shell.Result r, int code, String message) {
    assertThat(r.exitCode()).as("%s", r).isEqualTo(code);
    assertThat(r.stderr()).as("%s", r).isEqualTo("dedupfs: " + message + "\n");
    assertThat(r.stdout()).as("%s", r).isEmpty();
  }

  /**
   * The bytes {@code data} (a file from offset 0) references: each non-zero leaf up to its last
   * non-zero byte.
   */
  static long referencedOf(byte[] data, int leaf) {
    long sum = 0;
    for (int at = 0; at < data.length; at += leaf) {
      int end = Math.min(data.length, at + leaf);
      while (end > at && data[end - 1] == 0) {
        end--;
      }
      sum += end - at;
    }
    return sum;
  }
}
