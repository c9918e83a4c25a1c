package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Space comes back and the figures are honest (issue 5), each test on a store of its own:
 *
 * <ul>
 *   <li>2 GiB of unique data written, deleted, and once the background reclaim is done, 2 GiB of
 *       other unique data written: data.mdb grows by at most {@link #SLACK}; the same when the only
 *       reference was a snapshot that is deleted; {@code df} shows the store's live pages as used;
 *   <li>{@code dedupfs stats} (and the user.dedupfs.* attributes) of the store, of folders, files
 *       and snapshots, after clones, snapshots, overwrites, truncates, hard links and deletes,
 *       equal a brute-force recount from outside (dedupfs_tools.py recount): every file read
 *       through the mount, its Merkle tree rebuilt as engine/FORMAT.md describes it, references
 *       counted as the store counts them. The comparison is exact, leaves and tree nodes alike (no
 *       tolerance); the leaf-level part is reported too;
 *   <li>a SIGKILL right after a large delete (in the middle of its reclaim): the next mount's fsck
 *       is clean (it applies the queued reclaim first and reports any unreferenced block), and the
 *       store's figures then equal the recount of what is reachable;
 *   <li>{@code dedupfs compact} on the mounted store shrinks data.mdb, with progress output, while
 *       the mount keeps working.
 * </ul>
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class SpaceIT {
  static final int LEAF = 16 * 1024;
  static final long M = 1L << 20;
  static final long G = 1L << 30;

  /**
   * How much data.mdb may grow when 2 GiB of new data follow the delete of 2 GiB and its reclaim:
   * 1/16 of the data (128 MiB). Freed pages are reused, but not perfectly: LMDB keeps its free list
   * in pages of its own and a 16 KiB leaf needs four contiguous free pages. Measured on this
   * machine (2 cores, loaded): +11 to +58 MB. (Writes that start while the background reclaim of
   * the delete still runs find fewer pages free: +93 and +181 MB measured; hence the test waits for
   * the reclaim.) A store that did not reuse freed pages would grow by 2.1 GB.
   */
  static final long SLACK = 2 * G / 16;

  static final List<String> report = new ArrayList<>();

  @TempDir Path tempDir;

  private Path tmp;
  private final List<Mounted> mounts = new ArrayList<>();

  @BeforeEach
  void realTmp() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = tempDir.toRealPath();
  }

  private Mounted mount() {
    Mounted m =
        Mounted.mount(
            tmp.resolve("store"), tmp.resolve("mnt"), tmp, "--leaf-size", Integer.toString(LEAF));
    mounts.add(m);
    return m;
  }

  @AfterEach
  void unmount() {
    Mounted.closeAll(mounts);
  }

  @AfterAll
  static void printReport() {
    report.forEach(l -> System.out.println("SpaceIT: " + l));
  }

  @Test
  void freedSpaceIsReusedAfterADeleteAndAfterDeletingTheLastSnapshot() throws Exception {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      Path store = m.store();
      Path dir = Files.createDirectory(mnt.resolve("vms"));
      StoreTools.unique(dir.resolve("a.img"), 2 * G, 101);
      long afterA = StoreTools.dataMdb(store);
      dfMatchesTheStore(mnt, store);
      Files.delete(dir.resolve("a.img"));
      reclaimed(mnt);
      StoreTools.unique(dir.resolve("b.img"), 2 * G, 102);
      long afterB = StoreTools.dataMdb(store);
      dfMatchesTheStore(mnt, store);
      report.add(
          String.format(
              "2 GiB written: data.mdb %,d; deleted, 2 GiB other data written: %,d (%+,d; slack %,d)",
              afterA, afterB, afterB - afterA, SLACK));
      assertThat(afterB - afterA)
          .as("data.mdb growth after delete + write of 2 GiB")
          .isLessThanOrEqualTo(SLACK);

      // the only reference held by a snapshot, then the snapshot deleted
      cli("snapshot", "create", "last-ref", dir.toString());
      Files.delete(dir.resolve("b.img"));
      assertThat(StoreTools.stats(mnt.resolve(".snapshots/last-ref")).exclusive())
          .isGreaterThan(2 * G);
      cli("snapshot", "delete", "last-ref", mnt.toString());
      reclaimed(mnt);
      String[] c = StoreTools.uniqueWithDigest(dir.resolve("c.img"), 2 * G, 103);
      long afterC = StoreTools.dataMdb(store);
      dfMatchesTheStore(mnt, store);
      report.add(
          String.format(
              "snapshot held the only reference; deleted, 2 GiB other data written: data.mdb %,d (%+,d)",
              afterC, afterC - afterB));
      assertThat(afterC - afterB)
          .as("data.mdb growth after deleting the last snapshot + write of 2 GiB")
          .isLessThanOrEqualTo(SLACK);
      // what was written into reused pages reads back right
      assertThat(StoreTools.digest(dir.resolve("c.img"))).isEqualTo(c[1]);
    }
  }

  @Test
  void statsEqualABruteForceRecount() throws Exception {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      Path d1 = Files.createDirectory(mnt.resolve("d1"));
      Path d2 = Files.createDirectory(mnt.resolve("d2"));
      Path d3 = Files.createDirectory(mnt.resolve("d3"));
      StoreTools.unique(d1.resolve("a"), 24 * M + 1000, 111);
      Tools.run("cp", d1.resolve("a").toString(), d1.resolve("b").toString());
      StoreTools.unique(d1.resolve("c"), 4 * M, 112);
      assertThat(
              StoreTools.ioctlClone(d1.resolve("a"), d1.resolve("c"), 5L * LEAF, 5 * M, 0, false))
          .isEqualTo("ok");
      assertThat(
              Mounted.cli(
                      "clone",
                      "--src-offset",
                      "12345",
                      "--length",
                      "3M",
                      d1.resolve("a").toString(),
                      d2.resolve("misaligned").toString())
                  .exitCode())
          .isZero();
      StoreTools.py("sparse", d2.resolve("sparse.img"), G, 113);
      StoreTools.unique(d2.resolve("gone"), 8 * M, 114);
      cli("snapshot", "create", "s1", d1.toString());
      // overwrites, a truncate, deletes, after the snapshot
      StoreTools.qemuIo(
          d1.resolve("a"),
          "writeback",
          List.of("write -P 17 0 64k", "write -P 18 5M 3M", "write -z 9M 1M"));
      Files.write(d1.resolve("b"), new byte[0], java.nio.file.StandardOpenOption.APPEND);
      try (var ch =
          java.nio.channels.FileChannel.open(
              d1.resolve("b"), java.nio.file.StandardOpenOption.WRITE)) {
        ch.truncate(10 * M + 5);
      }
      Files.delete(d1.resolve("c"));
      Files.delete(d2.resolve("gone"));
      // a hard link, repeated leaves inside one file, an empty file, a tiny one, one exact leaf
      Files.createLink(d3.resolve("alink"), d1.resolve("a"));
      byte[] leaf = new byte[LEAF];
      new java.util.Random(115).nextBytes(leaf);
      try (var out = Files.newOutputStream(d3.resolve("dups"))) {
        for (int i = 0; i < 200; i++) {
          out.write(leaf);
        }
      }
      Files.write(d3.resolve("empty"), new byte[0]);
      Files.write(d3.resolve("tiny"), new byte[] {1, 2, 3, 0, 0, 5});
      Files.write(d3.resolve("one-leaf"), leaf);
      cli("snapshot", "create", "s2", mnt.toString());
      StoreTools.unique(d3.resolve("after-s2"), 2 * M, 116);
      Tools.run("cp", d3.resolve("dups").toString(), d2.resolve("dups-copy").toString());

      String[] paths = {
        "d1",
        "d2",
        "d3",
        "d1/a",
        "d1/b",
        "d2/misaligned",
        "d2/sparse.img",
        "d3/alink",
        "d3/dups",
        "d3/empty",
        "d3/tiny",
        "d3/one-leaf",
        ".snapshots/s1",
        ".snapshots/s1/c",
        ".snapshots/s2",
        ".snapshots/s2/d2",
        ".snapshots"
      };
      Map<String, StoreTools.Recount> recount = StoreTools.recount(mnt, LEAF, paths);
      // every path through its user.dedupfs.* attributes (one getxattr each), and through
      // `dedupfs stats` (one JVM each) for the store, a folder, a file and a snapshot
      Map<String, StoreTools.Figures> attrs = new LinkedHashMap<>();
      attrs.put("", StoreTools.xattrFigures(mnt));
      for (String p : paths) {
        attrs.put(p, StoreTools.xattrFigures(mnt.resolve(p)));
      }
      for (var e : attrs.entrySet()) {
        StoreTools.Recount r = recount.get(e.getKey());
        report.add(
            String.format(
                "%-18s %s | recount: %d files; leaves: %d (%,d bytes stored, %,d exclusive),"
                    + " nodes: %d (%,d bytes)",
                e.getKey().isEmpty() ? "(whole store)" : e.getKey(),
                e.getValue(),
                r.figures().files(),
                r.leaves(),
                r.leafStored(),
                r.leafExclusive(),
                r.nodes(),
                r.nodeStored()));
      }
      for (var e : attrs.entrySet()) {
        StoreTools.Figures r = recount.get(e.getKey()).figures();
        assertThat(e.getValue())
            .as("user.dedupfs.* of /%s against the recount", e.getKey())
            .isEqualTo(
                new StoreTools.Figures(
                    -1, r.logical(), r.stored(), r.exclusive(), r.shared(), r.referenced(), -1));
        // the ratio: referenced over stored (holes count on neither side), 1 when nothing is stored
        assertThat(StoreTools.xattrText(mnt.resolve(e.getKey()), "ratio"))
            .as("user.dedupfs.ratio of /%s", e.getKey())
            .isEqualTo(String.format(java.util.Locale.ROOT, "%.3f", r.ratio()));
      }
      // a sparse 1 GiB image: its ratio is about 1 (it shares nothing), not logical / stored
      StoreTools.Figures sparse = attrs.get("d2/sparse.img");
      assertThat(sparse.referenced())
          .as("a sparse image references its data only")
          .isLessThan(sparse.logical() / 100);
      assertThat(sparse.ratio()).isBetween(0.9, 1.0);
      assertThat(attrs.get("d3/empty").ratio()).as("nothing stored").isEqualTo(1.0);
      assertThat(attrs.get("d3/dups").ratio()).as("200 copies of one leaf").isGreaterThan(100);
      for (String p : List.of("", "d3", "d1/a", ".snapshots/s1")) {
        assertThat(StoreTools.stats(mnt.resolve(p)).figuresOnly())
            .as("dedupfs stats /%s against the recount", p)
            .isEqualTo(recount.get(p).figures());
      }
    }
  }

  @Test
  void kill9DuringReclaimThenFsckIsCleanAndNothingUnreferencedRemains() throws Exception {
    Mounted m = mount();
    Path mnt = m.mountpoint();
    Path big = mnt.resolve("big.img");
    StoreTools.unique(big, G, 121);
    Path part = mnt.resolve("part.img");
    assertThat(StoreTools.ioctlClone(big, part, 100 * M, 64 * M, 0, true)).isEqualTo("ok");
    String partDigest = StoreTools.digest(part);
    StoreTools.unique(mnt.resolve("small.img"), 3 * M, 122);
    cli("snapshot", "create", "keep", mnt.resolve("small.img").toString());
    Files.delete(big);
    m.kill9(); // at once: its reclaim (65,536 leaves and 520 nodes to free) is queued or under way
    m.close();

    Mounted again = mount();
    Path mnt2 = again.mountpoint();
    Shell.Result fsck = Mounted.cli(Duration.ofMinutes(5), "fsck", mnt2.toString());
    report.add(
        "fsck after kill -9 during reclaim: "
            + fsck.stdout().strip().lines().reduce((a, b) -> b).orElse(""));
    assertThat(fsck.exitCode()).as("fsck after the kill\n%s", fsck).isZero();
    assertThat(fsck.stdout()).contains("fsck: clean").doesNotContain("problem");
    assertThat(StoreTools.digest(mnt2.resolve("part.img"))).isEqualTo(partDigest);
    Map<String, StoreTools.Recount> recount = StoreTools.recount(mnt2, LEAF);
    StoreTools.Figures whole = StoreTools.stats(mnt2);
    assertThat(whole.figuresOnly())
        .as("the store's figures against the recount of what is reachable")
        .isEqualTo(recount.get("").figures());
    assertThat(whole.stored()).isLessThan(80 * M);
    assertThat(cli("scrub", mnt2.toString())).contains("0 damaged");
    again.close();
  }

  @Test
  void compactGivesSpaceBackWhileMounted() throws Exception {
    try (Mounted m = mount()) {
      Path mnt = m.mountpoint();
      Path store = m.store();
      String[] keep = StoreTools.uniqueWithDigest(mnt.resolve("keep.img"), 64 * M, 131);
      StoreTools.unique(mnt.resolve("scratch.img"), 512 * M, 132);
      long before = StoreTools.dataMdb(store);
      Files.delete(mnt.resolve("scratch.img"));
      Shell.Result r = Mounted.cli(Duration.ofMinutes(5), "compact", mnt.toString());
      assertThat(r.exitCode()).as("%s", r).isZero();
      long after = StoreTools.dataMdb(store);
      report.add(
          String.format(
              "compact after deleting 512 of 576 MiB: data.mdb %,d -> %,d; its output: %s",
              before, after, r.stdout().strip().replace('\n', '|')));
      // progress in a pipe: plain lines, bytes in binary units
      assertThat(r.stdout())
          .containsPattern("(?m)^copy: [0-9.]+ [KMG]iB/[0-9.]+ [KMG]iB \\(100%\\)")
          .contains("compact: ");
      assertThat(after)
          .as("data.mdb after compact")
          .isLessThan(before - 400 * M)
          .isLessThan(96 * M);
      dfMatchesTheStore(mnt, store);
      // the mount goes on: the kept file reads back, new data writes and reads
      assertThat(StoreTools.digest(mnt.resolve("keep.img"))).isEqualTo(keep[1]);
      String[] fresh = StoreTools.uniqueWithDigest(mnt.resolve("fresh.img"), 16 * M, 133);
      assertThat(StoreTools.digest(mnt.resolve("fresh.img"))).isEqualTo(fresh[1]);
      assertThat(cli("fsck", mnt.toString())).contains("fsck: clean");
    }
  }

  /**
   * Waits for the reclaim queued by a delete: {@code dedupfs fsck} applies the queue before it
   * checks (and the store must be clean).
   */
  static void reclaimed(Path mnt) {
    long t0 = System.nanoTime();
    assertThat(cli("fsck", mnt.toString())).contains("fsck: clean");
    report.add(
        String.format("fsck (finishing the reclaim) took %.1f s", (System.nanoTime() - t0) / 1e9));
  }

  /**
   * df's "used" on the mount is what the store's live pages take (stats' live_bytes, to within 1
   * MiB of pages committed meanwhile), never more than data.mdb. ("available", the disk's free
   * space plus the store's free pages, moves with whatever else writes to that disk:
   * AdminIT.dfShowsTheSpaceADeleteFreed checks it rises after a delete.)
   */
  static void dfMatchesTheStore(Path mnt, Path store) {
    long[] df = OperationsIT.df(mnt);
    Object stats = Json.parse(cli("stats", "--json", mnt.toString()));
    long live = Json.longAt(stats, "store", "live_bytes");
    long size = StoreTools.dataMdb(store);
    report.add(String.format("df used %,d, live pages %,d, data.mdb %,d", df[1], live, size));
    assertThat(df[1]).as("df used vs the live pages (%d)", live).isBetween(live - M, live + M);
    assertThat(live).as("live pages vs data.mdb").isLessThanOrEqualTo(size);
  }

  private static String cli(String... args) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), args);
    assertThat(r.exitCode()).as("dedupfs %s\n%s", String.join(" ", args), r).isZero();
    return r.stdout();
  }
}
