package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * libvirt on a dedupfs mount, as an administrator uses it, with libvirt's default configuration: a
 * {@code dir} pool on the mount (mount-scripts/libvirt-pool.xml), raw and qcow2 volumes made by
 * {@code virsh vol-create-as}, {@code vol-upload}, {@code vol-clone}, and a small TCG guest booted
 * from a cloned volume with {@code cache='none'} (O_DIRECT), run by qemu as libvirt-qemu (the DAC
 * driver chowns the image and keeps its owner in {@code trusted.libvirt.security.*} attributes,
 * {@code remember_owner = 1}), then destroyed, and the pool destroyed and undefined.
 *
 * <p>libvirtd and virtlogd run as plain child processes, without systemd, in a private mount
 * namespace ({@code unshare --mount}) where /etc/libvirt holds a copy of the installed {@code
 * *.conf} files only (qemu.conf as Debian ships it: nothing weakened) and /var/lib/libvirt,
 * /var/log/libvirt, /var/cache/libvirt and /run/libvirt are empty directories of the same owners
 * and modes, all under this test's temporary directory. So the test neither sees nor changes the
 * machine's own libvirt (its pools, domains, sockets and pid files), and a daemon run by someone
 * else on the machine does not disturb it. The dedupfs mount is made before the namespace, so it is
 * visible there. virsh runs in the namespace too ({@code nsenter --mount}). Every process of the
 * namespace (libvirtd, virtlogd, qemu) is killed in {@link #stopLibvirt()}, before the unmount.
 *
 * <p>The guest is a 512-byte boot sector (assembled by hand, below) that SeaBIOS loads from the
 * virtio disk: it writes a line to COM1, which libvirt sends to a file, and halts.
 *
 * <p>Needs root and FUSE; libvirt-daemon-system, libvirt-clients and qemu-system-x86 come from
 * scripts/deps.sh (what the README's test command runs), so a missing one is a failure, not a skip.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class LibvirtIT {
  private static final Duration VIRSH_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration DAEMON_START = Duration.ofSeconds(60);
  private static final Duration GUEST_OUTPUT = Duration.ofSeconds(60);
  private static final String POOL = "dedupfs";
  private static final String DOMAIN = "dedupfs-it";
  private static final String GREETING = "dedupfs guest booted";

  /**
   * The boot sector's code, 16-bit real mode, loaded by the BIOS at 0000:7C00:
   *
   * <pre>
   * 7C00 FA        cli
   * 7C01 FC        cld
   * 7C02 31 C0     xor  ax, ax
   * 7C04 8E D8     mov  ds, ax
   * 7C06 BE 17 7C  mov  si, 0x7C17      ; the message, right after this code
   * 7C09 BA F8 03  mov  dx, 0x3F8       ; COM1's data register
   * 7C0C AC        next: lodsb          ; al = [ds:si++]
   * 7C0D 84 C0     test al, al
   * 7C0F 74 03     jz   done            ; NUL ends the message
   * 7C11 EE        out  dx, al
   * 7C12 EB F8     jmp  next
   * 7C14 F4        done: hlt            ; interrupts are off: halts for good
   * 7C15 EB FD     jmp  done
   * 7C17           the message, CR LF, NUL; zeros; 55 AA at offset 510
   * </pre>
   */
  private static final int[] BOOT_CODE = {
    0xFA, 0xFC, 0x31, 0xC0, 0x8E, 0xD8, 0xBE, 0x17, 0x7C, 0xBA, 0xF8, 0x03, 0xAC, 0x84, 0xC0, 0x74,
    0x03, 0xEE, 0xEB, 0xF8, 0xF4, 0xEB, 0xFD,
  };

  /**
   * Shell run by {@code unshare --mount}: makes the private libvirt directories, starts the
   * daemons.
   */
  private static final String NAMESPACE_SCRIPT =
      """
            set -eu
            T=$1
            PATH=$PATH:/usr/sbin:/sbin
            private() { # private DIR [FILES]: an empty copy of DIR and its subdirectories, same owners and modes
                mkdir -p "$1" "$T/root$1"
                chown --reference="$1" "$T/root$1"
                chmod --reference="$1" "$T/root$1"
                find "$1" -mindepth 1 -maxdepth 1 -type d | while read -r d; do
                    mkdir -p "$T/root$d"
                    chown --reference="$d" "$T/root$d"
                    chmod --reference="$d" "$T/root$d"
                done
                if [ "${2:-}" = files ]; then
                    find "$1" -mindepth 1 -maxdepth 1 -type f -exec cp -p {} "$T/root$1/" \\;
                fi
                mount --bind "$T/root$1" "$1"
            }
            private /etc/libvirt files
            private /var/lib/libvirt
            private /var/log/libvirt
            private /var/cache/libvirt
            private /run/libvirt
            virtlogd --pid-file "$T/virtlogd.pid" >"$T/virtlogd.log" 2>&1 &
            exec libvirtd --pid-file "$T/libvirtd.pid"
            """;

  @TempDir static Path classDir;

  private static Path tmp;
  private static Mounted mounted;
  private static Process libvirtd;
  private static Path libvirtdLog;
  private static String namespace;

  @BeforeAll
  static void mountAndStartLibvirt() throws IOException {
    Mounted.assumeFuseAvailable();
    assumeTrue(Tools.isRoot(), "libvirt's system daemon (qemu:///system) needs root");
    for (String tool :
        List.of("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "unshare", "nsenter")) {
      assertThat(onPath(tool))
          .as(
              tool
                  + " on PATH (scripts/deps.sh installs libvirt-daemon-system,"
                  + " libvirt-clients, qemu-system-x86)")
          .isTrue();
    }
    tmp = classDir.toRealPath();
    // qemu runs as libvirt-qemu: it must be able to reach the image through the mountpoint's
    // parents
    Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwx--x--x"));
    mounted = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp);

    Path t = Files.createDirectories(tmp.resolve("libvirt"));
    libvirtdLog = t.resolve("libvirtd.log");
    ProcessBuilder pb =
        new ProcessBuilder(
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                NAMESPACE_SCRIPT,
                "sh",
                t.toString())
            .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
            .redirectOutput(libvirtdLog.toFile())
            .redirectErrorStream(true);
    libvirtd = pb.start();
    long deadline = System.nanoTime() + DAEMON_START.toNanos();
    while (true) {
      if (!libvirtd.isAlive()) {
        throw new AssertionError(
            "libvirtd exited with code " + libvirtd.exitValue() + ":\n" + libvirtdLog());
      }
      if (namespace == null) {
        namespace = namespaceOf(libvirtd.pid());
      }
      // the namespace is ours once unshare has run (it execs sh, which execs libvirtd)
      if (namespace != null && !namespace.equals(namespaceOf(ProcessHandle.current().pid()))) {
        if (virsh("list", "--all").ok()) {
          break;
        }
      } else {
        namespace = null;
      }
      if (System.nanoTime() > deadline) {
        throw new AssertionError(
            "libvirtd did not answer within " + DAEMON_START + ":\n" + libvirtdLog());
      }
      sleep(200);
    }
  }

  @AfterAll
  static void stopLibvirt() {
    try {
      if (libvirtd != null) {
        if (libvirtd.isAlive()) {
          try {
            virsh("destroy", DOMAIN); // normally done by the test; harmless if not running
          } catch (RuntimeException e) {
            // timed out: the processes are killed below
          }
        }
        killNamespace();
      }
    } finally {
      if (mounted != null) {
        mounted.close();
      }
    }
  }

  @Test
  void poolVolumesCloneAndGuestWithDefaultConfiguration() throws IOException {
    Path mnt = mounted.mountpoint();
    assertThat(Mounted.fstypeAt(mnt)).contains(Mounted.FSTYPE);

    // The pool: the repository's definition, pointed at this test's mountpoint.
    String poolXml = Files.readString(Mounted.repoRoot().resolve("mount-scripts/libvirt-pool.xml"));
    assertThat(poolXml)
        .contains("<path>/var/lib/dedupfs/mnt</path>")
        .contains("<name>" + POOL + "</name>");
    Path poolFile = tmp.resolve("pool.xml");
    Files.writeString(
        poolFile, poolXml.replace("<path>/var/lib/dedupfs/mnt</path>", "<path>" + mnt + "</path>"));
    ok(virsh("pool-define", poolFile.toString()));
    ok(virsh("pool-start", POOL));
    assertThat(ok(virsh("pool-info", POOL))).containsPattern("State:\\s+running");

    // Volumes: raw and qcow2, made by libvirt, on the mount.
    ok(virsh("vol-create-as", POOL, "base.img", "16M", "--format", "raw"));
    ok(virsh("vol-create-as", POOL, "data.qcow2", "1G", "--format", "qcow2"));
    assertThat(ok(virsh("vol-path", "--pool", POOL, "base.img")).strip())
        .isEqualTo(mnt.resolve("base.img").toString());
    assertThat(Files.size(mnt.resolve("base.img"))).isEqualTo(16L << 20);
    assertThat(Tools.run("qemu-img", "info", mnt.resolve("data.qcow2").toString()))
        .containsPattern("file format: qcow2")
        .containsPattern("virtual size: 1 GiB");

    // The base image: the boot sector, then 4 MiB of random bytes (so the clone has data to copy),
    // uploaded through libvirt.
    byte[] image = new byte[5 << 20];
    new Random(11).nextBytes(image);
    System.arraycopy(bootSector(), 0, image, 0, 512);
    Path upload = tmp.resolve("base.upload");
    Files.write(upload, image);
    ok(virsh("vol-upload", "--pool", POOL, "base.img", upload.toString()));
    assertThat(Tools.sha256Direct(mnt.resolve("base.img")))
        .isEqualTo(Tools.sha256AndSize(withSize(image, 16 << 20), 16 << 20));

    // Clones: a VM's disk from the base image (raw: libvirt copies the bytes), and the qcow2
    // volume (libvirt runs qemu-img convert).
    ok(virsh("vol-clone", "--pool", POOL, "base.img", "vm.img"));
    ok(virsh("vol-clone", "--pool", POOL, "data.qcow2", "data-clone.qcow2"));
    assertThat(Tools.sha256Direct(mnt.resolve("vm.img")))
        .isEqualTo(Tools.sha256Direct(mnt.resolve("base.img")));
    assertThat(Tools.run("qemu-img", "info", mnt.resolve("data-clone.qcow2").toString()))
        .containsPattern("file format: qcow2")
        .containsPattern("virtual size: 1 GiB");
    ok(
        Shell.run(
            VIRSH_TIMEOUT,
            "qemu-img",
            "compare",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            mnt.resolve("data.qcow2").toString(),
            mnt.resolve("data-clone.qcow2").toString()));
    ok(virsh("pool-refresh", POOL));
    assertThat(volumes())
        .containsExactlyInAnyOrder("base.img", "data.qcow2", "vm.img", "data-clone.qcow2");

    // The guest: boots from the clone, with the qcow2 volume as a second disk, both cache='none'.
    Path serialDir = Files.createDirectories(tmp.resolve("serial"));
    Files.setPosixFilePermissions(serialDir, PosixFilePermissions.fromString("rwx--x--x"));
    Path serial = serialDir.resolve("console.log");
    Path domainFile = tmp.resolve("domain.xml");
    Files.writeString(domainFile, domainXml(serial));
    ok(virsh("create", domainFile.toString()));
    try {
      String console = awaitFile(serial, GREETING, GUEST_OUTPUT);
      assertThat(console).as("the guest's serial console").contains(GREETING);
      assertThat(ok(virsh("domstate", DOMAIN)).strip()).isEqualTo("running");

      long qemu =
          Long.parseLong(
              Files.readString(privateRoot().resolve("run/libvirt/qemu/" + DOMAIN + ".pid"))
                  .strip());
      assertThat(uidOf(qemu))
          .as("qemu's uid (libvirt-qemu, qemu.conf's default user)")
          .isEqualTo(Tools.run("id", "-u", "libvirt-qemu").strip());
      List<String> openImages = openFilesUnder(qemu, mnt);
      assertThat(openImages)
          .as("files qemu has open on the dedupfs mount")
          .contains(mnt.resolve("vm.img").toString(), mnt.resolve("data.qcow2").toString());
      String cmdline =
          Files.readString(Path.of("/proc", Long.toString(qemu), "cmdline")).replace('\0', ' ');
      assertThat(cmdline)
          .as("qemu's command line: cache='none' is O_DIRECT")
          .contains("\"filename\":\"" + mnt.resolve("vm.img") + "\"")
          .contains("\"cache\":{\"direct\":true");
      assertThat(ok(virsh("domblklist", DOMAIN)))
          .containsPattern("vda\\s+vm.img")
          .containsPattern("vdb\\s+data.qcow2");
      // libvirt's DAC driver gave the image to qemu's user and remembered the owner on the mount
      assertThat(Tools.run("stat", "-c", "%U", mnt.resolve("vm.img").toString()).strip())
          .isEqualTo("libvirt-qemu");
      assertThat(
              Tools.run(
                  "getfattr", "-d", "-m", "trusted.libvirt", mnt.resolve("vm.img").toString()))
          .contains("trusted.libvirt.security.dac=\"+0:+0\"");
    } finally {
      ok(virsh("destroy", DOMAIN));
    }
    assertThat(ok(virsh("list", "--all", "--name")).strip()).as("domains after destroy").isEmpty();
    // destroy gave the image back to its owner and dropped the remembered owner
    assertThat(Tools.run("stat", "-c", "%U:%G", mnt.resolve("vm.img").toString()).strip())
        .isEqualTo("root:root");
    assertThat(
            Tools.run("getfattr", "-d", "-m", "trusted.libvirt", mnt.resolve("vm.img").toString()))
        .isBlank();

    // Clean up the way an administrator does.
    ok(virsh("vol-delete", "--pool", POOL, "data-clone.qcow2"));
    assertThat(volumes()).containsExactlyInAnyOrder("base.img", "data.qcow2", "vm.img");
    assertThat(mnt.resolve("data-clone.qcow2")).doesNotExist();
    ok(virsh("pool-destroy", POOL));
    ok(virsh("pool-undefine", POOL));
    assertThat(ok(virsh("pool-list", "--all", "--name")).strip())
        .as("pools after undefine")
        .isEmpty();
    // the pool's images stay on the mount: destroying a dir pool deletes nothing
    try (Stream<Path> files = Files.list(mnt)) {
      assertThat(files.map(p -> p.getFileName().toString()))
          .containsExactlyInAnyOrder("base.img", "data.qcow2", "vm.img");
    }
    assertThat(Tools.sha256Direct(mnt.resolve("vm.img")))
        .isEqualTo(Tools.sha256Direct(mnt.resolve("base.img")));
  }

  // ---- the guest ------------------------------------------------------------------------------

  static byte[] bootSector() {
    byte[] sector = new byte[512];
    for (int i = 0; i < BOOT_CODE.length; i++) {
      sector[i] = (byte) BOOT_CODE[i];
    }
    byte[] msg = (GREETING + "\r\n\0").getBytes(StandardCharsets.US_ASCII);
    System.arraycopy(msg, 0, sector, BOOT_CODE.length, msg.length);
    sector[510] = 0x55;
    sector[511] = (byte) 0xAA;
    return sector;
  }

  private static String domainXml(Path serial) {
    return """
                <domain type='qemu'>
                  <name>%s</name>
                  <memory unit='MiB'>32</memory>
                  <vcpu>1</vcpu>
                  <os>
                    <type arch='x86_64' machine='pc'>hvm</type>
                    <boot dev='hd'/>
                  </os>
                  <devices>
                    <emulator>/usr/bin/qemu-system-x86_64</emulator>
                    <disk type='volume' device='disk'>
                      <driver name='qemu' type='raw' cache='none'/>
                      <source pool='%s' volume='vm.img'/>
                      <target dev='vda' bus='virtio'/>
                    </disk>
                    <disk type='volume' device='disk'>
                      <driver name='qemu' type='qcow2' cache='none'/>
                      <source pool='%s' volume='data.qcow2'/>
                      <target dev='vdb' bus='virtio'/>
                    </disk>
                    <serial type='file'>
                      <source path='%s'/>
                      <target port='0'/>
                    </serial>
                    <video><model type='none'/></video>
                    <memballoon model='none'/>
                  </devices>
                </domain>
                """
        .formatted(DOMAIN, POOL, POOL, serial);
  }

  // ---- helpers ------------------------------------------------------------------------------

  /**
   * virsh in libvirtd's mount namespace, against its qemu:///system (paths given must be absolute).
   */
  private static Shell.Result virsh(String... args) {
    List<String> cmd =
        new ArrayList<>(
            List.of(
                "nsenter",
                "--target",
                Long.toString(libvirtd.pid()),
                "--mount",
                "virsh",
                "-c",
                "qemu:///system"));
    cmd.addAll(List.of(args));
    return Shell.run(VIRSH_TIMEOUT, Map.of(), cmd);
  }

  private static String ok(Shell.Result r) {
    if (!r.ok()) {
      throw new AssertionError(
          "command failed:\n"
              + r.describe()
              + "\nlibvirtd's output:\n"
              + libvirtdLog()
              + "\nqemu's log:\n"
              + qemuLog());
    }
    return r.stdout();
  }

  private static List<String> volumes() {
    return ok(virsh("vol-list", "--pool", POOL))
        .lines()
        .skip(2)
        .map(String::strip)
        .filter(l -> !l.isEmpty())
        .map(l -> l.split("\\s+")[0])
        .toList();
  }

  private static Path privateRoot() {
    return tmp.resolve("libvirt/root");
  }

  private static String libvirtdLog() {
    return readQuietly(libvirtdLog) + readQuietly(tmp.resolve("libvirt/virtlogd.log"));
  }

  private static String qemuLog() {
    return readQuietly(privateRoot().resolve("var/log/libvirt/qemu/" + DOMAIN + ".log"));
  }

  private static String readQuietly(Path file) {
    try {
      return file != null && Files.exists(file) ? Files.readString(file) : "";
    } catch (IOException e) {
      return "(cannot read " + file + ": " + e + ")";
    }
  }

  private static byte[] withSize(byte[] data, int size) {
    byte[] out = new byte[size];
    System.arraycopy(data, 0, out, 0, Math.min(size, data.length));
    return out;
  }

  private static String awaitFile(Path file, String text, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    String content = "";
    while (System.nanoTime() < deadline) {
      content = readQuietly(file);
      if (content.contains(text)) {
        return content;
      }
      sleep(200);
    }
    throw new AssertionError(
        "no \""
            + text
            + "\" in "
            + file
            + " within "
            + timeout
            + "; it holds: \""
            + content
            + "\"\nqemu's log:\n"
            + qemuLog());
  }

  private static String uidOf(long pid) throws IOException {
    return Files.readAllLines(Path.of("/proc", Long.toString(pid), "status")).stream()
        .filter(l -> l.startsWith("Uid:"))
        .findFirst()
        .orElseThrow()
        .split("\\s+")[1];
  }

  private static List<String> openFilesUnder(long pid, Path dir) throws IOException {
    List<String> files = new ArrayList<>();
    try (Stream<Path> fds = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
      for (Path fd : fds.toList()) {
        try {
          String target = Files.readSymbolicLink(fd).toString();
          if (target.startsWith(dir + "/")) {
            files.add(target);
          }
        } catch (IOException e) {
          // closed meanwhile
        }
      }
    }
    return files;
  }

  private static String namespaceOf(long pid) {
    try {
      return Files.readSymbolicLink(Path.of("/proc", Long.toString(pid), "ns", "mnt")).toString();
    } catch (IOException | UnsupportedOperationException e) {
      return null;
    }
  }

  /**
   * SIGTERM, then SIGKILL, every process in libvirtd's mount namespace, and wait until none is
   * left.
   */
  private static void killNamespace() {
    if (namespace == null) {
      libvirtd.destroyForcibly();
      waitFor(libvirtd, Duration.ofSeconds(10));
      return;
    }
    for (boolean force : new boolean[] {false, true}) {
      long deadline = System.nanoTime() + Duration.ofSeconds(force ? 30 : 10).toNanos();
      while (true) {
        List<ProcessHandle> left =
            ProcessHandle.allProcesses()
                .filter(p -> namespace.equals(namespaceOf(p.pid())))
                .toList();
        if (left.isEmpty()) {
          return;
        }
        for (ProcessHandle p : left) {
          if (force) {
            p.destroyForcibly();
          } else {
            p.destroy();
          }
        }
        if (System.nanoTime() > deadline) {
          if (force) {
            throw new AssertionError("processes of libvirtd's namespace survived SIGKILL: " + left);
          }
          break;
        }
        sleep(200);
      }
    }
  }

  private static boolean onPath(String tool) {
    return Stream.of(System.getenv().getOrDefault("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin")
        .flatMap(p -> Stream.of(p.split(":")))
        .anyMatch(d -> !d.isEmpty() && Files.isExecutable(Path.of(d, tool)));
  }

  private static void waitFor(Process p, Duration timeout) {
    try {
      p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
