package io.dedupfs.rados;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.CorruptBlockException;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.engine.Hash;
import io.dedupfs.engine.PoolStoreAccess;
import io.dedupfs.engine.PoolStores;
import io.dedupfs.engine.PoolTimeoutException;
import io.dedupfs.engine.Progress;
import io.dedupfs.engine.ReceiveReport;
import io.dedupfs.engine.SendReport;
import io.dedupfs.engine.StoreException;
import io.dedupfs.engine.StreamException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Stores whose blocks are in a real RADOS pool ({@link TestCeph}'s cluster): files read back as
 * written, deleted blocks leave the pool, two stores on one pool hold shared data once, and a
 * release replayed after a crash drops no other store's reference.
 */
class PoolStoreTest {
  private static final int LEAF = 16 * 1024;
  private static final int S_IFREG = 0100000;

  /**
   * Mixed into every seed: each run writes data new to the pool, whatever earlier runs left there.
   */
  private static final long RUN = System.nanoTime();

  private static TestCeph ceph;
  private static RadosPool probe;

  @TempDir Path tmp;

  @BeforeAll
  static void connect() throws IOException {
    ceph = TestCeph.get();
    probe = RadosPool.connect(ceph.conf(), "admin", "blocks", Duration.ofSeconds(30));
  }

  @AfterAll
  static void close() {
    if (probe != null) {
      probe.close();
    }
  }

  private BlockPool.Location pool() {
    return new BlockPool.Location("rados:blocks", ceph.conf().toString(), "admin");
  }

  private static DatastoreConfig config(BlockPool.Opener opener) {
    return DatastoreConfig.defaults()
        .withLeafSize(LEAF)
        .withFlushInterval(Duration.ofHours(1))
        .withLogBytes(4L << 20)
        .withPools(opener);
  }

  private Datastore create(Path dir) throws IOException {
    return Datastore.open(dir, config(RadosPool::open).withBlocksIn(pool()));
  }

  /**
   * Opens a store with no cache on the local disk (the open empties it): nothing is cached, every
   * block is read from the pool.
   */
  private static Datastore open(Path dir) throws IOException {
    return Datastore.open(dir, config(RadosPool::open).withPoolCacheBytes(0));
  }

  private static long put(Datastore ds, String name, byte[] data) throws IOException {
    long ino = ds.mknod(Datastore.ROOT, name, S_IFREG | 0644, 0, 0, 0).ino();
    write(ds, ino, 0, data);
    return ino;
  }

  /** Writes in pieces of 1 byte to 100 KiB, as a program would. */
  private static void write(Datastore ds, long ino, long offset, byte[] data) throws IOException {
    SplittableRandom random = new SplittableRandom(data.length);
    for (int at = 0; at < data.length; ) {
      int n = Math.min(data.length - at, 1 + random.nextInt(100 * 1024));
      ds.write(ino, offset + at, ByteBuffer.wrap(data, at, n));
      at += n;
    }
  }

  /** Deletes a file as the kernel does: its name, then its last reference. */
  private static void delete(Datastore ds, String name) throws IOException {
    long ino = ds.resolve("/" + name);
    ds.unlink(Datastore.ROOT, name);
    ds.forget(ino);
  }

  private static byte[] read(Datastore ds, String name) throws IOException {
    long ino = ds.resolve("/" + name);
    long size = ds.getattr(ino).size();
    ByteBuffer dst = ByteBuffer.allocate((int) size);
    while (dst.hasRemaining()) {
      int n = ds.read(ino, dst.position(), dst.slice());
      assertThat(n).as("read of %s at %d", name, dst.position()).isPositive();
      dst.position(dst.position() + n);
    }
    return dst.array();
  }

  private static void assertFiles(Datastore ds, Map<String, byte[]> model) throws IOException {
    for (Map.Entry<String, byte[]> e : model.entrySet()) {
      assertThat(read(ds, e.getKey())).as("bytes of %s", e.getKey()).isEqualTo(e.getValue());
    }
  }

  private static byte[] random(SplittableRandom random, int size) {
    byte[] b = new byte[size];
    random.nextBytes(b);
    return b;
  }

  @Test
  void filesReadBackAsWrittenAndDeletedBlocksLeaveThePool() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1401 ^ RUN);
    Map<String, byte[]> model = new LinkedHashMap<>();
    Path dir = tmp.resolve("a");
    try (Datastore ds = create(dir)) {
      for (int i = 0; i < 12; i++) {
        byte[] data = random(random, random.nextInt(600 * 1024));
        if (i % 4 == 3) { // sparse: a hole of zero leaves, never stored
          Arrays.fill(data, data.length / 4, data.length / 2, (byte) 0);
        }
        put(ds, "f" + i, data);
        model.put("f" + i, data);
      }
      byte[] same = model.get("f1"); // a copy: deduplicated within the store
      put(ds, "copy", same);
      model.put("copy", same);
      // overwrite part of a file: its old leaves and nodes are freed
      byte[] changed = model.get("f2").clone();
      byte[] patch = random(random, Math.min(changed.length, 40_000));
      System.arraycopy(patch, 0, changed, 0, patch.length);
      write(ds, ds.resolve("/f2"), 0, patch);
      model.put("f2", changed);
      ds.sync();
      ds.reclaim();
      assertFiles(ds, model);
      assertThat(ds.fsck(p -> {})).as("fsck").isEmpty();
      long counted = PoolStoreAccess.countedBlocks(ds);
      assertThat(counted).isGreaterThan(12);
      assertThat(probe.objectCount())
          .as("pool objects: one per block the store counts")
          .isEqualTo(before + counted);
      String id = PoolStoreAccess.storeId(ds);
      for (Hash h : PoolStoreAccess.counted(ds)) {
        assertThat(probe.holders(h)).as("holders of %s", h).containsExactly(id);
      }
    }
    try (Datastore ds = open(dir)) { // no cache: every block from the pool
      assertFiles(ds, model);
      var scrub = ds.scrub(p -> {});
      assertThat(scrub.damaged()).as("scrub").isEmpty();
      assertThat(scrub.blocksChecked()).isEqualTo(PoolStoreAccess.countedBlocks(ds));
      for (String name : model.keySet()) {
        delete(ds, name);
      }
      ds.reclaim();
      assertThat(PoolStoreAccess.countedBlocks(ds)).isZero();
      assertThat(PoolStoreAccess.unreleased(ds)).isZero();
      assertThat(probe.objectCount()).as("pool objects after the delete").isEqualTo(before);
      assertThat(ds.fsck(p -> {})).as("fsck").isEmpty();
    }
  }

  @Test
  void twoStoresOnOnePoolHoldSharedDataOnce() throws IOException {
    long before = probe.objectCount();
    byte[] image = random(new SplittableRandom(1402 ^ RUN), 3 * 1024 * 1024 + 123);
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    long counted;
    try (Datastore dsA = create(a);
        Datastore dsB = create(b)) {
      put(dsA, "image", image);
      dsA.sync();
      counted = PoolStoreAccess.countedBlocks(dsA);
      assertThat(probe.objectCount()).as("after A").isEqualTo(before + counted);
      put(dsB, "image", image);
      dsB.sync();
      assertThat(PoolStoreAccess.countedBlocks(dsB)).isEqualTo(counted);
      assertThat(probe.objectCount()).as("after B: stored once").isEqualTo(before + counted);
      for (Hash h : PoolStoreAccess.counted(dsA)) {
        assertThat(probe.count(h)).as("references to %s", h).isEqualTo(2);
      }

      delete(dsA, "image");
      dsA.reclaim();
      assertThat(PoolStoreAccess.countedBlocks(dsA)).isZero();
      assertThat(probe.objectCount()).as("after A's delete").isEqualTo(before + counted);
    }
    try (Datastore dsB = open(b)) { // no cache
      assertThat(read(dsB, "image")).as("B's image after A's delete").isEqualTo(image);
      delete(dsB, "image");
      dsB.reclaim();
      assertThat(probe.objectCount()).as("after both deletes").isEqualTo(before);
    }
  }

  /** Stores {@code a} and {@code b} on the pool: how many blocks each counts, and their ids. */
  private record TwoStores(Path a, Path b, long countedA, long countedB, String idA, String idB) {}

  @FunctionalInterface
  private interface StoreStep {
    void apply(Datastore ds) throws IOException;
  }

  /**
   * Creates stores a and b: {@code shared} as "shared" in both, {@code onlyA} as "onlyA" in a, then
   * {@code moreOnA} on a; synced and reclaimed.
   */
  private TwoStores twoStores(byte[] shared, byte[] onlyA, StoreStep moreOnA) throws IOException {
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    try (Datastore dsA = create(a);
        Datastore dsB = create(b)) {
      put(dsA, "shared", shared);
      put(dsA, "onlyA", onlyA);
      moreOnA.apply(dsA);
      put(dsB, "shared", shared);
      dsA.sync();
      dsB.sync();
      dsA.reclaim();
      return new TwoStores(
          a,
          b,
          PoolStoreAccess.countedBlocks(dsA),
          PoolStoreAccess.countedBlocks(dsB),
          PoolStoreAccess.storeId(dsA),
          PoolStoreAccess.storeId(dsB));
    }
  }

  @Test
  void destroyReleasesEveryBlockOfTheStoreAndKeepsTheOtherStoresCopy() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1421 ^ RUN);
    byte[] shared = random(random, 2 * 1024 * 1024);
    byte[] old = random(random, 1024 * 1024);
    TwoStores two =
        twoStores(
            shared,
            old,
            dsA -> {
              dsA.createSnapshot("s", "/onlyA");
              delete(dsA, "onlyA"); // its blocks: held by the snapshot alone
            });
    assertThat(probe.registered()).containsKeys(two.idA(), two.idB());
    assertThat(probe.registered().get(two.idA())).contains(two.a().toAbsolutePath().toString());
    assertThat(probe.objectCount()).isEqualTo(before + two.countedA());

    // interrupted after 100 releases: the store refuses to open, a second destroy finishes it
    AtomicInteger left = new AtomicInteger(100);
    assertThatThrownBy(
            () ->
                Datastore.destroy(
                    two.a(),
                    config(where -> new CrashAfterRelease(RadosPool.open(where), left)),
                    p -> {}))
        .hasMessageContaining("simulated crash");
    assertThatThrownBy(() -> open(two.a()))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("is being destroyed")
        .hasMessageContaining("dedupfs destroy " + two.a());
    List<io.dedupfs.engine.Progress> seen = new java.util.ArrayList<>();
    long released = Datastore.destroy(two.a(), config(RadosPool::open), seen::add).released();
    assertThat(released)
        .as("every row: the first try's batch was not deleted")
        .isEqualTo(two.countedA());
    assertThat(seen)
        .last()
        .isEqualTo(new io.dedupfs.engine.Progress("release", released, released));
    assertThat(two.a()).doesNotExist();
    assertThat(probe.registered()).doesNotContainKey(two.idA()).containsKey(two.idB());
    assertThat(probe.objectCount()).as("only B's blocks left").isEqualTo(before + two.countedB());
    try (Datastore dsB = open(two.b())) { // no cache
      assertThat(read(dsB, "shared")).isEqualTo(shared);
      assertThat(dsB.fsck(p -> {})).isEmpty();
    }
    assertThat(Datastore.destroy(two.b(), config(RadosPool::open), p -> {}))
        .isEqualTo(new io.dedupfs.engine.DestroyReport("rados:blocks", two.countedB()));
    assertThat(probe.objectCount()).as("both destroyed").isEqualTo(before);
    assertThat(probe.registered()).doesNotContainKey(two.idB());
    assertThatThrownBy(() -> Datastore.destroy(two.b(), config(RadosPool::open), p -> {}))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("holds no dedupfs store");
  }

  @Test
  void theReferencesOfAStoreThatIsGoneAreListedAndForgotten() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1422 ^ RUN);
    byte[] shared = random(random, 1024 * 1024);
    byte[] onlyA = random(random, 1024 * 1024);
    TwoStores two = twoStores(shared, onlyA, dsA -> {});
    com.google.common.io.MoreFiles.deleteRecursively(two.a()); // A's disk is lost
    // a holder that took references and never registered (a store gone before the list existed)
    String gone = "gone-" + Long.toHexString(RUN);
    assertThat(probe.takeExisting(gone, Hash.parse(probe.objects().get(0)))).isTrue();

    Map<String, PoolStores.Holder> holders = new LinkedHashMap<>();
    for (PoolStores.Holder h : PoolStores.list(probe, p -> {})) {
      holders.put(h.id(), h);
    }
    assertThat(holders.get(two.idA()).blocks()).isEqualTo(two.countedA());
    assertThat(holders.get(two.idA()).registration()).contains(two.a().toAbsolutePath().toString());
    assertThat(holders.get(two.idB()).blocks()).isEqualTo(two.countedB());
    assertThat(holders.get(gone)).isEqualTo(new PoolStores.Holder(gone, 1, null));

    assertThatThrownBy(() -> PoolStores.forget(probe, two.idA(), false, p -> {}))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("on the pool's list of stores");
    assertThat(PoolStores.forget(probe, two.idA(), true, p -> {})).isEqualTo(two.countedA());
    assertThat(PoolStores.forget(probe, gone, false, p -> {})).isEqualTo(1);
    assertThat(probe.registered().get(two.idA())).startsWith(PoolStores.FORGOTTEN);
    assertThat(probe.registered().get(gone)).startsWith(PoolStores.FORGOTTEN);
    assertThat(probe.objectCount()).as("only B's blocks left").isEqualTo(before + two.countedB());
    assertThat(PoolStores.list(probe, p -> {}))
        .filteredOn(h -> h.id().equals(two.idA()) || h.id().equals(gone))
        .extracting(PoolStores.Holder::blocks)
        .containsExactly(0L, 0L);
    try (Datastore dsB = open(two.b())) {
      assertThat(read(dsB, "shared")).isEqualTo(shared);
      assertThat(dsB.fsck(p -> {})).isEmpty();
      assertThat(dsB.reconcile()).isZero();
    }
    Datastore.destroy(two.b(), config(RadosPool::open), p -> {});
    assertThat(probe.objectCount()).isEqualTo(before);
  }

  /**
   * A store open for writing keeps its entry on the pool's list fresh (every second here): forget
   * refuses it even with force, once it has seen the entry change, and releases nothing. Closed,
   * the entry says so. The last beat of a killed process (written here by hand, unchanging) is
   * watched for two periods and a second, then forgotten; the store's directory then refuses to
   * open, and destroy takes its entry off the list.
   */
  @Test
  void aStoreInUseIsNeverForgottenEvenWithForce() throws IOException {
    long before = probe.objectCount();
    byte[] data = random(new SplittableRandom(1423 ^ RUN), 1024 * 1024);
    Path dir = tmp.resolve("live");
    DatastoreConfig beating = config(RadosPool::open).withPoolHeartbeat(Duration.ofSeconds(1));
    String id;
    long counted;
    try (Datastore ds = Datastore.open(dir, beating.withBlocksIn(pool()))) {
      put(ds, "f", data);
      ds.sync();
      id = PoolStoreAccess.storeId(ds);
      counted = PoolStoreAccess.countedBlocks(ds);
      assertThat(probe.registered().get(id))
          .startsWith("host ")
          .contains(dir.toAbsolutePath() + ", opened ", ", alive ")
          .endsWith(" every 1 s");
      List<Progress> seen = new ArrayList<>();
      assertThatThrownBy(() -> PoolStores.forget(probe, id, true, seen::add))
          .isInstanceOf(StoreException.class)
          .hasMessageContaining("is in use");
      assertThat(seen).first().isEqualTo(new Progress(PoolStores.WATCH, 0, 3));
      assertThat(probe.objectCount()).as("nothing released").isEqualTo(before + counted);
      assertThat(probe.registered()).containsKey(id);
    }
    assertThat(probe.registered().get(id)).contains(", closed ").doesNotContain("beat");

    probe.register(
        id,
        probe.registered().get(id),
        "host h, "
            + dir.toAbsolutePath()
            + ", opened 2026-01-01T00:00:00Z, alive 2026-01-01T00:00:10Z, beat 1 every 1 s");
    List<Progress> watched = new ArrayList<>();
    assertThat(PoolStores.forget(probe, id, true, watched::add)).isEqualTo(counted);
    assertThat(watched).contains(new Progress(PoolStores.WATCH, 3, 3));
    assertThat(probe.objectCount()).isEqualTo(before);
    // the directory turns up again: it refuses to open, and destroy takes its entry off the list
    assertThat(probe.registered().get(id)).startsWith(PoolStores.FORGOTTEN);
    assertThatThrownBy(() -> Datastore.open(dir, beating))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("was forgotten by its pool");
    Datastore.destroy(dir, beating, p -> {});
    assertThat(probe.registered()).doesNotContainKey(id);
  }

  /**
   * An open and a forget of one closed store that meet: each reads the store's entry, then writes
   * its own only over the one it read. The forget that writes first wins and the open is refused;
   * the open that writes first wins and the forget is refused, releasing nothing. Without the
   * comparison, both go on and the open store loses its blocks.
   */
  @Test
  void anOpenAndAForgetThatMeetNeverBothGoOn() throws IOException {
    long before = probe.objectCount();
    byte[] data = random(new SplittableRandom(1427 ^ RUN), 1024 * 1024);
    Path dir = tmp.resolve("met");
    Written first = writtenAndClosed(dir, data);
    assertThat(probe.registered().get(first.id())).contains(", closed ");

    // 1. the forget lands between the open's read of the list and its first beat: the open fails
    AtomicInteger reads = new AtomicInteger();
    DatastoreConfig forgetDuringOpen =
        config(
            c ->
                new ForwardingPool(RadosPool.open(c)) {
                  @Override
                  public String registered(String holder) throws IOException {
                    String entry = pool.registered(holder);
                    if (reads.getAndIncrement() == 0) { // the open's check that it is not forgotten
                      assertThat(PoolStores.forget(probe, first.id(), true, p -> {}))
                          .isEqualTo(first.counted());
                    }
                    return entry;
                  }
                });
    assertThatThrownBy(() -> Datastore.open(dir, forgetDuringOpen))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("was forgotten by its pool");
    assertThat(probe.registered().get(first.id())).startsWith(PoolStores.FORGOTTEN);
    assertThat(probe.objectCount()).isEqualTo(before);
    Datastore.destroy(dir, config(RadosPool::open), p -> {});

    // 2. the open lands between the forget's read of the list and its own entry: nothing released
    Path dir2 = tmp.resolve("met2");
    Written second = writtenAndClosed(dir2, data);
    Datastore[] opened = new Datastore[1];
    BlockPool openDuringForget =
        new ForwardingPool(probe) {
          @Override
          public String registered(String holder) throws IOException {
            String entry = pool.registered(holder);
            if (opened[0] == null) {
              opened[0] = Datastore.open(dir2, config(RadosPool::open));
            }
            return entry;
          }
        };
    try {
      assertThatThrownBy(() -> PoolStores.forget(openDuringForget, second.id(), true, p -> {}))
          .isInstanceOf(StoreException.class)
          .hasMessageContaining("nothing was released");
      assertThat(probe.objectCount()).isEqualTo(before + second.counted());
      assertThat(probe.registered().get(second.id())).contains(", beat 0 ");
      assertThat(read(opened[0], "f")).isEqualTo(data);
    } finally {
      opened[0].close();
    }
    Datastore.destroy(dir2, config(RadosPool::open), p -> {});
    assertThat(probe.objectCount()).isEqualTo(before);
  }

  /** A store's id on the pool and the blocks it counts. */
  private record Written(String id, long counted) {}

  /** Creates a pool store in {@code dir} holding file "f" of {@code data}, and closes it. */
  private Written writtenAndClosed(Path dir, byte[] data) throws IOException {
    try (Datastore ds = create(dir)) {
      put(ds, "f", data);
      ds.sync();
      return new Written(PoolStoreAccess.storeId(ds), PoolStoreAccess.countedBlocks(ds));
    }
  }

  /**
   * A pool that "crashes" (throws) at its n-th release, once the pool has applied it, and refuses
   * every release after it.
   */
  private static final class CrashAfterRelease extends ForwardingPool {
    private final AtomicInteger left;

    CrashAfterRelease(RadosPool pool, AtomicInteger left) {
      super(pool);
      this.left = left;
    }

    @Override // one at a time (the store releases many at once): exactly n reach the pool
    public synchronized boolean release(String holder, Hash hash) throws IOException {
      if (left.get() <= 0) {
        throw new IOException("simulated crash: this process is gone");
      }
      boolean removed = pool.release(holder, hash);
      if (left.decrementAndGet() == 0) {
        throw new IOException("simulated crash after the pool applied a release");
      }
      return removed;
    }
  }

  /** A RADOS pool as is, for a test to change one of its calls. */
  private static class ForwardingPool implements BlockPool {
    final RadosPool pool;

    ForwardingPool(RadosPool pool) {
      this.pool = pool;
    }

    @Override
    public boolean take(String holder, Hash hash, byte[] content, int length) throws IOException {
      return pool.take(holder, hash, content, length);
    }

    @Override
    public boolean release(String holder, Hash hash) throws IOException {
      return pool.release(holder, hash);
    }

    @Override
    public byte[] read(Hash hash) throws IOException {
      return pool.read(hash);
    }

    @Override
    public void forEachHeld(String holder, java.util.function.Consumer<Hash> action)
        throws IOException {
      pool.forEachHeld(holder, action);
    }

    @Override
    public void forEachBlocks(int batch, Blocks action) throws IOException {
      pool.forEachBlocks(batch, action);
    }

    @Override
    public List<String> holders(Hash hash) throws IOException {
      return pool.holders(hash);
    }

    @Override
    public boolean register(String holder, String expected, String entry) throws IOException {
      return pool.register(holder, expected, entry);
    }

    @Override
    public void unregister(String holder) throws IOException {
      pool.unregister(holder);
    }

    @Override
    public Map<String, String> registered() throws IOException {
      return pool.registered();
    }

    @Override
    public String registered(String holder) throws IOException {
      return pool.registered(holder);
    }

    @Override
    public void close() {
      pool.close();
    }
  }

  @Test
  void releasesReplayedAfterACrashDropNoOtherStoresReference() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1403 ^ RUN);
    byte[] shared = random(random, 2 * 1024 * 1024);
    byte[] onlyA = random(random, 1024 * 1024);
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    long countedB;
    try (Datastore dsA = create(a);
        Datastore dsB = create(b)) {
      put(dsA, "shared", shared);
      put(dsA, "onlyA", onlyA);
      put(dsB, "shared", shared);
      dsA.sync();
      dsB.sync();
      countedB = PoolStoreAccess.countedBlocks(dsB);
    }
    long withA;
    AtomicInteger left = new AtomicInteger(50);
    // A deletes everything; its releases stop in a "crash" after 50 of them reached the pool,
    // before the transaction that forgets them commits: all stay queued in A's LMDB
    try (Datastore dsA =
        Datastore.open(a, config(where -> new CrashAfterRelease(RadosPool.open(where), left)))) {
      withA = PoolStoreAccess.countedBlocks(dsA);
      assertThat(withA).isGreaterThan(64 + 50); // more than one batch of releases
      delete(dsA, "shared");
      delete(dsA, "onlyA");
      assertThatThrownBy(dsA::reclaim).hasMessageContaining("simulated crash");
      assertThat(left).as("releases applied before the crash").hasValue(0);
      assertThat(PoolStoreAccess.unreleased(dsA)).as("queued releases").isEqualTo(withA);
    }
    // reopened: the queue is replayed, 50 of its releases for the second time
    try (Datastore dsA = open(a)) {
      dsA.reclaim();
      assertThat(PoolStoreAccess.unreleased(dsA)).isZero();
    }
    assertThat(probe.objectCount())
        .as("A's own blocks gone, B's kept")
        .isEqualTo(before + countedB);
    try (Datastore dsB = open(b)) {
      String idB = PoolStoreAccess.storeId(dsB);
      for (Hash h : PoolStoreAccess.counted(dsB)) {
        assertThat(probe.holders(h)).as("holders of %s", h).containsExactly(idB);
      }
      assertThat(read(dsB, "shared")).as("B's file after A's replayed releases").isEqualTo(shared);
      delete(dsB, "shared");
      dsB.reclaim();
    }
    assertThat(probe.objectCount()).as("after B's delete").isEqualTo(before);
  }

  /**
   * A pool whose takes reach the pool, and from the n-th on then fail, as if the process died
   * before its commit.
   */
  private static final class DiesAfterTakes extends ForwardingPool {
    private final AtomicInteger left;

    DiesAfterTakes(RadosPool pool, int n) {
      super(pool);
      this.left = new AtomicInteger(n);
    }

    @Override
    public boolean take(String holder, Hash hash, byte[] content, int length) throws IOException {
      boolean created = pool.take(holder, hash, content, length);
      if (left.decrementAndGet() <= 0) {
        throw new IOException("simulated crash after the pool took a reference");
      }
      return created;
    }
  }

  @Test
  void referencesTakenButNeverRecordedAreReleasedByReconcile() throws IOException {
    SplittableRandom random = new SplittableRandom(1405 ^ RUN);
    byte[] kept = random(random, 1024 * 1024);
    byte[] shared = random(random, 512 * 1024);
    byte[] lost = random(random, 512 * 1024);
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    long before = probe.objectCount();
    try (Datastore dsA = create(a);
        Datastore dsB = create(b)) {
      put(dsA, "kept", kept);
      put(dsB, "shared", shared);
      dsA.sync();
      dsB.sync();
    }
    long committed = probe.objectCount();
    // A writes "shared" and "lost"; its commits take 30 references, then the process dies
    Datastore dying =
        Datastore.open(a, config(where -> new DiesAfterTakes(RadosPool.open(where), 30)));
    put(dying, "shared", shared);
    put(dying, "lost", lost);
    assertThatThrownBy(dying::sync).hasMessageContaining("simulated crash");
    PoolStoreAccess.kill(dying);
    long leaked = probe.objectCount() - committed;

    try (Datastore dsA = open(a)) {
      assertThat(dsA.resolve("/kept")).isPositive();
      // the names were committed at once, the contents never
      assertThat(dsA.getattr(dsA.resolve("/lost")).size()).isZero();
      long released = dsA.reconcile();
      assertThat(released).as("references taken, never recorded").isGreaterThanOrEqualTo(30);
      assertThat(probe.objectCount()).as("objects after reconcile").isEqualTo(committed);
      assertThat(released).isGreaterThanOrEqualTo(leaked);
      assertThat(dsA.reconcile()).as("a second reconcile").isZero();
      assertThat(read(dsA, "kept")).isEqualTo(kept);
      assertThat(dsA.fsck(x -> {})).isEmpty();
      delete(dsA, "kept");
      dsA.reclaim();
    }
    try (Datastore dsB = open(b)) {
      assertThat(read(dsB, "shared")).as("B's file after A's reconcile").isEqualTo(shared);
      delete(dsB, "shared");
      dsB.reclaim();
    }
    assertThat(probe.objectCount()).isEqualTo(before);
  }

  @Test
  void aBlockChangedInThePoolIsAnErrorNeverWrongBytes() throws Exception {
    byte[] data = random(new SplittableRandom(1404 ^ RUN), 20 * LEAF);
    Path a = tmp.resolve("a");
    Hash leaf;
    try (Datastore ds = create(a)) {
      put(ds, "f", data);
      ds.sync();
      leaf = PoolStoreAccess.counted(ds, 0).get(0);
    }
    // another client overwrites the object's bytes (its references stay)
    byte[] bad = probe.read(leaf).clone();
    bad[bad.length / 2] ^= 1;
    radosPut(leaf, bad);

    try (Datastore ds = open(a)) { // nothing cached
      assertThatThrownBy(() -> read(ds, "f"))
          .isInstanceOf(CorruptBlockException.class)
          .hasMessageContaining(leaf.toString())
          .hasMessageContaining("do not match its hash");
      var scrub = ds.scrub(x -> {});
      assertThat(scrub.damaged()).hasSize(1);
      assertThat(scrub.damaged().get(0).path()).isEqualTo("f");
      assertThat(scrub.damaged().get(0).reason()).contains("do not match its hash");
      assertThat(ds.fsck(x -> {}))
          .singleElement()
          .asString()
          .contains(leaf.toString(), "do not match its hash", "(level 0)");
      delete(ds, "f");
      ds.reclaim();
      assertThat(probe.exists(leaf)).as("freed all the same").isFalse();
    }
  }

  @Test
  void freedBlocksLeaveTheLocalCache() throws Exception {
    SplittableRandom random = new SplittableRandom(1423 ^ RUN);
    byte[] kept = random(random, 1024 * 1024 + 5);
    byte[] freed = random(random, 1024 * 1024 + 6);
    try (Datastore ds = create(tmp.resolve("a"))) {
      put(ds, "kept", kept);
      ds.sync();
      long[] withKept = PoolStoreAccess.cached(ds);
      put(ds, "freed", freed);
      ds.sync();
      assertThat(PoolStoreAccess.cached(ds)[1]).isGreaterThan(withKept[1]);
      delete(ds, "freed");
      ds.reclaim();
      assertThat(PoolStoreAccess.cached(ds))
          .as("bytes and entries cached: the kept file's blocks")
          .containsExactly(withKept);
      assertThat(read(ds, "kept")).isEqualTo(kept);
    }
  }

  /** A pool that counts its reads. */
  private static final class CountingReads extends ForwardingPool {
    private final AtomicInteger reads;

    CountingReads(RadosPool pool, AtomicInteger reads) {
      super(pool);
      this.reads = reads;
    }

    @Override
    public byte[] read(Hash hash) throws IOException {
      reads.incrementAndGet();
      return super.read(hash);
    }
  }

  /**
   * Blocks a store writes or reads stay on the local disk, in its LMDB (BlockCache), and are read
   * from there after a reopen, read-only too, without a round trip to the pool. A cached copy that
   * went bad is never returned: the block is read from the pool, and the copy replaced. Scrub reads
   * the pool, not the cache. The cache keeps to its size, and an open without one empties it.
   */
  @Test
  void blocksWrittenAndReadAreReadFromTheLocalDiskAfterAReopen() throws Exception {
    byte[] data = random(new SplittableRandom(1410 ^ RUN), 2 * 1024 * 1024 + 77);
    Path a = tmp.resolve("a");
    AtomicInteger reads = new AtomicInteger();
    BlockPool.Opener counting = where -> new CountingReads(RadosPool.open(where), reads);
    Hash leaf;
    try (Datastore ds = create(a)) {
      put(ds, "f", data);
      ds.sync();
      leaf = PoolStoreAccess.counted(ds, 0).get(0);
      assertThat(PoolStoreAccess.cached(ds))
          .as("bytes and entries cached: every block the commit stored")
          .containsExactly(PoolStoreAccess.keptTotals(ds)[0], PoolStoreAccess.countedBlocks(ds));
    }
    try (Datastore ds = Datastore.open(a, config(counting))) {
      assertThat(read(ds, "f")).isEqualTo(data);
      assertThat(reads.get()).as("pool reads after a reopen").isZero();
      PoolStoreAccess.damageCached(ds, leaf);
    }
    try (Datastore ds = Datastore.open(a, config(counting))) {
      assertThat(read(ds, "f")).as("bytes with a damaged cached copy").isEqualTo(data);
      assertThat(reads.get()).as("pool reads: the damaged copy's block").isEqualTo(1);
    } // the close puts the block read from the pool
    reads.set(0);
    try (Datastore ds = Datastore.open(a, config(counting).withReadOnly(true))) {
      ByteBuffer small = ByteBuffer.allocate(5000); // a small read: across two leaves, in part
      assertThat(ds.read(ds.resolve("/f"), LEAF - 1000, small)).isEqualTo(5000);
      assertThat(small.array()).isEqualTo(Arrays.copyOfRange(data, LEAF - 1000, LEAF + 4000));
      assertThat(read(ds, "f")).isEqualTo(data);
      assertThat(reads.get()).as("pool reads once the copy was replaced, read-only").isZero();
    }

    byte[] good = probe.read(leaf);
    byte[] bad = good.clone();
    bad[bad.length / 2] ^= 1;
    radosPut(leaf, bad);
    try (Datastore ds = Datastore.open(a, config(counting))) {
      assertThat(read(ds, "f")).as("bytes from the cache, the pool's copy bad").isEqualTo(data);
      var scrub = ds.scrub(x -> {});
      assertThat(scrub.damaged()).as("scrub reads the pool").hasSize(1);
      assertThat(scrub.damaged().get(0).reason()).contains("do not match its hash");
    }
    radosPut(leaf, good);

    long limit = 256 * 1024;
    reads.set(0);
    try (Datastore ds = Datastore.open(a, config(counting).withPoolCacheBytes(limit))) {
      assertThat(PoolStoreAccess.cached(ds)[0])
          .as("bytes cached after an open with a smaller cache")
          .isPositive()
          .isLessThanOrEqualTo(limit);
      assertThat(read(ds, "f")).isEqualTo(data);
      assertThat(reads.get()).as("pool reads with a 256 KiB cache").isGreaterThan(100);
    }
    try (Datastore ds = Datastore.open(a, config(counting).withPoolCacheBytes(limit))) {
      assertThat(PoolStoreAccess.cached(ds)[0])
          .as("bytes cached after 2 MiB read through it")
          .isPositive()
          .isLessThanOrEqualTo(limit);
    }
    try (Datastore ds = open(a)) {
      assertThat(PoolStoreAccess.cached(ds))
          .as("after an open without a cache")
          .containsExactly(0, 0);
      assertThat(read(ds, "f")).isEqualTo(data);
      delete(ds, "f");
      ds.reclaim();
      assertThat(ds.fsck(x -> {})).isEmpty();
    }
  }

  /** Writes {@code bytes} over block {@code hash}'s object, as another client of the pool could. */
  private void radosPut(Hash hash, byte[] bytes) throws Exception {
    Path file = tmp.resolve("object-" + hash);
    Files.write(file, bytes);
    Process p =
        new ProcessBuilder(
                "rados",
                "-c",
                ceph.conf().toString(),
                "-p",
                "blocks",
                "put",
                hash.toString(),
                file.toString())
            .redirectErrorStream(true)
            .start();
    assertThat(p.waitFor())
        .as("rados put: %s", new String(p.getInputStream().readAllBytes()))
        .isZero();
    assertThat(probe.read(hash)).isEqualTo(bytes);
  }

  /** A RADOS pool whose reads get no answer while {@link #silent} is set. */
  private static final class SilentReads extends ForwardingPool {
    final AtomicBoolean silent = new AtomicBoolean();

    SilentReads(RadosPool pool) {
      super(pool);
    }

    @Override
    public byte[] read(Hash hash) throws IOException {
      if (silent.get()) {
        throw new PoolTimeoutException(
            "pool rados:blocks did not answer in 1 s (read " + hash + ")");
      }
      return pool.read(hash);
    }
  }

  @Test
  void aPoolThatDoesNotAnswerIsATimeoutNeverDamage() throws Exception {
    byte[] data = random(new SplittableRandom(1405 ^ RUN), 20 * LEAF);
    Path a = tmp.resolve("a");
    try (Datastore ds = create(a)) {
      put(ds, "f", data);
      ds.sync();
    }
    SilentReads[] pool = new SilentReads[1];
    try (Datastore ds =
        Datastore.open(
            a,
            config(where -> pool[0] = new SilentReads(RadosPool.open(where)))
                .withPoolCacheBytes(0))) {
      pool[0].silent.set(true); // nothing cached: every read goes to the pool
      assertThatThrownBy(() -> read(ds, "f"))
          .isInstanceOf(PoolTimeoutException.class)
          .isNotInstanceOf(CorruptBlockException.class)
          .hasMessageContaining("did not answer");
      assertThatThrownBy(() -> ds.scrub(x -> {}))
          .as("scrub stops, reports no damage")
          .isInstanceOf(PoolTimeoutException.class);
      assertThatThrownBy(() -> ds.fsck(x -> {}))
          .as("fsck stops, reports no problem")
          .isInstanceOf(PoolTimeoutException.class);

      pool[0].silent.set(false); // the pool answers again: the same store goes on
      assertThat(read(ds, "f")).isEqualTo(data);
      assertThat(ds.scrub(x -> {}).damaged()).isEmpty();
      assertThat(ds.fsck(x -> {})).isEmpty();
      delete(ds, "f");
      ds.reclaim();
    }
  }

  @Test
  void aStoreInAPoolOpensOnlyWithItAndBadPoolsCreateNothing() throws IOException {
    Path a = tmp.resolve("a");
    try (Datastore ds = create(a)) {
      assertThat(ds.blocksIn()).isEqualTo(pool());
    }
    assertThatThrownBy(() -> Datastore.open(a, DatastoreConfig.defaults()))
        .isInstanceOf(StoreException.class)
        .hasMessageContaining("keeps its blocks in rados:blocks");

    Path b = tmp.resolve("b");
    BlockPool.Location missing =
        new BlockPool.Location("rados:no-such-pool", ceph.conf().toString(), "admin");
    assertThatThrownBy(
            () -> Datastore.open(b, config(RadosPool::open).withBlocksIn(missing)).close())
        .hasMessageContaining("no-such-pool")
        .hasMessageContaining("ENOENT");
    assertThat(Datastore.isStore(b)).as("nothing created").isFalse();
    BlockPool.Location noConf =
        new BlockPool.Location("rados:blocks", tmp.resolve("none.conf").toString(), "admin");
    assertThatThrownBy(() -> Datastore.open(b, config(RadosPool::open).withBlocksIn(noConf)))
        .hasMessageContaining("none.conf");
    assertThat(Datastore.isStore(b)).as("nothing created").isFalse();
    assertThat(Files.exists(a.resolve("data.mdb"))).isTrue();
  }

  @Test
  void aSnapshotKeepsItsBytesItsDeleteFreesThemAndACloneIsIsolated() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1409 ^ RUN);
    byte[] original = random(random, 700 * 1024 + 11);
    String snapshotFile = Datastore.SNAPSHOTS + "/s1/f";
    byte[] cloned = original.clone();
    Path dir = tmp.resolve("snap");
    try (Datastore ds = create(dir)) {
      long ino = put(ds, "f", original);
      ds.sync();
      long counted = PoolStoreAccess.countedBlocks(ds);
      assertThat(probe.objectCount()).as("after the file").isEqualTo(before + counted);

      ds.createSnapshot("s1", "f");
      long clone = ds.mknod(Datastore.ROOT, "clone", S_IFREG | 0644, 0, 0, 0).ino();
      assertThat(ds.copyRange(ino, 0, clone, 0, original.length)).isEqualTo(original.length);
      ds.sync();
      assertThat(PoolStoreAccess.countedBlocks(ds))
          .as("snapshot and clone share")
          .isEqualTo(counted);
      assertThat(probe.objectCount()).as("no object added").isEqualTo(before + counted);

      // the live file overwritten, then the clone changed: each keeps to itself
      byte[] newer = random(random, original.length);
      write(ds, ino, 0, newer);
      byte[] patch = random(random, 50_000);
      System.arraycopy(patch, 0, cloned, 20_000, patch.length);
      write(ds, clone, 20_000, patch);
      ds.sync();
      ds.reclaim();
      assertThat(read(ds, "f")).as("live file").isEqualTo(newer);
      assertThat(read(ds, snapshotFile)).as("snapshot after the overwrite").isEqualTo(original);
      assertThat(read(ds, "clone")).as("clone").isEqualTo(cloned);

      delete(ds, "f");
      ds.reclaim();
      assertThat(read(ds, snapshotFile)).as("snapshot after the delete").isEqualTo(original);
      assertThat(probe.objectCount())
          .as("pool objects: one per block the store counts")
          .isEqualTo(before + PoolStoreAccess.countedBlocks(ds));
      assertThat(ds.fsck(p -> {})).as("fsck").isEmpty();
    }
    try (Datastore ds = open(dir)) { // no cache: every block from the pool
      assertThat(read(ds, snapshotFile)).as("snapshot after a reopen").isEqualTo(original);
      assertThat(read(ds, "clone")).as("clone after a reopen").isEqualTo(cloned);
      long withSnapshot = probe.objectCount();
      long snapshotIno = ds.resolve("/" + snapshotFile);
      ds.deleteSnapshot("s1");
      ds.forget(snapshotIno); // as the kernel does: the read left it open
      ds.reclaim();
      assertThat(PoolStoreAccess.unreleased(ds)).isZero();
      // the original's leaves 1 to 4 (bytes 16,384 to 81,919) were replaced in the clone: only
      // the snapshot held them
      assertThat(probe.objectCount())
          .as("pool objects after the snapshot's delete")
          .isEqualTo(before + PoolStoreAccess.countedBlocks(ds))
          .isLessThanOrEqualTo(withSnapshot - 4);
      assertThat(read(ds, "clone")).as("clone after the snapshot's delete").isEqualTo(cloned);
      assertThat(ds.fsck(p -> {})).as("fsck").isEmpty();
      delete(ds, "clone");
      ds.reclaim();
      assertThat(PoolStoreAccess.countedBlocks(ds)).isZero();
      assertThat(probe.objectCount()).as("pool objects after every delete").isEqualTo(before);
    }
  }

  /** A pool whose releases take a millisecond longer, so that they drain beside other work. */
  private static final class SlowReleases extends ForwardingPool {
    SlowReleases(RadosPool pool) {
      super(pool);
    }

    @Override
    public boolean release(String holder, Hash hash) throws IOException {
      try {
        Thread.sleep(1);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted", e);
      }
      return pool.release(holder, hash);
    }
  }

  /** Snapshot {@code name} of {@code from} as a stream ({@code byReference}: naming its blocks). */
  private static byte[] send(Datastore from, String name, String base, boolean byReference)
      throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    SendReport r = from.send(name, base, null, null, byReference, out, p -> {});
    assertThat(r.byReference()).isEqualTo(byReference);
    return out.toByteArray();
  }

  private static ReceiveReport receive(Datastore into, byte[] stream) throws IOException {
    return into.receive(new ByteArrayInputStream(stream), p -> {});
  }

  /**
   * Issue 14, item 5: A's snapshot sent by reference to B on the same pool names its blocks and
   * carries none (the stream is a fraction of the data, the pool gains no object), leaves B's
   * counts exactly as a normal receive (into D) does, and B holds its own pool reference to every
   * block: after A deletes the files and both snapshots, B still reads them from the pool.
   */
  @Test
  void aSnapshotSentByReferenceCarriesNoBlockAndCountsAsANormalReceive() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1410 ^ RUN);
    byte[] disk = random(random, 5 * 1024 * 1024 + 77);
    byte[] sparse = random(random, 900 * 1024);
    Arrays.fill(sparse, 100_000, 600_000, (byte) 0);
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    Path d = tmp.resolve("d");
    byte[] patched = disk.clone();
    try (Datastore dsA = create(a);
        Datastore dsB = create(b);
        Datastore dsD = create(d)) {
      assertThat(dsB.poolIdentity()).startsWith("rados:blocks of cluster ");
      assertThat(dsB.poolIdentity()).isEqualTo(dsA.poolIdentity());
      put(dsA, "disk", disk);
      put(dsA, "sparse", sparse);
      put(dsA, "copy", disk); // deduplicated: its tree is the disk's
      dsA.sync();
      dsA.createSnapshot("s1", "");
      long withA = probe.objectCount();
      assertThat(withA).isEqualTo(before + PoolStoreAccess.countedBlocks(dsA));

      byte[] byReference = send(dsA, "s1", null, true);
      assertThat(byReference.length).as("stream by reference").isLessThan(disk.length / 100);
      ReceiveReport got = receive(dsB, byReference);
      assertThat(got.byReference()).isTrue();
      assertThat(probe.objectCount()).as("pool objects after the receive").isEqualTo(withA);
      receive(dsD, send(dsA, "s1", null, false));
      assertThat(PoolStoreAccess.refs(dsB))
          .as("B's counts, levels and lengths: a normal receive's (D's)")
          .isEqualTo(PoolStoreAccess.refs(dsD));
      String idB = PoolStoreAccess.storeId(dsB);
      for (Hash h : PoolStoreAccess.counted(dsB)) {
        assertThat(probe.holders(h)).as("holders of %s", h).contains(idB);
      }

      // an incremental stream by reference: only what changed, still no block data
      byte[] patch = random(random, 300 * 1024);
      System.arraycopy(patch, 0, patched, 1024 * 1024, patch.length);
      write(dsA, dsA.resolve("/disk"), 1024 * 1024, patch);
      dsA.sync();
      dsA.createSnapshot("s2", "");
      long withS2 = probe.objectCount();
      byte[] incremental = send(dsA, "s2", "s1", true);
      assertThat(incremental.length).as("incremental by reference").isLessThan(patch.length / 50);
      receive(dsB, incremental);
      receive(dsD, send(dsA, "s2", "s1", false));
      assertThat(probe.objectCount()).as("pool objects after s2").isEqualTo(withS2);
      assertThat(PoolStoreAccess.refs(dsB)).as("B after s2").isEqualTo(PoolStoreAccess.refs(dsD));
      assertThat(dsB.fsck(p -> {})).as("fsck of B").isEmpty();
    }
    try (Datastore dsA = open(a)) { // A deletes everything it has
      for (String name : new String[] {"disk", "sparse", "copy"}) {
        delete(dsA, name);
      }
      dsA.deleteSnapshot("s1");
      dsA.deleteSnapshot("s2");
      dsA.reclaim();
      assertThat(PoolStoreAccess.countedBlocks(dsA)).isZero();
      assertThat(PoolStoreAccess.unreleased(dsA)).isZero();
    }
    try (Datastore dsD = open(d)) { // and so does D: only B holds the blocks now
      dsD.deleteSnapshot("s1");
      dsD.deleteSnapshot("s2");
      dsD.reclaim();
    }
    try (Datastore dsB = open(b)) { // no cache: every block from the pool
      String s1 = Datastore.SNAPSHOTS + "/s1/";
      String s2 = Datastore.SNAPSHOTS + "/s2/";
      assertThat(read(dsB, s1 + "disk")).as("s1/disk").isEqualTo(disk);
      assertThat(read(dsB, s1 + "sparse")).as("s1/sparse").isEqualTo(sparse);
      assertThat(read(dsB, s1 + "copy")).as("s1/copy").isEqualTo(disk);
      assertThat(read(dsB, s2 + "disk")).as("s2/disk").isEqualTo(patched);
      assertThat(probe.objectCount())
          .as("pool objects: B's blocks")
          .isEqualTo(before + PoolStoreAccess.countedBlocks(dsB));
      var scrub = dsB.scrub(p -> {});
      assertThat(scrub.damaged()).as("scrub of B").isEmpty();
      assertThat(dsB.fsck(p -> {})).as("fsck of B").isEmpty();
      for (String n : new String[] {"s1/disk", "s1/sparse", "s1/copy", "s2/disk"}) {
        dsB.forget(dsB.resolve("/" + Datastore.SNAPSHOTS + "/" + n)); // as the kernel does
      }
      dsB.deleteSnapshot("s1");
      dsB.deleteSnapshot("s2");
      dsB.reclaim();
      assertThat(probe.objectCount()).as("pool objects after B's delete").isEqualTo(before);
    }
  }

  /**
   * The same data written again while the releases of its deleted copy drain: a commit takes its
   * new blocks' references all at once before recording them (PoolBlockStore.prepareNew); were a
   * release drained between such a take and the commit that records the block, the pool would lose
   * a block the store names. After a reopen (nothing cached) every block reads back from the pool.
   */
  @Test
  void dataWrittenAgainWhileItsReleasesDrainStaysInThePool() throws Exception {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1409 ^ RUN);
    Path dir = tmp.resolve("a");
    create(dir).close();
    Map<String, byte[]> model = new LinkedHashMap<>();
    try (Datastore ds = Datastore.open(dir, config(w -> new SlowReleases(RadosPool.open(w))))) {
      for (int round = 0; round < 4; round++) {
        byte[] data = random(random, 3 * 1024 * 1024 + random.nextInt(LEAF));
        put(ds, "old", data);
        ds.sync();
        delete(ds, "old");
        java.util.concurrent.Future<?> drain =
            java.util.concurrent.ForkJoinPool.commonPool()
                .submit(
                    () -> {
                      ds.reclaim();
                      return null;
                    });
        // written again in pieces, each committed at once, while the releases drain
        long ino = ds.mknod(Datastore.ROOT, "new" + round, S_IFREG | 0644, 0, 0, 0).ino();
        for (int at = 0; at < data.length; at += 256 * 1024) {
          int n = Math.min(256 * 1024, data.length - at);
          ds.write(ino, at, ByteBuffer.wrap(data, at, n));
          ds.flush(ino);
        }
        drain.get();
        model.put("new" + round, data);
      }
      ds.reclaim();
      assertThat(PoolStoreAccess.unreleased(ds)).isZero();
    }
    try (Datastore ds = open(dir)) { // no cache: every block from the pool
      assertFiles(ds, model);
      var scrub = ds.scrub(p -> {});
      assertThat(scrub.damaged()).as("scrub").isEmpty();
      assertThat(scrub.blocksChecked()).isEqualTo(PoolStoreAccess.countedBlocks(ds));
      assertThat(ds.fsck(p -> {})).as("fsck").isEmpty();
      String id = PoolStoreAccess.storeId(ds);
      for (Hash h : PoolStoreAccess.counted(ds)) {
        assertThat(probe.holders(h)).as("holders of %s", h).containsExactly(id);
      }
      assertThat(probe.objectCount())
          .as("pool objects: one per block the store counts")
          .isEqualTo(before + PoolStoreAccess.countedBlocks(ds));
      for (String name : model.keySet()) {
        delete(ds, name);
      }
      ds.reclaim();
      assertThat(probe.objectCount()).as("after every delete").isEqualTo(before);
    }
  }

  /**
   * A stream by reference whose blocks left the pool (the sender deleted them) fails clearly after
   * some of it was taken, and leaves nothing: no snapshot, no staged blocks, no count, no reference
   * in the pool. A store on no pool refuses such a stream before taking anything, and a store on no
   * pool cannot send one.
   */
  @Test
  void aStreamByReferenceWhoseBlocksAreGoneLeavesNothing() throws IOException {
    long before = probe.objectCount();
    SplittableRandom random = new SplittableRandom(1411 ^ RUN);
    // Stream order: each 128 leaves, then their node. Kept: 3 nodes' leaves and 20 more, which C
    // holds too; gone: 108 leaves only A holds. The receive's first batch (records 0-255) commits;
    // the second (256-511) ends in the gone leaves, before the missing 4th node is read: its takes
    // of kept leaves succeed, those of gone ones fail, and the batch must release what it took.
    byte[] kept = random(random, (3 * 128 + 20) * LEAF);
    byte[] gone = random(random, 108 * LEAF);
    byte[] both = Arrays.copyOf(kept, kept.length + gone.length);
    System.arraycopy(gone, 0, both, kept.length, gone.length);
    Path a = tmp.resolve("a");
    Path b = tmp.resolve("b");
    Path c = tmp.resolve("c");
    Path local = tmp.resolve("local");
    try (Datastore dsA = create(a);
        Datastore dsB = create(b);
        Datastore dsC = create(c);
        Datastore dsLocal = Datastore.open(local, config(RadosPool::open))) {
      put(dsC, "kept", kept); // C keeps the first 6 MiB's leaves in the pool
      put(dsA, "both", both);
      dsA.sync();
      dsC.sync();
      dsA.createSnapshot("s", "");
      byte[] stream = send(dsA, "s", null, true);

      assertThatThrownBy(() -> receive(dsLocal, stream))
          .isInstanceOf(StreamException.class)
          .hasMessageContaining("by reference to pool " + dsA.poolIdentity())
          .hasMessageContaining("keeps its blocks in its own LMDB");
      assertThat(dsLocal.snapshots()).isEmpty();
      assertThat(dsLocal.interruptedReceives()).isEmpty();
      dsLocal.createSnapshot("l", "");
      assertThatThrownBy(() -> send(dsLocal, "l", null, true))
          .isInstanceOf(StreamException.class)
          .hasMessageContaining("nothing to send by reference");

      delete(dsA, "both");
      dsA.deleteSnapshot("s");
      dsA.reclaim(); // the last MiB's leaves and every node of A's tree leave the pool
      assertThatThrownBy(() -> receive(dsB, stream))
          .isInstanceOf(StreamException.class)
          .hasMessageContaining("missing from " + dsB.poolIdentity())
          .hasMessageContaining("deleted on the sending store")
          .hasMessageContaining("nothing of it is kept");
      dsB.reclaim();
      assertThat(dsB.snapshots()).isEmpty();
      assertThat(dsB.interruptedReceives()).isEmpty();
      assertThat(PoolStoreAccess.countedBlocks(dsB)).isZero();
      assertThat(PoolStoreAccess.unreleased(dsB)).isZero();
      String idB = PoolStoreAccess.storeId(dsB);
      for (Hash h : PoolStoreAccess.counted(dsC)) {
        assertThat(probe.holders(h)).as("holders of %s", h).doesNotContain(idB);
      }
      assertThat(dsB.fsck(p -> {})).as("fsck of B").isEmpty();
      assertThat(probe.objectCount())
          .as("pool objects: C's")
          .isEqualTo(before + PoolStoreAccess.countedBlocks(dsC));
      delete(dsC, "kept");
      dsC.reclaim();
      assertThat(probe.objectCount()).as("pool objects after C's delete").isEqualTo(before);
    }
  }

  /**
   * What statfs shows ({@code df} on the mount) for a store whose blocks are in a pool: its used
   * space grows by the blocks it stores there, and its available space is the pool's ({@code ceph
   * df}'s MAX AVAIL: at most the test OSD's 10 GiB), not the free space of the local disk that
   * keeps only the metadata. Figures older than 5 s are measured again in the background.
   */
  @Test
  void aPoolStoresSpaceIsThePoolsNotTheLocalDisks() throws Exception {
    long osd = 10L << 30; // bluestore_block_size of scripts/ceph.sh
    long pooled = probe.availableBytes();
    assertThat(pooled).as("the pool's MAX AVAIL").isPositive().isLessThanOrEqualTo(osd);
    try (Datastore ds = create(tmp.resolve("a"))) {
      io.dedupfs.engine.StoreStats before = ds.stats();
      assertThat(before.freeBytes())
          .as("available")
          .isLessThanOrEqualTo(osd)
          .isCloseTo(pooled, org.assertj.core.data.Offset.offset(256L << 20));

      byte[] data = random(new SplittableRandom(RUN + 11), 4 << 20);
      ds.flush(put(ds, "f", data));
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      io.dedupfs.engine.StoreStats after = ds.stats();
      while (after.usedBytes() < before.usedBytes() + data.length && System.nanoTime() < deadline) {
        Thread.sleep(200);
        after = ds.stats();
      }
      assertThat(after.usedBytes() - before.usedBytes())
          .as("used grows by the 4 MiB stored in the pool (and a little metadata)")
          .isBetween((long) data.length, data.length + (2L << 20));
      assertThat(after.freeBytes()).as("available after").isLessThanOrEqualTo(osd);
    }
  }

  /**
   * df of a pool store reads two totals the store keeps beside its rows, not a walk of every row
   * (which at a terabyte of 16 KiB blocks is 64 million rows every few seconds): they follow every
   * block stored, shared and freed, compressed or not, are recorded by the step from format 5, and
   * fsck reports them when they drift.
   */
  @Test
  void theKeptTotalsAreThoseOfEveryRow() throws Exception {
    SplittableRandom r = new SplittableRandom(RUN + 13);
    byte[] text = new byte[16 * LEAF]; // half of each leaf compresses
    for (int i = 0; i < text.length; i++) {
      text[i] = i % LEAF < LEAF / 2 ? (byte) r.nextInt() : (byte) 'x';
    }
    byte[] noise = random(r, 24 * LEAF);
    Path a = tmp.resolve("a");
    long[] afterText;
    try (Datastore ds = create(a)) {
      assertThat(PoolStoreAccess.keptTotals(ds)).containsExactly(0, 0);
      put(ds, "text", text);
      put(ds, "noise", noise);
      put(ds, "copy", noise); // the same blocks: counted once
      ds.sync();
      long[] kept = PoolStoreAccess.keptTotals(ds);
      assertThat(kept).isEqualTo(PoolStoreAccess.walkedTotals(ds));
      assertThat(kept[0]).as("content bytes").isGreaterThanOrEqualTo(text.length + noise.length);
      assertThat(kept[1]).as("object bytes: text compressed").isLessThan(kept[0]);
      assertThat(ds.stats().usedBytes()).isGreaterThanOrEqualTo(kept[1]);
      delete(ds, "noise");
      ds.sync();
      ds.reclaim();
      assertThat(PoolStoreAccess.keptTotals(ds)).as("copy holds the noise").isEqualTo(kept);
      delete(ds, "copy");
      ds.sync();
      ds.reclaim();
      afterText = PoolStoreAccess.keptTotals(ds);
      assertThat(afterText).isEqualTo(PoolStoreAccess.walkedTotals(ds));
      assertThat(afterText[0]).isLessThan(kept[0] - noise.length + LEAF);
      assertThat(ds.fsck(x -> {})).isEmpty();
      PoolStoreAccess.asFormat5(ds);
    }
    try (Datastore ds = open(a)) { // upgraded: the step walks the rows once
      assertThat(PoolStoreAccess.keptTotals(ds)).isEqualTo(afterText);
      assertThat(read(ds, "text")).isEqualTo(text);
      PoolStoreAccess.setTotals(ds, afterText[0] + 1, afterText[1]);
      assertThat(ds.fsck(x -> {}))
          .singleElement(org.assertj.core.api.InstanceOfAssertFactories.STRING)
          .contains("totals")
          .contains(Long.toString(afterText[0] + 1));
    }
  }

  @Test
  void thePoolsFiguresAreReadFromTheMonitorsDf() {
    String df =
        "{\"stats\":{\"total_bytes\":10737418240,\"total_avail_bytes\":9663676416},"
            + "\"pools\":[{\"name\":\"device_health_metrics\",\"id\":1,\"stats\":"
            + "{\"stored\":0,\"max_avail\":1}},{\"name\":\"blocks\",\"id\":2,\"stats\":"
            + "{\"stored\":4194304,\"objects\":256,\"percent_used\":0.00039,"
            + "\"max_avail\":9126805504}}]}";
    assertThat(RadosPool.poolFigure(df, "blocks", "max_avail")).isEqualTo(9126805504L);
    assertThat(RadosPool.poolFigure(df, "blocks", "stored")).isEqualTo(4194304L);
    assertThat(RadosPool.poolFigure(df, "other", "max_avail")).isEqualTo(-1);
  }

  /**
   * Leaves that the store's compression (lz4, the default) shrinks by a 4 KiB unit or more are kept
   * in the pool compressed (the codec's id, then its bytes), others raw; both read back equal after
   * a reopen (nothing cached) and scrub clean, and stats count the compressed bytes. A store
   * without compression that writes the same data takes the compressed objects as they are (the
   * pool gains nothing) and reads them. A compressed object damaged in the pool is EIO, never wrong
   * bytes.
   */
  @Test
  void leavesThatCompressAreCompressedObjectsInThePool() throws Exception {
    SplittableRandom r = new SplittableRandom(RUN + 12);
    int leaves = 32;
    byte[] text = new byte[leaves * LEAF]; // per leaf: 4 KiB random, then a phrase repeated
    for (int i = 0; i < text.length; i++) {
      text[i] = i % LEAF < 4096 ? (byte) r.nextInt() : (byte) ('a' + i % 23);
    }
    byte[] noise = random(r, 8 * LEAF);
    Path a = tmp.resolve("a");
    long objects = probe.objectCount();
    try (Datastore ds = create(a)) {
      put(ds, "text", text);
      put(ds, "noise", noise);
      ds.sync();
      int compressed = 0;
      Map<String, String> refs = PoolStoreAccess.refs(ds); // count/level/length
      for (Hash h : PoolStoreAccess.counted(ds, 0)) {
        byte[] object = probe.read(h);
        int length = Integer.parseInt(refs.get(h.toString()).split("/")[2]);
        if (object.length != length) {
          assertThat(object[0]).as("codec of %s", h).isEqualTo((byte) 1); // LZ4
          assertThat(object.length).as("%s saves a 4 KiB unit", h).isLessThanOrEqualTo(LEAF - 4096);
          compressed++;
        }
      }
      assertThat(compressed).as("compressed leaves: those of text").isEqualTo(leaves);
      io.dedupfs.engine.SpaceUsage u = ds.usage("/");
      assertThat(u.compressedBytes()).as("stats' compressed bytes").isLessThan(u.storedBytes());
    }
    long after = probe.objectCount();
    assertThat(after - objects).as("objects: the leaves and a node each").isEqualTo(leaves + 8 + 2);

    Path b = tmp.resolve("b");
    try (Datastore ds =
        Datastore.open(
            b,
            config(RadosPool::open)
                .withBlocksIn(pool())
                .withCompression(io.dedupfs.engine.Compression.NONE))) {
      put(ds, "text", text);
      ds.sync();
    }
    assertThat(probe.objectCount()).as("B's copy added nothing").isEqualTo(after);
    Hash leaf = null;
    for (Path store : List.of(a, b)) {
      try (Datastore ds = open(store)) { // nothing cached: every leaf from the pool
        assertThat(read(ds, "text")).as("text in %s", store).isEqualTo(text);
        assertThat(ds.scrub(x -> {}).damaged()).as("scrub of %s", store).isEmpty();
        if (store.equals(a)) {
          assertThat(read(ds, "noise")).isEqualTo(noise);
        }
        for (Hash h : PoolStoreAccess.counted(ds, 0)) {
          leaf = probe.read(h)[0] == 1 && probe.read(h).length < LEAF - 4096 ? h : leaf;
        }
      }
    }

    byte[] bad = probe.read(leaf).clone();
    bad[bad.length / 2] ^= 0x55;
    radosPut(leaf, bad);
    try (Datastore ds = open(b)) {
      assertThatThrownBy(() -> read(ds, "text"))
          .isInstanceOf(CorruptBlockException.class)
          .hasMessageContaining(leaf.toString());
      assertThat(ds.scrub(x -> {}).damaged()).hasSize(1);
    }
  }
}
