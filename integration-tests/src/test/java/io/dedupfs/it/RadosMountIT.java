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
import org.junit.jupiter.api.Test;

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
 *
 * <p>The end of a store: {@code dedupfs destroy}, and {@code dedupfs pool stores|forget} for a
 * store whose directory is lost, give its blocks back and keep the other store's.
 */
class RadosMountIT extends RadosMounts {
  private static final int FILES = 4;
  private static final int FILE_BYTES = (1 << 20) + 4321;
  private static final int SLOW_MIB = 96;
  private static final long PROGRESS_TIMEOUT_MS = TimeUnit.MINUTES.toMillis(4);

  private static void cp(Path from, Path to) {
    Shell.Result r = Shell.run("cp", from.toString(), to.toString());
    assertThat(r.exitCode()).as("cp: %s", r.stderr()).isZero();
  }

  @Test
  void twoMountsOnOnePoolStoreACopiedFileOnce() throws Exception {
    byte[] data = new byte[8 * 1024 * 1024 + 123];
    new SplittableRandom(System.nanoTime()).nextBytes(data);
    Path src = tmp.resolve("src.bin");
    Files.write(src, data);
    java.util.Set<Long> leaves = new java.util.HashSet<>();
    for (long l = 0; l * LEAF < data.length; l++) {
      leaves.add(l);
    }
    // 513 leaves, 5 nodes above them and the root
    copyOntoTwoStoresThenDelete(src, blocksOf(leaves, leaves.size()), data.length);
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

  /**
   * The end of a store's life on a pool: {@code dedupfs destroy} of a store (refused while it is
   * mounted) gives its blocks back to the pool and keeps the other store's; a store whose directory
   * is lost is listed by {@code dedupfs pool stores} with its blocks and its directory, and {@code
   * dedupfs pool forget --force} releases them (refused without --force: it is on the list).
   */
  @Test
  void destroyAndPoolForgetGiveTheBlocksOfAStoreBack() throws Exception {
    SplittableRandom rnd = new SplittableRandom(System.nanoTime());
    byte[] shared = new byte[4 * (1 << 20) + 11];
    byte[] onlyA = new byte[2 * (1 << 20) + 22];
    rnd.nextBytes(shared);
    rnd.nextBytes(onlyA);
    Path sharedSrc = Files.write(tmp.resolve("shared"), shared);
    Path onlyASrc = Files.write(tmp.resolve("onlyA"), onlyA);
    String conf = ceph.conf().toString();
    try (RadosPool probe = pool()) {
      long before = probe.objectCount();
      Path a = create("a");
      Path b = create("b");
      Mounted ma = mount(a, "a");
      Mounted mb = mount(b, "b");
      cp(sharedSrc, ma.mountpoint().resolve("shared"));
      cp(onlyASrc, ma.mountpoint().resolve("onlyA"));
      cp(sharedSrc, mb.mountpoint().resolve("shared"));
      ma.close(); // commits what the daemon buffered
      mb.close();
      mounts.removeAll(List.of(ma, mb));
      long blocksA = scrubStore(a);
      long blocksB = scrubStore(b);
      assertThat(probe.objectCount()).as("both stores' blocks").isEqualTo(before + blocksA);

      ma = mount(a, "a");
      Shell.Result r = Mounted.cli("destroy", a.toString());
      assertThat(r.exitCode()).as("destroy of a mounted store").isEqualTo(1);
      assertThat(r.stderr().strip()).contains("is it mounted already?").doesNotContain("\n");
      ma.close();
      mounts.remove(ma);
      r = Mounted.cli(Duration.ofMinutes(5), "destroy", "--json", a.toString());
      assertThat(r.exitCode()).as("destroy: %s %s", r.stdout(), r.stderr()).isZero();
      String[] lines = r.stdout().strip().split("\n");
      Object report = Json.parse(lines[lines.length - 1]);
      assertThat(Json.at(report, "type")).isEqualTo("destroy");
      assertThat(Json.at(report, "pool")).isEqualTo("rados:blocks");
      assertThat(Json.longAt(report, "released")).isEqualTo(blocksA);
      assertThat(a).doesNotExist();
      assertThat(probe.objectCount()).as("after A's destroy").isEqualTo(before + blocksB);
      mb = mount(b, "b", NO_CACHE); // every block from the pool
      assertThat(Files.readAllBytes(mb.mountpoint().resolve("shared"))).isEqualTo(shared);
      mb.close();
      mounts.remove(mb);
      assertThat(Shell.run("rm", "-rf", b.toString()).exitCode()).isZero(); // B's disk is lost
      Shell.Result stores =
          Mounted.cli(Duration.ofMinutes(5), "pool", "stores", "rados:blocks", "--ceph-conf", conf);
      assertThat(stores.exitCode()).as("pool stores: %s", stores.stderr()).isZero();
      String row =
          stores
              .stdout()
              .lines()
              .filter(l -> l.contains(b.toString()))
              .findFirst()
              .orElseThrow(() -> new AssertionError("B is not listed:\n" + stores.stdout()));
      String idB = row.split("\\s+")[0];
      assertThat(row.split("\\s+")[1].replace(",", "")).isEqualTo(Long.toString(blocksB));
      assertThat(stores.stdout()).doesNotContain(a.toString());

      Shell.Result refused =
          Mounted.cli("pool", "forget", "rados:blocks", "--ceph-conf", conf, idB);
      assertThat(refused.exitCode()).isEqualTo(1);
      assertThat(refused.stderr().strip()).contains("--force").doesNotContain("\n");
      Shell.Result forgot =
          Mounted.cli(
              Duration.ofMinutes(5),
              "pool",
              "forget",
              "--force",
              "--json",
              "rados:blocks",
              "--ceph-conf",
              conf,
              idB);
      assertThat(forgot.exitCode()).as("forget: %s", forgot.stderr()).isZero();
      lines = forgot.stdout().strip().split("\n");
      assertThat(Json.longAt(Json.parse(lines[lines.length - 1]), "released")).isEqualTo(blocksB);
      assertThat(probe.objectCount()).as("after B is forgotten").isEqualTo(before);
      assertThat(probe.registered().get(idB)).startsWith("forgotten ");
    }
  }

  /**
   * {@code -o fsync=commit}: when {@code dd conv=fsync} returns, every block of the file is in the
   * pool (by default fsync returns once the data is in the local intent log, and the blocks follow
   * within 5 s).
   */
  @Test
  void fsyncCommitHasEveryBlockInThePoolWhenFsyncReturns() throws Exception {
    byte[] data = new byte[1 << 20];
    new SplittableRandom(System.nanoTime()).nextBytes(data);
    Path src = Files.write(tmp.resolve("one-mib"), data);
    try (RadosPool probe = pool()) {
      Mounted m = mount(create("a"), "a", "-o", "fsync=commit");
      long before = probe.objectCount();
      Shell.Result r =
          Shell.run(
              "dd",
              "if=" + src,
              "of=" + m.mountpoint().resolve("f"),
              "bs=1M",
              "conv=fsync",
              "status=none");
      assertThat(r.exitCode()).as("dd: %s", r.stderr()).isZero();
      assertThat(probe.objectCount())
          .as("objects when fsync returned: 64 leaves and their node")
          .isEqualTo(before + 65);
      assertThat(Files.readAllBytes(m.mountpoint().resolve("f"))).isEqualTo(data);
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

    try (RadosPool probe = pool()) {
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
      Mounted b2 = mount(storeB, "b", NO_CACHE);
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

  private static final int IMAGE_MIB = 1024;
  private static final int LEAF = 16 * 1024;

  /**
   * Issue 14's two-host test, 1 GiB (about 150 s on the one-node cluster, most of it the pool's
   * round trips: a copy of unique data, a copy that takes a reference per block, a read of every
   * block from the pool, and two fscks that read every block): an image of random data with a 1 MiB
   * hole in every 8 MiB, copied onto two stores of one pool. The pool grows by it once, by exactly
   * its blocks (each non-zero leaf and each node above one, computed from the image); a delete on
   * one store leaves the other's copy intact (read back from the pool after a remount); a delete on
   * both brings the pool's object count back.
   */
  @Test
  void twoStoresOnOnePoolHoldAnImageOnceAndFreeItWhenBothDeleteIt() throws Exception {
    Path src = tmp.resolve("image.raw");
    SplittableRandom random = new SplittableRandom(System.nanoTime());
    java.util.Set<Long> dataLeaves = new java.util.HashSet<>();
    byte[] mib = new byte[1 << 20];
    try (var out = Files.newOutputStream(src)) {
      for (int i = 0; i < IMAGE_MIB; i++) {
        boolean hole = i % 8 == 7;
        if (hole) {
          java.util.Arrays.fill(mib, (byte) 0);
        } else {
          random.nextBytes(mib);
          for (long l = (long) i * (1 << 20) / LEAF; l < (long) (i + 1) * (1 << 20) / LEAF; l++) {
            dataLeaves.add(l);
          }
        }
        out.write(mib);
      }
    }
    long blocks = blocksOf(dataLeaves, (long) IMAGE_MIB * (1 << 20) / LEAF);
    copyOntoTwoStoresThenDelete(src, blocks, (long) dataLeaves.size() * LEAF);
  }

  /**
   * df (statvfs) of a mount whose blocks are in the pool: used holds at least the {@code data}
   * bytes of its files' non-zero leaves in the pool (the figures may be 5 s old: asked until then),
   * available is the pool's ({@code ceph df}'s MAX AVAIL, as {@code probe} reads it: at most the
   * test OSD's 10 GiB), not the local disk's.
   */
  private static void assertDfIsThePools(Mounted m, long data, RadosPool probe) throws Exception {
    java.nio.file.FileStore df = Files.getFileStore(m.mountpoint());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (df.getTotalSpace() - df.getUnallocatedSpace() < data && System.nanoTime() < deadline) {
      Thread.sleep(200);
    }
    assertThat(df.getTotalSpace() - df.getUnallocatedSpace())
        .as("df's used of a mount holding %d bytes of data in the pool", data)
        .isBetween(data, data + data / 10);
    assertThat(df.getUsableSpace())
        .as("df's available")
        .isPositive()
        .isLessThanOrEqualTo(10L << 30) // bluestore_block_size of scripts/ceph.sh
        .isCloseTo(probe.availableBytes(), org.assertj.core.data.Offset.offset(256L << 20));
  }

  /**
   * Copies {@code src} onto two new stores of the pool with {@code cp}: the pool grows by exactly
   * {@code blocks} objects with the first copy and by none with the second (and df on B's mount
   * counts the {@code data} bytes of its non-zero leaves as used); a delete on A keeps B's copy
   * (read back equal after a remount of B, every block from the pool); a delete on B too brings the
   * pool's object count back.
   */
  private void copyOntoTwoStoresThenDelete(Path src, long blocks, long data) throws Exception {
    String digest = sha256(src);
    String name = src.getFileName().toString();
    try (RadosPool probe = pool()) {
      long before = probe.objectCount();
      Path storeA = create("a");
      Path storeB = create("b");
      // cp's close commits into the pool before it returns: its blocks are there to count
      Mounted a = mount(storeA, "a", "-o", "fsync=commit");
      Mounted b = mount(storeB, "b", "-o", "fsync=commit");

      cp(src, a.mountpoint().resolve(name));
      assertThat(sha256(a.mountpoint().resolve(name))).as("A's copy").isEqualTo(digest);
      assertThat(probe.objectCount())
          .as("pool objects after A's copy: its %d leaves and nodes", blocks)
          .isEqualTo(before + blocks);
      cp(src, b.mountpoint().resolve(name));
      assertThat(sha256(b.mountpoint().resolve(name))).as("B's copy").isEqualTo(digest);
      assertThat(probe.objectCount()).as("after B's copy: stored once").isEqualTo(before + blocks);
      assertDfIsThePools(b, data, probe);

      Files.delete(a.mountpoint().resolve(name));
      fsck(a);
      assertThat(probe.objectCount()).as("after A's delete").isEqualTo(before + blocks);
      b.close();
      mounts.remove(b);
      Mounted b2 = mount(storeB, "b", NO_CACHE); // every block from the pool
      assertThat(sha256(b2.mountpoint().resolve(name)))
          .as("B's copy after A's delete")
          .isEqualTo(digest);

      Files.delete(b2.mountpoint().resolve(name));
      fsck(b2);
      assertThat(probe.objectCount()).as("after both deletes").isEqualTo(before);
    }
  }

  /** Runs scrub on a store that is not mounted; returns the blocks it checked (it counts). */
  private static long scrubStore(Path store) {
    Shell.Result r =
        Mounted.cli(Duration.ofMinutes(5), "scrub", "--json", "--store", store.toString());
    assertThat(r.exitCode()).as("scrub %s: %s %s", store, r.stdout(), r.stderr()).isZero();
    String[] lines = r.stdout().strip().split("\n");
    return Json.longAt(Json.parse(lines[lines.length - 1]), "blocks_checked");
  }

  /**
   * The blocks a file of {@code leaves} leaves stores when the leaves {@code data} hold distinct
   * data and the others zeros: those leaves, and at each level up to the root each node with a
   * non-zero child (128 children per node; an all-zero subtree is stored nowhere).
   */
  private static long blocksOf(java.util.Set<Long> data, long leaves) {
    long n = data.size();
    java.util.Set<Long> level = data;
    for (long span = leaves; span > 1; span = (span + 127) / 128) {
      java.util.Set<Long> up = new java.util.HashSet<>();
      for (long i : level) {
        up.add(i / 128);
      }
      n += up.size();
      level = up;
    }
    return n;
  }

  private static String sha256(Path file) throws Exception {
    var md = java.security.MessageDigest.getInstance("SHA-256");
    try (var in = Files.newInputStream(file)) {
      byte[] buf = new byte[1 << 20];
      for (int r; (r = in.read(buf)) > 0; ) {
        md.update(buf, 0, r);
      }
    }
    return java.util.HexFormat.of().formatHex(md.digest());
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
