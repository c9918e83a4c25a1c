package io.dedupfs.it;

import static java.nio.file.StandardOpenOption.CREATE;
import static java.nio.file.StandardOpenOption.CREATE_NEW;
import static java.nio.file.StandardOpenOption.READ;
import static java.nio.file.StandardOpenOption.WRITE;
import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.PowerCut;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon dies by SIGKILL while several files are being written, and in a second case the disk
 * loses power at that moment ({@link io.dedupfs.engine.PowerCut}): after a new mount of the same
 * store (which must open: no stale lock), every byte that an fsync had covered is there, and so is
 * every file that a close(2) had returned for (close flushes); fsck is clean. SIGTERM and SIGINT
 * instead flush everything, unmount and exit; {@code dedupfs umount} returns only once the store is
 * closed, so an immediate remount works.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
@SecondLane
class CrashIT {
  private static final int FILE_SPAN = 4 << 20;
  private static final long PROGRESS_TIMEOUT_MS = TimeUnit.MINUTES.toMillis(3);

  @TempDir Path tempDir;

  @Test
  void kill9DuringWritesKeepsEveryFsyncedAndEveryClosedByte() throws Exception {
    Mounted.assumeFuseAvailable();
    crashTwice(null);
  }

  /**
   * The same with power cuts: the daemon runs with {@link PowerCut}'s journal of its writes to the
   * store, and after each kill the store is put back as a disk that lost power at that moment could
   * hold it (every write made durable by then; of the others none in the first round, a random half
   * of their 4 KiB pieces in the second) before the same checks. A kill alone leaves the daemon's
   * writes in the page cache.
   */
  @Test
  void aPowerCutDuringWritesKeepsEveryFsyncedAndEveryClosedByte() throws Exception {
    Mounted.assumeFuseAvailable();
    crashTwice(PowerCut.build(tempDir.toRealPath()));
  }

  /**
   * Two rounds of writers, each ended by a SIGKILL of the daemon and, with {@code powerCut} (the
   * library {@link PowerCut#build} made), a power cut at that moment; then the checks.
   */
  private void crashTwice(Path powerCut) throws Exception {
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");
    List<Writer> writers = new ArrayList<>();
    Map<String, byte[]> closed = new ConcurrentHashMap<>();
    List<Churn> churns = new ArrayList<>();
    for (int round = 0; round < 2; round++) {
      Map<String, String> env = Map.of();
      Path before = tmp.resolve("before-" + round);
      Path journal = tmp.resolve("journal-" + round);
      if (powerCut != null) {
        if (!Datastore.isStore(store)) {
          assertThat(Mounted.cli("create", store.toString()).exitCode()).isZero();
        }
        PowerCut.copy(store, before);
        env = PowerCut.environment(powerCut, store, journal, false);
      }
      // the second round with the writeback cache: fsync must hand the kernel's pages over first
      Mounted m =
          round == 0
              ? Mounted.mount(env, store, mnt, tmp)
              : Mounted.mount(env, store, mnt, tmp, "--writeback-cache");
      try {
        Path dir = Files.createDirectories(m.mountpoint().resolve("round-" + round));
        // namespace changes are answered only once durable
        Files.createDirectories(dir.resolve("made/below"));
        Files.move(dir.resolve("made"), dir.resolve("renamed"));
        List<Writer> now = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
          now.add(new Writer(dir.resolve("fsynced-" + i), 1000L * round + i));
        }
        Closer closer = new Closer(dir, 77L + round, closed);
        Churn churn = new Churn(Files.createDirectory(dir.resolve("namespace")), 99L + round);
        churns.add(churn);
        List<Thread> threads = new ArrayList<>();
        for (Runnable r : List.of(now.get(0), now.get(1), now.get(2), closer, churn)) {
          Thread t = new Thread(r, "crash-writer");
          t.start();
          threads.add(t);
        }
        // kill once every writer has fsynced a few times and the closer closed a few files
        long deadline = System.currentTimeMillis() + PROGRESS_TIMEOUT_MS;
        while (now.stream().anyMatch(w -> w.fsyncs.get() < 8)
            || closer.count.get() < 5
            || churn.count.get() < 200) {
          for (Writer w : now) {
            w.rethrow();
          }
          closer.rethrow();
          churn.rethrow();
          assertThat(System.currentTimeMillis())
              .as("writers made no progress")
              .isLessThan(deadline);
          Thread.sleep(20);
        }
        m.kill9();
        for (Thread t : threads) {
          t.join(TimeUnit.MINUTES.toMillis(2));
          assertThat(t.isAlive()).as("a writer still blocked after the kill").isFalse();
        }
        assertThat(now.stream().mapToInt(w -> w.failedAfterKill ? 1 : 0).sum())
            .as("writers that saw the daemon die")
            .isPositive();
        writers.addAll(now);
      } finally {
        m.close(); // detaches the dead mount
      }
      if (powerCut != null) {
        cutPower(store, before, journal, round == 0 ? null : new SplittableRandom(round));
      }

      // an administrator may look first: read-only, right after the crash
      if (round == 0) {
        try (Mounted ro = Mounted.mount(store, mnt, tmp, "-o", "ro")) {
          for (Writer w : writers) {
            w.verify(ro.mountpoint().resolve(mnt.relativize(w.file)));
          }
        }
      }
      // the store opens again at once, and holds every fsynced byte and every closed file
      try (Mounted again = Mounted.mount(store, mnt, tmp)) {
        Path root = again.mountpoint();
        for (int r = 0; r <= round; r++) {
          assertThat(root.resolve("round-" + r + "/renamed/below")).isDirectory();
          assertThat(root.resolve("round-" + r + "/made")).doesNotExist();
        }
        for (Writer w : writers) {
          w.verify(root.resolve(mnt.relativize(w.file)));
        }
        for (var e : closed.entrySet()) {
          Path f = root.resolve(e.getKey());
          assertThat(Files.readAllBytes(f))
              .as("closed file %s", e.getKey())
              .isEqualTo(e.getValue());
        }
        for (int r = 0; r <= round; r++) {
          churns.get(r).verify(root.resolve("round-" + r + "/namespace"));
        }
        assertLinkCountsMatchTheTree(root);
        Shell.Result fsck = Mounted.cli("fsck", root.toString());
        assertThat(fsck.exitCode()).as("fsck after the crash: %s", fsck.stdout()).isZero();
        // inode numbers handed out after the crash are new ones
        Set<Long> existing = new java.util.HashSet<>();
        try (var all = Files.walk(root)) {
          for (Path p : (Iterable<Path>) all::iterator) {
            existing.add(OperationsIT.ino(p));
          }
        }
        for (int i = 0; i < 10; i++) {
          Path fresh = Files.createFile(root.resolve("after-crash-" + round + "-" + i));
          assertThat(existing.add(OperationsIT.ino(fresh)))
              .as("inode of %s is new", fresh)
              .isTrue();
        }
        // and it goes on working: every name can be removed, every directory then too
        Path scratch = Files.createDirectory(root.resolve("scratch-" + round));
        Tools.run(
            "cp",
            "-a",
            root.resolve("round-" + round + "/namespace").toString(),
            scratch.toString());
        Tools.run("rm", "-r", scratch.toString());
        assertThat(scratch).doesNotExist();
      }
    }
    assertThat(closed).hasSizeGreaterThanOrEqualTo(10);
  }

  /**
   * Puts {@code store} back as it was before the daemon started ({@code before}) with what of the
   * daemon's writes ({@code journal}) a disk that lost power when it was killed could hold: those
   * made durable, and of the others none, or what {@code lost} keeps.
   */
  private static void cutPower(Path store, Path before, Path journal, SplittableRandom lost)
      throws IOException {
    try (var files = Files.list(store)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Files.delete(f);
      }
    }
    PowerCut.copy(before, store);
    try (PowerCut.Journal j = new PowerCut.Journal(journal)) {
      PowerCut.Cut cut = j.cut(j.size(), store, lost);
      assertThat(cut.durable()).as("durable writes before the power cut").isPositive();
    }
  }

  /**
   * Random unaligned writes to one file, an fsync every few writes. Remembers the content at the
   * last fsync that returned, and every write begun since (including one in flight when the daemon
   * died): after the crash a byte must hold its fsynced value or one of those.
   */
  private static final class Writer implements Runnable {
    final Path file;
    final Random rnd;
    final AtomicInteger fsyncs = new AtomicInteger();
    volatile Throwable failure;
    volatile boolean failedAfterKill;

    /** The model: all writes so far. */
    final byte[] current = new byte[FILE_SPAN];

    int currentSize;

    /** What the last completed fsync covered. */
    byte[] synced = new byte[0];

    /** Writes begun after that fsync: offset, bytes. */
    final List<Map.Entry<Integer, byte[]>> since = new ArrayList<>();

    Writer(Path file, long seed) {
      this.file = file;
      this.rnd = new Random(seed);
    }

    @Override
    public void run() {
      try (FileChannel ch = FileChannel.open(file, CREATE_NEW, WRITE, READ)) {
        for (int n = 0; ; n++) {
          int len = 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? 300_000 : 20_000);
          int off = rnd.nextInt(FILE_SPAN - len);
          byte[] data = new byte[len];
          rnd.nextBytes(data);
          synchronized (this) {
            since.add(Map.entry(off, data));
          }
          ByteBuffer b = ByteBuffer.wrap(data);
          while (b.hasRemaining()) {
            ch.write(b, off + b.position());
          }
          System.arraycopy(data, 0, current, off, len);
          currentSize = Math.max(currentSize, off + len);
          if (n % 5 == 4) {
            byte[] snapshot = Arrays.copyOf(current, currentSize);
            ch.force(true);
            synchronized (this) {
              synced = snapshot;
              since.clear();
            }
            fsyncs.incrementAndGet();
          }
        }
      } catch (IOException e) {
        failedAfterKill = true; // the daemon is gone: ENOTCONN, ECONNABORTED...
      } catch (Throwable t) {
        failure = t;
      }
    }

    void rethrow() {
      if (failure != null || failedAfterKill) {
        throw new AssertionError("writer of " + file + " failed before the kill", failure);
      }
    }

    synchronized void verify(Path f) throws IOException {
      byte[] got = Files.readAllBytes(f);
      int maxEnd = synced.length;
      for (var w : since) {
        maxEnd = Math.max(maxEnd, w.getKey() + w.getValue().length);
      }
      assertThat(got.length)
          .as("size of %s: at least what was fsynced, at most what was written", f)
          .isBetween(synced.length, maxEnd);
      for (int pos = 0; pos < got.length; pos++) {
        byte before = pos < synced.length ? synced[pos] : 0;
        if (got[pos] == before) {
          continue;
        }
        boolean writtenSince = false;
        for (var w : since) {
          int i = pos - w.getKey();
          if (i >= 0 && i < w.getValue().length && w.getValue()[i] == got[pos]) {
            writtenSince = true;
            break;
          }
        }
        if (!writtenSince) {
          throw new AssertionError(
              f
                  + ": byte "
                  + pos
                  + " is "
                  + got[pos]
                  + "; fsynced value "
                  + before
                  + " (fsynced size "
                  + synced.length
                  + ", "
                  + since.size()
                  + " writes since the last fsync), and no later write put it there");
        }
      }
    }
  }

  /** Writes whole files and closes them, one after another; a file counts once close returned. */
  private static final class Closer implements Runnable {
    final Path dir;
    final Random rnd;
    final Map<String, byte[]> closed;
    final AtomicInteger count = new AtomicInteger();
    volatile Throwable failure;
    volatile boolean died;

    Closer(Path dir, long seed, Map<String, byte[]> closed) {
      this.dir = dir;
      this.rnd = new Random(seed);
      this.closed = closed;
    }

    @Override
    public void run() {
      try {
        for (int n = 0; ; n++) {
          byte[] data = new byte[rnd.nextInt(2 << 20)];
          rnd.nextBytes(data);
          Path f = dir.resolve("closed-" + n);
          try (FileChannel ch = FileChannel.open(f, CREATE, WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) {
              ch.write(b);
            }
          }
          closed.put(dir.getParent().relativize(f).toString(), data);
          count.incrementAndGet();
        }
      } catch (IOException e) {
        died = true;
      } catch (Throwable t) {
        failure = t;
      }
    }

    void rethrow() {
      if (failure != null || died) {
        throw new AssertionError("closer failed before the kill", failure);
      }
    }
  }

  /**
   * Random namespace changes (mkdir, create, rename with and without replacing, link, unlink,
   * rmdir) under one directory, with a model of the tree after each completed change. A change is
   * answered only once durable, so after a crash the tree is the model, or the model with the one
   * change in flight applied.
   */
  private static final class Churn implements Runnable {
    final Path base;
    final Random rnd;
    final AtomicInteger count = new AtomicInteger();
    volatile Throwable failure;
    volatile boolean died;

    /** Completed: directories, and file paths -> inode identity (hard links share one). */
    Set<String> dirs = new TreeSet<>();

    Map<String, Integer> files = new TreeMap<>();

    /** The same with the change in flight applied (equal to the above between changes). */
    Set<String> nextDirs = new TreeSet<>();

    Map<String, Integer> nextFiles = new TreeMap<>();
    int names;

    Churn(Path base, long seed) {
      this.base = base;
      this.rnd = new Random(seed);
    }

    @Override
    public void run() {
      try {
        while (true) {
          step();
          synchronized (this) {
            dirs = new TreeSet<>(nextDirs);
            files = new TreeMap<>(nextFiles);
          }
          count.incrementAndGet();
        }
      } catch (IOException e) {
        died = true;
      } catch (Throwable t) {
        failure = t;
      }
    }

    private void step() throws IOException {
      List<String> dirList = new ArrayList<>(dirs);
      List<String> fileList = new ArrayList<>(files.keySet());
      String parent =
          dirList.isEmpty() || rnd.nextInt(3) == 0
              ? ""
              : dirList.get(rnd.nextInt(dirList.size())) + "/";
      String fresh = parent + "n" + names++;
      int k = rnd.nextInt(100);
      synchronized (this) {
        nextDirs = new TreeSet<>(dirs);
        nextFiles = new TreeMap<>(files);
      }
      if (k < 12 && dirs.size() < 15) {
        nextDirs.add("n" + (names - 1));
        Files.createDirectory(base.resolve("n" + (names - 1)));
      } else if (k < 40 || fileList.isEmpty()) {
        nextFiles.put(fresh, names);
        Files.createFile(base.resolve(fresh));
      } else if (k < 55) {
        String from = fileList.get(rnd.nextInt(fileList.size()));
        nextFiles.put(fresh, nextFiles.get(from));
        Files.createLink(base.resolve(fresh), base.resolve(from));
      } else if (k < 70) {
        String from = fileList.get(rnd.nextInt(fileList.size()));
        String to =
            rnd.nextBoolean() || fileList.size() < 2
                ? fresh
                : fileList.get(rnd.nextInt(fileList.size()));
        // two names of one file: rename does nothing (POSIX), and Files.move does not call it
        if (!nextFiles.get(from).equals(nextFiles.get(to))) {
          Integer id = nextFiles.remove(from);
          nextFiles.put(to, id);
          Files.move(
              base.resolve(from),
              base.resolve(to),
              java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
      } else if (k < 85) {
        String victim = fileList.get(rnd.nextInt(fileList.size()));
        nextFiles.remove(victim);
        Files.delete(base.resolve(victim));
      } else if (k < 93 && !dirList.isEmpty()) {
        // rename a directory (with what is in it)
        String from = dirList.get(rnd.nextInt(dirList.size()));
        String to = "n" + (names - 1);
        nextDirs.remove(from);
        nextDirs.add(to);
        for (String f : new ArrayList<>(nextFiles.keySet())) {
          if (f.startsWith(from + "/")) {
            nextFiles.put(to + f.substring(from.length()), nextFiles.remove(f));
          }
        }
        Files.move(base.resolve(from), base.resolve(to));
      } else if (!dirList.isEmpty()) {
        String d = dirList.get(rnd.nextInt(dirList.size()));
        if (nextFiles.keySet().stream().noneMatch(f -> f.startsWith(d + "/"))) {
          nextDirs.remove(d);
          Files.delete(base.resolve(d));
        }
      }
    }

    void rethrow() {
      if (failure != null || died) {
        throw new AssertionError("namespace churn failed before the kill", failure);
      }
    }

    /**
     * The tree under base is the model before or after the change in flight, hard links included.
     */
    synchronized void verify(Path root) throws IOException {
      Set<String> actualDirs = new TreeSet<>();
      Map<String, Long> actualFiles = new TreeMap<>();
      try (var s = Files.walk(root)) {
        for (Path p : (Iterable<Path>) s::iterator) {
          String rel = root.relativize(p).toString();
          if (rel.isEmpty()) {
            continue;
          }
          if (Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            actualDirs.add(rel);
          } else {
            actualFiles.put(rel, OperationsIT.ino(p));
          }
        }
      }
      String actual = shape(actualDirs, actualFiles);
      String before = shape(dirs, files);
      String after = shape(nextDirs, nextFiles);
      if (!actual.equals(before) && !actual.equals(after)) {
        throw new AssertionError(
            "namespace after the crash is neither the last completed state nor the one"
                + " in flight\nactual:    "
                + actual
                + "\ncompleted: "
                + before
                + "\nin flight: "
                + after);
      }
    }

    /** Directories and files, files grouped by identity (inode), in a canonical form. */
    private static <T> String shape(Set<String> dirs, Map<String, T> files) {
      Map<T, Set<String>> groups = new java.util.HashMap<>();
      files.forEach((path, id) -> groups.computeIfAbsent(id, x -> new TreeSet<>()).add(path));
      Set<String> linkSets = new TreeSet<>();
      groups.values().forEach(g -> linkSets.add(g.toString()));
      return "dirs=" + dirs + " files=" + linkSets;
    }
  }

  /** Every directory's link count is 2 + its subdirectories; every file's, the names it has. */
  static void assertLinkCountsMatchTheTree(Path root) throws IOException {
    Map<Long, Integer> names = new java.util.HashMap<>();
    Map<Long, Integer> nlink = new java.util.HashMap<>();
    List<String> wrong = new ArrayList<>();
    try (var s = Files.walk(root)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        Map<String, Object> a = OperationsIT.unix(p);
        if (Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
          long subdirs;
          try (var l = Files.list(p)) {
            subdirs =
                l.filter(c -> Files.isDirectory(c, java.nio.file.LinkOption.NOFOLLOW_LINKS))
                    .count();
          }
          if ((int) a.get("nlink") != 2 + subdirs) {
            wrong.add(p + ": nlink " + a.get("nlink") + ", subdirectories " + subdirs);
          }
        } else {
          names.merge((long) a.get("ino"), 1, Integer::sum);
          nlink.put((long) a.get("ino"), (int) a.get("nlink"));
        }
      }
    }
    names.forEach(
        (ino, n) -> {
          if (!n.equals(nlink.get(ino))) {
            wrong.add("inode " + ino + ": nlink " + nlink.get(ino) + ", names " + n);
          }
        });
    assertThat(wrong).as("link counts that do not match the tree").isEmpty();
  }

  @Test
  void aFullDiskGivesEnospcAndKeepsWhatWasFsynced() throws Exception {
    Mounted.assumeFuseAvailable();
    org.junit.jupiter.api.Assumptions.assumeTrue(Tools.isRoot(), "mounting a tmpfs needs root");
    Path tmp = tempDir.toRealPath();
    Path disk = Files.createDirectories(tmp.resolve("small-disk"));
    Tools.run("mount", "-t", "tmpfs", "-o", "size=40m", "dedupfs-it-small", disk.toString());
    try {
      Path store = disk.resolve("store");
      Path mnt = tmp.resolve("mnt");
      byte[] kept = OperationsIT.random(300, 3 << 20);
      int synced;
      try (Mounted m = Mounted.mount(store, mnt, tmp)) {
        Files.write(m.mountpoint().resolve("kept"), kept);
        String out =
            Tools.python(
                """
                        import errno, os, random, sys
                        rnd = random.Random(301)
                        fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
                        written = synced = 0
                        try:
                            while written < 200 << 20:
                                os.write(fd, rnd.randbytes(1 << 20))
                                written += 1 << 20
                                if written % (4 << 20) == 0:
                                    os.fsync(fd)
                                    synced = written
                        except OSError as e:
                            print(errno.errorcode[e.errno], synced)
                        try:
                            os.close(fd)
                        except OSError as e:
                            pass
                        """,
                m.mountpoint().resolve("filler"));
        String[] r = out.strip().split(" ");
        assertThat(r[0]).as("the error when the disk under the store is full").isEqualTo("ENOSPC");
        synced = Integer.parseInt(r[1]);
        assertThat(synced).isPositive();
        // the mount still reads
        assertThat(Files.readAllBytes(m.mountpoint().resolve("kept"))).isEqualTo(kept);
        assertThat(OperationsIT.df(m.mountpoint())[2]).isLessThan(1 << 20);
      }
      try (Mounted m = Mounted.mount(store, mnt, tmp)) {
        assertThat(Files.readAllBytes(m.mountpoint().resolve("kept"))).isEqualTo(kept);
        String out =
            Tools.python(
                """
                        import hashlib, random, sys
                        rnd = random.Random(301)
                        n = int(sys.argv[2]) >> 20
                        want = hashlib.sha256(b''.join(rnd.randbytes(1 << 20) for _ in range(n))).hexdigest()
                        with open(sys.argv[1], 'rb') as f:
                            got = hashlib.sha256(f.read(n << 20)).hexdigest()
                        print(want == got)
                        """,
                m.mountpoint().resolve("filler"),
                synced);
        assertThat(out.strip())
            .as("the fsynced part of the file that filled the disk")
            .isEqualTo("True");
        // Not checked, a known engine bug: a store whose disk is full to the last page cannot
        // commit the transaction that would free space, so deleting files there can fail with
        // ENOSPC too (rm, and the background reclaim), and the store stays full until its disk
        // grows.
      }
    } finally {
      Mounted.forceUnmount(tmp.resolve("mnt"));
      Tools.run("umount", disk.toString());
    }
  }

  /**
   * A store whose intent log is on a file system of its own ({@code create --intent-log}, as a
   * separate log device): fsynced writes go to that log and come back from it after kill -9; while
   * its file system is not mounted the store refuses to mount, says why and changes nothing; once
   * it is back, everything is, also after {@code move-intent-log} moved the log, with the records
   * no commit had folded, into the store and out again; destroying the store deletes the log.
   */
  @Test
  void aStoreWithItsLogOnAnotherFileSystemKeepsFsyncedWrites() throws Exception {
    Mounted.assumeFuseAvailable();
    org.junit.jupiter.api.Assumptions.assumeTrue(Tools.isRoot(), "a loop mount needs root");
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");
    Path logFs = Files.createDirectories(tmp.resolve("log-fs"));
    Tools.Ext4 ext4 = new Tools.Ext4(logFs, 64L << 20);
    boolean ext4Mounted = true;
    try {
      Path logFile = ext4.root().toRealPath().resolve("store.log");
      Shell.Result created =
          Mounted.cli(
              "create", "--log-size", "16M", "--intent-log", logFile.toString(), store.toString());
      assertThat(created.exitCode()).as(created.describe()).isZero();
      assertThat(created.stdout()).contains("intent log in " + logFile);
      assertThat(Files.readSymbolicLink(store.resolve("intent.log"))).isEqualTo(logFile);
      Shell.Result stats = Mounted.cli("stats", "--json", "--store", store.toString());
      assertThat(Json.at(Json.parse(stats.stdout()), "store", "intent_log"))
          .as("where stats says the log is")
          .isEqualTo(logFile.toString());

      byte[] model = new byte[4 << 20];
      int end = 0;
      SplittableRandom rnd = new SplittableRandom(77);
      try (Mounted m = Mounted.mount(store, mnt, tmp)) {
        try (FileChannel f = FileChannel.open(m.mountpoint().resolve("disk.img"), CREATE, WRITE)) {
          for (int i = 0; i < 300; i++) {
            byte[] piece = new byte[4096];
            rnd.nextBytes(piece);
            int at = rnd.nextInt(model.length / 4096) * 4096;
            f.write(ByteBuffer.wrap(piece), at);
            f.force(false);
            System.arraycopy(piece, 0, model, at, piece.length);
            end = Math.max(end, at + piece.length);
          }
        }
        Shell.Result shown = Mounted.cli("stats", "--json", mnt.toString());
        assertThat(shown.exitCode()).as(shown.describe()).isZero();
        Object log = Json.at(Json.parse(shown.stdout()), "store");
        assertThat(Json.longAt(log, "intent_log_records"))
            .as("a record for each fsync, in stats")
            .isEqualTo(300);
        assertThat(Json.longAt(log, "intent_log_writes")).isBetween(1L, 300L);
        assertThat(Json.longAt(log, "intent_log_record_bytes")).isGreaterThanOrEqualTo(300L * 4096);
        assertThat(Json.longAt(log, "intent_log_refused")).isZero();
        m.kill9();
      }
      assertThat(
              new String(Files.readAllBytes(logFile), java.nio.charset.StandardCharsets.ISO_8859_1))
          .as("records in the log on its own file system")
          .contains("DDLG");

      ext4.close();
      ext4Mounted = false;
      Map<String, String> before = snapshotOf(store);
      Shell.Result refused = Mounted.cli("mount", store.toString(), mnt.toString());
      assertThat(refused.exitCode()).as(refused.describe()).isNotZero();
      assertThat(refused.stderr()).contains(logFile.toString()).contains("is not there");
      assertThat(Mounted.isMounted(mnt)).isFalse();
      assertThat(snapshotOf(store)).as("the store after the refused mount").isEqualTo(before);

      ext4.mountAgain();
      ext4Mounted = true;
      Shell.Result back = Mounted.cli("move-intent-log", store.toString());
      assertThat(back.exitCode()).as(back.describe()).isZero();
      assertThat(Files.isRegularFile(store.resolve("intent.log"), LinkOption.NOFOLLOW_LINKS))
          .isTrue();
      assertThat(logFile).doesNotExist();
      logFile = logFile.resolveSibling("moved.log");
      Shell.Result out = Mounted.cli("move-intent-log", store.toString(), logFile.toString());
      assertThat(out.exitCode()).as(out.describe()).isZero();
      assertThat(Files.readSymbolicLink(store.resolve("intent.log"))).isEqualTo(logFile);
      try (Mounted m = Mounted.mount(store, mnt, tmp)) {
        assertThat(Files.readAllBytes(m.mountpoint().resolve("disk.img")))
            .as("every fsynced write, from the log on its own file system")
            .isEqualTo(Arrays.copyOf(model, end));
      }
      Shell.Result fsck = Mounted.cli("fsck", "--store", store.toString());
      assertThat(fsck.exitCode()).as(fsck.describe()).isZero();
      Shell.Result destroyed = Mounted.cli("destroy", store.toString());
      assertThat(destroyed.exitCode()).as(destroyed.describe()).isZero();
      assertThat(logFile).doesNotExist();
    } finally {
      Mounted.forceUnmount(mnt);
      if (ext4Mounted) {
        ext4.close();
      }
    }
  }

  /**
   * Each file below {@code dir} (links not followed) and a digest of its bytes; not LMDB's {@code
   * lock.mdb}, whose table of readers an open rewrites.
   */
  private static Map<String, String> snapshotOf(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (var files = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        if (p.getFileName().toString().equals("lock.mdb")) {
          continue;
        }
        if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
          out.put(dir.relativize(p).toString(), Tools.sha256(Files.readAllBytes(p)));
        } else if (Files.isSymbolicLink(p)) {
          out.put(dir.relativize(p).toString(), "-> " + Files.readSymbolicLink(p));
        }
      }
    }
    return out;
  }

  @Test
  void sigtermAndSigintFlushEverythingUnmountAndExit() throws Exception {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");
    Map<String, byte[]> expected = new java.util.TreeMap<>();
    int n = 0;
    for (String signal : List.of("TERM", "INT")) {
      String[] options = n == 1 ? new String[] {"--writeback-cache"} : new String[0];
      Mounted m = Mounted.mount(store, mnt, tmp, options);
      FileChannel open = null;
      try {
        Path root = m.mountpoint();
        for (var e : expected.entrySet()) {
          assertThat(Files.readAllBytes(root.resolve(e.getKey())))
              .as(e.getKey())
              .isEqualTo(e.getValue());
        }
        // a closed file, and a file still open with writes neither fsynced nor closed
        byte[] closedData = OperationsIT.random(100 + n, 3_000_001);
        Files.write(root.resolve("closed-" + n), closedData);
        expected.put("closed-" + n, closedData);
        byte[] openData = OperationsIT.random(200 + n, 1_500_007);
        open = FileChannel.open(root.resolve("open-" + n), CREATE_NEW, WRITE);
        ByteBuffer b = ByteBuffer.wrap(openData);
        while (b.hasRemaining()) {
          open.write(b);
        }
        if (n == 1) {
          // with the writeback cache, written data may sit in the kernel until a
          // flush; what the daemon must keep is what reached it: fsync hands it over
          open.force(false);
        }
        expected.put("open-" + n, openData);

        long pid = m.pid();
        Tools.run("kill", "-" + signal, Long.toString(pid));
        var exit = ProcessHandle.of(pid).map(ProcessHandle::onExit);
        if (exit.isPresent()) {
          exit.get().get(Mounted.STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        }
        assertThat(m.isAlive()).isFalse();
        int code = m.stopGracefully(); // already exited: only collects the exit code
        assertThat(code)
            .as("exit code after SIG%s\n%s", signal, m.output())
            .isIn(0, 128 + 15, 128 + 2);
        assertThat(Mounted.isMounted(mnt)).as("still mounted after SIG" + signal).isFalse();
        assertThat(lockIsFree(store)).as("store lock free after SIG" + signal).isTrue();
      } finally {
        if (open != null) {
          try {
            open.close();
          } catch (IOException ignored) {
            // the mount is gone
          }
        }
        m.close();
      }
      n++;
    }
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      for (var e : expected.entrySet()) {
        assertThat(Files.readAllBytes(m.mountpoint().resolve(e.getKey())))
            .as(e.getKey())
            .isEqualTo(e.getValue());
      }
    }
  }

  @Test
  void dedupfsUmountReturnsWithTheStoreClosedSoItMountsAgainAtOnce() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    Path store = tmp.resolve("store");
    Path mnt = tmp.resolve("mnt");
    for (int i = 0; i < 4; i++) {
      try (Mounted m =
          Mounted.mount(store, mnt, tmp, i % 2 == 1 ? "--writeback-cache" : "--threads=4")) {
        for (int j = 0; j < i; j++) {
          assertThat(Files.readAllBytes(m.mountpoint().resolve("file-" + j)))
              .isEqualTo(OperationsIT.random(j, 1_000_000 + j));
        }
        // written and closed, never fsynced
        FileChannel ch = FileChannel.open(m.mountpoint().resolve("file-" + i), CREATE_NEW, WRITE);
        ch.write(ByteBuffer.wrap(OperationsIT.random(i, 1_000_000 + i)));
        ch.close();
        Shell.Result r = Mounted.cli("umount", m.mountpoint().toString());
        assertThat(r.exitCode()).as(r.describe()).isZero();
        assertThat(Mounted.isMounted(mnt)).isFalse();
        assertThat(lockIsFree(store)).as("the store's lock when dedupfs umount returned").isTrue();
      }
    }
    try (Mounted m = Mounted.mount(store, mnt, tmp)) {
      for (int j = 0; j < 4; j++) {
        assertThat(Files.readAllBytes(m.mountpoint().resolve("file-" + j)))
            .isEqualTo(OperationsIT.random(j, 1_000_000 + j));
      }
    }
  }

  /** Whether no process holds the store's lock (the daemon holds it while the store is open). */
  static boolean lockIsFree(Path store) throws IOException {
    try (FileChannel ch = FileChannel.open(store.resolve("dedupfs.lock"), WRITE)) {
      FileLock l = ch.tryLock();
      if (l == null) {
        return false;
      }
      l.release();
      return true;
    }
  }
}
