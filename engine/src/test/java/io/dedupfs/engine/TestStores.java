package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;

/** Small helpers shared by the engine's tests. */
final class TestStores {
  private TestStores() {}

  /** Set {@code -Ddedupfs.test.long=true} for soak-length runs. */
  static boolean longRuns() {
    return Boolean.getBoolean("dedupfs.test.long");
  }

  /**
   * A config whose timer never fires during a test, so that a seed replays exactly, with a small
   * intent log (quick to make, and it fills, so that fsyncs also meet a full log).
   */
  static DatastoreConfig config(int leafSize) {
    return DatastoreConfig.defaults()
        .withLeafSize(leafSize)
        .withFlushInterval(Duration.ofHours(1))
        .withLogBytes(4L << 20);
  }

  /**
   * Opens a store as {@link Datastore#open} does, but with the LMDB map starting at {@code mapSize}
   * bytes (small, so that a test sees it grow).
   */
  static Datastore open(Path dir, DatastoreConfig config, long mapSize) throws IOException {
    StoreDirectory home = StoreDirectory.lock(dir, config.readOnly());
    try {
      return new Datastore(home, config, home.openLmdb(mapSize));
    } catch (IOException | RuntimeException e) {
      home.close();
      throw e;
    }
  }

  /** Flushes, applies every queued decrement, and asserts that Fsck finds nothing wrong. */
  static void assertConsistent(Datastore ds) throws IOException {
    ds.sync();
    assertThat(ds.writeBack.bufferedBytes()).as("dirty bytes after a sync").isZero();
    ds.reclaim();
    Fsck fsck = new Fsck(ds.db, ds.blocks);
    assertThat(fsck.check()).as("fsck").isEmpty();
    assertThat(fsck.queued()).as("decrements queued after a reclaim").isZero();
  }

  /** Asserts that the store holds raw blocks and compressed ones: a test of both did test both. */
  static void assertMixed(Datastore ds) throws IOException {
    long raw = ds.db.read(txn -> ds.db.blocks.stat(txn).entries);
    long compressed = ds.db.read(txn -> ds.db.compressed.stat(txn).entries);
    assertThat(raw).as("raw blocks").isPositive();
    assertThat(compressed).as("compressed blocks").isPositive();
  }

  static long create(Datastore ds, String name) throws IOException {
    return ds.mknod(Datastore.ROOT, name, 0644, 0, 0, 0).ino();
  }

  static void write(Datastore ds, long ino, long off, byte[] data) throws IOException {
    assertThat(ds.write(ino, off, ByteBuffer.wrap(data))).isEqualTo(data.length);
  }

  /** Reads up to {@code len} bytes, fewer only at the end of the file. */
  static byte[] read(Datastore ds, long ino, long off, int len) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(len);
    while (buf.hasRemaining()) {
      if (ds.read(ino, off + buf.position(), buf) == 0) {
        break;
      }
    }
    byte[] out = new byte[buf.position()];
    buf.flip().get(out);
    return out;
  }

  /**
   * Like assertThat(got).isEqualTo(want), but says where the first difference is instead of
   * printing both.
   */
  static void assertSameBytes(byte[] got, byte[] want, String what) {
    int at = java.util.Arrays.mismatch(got, want);
    if (at >= 0) {
      throw new AssertionError(
          what
              + ": "
              + got.length
              + " bytes, expected "
              + want.length
              + "; first difference at byte "
              + at);
    }
  }

  /** SEEK_DATA, with -1 for ENXIO. */
  static long seekData(Datastore ds, long ino, long off) throws IOException {
    try {
      return ds.seekData(ino, off);
    } catch (FsException e) {
      assertThat(e.kind()).isEqualTo(FsException.Kind.NO_SUCH_OFFSET);
      return -1;
    }
  }

  /** SEEK_HOLE, with -1 for ENXIO. */
  static long seekHole(Datastore ds, long ino, long off) throws IOException {
    try {
      return ds.seekHole(ino, off);
    } catch (FsException e) {
      assertThat(e.kind()).isEqualTo(FsException.Kind.NO_SUCH_OFFSET);
      return -1;
    }
  }

  static byte[] randomBytes(SplittableRandom r, int n) {
    byte[] b = new byte[n];
    for (int i = 0; i < n; i += 8) {
      long v = r.nextLong();
      for (int j = 0; j < 8 && i + j < n; j++) {
        b[i + j] = (byte) (v >>> (8 * j));
      }
    }
    return b;
  }

  /**
   * {@code n} bytes that compress about 2x: 16-byte pieces, each random or (two times in three) a
   * copy of one of the 256 before it.
   */
  static byte[] compressibleBytes(SplittableRandom r, int n) {
    byte[] out = randomBytes(r, n);
    for (int at = 16; at + 16 <= n; at += 16) {
      if (r.nextInt(3) > 0) {
        System.arraycopy(out, at - 16 * (1 + r.nextInt(Math.min(at / 16, 256))), out, at, 16);
      }
    }
    return out;
  }

  /** Whether this test may mount a tmpfs (it runs as root). */
  static boolean canMount() {
    return "root".equals(System.getProperty("user.name"));
  }

  /**
   * Mounts a tmpfs of {@code megabytes} on {@code dir}; false when that failed. Unmount with {@link
   * #unmount}.
   */
  static boolean mountTmpfs(Path dir, int megabytes) throws Exception {
    return run("mount", "-t", "tmpfs", "-o", "size=" + megabytes + "m", "tmpfs", dir.toString());
  }

  /** Gives the tmpfs at {@code dir} a new size, its files kept. */
  static boolean resizeTmpfs(Path dir, int megabytes) throws Exception {
    return run("mount", "-o", "remount,size=" + megabytes + "m", dir.toString());
  }

  static void unmount(Path dir) throws Exception {
    run("umount", dir.toString());
  }

  private static boolean run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    p.getInputStream().readAllBytes();
    return p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) && p.exitValue() == 0;
  }

  /** Entries and bytes of the block tables, read straight from LMDB. */
  /** Blocks raw and compressed, count rows, bytes before compression, queued decrements. */
  record Counts(long blocks, long refs, long storedBytes, long pending) {}

  static Counts counts(Datastore ds) throws IOException {
    Lmdb db = ds.db;
    return db.read(
        txn -> {
          long bytes = 0;
          try (TableCursor c = db.blocks.openCursor(txn)) {
            for (boolean ok = c.first(); ok; ok = c.next()) {
              bytes += c.key().remaining() - Hash.SIZE + c.val().remaining();
            }
          }
          // compressed blocks: their length before compression, after the hash and codec in the key
          try (TableCursor c = db.compressed.openCursor(txn)) {
            for (boolean ok = c.first(); ok; ok = c.next()) {
              bytes += c.key().getInt(c.key().position() + Hash.SIZE + 1);
            }
          }
          return new Counts(
              db.blocks.stat(txn).entries + db.compressed.stat(txn).entries,
              db.refs.stat(txn).entries,
              bytes,
              db.pending.stat(txn).entries);
        });
  }

  /** The committed root of a file, from its inode record. */
  static Hash root(Datastore ds, long ino) throws IOException {
    Lmdb db = ds.db;
    return db.read(txn -> new Namespace(db).inode(txn, ino).root());
  }
}
