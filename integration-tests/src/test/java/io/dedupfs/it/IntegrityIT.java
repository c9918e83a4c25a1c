package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A block damaged on disk (issue 5): the test writes a file holding a unique 64-byte pattern in one
 * leaf, clones it and snapshots it, unmounts, finds the pattern in data.mdb (once) and flips a byte
 * of it, and mounts again. Reading that leaf from any of the three files gives EIO, buffered and
 * with O_DIRECT, never other bytes; every other range reads right; {@code cat} stops with an error
 * after a correct prefix. {@code dedupfs scrub} exits 1 and names each file and the byte range;
 * {@code dedupfs fsck} exits 1 and names the block. Deleting every file that uses the block frees
 * it: fsck is clean again, and the same bytes written anew read back.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class IntegrityIT {
  static final int LEAF = 16 * 1024;
  static final int DAMAGED_LEAF = 300;
  static final long LEAF_START = (long) DAMAGED_LEAF * LEAF;
  static final int SIZE = 8 << 20;

  @TempDir Path tempDir;

  @Test
  void aDamagedBlockReadsAsEioAndScrubNamesEveryFileAndOffset() throws Exception {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mntDir = tmp.resolve("mnt");
    byte[] data = new byte[SIZE];
    new Random(141).nextBytes(data);
    byte[] pattern = new byte[64];
    new Random(System.nanoTime()).nextBytes(pattern);
    System.arraycopy(
        "dedupfs IntegrityIT damage-me:".getBytes(StandardCharsets.US_ASCII), 0, pattern, 0, 30);
    System.arraycopy(pattern, 0, data, (int) LEAF_START + 1000, 64);
    Path expected = Files.write(tmp.resolve("expected"), data);
    byte[] other = new byte[2 << 20];
    new Random(142).nextBytes(other);
    String leafHash =
        HexFormat.of()
            .formatHex(
                java.security.MessageDigest.getInstance("SHA-256")
                    .digest(Arrays.copyOfRange(data, (int) LEAF_START, (int) LEAF_START + LEAF)));

    try (Mounted m = Mounted.mount(store, mntDir, tmp, "--leaf-size", Integer.toString(LEAF))) {
      Path mnt = m.mountpoint();
      Files.write(mnt.resolve("disk.img"), data);
      Files.write(mnt.resolve("other.img"), other);
      Tools.run("cp", mnt.resolve("disk.img").toString(), mnt.resolve("clone.img").toString());
      cli(0, "snapshot", "create", "s", mnt.resolve("disk.img").toString());
    }

    // the leaf's bytes sit in data.mdb (a full leaf: its value, then a 16-byte key tail); once,
    // unless a page that held it was freed and not reused: change every copy
    Path mdb = store.resolve("data.mdb");
    byte[] file = Files.readAllBytes(mdb);
    List<Integer> at = find(file, pattern);
    assertThat(at).as("places of the pattern in data.mdb").isNotEmpty();
    try (RandomAccessFile f = new RandomAccessFile(mdb.toFile(), "rw")) {
      for (int i : at) {
        f.seek(i + 40);
        f.write(file[i + 40] ^ 0x20);
      }
    }

    try (Mounted m = Mounted.mount(store, mntDir, tmp)) {
      Path mnt = m.mountpoint();
      for (String name : List.of("disk.img", "clone.img", ".snapshots/s/disk.img")) {
        String out = Tools.python(READS, mnt.resolve(name), expected, LEAF_START, LEAF, SIZE);
        assertThat(out.lines().toList())
            .as("reads of %s", name)
            .containsExactly(
                "buffered damaged-leaf EIO",
                "buffered inside-leaf EIO",
                "buffered across-into-leaf EIO-or-right",
                "buffered leaf-before right",
                "buffered leaf-after right",
                "buffered start right",
                "buffered end right",
                "direct damaged-leaf EIO",
                "direct inside-leaf EIO",
                "direct across-into-leaf EIO-or-right",
                "direct leaf-before right",
                "direct leaf-after right",
                "direct start right",
                "direct end right");
        Shell.Result cat =
            Shell.run(
                Duration.ofMinutes(2),
                "sh",
                "-c",
                "cat \"$1\" > \"$2\"",
                "sh",
                mnt.resolve(name).toString(),
                tmp.resolve("cat-out").toString());
        assertThat(cat.exitCode()).as("cat %s", name).isNotZero();
        assertThat(cat.stderr()).contains("Input/output error");
        byte[] got = Files.readAllBytes(tmp.resolve("cat-out"));
        assertThat((long) got.length)
            .as("bytes cat got before the error")
            .isLessThanOrEqualTo(LEAF_START);
        assertThat(got)
            .as("what cat got before the error")
            .isEqualTo(Arrays.copyOf(data, got.length));
      }
      assertThat(Files.readAllBytes(mnt.resolve("other.img"))).isEqualTo(other);

      Shell.Result scrub = cli(1, "scrub", mnt.toString());
      String range = "bytes " + LEAF_START + "-" + (LEAF_START + LEAF - 1);
      assertThat(scrub.stdout())
          .contains(
              "damaged: /disk.img " + range,
              "damaged: /clone.img " + range,
              "damaged: /.snapshots/s/disk.img " + range)
          .doesNotContain("other.img");
      assertThat(scrub.stdout().lines().filter(l -> l.startsWith("damaged: ")).count())
          .isEqualTo(3);
      Shell.Result fsck = cli(1, "fsck", mnt.toString());
      assertThat(fsck.stdout())
          .contains("problem: corrupt block " + leafHash)
          .contains("fsck: 1 problems");
      System.out.println(
          "IntegrityIT: scrub: " + scrub.stdout().lines().filter(l -> !l.contains("%)")).toList());
      System.out.println(
          "IntegrityIT: fsck: " + fsck.stdout().lines().filter(l -> !l.contains("%)")).toList());

      // freeing every reference frees the damaged block; the same bytes then store afresh
      Files.delete(mnt.resolve("disk.img"));
      Files.delete(mnt.resolve("clone.img"));
      cli(0, "snapshot", "delete", "s", mnt.toString());
      assertThat(cli(0, "fsck", mnt.toString()).stdout()).contains("fsck: clean");
      Files.write(mnt.resolve("disk.img"), data);
      assertThat(Tools.sha256Direct(mnt.resolve("disk.img")))
          .isEqualTo(Tools.sha256AndSize(data, SIZE));
      assertThat(cli(0, "scrub", mnt.toString()).stdout()).contains(" 0 damaged");
      m.close();
      assertThat(m.output())
          .contains("corrupt block " + leafHash)
          .doesNotContain("request failed unexpectedly");
    }
  }

  /**
   * argv: FILE EXPECTED LEAF_START LEAF SIZE. Reads the damaged leaf, a part of it, a range that
   * runs into it, its neighbours, the start and the end, buffered and with O_DIRECT; prints "MODE
   * WHAT right|wrong|EIO|EIO-or-right|..." per read.
   */
  static final String READS =
      """
            import errno, mmap, os, sys
            path, expected, start, leaf, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
            want = open(expected, 'rb').read()
            reads = [('damaged-leaf', start, leaf), ('inside-leaf', start + 5000, 100),
                     ('across-into-leaf', start - leaf, 2 * leaf), ('leaf-before', start - leaf, leaf),
                     ('leaf-after', start + leaf, leaf), ('start', 0, 1 << 20), ('end', size - (1 << 20), 1 << 20)]
            for mode, flags in (('buffered', os.O_RDONLY), ('direct', os.O_RDONLY | os.O_DIRECT)):
                fd = os.open(path, flags)
                buf = mmap.mmap(-1, 1 << 20)
                for what, off, n in reads:
                    try:
                        got = os.preadv(fd, [memoryview(buf)[:n]], off)
                        data = bytes(buf[:got])
                        ok = data == want[off:off + got]
                        if what == 'across-into-leaf':
                            print(mode, what, 'EIO-or-right' if ok and got <= leaf else 'wrong %d' % got)
                        else:
                            print(mode, what, 'right' if ok and got == n else 'wrong %d' % got)
                    except OSError as e:
                        name = errno.errorcode.get(e.errno, str(e.errno))
                        print(mode, what, 'EIO-or-right' if what == 'across-into-leaf' and name == 'EIO' else name)
                os.close(fd)
            """;

  private static List<Integer> find(byte[] hay, byte[] needle) {
    List<Integer> out = new java.util.ArrayList<>();
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      if (hay[i] != needle[0]) {
        continue;
      }
      for (int j = 1; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      out.add(i);
    }
    return out;
  }

  private static Shell.Result cli(int expectedCode, String... args) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), args);
    assertThat(r.exitCode())
        .as("dedupfs %s\n%s", String.join(" ", args), r)
        .isEqualTo(expectedCode);
    return r;
  }
}
