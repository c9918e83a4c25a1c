package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A mount that serves its requests through FUSE over io_uring ({@code --io-uring}, Linux 6.14 and
 * later): the requests really go through the rings (their workers spend the CPU, the /dev/fuse
 * workers next to none), and what users rely on holds there as through /dev/fuse: bytes read back
 * equal a model's after random unaligned writes, truncates and fsyncs from two threads, names and
 * attributes behave, and what was fsynced survives a kill -9 of the daemon. The rings are the
 * default, and {@code --no-io-uring} ({@code -o noio_uring}) keeps a mount on /dev/fuse.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class IoUringIT {
  private static final Path ENABLE_URING = Path.of("/sys/module/fuse/parameters/enable_uring");

  @TempDir Path tempDir;

  private Mounted mount(Path tmp, String name) throws InterruptedException {
    return mountWithRings(tmp, name, "--io-uring");
  }

  /**
   * Mounts with {@code options} and waits until the daemon says its rings are up (it starts them
   * once INIT is answered, just after the mount appears); skips where the kernel has no FUSE over
   * io_uring at all.
   */
  private Mounted mountWithRings(Path tmp, String name, String... options)
      throws InterruptedException {
    Mounted.assumeFuseAvailable();
    Assumptions.assumeTrue(
        Files.exists(ENABLE_URING), "this kernel has no FUSE over io_uring (Linux 6.14 or later)");
    Mounted m =
        Mounted.mount(tmp.resolve("store-" + name), tmp.resolve("mnt-" + name), tmp, options);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!m.output().contains(RINGS_UP) && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    if (!m.output().contains(RINGS_UP)) {
      m.close();
      throw new AssertionError("the daemon did not start its rings:\n" + m.output());
    }
    return m;
  }

  /** What the daemon logs once its rings are up. */
  private static final String RINGS_UP = "FUSE over io_uring: ";

  @Test
  void ringsAreTheDefaultAndNoIoUringKeepsAMountOnDevFuse() throws Exception {
    Path tmp = tempDir.toRealPath();
    try (Mounted m = mountWithRings(tmp, "default")) {
      Files.writeString(m.mountpoint().resolve("f"), "through the rings");
      assertThat(Files.readString(m.mountpoint().resolve("f"))).isEqualTo("through the rings");
      assertThat(threads(m.pid(), "fuse-ring-")).isPositive();
    }
    for (String[] off :
        List.of(new String[] {"--no-io-uring"}, new String[] {"-o", "noio_uring"})) {
      String name = "off" + off.length;
      try (Mounted m =
          Mounted.mount(tmp.resolve("store-" + name), tmp.resolve("mnt-" + name), tmp, off)) {
        Files.writeString(m.mountpoint().resolve("f"), "through /dev/fuse");
        assertThat(Files.readString(m.mountpoint().resolve("f"))).isEqualTo("through /dev/fuse");
        assertThat(threads(m.pid(), "fuse-ring-")).as(String.join(" ", off)).isZero();
        assertThat(m.output()).doesNotContain(RINGS_UP);
      }
    }
  }

  @Test
  void randomWritesThroughTheRingsMatchAModel() throws Exception {
    Path tmp = tempDir.toRealPath();
    try (Mounted m = mount(tmp, "model")) {
      long ringsBefore = cpuTicks(m.pid(), "fuse-ring-");
      OperationsIT.runModels(m.mountpoint(), 300);
      long rings = cpuTicks(m.pid(), "fuse-ring-") - ringsBefore;
      long devFuse = cpuTicks(m.pid(), "fuse-worker-");
      assertThat(rings)
          .as("CPU ticks of the ring workers (the /dev/fuse workers': %d)", devFuse)
          .isGreaterThan(10 * Math.max(devFuse, 1));
    }
  }

  @Test
  void namesAndAttributesThroughTheRings() throws Exception {
    Path tmp = tempDir.toRealPath();
    try (Mounted m = mount(tmp, "names")) {
      Path root = m.mountpoint();
      TreeSet<String> expected = new TreeSet<>();
      Path dir = Files.createDirectory(root.resolve("d"));
      for (int i = 0; i < 300; i++) {
        String name = "file-" + i + "-" + "x".repeat(i % 200);
        Files.writeString(dir.resolve(name), name);
        expected.add(name);
      }
      for (int i = 0; i < 300; i += 3) {
        String name = "file-" + i + "-" + "x".repeat(i % 200);
        Files.move(dir.resolve(name), dir.resolve("moved-" + i));
        expected.remove(name);
        expected.add("moved-" + i);
      }
      for (int i = 1; i < 300; i += 3) {
        String name = "file-" + i + "-" + "x".repeat(i % 200);
        Files.delete(dir.resolve(name));
        expected.remove(name);
      }
      Files.createSymbolicLink(dir.resolve("link"), Path.of("moved-0"));
      expected.add("link");
      List<String> listed = new ArrayList<>();
      try (var s = Files.list(dir)) {
        s.forEach(p -> listed.add(p.getFileName().toString()));
      }
      assertThat(new TreeSet<>(listed)).isEqualTo(expected);
      assertThat(Files.readString(dir.resolve("link"))).isEqualTo("file-0-");
      assertThat(Files.readString(dir.resolve("moved-3"))).isEqualTo("file-3-xxx");
      var xattrs =
          Files.getFileAttributeView(
              dir.resolve("moved-0"), java.nio.file.attribute.UserDefinedFileAttributeView.class);
      xattrs.write("user.k", ByteBuffer.wrap("value".getBytes()));
      ByteBuffer v = ByteBuffer.allocate(16);
      xattrs.read("user.k", v);
      assertThat(new String(v.array(), 0, v.position())).isEqualTo("value");
    }
  }

  @Test
  void fsyncedWritesThroughTheRingsSurviveKill9() throws Exception {
    Path tmp = tempDir.toRealPath();
    Mounted m = mount(tmp, "kill");
    byte[] model = new byte[8 << 20];
    Random rnd = new Random(7);
    Path f = m.mountpoint().resolve("disk.img");
    int end = 0;
    FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    try {
      for (int i = 0; i < 2000; i++) {
        int len = 1 + rnd.nextInt(64 << 10);
        int off = rnd.nextInt(model.length - len);
        byte[] data = new byte[len];
        rnd.nextBytes(data);
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
          ch.write(b, off + b.position());
        }
        System.arraycopy(data, 0, model, off, len);
        end = Math.max(end, off + len);
        if (i % 7 == 0) {
          ch.force(false);
        }
      }
      ch.force(false);
      m.kill9();
    } finally {
      try {
        ch.close();
      } catch (IOException e) {
        // the daemon is gone: closing may fail; what was fsynced is checked below
      }
      m.close();
    }
    try (Mounted again =
        Mounted.mount(m.store(), tmp.resolve("mnt-kill-again"), tmp, "--io-uring")) {
      byte[] read = Files.readAllBytes(again.mountpoint().resolve("disk.img"));
      assertThat(Tools.sha256AndSize(read, read.length)).isEqualTo(Tools.sha256AndSize(model, end));
    }
  }

  /** How many of the daemon's threads have names that start with {@code prefix}. */
  private static int threads(long pid, String prefix) throws IOException {
    int n = 0;
    try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
      for (Path t : (Iterable<Path>) tasks::iterator) {
        if (Files.readString(t.resolve("comm")).startsWith(prefix)) {
          n++;
        }
      }
    }
    return n;
  }

  /** CPU time (clock ticks) of the daemon's threads whose names start with {@code prefix}. */
  private static long cpuTicks(long pid, String prefix) throws IOException {
    long ticks = 0;
    try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
      for (Path t : (Iterable<Path>) tasks::iterator) {
        if (Files.readString(t.resolve("comm")).startsWith(prefix)) {
          String stat = Files.readString(t.resolve("stat"));
          String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
          ticks += Long.parseLong(f[11]) + Long.parseLong(f[12]);
        }
      }
    }
    return ticks;
  }
}
