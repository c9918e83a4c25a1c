package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.lmdbjava.Cursor;
import org.lmdbjava.Dbi;
import org.lmdbjava.Env;
import org.lmdbjava.Txn;

/** Stores that must not be opened, damaged blocks, a full disk and a full map. */
class BadInputTest {
  @TempDir Path tmp;

  @Test
  void refusesADirectoryHoldingOtherFiles() throws IOException {
    Files.writeString(tmp.resolve("notes.txt"), "mine");
    assertThatThrownBy(() -> Datastore.open(tmp, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("not a dedupfs store");
    assertThat(Files.list(tmp).count()).as("nothing was created there").isEqualTo(1);
    Path file = tmp.resolve("notes.txt");
    assertThatThrownBy(() -> Datastore.open(file, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("not a directory");
    assertThatThrownBy(
            () -> Datastore.open(tmp.resolve("none"), TestStores.config(4096).withReadOnly(true)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("read-only");
    Path garbage = Files.createDirectory(tmp.resolve("garbage"));
    Files.write(garbage.resolve("data.mdb"), new byte[8192]);
    assertThatThrownBy(() -> Datastore.open(garbage, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("LMDB");
    assertThat(Files.list(garbage).map(p -> p.getFileName().toString()))
        .as("a damaged store gets nothing new beside it")
        .containsExactly("data.mdb");
  }

  @Test
  void aStoreOnAReadOnlyFilesystemOpensReadOnly() throws Exception {
    assumeTrue("root".equals(System.getProperty("user.name")), "a read-only bind mount needs root");
    Path store = tmp.resolve("store");
    byte[] data = "kept on a read-only backup".getBytes(StandardCharsets.UTF_8);
    long ino;
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      ino = TestStores.create(ds, "f");
      TestStores.write(ds, ino, 0, data);
    }
    Files.deleteIfExists(store.resolve("lock.mdb")); // as a copy of a store would not carry it
    Path ro = Files.createDirectory(tmp.resolve("ro"));
    assumeTrue(run("mount", "--bind", store.toString(), ro.toString()), "mount --bind failed");
    try {
      assertThat(run("mount", "-o", "remount,bind,ro", ro.toString())).isTrue();
      try (Datastore ds = Datastore.open(ro, TestStores.config(4096).withReadOnly(true))) {
        assertThat(TestStores.read(ds, ino, 0, data.length)).containsExactly(data);
      }
      assertThatThrownBy(() -> Datastore.open(ro, TestStores.config(4096)))
          .as("a writable open of a read-only filesystem fails cleanly")
          .isInstanceOf(IOException.class);
    } finally {
      run("umount", ro.toString());
    }
    try (Datastore writer = Datastore.open(store, TestStores.config(4096))) {
      assertThatThrownBy(() -> Datastore.open(store, TestStores.config(4096).withReadOnly(true)))
          .as("a read-only open is refused while a writer has the store")
          .isInstanceOf(StoreException.class)
          .hasMessageContaining("in use");
    }
  }

  @Test
  void refusesAnotherFormatVersionAndOtherLmdbEnvironments() throws IOException {
    Path store = tmp.resolve("store");
    Datastore.open(store, TestStores.config(4096)).close();
    String newer = Integer.toString(Lmdb.FORMAT_VERSION + 1);
    putMeta(store, "formatVersion", newer);
    assertThatThrownBy(() -> Datastore.open(store, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("format version " + newer)
        .hasMessageContaining("to " + Lmdb.FORMAT_VERSION);
    putMeta(store, "formatVersion", "0");
    assertThatThrownBy(() -> Datastore.open(store, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("format version 0");
    putMeta(store, "formatVersion", Integer.toString(Lmdb.FORMAT_VERSION));
    Datastore.open(store, TestStores.config(4096)).close();
    putMeta(store, "magic", "something else");
    assertThatThrownBy(() -> Datastore.open(store, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("not a dedupfs store");

    Path other = tmp.resolve("other");
    Files.createDirectory(other);
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(4).open(other.toFile())) {
      Dbi<ByteBuffer> theirs = env.openDbi("theirs", org.lmdbjava.DbiFlags.MDB_CREATE);
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        theirs.put(txn, direct(new byte[] {1}), direct(new byte[] {2}));
        txn.commit();
      }
    }
    assertThatThrownBy(() -> Datastore.open(other, TestStores.config(4096)))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("not a dedupfs store");
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(4).open(other.toFile())) {
      assertThat(env.getDbiNames())
          .as("another program's environment is left as it was")
          .extracting(n -> new String(n, StandardCharsets.UTF_8))
          .containsExactly("theirs");
    }
  }

  @Test
  void refusesASecondOpenOfAStoreInUse() throws IOException {
    Path store = tmp.resolve("store");
    try (Datastore first = Datastore.open(store, TestStores.config(4096))) {
      assertThatThrownBy(() -> Datastore.open(store, TestStores.config(4096)))
          .isInstanceOf(StoreException.class)
          .hasMessageContaining("in use");
      assertThat(first.getattr(Datastore.ROOT).isDirectory())
          .as("the first open is unharmed")
          .isTrue();
    }
    Datastore.open(store, TestStores.config(4096)).close();
  }

  @Test
  void aCorruptedBlockIsAnErrorNeverWrongBytes() throws IOException {
    Path store = tmp.resolve("store");
    byte[] data = TestStores.randomBytes(new SplittableRandom(3), 40 * 4096);
    long ino;
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      ino = TestStores.create(ds, "f");
      TestStores.write(ds, ino, 0, data);
    }
    int damagedLeaf = flipAByte(store, 0);
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      int corrupt = 0;
      for (int leaf = 0; leaf < 40; leaf++) {
        try {
          byte[] got = TestStores.read(ds, ino, leaf * 4096L, 4096);
          TestStores.assertSameBytes(
              got,
              java.util.Arrays.copyOfRange(data, leaf * 4096, leaf * 4096 + 4096),
              "leaf " + leaf);
        } catch (CorruptBlockException e) {
          corrupt++;
        }
      }
      assertThat(corrupt).as("exactly the damaged leaf fails").isEqualTo(1);
      assertThat(damagedLeaf).isGreaterThanOrEqualTo(0);
      assertThat(new Fsck(ds.db, ds.blocks).check())
          .anyMatch(p -> p.contains("do not match its hash"));
    }
    flipAByte(store, 1); // the root node: every read fails
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      assertThatThrownBy(() -> TestStores.read(ds, ino, 4096 * 7, 100))
          .isInstanceOf(CorruptBlockException.class);
    }
  }

  @Test
  void aFullMapGrowsWithoutAReopen() throws IOException {
    Path store = tmp.resolve("store");
    byte[] data = TestStores.randomBytes(new SplittableRandom(4), 24 << 20);
    try (Datastore ds = TestStores.open(store, TestStores.config(4096), 1 << 20)) {
      long ino = TestStores.create(ds, "f");
      for (int off = 0; off < data.length; off += 1 << 20) {
        ds.write(ino, off, ByteBuffer.wrap(data, off, 1 << 20));
        ds.flush(ino);
      }
      assertThat(ds.db.mapSize()).isGreaterThanOrEqualTo(24L << 20);
      TestStores.assertSameBytes(TestStores.read(ds, ino, 0, data.length), data, "the file");
      assertConsistent(ds);
    }
  }

  @Test
  void aFullDiskIsStoreFullAndTheStoreRecoversWhenThereIsRoomAgain() throws Exception {
    assumeTrue("root".equals(System.getProperty("user.name")), "mounting a small tmpfs needs root");
    Path mnt = Files.createDirectory(tmp.resolve("small"));
    assumeTrue(
        run("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt.toString()),
        "mount -t tmpfs failed");
    try {
      Path filler = mnt.resolve("filler");
      Files.write(filler, new byte[8 << 20]);
      Path store = mnt.resolve("store");
      SplittableRandom r = new SplittableRandom(5);
      List<byte[]> flushed = new ArrayList<>();
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        long h = TestStores.create(ds, "h");
        byte[] hData = TestStores.randomBytes(r, 4 << 20);
        TestStores.write(ds, h, 0, hData);
        ds.flush(h);
        long g = TestStores.create(ds, "g");
        long ino = TestStores.create(ds, "f");
        byte[] chunk = null;
        StoreFullException full = null;
        for (int i = 0; i < 64 && full == null; i++) {
          chunk = TestStores.randomBytes(r, 1 << 20);
          TestStores.write(ds, ino, (long) i << 20, chunk);
          try {
            ds.flush(ino);
            flushed.add(chunk);
          } catch (StoreFullException e) {
            full = e;
          }
        }
        assertThat(full).as("a 48 MiB disk fills up").isNotNull();
        assertThat(full).hasMessageContaining("no space");
        for (int i = 0; i < flushed.size(); i++) {
          TestStores.assertSameBytes(
              TestStores.read(ds, ino, (long) i << 20, 1 << 20),
              flushed.get(i),
              "flushed MiB " + i);
        }

        // a copy of bytes (the offsets differ by less than a leaf) that cannot be stored is undone
        // whole
        assertThatThrownBy(() -> ds.copyRange(h, 1, g, 0, hData.length))
            .isInstanceOf(StoreFullException.class);
        assertThat(ds.getattr(g).size()).isZero();

        Files.delete(filler);
        ds.flush(ino); // the write that did not fit is still buffered
        flushed.add(chunk);
        assertThat(ds.copyRange(h, 1, g, 0, hData.length)).isEqualTo(hData.length - 1);
        TestStores.assertSameBytes(
            TestStores.read(ds, g, 0, hData.length),
            java.util.Arrays.copyOfRange(hData, 1, hData.length),
            "the copy made once there was room");
        assertConsistent(ds);
        ds.unlink(Datastore.ROOT, "f");
        ds.forget(ino);
        ds.setattr(g, SetAttributes.size(0));
        ds.reclaim();
        byte[] more = TestStores.randomBytes(r, 16 << 20);
        TestStores.write(ds, g, 0, more);
        ds.flush(g);
        TestStores.assertSameBytes(
            TestStores.read(ds, g, 0, more.length), more, "written after space came back");
        assertConsistent(ds);
      }
      try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
        assertConsistent(ds);
      }
    } finally {
      run("umount", mnt.toString());
    }
  }

  private static boolean run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    p.getInputStream().readAllBytes();
    return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
  }

  /** Writes a meta record with raw LMDB, as another program or version might have. */
  /**
   * A store as the code of format version 1 left it: the same tables but {@code compressed} and
   * {@code folded}, no {@code compression} or {@code logId}, no intent log. It opens read-only as
   * it is, and for writing becomes the current version, with everything it held.
   */
  @Test
  void opensAVersion1StoreAndRaisesItToTheCurrentVersion() throws IOException {
    Path store = tmp.resolve("v1");
    byte[] data = TestStores.randomBytes(new java.util.SplittableRandom(5), 100_000);
    try (Datastore ds =
        Datastore.open(store, TestStores.config(4096).withCompression(Compression.NONE))) {
      TestStores.write(ds, TestStores.create(ds, "f"), 0, data);
    }
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(store.toFile())) {
      Dbi<ByteBuffer> meta = env.openDbi("meta");
      Dbi<ByteBuffer> folded = env.openDbi("folded");
      Dbi<ByteBuffer> compressed = env.openDbi("compressed");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        meta.put(
            txn,
            direct("formatVersion".getBytes(StandardCharsets.US_ASCII)),
            direct(new byte[] {'1'}));
        meta.delete(txn, direct(IntentLog.META_ID.getBytes(StandardCharsets.US_ASCII)));
        meta.delete(txn, direct(Lmdb.COMPRESSION.getBytes(StandardCharsets.US_ASCII)));
        folded.drop(txn, true);
        compressed.drop(txn, true);
        txn.commit();
      }
    }
    java.nio.file.Files.delete(store.resolve(IntentLog.FILE));
    try (Datastore ro = Datastore.open(store, TestStores.config(4096).withReadOnly(true))) {
      assertThat(TestStores.read(ro, ro.resolve("f"), 0, data.length)).isEqualTo(data);
    }
    assertThat(store.resolve(IntentLog.FILE)).as("a read-only open changes nothing").doesNotExist();
    try (Datastore ds = Datastore.open(store, TestStores.config(4096))) {
      long ino = ds.resolve("f");
      assertThat(TestStores.read(ds, ino, 0, data.length)).isEqualTo(data);
      TestStores.write(ds, ino, 200_000, data);
      ds.fsync(ino);
      assertConsistent(ds);
    }
    assertThat(store.resolve(IntentLog.FILE)).exists();
    try (Datastore ro = Datastore.open(store, TestStores.config(4096).withReadOnly(true))) {
      assertThat(TestStores.read(ro, ro.resolve("f"), 200_000, data.length)).isEqualTo(data);
      assertThat(ro.db.storedVersion).isEqualTo(Lmdb.FORMAT_VERSION);
    }
  }

  private static void putMeta(Path store, String key, String value) {
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(store.toFile())) {
      Dbi<ByteBuffer> meta = env.openDbi("meta");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        meta.put(
            txn,
            direct(key.getBytes(StandardCharsets.US_ASCII)),
            direct(value.getBytes(StandardCharsets.UTF_8)));
        txn.commit();
      }
    }
  }

  /**
   * Flips one byte of the stored value of the first block at {@code level}; returns how many blocks
   * it passed.
   */
  private static int flipAByte(Path store, int level) {
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(store.toFile())) {
      Dbi<ByteBuffer> blocks = env.openDbi("blocks");
      Dbi<ByteBuffer> refs = env.openDbi("refs");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        int passed = 0;
        byte[] key = null;
        byte[] value = null;
        try (Cursor<ByteBuffer> c = blocks.openCursor(txn)) {
          for (boolean ok = c.first(); ok && key == null; ok = c.next()) {
            byte[] k = Lmdb.bytes(c.key());
            ByteBuffer ref = refs.get(txn, direct(java.util.Arrays.copyOf(k, Hash.SIZE)));
            if (ref.get(ref.position() + Long.BYTES) == level) {
              key = k;
              value = Lmdb.bytes(c.val());
            } else {
              passed++;
            }
          }
        }
        value[value.length / 2] ^= 0x40;
        blocks.put(txn, direct(key), direct(value));
        txn.commit();
        return passed;
      }
    }
  }

  private static ByteBuffer direct(byte[] b) {
    return ByteBuffer.allocateDirect(b.length).put(b).flip();
  }
}
