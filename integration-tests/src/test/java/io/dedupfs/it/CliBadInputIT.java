package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CLI refuses bad input the way the contract says: exit code nonzero, exactly one line on
 * stderr that names the problem (and the path concerned), and nothing on disk touched.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
@SecondLane
class CliBadInputIT {

  @TempDir Path tempDir;

  private Path tmp;
  private final List<Path> mountpoints = new ArrayList<>();

  @BeforeEach
  void realTmp() throws IOException {
    tmp = tempDir.toRealPath(); // the CLI may print canonical paths
  }

  /** A mount the CLI wrongly made must not outlive the test (nor block @TempDir's cleanup). */
  @AfterEach
  void detachLeftovers() {
    for (Path mnt : mountpoints) {
      if (Mounted.isMounted(mnt)) {
        Mounted.cli("umount", mnt.toString());
        Mounted.forceUnmount(mnt);
      }
    }
  }

  @Test
  void unknownOptionIsRejectedInOneLine() {
    Path store = tmp.resolve("store");
    Path mnt = mountpoint("mnt");

    Shell.Result r = Mounted.cli("mount", "--no-such-option", store.toString(), mnt.toString());
    assertOneLineError(r, "--no-such-option");

    Shell.Result top = Mounted.cli("--no-such-option");
    assertOneLineError(top, "--no-such-option");

    assertThat(store).doesNotExist();
    assertThat(Mounted.isMounted(mnt)).isFalse();
  }

  @Test
  void missingMountpointIsRejectedAndStoreUntouched() {
    Path store = createStore("store");
    Map<String, String> before = snapshot(store);
    Path mnt = tmp.resolve("no-such-mountpoint");
    mountpoints.add(mnt);

    Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

    assertOneLineError(r, mnt.toString());
    assertThat(r.stderr())
        .containsPattern("(?i)(does not exist|doesn't exist|no such|not found|missing)");
    assertThat(mnt).doesNotExist();
    assertThat(snapshot(store)).isEqualTo(before);
  }

  @Test
  void missingMountpointDoesNotCreateTheStore() {
    Path store = tmp.resolve("new-store");
    Path mnt = tmp.resolve("no-such-mountpoint");
    mountpoints.add(mnt);

    Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

    assertOneLineError(r, mnt.toString());
    assertThat(store).doesNotExist();
  }

  @Test
  void nonEmptyMountpointIsRejected() throws IOException {
    Path store = createStore("store");
    Map<String, String> storeBefore = snapshot(store);
    Path mnt = mountpoint("mnt");
    Files.writeString(mnt.resolve("someone-elses-file.txt"), "keep me\n");
    Map<String, String> mntBefore = snapshot(mnt);

    Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

    assertOneLineError(r, mnt.toString());
    assertThat(r.stderr()).containsPattern("(?i)(not empty|non-empty|nonempty)");
    assertThat(Mounted.isMounted(mnt)).isFalse();
    assertThat(snapshot(mnt)).isEqualTo(mntBefore);
    assertThat(snapshot(store)).isEqualTo(storeBefore);
  }

  @Test
  void directoryOfUnrelatedFilesIsNotTakenForAStore() throws IOException {
    Path store = Files.createDirectories(tmp.resolve("not-a-store"));
    Files.writeString(store.resolve("notes.txt"), "my notes\n");
    byte[] data = new byte[256 * 1024];
    new Random(42).nextBytes(data);
    Files.write(Files.createDirectories(store.resolve("sub")).resolve("data.bin"), data);
    Map<String, String> before = snapshot(store);
    Path mnt = mountpoint("mnt");

    Shell.Result r = Mounted.cli("mount", store.toString(), mnt.toString());

    assertOneLineError(r, store.toString());
    assertThat(r.stderr())
        .containsPattern("(?i)(not a dedupfs store|not a store|no dedupfs store)");
    assertThat(Mounted.isMounted(mnt)).isFalse();
    assertThat(snapshot(store)).isEqualTo(before);
  }

  @Test
  void sameStoreCannotBeMountedTwice() throws IOException {
    Mounted.assumeFuseAvailable();
    Path store = tmp.resolve("store");
    Path mnt1 = mountpoint("mnt1");
    Path mnt2 = mountpoint("mnt2");

    try (Mounted first = Mounted.mount(store, mnt1, tmp)) {
      Files.writeString(mnt1.resolve("before.txt"), "written before\n");

      Shell.Result second = Mounted.cli("mount", store.toString(), mnt2.toString());

      assertOneLineError(second, store.toString());
      assertThat(second.stderr()).containsPattern("(?i)(already|in use|locked|busy)");
      assertThat(second.exitCode()).as("not a usage mistake").isEqualTo(1);
      assertThat(Mounted.isMounted(mnt2)).isFalse();
      // in the foreground too (what systemd and the tests run)
      Shell.Result foreground = Mounted.cli("mount", "-f", store.toString(), mnt2.toString());
      assertOneLineError(foreground, store.toString());
      assertThat(foreground.stderr()).containsPattern("(?i)(already|in use|locked|busy)");
      assertThat(foreground.exitCode()).isEqualTo(1);
      assertThat(Mounted.isMounted(mnt2)).isFalse();
      // and it is not created over
      Shell.Result create = Mounted.cli("create", store.toString());
      assertOneLineError(create, store.toString());
      assertThat(create.stderr()).containsPattern("(?i)already a dedupfs store");
      // the first mount is unharmed
      assertThat(first.isAlive()).isTrue();
      assertThat(Mounted.fstypeAt(mnt1)).contains(Mounted.FSTYPE);
      assertThat(Files.readString(mnt1.resolve("before.txt"))).isEqualTo("written before\n");
      Files.writeString(mnt1.resolve("after.txt"), "written after\n");
      assertThat(Files.readString(mnt1.resolve("after.txt"))).isEqualTo("written after\n");
    }
  }

  @Test
  void umountOfWhatIsNotMountedFails() throws IOException {
    Path dir = mountpoint("plain-dir");
    Shell.Result r = Mounted.cli("umount", dir.toString());
    assertOneLineError(r, dir.toString());
    assertThat(r.stderr()).containsPattern("(?i)(not mounted|not a mount|no dedupfs mount)");

    Path missing = tmp.resolve("no-such-dir");
    Shell.Result r2 = Mounted.cli("umount", missing.toString());
    assertOneLineError(r2, missing.toString());
    assertThat(dir).isEmptyDirectory();
  }

  @Test
  void wrongCommandsAndOptionsAreUsageErrorsThatNameTheMistake() {
    Path store = tmp.resolve("store");
    Path mnt = mountpoint("mnt");
    String s = store.toString();
    String m = mnt.toString();
    List<List<String>> cases =
        List.of(
            List.of("", "missing command"),
            List.of("frobnicate", "frobnicate"),
            List.of("mount --bogus", "--bogus"),
            List.of("mount --bogus=3 S M", "--bogus=3"),
            List.of("mount -x S M", "-x"),
            List.of("mount -o nosuchopt S M", "nosuchopt"),
            List.of("mount -o ro,nosuchopt S M", "nosuchopt"),
            List.of("mount -o threads=abc S M", "threads=abc"),
            List.of("mount -o threads=0 S M", "threads"),
            List.of("mount --threads 999 S M", "threads"),
            List.of("mount -o pool_timeout=soon S M", "pool_timeout=soon"),
            List.of("mount -o pool_timeout=0 S M", "pool timeout"),
            List.of("mount --pool-timeout 99999 S M", "pool timeout"),
            List.of("mount -o pool_cache=lots S M", "pool cache"),
            List.of("mount --pool-cache 1T2 S M", "pool cache"),
            List.of("mount -o fsync=always S M", "fsync is log or commit"),
            List.of("mount --fsync always S M", "always"),
            List.of("destroy", "STORE"),
            List.of("pool stores", "rados:POOL"),
            List.of("pool stores ceph:blocks", "takes rados:POOL"),
            List.of("pool forget rados:blocks 'no/such'", "store id"),
            List.of("mount -o leaf_size=3K S M", "leaf size"),
            List.of("mount --leaf-size 5K S M", "leaf size"),
            List.of("mount --leaf-size lots S M", "lots"),
            List.of("mount -o log= S M", "log="),
            List.of("mount S", "MOUNTPOINT"),
            List.of("mount S M extra", "extra"),
            List.of("create", "STORE"),
            List.of("create --leaf-size 3K S", "leaf size"),
            List.of("create --compression lz5 S", "unknown compression 'lz5'"),
            List.of("create --compression zstd:99 S", "zstd's level must be 1 to 19"),
            List.of("create --compression lz4:3 S", "lz4 takes no level"),
            List.of("create --log-size 100K S", "--log-size must be from 1M to 64G, not 100K"),
            List.of("create --log-size lots S", "'lots' is not a size"),
            List.of("create --intent-log /proc/no-such-dir/x.log S", "is not a directory"),
            List.of("create --intent-log M S", "exists; the log goes into a new file"),
            List.of("set-compression", "COMPRESSION"),
            List.of("set-compression gzip --store S", "unknown compression 'gzip'"),
            List.of("set-compression zstd:x --store S", "zstd's level must be a number"),
            List.of("umount", "MOUNTPOINT"));
    for (List<String> c : cases) {
      String[] args =
          c.get(0).isEmpty()
              ? new String[0]
              : c.get(0).replace(" S", " " + s).replace(" M", " " + m).split(" ");
      Shell.Result r = Mounted.cli(args);
      assertOneLineError(r, c.get(1));
      assertThat(r.exitCode()).as("a usage mistake\n%s", r.describe()).isEqualTo(2);
    }
    assertThat(store).doesNotExist();
    assertThat(mnt).isEmptyDirectory();
    assertThat(Mounted.isMounted(mnt)).isFalse();
  }

  @Test
  void storePathThatIsAFileIsRefusedUntouched() throws IOException {
    Path file = tmp.resolve("store-is-a-file");
    Files.writeString(file, "an ordinary file\n");
    Path mnt = mountpoint("mnt");
    Map<String, String> before = snapshot(tmp);

    for (String[] args :
        List.of(
            new String[] {"mount", file.toString(), mnt.toString()},
            new String[] {"mount", "-f", file.toString(), mnt.toString()},
            new String[] {"mount", "-o", "ro", file.toString(), mnt.toString()},
            new String[] {"create", file.toString()},
            new String[] {"mount", file.resolve("below").toString(), mnt.toString()},
            new String[] {"create", file.resolve("below").toString()})) {
      Shell.Result r = Mounted.cli(args);
      assertOneLineError(r, file.toString());
      assertThat(r.stderr()).containsPattern("(?i)not a directory");
    }
    assertThat(Mounted.isMounted(mnt)).isFalse();
    assertThat(snapshot(tmp)).isEqualTo(before);
  }

  @Test
  void mountpointThatIsAFileIsRefusedAndNothingIsCreated() throws IOException {
    Path store = tmp.resolve("new-store");
    Path file = tmp.resolve("mountpoint-is-a-file");
    Files.writeString(file, "keep me\n");
    Map<String, String> before = snapshot(tmp);

    Shell.Result r = Mounted.cli("mount", store.toString(), file.toString());
    assertOneLineError(r, file.toString());
    assertThat(r.stderr()).containsPattern("(?i)not a directory");
    Shell.Result f = Mounted.cli("mount", "-f", store.toString(), file.toString());
    assertOneLineError(f, file.toString());

    assertThat(store).doesNotExist();
    assertThat(snapshot(tmp)).isEqualTo(before);
  }

  @Test
  void mountpointWithSomethingMountedOnItIsRefused() throws IOException {
    Mounted.assumeFuseAvailable();
    org.junit.jupiter.api.Assumptions.assumeTrue(Tools.isRoot(), "mounting a tmpfs needs root");
    Path store1 = tmp.resolve("store1");
    Path store2 = createStore("store2");
    Map<String, String> store2Before = snapshot(store2);
    Path mnt1 = mountpoint("mnt1");
    try (Mounted first = Mounted.mount(store1, mnt1, tmp)) {
      Files.writeString(mnt1.resolve("in-first.txt"), "first\n");
      for (String[] args :
          List.of(
              new String[] {"mount", store2.toString(), mnt1.toString()},
              new String[] {"mount", "-f", store2.toString(), mnt1.toString()},
              new String[] {"mount", store1.toString(), mnt1.toString()})) {
        Shell.Result r = Mounted.cli(args);
        assertOneLineError(r, mnt1.toString());
        assertThat(r.stderr()).containsPattern("(?i)already mounted");
      }
      assertThat(snapshot(store2)).isEqualTo(store2Before);
      assertThat(first.isAlive()).isTrue();
      assertThat(Mounted.fstypeAt(mnt1)).contains(Mounted.FSTYPE);
      assertThat(Files.readString(mnt1.resolve("in-first.txt"))).isEqualTo("first\n");
    }

    // another file system: an empty tmpfs is still a mount
    Path tmpfs = mountpoint("tmpfs");
    Tools.run("mount", "-t", "tmpfs", "-o", "size=1m", "dedupfs-it-tmpfs", tmpfs.toString());
    try {
      Shell.Result r = Mounted.cli("mount", store2.toString(), tmpfs.toString());
      assertOneLineError(r, tmpfs.toString());
      assertThat(r.stderr()).containsPattern("(?i)already mounted");
      assertThat(Mounted.fstypeAt(tmpfs)).contains("tmpfs");
      assertThat(snapshot(store2)).isEqualTo(store2Before);
    } finally {
      Tools.run("umount", tmpfs.toString());
    }
  }

  @Test
  void damagedStoreIsRefusedAndItsFilesAreLeftAlone() throws IOException {
    // a store whose data.mdb is not LMDB at all (a torn copy, a disk error)
    Path store = Files.createDirectories(tmp.resolve("damaged"));
    byte[] junk = new byte[1 << 20];
    new Random(7).nextBytes(junk);
    Files.write(store.resolve("data.mdb"), junk);
    Files.createFile(store.resolve("dedupfs.lock"));
    Map<String, String> before = snapshot(store);
    Path mnt = mountpoint("mnt");

    for (String[] args :
        List.of(
            new String[] {"mount", store.toString(), mnt.toString()},
            new String[] {"mount", "-f", store.toString(), mnt.toString()},
            new String[] {"mount", "-o", "ro", store.toString(), mnt.toString()})) {
      Shell.Result r = Mounted.cli(args);
      assertOneLineError(r, store.toString());
      assertThat(r.exitCode()).as("not a usage mistake").isEqualTo(1);
    }
    assertThat(Mounted.isMounted(mnt)).isFalse();
    // Known engine bug: LMDB leaves a lock.mdb beside the damaged data.mdb. What was there is
    // unchanged.
    Map<String, String> after = snapshot(store);
    after.remove("lock.mdb");
    assertThat(after).isEqualTo(before);
  }

  @Test
  void readOnlyMountOfNoStoreIsRefusedAndCreatesNothing() throws IOException {
    Path missing = tmp.resolve("missing-store");
    Path empty = Files.createDirectories(tmp.resolve("empty-store"));
    Path mnt = mountpoint("mnt");
    for (Path store : List.of(missing, empty)) {
      for (String ro : List.of("-o ro", "--read-only", "-r")) {
        List<String> args = new ArrayList<>(List.of("mount"));
        args.addAll(List.of(ro.split(" ")));
        args.addAll(List.of(store.toString(), mnt.toString()));
        Shell.Result r = Mounted.cli(args.toArray(String[]::new));
        assertOneLineError(r, store.getFileName().toString());
        assertThat(r.stderr()).containsPattern("(?i)(no such store|not a store|no dedupfs store)");
      }
    }
    assertThat(missing).doesNotExist();
    assertThat(empty).isEmptyDirectory();
    assertThat(Mounted.isMounted(mnt)).isFalse();
  }

  @Test
  void createRefusesAStoreAndANonEmptyDirectory() throws IOException {
    Path store = createStore("store");
    Map<String, String> storeBefore = snapshot(store);
    Path dir = Files.createDirectories(tmp.resolve("full"));
    Files.writeString(dir.resolve("file.txt"), "mine\n");
    Map<String, String> dirBefore = snapshot(dir);

    Shell.Result again = Mounted.cli("create", store.toString());
    assertOneLineError(again, store.toString());
    assertThat(again.stderr()).containsPattern("(?i)already a dedupfs store");
    Shell.Result full = Mounted.cli("create", dir.toString());
    assertOneLineError(full, dir.toString());
    assertThat(full.stderr()).containsPattern("(?i)not a dedupfs store");

    assertThat(snapshot(store)).isEqualTo(storeBefore);
    assertThat(snapshot(dir)).isEqualTo(dirBefore);
  }

  @Test
  void umountOfAnotherFileSystemIsRefused() throws IOException {
    org.junit.jupiter.api.Assumptions.assumeTrue(Tools.isRoot(), "mounting a tmpfs needs root");
    Path tmpfs = mountpoint("tmpfs");
    Tools.run("mount", "-t", "tmpfs", "-o", "size=1m", "dedupfs-it-tmpfs", tmpfs.toString());
    try {
      Files.writeString(tmpfs.resolve("keep.txt"), "keep\n");
      Shell.Result r = Mounted.cli("umount", tmpfs.toString());
      assertOneLineError(r, tmpfs.toString());
      assertThat(r.stderr()).containsPattern("(?i)not a dedupfs mount");
      assertThat(Mounted.fstypeAt(tmpfs)).contains("tmpfs");
      assertThat(Files.readString(tmpfs.resolve("keep.txt"))).isEqualTo("keep\n");
    } finally {
      Tools.run("umount", tmpfs.toString());
    }
    Path file = tmp.resolve("a-file");
    Files.writeString(file, "x");
    Shell.Result r = Mounted.cli("umount", file.toString());
    assertOneLineError(r, file.toString());
    assertThat(file).hasContent("x");
  }

  @Test
  void aMountWhoseDaemonDiedIsNamedAsSuchAndDedupfsUmountClearsIt() throws IOException {
    Mounted.assumeFuseAvailable();
    Path store = tmp.resolve("store");
    Path mnt = mountpoint("mnt");
    Mounted dead = Mounted.mount(store, mnt, tmp);
    try {
      Files.writeString(mnt.resolve("written.txt"), "before the crash\n");
      dead.kill9();
      assertThat(Mounted.fstypeAt(mnt)).contains(Mounted.FSTYPE); // stat there: ENOTCONN

      // mounting again there says what is wrong and what to do (not "does not exist")
      for (String[] args :
          List.of(
              new String[] {"mount", store.toString(), mnt.toString()},
              new String[] {"mount", "-f", store.toString(), mnt.toString()})) {
        Shell.Result r = Mounted.cli(args);
        assertOneLineError(r, mnt.toString());
        assertThat(r.stderr()).containsPattern("(?i)daemon is gone").contains("dedupfs umount");
      }
      // and dedupfs umount clears it, so that the store mounts again
      Shell.Result u = Mounted.cli("umount", mnt.toString());
      assertThat(u.exitCode()).as(u.describe()).isZero();
      assertThat(Mounted.isMounted(mnt)).isFalse();
      try (Mounted again = Mounted.mount(store, mnt, tmp)) {
        assertThat(Files.readString(again.mountpoint().resolve("written.txt")))
            .isEqualTo("before the crash\n");
      }
    } finally {
      dead.close();
    }
  }

  @Test
  void umountOfABusyMountIsRefusedAndTheMountKeepsServing() throws IOException {
    Mounted.assumeFuseAvailable();
    Path mnt = mountpoint("mnt");
    try (Mounted m = Mounted.mount(tmp.resolve("store"), mnt, tmp)) {
      Path f = mnt.resolve("open.txt");
      Files.writeString(f, "open\n");
      try (var open =
          java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.READ)) {
        Shell.Result r = Mounted.cli("umount", mnt.toString());
        assertOneLineError(r, mnt.toString());
        assertThat(r.stderr()).containsPattern("(?i)busy");
        assertThat(open.size()).isEqualTo(5);
        assertThat(r.exitCode()).isEqualTo(1);
        assertThat(m.isAlive()).isTrue();
        assertThat(Mounted.fstypeAt(mnt)).contains(Mounted.FSTYPE);
        Files.writeString(mnt.resolve("after.txt"), "still serving\n");
        assertThat(Files.readString(mnt.resolve("after.txt"))).isEqualTo("still serving\n");
      }
    } // close() unmounts with dedupfs umount, now that nothing is open
  }

  // ---- helpers -------------------------------------------------------------------------------

  private static void assertOneLineError(Shell.Result r, String mustMention) {
    assertThat(r.exitCode()).as("exit code of a refused command\n%s", r.describe()).isNotZero();
    List<String> lines = r.stderr().strip().lines().toList();
    assertThat(lines).as("stderr must be exactly one line\n%s", r.describe()).hasSize(1);
    assertThat(lines.get(0))
        .as("errors start with 'dedupfs: '\n%s", r.describe())
        .startsWith("dedupfs: ");
    assertThat(lines.get(0))
        .as("the error must name %s\n%s", mustMention, r.describe())
        .contains(mustMention);
  }

  private Path mountpoint(String name) {
    try {
      Path p = Files.createDirectories(tmp.resolve(name));
      mountpoints.add(p);
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private Path createStore(String name) {
    Path store = tmp.resolve(name);
    Shell.Result r = Mounted.cli("create", store.toString());
    assertThat(r.exitCode()).as("dedupfs create\n%s", r.describe()).isZero();
    assertThat(store).isDirectory();
    return store;
  }

  /**
   * Relative path -> size, mtime and SHA-256 of the content ("dir" for directories), for the whole
   * tree. Files over 256 MiB (a sparse LMDB map, say) get size and mtime only.
   */
  private static Map<String, String> snapshot(Path root) {
    Map<String, String> tree = new TreeMap<>();
    try (Stream<Path> paths = Files.walk(root)) {
      for (Path p : (Iterable<Path>) paths::iterator) {
        String rel = root.relativize(p).toString();
        if (Files.isDirectory(p)) {
          tree.put(rel, "dir");
          continue;
        }
        long size = Files.size(p);
        String id = "size=" + size + " mtime=" + Files.getLastModifiedTime(p);
        tree.put(rel, size > (256L << 20) ? id : id + " sha256=" + sha256(p));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return tree;
  }

  private static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
