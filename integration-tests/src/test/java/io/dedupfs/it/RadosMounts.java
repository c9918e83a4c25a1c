package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.rados.RadosPool;
import io.dedupfs.rados.TestCeph;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the ITs of stores whose blocks are in a RADOS pool share: {@link TestCeph}'s cluster, a
 * temporary directory, stores made by {@code dedupfs create --blocks rados:blocks}, mounts that are
 * unmounted after each test (their daemon logs free of unexpected failures), and the maintenance
 * commands they check the stores with.
 *
 * <p>These classes run in the {@link SecondLane}, beside most other ITs and one at a time among
 * themselves: they count the pool's objects, so no other test may change the pool meanwhile. On the
 * 2-core CI machine each lane runs slower for sharing it, and the ITs took 21:20 minutes instead of
 * 24:39 when this lane was first made.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
@SecondLane
abstract class RadosMounts {
  @TempDir Path tempDir;

  Path tmp;
  TestCeph ceph;
  final List<Mounted> mounts = new ArrayList<>();

  @BeforeEach
  void setUp() throws IOException {
    Mounted.assumeFuseAvailable();
    ceph = TestCeph.get();
    tmp = tempDir.toRealPath();
  }

  @AfterEach
  void unmount() {
    Mounted.closeAll(mounts);
  }

  /** Runs {@code dedupfs create --blocks rados:blocks} for the store {@code NAME-store}. */
  Path create(String name) {
    return create(name, "blocks");
  }

  /** Runs {@code dedupfs create --blocks rados:POOL} for the store {@code NAME-store}. */
  Path create(String name, String pool) {
    Path store = tmp.resolve(name + "-store");
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

  /** A client of the test cluster's pool {@code blocks}: object counts, holders, counts. */
  RadosPool pool() throws IOException {
    return RadosPool.connect(ceph.conf(), "admin", "blocks", Duration.ofSeconds(30));
  }

  /** Mounts {@code store} on {@code NAME-mnt} (the same path each time), with mount options. */
  Mounted mount(Path store, String name, String... options) {
    Mounted m = Mounted.mount(store, tmp.resolve(name + "-mnt"), tmp, options);
    mounts.add(m);
    return m;
  }

  /**
   * Mount options for a mount that reads every block from the pool: no cache on the local disk (the
   * mount empties the store's).
   */
  static final String[] NO_CACHE = {"-o", "pool_cache=0"};

  /**
   * Unmounts {@code m} and mounts its store again: a new daemon, nothing cached in its memory (its
   * cache on the local disk stays, unless {@code options} say {@link #NO_CACHE}).
   */
  Mounted remount(Mounted m, String name, String... options) {
    m.close();
    mounts.remove(m);
    return mount(m.store(), name, options);
  }

  /** Applies the store's queued frees and pool releases (fsck reclaims first), and checks it. */
  static void fsck(Mounted m) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), "fsck", m.mountpoint().toString());
    assertThat(r.exitCode()).as("fsck %s: %s %s", m.mountpoint(), r.stdout(), r.stderr()).isZero();
    assertThat(r.stdout()).contains("fsck: clean");
  }

  /** Runs {@code dedupfs reconcile --json STORE}; returns how many references it released. */
  static long reconcile(Path store) {
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
}
