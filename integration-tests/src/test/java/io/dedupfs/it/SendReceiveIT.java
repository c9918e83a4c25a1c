package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Replication (issue 13) on real mounts, driven by {@code dedupfs send} and {@code dedupfs
 * receive}: a whole snapshot through a pipe into a mounted store and through a file into an
 * unmounted one comes out equal (bytes, holes, modes, owners, times, extended attributes, hard
 * links, symlinks, a fifo); an incremental stream after 1 MiB of random changes in a 4 GiB image
 * (256 MiB of it data) stays under 1.2 MiB; a two-way send of data the receiver holds carries
 * almost no block data; a killed sender, a cut file and a flipped byte leave the receiver as it
 * was, and the killed send resumes from the token the receiver printed.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SendReceiveIT {
  static final long M = 1L << 20;

  static Path tmp;
  static Mounted a;
  static Mounted b;
  static Path ma;
  static Path mb;
  static final List<String> report = new ArrayList<>();

  @BeforeAll
  static void mount() throws IOException {
    Mounted.assumeFuseAvailable();
    Files.createDirectories(Path.of("/var/tmp"));
    tmp = Files.createTempDirectory(Path.of("/var/tmp"), "repl-it-").toRealPath();
    a = Mounted.mount(tmp.resolve("store-a"), tmp.resolve("mnt-a"), tmp);
    b = Mounted.mount(tmp.resolve("store-b"), tmp.resolve("mnt-b"), tmp);
    ma = a.mountpoint();
    mb = b.mountpoint();
  }

  @AfterAll
  static void unmount() throws IOException {
    report.forEach(l -> System.out.println("SendReceiveIT: " + l));
    List<String> logs = new ArrayList<>();
    try {
      RuntimeException failed = null;
      for (Mounted m : new Mounted[] {a, b}) {
        if (m != null) {
          try {
            m.close();
            logs.add(m.output());
          } catch (RuntimeException e) { // the other mount is still unmounted
            failed = failed == null ? e : failed;
          }
        }
      }
      if (failed != null) {
        throw failed;
      }
    } finally {
      if (tmp != null) {
        Shell.run("rm", "-rf", tmp.toString());
      }
    }
    for (String log : logs) {
      assertThat(log).doesNotContain("request failed unexpectedly", "Exception");
    }
  }

  /** Runs a bash script with D set to the dedupfs launcher. */
  static Shell.Result sh(String script) {
    Map<String, String> env = new java.util.HashMap<>(Mounted.cliEnv());
    env.put("D", Mounted.script().toString());
    return Shell.run(
        Duration.ofMinutes(10), env, List.of("bash", "-c", "set -o pipefail; " + script));
  }

  static Shell.Result ok(String script) {
    Shell.Result r = sh(script);
    assertThat(r.exitCode()).as(r.describe()).isZero();
    return r;
  }

  static long figure(String text, String regex) {
    Matcher m = Pattern.compile(regex).matcher(text);
    assertThat(m.find()).as(regex + " in " + text).isTrue();
    return Long.parseLong(m.group(1).replace(",", ""));
  }

  /**
   * Everything a program sees of a tree: {@link TreeSnapshot} without inode numbers, plus each
   * regular file's data and hole ranges (SEEK_DATA / SEEK_HOLE) and which paths are one inode.
   */
  static Map<String, String> seen(Path root) {
    Map<String, String> out = new TreeMap<>();
    Map<Object, TreeSet<String>> byIno = new TreeMap<>();
    TreeSnapshot.of(root)
        .forEach(
            (path, d) -> {
              out.put(path, d.replaceAll(" ino=\\d+", ""));
              Matcher m = Pattern.compile(" ino=(\\d+)").matcher(d);
              m.find();
              byIno.computeIfAbsent(Long.parseLong(m.group(1)), k -> new TreeSet<>()).add(path);
            });
    for (TreeSet<String> names : byIno.values()) {
      if (names.size() > 1) {
        out.put("links " + names.first(), names.toString());
      }
    }
    String holes =
        Tools.python(
            "import os,sys\n"
                + "for p in sys.argv[1:]:\n"
                + "  fd=os.open(p,os.O_RDONLY); size=os.fstat(fd).st_size; off=0; segs=[]\n"
                + "  while off<size:\n"
                + "    try: d=os.lseek(fd,off,os.SEEK_DATA)\n"
                + "    except OSError: break\n"
                + "    h=os.lseek(fd,d,os.SEEK_HOLE); segs.append('%d-%d'%(d,h)); off=h\n"
                + "  os.close(fd); print(p[len(sys.argv[1]):] if False else p, ' '.join(segs))\n",
            regularFiles(root).toArray());
    for (String line : holes.split("\n")) {
      if (!line.isBlank()) {
        int sp = line.indexOf(' ');
        out.put("data " + root.relativize(Path.of(line.substring(0, sp))), line.substring(sp + 1));
      }
    }
    return out;
  }

  static List<String> regularFiles(Path root) {
    try (var s = Files.walk(root)) {
      return s.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS))
          .map(Path::toString)
          .toList();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  static void randomFile(Path p, long size, long seed) throws IOException {
    Random r = new Random(seed);
    byte[] buf = new byte[(int) Math.min(size, M)];
    try (OutputStream out = Files.newOutputStream(p)) {
      for (long done = 0; done < size; done += buf.length) {
        r.nextBytes(buf);
        out.write(buf, 0, (int) Math.min(buf.length, size - done));
      }
    }
  }

  /** A VM folder of every kind of file, owner, time, attribute, link and hole. */
  static void populate(Path dir) throws IOException {
    Files.createDirectories(dir.resolve("sub"));
    randomFile(dir.resolve("disk.img"), 3 * M + 12345, 1);
    try (RandomAccessFile f = new RandomAccessFile(dir.resolve("sparse.img").toFile(), "rw")) {
      f.setLength(64 * M);
      Random r = new Random(2);
      for (long off : new long[] {0, 5 * M + 4096, 40 * M, 64 * M - 100}) {
        byte[] d = new byte[(int) Math.min(M, 64 * M - off)];
        r.nextBytes(d);
        f.seek(off);
        f.write(d);
      }
    }
    Files.writeString(dir.resolve("sub/notes.txt"), "hello\n");
    Files.createLink(dir.resolve("sub/disk-link.img"), dir.resolve("disk.img"));
    Files.createSymbolicLink(dir.resolve("sub/latest"), Path.of("../disk.img"));
    Tools.run("mkfifo", "-m", "0640", dir.resolve("sub/fifo").toString());
    UserDefinedFileAttributeView x =
        Files.getFileAttributeView(dir.resolve("disk.img"), UserDefinedFileAttributeView.class);
    x.write("origin", java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3, 0, 4}));
    Files.getFileAttributeView(dir.resolve("sub"), UserDefinedFileAttributeView.class)
        .write("dir.note", java.nio.ByteBuffer.wrap("d".getBytes()));
    Tools.run("chown", "1234:5678", dir.resolve("disk.img").toString());
    Tools.run("chown", "-h", "42:43", dir.resolve("sub/latest").toString());
    Tools.run("chmod", "0640", dir.resolve("disk.img").toString());
    Tools.run("chmod", "0705", dir.resolve("sub").toString());
    Files.setLastModifiedTime(
        dir.resolve("sub/notes.txt"),
        FileTime.from(Instant.parse("2001-02-03T04:05:06.123456789Z")));
    Files.setLastModifiedTime(
        dir.resolve("sub"), FileTime.from(Instant.parse("2002-02-03T04:05:06Z")));
  }

  @Test
  @Order(1)
  void aWholeSnapshotThroughAPipeAndThroughAFileComesOutEqual() throws IOException {
    populate(ma.resolve("vm1"));
    ok("$D snapshot create full " + ma);
    Shell.Result r = ok("$D send full " + ma + " | $D receive " + mb);
    report.add("whole, pipe: " + r.stderr().strip() + " / " + r.stdout().strip());
    assertThat(r.stdout()).contains("received snapshot full at .snapshots/full");
    Map<String, String> want = seen(ma.resolve(".snapshots/full"));
    assertThat(want).containsKeys("vm1/disk.img", "vm1/sub/fifo", "data vm1/sparse.img");
    assertThat(want.get("data vm1/sparse.img")).as("holes").contains(" ");
    assertThat(seen(mb.resolve(".snapshots/full"))).isEqualTo(want);

    // through a file, into a store that is not mounted
    Path file = tmp.resolve("full.stream");
    Path storeC = tmp.resolve("store-c");
    ok("$D send full " + ma + " > " + file);
    ok("$D create " + storeC);
    r = ok("$D receive " + storeC + " < " + file);
    assertThat(r.stdout()).contains("received snapshot full");
    assertThat(figure(r.stdout(), "stream ([\\d,]+) bytes")).isEqualTo(Files.size(file));
    try (Mounted c = Mounted.mount(storeC, tmp.resolve("mnt-c"), tmp)) {
      assertThat(seen(c.mountpoint().resolve(".snapshots/full"))).isEqualTo(want);
      // restorable, as a local snapshot is
      ok("$D snapshot restore full " + c.mountpoint());
      assertThat(Tools.sha256(c.mountpoint().resolve("vm1/disk.img")))
          .isEqualTo(Tools.sha256(ma.resolve("vm1/disk.img")));
    }
    ok("$D fsck " + mb);
    Files.delete(file);
  }

  @Test
  @Order(2)
  void anIncrementalStreamAfterOneMibOfChangesInAFourGibImageStaysUnderOnePointTwoMib()
      throws IOException {
    Path img = ma.resolve("vm2/disk.img");
    Files.createDirectories(img.getParent());
    Random r = new Random(3);
    byte[] chunk = new byte[(int) (4 * M)];
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      f.setLength(4096 * M);
      for (int i = 0; i < 64; i++) { // 256 MiB of data in 4 MiB pieces, the rest holes
        r.nextBytes(chunk);
        f.seek((long) r.nextInt(1024) * 4 * M);
        f.write(chunk);
      }
    }
    ok("$D snapshot create base " + ma);
    long t0 = System.nanoTime();
    Shell.Result full = ok("$D send base " + ma + " | $D receive " + mb);
    report.add(
        String.format(
            "whole 4 GiB image (256 MiB data): %.1f s: %s",
            (System.nanoTime() - t0) / 1e9, full.stderr().strip()));
    // 1 MiB of random changes: 16 runs of 64 KiB at random 64 KiB-aligned offsets
    byte[] run = new byte[64 * 1024];
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      for (int i = 0; i < 16; i++) {
        r.nextBytes(run);
        f.seek((long) r.nextInt(4096 * 16) * run.length);
        f.write(run);
      }
    }
    ok("$D snapshot create next " + ma);
    Shell.Result diff = ok("$D diff base next --json " + ma);
    long changedBytes =
        figure(
            diff.stdout(),
            "\"path\":\"/vm2/disk.img\",\"change\":\"modified\",\"changed_bytes\":(\\d+)");
    assertThat(changedBytes)
        .as("bytes diff names: random bytes over random bytes, 1/256 equal")
        .isBetween(M * 98 / 100, M);
    assertThat(ok("$D diff base next " + ma).stdout())
        .contains("diff base..next: 1 modified, 0 added, 0 removed");
    Path file = tmp.resolve("next.stream");
    Shell.Result inc = ok("$D send next --from base " + ma + " > " + file);
    long size = Files.size(file);
    report.add(
        "incremental after 1 MiB in 16 x 64 KiB: stream "
            + size
            + " bytes: "
            + inc.stderr().strip());
    assertThat(figure(inc.stderr(), "stream ([\\d,]+) bytes")).isEqualTo(size);
    assertThat(size).as("stream bytes").isLessThanOrEqualTo(1_258_291L); // 1.2 MiB
    assertThat(figure(inc.stderr(), "blocks of ([\\d,]+) bytes")).isGreaterThanOrEqualTo(M);
    ok("$D receive " + mb + " < " + file);
    assertSameOnBoth(".snapshots/next/vm2/disk.img");
    assertSameOnBoth(".snapshots/base/vm2/disk.img");
    // random 4 KiB writes cost a whole 16 KiB leaf each, plus its nodes: measured, not bounded
    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
      byte[] small = new byte[4096];
      for (int i = 0; i < 256; i++) {
        r.nextBytes(small);
        f.seek((long) r.nextInt(4096 * 256) * small.length);
        f.write(small);
      }
    }
    ok("$D snapshot create next4k " + ma);
    Shell.Result inc4k = ok("$D send next4k --from next " + ma + " > " + file);
    report.add("incremental after 1 MiB in 256 x 4 KiB: stream " + Files.size(file) + " bytes");
    ok("$D receive " + mb + " < " + file);
    assertSameOnBoth(".snapshots/next4k/vm2/disk.img");
    assertThat(inc4k.exitCode()).isZero();
    Files.delete(file);
  }

  @Test
  @Order(3)
  void aTwoWaySendOfDataTheReceiverHoldsCarriesAlmostNoBlocks() throws IOException {
    // the same data under other names (cp shares the trees) in a new snapshot: a first send of it
    ok("cp -a " + ma.resolve("vm1") + " " + ma.resolve("vm1-copy"));
    ok("$D snapshot create copies " + ma.resolve("vm1-copy"));
    Shell.Result oneWay = ok("$D send copies " + ma + " > /dev/null");
    Shell.Result twoWay = ok("$D send copies --to '$D receive --serve " + mb + "' " + ma);
    report.add("two-way: " + twoWay.stderr().strip());
    long oneWayBytes = figure(oneWay.stderr(), "stream ([\\d,]+) bytes");
    long twoWayBytes = figure(twoWay.stderr(), "stream ([\\d,]+) bytes");
    assertThat(figure(twoWay.stderr(), "blocks of ([\\d,]+) bytes")).isZero();
    assertThat(twoWayBytes).isLessThan(oneWayBytes / 100);
    assertThat(twoWay.stderr()).contains("receiver: received snapshot copies");
    assertThat(seen(mb.resolve(".snapshots/copies")))
        .isEqualTo(seen(ma.resolve(".snapshots/copies")));
  }

  @Test
  @Order(4)
  void aKilledSenderACutFileAndAFlippedByteLeaveTheReceiverAsItWas() throws Exception {
    ok("$D snapshot create late " + ma.resolve("vm1"));
    Path file = tmp.resolve("late.stream");
    ok("$D send late " + ma + " > " + file);
    String before = ok("$D snapshot list -H " + mb + " | cut -f1").stdout();
    String fsckBefore = ok("$D fsck " + mb + " | tail -1").stdout();
    long storeBefore = figure(ok("$D stats -p " + mb).stdout(), "stored:\\s+(\\d+)");

    // a flipped byte in the middle
    byte[] bytes = Files.readAllBytes(file);
    Path bad = tmp.resolve("bad.stream");
    byte[] flipped = bytes.clone();
    flipped[flipped.length / 2] ^= 0x10;
    Files.write(bad, flipped);
    Shell.Result r = sh("$D receive " + mb + " < " + bad);
    assertThat(r.exitCode()).isEqualTo(1);
    assertThat(r.stderr()).contains("damaged").contains("Nothing of it is visible");
    assertUnchanged(before, fsckBefore);
    abortAll(r.stderr());

    // a file cut short
    Files.write(bad, java.util.Arrays.copyOf(bytes, bytes.length / 3));
    r = sh("$D receive " + mb + " < " + bad);
    assertThat(r.exitCode()).isEqualTo(1);
    assertThat(r.stderr()).contains("truncated");
    assertUnchanged(before, fsckBefore);
    abortAll(r.stderr());
    assertThat(figure(ok("$D stats -p " + mb).stdout(), "stored:\\s+(\\d+)"))
        .as("stored bytes after the aborts")
        .isEqualTo(storeBefore);

    // a sender killed (SIGKILL) after it wrote half its stream, then the send resumed
    ProcessBuilder sender =
        new ProcessBuilder(Mounted.script().toString(), "send", "late", ma.toString())
            .redirectError(ProcessBuilder.Redirect.DISCARD);
    sender.environment().putAll(Mounted.cliEnv());
    ProcessBuilder receiver =
        new ProcessBuilder(Mounted.script().toString(), "receive", mb.toString())
            .redirectOutput(ProcessBuilder.Redirect.DISCARD);
    receiver.environment().putAll(Mounted.cliEnv());
    Process s = sender.start();
    Process rcv = receiver.start();
    try (InputStream from = s.getInputStream();
        OutputStream to = rcv.getOutputStream()) {
      byte[] buf = new byte[1 << 16];
      long copied = 0;
      for (int n; copied < bytes.length / 2 && (n = from.read(buf)) > 0; copied += n) {
        to.write(buf, 0, n);
      }
      s.destroyForcibly().waitFor();
    }
    String err = new String(rcv.getErrorStream().readAllBytes());
    assertThat(rcv.waitFor()).as(err).isEqualTo(1);
    assertThat(err).contains("truncated");
    assertUnchanged(before, fsckBefore);
    Matcher m = Pattern.compile("send --resume (\\S+)`").matcher(err);
    assertThat(m.find()).as(err).isTrue();
    Shell.Result resumed =
        ok("$D send late --resume " + m.group(1) + " " + ma + " | $D receive " + mb);
    report.add("resumed after a kill: " + resumed.stderr().strip());
    assertThat(figure(resumed.stderr(), "stream ([\\d,]+) bytes")).isLessThan(bytes.length);
    assertThat(resumed.stderr()).contains("blocks resumed");
    assertThat(seen(mb.resolve(".snapshots/late"))).isEqualTo(seen(ma.resolve(".snapshots/late")));
    assertThat(ok("$D receive --list " + mb).stdout()).contains("no interrupted receive");
    ok("$D fsck " + mb);
    Files.delete(file);
    Files.delete(bad);
  }

  /** The receiver's snapshots and checks as before, and no sign of the stream in the mount. */
  static void assertUnchanged(String snapshotsBefore, String fsckBefore) {
    assertThat(ok("$D snapshot list -H " + mb + " | cut -f1").stdout()).isEqualTo(snapshotsBefore);
    assertThat(mb.resolve(".snapshots/late")).doesNotExist();
    assertThat(ok("$D fsck " + mb + " | tail -1").stdout()).isEqualTo(fsckBefore);
  }

  static void abortAll(String message) {
    Matcher m = Pattern.compile("receive --abort (\\S+)`").matcher(message);
    if (m.find()) {
      assertThat(ok("$D receive --abort " + m.group(1) + " " + mb).stdout()).contains("dropped");
    }
  }

  /** The file at {@code path} reads the same on both mounts, byte for byte. */
  private static void assertSameOnBoth(String path) throws IOException {
    assertThat(Files.mismatch(mb.resolve(path), ma.resolve(path)))
        .as("first byte of %s that differs between the stores", path)
        .isEqualTo(-1L);
  }
}
