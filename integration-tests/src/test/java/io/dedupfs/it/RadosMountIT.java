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
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class RadosMountIT {
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
    for (Mounted m : mounts) {
      m.close();
      assertThat(m.output())
          .as("daemon log of %s", m.mountpoint())
          .doesNotContain("request failed unexpectedly")
          .doesNotContain(" ERROR ");
    }
  }

  private Path create(String name) {
    Path store = tmp.resolve(name + "-store");
    Shell.Result r =
        Mounted.cli(
            "create",
            "--blocks",
            "rados:blocks",
            "--ceph-conf",
            ceph.conf().toString(),
            store.toString());
    assertThat(r.exitCode()).as("create: %s", r.stderr()).isZero();
    assertThat(r.stdout()).contains("blocks in rados:blocks");
    return store;
  }

  private Mounted mount(Path store, String name) {
    Mounted m = Mounted.mount(store, tmp.resolve(name + "-mnt"), tmp);
    mounts.add(m);
    return m;
  }

  /** Applies the store's queued frees and pool releases (fsck reclaims first), and checks it. */
  private static void fsck(Mounted m) {
    Shell.Result r = Mounted.cli("fsck", m.mountpoint().toString());
    assertThat(r.exitCode()).as("fsck %s: %s %s", m.mountpoint(), r.stdout(), r.stderr()).isZero();
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
}
