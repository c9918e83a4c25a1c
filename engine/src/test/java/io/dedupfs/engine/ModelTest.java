package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Thousands of seeded random operations on several files, each checked byte for byte against a
 * {@link FileModel}; SEEK_DATA/SEEK_HOLE are checked against the model's leaf-granular holes (a
 * hole is a leaf-aligned leaf with no non-zero byte, or the end of the file). After every reopen
 * and at the end the store must pass {@link Fsck} once its queued decrements are applied, and at
 * the end each file's root must equal that of a file written afresh with the same contents.
 *
 * <p>Some runs also crash: the store is abandoned as a killed process leaves it (nothing buffered
 * is committed; {@link Datastore#abandon}) and opened again, which replays the intent log; then
 * every file must hold exactly what it held at its last durable point (fsync, flush, sync, a
 * truncate or a copy, which commit). Those runs keep every commit in the test's hands (no
 * background commits), so that the durable point is known.
 *
 * <p>With compression on, a quarter of the writes are compressible data, and every reopen may
 * switch the store's compression (none, lz4, zstd), so that the files mix raw leaves and leaves of
 * both codecs.
 *
 * <p>A failure names its seed; replay one with {@code -Ddedupfs.seed=N -Ddedupfs.leaf=BYTES} (and
 * optionally {@code -Ddedupfs.ops=COUNT}, {@code -Ddedupfs.compression=lz4}, {@code
 * -Ddedupfs.crashes=true}). {@code -Ddedupfs.test.long=true} runs more seeds.
 */
class ModelTest {
  private static final int FILES = 3;

  @TempDir Path tmp;

  @TestFactory
  Stream<DynamicTest> randomOperations() {
    List<DynamicTest> tests = new ArrayList<>();
    String replay = System.getProperty("dedupfs.seed");
    if (replay != null) {
      int leaf = Integer.getInteger("dedupfs.leaf", 4096);
      int ops = Integer.getInteger("dedupfs.ops", 1500);
      Compression c = Compression.parse(System.getProperty("dedupfs.compression", "none"));
      tests.add(run(Long.parseLong(replay), leaf, ops, c, Boolean.getBoolean("dedupfs.crashes")));
      return tests.stream();
    }
    boolean soak = TestStores.longRuns();
    for (int s = 0; s < (soak ? 60 : 6); s++) {
      tests.add(run(1000 + s, 4096, soak ? 8000 : 3000));
    }
    for (int s = 0; s < (soak ? 15 : 2); s++) {
      tests.add(run(2000 + s, DatastoreConfig.DEFAULT_LEAF_SIZE, soak ? 5000 : 2000));
    }
    tests.add(run(3000, 8192, soak ? 5000 : 2000));
    for (int s = 0; s < (soak ? 15 : 2); s++) {
      tests.add(run(4000 + s, DatastoreConfig.DEFAULT_LEAF_SIZE, soak ? 5000 : 2000, LZ4));
    }
    tests.add(run(4100, 8192, soak ? 5000 : 2000, Compression.zstd(3)));
    for (int s = 0; s < (soak ? 30 : 3); s++) {
      int leafSize = s % 2 == 0 ? 4096 : 16384;
      tests.add(run(5000 + s, leafSize, soak ? 6000 : 2500, s == 1 ? LZ4 : NONE, true));
    }
    return tests.stream();
  }

  private static final Compression NONE = Compression.NONE;
  private static final Compression LZ4 = Compression.LZ4;

  private DynamicTest run(long seed, int leafSize, int ops) {
    return run(seed, leafSize, ops, NONE);
  }

  private DynamicTest run(long seed, int leafSize, int ops, Compression compression) {
    return run(seed, leafSize, ops, compression, false);
  }

  private DynamicTest run(
      long seed, int leafSize, int ops, Compression compression, boolean crashes) {
    return DynamicTest.dynamicTest(
        "seed "
            + seed
            + ", leaf "
            + leafSize
            + ", "
            + ops
            + " ops, compression "
            + compression
            + (crashes ? ", crashes" : ""),
        () -> {
          Path dir = Files.createTempDirectory(tmp, "model");
          new Run(seed, leafSize, dir, compression, crashes).run(ops);
        });
  }

  private static final class Run {
    private final long seed;
    private final int leaf;
    private final Path dir;
    private final SplittableRandom r;
    private final long[] inos = new long[FILES];
    private final FileModel[] models = new FileModel[FILES];

    /** What each file must hold after a crash: its model at its last durable point. */
    private final FileModel[] durable = new FileModel[FILES];

    private final boolean crashes;
    private final byte[][] patterns;
    private final Deque<String> recent = new ArrayDeque<>();
    private final Compression compression;
    private Datastore ds;

    Run(long seed, int leaf, Path dir, Compression compression, boolean crashes) {
      this.seed = seed;
      this.crashes = crashes;
      this.leaf = leaf;
      this.dir = dir;
      this.compression = compression;
      this.r = new SplittableRandom(seed);
      this.patterns = new byte[6][];
      for (int i = 0; i < patterns.length; i++) {
        patterns[i] = TestStores.randomBytes(r, leaf);
      }
    }

    void run(int ops) throws Exception {
      int step = -1;
      try {
        ds = open(leaf);
        for (int f = 0; f < FILES; f++) {
          inos[f] = TestStores.create(ds, "f" + f);
          models[f] = new FileModel();
          durable[f] = new FileModel();
        }
        for (step = 0; step < ops; step++) {
          step();
          if (step % 250 == 249) {
            for (int f = 0; f < FILES; f++) {
              verifyAll(f);
            }
          }
        }
        reopen();
        checkCanonical();
        if (!compression.isNone()) {
          TestStores.assertMixed(ds);
        }
        assertConsistent(ds);
        ds.close();
      } catch (Throwable t) {
        AssertionError failure =
            new AssertionError(
                "model test failed: seed "
                    + seed
                    + ", leaf "
                    + leaf
                    + ", at operation "
                    + step
                    + "; replay with -Ddedupfs.seed="
                    + seed
                    + " -Ddedupfs.leaf="
                    + leaf
                    + " -Ddedupfs.compression="
                    + compression
                    + (crashes ? " -Ddedupfs.crashes=true" : "")
                    + "\nlast operations (newest last):\n  "
                    + String.join("\n  ", recent),
                t);
        if (ds != null) {
          try {
            ds.close();
          } catch (Throwable closing) {
            failure.addSuppressed(closing);
          }
        }
        throw failure;
      }
    }

    private void log(String op) {
      recent.addLast(op);
      if (recent.size() > 25) {
        recent.removeFirst();
      }
    }

    private void step() throws IOException {
      int f = r.nextInt(FILES);
      long ino = inos[f];
      FileModel m = models[f];
      int k = r.nextInt(1000);
      if (k < 300) {
        long off = pickOffset(m.size());
        byte[] data = pickData(off);
        log("write f" + f + " @" + off + " +" + data.length);
        TestStores.write(ds, ino, off, data);
        m.write(off, data);
      } else if (k < 450) {
        long off = r.nextInt(3) == 0 ? pickDataOffset(m) : pickOffset(m.size());
        int len = pickLength();
        log("read f" + f + " @" + off + " +" + len);
        assertRead(f, off, len);
      } else if (k < 510) {
        long size = pickOffset(m.size()) + (r.nextBoolean() ? 0 : r.nextInt(leaf));
        log("truncate f" + f + " to " + size);
        ds.setattr(ino, SetAttributes.size(size));
        m.truncate(size);
        durable[f] = m.copy(); // a truncate commits
      } else if (k < 570) {
        long off = pickOffset(m.size());
        long len = r.nextInt(10) == 0 ? 1L << (20 + r.nextInt(14)) : pickLength();
        log("punch f" + f + " @" + off + " +" + len);
        ds.punchHole(ino, off, len);
        m.zero(off, off + len);
      } else if (k < 610) {
        long off = pickOffset(m.size());
        long len = pickLength();
        boolean keep = r.nextBoolean();
        log("zeroRange f" + f + " @" + off + " +" + len + (keep ? " keep size" : ""));
        ds.zeroRange(ino, off, len, keep);
        m.zeroRange(off, len, keep);
      } else if (k < 640) {
        int d = r.nextInt(FILES);
        if (d == f) {
          return;
        }
        boolean fresh = r.nextInt(3) > 0;
        log("clone f" + f + " to f" + d + (fresh ? " (emptied first)" : " (over its contents)"));
        if (fresh) {
          ds.setattr(inos[d], SetAttributes.size(0));
          models[d].truncate(0);
          durable[d] = models[d].copy();
        }
        copy(f, 0, d, 0, m.size());
      } else if (k < 700) {
        int d = r.nextInt(FILES);
        long span = r.nextInt(3) == 0 ? (long) leaf * Geometry.FANOUT : leaf;
        long so = pickOffset(m.size()) / span * span;
        long dOff = pickOffset(models[d].size()) / span * span;
        if (r.nextBoolean()) { // the same misalignment at both ends: leaves in between are still
          // shared
          int skew = r.nextInt(leaf);
          so += skew;
          dOff += skew;
        }
        long len = r.nextInt(4) == 0 ? Long.MAX_VALUE / 4 : r.nextLong(3 * span) + 1;
        log("aligned copy f" + f + " @" + so + " to f" + d + " @" + dOff + " +" + len);
        copy(f, so, d, dOff, len);
      } else if (k < 730) {
        int d = r.nextInt(FILES);
        long so = pickOffset(m.size());
        long dOff = pickOffset(models[d].size());
        long len = r.nextInt(256 * 1024) + 1;
        log("unaligned copy f" + f + " @" + so + " to f" + d + " @" + dOff + " +" + len);
        copy(f, so, d, dOff, len);
      } else if (k < 755) {
        log("flush f" + f);
        ds.flush(ino);
        durable[f] = m.copy();
      } else if (k < 790) {
        log("fsync f" + f);
        ds.fsync(ino);
        durable[f] = m.copy();
        if (crashes && r.nextInt(8) == 0) {
          log("crash");
          crash();
        }
      } else if (k < 795) {
        log("sync");
        ds.sync();
        for (int g = 0; g < FILES; g++) {
          durable[g] = models[g].copy();
        }
      } else if (k < 798) {
        if (crashes && r.nextBoolean()) {
          log("crash");
          crash();
        } else {
          log("reopen");
          reopen();
        }
      } else {
        long off = r.nextInt(4) == 0 ? pickDataOffset(m) : pickOffset(m.size());
        boolean data = r.nextBoolean();
        log((data ? "seekData" : "seekHole") + " f" + f + " @" + off);
        long got = data ? TestStores.seekData(ds, ino, off) : TestStores.seekHole(ds, ino, off);
        long want = data ? m.seekData(off, leaf) : m.seekHole(off, leaf);
        assertThat(got)
            .as("%s f%d from %d (size %d)", data ? "SEEK_DATA" : "SEEK_HOLE", f, off, m.size())
            .isEqualTo(want);
      }
    }

    private void copy(int f, long so, int d, long dOff, long len) throws IOException {
      FileModel src = models[f];
      long n = Math.min(len, Math.max(0, src.size() - so));
      if (f == d && n > 0 && so < dOff + n && dOff < so + n) {
        assertThatThrownBy(() -> ds.copyRange(inos[f], so, inos[d], dOff, len))
            .isInstanceOfSatisfying(
                FsException.class,
                e -> assertThat(e.kind()).isEqualTo(FsException.Kind.INVALID_ARGUMENT));
        return;
      }
      if (n > 0) {
        durable[f] = src.copy(); // a copy commits both files, the source first
      }
      assertThat(ds.copyRange(inos[f], so, inos[d], dOff, len)).isEqualTo(n);
      assertThat(models[d].copyRange(src, so, dOff, len)).isEqualTo(n);
      if (n > 0) {
        durable[d] = models[d].copy();
      }
    }

    /**
     * A store whose commits are all the test's in a run with crashes: no background commits (a
     * dirty limit it never reaches, no timer, no folds of the log).
     */
    private Datastore open(int leafSize) throws IOException {
      DatastoreConfig c =
          TestStores.config(leafSize)
              .withDirtyLimit(crashes ? 1L << 30 : 64L * leaf * 4)
              .withCompression(compression);
      Datastore d = Datastore.open(dir, c);
      d.writeBack.foldInBackground = !crashes;
      return d;
    }

    /**
     * Abandons the store as a killed process would and opens it again: each file holds what it held
     * at its last durable point, and goes on from there.
     */
    private void crash() throws IOException {
      ds.abandon();
      ds = null;
      ds = open(leaf == 4096 ? 65536 : 4096);
      for (int f = 0; f < FILES; f++) {
        models[f] = durable[f].copy();
      }
      assertConsistent(ds);
      for (int f = 0; f < FILES; f++) {
        verifyAll(f);
      }
    }

    private void reopen() throws IOException {
      ds.close();
      ds = null;
      ds = open(leaf == 4096 ? 65536 : 4096);
      for (int f = 0; f < FILES; f++) {
        durable[f] = models[f].copy();
      }
      assertThat(ds.leafSize()).as("the store keeps its own leaf size").isEqualTo(leaf);
      if (!compression.isNone()) {
        Compression next = List.of(NONE, LZ4, Compression.zstd(1)).get(r.nextInt(3));
        log("compression " + ds.compression() + " -> " + next);
        ds.setCompression(next);
      }
      for (int f = 0; f < FILES; f++) {
        assertThat(ds.lookup(Datastore.ROOT, "f" + f).ino())
            .as("inode numbers survive a reopen")
            .isEqualTo(inos[f]);
      }
      assertConsistent(ds);
      for (int f = 0; f < FILES; f++) {
        verifyAll(f);
      }
    }

    /**
     * Every data extent and the leaf after it, found with SEEK_DATA/SEEK_HOLE, against the model.
     */
    private void verifyAll(int f) throws IOException {
      long ino = inos[f];
      FileModel m = models[f];
      assertThat(ds.getattr(ino).size()).as("size of f%d", f).isEqualTo(m.size());
      assertRead(f, 0, leaf);
      long off = 0;
      while (off < m.size()) {
        long d = TestStores.seekData(ds, ino, off);
        assertThat(d).as("SEEK_DATA f%d from %d", f, off).isEqualTo(m.seekData(off, leaf));
        if (d < 0) {
          break;
        }
        long h = TestStores.seekHole(ds, ino, d);
        assertThat(h).as("SEEK_HOLE f%d from %d", f, d).isEqualTo(m.seekHole(d, leaf));
        for (long pos = d; pos < h; pos += 1 << 20) {
          assertRead(f, pos, (int) Math.min(1 << 20, h - pos));
        }
        assertRead(f, h, leaf); // a hole reads as zeros
        off = h;
      }
    }

    private void assertRead(int f, long off, int len) throws IOException {
      byte[] got = TestStores.read(ds, inos[f], off, len);
      byte[] want = models[f].read(off, len);
      if (!Arrays.equals(got, want)) {
        int at = Arrays.mismatch(got, want);
        throw new AssertionError(
            "f"
                + f
                + " read @"
                + off
                + " +"
                + len
                + ": "
                + got.length
                + " bytes, expected "
                + want.length
                + "; first difference at file offset "
                + (off + at));
      }
    }

    /** A file written afresh with the same contents has the same root: trees are canonical. */
    private void checkCanonical() throws IOException {
      for (int f = 0; f < FILES; f++) {
        FileModel m = models[f];
        long copy = TestStores.create(ds, "canonical" + f);
        for (long page : m.dataPageOffsets()) {
          TestStores.write(ds, copy, page, m.read(page, FileModel.PAGE));
        }
        ds.setattr(copy, SetAttributes.size(m.size()));
        ds.flush(copy);
        ds.flush(inos[f]);
        assertThat(TestStores.root(ds, copy))
            .as("root of f%d written afresh", f)
            .isEqualTo(TestStores.root(ds, inos[f]));
      }
    }

    private long pickOffset(long size) {
      int k = r.nextInt(100);
      if (k < 50) {
        return r.nextLong(3L << 20);
      }
      if (k < 78) {
        return Math.max(0, size - 65536 + r.nextLong(131072));
      }
      if (k < 88) {
        return r.nextLong(1L << 33); // far away: trees three or four levels high
      }
      long span = (long) leaf << (Geometry.FANOUT_SHIFT * (1 + r.nextInt(2)));
      return Math.max(0, span * r.nextInt(1, 4) + r.nextInt(-2 * leaf, 2 * leaf));
    }

    private long pickDataOffset(FileModel m) {
      List<Long> pages = m.dataPageOffsets();
      return pages.isEmpty() ? 0 : pages.get(r.nextInt(pages.size())) + r.nextInt(FileModel.PAGE);
    }

    private int pickLength() {
      int k = r.nextInt(100);
      if (k < 40) {
        return r.nextInt(3 * leaf) + 1;
      }
      if (k < 60) {
        return leaf * r.nextInt(1, 5);
      }
      if (k < 80) {
        return r.nextInt(512) + 1;
      }
      return r.nextInt(300 * 1024) + 1;
    }

    private byte[] pickData(long off) {
      int k = r.nextInt(100);
      // now and then enough for whole dense subtrees (128 leaves of 4 KiB are 512 KiB)
      int len = r.nextInt(20) == 0 ? r.nextInt(512 * 1024, 3 << 20) : pickLength();
      if (k < 50) {
        return !compression.isNone() && r.nextBoolean()
            ? TestStores.compressibleBytes(r, len)
            : TestStores.randomBytes(r, len);
      }
      if (k < 75) { // copies of a few leaf-sized patterns, so that leaves dedupe
        byte[] p = patterns[r.nextInt(patterns.length)];
        byte[] out = new byte[len];
        int phase = (int) (off % leaf);
        for (int i = 0; i < len; i++) {
          out[i] = p[(phase + i) % leaf];
        }
        return out;
      }
      if (k < 90) {
        return new byte[len];
      }
      byte[] sparse = new byte[len];
      for (int i = 0; i < 3; i++) {
        sparse[r.nextInt(len)] = (byte) (1 + r.nextInt(255));
      }
      return sparse;
    }
  }
}
