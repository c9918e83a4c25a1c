package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.rados.RadosPool;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A VM disk moved between two stores on one RADOS pool without its data (issue 14, item 5), on real
 * mounts: {@code dedupfs send --by-reference SNAP | dedupfs receive} of a 64 MiB file of unique
 * data adds no object to the pool and its stream is a fraction of a per cent of the file; the
 * receiver reads it back equal after a remount (every block from the pool), fsck and scrub are
 * clean on both; the sender deleting the file and its snapshot leaves the receiver's copy intact.
 * An incremental two-way send ({@code --to}) finds out by itself that the stores share the pool. A
 * store of its own blocks (LMDB) or of another pool refuses such a stream in one line and creates
 * nothing. Deleting everything brings the pool's object count back.
 */
class RadosSendIT extends RadosMounts {
  private static final long M = 1L << 20;
  private static final int DISK_BYTES = (int) (64 * M) + 4321;

  /** A pool beside {@code blocks} in the test cluster, made if missing. */
  private String otherPool() {
    String conf = ceph.conf().toString();
    Shell.checked(
        Duration.ofMinutes(2), "ceph", "--conf", conf, "osd", "pool", "create", "other", "8", "8");
    Shell.checked(
        Duration.ofMinutes(2),
        "ceph",
        "--conf",
        conf,
        "osd",
        "pool",
        "application",
        "enable",
        "other",
        "dedupfs");
    return "other";
  }

  private static void assertNoSnapshot(Path store) {
    assertThat(SendReceiveIT.ok("$D snapshot list --store " + store).stdout())
        .as("snapshots of %s", store)
        .doesNotContain("s1 ");
  }

  @Test
  void aVmDiskSentByReferenceCrossesWithoutItsData() throws IOException {
    byte[] disk = new byte[DISK_BYTES];
    new SplittableRandom(System.nanoTime()).nextBytes(disk);
    Path src = tmp.resolve("disk.img");
    Files.write(src, disk);
    try (RadosPool probe = pool()) {
      long before = probe.objectCount();
      Path storeA = create("a");
      Path storeB = create("b");
      Mounted a = mount(storeA, "a");
      Mounted b = mount(storeB, "b");
      Path ma = a.mountpoint();
      Files.createDirectories(ma.resolve("vm"));
      Shell.checked("cp", src.toString(), ma.resolve("vm/disk.img").toString());
      Shell.checked("sync", ma.resolve("vm/disk.img").toString());
      SendReceiveIT.ok("$D snapshot create s1 " + ma.resolve("vm"));
      fsck(a);
      long withA = probe.objectCount();
      assertThat(withA - before).as("objects: 4,097 leaves and their nodes").isGreaterThan(4097);

      Path stream = tmp.resolve("s1.stream");
      long t0 = System.nanoTime();
      Shell.Result sent =
          SendReceiveIT.ok(
              "$D send --by-reference s1 "
                  + ma
                  + " > "
                  + stream
                  + " && $D receive "
                  + b.mountpoint()
                  + " < "
                  + stream);
      double byReference = (System.nanoTime() - t0) / 1e9;
      assertThat(sent.stderr()).contains("by reference to rados:blocks of cluster ");
      assertThat(sent.stdout()).contains("by reference").contains("referenced in the shared pool");
      long streamBytes = Files.size(stream);
      assertThat(streamBytes).as("stream by reference").isLessThan(DISK_BYTES / 100);
      assertThat(probe.objectCount()).as("pool objects after the receive").isEqualTo(withA);

      // the same snapshot with its data, into a store of its own blocks, for comparison; that
      // store first refuses the stream by reference, in one line, and creates nothing
      Path local = tmp.resolve("local-store");
      Mounted.cli("create", local.toString());
      Shell.Result refused = SendReceiveIT.sh("$D receive " + local + " < " + stream);
      assertThat(refused.exitCode()).isNotZero();
      assertThat(refused.stderr().strip())
          .contains("by reference to pool rados:blocks of cluster ")
          .contains("keeps its blocks in its own LMDB")
          .doesNotContain("\n");
      assertNoSnapshot(local);
      Path whole = tmp.resolve("s1-whole.stream");
      t0 = System.nanoTime();
      SendReceiveIT.ok(
          "$D send s1 " + ma + " > " + whole + " && $D receive " + local + " < " + whole);
      double withData = (System.nanoTime() - t0) / 1e9;
      System.out.printf(
          Locale.ROOT,
          "RadosSendIT: 64 MiB disk: send --by-reference | receive: %,d stream bytes, %.1f s;"
              + " send | receive (into a local store): %,d stream bytes, %.1f s%n",
          streamBytes,
          byReference,
          Files.size(whole),
          withData);

      Path other = create("other", otherPool());
      refused = SendReceiveIT.sh("$D receive " + other + " < " + stream);
      assertThat(refused.exitCode()).isNotZero();
      assertThat(refused.stderr().strip())
          .contains("keeps its blocks in rados:other of cluster ")
          .doesNotContain("\n");
      assertNoSnapshot(other);

      b = remount(b, "b", NO_CACHE); // every block from the pool
      Path copy = b.mountpoint().resolve(".snapshots/s1/disk.img");
      assertThat(Files.readAllBytes(copy)).as("B's copy").isEqualTo(disk);
      fsck(b);
      long blocksA = scrub(a);
      assertThat(scrub(b)).as("blocks B checked: A's").isEqualTo(blocksA);
      assertThat(probe.objectCount()).as("pool objects").isEqualTo(before + blocksA);

      // an incremental, two-way: the receiver says it shares the pool
      byte[] patched = disk.clone();
      byte[] patch = new byte[(int) M];
      new SplittableRandom(System.nanoTime()).nextBytes(patch);
      System.arraycopy(patch, 0, patched, (int) (20 * M), patch.length);
      try (RandomAccessFile f = new RandomAccessFile(ma.resolve("vm/disk.img").toFile(), "rw")) {
        f.seek(20 * M);
        f.write(patch);
        f.getFD().sync();
      }
      SendReceiveIT.ok("$D snapshot create s2 " + ma.resolve("vm"));
      Shell.Result twoWay =
          SendReceiveIT.ok(
              "$D send s2 --from s1 --to '$D receive --serve " + b.mountpoint() + "' " + ma);
      System.out.println("RadosSendIT: two-way incremental: " + twoWay.stderr().strip());
      assertThat(twoWay.stderr()).contains("sent snapshot s2 (incremental from s1) by reference");
      assertThat(twoWay.stderr()).contains("received snapshot s2").contains("by reference");
      fsck(a);
      long withS2 = probe.objectCount();

      // A deletes the disk and both snapshots: B's copies stay whole
      Files.delete(ma.resolve("vm/disk.img"));
      SendReceiveIT.ok("$D snapshot delete s1 " + ma + " && $D snapshot delete s2 " + ma);
      fsck(a);
      assertThat(probe.objectCount()).as("pool objects after A's delete").isEqualTo(withS2);
      b = remount(b, "b", NO_CACHE);
      assertThat(Files.readAllBytes(b.mountpoint().resolve(".snapshots/s1/disk.img")))
          .as("B's s1 after A's delete")
          .isEqualTo(disk);
      assertThat(Files.readAllBytes(b.mountpoint().resolve(".snapshots/s2/disk.img")))
          .as("B's s2 after A's delete")
          .isEqualTo(patched);
      fsck(b);
      assertThat(scrub(b)).as("B's blocks: the pool's").isEqualTo(withS2 - before);

      SendReceiveIT.ok(
          "$D snapshot delete s1 "
              + b.mountpoint()
              + " && $D snapshot delete s2 "
              + b.mountpoint());
      fsck(b);
      assertThat(probe.objectCount()).as("pool objects after B's delete").isEqualTo(before);
    }
  }
}
