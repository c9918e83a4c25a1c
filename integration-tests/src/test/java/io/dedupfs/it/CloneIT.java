package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Copies that copy a root pointer (issue 4): plain {@code cp} (copy_file_range), dedupfs's clone
 * ioctl from a small Python client and {@code dedupfs clone}, of a 4 GiB dense image (unique data
 * in every block) and an 8 GiB sparse one (data here and there, across the 4 GiB line and at the
 * end).
 *
 * <p>What "metadata-only" means here, measured three ways per copy:
 *
 * <ul>
 *   <li>time: the median of 3 copies of the big image is below max(2 x the median of 3 copies of a
 *       10 MiB file, 1.5 s). Both copies are metadata-only, so both take milliseconds (plus a JVM
 *       start for {@code dedupfs clone}); the 1.5 s floor keeps a loaded 2-core CI machine from
 *       failing on noise, and is still far below a byte copy (4 GiB goes through this mount at
 *       about 0.2 GB/s, i.e. 20 s);
 *   <li>store growth: the whole store's stored bytes ({@code dedupfs stats}, every distinct block
 *       once) grow by at most one new path of tree nodes per copy (height x 4112 bytes), and
 *       data.mdb by at most 1 MiB for the three copies;
 *   <li>the bytes: {@code cmp} of the dense image's cp copy with its source; an extent-aware
 *       SHA-256 (every data extent and its place, holes probed at both ends and the middle) of the
 *       others, compared with the source's (cmp of 8 GiB of holes would read 16 GiB of zeros).
 * </ul>
 *
 * Then {@code cat A > B} and {@code qemu-img convert -C}; ranges (leaf-aligned, subtree-aligned,
 * unaligned, past the end, within one file) through both tools against an in-memory model; qemu-io
 * writes into each kind of clone leaving the source byte-identical; and bad input.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
@SecondLane
class CloneIT {
  static final int LEAF = 16 * 1024;
  static final long NODE = 16 + 128 * 32;
  static final long M = 1L << 20;
  static final long G = 1L << 30;
  static final long DENSE = 4 * G;
  static final long SPARSE = 8 * G;
  static final long SMALL = 10 * M;

  @TempDir static Path classDir;

  static Path tmp;
  static Path store;
  static Mounted fs;
  static Path mnt;
  static Path dense;
  static Path sparse;
  static Path small;
  static String denseDigest;
  static String sparseDigest;
  static final List<String> report = new ArrayList<>();

  @BeforeAll
  static void mountAndWriteTheImages() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = classDir.toRealPath();
    store = tmp.resolve("store");
    fs = Mounted.mount(store, tmp.resolve("mnt"), tmp, "--leaf-size", Integer.toString(LEAF));
    mnt = fs.mountpoint();
    Path images = Files.createDirectory(mnt.resolve("images"));
    dense = images.resolve("dense.img");
    sparse = images.resolve("sparse.img");
    small = images.resolve("small.img");
    long t0 = System.nanoTime();
    String[] written = StoreTools.uniqueWithDigest(dense, DENSE, 1);
    report.add(
        String.format("wrote the 4 GiB dense image in %.1f s", (System.nanoTime() - t0) / 1e9));
    StoreTools.py("sparse", sparse, SPARSE, 2);
    StoreTools.unique(small, SMALL, 3);
    denseDigest = written[1]; // what the copies must read as; the cp copy is compared with cmp
    sparseDigest = StoreTools.digest(sparse);
    assertThat(sparseDigest).startsWith(SPARSE + " ");
    assertThat(Long.parseLong(sparseDigest.split(" ")[1])).isGreaterThan(3);
  }

  @AfterAll
  static void unmount() {
    report.forEach(l -> System.out.println("CloneIT: " + l));
    if (fs != null) {
      fs.close();
      assertThat(fs.output()).doesNotContain("request failed unexpectedly", "Exception", "Error:");
    }
  }

  /** A way of copying SRC to a new DST. */
  @FunctionalInterface
  interface Copier {
    void copy(Path src, Path dst) throws Exception;
  }

  @Test
  void plainCpIsMetadataOnly() throws Exception {
    metadataOnly("cp", (s, d) -> Tools.run("cp", s.toString(), d.toString()), true);
  }

  @Test
  void cloneIoctlFromPythonIsMetadataOnly() throws Exception {
    metadataOnly(
        "ioctl",
        (s, d) -> assertThat(StoreTools.ioctlClone(s, d, 0, 0, 0, true)).isEqualTo("ok"),
        false);
  }

  @Test
  void dedupfsCloneIsMetadataOnly() throws Exception {
    metadataOnly(
        "dedupfs-clone",
        (s, d) -> {
          Shell.Result r = Mounted.cli("clone", s.toString(), d.toString());
          assertThat(r.exitCode()).as("%s", r).isZero();
        },
        false);
  }

  private void metadataOnly(String how, Copier copier, boolean cmp) throws Exception {
    Path dir = Files.createDirectory(mnt.resolve(how));
    for (Path image : List.of(dense, sparse)) {
      String name = image.getFileName().toString();
      double smallTime =
          StoreTools.medianSeconds(3, i -> copier.copy(small, dir.resolve("small-" + name + i)));
      long stored0 = StoreTools.storedBytes(mnt);
      long mdb0 = StoreTools.dataMdb(store);
      double bigTime =
          StoreTools.medianSeconds(3, i -> copier.copy(image, dir.resolve(name + "." + i)));
      long storedGrowth = StoreTools.storedBytes(mnt) - stored0;
      long mdbGrowth = StoreTools.dataMdb(store) - mdb0;
      long size = Files.size(image);
      double limit = Math.max(2 * smallTime, 1.5);
      report.add(
          String.format(
              "%-13s %-9s %5.0f MiB logical: median of 3 copies %.3f s (10 MiB: %.3f s, limit %.3f s);"
                  + " stored bytes +%d, data.mdb +%d bytes for the 3 copies",
              how, name, size / (double) M, bigTime, smallTime, limit, storedGrowth, mdbGrowth));
      assertThat(bigTime)
          .as("%s of %s: median time of 3 copies vs. 10 MiB (%.3f s)", how, name, smallTime)
          .isLessThan(limit);
      assertThat(storedGrowth)
          .as("%s of %s: growth of the store's stored bytes for 3 copies", how, name)
          .isLessThanOrEqualTo(3 * height(size) * NODE);
      assertThat(mdbGrowth)
          .as("%s of %s: growth of data.mdb for 3 copies", how, name)
          .isLessThanOrEqualTo(M);
      for (int i = 0; i < 3; i++) {
        assertThat(Files.size(dir.resolve(name + "." + i))).isEqualTo(size);
      }
      if (cmp && image == dense) {
        Shell.Result r =
            Shell.run(
                java.time.Duration.ofMinutes(5),
                "cmp",
                image.toString(),
                dir.resolve(name + ".0").toString());
        assertThat(r.exitCode()).as("cmp %s and its copy\n%s", name, r).isZero();
      } else {
        assertThat(StoreTools.digest(dir.resolve(name + ".0")))
            .as("%s of %s", how, name)
            .isEqualTo(image == dense ? denseDigest : sparseDigest);
      }
      assertThat(StoreTools.digest(dir.resolve("small-" + name + "0")))
          .isEqualTo(StoreTools.digest(small));
    }
  }

  /**
   * {@code cat A > B} (copy_file_range in coreutils 9) and {@code qemu-img convert -C} store no
   * data.
   */
  @Test
  void catAndQemuImgConvertWithCopyOffloadAreMetadataOnly() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("cat-and-convert"));
    // qemu-img convert -C copies 2 MiB at a time, each copy_file_range one durable commit: a
    // 256 MiB piece of the dense image stands for the dense case
    Path dense256 = dir.resolve("dense-256M.img");
    assertThat(StoreTools.ioctlClone(dense, dense256, 0, 256 * M, 0, true)).isEqualTo("ok");
    String dense256Digest = StoreTools.digest(dense256);
    record Case(String what, Path src, String digest, List<String> command) {}
    List<Case> cases =
        List.of(
            new Case(
                "cat dense",
                dense,
                denseDigest,
                List.of(
                    "sh",
                    "-c",
                    "cat \"$1\" > \"$2\"",
                    "sh",
                    dense.toString(),
                    dir.resolve("dense.cat").toString())),
            new Case(
                "cat sparse",
                sparse,
                sparseDigest,
                List.of(
                    "sh",
                    "-c",
                    "cat \"$1\" > \"$2\"",
                    "sh",
                    sparse.toString(),
                    dir.resolve("sparse.cat").toString())),
            new Case(
                "qemu-img convert -C dense-256M",
                dense256,
                dense256Digest,
                List.of(
                    "qemu-img",
                    "convert",
                    "-C",
                    "-f",
                    "raw",
                    "-O",
                    "raw",
                    dense256.toString(),
                    dir.resolve("dense-256M.convert").toString())),
            new Case(
                "qemu-img convert -C sparse",
                sparse,
                sparseDigest,
                List.of(
                    "qemu-img",
                    "convert",
                    "-C",
                    "-f",
                    "raw",
                    "-O",
                    "raw",
                    sparse.toString(),
                    dir.resolve("sparse.convert").toString())));
    for (Case c : cases) {
      long stored0 = StoreTools.storedBytes(mnt);
      long mdb0 = StoreTools.dataMdb(store);
      long t0 = System.nanoTime();
      Shell.Result r = Shell.run(java.time.Duration.ofMinutes(5), Map.of(), c.command());
      double secs = (System.nanoTime() - t0) / 1e9;
      assertThat(r.exitCode()).as("%s\n%s", c.what(), r).isZero();
      long storedGrowth = StoreTools.storedBytes(mnt) - stored0;
      long mdbGrowth = StoreTools.dataMdb(store) - mdb0;
      report.add(
          String.format(
              "%-32s %.3f s; stored bytes +%d, data.mdb +%d bytes",
              c.what(), secs, storedGrowth, mdbGrowth));
      Path out = Path.of(c.command().get(c.command().size() - 1));
      assertThat(storedGrowth)
          .as("%s: growth of the store's stored bytes", c.what())
          .isLessThanOrEqualTo(height(Files.size(c.src())) * NODE);
      assertThat(mdbGrowth).as("%s: growth of data.mdb", c.what()).isLessThanOrEqualTo(M);
      assertThat(StoreTools.digest(out)).as("%s: the copy", c.what()).isEqualTo(c.digest());
    }
  }

  /**
   * Ranges through the ioctl and {@code dedupfs clone}, against a model: leaf-aligned, aligned on a
   * 2 MiB subtree, at the same unaligned place in a leaf (edges copied, the middle shared), at
   * different places in a leaf (every leaf new), to the end of the source growing the destination,
   * past the source's end (clamped), within one file, overlapping (EINVAL), and a whole-file clone
   * onto a bigger file. After each step the destination, read through the page cache that the
   * previous step filled, equals the model, and the store grew by at most the new tree nodes (plus
   * two edge leaves) where the ranges line up.
   */
  @Test
  void rangesMatchAModel() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("ranges"));
    Path src = dir.resolve("src");
    Path dst = dir.resolve("dst");
    int srcLen = (int) (40 * M + 12345);
    StoreTools.unique(src, srcLen, 31);
    StoreTools.unique(dst, 24 * M, 32);
    byte[] s = Files.readAllBytes(src);
    byte[] model = Files.readAllBytes(dst);
    record Step(String tool, long so, long len, long dOff, boolean self, String expect) {}
    int L = LEAF;
    List<Step> steps =
        List.of(
            new Step("ioctl", 10L * L, 50L * L, 3L * L, false, "ok"),
            new Step("cli", 2 * M, 8 * M, 4 * M, false, "ok"),
            new Step("ioctl", 7L * L + 100, 5 * M + 50, 2L * L + 100, false, "ok"),
            new Step("cli", 12345, 3 * M + 17, 777, false, "ok"),
            new Step("ioctl", 5 * M + 1, 0, 30 * M + 5, false, "ok"),
            new Step("cli", srcLen - 100, 0, 0, false, "ok"),
            new Step("ioctl", srcLen - 1000, 5000, 100, false, "ok"),
            new Step("cli", srcLen + 10L, 5000, 0, false, "ok"),
            new Step(
                "ioctl", 0, M, -1, true,
                "ok"), // -1: 3 MiB past dst's end (leaf-aligned), leaving a hole
            new Step("ioctl", 0, M, 1000, true, "errno EINVAL"),
            new Step("cli", 0, 0, 0, false, "ok"));
    for (Step st : steps) {
      long dOff = st.dOff() < 0 ? (model.length + LEAF - 1L) / LEAF * LEAF + 3 * M : st.dOff();
      Path from = st.self() ? dst : src;
      byte[] fromBytes = st.self() ? model : s;
      long stored0 = StoreTools.storedBytes(mnt);
      String what =
          st.tool()
              + " "
              + st.so()
              + " "
              + st.len()
              + " "
              + dOff
              + (st.self() ? " (within dst)" : "");
      if (st.tool().equals("ioctl")) {
        assertThat(StoreTools.ioctlClone(from, dst, st.so(), st.len(), dOff, false))
            .as(what)
            .startsWith(st.expect());
      } else {
        Shell.Result r =
            Mounted.cli(
                "clone",
                "--src-offset",
                Long.toString(st.so()),
                "--length",
                Long.toString(st.len()),
                "--dst-offset",
                Long.toString(dOff),
                from.toString(),
                dst.toString());
        assertThat(r.exitCode()).as("%s\n%s", what, r).isZero();
      }
      long grown = StoreTools.storedBytes(mnt) - stored0;
      if (st.expect().equals("ok")) {
        if (st.so() == 0 && st.len() == 0 && dOff == 0) {
          model = fromBytes.clone(); // whole file: an exact copy
        } else {
          long n =
              Math.max(
                  0,
                  Math.min(st.len() == 0 ? Long.MAX_VALUE : st.len(), fromBytes.length - st.so()));
          byte[] piece =
              n == 0
                  ? new byte[0]
                  : Arrays.copyOfRange(fromBytes, (int) st.so(), (int) (st.so() + n));
          if (dOff + n > model.length) {
            model = Arrays.copyOf(model, (int) (dOff + n));
          }
          System.arraycopy(piece, 0, model, (int) dOff, (int) n);
        }
      }
      assertThat(Files.size(dst)).as("size after %s", what).isEqualTo(model.length);
      assertThat(Tools.sha256(dst)).as("content after %s", what).isEqualTo(Tools.sha256(model));
      long len = st.len() == 0 ? fromBytes.length : st.len();
      boolean lined = (st.so() - dOff) % LEAF == 0; // the same place in a leaf: whole leaves shared
      long bound =
          lined
              ? 2L * LEAF + (len / (2 * M) + 2 + height(model.length)) * NODE
              : len + 2L * LEAF + (len / (2 * M) + 2 + height(model.length)) * NODE;
      report.add(String.format("range %-45s stored bytes %+d (bound %d)", what, grown, bound));
      assertThat(grown)
          .as("growth of the store's stored bytes after %s", what)
          .isLessThanOrEqualTo(bound);
    }
    // the source never changed; O_DIRECT reads (the daemon's bytes, not the page cache) agree
    assertThat(Tools.sha256(src)).isEqualTo(Tools.sha256(s));
    assertThat(Tools.sha256Direct(dst)).isEqualTo(Tools.sha256AndSize(model, model.length));
    assertThat(Files.readAllBytes(dst)).isEqualTo(s);
  }

  /**
   * Writes into clones (qemu-io: patterns at random 512-byte-aligned places, zeroes, discards)
   * never change their source or the other clones; each clone ends up equal to a model.
   */
  @Test
  void writingToAnyKindOfCloneLeavesTheSourceByteIdentical() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("isolation"));
    Path src = dir.resolve("source.img");
    int size = (int) (64 * M);
    StoreTools.unique(src, size, 41);
    byte[] source = Files.readAllBytes(src);
    String sourceSha = Tools.sha256(source);
    Path byCp = dir.resolve("cp.img");
    Path byIoctl = dir.resolve("ioctl.img");
    Path byCli = dir.resolve("cli.img");
    Path byRange = dir.resolve("range.img");
    Tools.run("cp", src.toString(), byCp.toString());
    assertThat(StoreTools.ioctlClone(src, byIoctl, 0, 0, 0, true)).isEqualTo("ok");
    assertThat(Mounted.cli("clone", src.toString(), byCli.toString()).exitCode()).isZero();
    StoreTools.unique(byRange, 8 * M, 42);
    assertThat(StoreTools.ioctlClone(src, byRange, 0, size, 0, false)).isEqualTo("ok");
    List<Path> clones = List.of(byCp, byIoctl, byCli, byRange);
    Map<Path, String> expected = new java.util.HashMap<>();
    for (Path c : clones) {
      expected.put(c, sourceSha);
      assertThat(Tools.sha256(c)).as("%s before any write", c.getFileName()).isEqualTo(sourceSha);
    }
    Random rnd = new Random(43);
    for (Path c : clones) {
      byte[] model = source.clone();
      List<String> writes = new ArrayList<>();
      List<String> reads = new ArrayList<>();
      int slots = 24;
      int slot = size / slots;
      for (int i = 0; i < slots; i++) {
        int off = i * slot + 512 * rnd.nextInt(slot / 1024);
        int len = 512 * (1 + rnd.nextInt(Math.min(600, (i * slot + slot - off) / 512 - 1)));
        int kind = rnd.nextInt(6);
        int pattern = 1 + rnd.nextInt(254);
        if (kind == 0) {
          writes.add("write -z " + off + " " + len);
          Arrays.fill(model, off, off + len, (byte) 0);
          reads.add("read -P 0 " + off + " " + len);
        } else if (kind == 1 && off % LEAF == 0 && len >= LEAF) {
          writes.add("discard " + off + " " + len);
          Arrays.fill(model, off, off + len, (byte) 0);
        } else {
          writes.add("write -P " + pattern + " " + off + " " + len);
          Arrays.fill(model, off, off + len, (byte) pattern);
          reads.add("read -P " + pattern + " " + off + " " + len);
        }
      }
      StoreTools.qemuIo(c, "writeback", writes);
      StoreTools.qemuIo(c, "none", reads);
      expected.put(c, Tools.sha256(model));
      for (Path other : clones) {
        assertThat(Tools.sha256(other))
            .as("%s after writing into %s", other.getFileName(), c.getFileName())
            .isEqualTo(expected.get(other));
      }
      assertThat(Tools.sha256(src))
          .as("the source after writing into %s", c.getFileName())
          .isEqualTo(sourceSha);
    }
    assertThat(Tools.sha256Direct(src)).isEqualTo(Tools.sha256AndSize(source, size));
  }

  /**
   * Clone across two mounts (and from another filesystem), into a directory, onto a file of a
   * snapshot, from a source that does not exist, from a descriptor not open for reading, and with
   * overlapping ranges: each gets its errno (the ioctl) or a one-line message (the command), and
   * nothing changes in either mount.
   */
  @Test
  void badInputGetsAClearErrorAndChangesNothing() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("bad"));
    Path src = dir.resolve("src");
    Path dst = dir.resolve("dst");
    Path sub = Files.createDirectory(dir.resolve("subdir"));
    StoreTools.unique(src, 3 * M + 5, 51);
    StoreTools.unique(dst, 100_000, 52);
    assertThat(Mounted.cli("snapshot", "create", "bad-snap", dir.toString()).exitCode()).isZero();
    Path inSnapshot = mnt.resolve(".snapshots/bad-snap/dst");
    Path local = Files.write(tmp.resolve("local-file"), new byte[100_000]);
    try (Mounted other = Mounted.mount(tmp.resolve("store2"), tmp.resolve("mnt2"), tmp)) {
      Path mnt2 = other.mountpoint();
      Path there = mnt2.resolve("there");
      StoreTools.unique(there, 200_000, 53);
      Map<String, String> before = TreeSnapshot.of(dir);
      Map<String, String> snapBefore = TreeSnapshot.of(mnt.resolve(".snapshots/bad-snap"));
      Map<String, String> otherBefore = TreeSnapshot.of(mnt2);
      StoreTools.Figures statsBefore = StoreTools.stats(mnt);

      // the ioctl: errno values
      assertThat(StoreTools.ioctlClone(src, there, 0, 0, 0, false)).startsWith("errno EXDEV");
      assertThat(StoreTools.ioctlClone(there, dst, 0, 0, 0, false)).startsWith("errno EXDEV");
      assertThat(StoreTools.ioctlClone(local, dst, 0, 0, 0, false)).startsWith("errno EXDEV");
      assertThat(StoreTools.ioctlClone(sub, dst, 0, 0, 0, false)).startsWith("errno EISDIR");
      assertThat(StoreTools.ioctlClone(src, sub, 0, 0, 0, false)).startsWith("errno EISDIR");
      assertThat(StoreTools.ioctlClone(src, inSnapshot, 0, 0, 0, false)).startsWith("errno EROFS");
      assertThat(StoreTools.ioctlClone(src, mnt.resolve(".snapshots/bad-snap/new"), 0, 0, 0, true))
          .startsWith("errno EROFS");
      assertThat(StoreTools.ioctlClone(dir.resolve("missing"), dst, 0, 0, 0, false))
          .startsWith("errno ENOENT");
      assertThat(StoreTools.ioctlClone(dst, dst, 0, 50_000, 10_000, false))
          .startsWith("errno EINVAL");
      assertThat(
              Tools.python(
                  """
                    import fcntl, os, struct, sys
                    dst = os.open(sys.argv[2], os.O_WRONLY)
                    for fd in (os.open(sys.argv[1], os.O_WRONLY), 9999):
                        try:
                            fcntl.ioctl(dst, 0x40204401, struct.pack('=qQQQ', fd, 0, 0, 0))
                            print('ok')
                        except OSError as e:
                            print(e.errno)
                    ro = os.open(sys.argv[2], os.O_RDONLY)
                    try:
                        fcntl.ioctl(ro, 0x40204401, struct.pack('=qQQQ', os.open(sys.argv[1], os.O_RDONLY), 0, 0, 0))
                        print('ok')
                    except OSError as e:
                        print(e.errno)
                    """,
                  src,
                  dst))
          .as(
              "EBADF: a source open for writing only, no such descriptor, a destination open read-only")
          .isEqualTo("9\n9\n9\n");

      // the command: exit code 2 for a usage error, 1 for a refused clone, one line each
      cliFails(2, "not on the same dedupfs mount", src, there);
      cliFails(2, "not on the same dedupfs mount", src, mnt2.resolve("new"));
      cliFails(2, "is not on a dedupfs mount", local, dir.resolve("new"));
      cliFails(2, "is a directory", src, sub);
      cliFails(2, "is a directory", sub, dir.resolve("new"));
      cliFails(1, "Read-only file system", src, inSnapshot);
      cliFails(1, "Read-only file system", src, mnt.resolve(".snapshots/bad-snap/new"));
      cliFails(2, "no such file", dir.resolve("missing"), dst);

      assertThat(TreeSnapshot.of(dir))
          .as("the directory after the refused clones")
          .isEqualTo(before);
      assertThat(TreeSnapshot.of(mnt.resolve(".snapshots/bad-snap"))).isEqualTo(snapBefore);
      assertThat(TreeSnapshot.of(mnt2)).as("the other mount").isEqualTo(otherBefore);
      assertThat(StoreTools.stats(mnt).figuresOnly()).isEqualTo(statsBefore.figuresOnly());
      assertThat(Files.readAllBytes(local)).isEqualTo(new byte[100_000]);
    }
  }

  private static void cliFails(int code, String message, Path src, Path dst) {
    Shell.Result r = Mounted.cli("clone", src.toString(), dst.toString());
    assertThat(r.exitCode()).as("dedupfs clone %s %s\n%s", src, dst, r).isEqualTo(code);
    assertThat(r.stderr())
        .as("dedupfs clone %s %s", src, dst)
        .contains(message)
        .startsWith("dedupfs: ");
    assertThat(r.stderr().strip().lines().count()).as("one line\n%s", r).isEqualTo(1);
    assertThat(r.stdout()).isEmpty();
  }

  /** The height of a file's tree: levels of nodes above its leaves. */
  static int height(long size) {
    int h = 0;
    for (long span = LEAF; span < size; span *= 128) {
      h++;
    }
    return h;
  }
}
