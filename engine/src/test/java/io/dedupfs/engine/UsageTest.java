package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Datastore#usage} against a brute-force recount ({@link Recount}) after seeded random
 * writes, clones, snapshots, restores, hard links, truncates, punches and deletes: for every
 * directory, some files, every snapshot and the whole store.
 */
class UsageTest {
  private static final int LEAF = 4096;

  @TempDir Path tmp;

  @Test
  void figuresOfOneFileAndItsClones() throws IOException {
    try (Datastore ds = Datastore.open(tmp, TestStores.config(LEAF))) {
      SplittableRandom r = new SplittableRandom(1);
      long a = ds.mknod(ROOT, "a", 0644, 0, 0, 0).ino();
      byte[] data = TestStores.randomBytes(r, 1 << 20);
      TestStores.write(ds, a, 0, data); // 256 leaves, 2 nodes, a root
      SpaceUsage one = ds.usage("a");
      long stored = TestStores.counts(ds).storedBytes();
      long referenced = referencedOf(data, 1 << 20);
      assertThat(stored).isGreaterThan(1 << 20);
      assertThat(referenced).isGreaterThan((1 << 20) - 256 * 4);
      assertThat(one).isEqualTo(new SpaceUsage(1, 1 << 20, stored, stored, 0, referenced, stored));
      assertThat(one.dedupeRatio())
          .as("unshared: the nodes only are not referenced data")
          .isBetween(0.99, 1.0);
      assertThat(ds.usage("")).isEqualTo(one);

      long b = ds.mknod(ROOT, "b", 0644, 0, 0, 0).ino();
      ds.copyRange(a, 0, b, 0, 1 << 20);
      SpaceUsage shared = ds.usage("a");
      assertThat(shared)
          .as("a clone shares everything")
          .isEqualTo(
              new SpaceUsage(
                  1,
                  1 << 20,
                  one.storedBytes(),
                  0,
                  one.storedBytes(),
                  referenced,
                  one.storedBytes()));
      assertThat(ds.usage(""))
          .isEqualTo(
              new SpaceUsage(
                  2,
                  2 << 20,
                  one.storedBytes(),
                  one.storedBytes(),
                  0,
                  2 * referenced,
                  one.storedBytes()));
      assertThat(ds.usage("").dedupeRatio()).isBetween(1.98, 2.0);

      TestStores.write(
          ds, b, 0, TestStores.randomBytes(r, LEAF)); // one new leaf, two new nodes above it
      long pathBytes =
          Geometry.NODE_BYTES + Geometry.BITMAP_BYTES + 2 * Hash.SIZE; // a full node, a root of two
      assertThat(ds.usage("b").exclusiveBytes())
          .as("b alone: its new leaf, node and root")
          .isBetween(LEAF - 16 + pathBytes, LEAF + pathBytes);
      assertThat(ds.usage("a").exclusiveBytes())
          .as("a alone: its old leaf, node and root")
          .isBetween(LEAF - 16 + pathBytes, LEAF + pathBytes);
      ds.createSnapshot("s", "a");
      assertThat(ds.usage("a").exclusiveBytes()).as("a snapshot shares all of a").isZero();
      assertThat(ds.usage(".snapshots/s").exclusiveBytes()).isZero();
      assertThat(ds.usage(".snapshots")).isEqualTo(ds.usage(".snapshots/s"));
      ds.link(a, ROOT, "a2");
      assertThat(ds.usage("").files()).as("a hard-linked file counts once").isEqualTo(3);
      assertConsistent(ds);
    }
  }

  /**
   * The bytes of {@code data} (a file's contents from offset 0) that its leaves reference: each
   * non-zero leaf up to its last non-zero byte.
   */
  static long referencedOf(byte[] data, int leaf) {
    long sum = 0;
    for (int at = 0; at < data.length; at += leaf) {
      int end = Math.min(data.length, at + leaf);
      while (end > at && data[end - 1] == 0) {
        end--;
      }
      sum += end - at;
    }
    return sum;
  }

  @Test
  void ratioOfSparseFilesCountsNoHoles() throws IOException {
    try (Datastore ds = Datastore.open(tmp, TestStores.config(LEAF))) {
      assertThat(ds.usage("")).as("an empty store").isEqualTo(new SpaceUsage(0, 0, 0, 0, 0, 0, 0));
      assertThat(ds.usage("").dedupeRatio()).as("nothing stored").isEqualTo(1.0);
      long holes = ds.mknod(ROOT, "holes", 0644, 0, 0, 0).ino();
      ds.setattr(holes, SetAttributes.size(1L << 40));
      SpaceUsage h = ds.usage("holes");
      assertThat(h).isEqualTo(new SpaceUsage(1, 1L << 40, 0, 0, 0, 0, 0));
      assertThat(h.dedupeRatio()).as("a hole-only file").isEqualTo(1.0);

      long sparse = ds.mknod(ROOT, "sparse", 0644, 0, 0, 0).ino();
      ds.setattr(sparse, SetAttributes.size(1L << 30));
      byte[] data = new byte[3 * LEAF];
      java.util.Arrays.fill(data, 0, LEAF, (byte) 7);
      java.util.Arrays.fill(
          data, 2 * LEAF, 2 * LEAF + 100, (byte) 7); // a leaf of 100 bytes and zeros
      TestStores.write(ds, sparse, 1L << 29, data);
      TestStores.write(
          ds,
          sparse,
          (1L << 30) - 10,
          new byte[] {1, 2, 3}); // the last leaf: data, then zeros to the end
      SpaceUsage s = ds.usage("sparse");
      long referenced = LEAF + 100 + (LEAF - 10 + 3);
      assertThat(s.referencedBytes())
          .as("holes and trailing zeros are not referenced")
          .isEqualTo(referenced);
      assertThat(s.dedupeRatio())
          .as("nothing shared: referenced over stored, nodes included")
          .isEqualTo((double) referenced / s.storedBytes())
          .isBetween(0.3, 1.0);
      assertThat(s.storedBytes() - referenced)
          .as("the rest is tree nodes")
          .isLessThan(6 * Geometry.NODE_BYTES);

      ds.setattr(
          sparse,
          SetAttributes.size(
              (1L << 30) - 9)); // past-the-end bytes become zero: the last leaf is clipped
      assertThat(ds.usage("sparse").referencedBytes()).isEqualTo(LEAF + 100 + (LEAF - 10 + 1));

      long clone = ds.mknod(ROOT, "clone", 0644, 0, 0, 0).ino();
      ds.copyRange(sparse, 0, clone, 0, 1L << 30);
      SpaceUsage all = ds.usage("");
      assertThat(all.referencedBytes())
          .as("a leaf counts once per reference")
          .isEqualTo(2 * ds.usage("sparse").referencedBytes());
      assertThat(all.dedupeRatio())
          .isEqualTo(2.0 * ds.usage("sparse").referencedBytes() / all.storedBytes());
      assertConsistent(ds);
    }
  }

  @TestFactory
  Stream<DynamicTest> randomChangesAgainstARecount() {
    return randomChanges(TestStores.config(LEAF).withCompression(Compression.NONE), 0);
  }

  /**
   * The same with 16 KiB leaves, compressible and incompressible data, and the compression switched
   * now and then: raw blocks and blocks of both codecs mixed, each counted at both lengths.
   */
  @TestFactory
  Stream<DynamicTest> randomChangesOfCompressedBlocksAgainstARecount() {
    return randomChanges(TestStores.config(16384).withCompression(Compression.LZ4), 100);
  }

  private static Compression compressionOf(Datastore ds) {
    try {
      return ds.compression();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private Stream<DynamicTest> randomChanges(DatastoreConfig config, long firstSeed) {
    int seeds = TestStores.longRuns() ? 20 : 3;
    return java.util.stream.LongStream.range(firstSeed, firstSeed + seeds)
        .mapToObj(
            seed ->
                DynamicTest.dynamicTest(
                    "seed " + seed + ", leaf " + config.leafSize() + ", " + config.compression(),
                    () -> {
                      Path dir = Files.createTempDirectory(tmp, "usage");
                      try (Datastore ds = Datastore.open(dir, config)) {
                        new Run(ds, new SplittableRandom(seed))
                            .run(TestStores.longRuns() ? 400 : 120);
                      } catch (Throwable t) {
                        throw new AssertionError("usage test failed with seed " + seed, t);
                      }
                    }));
  }

  private static final class Run {
    private final Datastore ds;
    private final SplittableRandom r;
    private final byte[][] patterns;
    private final List<Long> files = new ArrayList<>();
    private final List<Long> dirs = new ArrayList<>(List.of(ROOT));
    private final List<String> snapshots = new ArrayList<>();
    private int names;
    private final int leaf;
    private final boolean compress;

    Run(Datastore ds, SplittableRandom r) {
      this.ds = ds;
      this.r = r;
      this.leaf = ds.leafSize();
      this.compress = !compressionOf(ds).isNone();
      patterns = new byte[4][];
      for (int i = 0; i < patterns.length; i++) {
        patterns[i] =
            compress && i % 2 == 0
                ? TestStores.compressibleBytes(r, leaf)
                : TestStores.randomBytes(r, leaf);
      }
    }

    void run(int ops) throws IOException {
      for (int i = 0; i < ops; i++) {
        step();
        if (i % 10 == 9) {
          check();
        }
      }
      check();
      assertConsistent(ds);
      if (compress) {
        TestStores.assertMixed(ds);
      }
    }

    private void step() throws IOException {
      int k = r.nextInt(100);
      if (k < 8 || files.isEmpty()) {
        long d = pick(dirs);
        if (r.nextInt(4) == 0) {
          dirs.add(ds.mkdir(d, "d" + names++, 0755, 0, 0).ino());
        } else {
          long f = ds.mknod(d, "f" + names++, 0644, 0, 0, 0).ino();
          files.add(f);
          write(f, 0, r.nextInt(300_000));
        }
      } else if (k < 30) {
        long f = pick(files);
        write(f, r.nextLong(Math.max(1, ds.getattr(f).size() + leaf)), r.nextInt(1, 60_000));
      } else if (k < 40) { // a whole-file clone
        long src = pick(files);
        long dst = ds.mknod(pick(dirs), "c" + names++, 0644, 0, 0, 0).ino();
        files.add(dst);
        ds.copyRange(src, 0, dst, 0, Long.MAX_VALUE / 4);
      } else if (k < 48) { // a leaf-aligned range clone over existing contents
        long src = pick(files);
        long dst = pick(files);
        long off = r.nextInt(60) * (long) leaf;
        if (src != dst) {
          ds.copyRange(src, off, dst, r.nextInt(60) * (long) leaf, r.nextInt(1, 80) * (long) leaf);
        }
      } else if (k < 53) {
        long f = pick(files);
        ds.setattr(f, SetAttributes.size(r.nextLong(ds.getattr(f).size() + 1)));
      } else if (k < 57) {
        ds.punchHole(pick(files), r.nextInt(100) * 1000L, r.nextInt(1, 100_000));
      } else if (k < 62) {
        long f = pick(files);
        ds.link(f, pick(dirs), "l" + names++);
      } else if (k < 70) { // delete a name
        long d = pick(dirs);
        List<DirEntry> entries =
            ds.readdir(d, 2, 1000).stream().filter(e -> e.mode() == Inode.S_IFREG).toList();
        if (!entries.isEmpty()) {
          DirEntry e = entries.get(r.nextInt(entries.size()));
          ds.unlink(d, e.name());
          if (ds.getattr(e.ino()).nlink() == 0) {
            ds.forget(e.ino());
            files.remove(e.ino());
          }
        }
      } else if (k < 80) {
        String source =
            r.nextInt(4) == 0 ? "" : ds.pathOf(r.nextBoolean() ? pick(files) : pick(dirs));
        String name = "s" + names++;
        ds.createSnapshot(name, source);
        snapshots.add(name);
      } else if (k < 85 && !snapshots.isEmpty()) {
        ds.deleteSnapshot(snapshots.remove(r.nextInt(snapshots.size())));
      } else if (k < 90 && !snapshots.isEmpty()) {
        String s = pick(snapshots);
        Restored restored = ds.restoreSnapshot(s, "", null);
        files.clear();
        collectFiles(ROOT, new HashSet<>());
        assertThat(restored).isNotNull();
      } else if (k < 92 && compress) { // later blocks in another form: raw, lz4 or zstd
        ds.setCompression(pick(List.of(Compression.NONE, Compression.LZ4, Compression.zstd(1))));
      } else {
        ds.flush(pick(files));
      }
    }

    /** Rebuilds the list of live regular files and directories after a restore changed them. */
    private void collectFiles(long d, Set<Long> seen) throws IOException {
      if (d == ROOT) {
        dirs.clear();
        dirs.add(ROOT);
      }
      for (DirEntry e : ds.readdir(d, 2, Integer.MAX_VALUE)) {
        if (d == ROOT && e.name().equals(Datastore.SNAPSHOTS)) {
          continue;
        }
        if (e.mode() == Inode.S_IFDIR) {
          dirs.add(e.ino());
          collectFiles(e.ino(), seen);
        } else if (e.mode() == Inode.S_IFREG && seen.add(e.ino())) {
          files.add(e.ino());
        }
      }
    }

    private void write(long f, long off, int len) throws IOException {
      byte[] data;
      if (r.nextBoolean()) {
        data =
            compress && r.nextBoolean()
                ? TestStores.compressibleBytes(r, len)
                : TestStores.randomBytes(r, len);
      } else { // leaf-aligned copies of a few patterns: leaves shared across files and offsets
        data = new byte[len];
        off = off / leaf * leaf;
        for (int i = 0; i < len; i += leaf) {
          System.arraycopy(
              patterns[r.nextInt(patterns.length)], 0, data, i, Math.min(leaf, len - i));
        }
      }
      TestStores.write(ds, f, off, data);
    }

    private <T> T pick(List<T> from) {
      return from.get(r.nextInt(from.size()));
    }

    private void check() throws IOException {
      ds.sync();
      ds.reclaim();
      List<String> paths = new ArrayList<>(List.of(""));
      for (long d : dirs) {
        paths.add(ds.pathOf(d));
      }
      for (int i = 0; i < 3 && !files.isEmpty(); i++) {
        paths.add(ds.pathOf(pick(files)));
      }
      if (!snapshots.isEmpty()) {
        paths.add(Datastore.SNAPSHOTS);
        for (String s : snapshots) {
          paths.add(Datastore.SNAPSHOTS + "/" + s);
        }
      }
      List<SpaceUsage> got = new ArrayList<>();
      for (String p : paths) {
        got.add(ds.usage(p));
      }
      Recount recount = Recount.of(ds);
      for (int i = 0; i < paths.size(); i++) {
        String p = paths.get(i);
        SpaceUsage want =
            p.isEmpty() ? recount.wholeStore() : recount.usage(inodesBelow(ds.resolve(p)));
        assertThat(got.get(i)).as("usage of '%s'", p).isEqualTo(want);
      }
      assertThat(got.get(0).storedBytes())
          .as("the whole store holds every stored block")
          .isEqualTo(recount.storedBytes());
      for (int i = 0;
          i < 3 && !files.isEmpty();
          i++) { // referenced bytes from the file's contents, too
        long f = pick(files);
        int size = (int) ds.getattr(f).size();
        assertThat(ds.usage(ds.pathOf(f)).referencedBytes())
            .as("referenced bytes of inode %d read back", f)
            .isEqualTo(referencedOf(TestStores.read(ds, f, 0, size), leaf));
      }
    }

    /** Inodes at or below {@code top}, each once (the root's .snapshots left out). */
    private Set<Long> inodesBelow(long top) throws IOException {
      Set<Long> out = new HashSet<>();
      out.add(top);
      Deque<Long> work = new ArrayDeque<>();
      work.add(top);
      while (!work.isEmpty()) {
        long d = work.poll();
        if (!ds.getattr(d).isDirectory()) {
          continue;
        }
        for (DirEntry e : ds.readdir(d, 2, Integer.MAX_VALUE)) {
          if (!(d == ROOT && e.name().equals(Datastore.SNAPSHOTS)) && out.add(e.ino())) {
            work.add(e.ino());
          }
        }
      }
      return out;
    }
  }

  @Test
  void figuresAreThoseAfterTheQueuedDecrementsWhileReclaimRuns() throws Exception {
    try (Datastore ds = Datastore.open(tmp, TestStores.config(LEAF))) {
      SplittableRandom r = new SplittableRandom(3);
      long keep = ds.mknod(ROOT, "keep", 0644, 0, 0, 0).ino();
      TestStores.write(ds, keep, 0, TestStores.randomBytes(r, 2 << 20));
      for (int round = 0; round < 10; round++) {
        long f = ds.mknod(ROOT, "f" + round, 0644, 0, 0, 0).ino();
        ds.copyRange(keep, 0, f, 0, 1 << 20);
        TestStores.write(ds, f, 1 << 20, TestStores.randomBytes(r, 8 << 20));
        ds.flush(f);
        ds.unlink(ROOT, "f" + round);
        ds.forget(f); // queues one decrement; reclaim runs in the background meanwhile
        Lmdb db = ds.db;
        SpaceUsage[] seen =
            db.read(
                txn -> {
                  PendingView pending = PendingView.of(txn, ds.blocks);
                  SpaceCounter counter = new SpaceCounter(txn, db, ds.blocks, pending);
                  return new SpaceUsage[] {
                    counter.wholeStore(), counter.usage(List.of(new Namespace(db).inode(txn, keep)))
                  };
                });
        ds.reclaim();
        Recount recount = Recount.of(ds);
        assertThat(seen[0]).isEqualTo(recount.wholeStore());
        assertThat(seen[1]).isEqualTo(recount.usage(Set.of(keep)));
      }
      assertConsistent(ds);
    }
  }
}
