package io.dedupfs.engine;

import static io.dedupfs.engine.IntegrityTest.direct;
import static io.dedupfs.engine.IntegrityTest.hashBytes;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import org.lmdbjava.Cursor;
import org.lmdbjava.Dbi;
import org.lmdbjava.Env;
import org.lmdbjava.GetOp;
import org.lmdbjava.Txn;

/**
 * Compressed blocks (FORMAT.md, Compression): which leaves are kept compressed and what that saves;
 * damaged compressed blocks give {@link CorruptBlockException}, never wrong bytes, and scrub names
 * them; stores of format version 1 open, read right and take compressed blocks.
 */
class CompressionTest {
  private static final int LEAF = 16384;

  @TempDir Path tmp;

  private static DatastoreConfig config(Compression c) {
    return TestStores.config(LEAF).withCompression(c);
  }

  @Test
  void compressibleLeavesAreKeptCompressedAndSaveTheirPages() throws IOException {
    long[] live = new long[2];
    int i = 0;
    for (Compression c : List.of(Compression.NONE, Compression.LZ4)) {
      Path dir = tmp.resolve(c.algorithm());
      SplittableRandom r = new SplittableRandom(7);
      byte[] text = TestStores.compressibleBytes(r, 64 * LEAF);
      byte[] noise = TestStores.randomBytes(r, 64 * LEAF);
      byte[] small = new byte[LEAF];
      Arrays.fill(small, 0, 3000, (byte) 'x'); // 3000 bytes and zeros: one page however kept
      try (Datastore ds = Datastore.open(dir, config(c))) {
        TestStores.write(ds, TestStores.create(ds, "text"), 0, text);
        TestStores.write(ds, TestStores.create(ds, "noise"), 0, noise);
        TestStores.write(ds, TestStores.create(ds, "small"), 0, small);
        ds.sync();
        long compressed = ds.db.read(txn -> ds.db.compressed.stat(txn).entries);
        assertThat(compressed)
            .as("%s: the 64 compressible full leaves, and nothing else", c)
            .isEqualTo(c.isNone() ? 0 : 64);
        SpaceUsage text1 = ds.usage("text");
        assertThat(ds.usage("noise").compressRatio()).as("random data is kept raw").isEqualTo(1.0);
        assertThat(ds.usage("small").compressRatio())
            .as("a one-page leaf is kept raw")
            .isEqualTo(1);
        if (!c.isNone()) {
          assertThat(text1.compressRatio()).isBetween(1.5, 3.0);
          assertThat(text1.storedBytes())
              .isEqualTo(UsageTest.referencedOf(text, LEAF) + Geometry.BITMAP_BYTES + 64 * 32);
        }
        assertConsistent(ds);
        live[i++] = ds.stats().liveBytes();
      }
      try (Datastore ds = Datastore.open(dir, config(Compression.NONE))) {
        assertThat(ds.compression()).as("the store keeps its own compression").isEqualTo(c);
        assertThat(TestStores.read(ds, ds.resolve("text"), 0, text.length)).isEqualTo(text);
        assertThat(TestStores.read(ds, ds.resolve("noise"), 0, noise.length)).isEqualTo(noise);
        assertThat(TestStores.read(ds, ds.resolve("small"), 0, LEAF)).isEqualTo(small);
        for (int at = 0; at < text.length; at += 5000) { // small reads: the cached path
          int n = Math.min(3000, text.length - at);
          assertThat(TestStores.read(ds, ds.resolve("text"), at, n))
              .isEqualTo(Arrays.copyOfRange(text, at, at + n));
        }
      }
    }
    assertThat(live[0] - live[1])
        .as("each compressed leaf saves at least a page of the store")
        .isGreaterThanOrEqualTo(64L * 4096);
  }

  /** A way to damage a compressed block's key and value, with raw LMDB. */
  private record Harm(String name, UnaryOperator<byte[]> key, UnaryOperator<byte[]> value) {}

  private static final List<Harm> HARMS =
      List.of(
          new Harm("a byte of its value flipped", k -> k, v -> flip(v, v.length / 3)),
          new Harm("its last byte flipped", k -> k, v -> flip(v, v.length - 1)),
          new Harm("its value cut in half", k -> k, v -> Arrays.copyOf(v, v.length / 2)),
          new Harm("its value all zeros", k -> k, v -> new byte[v.length]),
          new Harm(
              "its value random",
              k -> k,
              v -> TestStores.randomBytes(new SplittableRandom(v.length), v.length)),
          new Harm("an unknown codec", k -> with(k, 32, (byte) 9), v -> v),
          new Harm("the other codec", k -> with(k, 32, (byte) (k[32] == 1 ? 2 : 1)), v -> v),
          new Harm("a length 100 bytes short", k -> length(k, -100), v -> v),
          new Harm("a length 100 bytes long", k -> length(k, 100), v -> v),
          new Harm("a length beyond a leaf", k -> length(k, 1 << 20), v -> v),
          new Harm("a key cut short", k -> Arrays.copyOf(k, 34), v -> v));

  @TestFactory
  Stream<DynamicTest> aDamagedCompressedBlockIsEioNeverWrongBytes() {
    List<DynamicTest> tests = new ArrayList<>();
    for (Compression c : List.of(Compression.LZ4, Compression.zstd(3))) {
      for (Harm h : HARMS) {
        String store = "damaged-" + tests.size();
        tests.add(
            DynamicTest.dynamicTest(
                c + ", " + h.name(), () -> damagedBlock(c, h, tmp.resolve(store))));
      }
    }
    return tests.stream();
  }

  private void damagedBlock(Compression c, Harm harm, Path dir) throws IOException {
    SplittableRandom r = new SplittableRandom(3);
    byte[] data = TestStores.compressibleBytes(r, 8 * LEAF);
    long ino;
    Hash victim;
    try (Datastore ds = Datastore.open(dir, config(c))) {
      ino = TestStores.create(ds, "f");
      TestStores.write(ds, ino, 0, data);
      ds.sync();
      victim = IntegrityTest.block(ds, ino, 0, 3);
    }
    damage(dir, victim, harm);
    try (Datastore ds = Datastore.open(dir, config(c))) {
      assertThatThrownBy(() -> TestStores.read(ds, ino, 0, data.length))
          .as("a large read")
          .isInstanceOf(CorruptBlockException.class);
      assertThatThrownBy(() -> TestStores.read(ds, ino, 3 * LEAF + 100, 4096))
          .as("a small read")
          .isInstanceOf(CorruptBlockException.class);
      assertThat(TestStores.read(ds, ino, 2 * LEAF, LEAF))
          .as("its neighbours read right")
          .isEqualTo(Arrays.copyOfRange(data, 2 * LEAF, 3 * LEAF));
      assertThat(TestStores.read(ds, ino, 4 * LEAF, LEAF))
          .isEqualTo(Arrays.copyOfRange(data, 4 * LEAF, 5 * LEAF));
      ScrubReport report = ds.scrub(null);
      assertThat(report.damaged())
          .singleElement()
          .satisfies(
              d -> {
                assertThat(d.path()).isEqualTo("f");
                assertThat(d.offset()).isEqualTo(3L * LEAF);
                assertThat(d.length()).isEqualTo(LEAF);
              });
      assertThat(ds.fsck(null)).isNotEmpty();
      assertThatThrownBy(
              () -> {
                ds.write(ino, 3 * LEAF + 10, ByteBuffer.wrap(new byte[] {1}));
                ds.flush(ino);
              })
          .as("a write into part of it needs the rest: refused, not made up")
          .isInstanceOf(CorruptBlockException.class);
    }
  }

  /** Rewrites the compressed block {@code h} (the store closed) as {@code harm} says. */
  private static void damage(Path dir, Hash h, Harm harm) {
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(dir.toFile())) {
      Dbi<ByteBuffer> compressed = env.openDbi("compressed");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        byte[] key;
        byte[] value;
        try (Cursor<ByteBuffer> c = compressed.openCursor(txn)) {
          assertThat(c.get(direct(hashBytes(h)), GetOp.MDB_SET_RANGE)).isTrue();
          key = Lmdb.bytes(c.key());
          value = Lmdb.bytes(c.val());
        }
        assertThat(Arrays.copyOf(key, Hash.SIZE)).isEqualTo(hashBytes(h));
        compressed.delete(txn, direct(key));
        compressed.put(txn, direct(harm.key().apply(key)), direct(harm.value().apply(value)));
        txn.commit();
      }
    }
  }

  private static byte[] flip(byte[] b, int at) {
    byte[] out = b.clone();
    out[at] ^= 0x10;
    return out;
  }

  private static byte[] with(byte[] b, int at, byte v) {
    byte[] out = b.clone();
    out[at] = v;
    return out;
  }

  private static byte[] length(byte[] key, int delta) {
    byte[] out = key.clone();
    ByteBuffer.wrap(out).putInt(Hash.SIZE + 1, ByteBuffer.wrap(key).getInt(Hash.SIZE + 1) + delta);
    return out;
  }

  // ---- format version 1

  /**
   * A store written in the version-1 layout: written with compression off (raw blocks are the
   * version-1 layout), then stripped with raw LMDB of what version 2 added: the {@code compressed}
   * table and the {@code compression} record, and marked version 1.
   */
  @Test
  void aVersionOneStoreOpensReadsRightAndTakesCompressedBlocks() throws IOException {
    Path dir = tmp.resolve("v1");
    SplittableRandom r = new SplittableRandom(11);
    byte[] old = TestStores.compressibleBytes(r, 12 * LEAF + 1234);
    try (Datastore ds = Datastore.open(dir, config(Compression.NONE))) {
      TestStores.write(ds, TestStores.create(ds, "old"), 0, old);
      ds.createSnapshot("before", "old");
    }
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(dir.toFile())) {
      Dbi<ByteBuffer> meta = env.openDbi("meta");
      Dbi<ByteBuffer> compressed = env.openDbi("compressed");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        compressed.drop(txn, true);
        meta.delete(txn, direct(ascii("compression")));
        meta.put(txn, direct(ascii("formatVersion")), direct(ascii("1")));
        txn.commit();
      }
    }
    assertThat(tables(dir)).doesNotContain("compressed");
    assertThat(formatVersion(dir)).isEqualTo("1");
    opensReadsRightAndTakesCompressedBlocks(dir, "old", old);
  }

  /**
   * A store written by the code before compression (commit bf6170e, format version 1): {@code
   * src/test/resources/format-v1/data.mdb.gz}, made by {@code format-v1/README.md}'s steps, holding
   * {@code old}: 12 leaves and 1234 bytes of {@link TestStores#compressibleBytes} from seed 11, and
   * a snapshot {@code before} of it.
   */
  @Test
  void aStoreWrittenByTheCodeBeforeCompressionOpensReadsRightAndTakesCompressedBlocks()
      throws IOException {
    Path dir = tmp.resolve("fixture");
    Files.createDirectory(dir);
    try (InputStream in =
        new GZIPInputStream(getClass().getResourceAsStream("/format-v1/data.mdb.gz"))) {
      Files.copy(in, dir.resolve("data.mdb"));
    }
    Files.createFile(dir.resolve("dedupfs.lock"));
    assertThat(formatVersion(dir)).isEqualTo("1");
    byte[] old = TestStores.compressibleBytes(new SplittableRandom(11), 12 * LEAF + 1234);
    opensReadsRightAndTakesCompressedBlocks(dir, "old", old);
  }

  private void opensReadsRightAndTakesCompressedBlocks(Path dir, String name, byte[] old)
      throws IOException {
    try (Datastore ds = Datastore.open(dir, config(Compression.LZ4).withReadOnly(true))) {
      assertThat(TestStores.read(ds, ds.resolve(name), 0, old.length)).isEqualTo(old);
      assertThat(ds.compression()).isEqualTo(Compression.NONE);
      assertThat(ds.usage("").compressRatio()).isEqualTo(1.0);
    }
    assertThat(formatVersion(dir)).as("a read-only open changes nothing").isEqualTo("1");
    assertThat(tables(dir)).doesNotContain("compressed");
    byte[] fresh = TestStores.compressibleBytes(new SplittableRandom(12), 20 * LEAF);
    try (Datastore ds = Datastore.open(dir, config(Compression.NONE))) {
      assertThat(ds.compression())
          .as("an upgraded store takes the default compression")
          .isEqualTo(Compression.DEFAULT);
      assertThat(TestStores.read(ds, ds.resolve(name), 0, old.length)).isEqualTo(old);
      assertThat(TestStores.read(ds, ds.resolve(".snapshots/before/" + name), 0, old.length))
          .isEqualTo(old);
      long f = TestStores.create(ds, "fresh");
      TestStores.write(ds, f, 0, fresh);
      TestStores.write(ds, ds.resolve(name), 5 * LEAF, fresh); // old leaves replaced by new ones
      ds.sync();
      long compressed = ds.db.read(txn -> ds.db.compressed.stat(txn).entries);
      assertThat(compressed).as("the new leaves are compressed").isGreaterThanOrEqualTo(20);
      assertConsistent(ds);
      Recount recount = Recount.of(ds);
      assertThat(ds.usage("")).isEqualTo(recount.wholeStore());
    }
    assertThat(formatVersion(dir)).isEqualTo(Integer.toString(Lmdb.FORMAT_VERSION));
    byte[] changed = Arrays.copyOf(old, Math.max(old.length, 5 * LEAF + fresh.length));
    System.arraycopy(fresh, 0, changed, 5 * LEAF, fresh.length);
    try (Datastore ds = Datastore.open(dir, config(Compression.NONE))) {
      assertThat(TestStores.read(ds, ds.resolve(name), 0, changed.length)).isEqualTo(changed);
      assertThat(TestStores.read(ds, ds.resolve("fresh"), 0, fresh.length)).isEqualTo(fresh);
      assertThat(TestStores.read(ds, ds.resolve(".snapshots/before/" + name), 0, old.length))
          .isEqualTo(old);
      assertThat(ds.scrub(null).damaged()).isEmpty();
      assertThat(ds.usage(name).compressRatio()).isGreaterThan(1.2);
    }
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }

  private static List<String> tables(Path dir) {
    try (Env<ByteBuffer> env =
        Env.create().setMaxDbs(16).open(dir.toFile(), org.lmdbjava.EnvFlags.MDB_RDONLY_ENV)) {
      return env.getDbiNames().stream().map(n -> new String(n, StandardCharsets.UTF_8)).toList();
    }
  }

  private static String formatVersion(Path dir) {
    try (Env<ByteBuffer> env =
        Env.create().setMaxDbs(16).open(dir.toFile(), org.lmdbjava.EnvFlags.MDB_RDONLY_ENV)) {
      Dbi<ByteBuffer> meta = env.openDbi("meta");
      try (Txn<ByteBuffer> txn = env.txnRead()) {
        return new String(
            Lmdb.bytes(meta.get(txn, direct(ascii("formatVersion")))), StandardCharsets.US_ASCII);
      }
    }
  }
}
