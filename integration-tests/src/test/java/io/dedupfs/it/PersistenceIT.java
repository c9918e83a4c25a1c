package io.dedupfs.it;

import static java.nio.file.StandardOpenOption.CREATE_NEW;
import static java.nio.file.StandardOpenOption.WRITE;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a mount shows survives unmount and mount: file contents, modes, owners, the three times,
 * extended attributes, symlinks, hard links, special files, the directory tree and the inode
 * numbers; new files after a remount get inode numbers of their own. A read-only mount shows all of
 * it, refuses every change with EROFS, and leaves the store's data file as it was.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class PersistenceIT {

  @TempDir Path tempDir;

  @Test
  void everythingSurvivesRemountsAndAReadOnlyMountRefusesWrites() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");

    Map<String, String> written;
    Set<Long> inodes;
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      buildTree(m.mountpoint());
      written = TreeSnapshot.of(m.mountpoint());
    }
    assertThat(written).hasSizeGreaterThan(25);

    // 1. the same after a remount, inode numbers included; new files get new numbers
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      assertSameTree(TreeSnapshot.of(m.mountpoint()), written);
      inodes = inodes(written);
      Set<Long> fresh = new HashSet<>();
      for (int i = 0; i < 20; i++) {
        Path p = m.mountpoint().resolve("after-remount-" + i);
        if (i % 2 == 0) {
          Files.writeString(p, "new " + i);
        } else {
          Files.createDirectory(p);
        }
        fresh.add(OperationsIT.ino(p));
      }
      assertThat(fresh).hasSize(20).doesNotContainAnyElementsOf(inodes);
      // 2. changes made after a remount persist too: removals stay removed
      Path mp = m.mountpoint();
      Files.delete(mp.resolve("files/one-byte"));
      Files.delete(mp.resolve("links/second"));
      Tools.run("rm", "-r", mp.resolve("tree/a/b").toString());
      Files.move(mp.resolve("tree"), mp.resolve("renamed-tree"));
      Files.writeString(
          mp.resolve("files/leaf"),
          "appended after remount",
          java.nio.file.StandardOpenOption.APPEND);
      Files.getFileAttributeView(mp.resolve("files/leaf"), UserDefinedFileAttributeView.class)
          .delete("colour");
      written = TreeSnapshot.of(mp);
    }
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      Map<String, String> again = TreeSnapshot.of(m.mountpoint());
      assertSameTree(again, written);
      assertThat(again)
          .doesNotContainKeys("files/one-byte", "links/second", "tree", "renamed-tree/a/b");
    }

    // 3. read-only, with -o ro: everything readable, nothing writable, the store's data untouched
    String dataBefore = Tools.sha256(store.resolve("data.mdb"));
    try (Mounted ro = Mounted.mount(store, mnt, tmp, "-o", "ro")) {
      assertThat(mountOptions(ro.mountpoint())).contains("ro");
      assertSameTree(TreeSnapshot.of(ro.mountpoint()), written);
      assertEveryChangeIsRefusedWithErofs(ro.mountpoint());
      assertSameTree(TreeSnapshot.of(ro.mountpoint()), written);
    }
    assertThat(Tools.sha256(store.resolve("data.mdb")))
        .as("data.mdb after a read-only mount")
        .isEqualTo(dataBefore);
    // --read-only is the same
    try (Mounted ro = Mounted.mount(store, mnt, tmp, "--read-only")) {
      assertThat(mountOptions(ro.mountpoint())).contains("ro");
      assertThat(Tools.sha256(ro.mountpoint().resolve("files/random-1M")))
          .isEqualTo(Tools.sha256(OperationsIT.random(1, (1 << 20) + 3)));
      assertEveryChangeIsRefusedWithErofs(ro.mountpoint());
    }
    assertThat(Tools.sha256(store.resolve("data.mdb"))).isEqualTo(dataBefore);

    // 4. and read-write again afterwards
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      assertSameTree(TreeSnapshot.of(m.mountpoint()), written);
      Files.writeString(m.mountpoint().resolve("writable-again"), "yes");
      assertThat(Files.readString(m.mountpoint().resolve("writable-again"))).isEqualTo("yes");
    }
  }

  /**
   * With the writeback cache the kernel keeps file sizes and times itself and hands the data over
   * later: what it showed before the unmount is what the next mount shows.
   */
  @Test
  void whatAWritebackCacheMountShowedSurvivesARemount() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store-wb");
    Path mnt = tmp.resolve("mnt-wb");
    Map<String, String> shown;
    try (Mounted m = Mounted.mount(store, mnt, tmp, "-o", "writeback_cache")) {
      Path root = m.mountpoint();
      buildTree(root);
      // small unaligned writes into the middle of files, left to the kernel's cache
      try (FileChannel ch = FileChannel.open(root.resolve("files/random-1M"), WRITE)) {
        for (int i = 0; i < 200; i++) {
          ch.write(ByteBuffer.wrap(OperationsIT.random(i, 1 + i * 7)), i * 5003L);
        }
      }
      try (FileChannel ch = FileChannel.open(root.resolve("files/grown"), CREATE_NEW, WRITE)) {
        ch.write(ByteBuffer.wrap(OperationsIT.random(77, 3000)), 1_000_000);
        // explicit times on an open file with cached writes: the explicit ones win
        Files.getFileAttributeView(root.resolve("files/grown"), BasicFileAttributeView.class)
            .setTimes(FileTime.from(Instant.parse("2005-05-05T05:05:05.555555555Z")), null, null);
      }
      shown = TreeSnapshot.of(root);
      assertThat(shown.get("files/grown"))
          .contains("size=1003000", "mtime=2005-05-05T05:05:05.555555555Z");
    }
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      Map<String, String> after = TreeSnapshot.of(m.mountpoint());
      // Known bug (engine): with the writeback cache the kernel keeps a regular file's ctime
      // and sends it in setattr (FATTR_CTIME) when it writes the times back, but
      // SetAttributes has no ctime, so the store records the time of that setattr instead:
      // a few milliseconds later than what stat showed. Compared without it, and checked
      // to be no earlier.
      assertSameTree(withoutCtime(after), withoutCtime(shown));
      for (var e : shown.entrySet()) {
        assertThat(ctime(after.get(e.getKey())))
            .as("ctime of %s", e.getKey())
            .isAfterOrEqualTo(ctime(e.getValue()));
      }
    }
  }

  private static Map<String, String> withoutCtime(Map<String, String> tree) {
    Map<String, String> m = new TreeMap<>();
    tree.forEach((k, v) -> m.put(k, v.replaceAll(" ctime=\\S+", "")));
    return m;
  }

  private static Instant ctime(String description) {
    return Instant.parse(description.replaceAll(".* ctime=(\\S+).*", "$1"));
  }

  /**
   * Files of the sizes around a leaf, sparse and duplicate files, every kind of inode and
   * attribute.
   */
  private static void buildTree(Path root) throws IOException {
    Path files = Files.createDirectory(root.resolve("files"));
    Files.write(files.resolve("empty"), new byte[0]);
    Files.write(files.resolve("one-byte"), new byte[] {42});
    for (int n : new int[] {4095, 16383, 16384, 16385, 65537}) {
      Files.write(files.resolve("size-" + n), OperationsIT.random(n, n));
    }
    Files.write(files.resolve("random-1M"), OperationsIT.random(1, (1 << 20) + 3));
    Files.write(files.resolve("duplicate-1M"), OperationsIT.random(1, (1 << 20) + 3));
    try (FileChannel ch = FileChannel.open(files.resolve("sparse-8M"), CREATE_NEW, WRITE)) {
      ch.write(ByteBuffer.wrap(OperationsIT.random(2, 70_000)), 5);
      ch.write(ByteBuffer.wrap(OperationsIT.random(3, 10_000)), (8 << 20) - 10_000);
    }
    Files.writeString(files.resolve("naïve ✓ файл.txt"), "unicode name\n");
    Files.writeString(files.resolve("n".repeat(255)), "longest name\n");

    // modes, owners, times
    Path leaf = files.resolve("leaf");
    Files.writeString(leaf, "leaf\n");
    Tools.run("chmod", "4755", files.resolve("size-4095").toString());
    Tools.run("chmod", "0400", files.resolve("size-16383").toString());
    Tools.run("chown", "1234:5678", files.resolve("size-16384").toString());
    Files.getFileAttributeView(files.resolve("size-16385"), BasicFileAttributeView.class)
        .setTimes(
            FileTime.from(Instant.parse("2001-02-03T04:05:06.123456789Z")),
            FileTime.from(Instant.parse("2011-12-13T14:15:16.987654321Z")),
            null);
    Tools.run(
        "touch", "-m", "-d", "1960-06-01 12:00:00.25 UTC", files.resolve("size-65537").toString());

    // extended attributes on a file and a directory
    UserDefinedFileAttributeView x =
        Files.getFileAttributeView(leaf, UserDefinedFileAttributeView.class);
    x.write("colour", StandardCharsets.UTF_8.encode("blue"));
    x.write("binary", ByteBuffer.wrap(new byte[] {0, 1, 2, (byte) 255, 0}));
    x.write("empty", ByteBuffer.allocate(0));
    Files.getFileAttributeView(files, UserDefinedFileAttributeView.class)
        .write("on-dir", StandardCharsets.UTF_8.encode("dir value"));

    // a directory tree with modes and owners of its own
    Path tree = Files.createDirectories(root.resolve("tree/a/b/c"));
    Files.writeString(tree.resolve("deep.txt"), "deep\n");
    Tools.run("chmod", "0711", root.resolve("tree/a").toString());
    Tools.run("chmod", "1777", root.resolve("tree/a/b").toString());
    Files.createDirectory(root.resolve("tree/empty"));
    Tools.run("chown", "1000:1000", root.resolve("tree/empty").toString());
    Files.setPosixFilePermissions(
        root.resolve("tree/empty"), PosixFilePermissions.fromString("rwx------"));

    // symlinks and hard links
    Path links = Files.createDirectory(root.resolve("links"));
    Files.createSymbolicLink(links.resolve("relative"), Path.of("../files/leaf"));
    Files.createSymbolicLink(links.resolve("absolute"), root.resolve("files/random-1M"));
    Files.createSymbolicLink(links.resolve("dangling"), Path.of("nowhere/at/all"));
    Tools.run("chown", "-h", "7:8", links.resolve("dangling").toString());
    Files.writeString(links.resolve("first"), "linked\n");
    Files.createLink(links.resolve("second"), links.resolve("first"));
    Files.createLink(root.resolve("tree/a/third"), links.resolve("first"));

    // special files
    Path special = Files.createDirectory(root.resolve("special"));
    Tools.run("mkfifo", "-m", "0620", special.resolve("fifo").toString());
    Tools.run("mknod", special.resolve("null").toString(), "c", "1", "3");
    Tools.run("mknod", special.resolve("block").toString(), "b", "8", "1");

    // times of directories set last, so that nothing below changes them again
    Tools.run(
        "touch", "-d", "1999-12-31 23:59:59.999999999 UTC", root.resolve("tree/empty").toString());
  }

  private static void assertEveryChangeIsRefusedWithErofs(Path root) {
    String out =
        Tools.python(
            """
                import errno, os, sys
                os.chdir(sys.argv[1])
                attempts = {
                    'create': lambda: os.open('files/new', os.O_CREAT | os.O_WRONLY, 0o644),
                    'open_for_write': lambda: os.open('files/leaf', os.O_WRONLY),
                    'open_truncate': lambda: os.open('files/leaf', os.O_RDONLY | os.O_TRUNC),
                    'mkdir': lambda: os.mkdir('newdir'),
                    'rmdir': lambda: os.rmdir('renamed-tree/empty'),
                    'unlink': lambda: os.unlink('files/leaf'),
                    'rename': lambda: os.rename('files/leaf', 'files/leaf2'),
                    'link': lambda: os.link('files/leaf', 'files/leaf3'),
                    'symlink': lambda: os.symlink('x', 'files/symlink'),
                    'mkfifo': lambda: os.mkfifo('files/fifo'),
                    'chmod': lambda: os.chmod('files/leaf', 0o600),
                    'chown': lambda: os.chown('files/leaf', 1, 1),
                    'utime': lambda: os.utime('files/leaf', (1, 1)),
                    'truncate': lambda: os.truncate('files/leaf', 0),
                    'setxattr': lambda: os.setxattr('files/leaf', 'user.new', b'1'),
                    'removexattr': lambda: os.removexattr('files/leaf', 'user.colour'),
                }
                for name, attempt in attempts.items():
                    try:
                        attempt()
                        print(name, 'OK')
                    except OSError as e:
                        print(name, errno.errorcode[e.errno])
                """,
            root);
    List<String> notErofs = new ArrayList<>();
    out.lines().filter(l -> !l.endsWith(" EROFS")).forEach(notErofs::add);
    assertThat(out.lines().count()).isEqualTo(16);
    assertThat(notErofs).as("changes on a read-only mount that did not fail with EROFS").isEmpty();
    // and java.nio sees a read-only file store
    try {
      assertThat(Files.getFileStore(root).isReadOnly()).isTrue();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  private static Set<Long> inodes(Map<String, String> tree) {
    Set<Long> s = new TreeSet<>();
    tree.values()
        .forEach(
            v -> {
              String ino = v.replaceAll(".* ino=(\\d+) .*", "$1");
              s.add(Long.parseLong(ino));
            });
    return s;
  }

  /** Mount options of the topmost mount on {@code mnt} (from /proc/self/mountinfo). */
  private static List<String> mountOptions(Path mnt) {
    for (String line : Tools.run("cat", "/proc/self/mountinfo").lines().toList()) {
      String[] f = line.split(" ");
      if (f[4].equals(mnt.toString()) && line.contains(" - " + Mounted.FSTYPE + " ")) {
        return List.of(f[5].split(","));
      }
    }
    throw new AssertionError(mnt + " not in mountinfo");
  }

  /** Equal trees, or a failure that lists only the paths that differ. */
  static void assertSameTree(Map<String, String> actual, Map<String, String> expected) {
    Map<String, String> diff = new TreeMap<>();
    for (String k : new TreeSet<>(union(actual.keySet(), expected.keySet()))) {
      String a = actual.get(k);
      String e = expected.get(k);
      if (a == null || !a.equals(e)) {
        diff.put(k, "\n    expected: " + e + "\n    actual:   " + a);
      }
    }
    assertThat(diff).as("paths whose stat, content, link or xattrs differ").isEmpty();
  }

  private static Set<String> union(Set<String> a, Set<String> b) {
    Set<String> s = new HashSet<>(a);
    s.addAll(b);
    return s;
  }
}
