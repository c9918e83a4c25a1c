package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.lmdbjava.Cursor;
import org.lmdbjava.Dbi;
import org.lmdbjava.Env;
import org.lmdbjava.GetOp;
import org.lmdbjava.Txn;

/** Scrub finds damaged blocks and names each file and range; scrub and fsck run beside writers. */
class IntegrityTest {
  private static final int LEAF = 4096;

  @TempDir Path dir;

  @Test
  void scrubNamesEveryFileAndRangeThatADamagedBlockCovers() throws IOException {
    SplittableRandom r = new SplittableRandom(5);
    long a;
    long c;
    Hash sharedLeaf;
    Hash node;
    Hash lastLeaf;
    Hash gone;
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      long vm = ds.mkdir(ROOT, "vm", 0755, 0, 0).ino();
      a = ds.mknod(vm, "a", 0644, 0, 0, 0).ino();
      TestStores.write(
          ds, a, 0, TestStores.randomBytes(r, (1 << 20) - 1000)); // the last leaf is partial
      long b = ds.mknod(ROOT, "b", 0644, 0, 0, 0).ino();
      ds.copyRange(a, 0, b, 0, 1 << 20);
      ds.createSnapshot("s", "vm");
      c = ds.mknod(ROOT, "c", 0644, 0, 0, 0).ino();
      TestStores.write(ds, c, 0, TestStores.randomBytes(r, 2 << 20));
      ds.flush(c);
      ds.reclaim();

      ScrubReport clean = ds.scrub(null);
      TestStores.Counts counts = TestStores.counts(ds);
      assertThat(clean)
          .isEqualTo(new ScrubReport(counts.blocks(), counts.storedBytes(), List.of()));

      sharedLeaf = block(ds, a, 0, 10);
      lastLeaf = block(ds, a, 0, 255);
      node = block(ds, c, 1, 1);
      gone = block(ds, c, 0, 3);
    }
    damage(sharedLeaf, false);
    damage(lastLeaf, false);
    damage(node, false);
    damage(gone, true);
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      List<Progress> progress = new ArrayList<>();
      ScrubReport report = ds.scrub(progress::add);
      String mismatch = "its bytes do not match its hash";
      long s = ds.resolve(".snapshots/s/a");
      long b = ds.resolve("b");
      assertThat(report.damaged())
          .containsExactlyInAnyOrder(
              new Damage("vm/a", a, 10 * LEAF, LEAF, mismatch),
              new Damage("b", b, 10 * LEAF, LEAF, mismatch),
              new Damage(".snapshots/s/a", s, 10 * LEAF, LEAF, mismatch),
              new Damage("vm/a", a, 255 * LEAF, LEAF - 1000, mismatch),
              new Damage("b", b, 255 * LEAF, LEAF - 1000, mismatch),
              new Damage(".snapshots/s/a", s, 255 * LEAF, LEAF - 1000, mismatch),
              new Damage("c", c, 128 * LEAF, 128 * LEAF, mismatch),
              new Damage("c", c, 3 * LEAF, LEAF, "missing from the store"));
      assertThat(progress).isNotEmpty();
      Progress last =
          progress.stream()
              .filter(p -> p.phase().equals("scrub"))
              .reduce((x, y) -> y)
              .orElseThrow();
      assertThat(last.done()).isEqualTo(report.blocksChecked());
      assertThat(progress).anyMatch(p -> p.phase().equals("locate"));
      assertThatThrownBy(() -> TestStores.read(ds, a, 10 * LEAF, 1))
          .isInstanceOf(CorruptBlockException.class);
      assertThat(ds.fsck(null))
          .anyMatch(p -> p.contains("do not match"))
          .anyMatch(p -> p.contains("missing"));
    }
  }

  /**
   * A write that covers a whole damaged leaf replaces it without reading it (as a rewrite of a
   * disk's bad sector does); a write into part of one is refused, and neither returns wrong bytes.
   */
  @Test
  void aDamagedLeafCanBeWrittenOverWhole() throws IOException {
    SplittableRandom r = new SplittableRandom(6);
    long f;
    Hash whole;
    Hash part;
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      f = ds.mknod(ROOT, "f", 0644, 0, 0, 0).ino();
      TestStores.write(ds, f, 0, TestStores.randomBytes(r, 8 * LEAF));
      ds.flush(f);
      whole = block(ds, f, 0, 3);
      part = block(ds, f, 0, 5);
    }
    damage(whole, false);
    damage(part, false);
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      byte[] fresh = TestStores.randomBytes(r, LEAF);
      TestStores.write(ds, f, 3 * LEAF, fresh);
      assertThatThrownBy(() -> TestStores.write(ds, f, 5 * LEAF + 100, new byte[100]))
          .isInstanceOf(CorruptBlockException.class);
      assertThat(TestStores.read(ds, f, 3 * LEAF, LEAF)).isEqualTo(fresh);
      ds.flush(f);
      ds.reclaim();
      assertThat(TestStores.read(ds, f, 3 * LEAF, LEAF)).isEqualTo(fresh);
      assertThat(ds.scrub(null).damaged())
          .containsExactly(new Damage("f", f, 5 * LEAF, LEAF, "its bytes do not match its hash"));
    }
  }

  /**
   * The hash at {@code level}, {@code index} (in subtrees of that level) of a file's committed
   * tree.
   */
  static Hash block(Datastore ds, long ino, int level, long index) throws IOException {
    Lmdb db = ds.db;
    return db.read(
        txn -> {
          Inode i = new Namespace(db).inode(txn, ino);
          FileTree t =
              new FileTree(new Geometry(ds.leafSize()), ds.blocks, i.root(), i.height(), i.size());
          return t.subtree(txn, level, index, new boolean[1]);
        });
  }

  /** Flips a byte of a stored block's value with raw LMDB (the store closed), or deletes it. */
  private void damage(Hash h, boolean delete) {
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(dir.toFile())) {
      Dbi<ByteBuffer> blocks = env.openDbi("blocks");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        byte[] key;
        byte[] value;
        try (Cursor<ByteBuffer> c = blocks.openCursor(txn)) {
          assertThat(c.get(direct(hashBytes(h)), GetOp.MDB_SET_RANGE)).isTrue();
          key = Lmdb.bytes(c.key());
          value = Lmdb.bytes(c.val());
        }
        if (delete) {
          blocks.delete(txn, direct(key));
        } else {
          value[value.length / 3] ^= 0x10;
          blocks.put(txn, direct(key), direct(value));
        }
        txn.commit();
      }
    }
  }

  static byte[] hashBytes(Hash h) {
    ByteBuffer b = ByteBuffer.allocate(Hash.SIZE);
    h.writeTo(b);
    return b.array();
  }

  static ByteBuffer direct(byte[] b) {
    return ByteBuffer.allocateDirect(b.length).put(b).flip();
  }

  @Test
  void fsckAndScrubAreCleanOnAStoreInUse() throws Exception {
    int rounds = TestStores.longRuns() ? 40 : 8;
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF).withDirtyLimit(2 << 20))) {
      long vm = ds.mkdir(ROOT, "vm", 0755, 0, 0).ino();
      long[] disks = new long[3];
      for (int i = 0; i < disks.length; i++) {
        disks[i] = ds.mknod(vm, "disk" + i, 0644, 0, 0, 0).ino();
      }
      AtomicBoolean done = new AtomicBoolean();
      ExecutorService pool = Executors.newFixedThreadPool(5);
      List<Future<?>> running = new ArrayList<>();
      for (int w = 0; w < disks.length; w++) {
        int me = w;
        running.add(
            pool.submit(
                (Callable<Void>)
                    () -> {
                      SplittableRandom r = new SplittableRandom(me);
                      while (!done.get()) {
                        long at = r.nextLong(8 << 20);
                        if (r.nextInt(6) == 0) {
                          ds.punchHole(disks[me], at, r.nextInt(1, 200_000));
                        } else {
                          ds.write(
                              disks[me],
                              at,
                              ByteBuffer.wrap(TestStores.randomBytes(r, r.nextInt(1, 100_000))));
                        }
                        if (r.nextInt(8) == 0) {
                          ds.flush(disks[me]);
                        }
                      }
                      return null;
                    }));
      }
      running.add(
          pool.submit(
              (Callable<Void>)
                  () -> { // clones made and deleted: whole trees freed by reclaim
                    SplittableRandom r = new SplittableRandom(10);
                    for (int n = 0; !done.get(); n++) {
                      long copy = ds.mknod(ROOT, "copy" + n, 0644, 0, 0, 0).ino();
                      ds.copyRange(disks[r.nextInt(disks.length)], 0, copy, 0, Long.MAX_VALUE / 4);
                      TestStores.write(
                          ds, copy, r.nextLong(4 << 20), TestStores.randomBytes(r, 50_000));
                      ds.flush(copy);
                      if (n > 0) {
                        long old = ds.lookup(ROOT, "copy" + (n - 1)).ino();
                        ds.unlink(ROOT, "copy" + (n - 1));
                        ds.forget(old);
                      }
                    }
                    return null;
                  }));
      running.add(
          pool.submit(
              (Callable<Void>)
                  () -> { // snapshots taken and deleted
                    for (int n = 0; !done.get(); n++) {
                      ds.createSnapshot("s" + n, "vm");
                      if (n > 1) {
                        ds.deleteSnapshot("s" + (n - 2));
                      }
                      Thread.sleep(20);
                    }
                    return null;
                  }));
      int sawQueued = 0;
      try {
        for (int round = 0; round < rounds; round++) {
          List<Progress> progress = new ArrayList<>();
          assertThat(ds.fsck(progress::add)).as("fsck, round %d", round).isEmpty();
          assertThat(progress)
              .extracting(Progress::phase)
              .contains("blocks", "counts", "namespace");
          Fsck internal = new Fsck(ds.db, ds.blocks); // without the reclaim before it
          assertThat(internal.check())
              .as("fsck without a reclaim first, round %d", round)
              .isEmpty();
          sawQueued += internal.queued() > 0 ? 1 : 0;
          assertThat(ds.scrub(null).damaged()).as("scrub, round %d", round).isEmpty();
        }
      } finally {
        done.set(true);
        for (Future<?> f : running) {
          f.get();
        }
        pool.shutdown();
      }
      System.out.printf(
          "fsck on a store in use: %d of %d checks saw decrements still queued%n",
          sawQueued, rounds);
      assertConsistent(ds);
    }
  }
}
