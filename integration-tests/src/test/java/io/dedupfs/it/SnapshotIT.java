package io.dedupfs.it;

import static java.nio.file.LinkOption.NOFOLLOW_LINKS;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Point-in-time snapshots (issue 4) on a real mount, driven by {@code dedupfs snapshot}: of one
 * file, of a VM's folder and of the whole datastore; restored whole, one file of them, in place
 * under a process that holds the file open (it reads the restored bytes), and elsewhere ({@code
 * --to}); every way of writing into {@code .snapshots} refused with EROFS; snapshots taken while
 * writers (and fio) change the folder hold, block by block, a version each writer had written, no
 * older than what had been written when the snapshot began and no newer than what had been begun
 * when it ended; deleting a snapshot frees exactly what only it held.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class SnapshotIT {
  static final long M = 1L << 20;

  @TempDir static Path classDir;

  static Path tmp;
  static Mounted fs;
  static Path mnt;
  static final List<String> report = new ArrayList<>();

  @BeforeAll
  static void mount() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = classDir.toRealPath();
    fs = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp);
    mnt = fs.mountpoint();
  }

  @AfterAll
  static void unmount() {
    report.forEach(l -> System.out.println("SnapshotIT: " + l));
    if (fs != null) {
      fs.close();
      assertThat(fs.output()).doesNotContain("request failed unexpectedly", "Exception", "Error:");
    }
  }

  /**
   * A datastore with two VM folders and a base image; snapshots of the base image, of vm1 and of
   * everything; then changes of every kind; the snapshots do not change; restores bring back the
   * exact bytes: one file (held open by a reader, whose next read sees the restored bytes, under
   * the same inode number), a folder, a file snapshot, elsewhere, and the whole datastore; and all
   * of it again after a new mount.
   */
  @Test
  void restoresBringBackTheExactEarlierBytes() throws Exception {
    Path vm1 = Files.createDirectory(mnt.resolve("vm1"));
    Path vm2 = Files.createDirectory(mnt.resolve("vm2"));
    StoreTools.unique(mnt.resolve("base.img"), 32 * M, 61);
    StoreTools.unique(vm1.resolve("disk.img"), 48 * M + 4097, 62);
    Path qcow2 = vm1.resolve("data.qcow2");
    ok(
        Shell.run(
            Duration.ofMinutes(2), "qemu-img", "create", "-f", "qcow2", qcow2.toString(), "1G"));
    ok(
        Shell.run(
            Duration.ofMinutes(2),
            "qemu-io",
            "-f",
            "qcow2",
            "-c",
            "write -P 7 0 3M",
            "-c",
            "write -P 9 500M 1M",
            qcow2.toString()));
    Files.writeString(vm1.resolve("vm.xml"), "<domain><name>vm1</name></domain>\n");
    try (FileChannel ch =
        FileChannel.open(
            vm1.resolve("nvram.fd"), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      byte[] nv = new byte[100_000];
      new Random(63).nextBytes(nv);
      ch.write(ByteBuffer.wrap(nv), 5 * M);
      ch.truncate(64 * M);
      ch.write(ByteBuffer.wrap(new byte[] {1}), 64 * M - 1);
    }
    Files.createSymbolicLink(vm1.resolve("current"), Path.of("disk.img"));
    StoreTools.unique(vm2.resolve("disk.img"), 16 * M, 64);
    Files.createDirectory(vm2.resolve("empty-dir"));

    Map<String, String> state0 = contents(mnt);
    long t0 = System.nanoTime();
    cli("snapshot", "create", "base-snap", mnt.resolve("base.img").toString());
    cli("snapshot", "create", "vm1-snap", vm1.toString());
    cli("snapshot", "create", "all-snap", mnt.toString());
    report.add(
        String.format(
            "three snapshots (a file, a folder, everything: %d files) in %.2f s",
            state0.size(), (System.nanoTime() - t0) / 1e9));
    String list = cli("snapshot", "list", mnt.toString());
    // NAME CREATED KIND LOGICAL STORED EXCLUSIVE SOURCE
    assertThat(list)
        .containsPattern("(?m)^base-snap\\s+\\S+ \\S+\\s+file\\s.*\\s/base\\.img$")
        .containsPattern("(?m)^vm1-snap\\s+\\S+ \\S+\\s+directory\\s.*\\s/vm1$")
        .containsPattern("(?m)^all-snap\\s+\\S+ \\S+\\s+directory\\s.*\\s/$");
    Map<String, String> base0 = sub(state0, "base.img");
    Map<String, String> vm10 = sub(state0, "vm1");
    Map<String, String> vm20 = sub(state0, "vm2");
    Map<String, Map<String, String>> snapshots =
        Map.of("base-snap", base0, "vm1-snap", vm10, "all-snap", state0);
    assertSnapshotsUnchanged(snapshots);

    // changes of every kind
    StoreTools.qemuIo(
        mnt.resolve("base.img"), "none", List.of("write -P 1 0 64k", "write -P 2 1000448 3M"));
    StoreTools.qemuIo(
        vm1.resolve("disk.img"), "writeback", List.of("write -P 3 4096 512", "write -z 40M 1M"));
    ok(
        Shell.run(
            Duration.ofMinutes(2),
            "qemu-io",
            "-f",
            "qcow2",
            "-c",
            "write -P 5 100M 2M",
            qcow2.toString()));
    Files.delete(vm1.resolve("vm.xml"));
    Files.writeString(vm1.resolve("new.txt"), "created after the snapshot\n");
    try (FileChannel ch = FileChannel.open(vm1.resolve("nvram.fd"), StandardOpenOption.WRITE)) {
      ch.truncate(M);
    }
    Files.delete(vm1.resolve("current"));
    Files.createSymbolicLink(vm1.resolve("current"), Path.of("data.qcow2"));
    Tools.run("rm", "-r", vm2.toString());
    StoreTools.unique(mnt.resolve("new.img"), 3 * M, 65);
    Files.createDirectory(mnt.resolve("newdir"));
    assertThat(contents(mnt)).isNotEqualTo(state0);
    assertSnapshotsUnchanged(snapshots);

    // one file, in place, while a reader holds it open (through the page cache)
    Path disk = vm1.resolve("disk.img");
    long ino = OperationsIT.ino(disk);
    try (Holder holder = new Holder(disk)) {
      String before = holder.readAll();
      assertThat(before).isEqualTo(Tools.sha256(disk)).isNotEqualTo(shaOf(vm10.get("disk.img")));
      cli("snapshot", "restore", "vm1-snap", mnt.toString(), "--path", "disk.img");
      assertThat(holder.readAll())
          .as("what the open file reads after the restore")
          .isEqualTo(shaOf(vm10.get("disk.img")));
    }
    assertThat(OperationsIT.ino(disk)).as("inode number after an in-place restore").isEqualTo(ino);
    Map<String, String> vm1Now = contents(vm1);
    assertThat(vm1Now.get("disk.img")).isEqualTo(vm10.get("disk.img"));
    assertThat(vm1Now)
        .containsKey("new.txt")
        .doesNotContainKey("vm.xml"); // only that file came back

    // the folder, then the file snapshot
    cli("snapshot", "restore", "vm1-snap", mnt.toString());
    assertThat(contents(vm1)).isEqualTo(vm10);
    ok(Shell.run(Duration.ofMinutes(2), "qemu-img", "check", qcow2.toString()));
    cli("snapshot", "restore", "base-snap", mnt.toString());
    assertThat(sub(contents(mnt), "base.img")).isEqualTo(base0);

    // elsewhere: one folder of the whole snapshot, and all of it
    cli(
        "snapshot",
        "restore",
        "all-snap",
        mnt.toString(),
        "--path",
        "vm2",
        "--to",
        mnt.resolve("vm2-again").toString());
    assertThat(contents(mnt.resolve("vm2-again"))).isEqualTo(vm20);
    cli(
        "snapshot",
        "restore",
        "all-snap",
        mnt.toString(),
        "--to",
        mnt.resolve("everything").toString());
    assertThat(contents(mnt.resolve("everything"))).isEqualTo(state0);

    // the whole datastore: what was created since goes, what was deleted comes back
    cli("snapshot", "restore", "all-snap", mnt.toString());
    assertThat(contents(mnt)).isEqualTo(state0);
    assertSnapshotsUnchanged(snapshots);

    fs.close();
    fs = Mounted.mount(tmp.resolve("store"), tmp.resolve("mnt"), tmp);
    assertThat(contents(mnt)).isEqualTo(state0);
    assertSnapshotsUnchanged(snapshots);
    assertThat(cli("fsck", mnt.toString())).contains("fsck: clean");
    for (String s : snapshots.keySet()) {
      cli("snapshot", "delete", s, mnt.toString());
    }
  }

  /**
   * snapshot_write_paths.py: every change tried on a snapshot and on .snapshots is EROFS, and
   * nothing changed.
   */
  @Test
  void everyWriteIntoSnapshotsIsRefused() throws Exception {
    Path src = Files.createDirectories(mnt.resolve("ro/src"));
    Files.writeString(src.resolve("f"), "snapshot file\n");
    Files.createDirectory(src.resolve("d"));
    Files.writeString(src.resolve("d/g"), "in a directory\n");
    Files.createSymbolicLink(src.resolve("l"), Path.of("f"));
    Tools.run("setfattr", "-n", "user.kept", "-v", "1", src.resolve("f").toString());
    Path outside = mnt.resolve("ro/outside");
    Files.writeString(outside, "outside\n");
    cli("snapshot", "create", "ro-snap", src.toString());
    Path snap = mnt.resolve(".snapshots/ro-snap");
    // read it once, so the kernel caches what a refused write might change
    Map<String, String> before = snapshotArea(snap);
    String outsideBefore = TreeSnapshot.describe(outside);

    Path script = tmp.resolve("snapshot_write_paths.py");
    try (var in = SnapshotIT.class.getResourceAsStream("snapshot_write_paths.py")) {
      Files.copy(in, script, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
    String out =
        Tools.run(
            Tools.python3(), script.toString(), mnt.toString(), "ro-snap", outside.toString());
    List<String> lines = out.lines().toList();
    assertThat(lines).hasSizeGreaterThan(40);
    assertThat(lines.stream().filter(l -> !l.endsWith(" EROFS")).toList())
        .as("attempts not refused with EROFS")
        .isEmpty();
    assertThat(snapshotArea(snap))
        .as("the snapshot and .snapshots after every attempt")
        .isEqualTo(before);
    assertThat(TreeSnapshot.describe(outside)).isEqualTo(outsideBefore);
    assertThat(Files.readString(snap.resolve("f"))).isEqualTo("snapshot file\n");
    // restoring into the snapshot area is refused too, and changes nothing
    Shell.Result r =
        Mounted.cli(
            "snapshot",
            "restore",
            "ro-snap",
            mnt.toString(),
            "--to",
            snap.resolve("again").toString());
    assertThat(r.exitCode()).as("%s", r).isNotZero();
    assertThat(r.stderr()).containsIgnoringCase("read-only");
    assertThat(snapshotArea(snap)).isEqualTo(before);
    report.add(lines.size() + " ways of writing into .snapshots: all EROFS");
    cli("snapshot", "delete", "ro-snap", mnt.toString());
  }

  /**
   * Everything TreeSnapshot sees of the snapshot, and of .snapshots itself (its attributes and
   * names).
   */
  private static Map<String, String> snapshotArea(Path snap) throws IOException {
    Map<String, String> m = new TreeMap<>(TreeSnapshot.of(snap));
    Path area = snap.getParent();
    try (Stream<Path> names = Files.list(area)) {
      m.put(
          "..",
          TreeSnapshot.describe(area)
              + " "
              + names.map(p -> p.getFileName().toString()).sorted().toList());
    }
    return m;
  }

  // ---- snapshots of a folder being written ---------------------------------------------------

  static final int BLOCK = 4096;
  static final long MAGIC = 0x64656475_70667376L; // "dedupfsv"

  /**
   * Three writers rewrite random 4 KiB blocks (alone or 16 at a time) of their own 16 MiB file in
   * one folder, each block a version stamped with (file, block, version) and filled from them,
   * while fio rewrites two files of its own there with CRC verification. Three snapshots of the
   * folder are taken meanwhile. In each, every block of a writer's file is one whole version, at
   * least the last one whose write had returned before the snapshot began and at most the last one
   * begun before it returned; every 4 KiB block of fio's files is zeros or one of fio's blocks for
   * that offset. fio verifies its own files without error.
   */
  @Test
  void snapshotsTakenWhileWritersRunAreConsistent() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("busy-vm"));
    int blocks = (int) (16 * M / BLOCK);
    List<Writer> writers = new ArrayList<>();
    for (int f = 0; f < 3; f++) {
      writers.add(new Writer(f, dir.resolve("disk" + f + ".img"), blocks));
    }
    List<String> fio =
        List.of(
            "fio",
            "--name=load",
            "--directory=" + dir,
            "--rw=randwrite",
            "--bs=4k",
            "--size=16M",
            "--numjobs=2",
            "--loops=4",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--verify_dump=0",
            "--verify_state_save=0",
            "--randrepeat=1");
    Process fioProcess =
        new ProcessBuilder(fio)
            .redirectErrorStream(true)
            .redirectOutput(tmp.resolve("fio-load.log").toFile())
            .start();
    List<Thread> threads = new ArrayList<>();
    for (Writer w : writers) {
      Thread t = new Thread(w, "versioned-writer-" + w.id);
      t.start();
      threads.add(t);
    }
    record Taken(String name, int[][] doneBefore, int[][] startedBefore, double seconds) {}
    List<Taken> taken = new ArrayList<>();
    try {
      for (int s = 0; s < 3; s++) {
        Thread.sleep(700);
        for (Writer w : writers) {
          w.rethrow();
        }
        int[][] done = new int[writers.size()][];
        for (Writer w : writers) {
          done[w.id] = copy(w.done);
        }
        String name = "busy-" + s;
        long t0 = System.nanoTime();
        cli("snapshot", "create", name, dir.toString());
        double secs = (System.nanoTime() - t0) / 1e9;
        int[][] started = new int[writers.size()][];
        for (Writer w : writers) {
          started[w.id] = copy(w.started);
        }
        taken.add(new Taken(name, done, started, secs));
      }
    } finally {
      for (Writer w : writers) {
        w.stop = true;
      }
      for (Thread t : threads) {
        t.join(TimeUnit.MINUTES.toMillis(2));
      }
    }
    for (Writer w : writers) {
      w.rethrow();
    }
    assertThat(fioProcess.waitFor(5, TimeUnit.MINUTES)).as("fio finished").isTrue();
    String fioLog = Files.readString(tmp.resolve("fio-load.log"));
    assertThat(fioProcess.exitValue()).as("fio exit code\n%s", fioLog).isZero();
    assertThat(fioLog).doesNotContain("verify failed").doesNotContain("bad magic");

    long writes = writers.stream().mapToLong(w -> w.writes).sum();
    for (Taken t : taken) {
      Path snap = mnt.resolve(".snapshots").resolve(t.name());
      int versionsSeen = 0;
      for (Writer w : writers) {
        versionsSeen +=
            w.check(
                snap.resolve(w.file.getFileName()),
                t.doneBefore()[w.id],
                t.startedBefore()[w.id],
                t.name());
      }
      int fioFiles = 0;
      try (Stream<Path> files = Files.list(snap)) {
        for (Path p : files.filter(p -> p.getFileName().toString().startsWith("load.")).toList()) {
          checkFioBlocks(p, t.name());
          fioFiles++;
        }
      }
      report.add(
          String.format(
              "snapshot %s taken in %.3f s while writing: %d writer blocks at a whole version"
                  + " (%d of them newer than the first), %d fio files with whole fio blocks",
              t.name(), t.seconds(), 3 * blocks, versionsSeen, fioFiles));
      cli("snapshot", "delete", t.name(), mnt.toString());
    }
    report.add(writes + " versioned writes during the snapshots");
    assertThat(writes).as("writes made while the snapshots were taken").isGreaterThan(100);
  }

  private static int[] copy(AtomicIntegerArray a) {
    int[] c = new int[a.length()];
    for (int i = 0; i < c.length; i++) {
      c[i] = a.get(i);
    }
    return c;
  }

  /**
   * Every 4 KiB block of a fio file is zeros (laid out, not written yet) or a fio block for its
   * offset.
   */
  private static void checkFioBlocks(Path file, String snapshot) throws IOException {
    byte[] data = Files.readAllBytes(file);
    ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    for (int off = 0; off + BLOCK <= data.length; off += BLOCK) {
      boolean zero = true;
      for (int i = off; i < off + BLOCK && zero; i++) {
        zero = data[i] == 0;
      }
      if (zero) {
        continue;
      }
      int magic = b.getShort(off) & 0xffff;
      int len = b.getInt(off + 4);
      long offset = b.getLong(off + 16);
      assertThat(magic == 0xacca && len == BLOCK && offset == off)
          .as(
              "%s in snapshot %s: block at %d is a fio block for its offset (magic %x, len %d, offset %d)",
              file.getFileName(), snapshot, off, magic, len, offset)
          .isTrue();
    }
  }

  /**
   * Rewrites random blocks of its file with new versions; knows what was begun and what returned.
   */
  static final class Writer implements Runnable {
    final int id;
    final Path file;
    final int blocks;
    final AtomicIntegerArray started;
    final AtomicIntegerArray done;
    final Random rnd;
    volatile boolean stop;
    volatile Throwable failure;
    long writes;

    Writer(int id, Path file, int blocks) throws IOException {
      this.id = id;
      this.file = file;
      this.blocks = blocks;
      this.started = new AtomicIntegerArray(blocks);
      this.done = new AtomicIntegerArray(blocks);
      this.rnd = new Random(70 + id);
      ByteBuffer all = ByteBuffer.allocate(blocks * BLOCK);
      for (int b = 0; b < blocks; b++) {
        fill(all, id, b, 1);
        started.set(b, 1);
        done.set(b, 1);
      }
      all.flip();
      Files.write(file, all.array());
    }

    @Override
    public void run() {
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
        while (!stop) {
          int first = rnd.nextInt(blocks);
          int n = rnd.nextInt(4) == 0 ? Math.min(16, blocks - first) : 1;
          ByteBuffer buf = ByteBuffer.allocate(n * BLOCK);
          int[] versions = new int[n];
          for (int i = 0; i < n; i++) {
            versions[i] = started.get(first + i) + 1;
            started.set(first + i, versions[i]);
            fill(buf, id, first + i, versions[i]);
          }
          buf.flip();
          while (buf.hasRemaining()) {
            ch.write(buf, (long) first * BLOCK + buf.position());
          }
          for (int i = 0; i < n; i++) {
            done.set(first + i, versions[i]);
          }
          writes++;
        }
      } catch (Throwable t) {
        failure = t;
      }
    }

    void rethrow() {
      if (failure != null) {
        throw new AssertionError("writer " + id + " failed", failure);
      }
    }

    /**
     * Checks the snapshot's copy block by block; returns how many blocks hold a version above 1.
     */
    int check(Path copy, int[] doneBefore, int[] startedBefore, String snapshot)
        throws IOException {
      byte[] data = Files.readAllBytes(copy);
      assertThat(data.length)
          .as("%s in %s", copy.getFileName(), snapshot)
          .isEqualTo(blocks * BLOCK);
      ByteBuffer have = ByteBuffer.wrap(data);
      ByteBuffer want = ByteBuffer.allocate(BLOCK);
      int newer = 0;
      for (int b = 0; b < blocks; b++) {
        have.limit((b + 1) * BLOCK).position(b * BLOCK);
        ByteBuffer block = have.slice();
        int version = block.getInt(16);
        want.clear();
        fill(want, id, b, version);
        want.flip();
        String where = copy.getFileName() + " in " + snapshot + ", block " + b;
        assertThat(
                block.getLong(0) == MAGIC
                    && block.getInt(8) == id
                    && block.getInt(12) == b
                    && block.equals(want))
            .as(
                "%s is one whole version (header %x %d %d %d)",
                where, block.getLong(0), block.getInt(8), block.getInt(12), version)
            .isTrue();
        assertThat(version)
            .as(
                "%s: version (the snapshot began after %d returned, ended before %d+1 began)",
                where, doneBefore[b], startedBefore[b])
            .isBetween(doneBefore[b], startedBefore[b]);
        if (version > 1) {
          newer++;
        }
      }
      return newer;
    }
  }

  /**
   * Block {@code block} of file {@code id} at {@code version}: a header, then bytes derived from
   * the three.
   */
  static void fill(ByteBuffer into, int id, int block, int version) {
    into.putLong(MAGIC).putInt(id).putInt(block).putInt(version).putInt(0);
    long x =
        (id * 0x9E3779B97F4A7C15L)
            ^ (block * 0xC2B2AE3D27D4EB4FL)
            ^ (version * 0x165667B19E3779F9L);
    for (int i = 24; i < BLOCK; i += 8) {
      x ^= x << 13;
      x ^= x >>> 7;
      x ^= x << 17;
      into.putLong(x);
    }
  }

  // ---- space ----------------------------------------------------------------------------------

  /**
   * A snapshot that holds the only reference to a file's old contents: its exclusive bytes are at
   * least those contents, and deleting it brings the store's stored bytes down by exactly that.
   */
  @Test
  void deletingASnapshotFreesWhatOnlyItHeld() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("space"));
    Path disk = dir.resolve("disk.img");
    StoreTools.unique(disk, 64 * M, 81);
    StoreTools.unique(dir.resolve("other.img"), 8 * M, 82);
    cli("snapshot", "create", "space-snap", dir.toString());
    Path snap = mnt.resolve(".snapshots/space-snap");
    StoreTools.Figures justTaken = StoreTools.stats(snap);
    assertThat(justTaken.exclusive())
        .as("a snapshot of unchanged files holds nothing alone")
        .isZero();
    StoreTools.unique(
        disk, 64 * M, 83); // the live file no longer shares anything with the snapshot
    StoreTools.Figures held = StoreTools.stats(snap);
    long storedBefore = StoreTools.storedBytes(mnt);
    assertThat(held.files()).isEqualTo(2);
    assertThat(held.logical()).isEqualTo(72 * M);
    assertThat(held.exclusive())
        .as("what only the snapshot holds")
        .isBetween(64 * M, 64 * M + 256 * 1024);
    assertThat(held.shared())
        .as("other.img, shared with the live folder")
        .isBetween(8 * M, 8 * M + 64 * 1024);
    assertThat(StoreTools.xattr(snap, "exclusive")).isEqualTo(held.exclusive());
    cli("snapshot", "delete", "space-snap", mnt.toString());
    assertThat(snap).doesNotExist();
    long storedAfter = StoreTools.storedBytes(mnt);
    report.add(
        String.format(
            "deleting a snapshot holding %d bytes alone: stored %d -> %d",
            held.exclusive(), storedBefore, storedAfter));
    assertThat(storedBefore - storedAfter)
        .as("stored bytes freed by the delete")
        .isEqualTo(held.exclusive());
    assertThat(cli("snapshot", "list", mnt.toString())).doesNotContain("space-snap");
  }

  /**
   * Issue 11, item 10: {@code snapshot restore --dry-run} lists what the restore would replace,
   * create and remove, and changes nothing (the folder's bytes, modes and inode numbers, the
   * store's figures); the restore then prints the same list, and does it. --json gives the list
   * too.
   */
  @Test
  void aDryRunListsWhatARestoreWouldChangeAndTheRestorePrintsTheSameList() throws Exception {
    Path dir = Files.createDirectory(mnt.resolve("dry"));
    Files.write(dir.resolve("disk.img"), OperationsIT.random(41, 3 * (int) M));
    Files.write(dir.resolve("gone.img"), OperationsIT.random(42, (int) M));
    Files.writeString(dir.resolve("same.conf"), "same\n");
    Files.createDirectory(dir.resolve("logs"));
    Files.writeString(dir.resolve("logs/a.log"), "a\n");
    cli("snapshot", "create", "dry-snap", dir.toString());
    Map<String, String> atSnapshot = contents(dir);

    // since the snapshot: a file changed, a file and a folder deleted, a file and a folder created
    try (FileChannel ch = FileChannel.open(dir.resolve("disk.img"), StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(OperationsIT.random(43, 4096)), 8192);
    }
    Files.delete(dir.resolve("gone.img"));
    Files.delete(dir.resolve("logs/a.log"));
    Files.delete(dir.resolve("logs"));
    Files.write(dir.resolve("new.img"), OperationsIT.random(44, (int) M));
    Files.createDirectory(dir.resolve("newdir"));
    Files.writeString(dir.resolve("newdir/x"), "x\n");
    Map<String, String> before = contents(dir);
    Map<String, Object> inodesBefore = inodes(dir);
    StoreTools.Figures figuresBefore = StoreTools.xattrFigures(mnt);

    List<String> dry =
        cli("snapshot", "restore", "dry-snap", "--dry-run", mnt.toString()).lines().toList();
    report.add("restore --dry-run: " + String.join(" | ", dry));
    assertThat(dry.get(dry.size() - 1))
        .startsWith("dry run: restoring dry-snap would make these changes (")
        .endsWith("); nothing was changed");
    List<String> listed = dry.subList(0, dry.size() - 1);
    assertThat(listed)
        .containsExactlyInAnyOrder(
            "attributes /dry", // its modification time
            "replaced   /dry/disk.img",
            "created    /dry/gone.img",
            "created    /dry/logs",
            "created    /dry/logs/a.log",
            "removed    /dry/new.img",
            "removed    /dry/newdir",
            "removed    /dry/newdir/x");
    assertThat(contents(dir)).as("nothing changed by the dry run").isEqualTo(before);
    assertThat(inodes(dir)).isEqualTo(inodesBefore);
    assertThat(StoreTools.xattrFigures(mnt))
        .as("the store's figures after the dry run")
        .isEqualTo(figuresBefore);

    Object json =
        Json.parse(
            cli("snapshot", "restore", "dry-snap", "--dry-run", "--json", mnt.toString()).strip());
    assertThat(Json.at(json, "type")).isEqualTo("restore");
    assertThat(Json.at(json, "snapshot")).isEqualTo("dry-snap");
    assertThat(Json.at(json, "dry_run")).isEqualTo(true);
    List<String> fromJson = new ArrayList<>();
    for (Object c : (List<?>) Json.at(json, "changes")) {
      fromJson.add(String.format("%-10s %s", Json.at(c, "action"), Json.at(c, "path")));
    }
    assertThat(fromJson).as("--json lists the same changes, in the same order").isEqualTo(listed);

    List<String> real = cli("snapshot", "restore", "dry-snap", mnt.toString()).lines().toList();
    assertThat(real.subList(0, real.size() - 1))
        .as("the restore prints what the dry run listed")
        .isEqualTo(listed);
    assertThat(real.get(real.size() - 1))
        .startsWith("restored dry-snap: ")
        .contains("1 replaced", "3 created", "3 removed");
    assertThat(contents(dir)).as("the folder as it was at the snapshot").isEqualTo(atSnapshot);
    assertThat(cli("snapshot", "restore", "dry-snap", "--dry-run", mnt.toString()).strip())
        .isEqualTo("dry run: restoring dry-snap would change nothing");
    cli("snapshot", "delete", "dry-snap", mnt.toString());
  }

  /** Relative path -> inode number, for everything below root. */
  private static Map<String, Object> inodes(Path root) throws IOException {
    Map<String, Object> m = new TreeMap<>();
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : (Iterable<Path>) walk::iterator) {
        m.put(root.relativize(p).toString(), Files.getAttribute(p, "unix:ino", NOFOLLOW_LINKS));
      }
    }
    return m;
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private static String cli(String... args) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), args);
    assertThat(r.exitCode()).as("dedupfs %s\n%s", String.join(" ", args), r).isZero();
    return r.stdout();
  }

  private static Shell.Result ok(Shell.Result r) {
    assertThat(r.exitCode()).as("%s", r).isZero();
    return r;
  }

  /**
   * Relative path -> type, mode, size and SHA-256 (or link target), for everything below root but
   * .snapshots.
   */
  static Map<String, String> contents(Path root) {
    Map<String, String> m = new TreeMap<>();
    try (Stream<Path> walk = Files.walk(root)) {
      for (Path p : (Iterable<Path>) walk::iterator) {
        String rel = root.relativize(p).toString();
        if (rel.isEmpty() || rel.equals(".snapshots") || rel.startsWith(".snapshots/")) {
          continue;
        }
        Map<String, Object> a = Files.readAttributes(p, "unix:mode,size", NOFOLLOW_LINKS);
        String mode = Integer.toOctalString((int) a.get("mode"));
        if (Files.isSymbolicLink(p)) {
          m.put(rel, "link " + mode + " -> " + Files.readSymbolicLink(p));
        } else if (Files.isDirectory(p, NOFOLLOW_LINKS)) {
          m.put(rel, "dir " + mode);
        } else {
          m.put(rel, "file " + mode + " " + a.get("size") + " " + Tools.sha256(p));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return m;
  }

  /**
   * The entries of {@code all} at or below {@code prefix}, relative to it ("" for a file prefix
   * itself... keyed by name).
   */
  static Map<String, String> sub(Map<String, String> all, String prefix) {
    Map<String, String> m = new TreeMap<>();
    for (var e : all.entrySet()) {
      if (e.getKey().equals(prefix) && e.getValue().startsWith("file")) {
        m.put(Path.of(prefix).getFileName().toString(), e.getValue());
      } else if (e.getKey().startsWith(prefix + "/")) {
        m.put(e.getKey().substring(prefix.length() + 1), e.getValue());
      }
    }
    return m;
  }

  private static String shaOf(String description) {
    String[] f = description.split(" ");
    return f[f.length - 1];
  }

  private static void assertSnapshotsUnchanged(Map<String, Map<String, String>> snapshots) {
    for (var e : snapshots.entrySet()) {
      assertThat(contents(mnt.resolve(".snapshots").resolve(e.getKey())))
          .as("snapshot %s", e.getKey())
          .isEqualTo(e.getValue());
    }
  }

  /**
   * Another process holding a file open: reads all of it through the same descriptor on request.
   */
  static final class Holder implements AutoCloseable {
    private final Process p;
    private final BufferedReader out;
    private final OutputStream in;

    Holder(Path file) throws IOException {
      p =
          new ProcessBuilder(
                  Tools.python3(),
                  "-c",
                  """
                    import hashlib, os, sys
                    fd = os.open(sys.argv[1], os.O_RDONLY)
                    for line in sys.stdin:
                        h, off = hashlib.sha256(), 0
                        while True:
                            b = os.pread(fd, 1 << 20, off)
                            if not b:
                                break
                            h.update(b)
                            off += len(b)
                        print(h.hexdigest(), flush=True)
                    """,
                  file.toString())
              .redirectError(ProcessBuilder.Redirect.INHERIT)
              .start();
      out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
      in = p.getOutputStream();
    }

    String readAll() throws IOException {
      in.write('\n');
      in.flush();
      String line = out.readLine();
      assertThat(line).as("the holder's answer").isNotNull();
      return line;
    }

    @Override
    public void close() throws Exception {
      in.close();
      assertThat(p.waitFor(1, TimeUnit.MINUTES)).isTrue();
    }
  }
}
