package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.rados.RadosPool;
import io.dedupfs.rados.TestCeph;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Stores whose blocks are in a RADOS pool, on real mounts (issue 14): two stores made by {@code
 * dedupfs create --blocks rados:blocks} on one pool ({@link TestCeph}'s cluster), a file copied
 * onto both with {@code cp}: it reads back equal, the pool holds it once; deleting it on one mount
 * keeps the other's bytes (read after a remount, from the pool), deleting it on both brings the
 * pool's object count back. Bad input to create is one line and creates nothing.
 *
 * <p>Faults: a daemon dies by SIGKILL in the middle of a {@code cp} of unique data, then in the
 * middle of deleting files. Each time the store is mounted again (the intent log is replayed,
 * queued releases drained) and {@code dedupfs reconcile} is run; then every file whose cp and fsync
 * had returned reads back equal (and every file whose delete returned is gone), {@code fsck} is
 * clean, and the pool holds exactly the blocks the two stores count ({@code scrub}'s blocks
 * checked, each read from the pool and checked against its hash): nothing leaked, nothing missing.
 * A second store on the pool, holding other data, keeps every block.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class RadosMountIT {
  private static final int FILES = 4;
  private static final int FILE_BYTES = (1 << 20) + 4321;
  private static final int SLOW_MIB = 96;
  private static final long PROGRESS_TIMEOUT_MS = TimeUnit.MINUTES.toMillis(4);

  @TempDir Path tempDir;

  private Path tmp;
  private TestCeph ceph;
  private final List<Mounted> mounts = new ArrayList<>();

  @BeforeEach
  void setUp() throws IOException {
    Mounted.assumeFuseAvailable();
    ceph = TestCeph.get();
    tmp = tempDir.toRealPath();
  }

  @AfterEach
  void unmount() {
    unmount(mounts);
  }

  /** Unmounts each of {@code mounts}; their daemons logged no failed request and no error. */
  static void unmount(List<Mounted> mounts) {
    for (Mounted m : mounts) {
      m.close();
      assertThat(m.output())
          .as("daemon log of %s", m.mountpoint())
          .doesNotContain("request failed unexpectedly")
          .doesNotContain(" ERROR ");
    }
  }

  private Path create(String name) {
    return create(ceph, tmp.resolve(name + "-store"), "blocks");
  }

  /**
   * {@code dedupfs create --blocks rados:POOL} of store {@code store} on {@code ceph}'s cluster.
   */
  static Path create(TestCeph ceph, Path store, String pool) {
    Shell.Result r =
        Mounted.cli(
            "create",
            "--blocks",
            "rados:" + pool,
            "--ceph-conf",
            ceph.conf().toString(),
            store.toString());
    assertThat(r.exitCode()).as("create: %s", r.stderr()).isZero();
    assertThat(r.stdout()).contains("blocks in rados:" + pool);
    return store;
  }

  private Mounted mount(Path store, String name) {
    Mounted m = Mounted.mount(store, tmp.resolve(name + "-mnt"), tmp);
    mounts.add(m);
    return m;
  }

  /** Applies the store's queued frees and pool releases (fsck reclaims first), and checks it. */
  static void fsck(Mounted m) {
    Shell.Result r = Mounted.cli("fsck", m.mountpoint().toString());
    assertThat(r.exitCode()).as("fsck %s: %s %s", m.mountpoint(), r.stdout(), r.stderr()).isZero();
    assertThat(r.stdout()).contains("fsck: clean");
  }

  private static void cp(Path from, Path to) {
    Shell.Result r = Shell.run("cp", from.toString(), to.toString());
    assertThat(r.exitCode()).as("cp: %s", r.stderr()).isZero();
  }

  @Test
  void twoMountsOnOnePoolStoreACopiedFileOnce() throws IOException {
    byte[] data = new byte[8 * 1024 * 1024 + 123];
    new SplittableRandom(System.nanoTime()).nextBytes(data);
    Path src = tmp.resolve("src.bin");
    Files.write(src, data);
    try (RadosPool probe =
        RadosPool.connect(ceph.conf(), "admin", "blocks", Duration.ofSeconds(30))) {
      long before = probe.objectCount();
      Path storeA = create("a");
      Path storeB = create("b");
      Mounted a = mount(storeA, "a");
      Mounted b = mount(storeB, "b");

      cp(src, a.mountpoint().resolve("f"));
      assertThat(Files.readAllBytes(a.mountpoint().resolve("f"))).isEqualTo(data);
      fsck(a);
      long withA = probe.objectCount();
      assertThat(withA - before).as("objects: 513 leaves and their nodes").isGreaterThan(513);

      cp(src, b.mountpoint().resolve("f"));
      assertThat(Files.readAllBytes(b.mountpoint().resolve("f"))).isEqualTo(data);
      fsck(b);
      assertThat(probe.objectCount()).as("objects after B's copy: stored once").isEqualTo(withA);

      Files.delete(a.mountpoint().resolve("f"));
      fsck(a);
      assertThat(probe.objectCount()).as("objects after A's delete").isEqualTo(withA);
      b.close();
      mounts.remove(b);
      Mounted b2 = mount(storeB, "b"); // nothing cached: B's bytes come from the pool
      assertThat(Files.readAllBytes(b2.mountpoint().resolve("f")))
          .as("B's file after A's delete")
          .isEqualTo(data);

      Files.delete(b2.mountpoint().resolve("f"));
      fsck(b2);
      assertThat(probe.objectCount()).as("objects after both deletes").isEqualTo(before);
    }
  }

  @Test
  void badPoolsAreOneLineAndCreateNothing() throws IOException {
    Path store = tmp.resolve("bad-store");
    String conf = ceph.conf().toString();
    String[][] cases = {
      {"--blocks", "rados:no-such-pool", "--ceph-conf", conf},
      {"--blocks", "rados:blocks", "--ceph-conf", tmp.resolve("missing.conf").toString()},
      {"--blocks", "rados:blocks", "--ceph-conf", conf, "--ceph-id", "nobody"},
      {"--blocks", "s3:blocks"},
      {"--ceph-conf", conf},
    };
    String[] expected = {
      "ENOENT",
      "cannot read the Ceph configuration",
      "EACCES",
      "takes rados:POOL",
      "go with --blocks"
    };
    for (int i = 0; i < cases.length; i++) {
      List<String> args = new ArrayList<>(List.of("create"));
      args.addAll(List.of(cases[i]));
      args.add(store.toString());
      Shell.Result r = Mounted.cli(args.toArray(String[]::new));
      assertThat(r.exitCode()).as("%s", args).isNotZero();
      assertThat(r.stderr().strip()).as("%s", args).contains(expected[i]).doesNotContain("\n");
      assertThat(Files.exists(store)).as("%s: nothing created", args).isFalse();
    }
  }

  @Test
  void kill9DuringCpAndDeletesThenReconcileLeavesExactlyTheCountedBlocks() throws Exception {
    SplittableRandom rnd = new SplittableRandom(System.nanoTime());
    List<byte[]> data = new ArrayList<>();
    List<Path> sources = new ArrayList<>();
    for (int i = 0; i < FILES; i++) {
      byte[] b = new byte[FILE_BYTES];
      rnd.nextBytes(b);
      data.add(b);
      sources.add(Files.write(tmp.resolve("src-" + i), b));
    }
    byte[] other = new byte[3 * (1 << 20) + 77];
    rnd.nextBytes(other);
    Path otherSrc = Files.write(tmp.resolve("other"), other);

    try (RadosPool probe =
        RadosPool.connect(ceph.conf(), "admin", "blocks", Duration.ofSeconds(30))) {
      long before = probe.objectCount();
      Path storeA = create("a");
      Path storeB = create("b");
      Mounted b = mount(storeB, "b");
      Shell.checked("cp", otherSrc.toString(), b.mountpoint().resolve("other").toString());
      Shell.checked("sync", b.mountpoint().resolve("other").toString());

      // 1. killed in the middle of a cp: the files copied and synced before stay
      long withB = probe.objectCount();
      Mounted a = mount(storeA, "a");
      List<Integer> copied = new ArrayList<>();
      for (int i = 0; i < FILES; i++) {
        Path dst = a.mountpoint().resolve("f-" + i);
        Shell.checked("cp", sources.get(i).toString(), dst.toString());
        Shell.checked("sync", dst.toString());
        copied.add(i);
      }
      // their commits end: 65 leaves a file, and at least its root
      awaitThen(
          () -> objects(probe) - withB >= FILES * 66L, "the synced files' blocks in the pool");
      // then a cp of unique data fed slowly through a pipe: the 5 s timer commits what it wrote
      // so far, taking pool references in a transaction the kill interrupts (nothing replays it:
      // the data was neither synced nor closed)
      Path fifo = tmp.resolve("slow");
      Shell.checked("mkfifo", fifo.toString());
      Thread feeder =
          new Thread(
              () -> {
                SplittableRandom r = new SplittableRandom(rnd.nextLong());
                byte[] chunk = new byte[1 << 20];
                try (var out = Files.newOutputStream(fifo)) {
                  for (int i = 0; i < SLOW_MIB; i++) {
                    r.nextBytes(chunk);
                    out.write(chunk);
                    Thread.sleep(250);
                  }
                } catch (IOException | InterruptedException e) {
                  // cp died with the daemon
                }
              },
              "feeder");
      feeder.setDaemon(true);
      feeder.start();
      long withSynced = probe.objectCount();
      Shell.Result[] slow = new Shell.Result[1];
      Thread cp =
          new Thread(
              () ->
                  slow[0] =
                      Shell.run(
                          Duration.ofMinutes(3),
                          "cp",
                          fifo.toString(),
                          a.mountpoint().resolve("slow").toString()),
              "cp");
      cp.start();
      awaitThen(
          () -> objects(probe) - withSynced >= 200 || !cp.isAlive(),
          "the pool references of the cp's first commit");
      a.kill9();
      cp.join(TimeUnit.MINUTES.toMillis(2));
      assertThat(cp.isAlive()).as("cp still running after the kill").isFalse();
      a.close(); // detaches the dead mount
      mounts.remove(a);
      assertThat(slow[0].ok()).as("the kill came in the middle of the slow cp").isFalse();

      Mounted a2 = mount(storeA, "a");
      for (int i : copied) {
        assertThat(Files.readAllBytes(a2.mountpoint().resolve("f-" + i)))
            .as("f-%d, copied and synced before the kill", i)
            .isEqualTo(data.get(i));
      }
      long leaked = leaked(probe, before, a2, b);
      long released = reconcile(storeA);
      System.out.printf(
          "RadosMountIT: after the kill during cp (%d files synced): %d objects leaked,"
              + " reconcile released %d%n",
          copied.size(), leaked, released);
      assertThat(released).as("released = objects nobody counted").isEqualTo(leaked);
      assertExactlyTheCountedBlocks(probe, before, storeA, a2, b);

      // 2. killed in the middle of deletes: files deleted stay gone, the others stay equal
      List<Integer> deleted = new CopyOnWriteArrayList<>();
      Thread rm =
          new Thread(
              () -> {
                for (int i : copied) {
                  try {
                    Files.delete(a2.mountpoint().resolve("f-" + i));
                  } catch (IOException e) {
                    return; // the daemon died
                  }
                  deleted.add(i);
                }
              },
              "rm");
      long objectsBeforeDeletes = probe.objectCount();
      rm.start();
      // kill once the freed blocks are leaving the pool (the store releases them in the background)
      awaitThen(
          () -> deleted.size() >= 2 && objects(probe) < objectsBeforeDeletes - 50,
          "pool objects released before the kill");
      a2.kill9();
      rm.join(TimeUnit.MINUTES.toMillis(2));
      assertThat(rm.isAlive()).as("rm still running after the kill").isFalse();
      a2.close();
      mounts.remove(a2);

      Mounted a3 = mount(storeA, "a");
      for (int i : copied) {
        Path f = a3.mountpoint().resolve("f-" + i);
        if (deleted.contains(i)) {
          assertThat(f).as("f-%d, deleted before the kill", i).doesNotExist();
        } else if (Files.exists(f)) { // its delete may have been in flight
          assertThat(Files.readAllBytes(f)).as("f-%d, not deleted", i).isEqualTo(data.get(i));
        }
      }
      leaked = leaked(probe, before, a3, b);
      released = reconcile(storeA);
      System.out.printf(
          "RadosMountIT: after the kill during deletes (%d of %d deleted): %d objects leaked,"
              + " reconcile released %d%n",
          deleted.size(), copied.size(), leaked, released);
      assertThat(released).as("released = objects nobody counted").isEqualTo(leaked);
      assertExactlyTheCountedBlocks(probe, before, storeA, a3, b);

      // B's file is intact, read from the pool after a remount (nothing cached)
      b.close();
      mounts.remove(b);
      Mounted b2 = mount(storeB, "b");
      assertThat(Files.readAllBytes(b2.mountpoint().resolve("other"))).isEqualTo(other);

      // and deleting everything on both brings the pool back to where it was
      try (var all = Files.list(a3.mountpoint())) {
        for (Path p : (Iterable<Path>) all::iterator) {
          Files.delete(p);
        }
      }
      Files.delete(b2.mountpoint().resolve("other"));
      fsck(a3);
      fsck(b2);
      assertThat(probe.objectCount()).as("objects after deleting everything").isEqualTo(before);
    }
  }

  /**
   * After fsck (which applies the queued frees and releases): the pool holds exactly the blocks
   * that A and B count (their data is unique, so no block is shared), and scrub reads each of them
   * back from the pool intact.
   */
  private static void assertExactlyTheCountedBlocks(
      RadosPool probe, long before, Path storeA, Mounted a, Mounted b) throws IOException {
    fsck(a);
    fsck(b);
    long blocksA = scrub(a);
    long blocksB = scrub(b);
    assertThat(probe.objectCount())
        .as("pool objects = before + A's %d + B's %d counted blocks", blocksA, blocksB)
        .isEqualTo(before + blocksA + blocksB);
    assertThat(reconcile(storeA)).as("a second reconcile releases nothing").isZero();
  }

  /**
   * After fsck: the pool's objects beyond those the two stores count (their data is unique: each
   * block is held by one store only).
   */
  private static long leaked(RadosPool probe, long before, Mounted a, Mounted b)
      throws IOException {
    fsck(a);
    fsck(b);
    return probe.objectCount() - before - scrub(a) - scrub(b);
  }

  private static long objects(RadosPool probe) {
    try {
      return probe.objectCount();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Runs {@code dedupfs reconcile --json STORE}; returns how many references it released. */
  private static long reconcile(Path store) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), "reconcile", "--json", store.toString());
    assertThat(r.exitCode()).as("reconcile: %s %s", r.stdout(), r.stderr()).isZero();
    String[] lines = r.stdout().strip().split("\n");
    Object report = Json.parse(lines[lines.length - 1]);
    assertThat(Json.at(report, "type")).isEqualTo("reconcile");
    assertThat(Json.at(report, "pool")).isEqualTo("rados:blocks");
    return Json.longAt(report, "released");
  }

  /** Runs scrub; asserts nothing is damaged; returns the blocks it checked (the store's count). */
  static long scrub(Mounted m) {
    Shell.Result r =
        Mounted.cli(Duration.ofMinutes(5), "scrub", "--json", m.mountpoint().toString());
    assertThat(r.exitCode()).as("scrub %s: %s %s", m.mountpoint(), r.stdout(), r.stderr()).isZero();
    String[] lines = r.stdout().strip().split("\n");
    Object report = Json.parse(lines[lines.length - 1]);
    assertThat((List<?>) Json.at(report, "damaged")).isEmpty();
    return Json.longAt(report, "blocks_checked");
  }

  private static void awaitThen(BooleanSupplier condition, String what)
      throws InterruptedException {
    long deadline = System.currentTimeMillis() + PROGRESS_TIMEOUT_MS;
    while (!condition.getAsBoolean()) {
      assertThat(System.currentTimeMillis()).as("waiting for %s", what).isLessThan(deadline);
      Thread.sleep(20);
    }
  }
}
