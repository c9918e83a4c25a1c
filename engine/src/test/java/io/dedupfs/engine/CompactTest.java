package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
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

/**
 * Compact gives free pages back to the disk, on a store in use, and refuses cleanly without room
 * for its copy.
 */
class CompactTest {
  private static final int MIB = 1 << 20;

  @TempDir Path dir;

  @Test
  void compactShrinksTheStoreAfterMostDataIsDeletedAndKeepsTheRest() throws IOException {
    SplittableRandom r = new SplittableRandom(8);
    byte[] kept = TestStores.randomBytes(r, 8 * MIB);
    CompactResult result;
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      long keep = ds.mknod(ROOT, "keep", 0644, 0, 0, 0).ino();
      TestStores.write(ds, keep, 0, kept);
      long[] fs = new long[4];
      for (int i = 0; i < fs.length; i++) {
        fs[i] = ds.mknod(ROOT, "f" + i, 0644, 0, 0, 0).ino();
        TestStores.write(ds, fs[i], 0, TestStores.randomBytes(r, 12 * MIB));
        ds.flush(fs[i]);
      }
      for (int i = 0; i < fs.length; i++) {
        ds.unlink(ROOT, "f" + i);
        ds.forget(fs[i]);
      }
      ds.createSnapshot("s", "keep");
      ds.reclaim();
      List<Progress> progress = new ArrayList<>();
      result = ds.compact(progress::add);
      System.out.printf(
          "compact: data.mdb %d -> %d bytes (%.1f MiB of unique data kept)%n",
          result.bytesBefore(), result.bytesAfter(), kept.length / (double) MIB);
      assertThat(result.bytesBefore()).isGreaterThan(45L * MIB);
      assertThat(result.bytesAfter())
          .isLessThan(10L * MIB)
          .isEqualTo(Files.size(dir.resolve("data.mdb")));
      assertThat(progress).extracting(Progress::phase).contains("copy", "check", "swap", "done");
      assertThat(Files.exists(dir.resolve(Lmdb.COMPACT_DIR))).isFalse();
      TestStores.assertSameBytes(TestStores.read(ds, keep, 0, kept.length), kept, "the file kept");
      TestStores.assertSameBytes(
          TestStores.read(ds, ds.resolve(".snapshots/s/keep"), 0, kept.length),
          kept,
          "its snapshot");
      assertConsistent(ds);
      long after = ds.mknod(ROOT, "after", 0644, 0, 0, 0).ino();
      TestStores.write(ds, after, 0, TestStores.randomBytes(r, 3 * MIB));
      ds.flush(after);
      assertConsistent(ds);
    }
    try (Datastore ds = Datastore.open(dir, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
      TestStores.assertSameBytes(
          TestStores.read(ds, ds.resolve("keep"), 0, kept.length), kept, "the file kept, reopened");
      assertConsistent(ds);
    }
  }

  @Test
  void compactRunsWhileTheStoreIsReadAndWritten() throws Exception {
    SplittableRandom r = new SplittableRandom(9);
    try (Datastore ds = Datastore.open(dir, TestStores.config(4096))) {
      byte[] base = TestStores.randomBytes(r, 4 * MIB);
      long reader = ds.mknod(ROOT, "read", 0644, 0, 0, 0).ino();
      TestStores.write(ds, reader, 0, base);
      long garbage = ds.mknod(ROOT, "garbage", 0644, 0, 0, 0).ino();
      TestStores.write(ds, garbage, 0, TestStores.randomBytes(r, 16 * MIB));
      ds.flush(garbage);
      ds.unlink(ROOT, "garbage");
      ds.forget(garbage);
      long written = ds.mknod(ROOT, "written", 0644, 0, 0, 0).ino();
      byte[] model = new byte[2 * MIB];
      ds.setattr(written, SetAttributes.size(model.length));
      AtomicBoolean done = new AtomicBoolean();
      ExecutorService pool = Executors.newFixedThreadPool(2);
      List<Future<?>> running = new ArrayList<>();
      running.add(
          pool.submit(
              (Callable<Void>)
                  () -> {
                    SplittableRandom wr = new SplittableRandom(1);
                    while (!done.get()) {
                      int at = wr.nextInt(model.length - 5000);
                      byte[] b = TestStores.randomBytes(wr, wr.nextInt(1, 5000));
                      TestStores.write(ds, written, at, b);
                      System.arraycopy(b, 0, model, at, b.length);
                      ds.flush(written);
                    }
                    return null;
                  }));
      running.add(
          pool.submit(
              (Callable<Void>)
                  () -> {
                    while (!done.get()) {
                      TestStores.assertSameBytes(
                          TestStores.read(ds, reader, 0, base.length), base, "read during compact");
                    }
                    return null;
                  }));
      try {
        for (int i = 0; i < 3; i++) {
          Thread.sleep(100);
          ds.compact(null);
        }
      } finally {
        done.set(true);
        for (Future<?> f : running) {
          f.get();
        }
        pool.shutdown();
      }
      TestStores.assertSameBytes(
          TestStores.read(ds, written, 0, model.length), model, "written during compact");
      assertConsistent(ds);
    }
  }

  @Test
  void withoutRoomForTheCopyCompactIsStoreFullAndChangesNothing() throws Exception {
    assumeTrue(TestStores.canMount(), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(dir.resolve("small"));
    assumeTrue(TestStores.mountTmpfs(mnt, 48), "mount -t tmpfs failed");
    try {
      Path store = mnt.resolve("store");
      SplittableRandom r = new SplittableRandom(10);
      byte[] data = TestStores.randomBytes(r, 16 * MIB);
      try (Datastore ds =
          Datastore.open(store, TestStores.config(DatastoreConfig.DEFAULT_LEAF_SIZE))) {
        long f = ds.mknod(ROOT, "f", 0644, 0, 0, 0).ino();
        TestStores.write(ds, f, 0, data);
        ds.flush(f);
        long used =
            Files.getFileStore(mnt).getTotalSpace() - Files.getFileStore(mnt).getUsableSpace();
        Path filler = mnt.resolve("filler");
        Files.write(filler, new byte[(int) (Files.getFileStore(mnt).getUsableSpace() - 8 * MIB)]);
        byte[] before = Files.readAllBytes(store.resolve("data.mdb"));
        assertThatThrownBy(() -> ds.compact(null))
            .isInstanceOf(StoreFullException.class)
            .hasMessageContaining("needs");
        assertThat(Files.readAllBytes(store.resolve("data.mdb")))
            .as("data.mdb untouched")
            .isEqualTo(before);
        assertThat(Files.exists(store.resolve(Lmdb.COMPACT_DIR))).isFalse();
        TestStores.assertSameBytes(TestStores.read(ds, f, 0, data.length), data, "the file");
        Files.delete(filler);
        CompactResult result = ds.compact(null);
        assertThat(result.bytesAfter()).isLessThanOrEqualTo(result.bytesBefore());
        TestStores.assertSameBytes(
            TestStores.read(ds, f, 0, data.length), data, "the file after compact");
        assertConsistent(ds);
        assertThat(used).isPositive();
      }
    } finally {
      TestStores.unmount(mnt);
    }
  }
}
