package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

/**
 * mount-scripts/ as an administrator uses it: {@code install.sh} (with DESTDIR), the mount(8)
 * helper run by {@code mount -t fuse.dedupfs} and by an fstab line ({@code mount --fstab}), plain
 * {@code umount}, after which the daemon exits and the store is closed, the systemd unit and the
 * libvirt pool definition.
 *
 * <p>mount(8) looks for its helper only in /sbin (util-linux's built-in search path). If
 * /sbin/mount.fuse.dedupfs is missing, this class installs it as a symlink to this checkout's
 * mount-scripts/mount.fuse.dedupfs and removes that symlink again when it is the last such test run
 * on the machine (a lock file in /run/lock counts them). An existing helper that is not such a
 * symlink (a real install) is used as it is and never touched. The lock file is never deleted
 * (deleting it would race with another run). The jar under test is given to every launcher through
 * DEDUPFS_JAR, which mount(8) passes on to its helper.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class MountHelperIT {
  static final Path SYSTEM_HELPER = Path.of("/sbin/mount.fuse.dedupfs");
  private static final Path HELPER_LOCK = Path.of("/run/lock/dedupfs-it-mount-helper.lock");
  private static final Pattern DAEMON_PID = Pattern.compile("daemon pid (\\d+)");

  /** The default paths of the scripts (setup.sh, the unit, fstab.example, the pool). */
  private static final String DEFAULT_STORE = "/var/lib/dedupfs/store";

  private static final String DEFAULT_MOUNT = "/var/lib/dedupfs/mnt";

  private static FileChannel lockChannel;
  private static FileLock sharedLock;

  @TempDir Path tempDir;

  private Path tmp;
  private final List<Path> mountpoints = new ArrayList<>();

  @BeforeEach
  void realTmp() throws IOException {
    tmp = tempDir.toRealPath();
  }

  /**
   * Whatever a failed test left mounted is unmounted (and its daemon exits): @TempDir can then be
   * deleted.
   */
  @AfterEach
  void unmountLeftovers() {
    for (Path mnt : mountpoints) {
      if (Mounted.isMounted(mnt)) {
        Shell.run(
            Duration.ofMinutes(2),
            Mounted.cliEnv(),
            List.of(Mounted.script().toString(), "umount", mnt.toString()));
        Mounted.forceUnmount(mnt);
      }
    }
  }

  // ---- install.sh ----------------------------------------------------------------------------

  @Test
  void installWithDestdirPutsEverythingInPlaceAndIsIdempotent() throws IOException {
    Path root = tmp.resolve("root");
    Path repo = Mounted.repoRoot();
    Map<String, String> env = Map.of("DESTDIR", root.toString());
    String install = repo.resolve("mount-scripts/install.sh").toString();

    Shell.Result first = Shell.run(Duration.ofMinutes(2), env, List.of(install));
    assertThat(first.exitCode()).as("install.sh\n%s", first.describe()).isZero();
    Map<String, String> expected =
        Map.of(
            "usr/local/lib/dedupfs/dedupfs.jar", "rw-r--r--",
            "usr/local/bin/dedupfs", "rwxr-xr-x",
            "sbin/mount.fuse.dedupfs", "rwxr-xr-x",
            "etc/systemd/system/dedupfs@.service", "rw-r--r--",
            "etc/systemd/system/dedupfs@default.service.d/paths.conf", "rw-r--r--",
            "etc/logrotate.d/dedupfs", "rw-r--r--",
            "usr/local/share/man/man1/dedupfs.1", "rw-r--r--",
            "usr/share/bash-completion/completions/dedupfs", "rw-r--r--");
    for (var e : expected.entrySet()) {
      Path p = root.resolve(e.getKey());
      assertThat(p).as(e.getKey()).isRegularFile();
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(p)))
          .as(e.getKey() + " mode")
          .isEqualTo(e.getValue());
      assertThat(first.stdout()).contains("installed " + p);
    }
    assertThat(root.resolve("etc/dedupfs")).isDirectory();
    assertThat(
            Files.mismatch(
                repo.resolve("fs/target/dedupfs.jar"),
                root.resolve("usr/local/lib/dedupfs/dedupfs.jar")))
        .isEqualTo(-1L);
    assertThat(
            Files.mismatch(
                repo.resolve("mount-scripts/mount.fuse.dedupfs"),
                root.resolve("sbin/mount.fuse.dedupfs")))
        .isEqualTo(-1L);
    Map<String, Long> mtimes = new HashMap<>();
    for (String f : expected.keySet()) {
      mtimes.put(f, Files.getLastModifiedTime(root.resolve(f)).toMillis());
    }

    Shell.Result second = Shell.run(Duration.ofMinutes(2), env, List.of(install));
    assertThat(second.exitCode()).as("install.sh again\n%s", second.describe()).isZero();
    for (String f : expected.keySet()) {
      assertThat(second.stdout()).contains(root.resolve(f) + " is up to date");
      assertThat(Files.getLastModifiedTime(root.resolve(f)).toMillis())
          .as(f + " untouched")
          .isEqualTo(mtimes.get(f));
    }

    // The installed launcher runs the installed jar (not in a checkout, so DEDUPFS_JAR says where
    // it is).
    Path installedJar = root.resolve("usr/local/lib/dedupfs/dedupfs.jar");
    Shell.Result version =
        Shell.run(
            Duration.ofMinutes(1),
            Map.of("DEDUPFS_JAR", installedJar.toString()),
            List.of(root.resolve("usr/local/bin/dedupfs").toString(), "--version"));
    assertThat(version.exitCode())
        .as("installed dedupfs --version\n%s", version.describe())
        .isZero();
    assertThat(version.stdout()).startsWith("dedupfs ");

    // The installed helper, run as mount(8) runs it, mounts with the installed launcher and jar.
    Mounted.assumeFuseAvailable();
    Path store = tmp.resolve("store");
    Path mnt = mountpoint("mnt");
    Map<String, String> installedEnv =
        Map.of(
            "DEDUPFS_JAR",
            installedJar.toString(),
            "PATH",
            root.resolve("usr/local/bin") + ":" + System.getenv("PATH"));
    Shell.Result fake =
        Shell.run(
            Duration.ofMinutes(1),
            installedEnv,
            List.of(
                root.resolve("sbin/mount.fuse.dedupfs").toString(),
                store.toString(),
                mnt.toString(),
                "-f",
                "-o",
                "allow_other"));
    assertThat(fake.exitCode()).as("helper -f (fake)\n%s", fake.describe()).isZero();
    assertThat(fake.stderr()).contains("dedupfs mount -o allow_other " + store + " " + mnt);
    assertThat(Mounted.isMounted(mnt)).as("-f must not mount").isFalse();
    assertThat(store).doesNotExist();

    createStore(store);
    long pid =
        mountOk(
            installedEnv,
            List.of(
                root.resolve("sbin/mount.fuse.dedupfs").toString(),
                store.toString(),
                mnt.toString(),
                "-o",
                "allow_other,log=" + tmp.resolve("installed.log")),
            mnt);
    assertThat(superOptions(mnt)).contains("allow_other");
    Files.writeString(mnt.resolve("hello.txt"), "from the installed copy\n");
    unmountAndAwaitClose(mnt, pid, store);
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      assertThat(Files.readString(m.mountpoint().resolve("hello.txt")))
          .isEqualTo("from the installed copy\n");
    }
  }

  /**
   * An upgrade must not rewrite the jar in place: a daemon still running from it loads classes
   * lazily, and would read the new jar's bytes at the old one's offsets (NoClassDefFoundError, EIO
   * to the VM). install.sh must put a new file there and leave the old inode whole.
   */
  @Test
  void reinstallReplacesTheJarWithANewFileAndLeavesTheOldOneWhole() throws IOException {
    Path root = tmp.resolve("root");
    Path repo = Mounted.repoRoot();
    Map<String, String> env = Map.of("DESTDIR", root.toString());
    String install = repo.resolve("mount-scripts/install.sh").toString();
    assertThat(Shell.run(Duration.ofMinutes(2), env, List.of(install)).exitCode()).isZero();

    Path jar = root.resolve("usr/local/lib/dedupfs/dedupfs.jar");
    byte[] old =
        "an older dedupfs.jar, still open in a running daemon"
            .getBytes(java.nio.charset.StandardCharsets.UTF_8);
    Files.write(jar, old);
    Object oldInode = Files.getAttribute(jar, "unix:ino");
    try (FileChannel running = FileChannel.open(jar, StandardOpenOption.READ)) {
      Shell.Result r = Shell.run(Duration.ofMinutes(2), env, List.of(install));
      assertThat(r.exitCode()).as("%s", r.describe()).isZero();
      assertThat(r.stdout()).contains("installed " + jar);

      assertThat(Files.getAttribute(jar, "unix:ino"))
          .as("inode of the installed jar")
          .isNotEqualTo(oldInode);
      assertThat(Files.mismatch(repo.resolve("fs/target/dedupfs.jar"), jar)).isEqualTo(-1L);
      java.nio.ByteBuffer seen = java.nio.ByteBuffer.allocate(old.length + 1);
      while (running.read(seen, seen.position()) > 0) {
        // read the old file to its end through the descriptor opened before the upgrade
      }
      assertThat(running.size()).as("size of the old file, still open").isEqualTo(old.length);
      assertThat(java.util.Arrays.copyOf(seen.array(), seen.position())).isEqualTo(old);
    }
    try (var files = Files.list(jar.getParent())) {
      assertThat(files.map(p -> p.getFileName().toString()).toList())
          .as("no temporary file left")
          .containsExactly("dedupfs.jar");
    }
  }

  // ---- mount(8) --------------------------------------------------------------------------------

  @Test
  void mountTypeFuseDedupfsWithAllowOtherThenUmount() throws IOException {
    Mounted.assumeFuseAvailable();
    ensureSystemHelper();
    Path store = createStore(tmp.resolve("store"));
    Path mnt = mountpoint("mnt");

    long pid =
        mountOk(
            Mounted.cliEnv(),
            List.of(
                "mount",
                "-t",
                "fuse.dedupfs",
                store.toString(),
                mnt.toString(),
                "-o",
                "allow_other,log=" + tmp.resolve("rw.log")),
            mnt);
    assertThat(Mounted.fstypeAt(mnt)).contains(Mounted.FSTYPE);
    assertThat(superOptions(mnt)).contains("allow_other");
    assertThat(mountSource(mnt)).isEqualTo(store.toString());
    byte[] data = new byte[3 << 20];
    new java.util.Random(7).nextBytes(data);
    Files.write(mnt.resolve("image.raw"), data);
    Files.createDirectories(mnt.resolve("dir"));
    Files.writeString(mnt.resolve("dir/note.txt"), "note\n");
    // A user other than root can read it (allow_other), as libvirt's qemu must.
    Files.setPosixFilePermissions(
        tmp, PosixFilePermissions.fromString("rwxr-xr-x")); // @TempDir is 0700
    Shell.Result other =
        Shell.run(
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "cat",
            mnt.resolve("dir/note.txt").toString());
    assertThat(other.exitCode()).as("cat as nobody\n%s", other.describe()).isZero();
    assertThat(other.stdout()).isEqualTo("note\n");

    unmountAndAwaitClose(mnt, pid, store);

    // read-only, through mount(8) too
    long roPid =
        mountOk(
            Mounted.cliEnv(),
            List.of(
                "mount",
                "-t",
                "fuse.dedupfs",
                "-o",
                "ro,log=" + tmp.resolve("ro.log"),
                store.toString(),
                mnt.toString()),
            mnt);
    assertThat(mountOptions(mnt)).startsWith("ro");
    assertThat(Files.mismatch(mnt.resolve("image.raw"), writeLocal("expected.raw", data)))
        .isEqualTo(-1L);
    Shell.Result write = Shell.run("sh", "-c", "echo x > " + mnt.resolve("new.txt"));
    assertThat(write.exitCode()).isNotZero();
    assertThat(write.stderr()).containsIgnoringCase("read-only");
    unmountAndAwaitClose(mnt, roPid, store);

    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      assertThat(Files.readString(m.mountpoint().resolve("dir/note.txt"))).isEqualTo("note\n");
      assertThat(m.mountpoint().resolve("new.txt")).doesNotExist();
    }
  }

  /**
   * The line of fstab.example, with this test's paths, through {@code mount --fstab FILE
   * MOUNTPOINT}.
   */
  @Test
  void theFstabExampleLineMountsAndUmountUnmounts() throws IOException {
    Mounted.assumeFuseAvailable();
    ensureSystemHelper();
    // names with a space: fstab writes it \040, mount(8) must hand the helper the real path
    Path store = createStore(tmp.resolve("the store"));
    Path mnt = mountpoint("the mnt");
    String line =
        fstabExampleLine()
            .replace(DEFAULT_STORE, store.toString().replace(" ", "\\040"))
            .replace(DEFAULT_MOUNT, mnt.toString().replace(" ", "\\040"));
    String[] fields = line.trim().split("\\s+");
    assertThat(fields).hasSize(6);
    fields[3] =
        fields[3] + ",log=" + tmp.resolve("fstab.log"); // keep the daemon's log out of /var/log
    Path fstab = tmp.resolve("fstab");
    Files.writeString(fstab, "# test fstab\n" + String.join("  ", fields) + "\n");

    long pid =
        mountOk(
            Mounted.cliEnv(), List.of("mount", "--fstab", fstab.toString(), mnt.toString()), mnt);
    assertThat(Mounted.fstypeAt(mnt)).contains(Mounted.FSTYPE);
    assertThat(superOptions(mnt)).contains("allow_other");
    assertThat(mountOptions(mnt)).contains("noatime");
    assertThat(mountSource(mnt)).isEqualTo(store.toString());
    Files.writeString(mnt.resolve("from-fstab.txt"), "fstab\n");

    unmountAndAwaitClose(mnt, pid, store);
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      assertThat(Files.readString(m.mountpoint().resolve("from-fstab.txt"))).isEqualTo("fstab\n");
    }
  }

  /**
   * A failed mount through mount(8): its exit code is not 0, the daemon's one-line reason reaches
   * the user.
   */
  @Test
  void mountTypeFuseDedupfsOfSomethingElseFailsCleanly() throws IOException {
    Mounted.assumeFuseAvailable();
    ensureSystemHelper();
    Path notAStore = Files.createDirectories(tmp.resolve("photos"));
    Files.writeString(notAStore.resolve("holiday.jpg"), "not a store\n");
    Path mnt = mountpoint("mnt");
    Shell.Result r =
        Shell.run(
            Duration.ofMinutes(2),
            Mounted.cliEnv(),
            List.of(
                "mount",
                "-t",
                "fuse.dedupfs",
                notAStore.toString(),
                mnt.toString(),
                "-o",
                "log=" + tmp.resolve("fail.log")));
    assertThat(r.exitCode()).as("%s", r.describe()).isNotZero();
    assertThat(r.stderr())
        .as("%s", r.describe())
        .contains(notAStore.toString())
        .containsPattern("(?i)not a dedupfs store");
    assertThat(Mounted.isMounted(mnt)).isFalse();
    assertThat(Files.readString(notAStore.resolve("holiday.jpg"))).isEqualTo("not a store\n");
    try (var files = Files.list(notAStore)) {
      assertThat(files.map(p -> p.getFileName().toString()).toList())
          .containsExactly("holiday.jpg");
    }
  }

  /**
   * The daemon runs with a fixed heap (-Xms = -Xmx: 2 GiB, or an eighth of the memory; the JVM's
   * defaults under 8 GiB), which a heap size in DEDUPFS_JAVA_OPTS replaces. A heap the JVM grows
   * and shrinks made random O_DIRECT writes cost three times the CPU (benchmarks/README.md). The
   * heap is on transparent huge pages when the kernel offers them, and the JVM is not asked for
   * them when it does not (it would print a warning); so is glibc's malloc heap, unless the
   * administrator's GLIBC_TUNABLES say otherwise. The daemon buffers written data up to three
   * eighths of its heap, as its log says.
   */
  @Test
  void theDaemonsHeapIsFixedUnlessTheAdministratorSetsOne() throws IOException {
    Mounted.assumeFuseAvailable();
    Path store = createStore(tmp.resolve("store"));
    Path mnt = mountpoint("mnt");
    Path log = tmp.resolve("heap.log");
    List<String> mount =
        List.of(
            Mounted.script().toString(),
            "mount",
            "--log",
            log.toString(),
            store.toString(),
            mnt.toString());

    long pid = mountOk(Mounted.cliEnv(), mount, mnt);
    long heapMib = Math.min(2048, memTotalKib() / 8 / 1024);
    if (heapMib >= 1024) {
      assertThat(jvmArgs(pid)).contains("-Xms" + heapMib + "m", "-Xmx" + heapMib + "m");
    } else {
      assertThat(jvmArgs(pid)).noneMatch(a -> a.startsWith("-Xms") || a.startsWith("-Xmx"));
    }
    Path thpMode = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
    String thp = Files.exists(thpMode) ? Files.readString(thpMode) : "[never]";
    if (thp.contains("[never]")) {
      assertThat(jvmArgs(pid)).doesNotContain("-XX:+UseTransparentHugePages");
      assertThat(mallocHeapOnHugePages(pid)).isFalse();
    } else {
      assertThat(jvmArgs(pid)).contains("-XX:+UseTransparentHugePages");
      assertThat(mallocHeapOnHugePages(pid)).as("glibc.malloc.hugetlb=1").isTrue();
      assertThat(threadArenas(pid)).as("glibc.malloc.arena_max=1").isZero();
    }
    unmountAndAwaitClose(mnt, pid, store);
    if (heapMib >= 1024) {
      // written data buffered before writers wait: three eighths of the heap, at most 1 GiB
      assertThat(Files.readString(log)).contains("dirty limit " + heapMib * 3 / 8 + " MiB");
    }

    Map<String, String> env = new HashMap<>(Mounted.cliEnv());
    env.put("DEDUPFS_JAVA_OPTS", "-Xmx768m");
    // the administrator's own tunables win
    env.put("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=4");
    pid = mountOk(env, mount, mnt);
    assertThat(jvmArgs(pid))
        .contains("-Xmx768m")
        .noneMatch(a -> a.startsWith("-Xms") || a.equals("-Xmx" + heapMib + "m"));
    assertThat(mallocHeapOnHugePages(pid)).isFalse();
    assertThat(threadArenas(pid)).isPositive();
    unmountAndAwaitClose(mnt, pid, store);
    assertThat(Files.readString(log)).contains("dirty limit 288 MiB");
  }

  private static List<String> jvmArgs(long pid) throws IOException {
    return List.of(Files.readString(Path.of("/proc", Long.toString(pid), "cmdline")).split("\0"));
  }

  /**
   * Whether glibc's malloc heap (the main arena, {@code [heap]}) is marked for huge pages ({@code
   * hg} among its VmFlags: madvise(MADV_HUGEPAGE), what glibc.malloc.hugetlb=1 does).
   */
  private static boolean mallocHeapOnHugePages(long pid) throws IOException {
    boolean inHeap = false;
    for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "smaps"))) {
      if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
        inHeap = line.endsWith("[heap]");
      } else if (inHeap && line.startsWith("VmFlags:")) {
        return (line + " ").contains(" hg ");
      }
    }
    return false;
  }

  /**
   * How many heaps glibc made for arenas other than its main one: anonymous mappings of 64 MiB
   * (HEAP_MAX_SIZE on 64-bit), aligned to it, the part in use read-write and the rest reserved with
   * no access. None where glibc.malloc.arena_max=1.
   */
  private static int threadArenas(long pid) throws IOException {
    long heapMax = 64L << 20;
    List<String[]> maps = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "maps"))) {
      maps.add(line.trim().split("\\s+"));
    }
    int heaps = 0;
    for (int i = 0; i < maps.size(); i++) {
      String[] m = maps.get(i);
      long start = Long.parseUnsignedLong(m[0].split("-")[0], 16);
      long end = Long.parseUnsignedLong(m[0].split("-")[1], 16);
      if (m.length > 5 || !m[1].equals("rw-p") || start % heapMax != 0) {
        continue;
      }
      if (i + 1 < maps.size()) {
        String[] next = maps.get(i + 1);
        if (next.length == 5
            && next[1].equals("---p")
            && next[0].startsWith(m[0].split("-")[1] + "-")) {
          end = Long.parseUnsignedLong(next[0].split("-")[1], 16);
        }
      }
      if (end - start == heapMax) {
        heaps++;
      }
    }
    return heaps;
  }

  private static long memTotalKib() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
      if (line.startsWith("MemTotal:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    throw new IllegalStateException("no MemTotal in /proc/meminfo");
  }

  /**
   * A mistyped store path in a mount command or an fstab line makes no new, empty datastore (VMs
   * would start on it with blank disks): the mount fails, naming dedupfs create, and nothing is
   * created. An empty directory is no store either.
   */
  @Test
  void aMistypedStoreIsRefusedAndNothingIsCreated() throws IOException {
    Mounted.assumeFuseAvailable();
    ensureSystemHelper();
    createStore(tmp.resolve("store"));
    Path typo = tmp.resolve("stroe");
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    Path mnt = mountpoint("mnt");
    Path fstab = tmp.resolve("fstab");
    Files.writeString(
        fstab,
        typo + "  " + mnt + "  fuse.dedupfs  allow_other,log=" + tmp.resolve("f.log") + "  0  0\n");
    for (List<String> cmd :
        List.of(
            List.of(Mounted.script().toString(), "mount", typo.toString(), mnt.toString()),
            List.of(Mounted.script().toString(), "mount", "-f", typo.toString(), mnt.toString()),
            List.of(
                "mount",
                "-t",
                "fuse.dedupfs",
                typo.toString(),
                mnt.toString(),
                "-o",
                "log=" + tmp.resolve("t.log")),
            List.of("mount", "--fstab", fstab.toString(), mnt.toString()),
            List.of(Mounted.script().toString(), "mount", empty.toString(), mnt.toString()))) {
      Shell.Result r = Shell.run(Duration.ofMinutes(2), Mounted.cliEnv(), cmd);
      assertThat(r.exitCode()).as("%s", r.describe()).isNotZero();
      assertThat(r.stderr())
          .as("%s", r.describe())
          .contains("dedupfs create")
          .containsPattern("(?i)no such store|not a store");
      assertThat(Mounted.isMounted(mnt)).as("%s", r.describe()).isFalse();
      assertThat(typo).as("%s", r.describe()).doesNotExist();
      assertThat(empty).as("%s", r.describe()).isEmptyDirectory();
    }
  }

  @Test
  void helperRejectsBadArgumentsInOneLine() {
    String helper = Mounted.repoRoot().resolve("mount-scripts/mount.fuse.dedupfs").toString();
    for (List<String> args :
        List.of(
            List.of("only-one-argument"),
            List.of("a", "b", "-t", "ext4"),
            List.of("a", "b", "-Z"))) {
      List<String> cmd = new ArrayList<>(List.of(helper));
      cmd.addAll(args);
      Shell.Result r = Shell.run(Duration.ofMinutes(1), Mounted.cliEnv(), cmd);
      assertThat(r.exitCode()).as("%s", r.describe()).isNotZero();
      assertThat(r.stderr().strip().lines().count()).as("%s", r.describe()).isEqualTo(1);
      assertThat(r.stderr()).startsWith("mount.fuse.dedupfs: ");
    }
  }

  // ---- the systemd unit and the libvirt pool ---------------------------------------------------

  @Test
  void libvirtPoolIsWellFormedAndPointsAtTheDefaultMount() throws Exception {
    Path pool = Mounted.repoRoot().resolve("mount-scripts/libvirt-pool.xml");
    DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
    f.setNamespaceAware(true);
    Document doc =
        f.newDocumentBuilder().parse(pool.toFile()); // throws on anything not well-formed
    Element root = doc.getDocumentElement();
    assertThat(root.getTagName()).isEqualTo("pool");
    assertThat(root.getAttribute("type")).isEqualTo("dir");
    assertThat(root.getElementsByTagName("name").item(0).getTextContent().trim())
        .isEqualTo("dedupfs");
    Element target = (Element) root.getElementsByTagName("target").item(0);
    assertThat(target.getElementsByTagName("path").item(0).getTextContent().trim())
        .isEqualTo(DEFAULT_MOUNT);

    // a second, independent parser
    Optional<String> xmllint = which("xmllint");
    Shell.Result r =
        xmllint.isPresent()
            ? Shell.run(xmllint.get(), "--noout", pool.toString())
            : Shell.run(
                "python3",
                "-c",
                "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])",
                pool.toString());
    assertThat(r.exitCode()).as("%s", r.describe()).isZero();

    // The unit and the fstab example mount the same default paths.
    String unit = Files.readString(Mounted.repoRoot().resolve("mount-scripts/dedupfs@.service"));
    assertThat(unit)
        .contains("Environment=DEDUPFS_MOUNT=" + DEFAULT_MOUNT)
        .contains("Environment=DEDUPFS_STORE=" + DEFAULT_STORE);
    assertThat(fstabExampleLine().trim().split("\\s+"))
        .startsWith(DEFAULT_STORE, DEFAULT_MOUNT, "fuse.dedupfs");
  }

  /**
   * {@code systemd-analyze verify}: only the missing /usr/local/bin/dedupfs (not installed here)
   * may be reported.
   */
  @Test
  void systemdUnitVerifies() throws IOException {
    Optional<String> analyze = which("systemd-analyze");
    assumeTrue(analyze.isPresent(), "systemd-analyze is not installed");
    Path unit =
        Files.copy(
            Mounted.repoRoot().resolve("mount-scripts/dedupfs@.service"),
            tmp.resolve("dedupfs@.service"));
    Shell.Result r = Shell.run(analyze.get(), "verify", unit.toString());
    List<String> complaints =
        (r.stdout() + r.stderr())
            .lines()
            .filter(l -> !l.isBlank())
            .filter(l -> !l.matches(".*Command /usr/local/bin/dedupfs is not executable.*"))
            .toList();
    assertThat(complaints).as("systemd-analyze verify\n%s", r.describe()).isEmpty();
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /**
   * Runs a mount command; it must exit 0 with the mount in place. Returns the daemon's pid from its
   * message.
   */
  private static Path createStore(Path store) {
    Shell.Result r = Mounted.cli("create", store.toString());
    assertThat(r.exitCode()).as("%s", r.describe()).isZero();
    return store;
  }

  private static long mountOk(Map<String, String> env, List<String> cmd, Path mnt) {
    Shell.Result r = Shell.run(Duration.ofMinutes(2), env, cmd);
    assertThat(r.exitCode()).as("%s", r.describe()).isZero();
    assertThat(Mounted.fstypeAt(mnt)).as("mounted after %s", r.describe()).contains(Mounted.FSTYPE);
    Matcher m = DAEMON_PID.matcher(r.stdout() + r.stderr());
    assertThat(m.find()).as("daemon pid in the output\n%s", r.describe()).isTrue();
    long pid = Long.parseLong(m.group(1));
    assertThat(ProcessHandle.of(pid).map(ProcessHandle::isAlive))
        .as("daemon %d alive", pid)
        .contains(true);
    return pid;
  }

  /** Plain umount(8); then the daemon must exit by itself and release the store's lock. */
  private static void unmountAndAwaitClose(Path mnt, long pid, Path store) throws IOException {
    Shell.Result u = Shell.run("umount", mnt.toString());
    assertThat(u.exitCode()).as("%s", u.describe()).isZero();
    assertThat(Mounted.isMounted(mnt)).isFalse();
    Optional<ProcessHandle> daemon = ProcessHandle.of(pid);
    if (daemon.isPresent()) {
      try {
        daemon.get().onExit().get(2, java.util.concurrent.TimeUnit.MINUTES);
      } catch (java.util.concurrent.TimeoutException e) {
        throw new AssertionError("daemon " + pid + " still running 2 minutes after umount " + mnt);
      } catch (InterruptedException | java.util.concurrent.ExecutionException e) {
        throw new IllegalStateException(e);
      }
    }
    try (FileChannel ch =
            FileChannel.open(store.resolve("dedupfs.lock"), StandardOpenOption.WRITE);
        FileLock lock = ch.tryLock()) {
      assertThat(lock).as("the store's lock is free once the daemon is gone").isNotNull();
    }
  }

  private Path mountpoint(String name) {
    try {
      Path p = Files.createDirectories(tmp.resolve(name));
      mountpoints.add(p);
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private Path writeLocal(String name, byte[] data) throws IOException {
    return Files.write(tmp.resolve(name), data);
  }

  private static String fstabExampleLine() throws IOException {
    return Files.readAllLines(Mounted.repoRoot().resolve("mount-scripts/fstab.example")).stream()
        .filter(l -> l.startsWith("#/"))
        .map(l -> l.substring(1))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no commented-out fstab line in fstab.example"));
  }

  /** Field 4 (1-based 6) of our mountinfo line: the per-mount options (ro/rw, noatime...). */
  private static String mountOptions(Path mnt) {
    return mountinfo(mnt)[5];
  }

  /** The super options after the separator: allow_other, user_id... */
  private static String superOptions(Path mnt) {
    String[] f = mountinfo(mnt);
    return f[List.of(f).indexOf("-") + 3];
  }

  private static String mountSource(Path mnt) {
    String[] f = mountinfo(mnt);
    return unescape(f[List.of(f).indexOf("-") + 2]);
  }

  /** mountinfo writes space, tab, newline and backslash as \ooo. */
  private static String unescape(String s) {
    Matcher m = Pattern.compile("\\\\([0-7]{3})").matcher(s);
    StringBuilder b = new StringBuilder();
    while (m.find()) {
      m.appendReplacement(
          b, Matcher.quoteReplacement(String.valueOf((char) Integer.parseInt(m.group(1), 8))));
    }
    return m.appendTail(b).toString();
  }

  private static String[] mountinfo(Path mnt) {
    try {
      String[] found = null;
      for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
        String[] f = line.split(" ");
        if (f.length > 4 && unescape(f[4]).equals(mnt.toString())) {
          found = f;
        }
      }
      assertThat(found).as("%s in /proc/self/mountinfo", mnt).isNotNull();
      return found;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static Optional<String> which(String tool) {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
      Path p = Path.of(dir, tool);
      if (Files.isExecutable(p)) {
        return Optional.of(p.toString());
      }
    }
    return Optional.empty();
  }

  // ---- /sbin/mount.fuse.dedupfs
  // ------------------------------------------------------------------

  /**
   * Makes sure mount(8) finds a helper for fuse.dedupfs, installing a symlink to this checkout's
   * helper if there is none, and holds a shared lock on {@link #HELPER_LOCK} until {@link
   * #releaseSystemHelper}.
   */
  private static synchronized void ensureSystemHelper() throws IOException {
    if (sharedLock != null && Files.exists(SYSTEM_HELPER)) {
      return;
    }
    assumeTrue(
        Files.isWritable(SYSTEM_HELPER.getParent()) || Files.exists(SYSTEM_HELPER),
        "/sbin/mount.fuse.dedupfs is missing and /sbin is not writable (not root?)");
    Path ours = Mounted.repoRoot().resolve("mount-scripts/mount.fuse.dedupfs");
    if (lockChannel == null) {
      lockChannel =
          FileChannel.open(
              HELPER_LOCK,
              StandardOpenOption.CREATE,
              StandardOpenOption.READ,
              StandardOpenOption.WRITE);
    }
    for (int attempt = 0; attempt < 20; attempt++) {
      if (sharedLock == null) {
        sharedLock = lockChannel.lock(0, Long.MAX_VALUE, true);
      }
      if (Files.exists(SYSTEM_HELPER)) {
        return; // installed for real, or by a run of these tests (ours or another's): held in place
      }
      sharedLock.release();
      sharedLock = null;
      try (FileLock exclusive = lockChannel.lock()) {
        if (Files.isSymbolicLink(SYSTEM_HELPER) && !Files.exists(SYSTEM_HELPER)) {
          // dangling, e.g. left by a killed run whose checkout is gone
          assertThat(isOurSymlink())
              .as("%s is a dangling symlink not made by these tests", SYSTEM_HELPER)
              .isTrue();
          Files.delete(SYSTEM_HELPER);
        }
        if (!Files.exists(SYSTEM_HELPER, LinkOption.NOFOLLOW_LINKS)) {
          Files.createSymbolicLink(SYSTEM_HELPER, ours);
          System.out.println(
              "MountHelperIT: installed "
                  + SYSTEM_HELPER
                  + " -> "
                  + ours
                  + " (removed after the tests)");
        }
      }
    }
    throw new AssertionError("could not keep " + SYSTEM_HELPER + " in place");
  }

  /** Removes the symlink these tests installed unless another run of them still uses it. */
  @AfterAll
  static synchronized void releaseSystemHelper() throws IOException {
    if (lockChannel == null) {
      return;
    }
    try {
      if (sharedLock != null) {
        sharedLock.release();
        sharedLock = null;
      }
      try (FileLock exclusive = lockChannel.tryLock()) {
        if (exclusive != null && isOurSymlink()) {
          Files.delete(SYSTEM_HELPER);
          System.out.println("MountHelperIT: removed " + SYSTEM_HELPER);
        }
      }
    } finally {
      lockChannel.close();
      lockChannel = null;
    }
  }

  /**
   * A symlink to some checkout's mount-scripts/mount.fuse.dedupfs: what {@link #ensureSystemHelper}
   * makes.
   */
  private static boolean isOurSymlink() throws IOException {
    return Files.isSymbolicLink(SYSTEM_HELPER)
        && Files.readSymbolicLink(SYSTEM_HELPER)
            .toString()
            .endsWith("/mount-scripts/mount.fuse.dedupfs");
  }
}
