package io.dedupfs.fs;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.fs.Kernel.O_RDONLY;
import static io.dedupfs.fs.Kernel.O_RDWR;
import static io.dedupfs.fs.Kernel.O_WRONLY;
import static io.dedupfs.fs.Kernel.random;
import static io.dedupfs.fs.fuse.FuseOperations.FALLOC_FL_KEEP_SIZE;
import static io.dedupfs.fs.fuse.FuseOperations.FALLOC_FL_PUNCH_HOLE;
import static io.dedupfs.fs.fuse.FuseOperations.FALLOC_FL_ZERO_RANGE;
import static io.dedupfs.fs.fuse.FuseOperations.SEEK_DATA;
import static io.dedupfs.fs.fuse.FuseOperations.SEEK_HOLE;
import static io.dedupfs.fs.fuse.FuseOperations.XATTR_CREATE;
import static io.dedupfs.fs.fuse.FuseOperations.XATTR_REPLACE;
import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.fs.Kernel.Listed;
import io.dedupfs.fs.Kernel.Model;
import io.dedupfs.fs.Kernel.Open;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.Statfs;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter's answers to single requests on a real store, without a kernel: extended attributes,
 * fallocate, lseek, ioctl, readdir offsets, handles and statfs.
 */
class FileOperationsTest {
  @TempDir Path dir;
  Kernel k;

  @BeforeEach
  void mount() throws Exception {
    k = Kernel.mount(dir.resolve("store"));
  }

  @AfterEach
  void unmount() throws Exception {
    k.close();
  }

  // ---- extended attributes

  @Test
  void xattrsAreSetReadListedAndRemovedWithCreateAndReplaceErrors() throws Exception {
    long f = k.cpFromOutside(ascii("x"), ROOT, "f");
    long d = k.mkdir(ROOT, "d");

    k.fs.setxattr(f, "user.a", ascii("one"), 0);
    k.fs.setxattr(f, "user.empty", new byte[0], 0);
    k.fs.setxattr(f, "user.large", random(1, 64 * 1024), 0);
    k.fs.setxattr(d, "user.on-dir", ascii("dir value"), 0);
    assertThat(k.fs.getxattr(f, "user.a")).isEqualTo(ascii("one"));
    assertThat(k.fs.getxattr(f, "user.empty")).isEmpty();
    assertThat(k.fs.getxattr(f, "user.large")).isEqualTo(random(1, 64 * 1024));
    assertThat(k.fs.listxattr(f)).containsExactlyInAnyOrder("user.a", "user.empty", "user.large");
    assertThat(k.fs.listxattr(d)).containsExactly("user.on-dir");

    // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one
    assertThat(k.errno(() -> k.fs.setxattr(f, "user.a", ascii("two"), XATTR_CREATE)))
        .isEqualTo(Errnos.EEXIST);
    assertThat(k.errno(() -> k.fs.setxattr(f, "user.b", ascii("two"), XATTR_REPLACE)))
        .isEqualTo(Errnos.ENODATA);
    k.fs.setxattr(f, "user.a", ascii("two"), XATTR_REPLACE);
    k.fs.setxattr(f, "user.b", ascii("new"), XATTR_CREATE);
    assertThat(k.fs.getxattr(f, "user.a")).isEqualTo(ascii("two"));
    assertThat(k.fs.getxattr(f, "user.b")).isEqualTo(ascii("new"));

    k.fs.removexattr(f, "user.large");
    assertThat(k.errno(() -> k.fs.getxattr(f, "user.large"))).isEqualTo(Errnos.ENODATA);
    assertThat(k.errno(() -> k.fs.removexattr(f, "user.large"))).isEqualTo(Errnos.ENODATA);
    assertThat(k.errno(() -> k.fs.getxattr(f, "user.never"))).isEqualTo(Errnos.ENODATA);
    assertThat(k.fs.listxattr(f)).containsExactlyInAnyOrder("user.a", "user.empty", "user.b");
    k.fs.removexattr(d, "user.on-dir");
    assertThat(k.fs.listxattr(d)).isEmpty();

    // limits: names of up to 255 bytes, values of up to 64 KiB
    k.fs.setxattr(f, "user." + "n".repeat(250), ascii("v"), 0);
    assertThat(k.errno(() -> k.fs.setxattr(f, "user." + "n".repeat(251), ascii("v"), 0)))
        .isEqualTo(Errnos.ENAMETOOLONG);
    assertThat(k.errno(() -> k.fs.setxattr(f, "user.huge", new byte[64 * 1024 + 1], 0)))
        .isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> k.fs.listxattr(12345))).isEqualTo(Errnos.ENOENT);
  }

  /** What setxattr, getxattr and removexattr answer for a name in each namespace: 0 for success. */
  private record Namespace(String name, int set, int get, int remove) {}

  /**
   * The xattr namespaces, in one place: user.* is stored; trusted.*, security.*, system.* (ACLs)
   * and unknown namespaces are refused with EOPNOTSUPP, and reading or removing them answers
   * ENODATA. Update the table when a namespace becomes storable.
   */
  @Test
  void xattrNamespacesUserTrustedAndSecurityAreStoredOthersRefused() throws Exception {
    long f = k.cpFromOutside(ascii("x"), ROOT, "f");
    int ok = 0;
    List<Namespace> table =
        List.of(
            new Namespace("user.name", ok, ok, ok),
            new Namespace("trusted.libvirt.security.dac", ok, ok, ok),
            new Namespace("security.name", ok, ok, ok),
            new Namespace("security.capability", ok, ok, ok),
            new Namespace("trusted.", Errnos.EOPNOTSUPP, Errnos.ENODATA, Errnos.ENODATA),
            new Namespace(
                "system.posix_acl_access", Errnos.EOPNOTSUPP, Errnos.ENODATA, Errnos.ENODATA),
            new Namespace("other.name", Errnos.EOPNOTSUPP, Errnos.ENODATA, Errnos.ENODATA));
    List<String> stored = new ArrayList<>();
    for (Namespace n : table) {
      byte[] value = ascii("value of " + n.name());
      assertThat(k.result(() -> k.fs.setxattr(f, n.name(), value, 0)))
          .as("setxattr %s", n.name())
          .isEqualTo(n.set());
      byte[][] got = new byte[1][];
      assertThat(k.result(() -> got[0] = k.fs.getxattr(f, n.name())))
          .as("getxattr %s", n.name())
          .isEqualTo(n.get());
      if (n.get() == ok) {
        assertThat(got[0]).as("value of %s", n.name()).isEqualTo(value);
      }
      if (n.set() == ok) {
        stored.add(n.name());
      }
    }
    assertThat(k.fs.listxattr(f)).containsExactlyInAnyOrderElementsOf(stored);
    for (Namespace n : table) {
      assertThat(k.result(() -> k.fs.removexattr(f, n.name())))
          .as("removexattr %s", n.name())
          .isEqualTo(n.remove());
    }
    assertThat(k.fs.listxattr(f)).isEmpty();
  }

  @Test
  void theSpaceFiguresAreComputedReadOnlyAndNotListed() throws Exception {
    // eight copies of one 16 KiB leaf: stored once
    byte[] leaf = random(2, 16 * 1024);
    byte[] data = new byte[8 * leaf.length];
    for (int i = 0; i < 8; i++) {
      System.arraycopy(leaf, 0, data, i * leaf.length, leaf.length);
    }
    long f = k.cpFromOutside(data, ROOT, "f");
    long d = k.mkdir(ROOT, "d");
    k.cpFromOutside(random(3, 10_000), d, "g");

    long logical = figure(f, "logical");
    long stored = figure(f, "stored");
    assertThat(logical).isEqualTo(data.length);
    assertThat(stored).isBetween((long) leaf.length, (long) 2 * leaf.length);
    assertThat(figure(f, "exclusive")).isEqualTo(stored);
    assertThat(figure(f, "shared")).isZero();
    int leafData = leaf.length;
    while (leaf[leafData - 1] == 0) {
      leafData--;
    }
    long referenced = figure(f, "referenced");
    assertThat(referenced).as("the leaf once per reference").isEqualTo(8L * leafData);
    assertThat(text(k.fs.getxattr(f, DedupFs.FIGURES + "ratio")))
        .isEqualTo(String.format(Locale.ROOT, "%.3f", (double) referenced / stored));
    long compressed = figure(f, "compressed");
    assertThat(compressed).isPositive().isLessThanOrEqualTo(stored);
    assertThat(text(k.fs.getxattr(f, DedupFs.FIGURES + "compressratio")))
        .isEqualTo(String.format(Locale.ROOT, "%.3f", (double) stored / compressed));
    assertThat(figure(d, "logical")).isEqualTo(10_000);
    assertThat(figure(ROOT, "logical")).isEqualTo(data.length + 10_000);

    assertThat(k.errno(() -> k.fs.getxattr(f, DedupFs.FIGURES + "unknown")))
        .isEqualTo(Errnos.ENODATA);
    assertThat(k.errno(() -> k.fs.setxattr(f, DedupFs.FIGURES + "logical", ascii("1"), 0)))
        .isEqualTo(Errnos.EPERM);
    assertThat(k.errno(() -> k.fs.setxattr(f, DedupFs.FIGURES + "mine", ascii("1"), 0)))
        .isEqualTo(Errnos.EPERM);
    assertThat(k.fs.listxattr(f)).isEmpty();
  }

  // ---- fallocate and lseek

  @Test
  void fallocatePunchesHolesZeroesRangesAndAllocates() throws Exception {
    Model model = new Model();
    model.write(0, random(4, 300_007));
    long ino = k.cpFromOutside(model.bytes(), ROOT, "f");
    Open f = k.open(ino, O_RDWR);

    // punch a hole (unaligned): zeros there, size unchanged, neighbours intact
    fallocate(f, model, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5000, 70_000);
    // zero a range inside the file, then one across the end (the file grows)
    fallocate(f, model, FALLOC_FL_ZERO_RANGE, 100_001, 99_999);
    fallocate(f, model, FALLOC_FL_ZERO_RANGE, 299_000, 100_000);
    assertThat(model.size()).isEqualTo(399_000);
    // zero a range past the end with KEEP_SIZE: nothing visible changes
    fallocate(f, model, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 500_000, 100_000);
    // allocate past the end: the file grows with zeros; with KEEP_SIZE it does not
    fallocate(f, model, 0, 399_000, 100_001);
    fallocate(f, model, FALLOC_FL_KEEP_SIZE, 800_000, 65_536);
    // allocate inside the file: the data stays
    fallocate(f, model, 0, 0, 1000);
    // punch a hole across the end: the size stays
    fallocate(f, model, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 499_000, 100_000);
    assertThat(model.size()).isEqualTo(499_001);

    // modes the store does not do, and empty ranges
    int collapseRange = 0x08;
    assertThat(k.errno(() -> k.fs.fallocate(ino, f.fh(), collapseRange, 0, 16384)))
        .isEqualTo(Errnos.EOPNOTSUPP);
    assertThat(k.errno(() -> k.fs.fallocate(ino, f.fh(), 0, 0, 0))).isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> k.fs.fallocate(ino, f.fh(), 0, -1, 10))).isEqualTo(Errnos.EINVAL);
    k.close(f);
    assertThat(k.contents(ino)).isEqualTo(model.bytes());
  }

  /** One fallocate request, applied to the model too; the file must then match the model. */
  private void fallocate(Open f, Model model, int mode, long offset, long length) throws Exception {
    k.fs.fallocate(f.ino(), f.fh(), mode, offset, length);
    if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0) {
      model.zero(offset, length);
    }
    if ((mode & FALLOC_FL_KEEP_SIZE) == 0 && offset + length > model.size()) {
      model.resize(offset + length);
    }
    assertThat(k.fstat(f).size())
        .as("size after fallocate %d at %d+%d", mode, offset, length)
        .isEqualTo(model.size());
    assertThat(k.readAll(f))
        .as("contents after fallocate %d at %d+%d", mode, offset, length)
        .isEqualTo(model.bytes());
  }

  @Test
  void lseekFindsDataAndHoles() throws Exception {
    Open f = k.create(ROOT, "sparse", 0644, O_RDWR);
    k.write(f, 0, random(5, 65_536));
    k.write(f, 1 << 20, random(6, 65_536));
    k.write(f, (2 << 20) - 1, new byte[] {7});

    // data extents are whole 16 KiB leaves; between them are holes, and EOF ends a virtual hole
    long[][] expected = {
      {0, 0, 65_536},
      {1000, 1000, 65_536},
      {65_536, 1 << 20, 65_536},
      {70_000, 1 << 20, 70_000},
      {1 << 20, 1 << 20, (1 << 20) + 65_536},
      {(1 << 20) + 65_536, (2 << 20) - 16_384, (1 << 20) + 65_536},
      {(2 << 20) - 1, (2 << 20) - 1, 2 << 20},
      {2 << 20, -1, -1},
      {3 << 20, -1, -1}
    };
    for (long[] e : expected) {
      assertThat(new long[] {e[0], k.lseek(f, e[0], SEEK_DATA), k.lseek(f, e[0], SEEK_HOLE)})
          .as("SEEK_DATA and SEEK_HOLE from %d", e[0])
          .containsExactly(e);
    }
    // a punched hole becomes a hole; a file without holes has only the virtual one at EOF
    k.fs.fallocate(f.ino(), f.fh(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 16_384, 16_384);
    assertThat(k.lseek(f, 0, SEEK_HOLE)).isEqualTo(16_384);
    assertThat(k.lseek(f, 16_384, SEEK_DATA)).isEqualTo(32_768);
    long dense = k.cpFromOutside(random(7, 100_001), ROOT, "dense");
    Open g = k.open(dense, O_RDONLY);
    assertThat(k.lseek(g, 0, SEEK_DATA)).isZero();
    assertThat(k.lseek(g, 0, SEEK_HOLE)).isEqualTo(100_001);
    // the kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself: anything else is EINVAL here
    assertThat(k.errno(() -> k.fs.lseek(dense, g.fh(), 0, 0))).isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> k.fs.lseek(dense, g.fh(), -1, SEEK_DATA))).isEqualTo(Errnos.EINVAL);
    k.close(g);
    k.close(f);
  }

  @Test
  void copyFileRangeCopiesPartsAndStopsAtTheSourcesEnd() throws Exception {
    byte[] a = random(11, 200_003);
    long src = k.cpFromOutside(a, ROOT, "a");
    Model model = new Model();
    model.write(0, random(12, 50_000));
    long dst = k.cpFromOutside(model.bytes(), ROOT, "b");
    Open in = k.open(src, O_RDONLY);
    Open out = k.open(dst, O_WRONLY);

    // unaligned, into the middle; then beyond the end of the destination (it grows, with a hole)
    assertThat(k.fs.copyFileRange(src, in.fh(), 1234, dst, out.fh(), 777, 30_000, 0))
        .isEqualTo(30_000);
    model.write(777, Arrays.copyOfRange(a, 1234, 31_234));
    assertThat(k.fs.copyFileRange(src, in.fh(), 16_384, dst, out.fh(), 100_000 + 16_384, 65_536, 0))
        .isEqualTo(65_536);
    model.write(100_000 + 16_384, Arrays.copyOfRange(a, 16_384, 81_920));
    // at the source's end the count is short, past it zero
    assertThat(k.fs.copyFileRange(src, in.fh(), 200_000, dst, out.fh(), 0, 100, 0)).isEqualTo(3);
    model.write(0, Arrays.copyOfRange(a, 200_000, 200_003));
    assertThat(k.fs.copyFileRange(src, in.fh(), 200_003, dst, out.fh(), 0, 100, 0)).isZero();
    assertThat(k.fs.copyFileRange(src, in.fh(), 300_000, dst, out.fh(), 0, 100, 0)).isZero();
    k.close(out);
    k.close(in);

    assertThat(k.getattr(dst).size()).isEqualTo(model.size());
    assertThat(k.contents(dst)).isEqualTo(model.bytes());
    assertThat(k.contents(src)).isEqualTo(a);
  }

  @Test
  void randomRequestsOnOneFileMatchAModel() throws Exception {
    Random r = new Random(13);
    Model model = new Model();
    Open f = k.create(ROOT, "f", 0644, O_RDWR);
    for (int op = 0; op < 300; op++) {
      long at = r.nextInt(1 << 20);
      int len = 1 + r.nextInt(100_000);
      switch (r.nextInt(6)) {
        case 0, 1 -> {
          byte[] data = random(r.nextLong(), len);
          k.write(f, at, data, 1 + r.nextInt(1 << 20));
          model.write(at, data);
        }
        case 2 -> {
          k.setattr(f.ino(), Kernel.size(at, f));
          model.resize(at);
        }
        case 3 -> {
          k.fs.fallocate(f.ino(), f.fh(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len);
          model.zero(at, len);
        }
        case 4 -> k.fs.flush(f.ino(), f.fh());
        default -> {
          int n = (int) Math.max(0, Math.min(len, model.size() - at));
          assertThat(k.read(f, at, len))
              .as("read %d+%d after %d requests", at, len, op)
              .isEqualTo(
                  Arrays.copyOfRange(
                      model.bytes(),
                      (int) Math.min(at, model.size()),
                      (int) Math.min(at, model.size()) + n));
        }
      }
      assertThat(k.fstat(f).size()).as("size after %d requests", op).isEqualTo(model.size());
    }
    k.close(f);
    assertThat(k.contents(f.ino())).isEqualTo(model.bytes());
  }

  // ---- ioctl

  @Test
  void theCloneIoctlChecksItsArgumentAndUnknownIoctlsGetEnotty() throws Exception {
    long src = k.cpFromOutside(random(8, 50_000), ROOT, "src");
    Open dst = k.create(ROOT, "dst", 0644, O_WRONLY);
    Open ro = k.open(src, O_RDONLY);

    // FS_IOC_FSGETXATTR, TCGETS, BLKSSZGET, FS_IOC_GETFLAGS, on a file and on a directory
    Open root = k.opendir(ROOT);
    for (int cmd : new int[] {Kernel.FS_IOC_FSGETXATTR, 0x5401, 0x1268, 0x80086601}) {
      assertThat(k.errno(() -> ioctl(dst, cmd, new byte[64])))
          .as("ioctl 0x%x", cmd)
          .isEqualTo(Errnos.ENOTTY);
      assertThat(k.errno(() -> ioctl(root, cmd, new byte[64])))
          .as("ioctl 0x%x", cmd)
          .isEqualTo(Errnos.ENOTTY);
    }
    // the clone: the destination must be open for writing, the argument 32 bytes of non-negative
    // numbers
    assertThat(k.errno(() -> ioctl(ro, CloneIoctl.CMD, clone(0, 0, 0, 0)))).isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, new byte[16]))).isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, clone(-1, 0, 0, 0))))
        .isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, clone(0, -5, 0, 0))))
        .isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, clone(0, 0, 0, -5))))
        .isEqualTo(Errnos.EINVAL);
    // the source descriptor is looked up in the caller's /proc/PID/fd: a missing one is EBADF,
    // one on another filesystem EXDEV (a successful clone needs a mount: see CloneIT)
    assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, clone(Integer.MAX_VALUE, 0, 0, 0))))
        .isEqualTo(Errnos.EBADF);
    Path outside = Files.writeString(dir.resolve("outside"), "outside");
    try (FileChannel ch = FileChannel.open(outside, StandardOpenOption.READ)) {
      long fd = descriptorOf(outside);
      assertThat(k.errno(() -> ioctl(dst, CloneIoctl.CMD, clone(fd, 0, 0, 0))))
          .isEqualTo(Errnos.EXDEV);
    }
    assertThat(k.getattr(dst.ino()).size()).isZero();
    k.fs.releasedir(ROOT, root.fh());
    k.close(ro);
    k.close(dst);
  }

  private void ioctl(Open f, int cmd, byte[] in) throws Exception {
    k.fs.ioctl(Kernel.CALLER, f.ino(), f.fh(), cmd, 0, 0, in, 0);
  }

  /** {@code struct dedupfs_clone_range}. */
  private static byte[] clone(long srcFd, long srcOffset, long srcLength, long dstOffset) {
    return ByteBuffer.allocate(CloneIoctl.SIZE)
        .order(ByteOrder.nativeOrder())
        .putLong(srcFd)
        .putLong(srcOffset)
        .putLong(srcLength)
        .putLong(dstOffset)
        .array();
  }

  /** A descriptor of this process open on {@code file}. */
  private static long descriptorOf(Path file) throws Exception {
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      for (Path fd : (Iterable<Path>) fds::iterator) {
        try {
          if (Files.readSymbolicLink(fd).equals(file.toRealPath())) {
            return Long.parseLong(fd.getFileName().toString());
          }
        } catch (IOException e) {
          // the descriptor of the listing itself, closed meanwhile
        }
      }
    }
    throw new AssertionError("no descriptor open on " + file);
  }

  // ---- directories, handles, statfs

  @Test
  void readdirContinuesFromEachOffsetAndListsEveryNameOnce() throws Exception {
    long d = k.mkdir(ROOT, "d");
    Set<String> names = new HashSet<>();
    for (int i = 0; i < 300; i++) { // more than DedupFs fetches from the store at once (256)
      String name = "entry-" + i;
      k.fs.mknod(Kernel.CALLER, d, name, Attr.S_IFREG | 0644, 0);
      names.add(name);
    }
    k.fs.symlink(Kernel.CALLER, "target", d, "link");
    names.add("link");

    for (int room : new int[] {1, 7, 100, 1000}) {
      List<Listed> all = k.readdir(d, room);
      assertThat(all.subList(0, 2)).extracting(Listed::name).containsExactly(".", "..");
      assertThat(all.get(0).ino()).isEqualTo(d);
      assertThat(all.get(1).ino()).isEqualTo(ROOT);
      assertThat(all.subList(2, all.size()))
          .extracting(Listed::name)
          .containsExactlyInAnyOrderElementsOf(names);
      assertThat(all).extracting(Listed::nextOffset).doesNotHaveDuplicates().doesNotContain(0L);
      assertThat(all)
          .filteredOn(e -> e.name().equals("link"))
          .extracting(e -> e.mode() & Attr.S_IFMT)
          .containsExactly(Attr.S_IFLNK);
    }

    // a listing resumed after names were removed lists each remaining name once
    Open h = k.opendir(d);
    List<Listed> first = k.readdirOnce(h, 0, 50);
    for (Listed e : first.subList(2, 20)) {
      k.fs.unlink(d, e.name());
      names.remove(e.name());
    }
    String notListedYet =
        names.stream()
            .filter(n -> first.stream().noneMatch(e -> e.name().equals(n)))
            .findFirst()
            .orElseThrow();
    k.fs.unlink(d, notListedYet);
    names.remove(notListedYet);
    List<String> rest = new ArrayList<>();
    long offset = first.get(first.size() - 1).nextOffset();
    for (List<Listed> reply; !(reply = k.readdirOnce(h, offset, 64)).isEmpty(); ) {
      reply.forEach(e -> rest.add(e.name()));
      offset = reply.get(reply.size() - 1).nextOffset();
    }
    first.subList(20, first.size()).forEach(e -> rest.add(e.name()));
    assertThat(rest).containsExactlyInAnyOrderElementsOf(names);
    k.fs.releasedir(d, h.fh());

    long file = k.lookup(d, "entry-0");
    assertThat(k.errno(() -> k.fs.opendir(file, O_RDONLY))).isEqualTo(Errnos.ENOTDIR);
    assertThat(k.errno(() -> k.fs.rmdir(ROOT, "d"))).isEqualTo(Errnos.ENOTEMPTY);
  }

  @Test
  void requestsOnUnknownHandlesGetEbadf() throws Exception {
    long ino = k.cpFromOutside(random(9, 1000), ROOT, "f");
    Open f = k.open(ino, O_RDWR);
    k.close(f);
    long fh = f.fh();

    assertThat(k.errno(() -> k.fs.read(ino, fh, 0, ByteBuffer.allocate(10))))
        .isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> k.fs.write(Kernel.CALLER, ino, fh, 0, ByteBuffer.allocate(10))))
        .isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> k.fs.flush(ino, fh))).isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> k.fs.fallocate(ino, fh, 0, 0, 10))).isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> k.fs.copyFileRange(ino, fh, 0, ino, fh, 2000, 10, 0)))
        .isEqualTo(Errnos.EBADF);
    assertThat(k.errno(() -> k.fs.readdir(ROOT, fh, 0, (n, i, m, o) -> true)))
        .isEqualTo(Errnos.EBADF);
    assertThat(
            k.errno(
                () -> k.fs.ioctl(Kernel.CALLER, ino, fh, CloneIoctl.CMD, 0, 0, new byte[32], 0)))
        .isEqualTo(Errnos.EBADF);
    // copy_file_range: no flags, and no overlap within one file
    Open g = k.open(ino, O_RDWR);
    assertThat(k.errno(() -> k.fs.copyFileRange(ino, g.fh(), 0, ino, g.fh(), 5000, 10, 1)))
        .isEqualTo(Errnos.EINVAL);
    assertThat(k.errno(() -> k.fs.copyFileRange(ino, g.fh(), 0, ino, g.fh(), 500, 1000, 0)))
        .isEqualTo(Errnos.EINVAL);
    k.close(g);
    assertThat(k.contents(ino)).isEqualTo(random(9, 1000));
  }

  @Test
  void statfsShowsTheStoreAndLargeFixedInodeCounts() throws Exception {
    k.cpFromOutside(random(10, 100_000), ROOT, "f");
    Statfs s = k.fs.statfs(ROOT);
    assertThat(s.blockSize()).isEqualTo(Kernel.PIECE);
    assertThat(s.fragmentSize()).isEqualTo(4096);
    assertThat(s.blocks()).isGreaterThan(s.blocksFree());
    assertThat(s.blocksAvail()).isEqualTo(s.blocksFree());
    assertThat(s.files()).isEqualTo(1L << 32);
    assertThat(s.filesFree()).isEqualTo((1L << 32) - 2);
    assertThat(s.nameMax()).isEqualTo(255);
  }

  private long figure(long ino, String name) throws Exception {
    return Long.parseLong(text(k.fs.getxattr(ino, DedupFs.FIGURES + name)));
  }

  private static String text(byte[] b) {
    return new String(b, StandardCharsets.US_ASCII);
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }
}
