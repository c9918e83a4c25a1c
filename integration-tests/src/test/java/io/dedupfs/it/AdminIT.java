package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The administrator's everyday path: a mount made without options serves libvirt's qemu (another
 * user), the administrative commands act where the shell stands, and a usage mistake names the
 * command it was made in.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class AdminIT {

  @TempDir Path tempDir;

  /**
   * libvirt runs qemu as its own user: `dedupfs mount STORE MNT`, as the README shows it, must let
   * it in.
   */
  @Test
  void aPlainMountLetsOtherUsersInByTheFilesPermissions() throws IOException {
    Mounted.assumeFuseAvailable();
    org.junit.jupiter.api.Assumptions.assumeTrue(
        Tools.isRoot(), "switching to another user needs root");
    Path tmp = tempDir.toRealPath();
    Files.setPosixFilePermissions(
        tmp, PosixFilePermissions.fromString("rwxr-xr-x")); // @TempDir is 0700
    Path store = tmp.resolve("store");
    try (Mounted m = Mounted.mount(store, tmp.resolve("mnt"), tmp)) {
      Path image = m.mountpoint().resolve("boot.img");
      Files.writeString(image, "disk\n");
      Files.setPosixFilePermissions(image, PosixFilePermissions.fromString("rw-r--r--"));
      Path secret = m.mountpoint().resolve("secret.img");
      Files.writeString(secret, "root only\n");
      Files.setPosixFilePermissions(secret, PosixFilePermissions.fromString("rw-------"));
      assertThat(asNobody("cat", image.toString()).stdout()).isEqualTo("disk\n");
      Shell.Result denied = asNobody("cat", secret.toString());
      assertThat(denied.exitCode()).isNotZero();
      assertThat(denied.stderr()).containsIgnoringCase("permission denied");
    }
    // --no-allow-other keeps everyone but the mounting user out
    try (Mounted m = Mounted.mount(store, tmp.resolve("mnt"), tmp, "--no-allow-other")) {
      Shell.Result r = asNobody("cat", m.mountpoint().resolve("boot.img").toString());
      assertThat(r.exitCode()).isNotZero();
      assertThat(r.stderr()).containsIgnoringCase("permission denied");
    }
  }

  /** `cd MNT/vms; dedupfs stats` and friends act on the mount the shell stands in. */
  @Test
  void commandsWithoutAPathActOnTheCurrentDirectory() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path vms = Files.createDirectories(m.mountpoint().resolve("vms"));
      Files.write(vms.resolve("vm1.img"), new byte[1 << 20]);
      byte[] data = new byte[1 << 20];
      new java.util.Random(3).nextBytes(data);
      Files.write(vms.resolve("vm2.img"), data);

      Shell.Result stats = inDirectory(vms, "stats");
      assertThat(stats.exitCode()).as("%s", stats.describe()).isZero();
      assertThat(stats.stdout())
          .as("the figures of vms/, not of the store")
          .containsPattern("path: +/vms\n");
      assertThat(inDirectory(vms, "snapshot", "create", "here").exitCode()).isZero();
      assertThat(m.mountpoint().resolve(".snapshots/here/vm2.img"))
          .hasSameBinaryContentAs(vms.resolve("vm2.img"));
      Shell.Result list = inDirectory(vms, "snapshot", "list");
      assertThat(list.exitCode()).as("%s", list.describe()).isZero();
      assertThat(list.stdout()).contains("here");
      Shell.Result scrub = inDirectory(vms, "scrub");
      assertThat(scrub.exitCode()).as("%s", scrub.describe()).isZero();

      Shell.Result outside = inDirectory(tmp, "stats");
      assertThat(outside.exitCode()).isEqualTo(2);
      assertThat(outside.stderr().strip())
          .isEqualTo(
              "dedupfs: the current directory, "
                  + tmp
                  + ", is not inside a dedupfs mount: give a path inside one, or --store STORE");
    }
  }

  /**
   * libvirt's pool listing, du and find see the VMs, not the snapshots: .snapshots is left out of
   * the root's listing (ZFS's snapdir=hidden) and still reached by name; --snapdir visible lists
   * it.
   */
  @Test
  void snapshotsAreHiddenFromListingsAndReachableByName() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    byte[] data = new byte[4 << 20];
    new java.util.Random(5).nextBytes(data);
    try (Mounted m = Mounted.mount(store, tmp.resolve("mnt"), tmp)) {
      Path mnt = m.mountpoint();
      Files.write(mnt.resolve("vm1.img"), data);
      assertThat(Mounted.cli("snapshot", "create", "nightly", mnt.toString()).exitCode()).isZero();

      assertThat(Shell.checked("ls", "-a", mnt.toString()).stdout()).isEqualTo(".\n..\nvm1.img\n");
      assertThat(Shell.checked("ls", mnt.resolve(".snapshots").toString()).stdout())
          .isEqualTo("nightly\n");
      assertThat(Shell.checked("ls", mnt.resolve(".snapshots/nightly").toString()).stdout())
          .isEqualTo("vm1.img\n");
      assertThat(mnt.resolve(".snapshots/nightly/vm1.img")).hasBinaryContent(data);
      String du =
          Shell.checked("du", "-s", "--apparent-size", "--block-size=1M", mnt.toString()).stdout();
      assertThat(du).as("du counts the image once, not its snapshot").startsWith("4\t");
      Shell.Result find = Shell.checked("find", mnt.toString(), "-name", "vm1.img");
      assertThat(find.stdout()).isEqualTo(mnt.resolve("vm1.img") + "\n");
    }
    try (Mounted m = Mounted.mount(store, tmp.resolve("mnt"), tmp, "-o", "snapdir=visible")) {
      assertThat(Shell.checked("ls", "-a", m.mountpoint().toString()).stdout())
          .isEqualTo(".\n..\n.snapshots\nvm1.img\n");
    }
  }

  /**
   * df tells the truth after a delete, as on ZFS: Used falls and Available rises within seconds
   * (the store's freed pages are counted as available: writes reuse them), without a compact.
   */
  @Test
  void dfShowsTheSpaceADeleteFreed() throws Exception {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    long mib = 1 << 20;
    try (Mounted m = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path image = m.mountpoint().resolve("old-vm.img");
      Shell.checked(
          Duration.ofMinutes(5),
          "dd",
          "if=/dev/urandom",
          "of=" + image,
          "bs=1M",
          "count=512",
          "conv=fsync",
          "status=none");
      long[] full = OperationsIT.df(m.mountpoint());
      assertThat(full[1]).as("used with the image").isGreaterThan(500 * mib);
      Files.delete(image);
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      long[] now = OperationsIT.df(m.mountpoint());
      while (full[1] - now[1] < 480 * mib && System.nanoTime() < deadline) {
        Thread.sleep(200);
        now = OperationsIT.df(m.mountpoint());
      }
      assertThat(full[1] - now[1])
          .as(
              "Used fell by (df before %s, after %s)",
              java.util.Arrays.toString(full), java.util.Arrays.toString(now))
          .isGreaterThanOrEqualTo(480 * mib);
      assertThat(now[2] - full[2]).as("Available rose by").isGreaterThanOrEqualTo(480 * mib);
      assertThat(now[0]).as("Size = Used + Available").isEqualTo(now[1] + now[2]);
    }
  }

  @Test
  void aUsageMistakeNamesTheWholeCommand() {
    for (List<String> c :
        List.of(
            List.of("snapshot create", "snapshot create"),
            List.of("snapshot list --bogus", "snapshot list"),
            List.of("snapshot", "snapshot"),
            List.of("mount --bogus", "mount"))) {
      Shell.Result r = Mounted.cli(c.get(0).split(" "));
      assertThat(r.exitCode()).as("%s", r.describe()).isEqualTo(2);
      assertThat(r.stderr())
          .as("%s", r.describe())
          .startsWith("dedupfs: ")
          .endsWith("(see 'dedupfs " + c.get(1) + " --help')\n");
    }
  }

  /** `dedupfs create --log-size` makes the store's intent log that size, written in full. */
  @Test
  void createMakesTheIntentLogTheSizeItIsGiven() throws Exception {
    Path store = tempDir.toRealPath().resolve("store");
    Shell.Result create = Mounted.cli("create", "--log-size", "3M", store.toString());
    assertThat(create.exitCode()).as("%s", create.describe()).isZero();
    Path log = store.resolve("intent.log");
    assertThat(Files.size(log)).isEqualTo(3L << 20);
    long allocated =
        Long.parseLong(Shell.checked("du", "-B1", log.toString()).stdout().split("\t")[0]);
    assertThat(allocated)
        .as("no holes: an append never allocates")
        .isGreaterThanOrEqualTo(3L << 20);
  }

  /**
   * The daemon's log tells the story (started, the version, stopped by a signal, closed) and
   * nothing else: the mount command's own output is one line, looking at figures is not logged.
   */
  @Test
  void theDaemonLogsItsLifeAndNotEveryLook() throws Exception {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = Files.createDirectories(tmp.resolve("mnt"));
    Path log = tmp.resolve("daemon.log");
    assertThat(Mounted.cli("create", store.toString()).exitCode()).isZero();
    Shell.Result mount =
        Mounted.cli("mount", "--log", log.toString(), store.toString(), mnt.toString());
    try {
      assertThat(mount.exitCode()).as("%s", mount.describe()).isZero();
      assertThat(mount.stderr())
          .as("one line, no log record")
          .matches("dedupfs: mounted .*\\(daemon pid \\d+, log .*\\)\n");
      assertThat(Mounted.cli("stats", mnt.toString()).exitCode()).isZero();
      assertThat(Mounted.cli("snapshot", "create", "s1", mnt.toString()).exitCode()).isZero();
      long pid = Long.parseLong(mount.stderr().replaceAll("(?s).*daemon pid (\\d+).*", "$1"));
      Shell.checked("kill", "-TERM", Long.toString(pid));
      ProcessHandle.of(pid)
          .ifPresent(p -> p.onExit().orTimeout(60, java.util.concurrent.TimeUnit.SECONDS).join());
    } finally {
      Mounted.forceUnmount(mnt);
    }
    String text = Files.readString(log);
    if (Files.exists(Path.of("/sys/module/fuse/parameters/enable_uring"))) {
      // said before the daemon detached, when its output still went to the mount command
      assertThat(text).contains("INFO io.dedupfs.fs.fuse.FuseSession: FUSE over io_uring: ");
    }
    assertThat(text)
        .containsPattern("INFO .*serving " + store + " on " + mnt + " .*dedupfs \\S+ \\(commit ")
        .contains("control: snapshot.create")
        .containsPattern("INFO .*SIGTERM: flushing, unmounting " + mnt)
        .containsPattern("INFO .*unmounted " + mnt + "; store closed")
        .doesNotContain("control: stats");
    assertThat(Mounted.isMounted(mnt)).isFalse();
  }

  /** help, did you mean, version with the commit, the manual page and shell completion. */
  @Test
  void theCommandExplainsItself() {
    Shell.Result bare = Mounted.cli();
    assertThat(bare.exitCode()).isEqualTo(2);
    assertThat(bare.stderr())
        .startsWith(
            "dedupfs: missing command: one of create, mount, umount, clone, snapshot, "
                + "stats, scrub, fsck, compact, reconcile, destroy, pool, send, receive, diff,"
                + " set-compression, move-intent-log, help");
    Shell.Result typo = Mounted.cli("snapshto", "list");
    assertThat(typo.exitCode()).isEqualTo(2);
    assertThat(typo.stderr()).contains("'snapshto'").contains("did you mean 'snapshot'?");
    Shell.Result help = Mounted.cli("help", "snapshot");
    assertThat(help.exitCode()).isZero();
    assertThat(help.stdout()).startsWith("Usage: dedupfs snapshot ").contains("restore");
    Shell.Result version = Mounted.cli("--version");
    assertThat(version.stdout())
        .containsPattern("^dedupfs \\d+\\.\\d+\\.\\d+\\S* \\(commit [0-9a-f]{10}");
    Shell.Result man =
        Shell.run(
            Duration.ofMinutes(1),
            Mounted.cliEnv(),
            List.of(
                "sh",
                "-c",
                "\"$0\" man | MANWIDTH=100 man -l -Tutf8 - | col -b",
                Mounted.script().toString()));
    assertThat(man.exitCode()).as("%s", man.describe()).isZero();
    assertThat(man.stdout())
        .contains("dedupfs - A deduplicating FUSE filesystem")
        .contains("dedupfs snapshot restore")
        .contains("Usage: dedupfs send ")
        .contains("Usage: dedupfs receive ")
        .contains("Usage: dedupfs mount ")
        .contains("Usage: dedupfs destroy ")
        .contains("EXIT STATUS");
    Shell.Result completion =
        Shell.run(
            Duration.ofMinutes(1),
            Mounted.cliEnv(),
            List.of(
                "bash",
                "-c",
                "source <(\"$0\" generate-completion) && COMP_WORDS=(dedupfs snap) COMP_CWORD=1 && _picocli_dedupfs "
                    + "&& echo \"${COMPREPLY[@]}\"",
                Mounted.script().toString()));
    assertThat(completion.stdout()).as("%s", completion.describe()).isEqualTo("snapshot\n");
  }

  private static Shell.Result asNobody(String... command) {
    List<String> cmd =
        new java.util.ArrayList<>(
            List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"));
    cmd.addAll(List.of(command));
    return Shell.run(cmd.toArray(String[]::new));
  }

  /** {@code dedupfs ARGS} run from {@code dir}. */
  private static Shell.Result inDirectory(Path dir, String... args) {
    List<String> cmd =
        new java.util.ArrayList<>(
            List.of(
                "sh",
                "-c",
                "cd \"$0\" && exec \"$@\"",
                dir.toString(),
                Mounted.script().toString()));
    cmd.addAll(List.of(args));
    return Shell.run(Duration.ofMinutes(2), Mounted.cliEnv(), cmd);
  }
}
