package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * What a hypervisor host does with a datastore, done with qemu's own tools on a real mount: {@code
 * qemu-img create}, {@code convert} (plain and with copy offloading), {@code check}, {@code
 * compare}, and {@code qemu-io} writes of known patterns read back, through the page cache and with
 * O_DIRECT. Every image is checked again after an unmount and a new mount.
 *
 * <p>The "real image" is an ext4 filesystem made with {@code mkfs.ext4 -d} from a few tens of MiB
 * of files copied from /usr/lib and /usr/share: binaries, libraries, text, compressed files and
 * ext4's own metadata, with holes.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class QemuIT {
  /** The store's leaf size, given explicitly so that "not aligned to a leaf" means something. */
  private static final int LEAF = 16 * 1024;

  private static final long ORIGINAL_SIZE = 128L << 20;
  private static final long COPIED_FILES_BUDGET = 40L << 20;
  private static final Duration LONG = Duration.ofMinutes(5);

  @TempDir static Path classDir;

  /** ext4 image (raw) on the local disk, and the same converted to qcow2 there. */
  private static Path originalRaw;

  private static Path originalQcow2;
  private static String originalSha256;

  @TempDir Path tempDir;

  private Path tmp;

  @BeforeAll
  static void makeRealImage() throws IOException {
    Mounted.assumeFuseAvailable();
    Path dir = classDir.toRealPath();
    Path tree = Files.createDirectories(dir.resolve("tree"));
    long copied =
        copySomeFiles(
                Path.of("/usr/lib/x86_64-linux-gnu"), tree.resolve("lib"), COPIED_FILES_BUDGET / 2)
            + copySomeFiles(Path.of("/usr/lib"), tree.resolve("lib2"), COPIED_FILES_BUDGET / 4);
    copied +=
        copySomeFiles(Path.of("/usr/share"), tree.resolve("share"), COPIED_FILES_BUDGET - copied);
    assertThat(copied).as("bytes of real files copied for the image").isGreaterThan(16L << 20);

    originalRaw = dir.resolve("original.raw");
    try (RandomAccessFile f = new RandomAccessFile(originalRaw.toFile(), "rw")) {
      f.setLength(ORIGINAL_SIZE);
    }
    ok(
        Shell.run(
            LONG,
            "mkfs.ext4",
            "-q",
            "-F",
            "-b",
            "4096",
            "-L",
            "dedupfs-it",
            "-d",
            tree.toString(),
            originalRaw.toString()));
    ok(Shell.run(LONG, "e2fsck", "-fn", originalRaw.toString()));
    originalQcow2 = dir.resolve("original.qcow2");
    ok(
        Shell.run(
            LONG,
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            originalRaw.toString(),
            originalQcow2.toString()));
    originalSha256 = sha256(originalRaw);
    deleteTree(tree);
  }

  @BeforeEach
  void realTmp() throws IOException {
    tmp = tempDir.toRealPath();
  }

  private final List<Mounted> mounts = new ArrayList<>();

  private Mounted mount() {
    Mounted m =
        Mounted.mount(
            tmp.resolve("store"), tmp.resolve("mnt"), tmp, "--leaf-size", Integer.toString(LEAF));
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
  void createsRawAndQcow2Images() {
    String[] images = {
      "empty.raw", "empty.qcow2", "falloc.raw", "full.raw", "meta.qcow2", "overlay.qcow2"
    };
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      ok(qemuImg("create", "-f", "raw", mnt.resolve("empty.raw"), "4G"));
      ok(qemuImg("create", "-f", "qcow2", mnt.resolve("empty.qcow2"), "4G"));
      ok(
          qemuImg(
              "create",
              "-f",
              "raw",
              "-o",
              "preallocation=falloc",
              mnt.resolve("falloc.raw"),
              "64M"));
      ok(
          qemuImg(
              "create", "-f", "raw", "-o", "preallocation=full", mnt.resolve("full.raw"), "32M"));
      ok(
          qemuImg(
              "create",
              "-f",
              "qcow2",
              "-o",
              "preallocation=metadata",
              mnt.resolve("meta.qcow2"),
              "1G"));
      ok(
          qemuImg(
              "create",
              "-f",
              "qcow2",
              "-b",
              mnt.resolve("empty.qcow2").toString(),
              "-F",
              "qcow2",
              mnt.resolve("overlay.qcow2")));
      checkCreatedImages(mnt);
    }
    try (Mounted m = mount()) {
      assertThat(m.mountpoint().toFile().list()).containsExactlyInAnyOrder(images);
      checkCreatedImages(m.mountpoint());
    }
  }

  private static void checkCreatedImages(Path mnt) {
    assertThat(virtualSize(mnt.resolve("empty.raw"))).isEqualTo(4L << 30);
    assertThat(virtualSize(mnt.resolve("empty.qcow2"))).isEqualTo(4L << 30);
    assertThat(virtualSize(mnt.resolve("falloc.raw"))).isEqualTo(64L << 20);
    assertThat(virtualSize(mnt.resolve("full.raw"))).isEqualTo(32L << 20);
    assertThat(virtualSize(mnt.resolve("meta.qcow2"))).isEqualTo(1L << 30);
    assertThat(virtualSize(mnt.resolve("overlay.qcow2"))).isEqualTo(4L << 30);
    assertThat(info(mnt.resolve("overlay.qcow2"))).contains(mnt.resolve("empty.qcow2").toString());
    for (String qcow2 : List.of("empty.qcow2", "meta.qcow2", "overlay.qcow2")) {
      ok(qemuImg("check", mnt.resolve(qcow2)));
    }
    // Every image reads as zeros, at the start, across a leaf boundary and at the end.
    for (String[] img :
        List.of(
            new String[] {"empty.raw", "raw", "4G"},
            new String[] {"empty.qcow2", "qcow2", "4G"},
            new String[] {"falloc.raw", "raw", "64M"},
            new String[] {"full.raw", "raw", "32M"},
            new String[] {"meta.qcow2", "qcow2", "1G"},
            new String[] {"overlay.qcow2", "qcow2", "4G"})) {
      long size = Sizes.parse(img[2]);
      qemuIoOk(
          mnt.resolve(img[0]),
          img[1],
          "writeback",
          "read -P 0 0 65536",
          "read -P 0 " + (LEAF - 512) + " 1024",
          "read -P 0 " + (size - 65536) + " 65536");
    }
    ok(
        qemuImg(
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            mnt.resolve("empty.raw"),
            mnt.resolve("empty.qcow2")));
    ok(
        qemuImg(
            "compare",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            mnt.resolve("empty.qcow2"),
            mnt.resolve("overlay.qcow2")));
  }

  @Test
  void convertsARealImageIntoTheMountAndBack() throws IOException {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      // raw (local disk) -> qcow2 (mount); qcow2 (local disk) -> raw (mount)
      ok(qemuImg("convert", "-f", "raw", "-O", "qcow2", originalRaw, mnt.resolve("disk.qcow2")));
      ok(qemuImg("convert", "-f", "qcow2", "-O", "raw", originalQcow2, mnt.resolve("disk.raw")));
      // inside the mount, the target written with O_DIRECT (cache=none), then compressed qcow2
      ok(
          qemuImg(
              "convert",
              "-t",
              "none",
              "-f",
              "qcow2",
              "-O",
              "raw",
              mnt.resolve("disk.qcow2"),
              mnt.resolve("disk-direct.raw")));
      ok(
          qemuImg(
              "convert",
              "-T",
              "none",
              "-c",
              "-f",
              "raw",
              "-O",
              "qcow2",
              mnt.resolve("disk.raw"),
              mnt.resolve("disk-compressed.qcow2")));
      // out-of-order writes by 16 coroutines at once, O_DIRECT, into a preallocated (fallocate) raw
      ok(
          qemuImg(
              "convert",
              "-W",
              "-m",
              "16",
              "-t",
              "none",
              "-f",
              "qcow2",
              "-O",
              "raw",
              "-o",
              "preallocation=falloc",
              originalQcow2,
              mnt.resolve("disk-parallel.raw")));
      checkConvertedImages(mnt);
    }
    try (Mounted m = mount()) {
      checkConvertedImages(m.mountpoint());
    }
  }

  private static void checkConvertedImages(Path mnt) throws IOException {
    ok(qemuImg("check", mnt.resolve("disk.qcow2")));
    ok(qemuImg("check", mnt.resolve("disk-compressed.qcow2")));
    for (String img :
        List.of(
            "disk.qcow2",
            "disk.raw",
            "disk-direct.raw",
            "disk-compressed.qcow2",
            "disk-parallel.raw")) {
      identical(originalRaw, "raw", mnt.resolve(img), img.endsWith(".qcow2") ? "qcow2" : "raw");
    }
    assertThat(sha256(mnt.resolve("disk.raw"))).isEqualTo(originalSha256);
    assertThat(sha256(mnt.resolve("disk-direct.raw"))).isEqualTo(originalSha256);
    assertThat(sha256(mnt.resolve("disk-parallel.raw"))).isEqualTo(originalSha256);
    // The guest filesystem in the converted image is intact, read through the mount.
    ok(Shell.run(LONG, "e2fsck", "-fn", mnt.resolve("disk.raw").toString()));
  }

  @Test
  void copyOffloadedConvertGivesAnIdenticalImage() throws IOException {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      Files.copy(originalRaw, mnt.resolve("source.raw"), StandardCopyOption.COPY_ATTRIBUTES);
      assertThat(sha256(mnt.resolve("source.raw"))).isEqualTo(originalSha256);
      // -C: copy_file_range in 2 MiB calls, here from a file of the mount to another one
      ok(
          qemuImg(
              "convert",
              "-C",
              "-f",
              "raw",
              "-O",
              "raw",
              mnt.resolve("source.raw"),
              mnt.resolve("offloaded.raw")));
      // and from the local disk into the mount (the kernel may fall back to read/write there)
      ok(
          qemuImg(
              "convert",
              "-C",
              "-f",
              "raw",
              "-O",
              "raw",
              originalRaw,
              mnt.resolve("offloaded-in.raw")));
      // into a qcow2 image: its data clusters are copied with copy_file_range too
      ok(
          qemuImg(
              "convert",
              "-C",
              "-f",
              "raw",
              "-O",
              "qcow2",
              mnt.resolve("source.raw"),
              mnt.resolve("offloaded.qcow2")));
      ok(qemuImg("check", mnt.resolve("offloaded.qcow2")));
      identical(originalRaw, "raw", mnt.resolve("offloaded.qcow2"), "qcow2");
      for (String img : List.of("offloaded.raw", "offloaded-in.raw")) {
        identical(originalRaw, "raw", mnt.resolve(img), "raw");
        assertThat(sha256(mnt.resolve(img))).as(img).isEqualTo(originalSha256);
      }
      // the source is unchanged by the copy
      assertThat(sha256(mnt.resolve("source.raw"))).isEqualTo(originalSha256);
    }
    try (Mounted m = mount()) {
      for (String img : List.of("source.raw", "offloaded.raw", "offloaded-in.raw")) {
        assertThat(sha256(m.mountpoint().resolve(img)))
            .as(img + " after a new mount")
            .isEqualTo(originalSha256);
      }
      identical(originalRaw, "raw", m.mountpoint().resolve("offloaded.qcow2"), "qcow2");
    }
  }

  /**
   * Random writes of known byte patterns with qemu-io, at offsets that are multiples of 512 but
   * mostly not of the leaf size (some straddle a leaf boundary on purpose), overlapping each other.
   * The expected image is kept in memory; every run of equal bytes is then read back with {@code
   * read -P} (which verifies), in the same qemu-io, in another with the other cache mode, and after
   * a new mount, and the whole image is compared with {@code qemu-img compare}.
   */
  @ParameterizedTest(name = "{0} image, cache={1}")
  @CsvSource({"raw, none", "raw, writeback", "qcow2, none", "qcow2, writeback"})
  void qemuIoPatternsReadBackExactly(String format, String cache) throws IOException {
    int size = 64 << 20;
    long seed = new Random().nextLong();
    Random rnd = new Random(seed);
    byte[] model = new byte[size];
    List<String> writes = new ArrayList<>();
    int n = 48;
    for (int i = 0; i < n; i++) {
      int len;
      int off;
      if (i % 6 == 0) { // straddle a leaf boundary by one sector on the left and some on the right
        len = 512 * (2 + rnd.nextInt(16));
        off = LEAF * (1 + rnd.nextInt(size / LEAF - 4)) - 512;
      } else {
        len = 512 * (1 + rnd.nextInt(640)); // up to 320 KiB
        off = 512 * rnd.nextInt((size - len) / 512 + 1);
      }
      int pattern = 1 + rnd.nextInt(255);
      java.util.Arrays.fill(model, off, off + len, (byte) pattern);
      writes.add(String.format("write -P 0x%02x %d %d", pattern, off, len));
    }
    List<String> reads = patternReads(model);
    String otherCache = cache.equals("none") ? "writeback" : "none";
    Path expected = tmp.resolve("expected.raw");
    Files.write(expected, model);
    String what = format + " cache=" + cache + " seed=" + seed;

    try (Mounted m = mount()) {
      Path img = m.mountpoint().resolve("io." + format);
      ok(qemuImg("create", "-f", format, img, Integer.toString(size)));
      List<String> all = new ArrayList<>(writes);
      all.add("flush");
      all.addAll(reads);
      qemuIoOk(img, format, cache, all.toArray(String[]::new));
      qemuIoOk(img, format, otherCache, reads.toArray(String[]::new));
      identical(expected, "raw", img, format);
      if (format.equals("qcow2")) {
        ok(qemuImg("check", img));
      } else {
        dataIsNeverReportedAsAHole(img, model);
      }
    } catch (AssertionError e) {
      throw new AssertionError(what + ": " + e.getMessage(), e);
    }
    try (Mounted m = mount()) {
      Path img = m.mountpoint().resolve("io." + format);
      qemuIoOk(img, format, cache, reads.toArray(String[]::new));
      identical(expected, "raw", img, format);
      if (format.equals("raw")) {
        assertThat(Files.mismatch(expected, img))
            .as(what + ": first differing byte")
            .isEqualTo(-1L);
      }
    } catch (AssertionError e) {
      throw new AssertionError(what + " (after a new mount): " + e.getMessage(), e);
    }
  }

  /**
   * {@code qemu-img map} (SEEK_DATA/SEEK_HOLE underneath) may call a hole data, but never data a
   * hole: convert, compare and backup tools skip holes, so that would lose data.
   */
  private static void dataIsNeverReportedAsAHole(Path rawImage, byte[] model) {
    Object extents =
        Json.parse(ok(qemuImg("map", "--output=json", "-f", "raw", rawImage)).stdout());
    boolean[] data = new boolean[model.length / 512];
    long covered = 0;
    for (Object e : (List<?>) extents) {
      long start = Json.longAt(e, "start");
      long length = Json.longAt(e, "length");
      assertThat(start).as("extents are contiguous").isEqualTo(covered);
      covered += length;
      if ((Boolean) Json.at(e, "data")) {
        for (long sector = start / 512;
            sector < (start + length + 511) / 512 && sector < data.length;
            sector++) {
          data[(int) sector] = true;
        }
      }
    }
    assertThat(covered).as("qemu-img map covers the image").isEqualTo(model.length);
    for (int i = 0; i < model.length; i++) {
      if (model[i] != 0 && !data[i / 512]) {
        throw new AssertionError(
            "qemu-img map reports byte "
                + i
                + " (written, 0x"
                + Integer.toHexString(model[i] & 0xff)
                + ") as a hole");
      }
    }
  }

  /**
   * Internal snapshots, resize, an overlay committed into its base, and rebase: what hosts do to
   * images.
   */
  @Test
  void qcow2SnapshotsResizeCommitAndRebase() {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      Path base = mnt.resolve("base.qcow2");
      Path overlay = mnt.resolve("overlay.qcow2");
      Path raw = mnt.resolve("disk.raw");
      ok(qemuImg("create", "-f", "qcow2", base, "64M"));
      qemuIoOk(base, "qcow2", "none", "write -P 0x33 0 1M");
      ok(qemuImg("snapshot", "-c", "before", base));
      qemuIoOk(base, "qcow2", "writeback", "write -P 0x44 512 1M");
      assertThat(ok(qemuImg("snapshot", "-l", base)).stdout()).contains("before");
      ok(qemuImg("snapshot", "-a", "before", base));
      qemuIoOk(base, "qcow2", "none", "read -P 0x33 0 1M", "read -P 0 1M 1M");
      ok(qemuImg("snapshot", "-d", "before", base));
      ok(qemuImg("check", base));

      ok(qemuImg("resize", base, "+64M"));
      assertThat(virtualSize(base)).isEqualTo(128L << 20);
      qemuIoOk(base, "qcow2", "none", "write -P 0x66 " + ((128L << 20) - 4096) + " 4096");

      ok(qemuImg("create", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", overlay));
      qemuIoOk(overlay, "qcow2", "none", "write -P 0x55 " + (2 * 1024 * 1024 + 512) + " 1M");
      ok(qemuImg("commit", overlay));
      qemuIoOk(
          base,
          "qcow2",
          "none",
          "read -P 0x33 0 1M",
          "read -P 0x55 " + (2 * 1024 * 1024 + 512) + " 1M",
          "read -P 0x66 " + ((128L << 20) - 4096) + " 4096");
      ok(qemuImg("check", base));

      // rebase the overlay onto nothing: it becomes a standalone copy of what it showed
      ok(qemuImg("rebase", "-b", "", "-f", "qcow2", overlay));
      ok(qemuImg("check", overlay));
      identical(base, "qcow2", overlay, "qcow2");

      ok(qemuImg("convert", "-f", "qcow2", "-O", "raw", base, raw));
      ok(qemuImg("resize", "-f", "raw", raw, "200M"));
      assertThat(virtualSize(raw)).isEqualTo(200L << 20);
      qemuIoOk(
          raw,
          "raw",
          "none",
          "read -P 0x33 0 1M",
          "read -P 0x66 " + ((128L << 20) - 4096) + " 4096",
          "read -P 0 " + (128L << 20) + " " + (72L << 20));
      ok(qemuImg("resize", "-f", "raw", "--shrink", raw, "100M"));
      assertThat(virtualSize(raw)).isEqualTo(100L << 20);
      qemuIoOk(raw, "raw", "writeback", "read -P 0x33 0 1M");
    }
  }

  /**
   * One {@code read -P} per maximal run of equal bytes in {@code model}: together they cover it
   * all.
   */
  private static List<String> patternReads(byte[] model) {
    List<String> reads = new ArrayList<>();
    int start = 0;
    for (int i = 1; i <= model.length; i++) {
      if (i == model.length || model[i] != model[start]) {
        reads.add(String.format("read -P 0x%02x %d %d", model[start] & 0xff, start, i - start));
        start = i;
      }
    }
    return reads;
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

  // ---- tools ---------------------------------------------------------------------------------

  private static Shell.Result qemuImg(Object... args) {
    List<String> cmd = new ArrayList<>(List.of("qemu-img"));
    for (Object a : args) {
      cmd.add(a.toString());
    }
    return Shell.run(LONG, java.util.Map.of(), cmd);
  }

  /** Runs qemu-io with the commands; fails unless it exits 0 and reports no failure. */
  private static void qemuIoOk(Path image, String format, String cache, String... commands) {
    List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format, "-t", cache));
    for (String c : commands) {
      cmd.add("-c");
      cmd.add(c);
    }
    cmd.add(image.toString());
    Shell.Result r = Shell.run(LONG, java.util.Map.of(), cmd);
    String out = r.stdout() + r.stderr();
    assertThat(r.exitCode()).as("qemu-io exit code\n%s", r.describe()).isZero();
    assertThat(out)
        .as("qemu-io output")
        .doesNotContain("verification failed")
        .doesNotContainIgnoringCase("error")
        .doesNotContain("failed");
    long done =
        Pattern.compile("^(read|wrote) \\d+/\\d+ bytes", Pattern.MULTILINE)
            .matcher(out)
            .results()
            .count();
    long expected =
        Stream.of(commands).filter(c -> c.startsWith("read") || c.startsWith("write")).count();
    assertThat(done).as("completed qemu-io requests\n%s", r.describe()).isEqualTo(expected);
  }

  private static void identical(Path a, String fa, Path b, String fb) {
    Shell.Result r = qemuImg("compare", "-f", fa, "-F", fb, a, b);
    assertThat(r.exitCode())
        .as("qemu-img compare %s %s (0 = identical)\n%s", a, b, r.describe())
        .isZero();
    assertThat(r.stdout()).contains("Images are identical");
  }

  private static long virtualSize(Path image) {
    Matcher m = Pattern.compile("\"virtual-size\":\\s*(\\d+)").matcher(info(image));
    assertThat(m.find()).as("virtual-size of %s", image).isTrue();
    return Long.parseLong(m.group(1));
  }

  private static String info(Path image) {
    return ok(qemuImg("info", "--output=json", image)).stdout();
  }

  private static Shell.Result ok(Shell.Result r) {
    assertThat(r.exitCode()).as("exit code\n%s", r.describe()).isZero();
    return r;
  }

  /**
   * Copies readable regular files under {@code from} (sorted walk, none over 4 MiB) until {@code
   * budget} bytes.
   */
  private static long copySomeFiles(Path from, Path to, long budget) throws IOException {
    long copied = 0;
    List<Path> files;
    try (Stream<Path> walk = Files.walk(from)) {
      files =
          walk.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS))
              .filter(Files::isReadable)
              .sorted()
              .toList();
    } catch (UncheckedIOException e) {
      files = List.of(); // a directory that vanished or cannot be read: skip this tree
    }
    for (Path p : files) {
      long size = Files.size(p);
      if (size > (4L << 20) || copied + size > budget) {
        continue;
      }
      Path target = to.resolve(from.relativize(p).toString());
      Files.createDirectories(target.getParent());
      Files.copy(p, target, StandardCopyOption.COPY_ATTRIBUTES);
      copied += size;
    }
    return copied;
  }

  private static void deleteTree(Path root) throws IOException {
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : (Iterable<Path>) walk.sorted(java.util.Comparator.reverseOrder())::iterator) {
        Files.delete(p);
      }
    }
  }

  static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 20];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** 4G, 64M ... as qemu-img reads them. */
  private static final class Sizes {
    static long parse(String s) {
      char unit = s.charAt(s.length() - 1);
      long n = Long.parseLong(s.substring(0, s.length() - 1));
      return switch (unit) {
        case 'K' -> n << 10;
        case 'M' -> n << 20;
        case 'G' -> n << 30;
        default -> throw new IllegalArgumentException(s);
      };
    }
  }
}
