package io.dedupfs.rados;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.dedupfs.engine.Hash;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Blocks and their reference counts in a real RADOS pool ({@link TestCeph}'s cluster), taken and
 * released by two clients as two hosts would.
 */
class RadosPoolTest {
  private static final Duration TIMEOUT = Duration.ofSeconds(30);
  private static TestCeph ceph;
  private static RadosPool hostA;
  private static RadosPool hostB;

  @BeforeAll
  static void connect() throws IOException {
    ceph = TestCeph.get();
    hostA = RadosPool.connect(ceph.conf(), "admin", "blocks", TIMEOUT);
    hostB = RadosPool.connect(ceph.conf(), "admin", "blocks", TIMEOUT);
  }

  @AfterAll
  static void close() {
    if (hostA != null) {
      hostA.close();
    }
    if (hostB != null) {
      hostB.close();
    }
  }

  /** {@code n} blocks of 1 to 8 KiB of random bytes (so new to the pool), seeded. */
  private static List<byte[]> blocks(long seed, int n) {
    SplittableRandom random = new SplittableRandom(seed);
    List<byte[]> blocks = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      byte[] b = new byte[1024 + random.nextInt(7 * 1024 + 1)];
      random.nextBytes(b);
      blocks.add(b);
    }
    return blocks;
  }

  /** The block's hash as the trees name it: a leaf of 8 KiB with these bytes first. */
  private static Hash hash(byte[] block) {
    return TestCeph.sha256(block);
  }

  /** Runs the tasks at once, one thread each, and returns their results in order. */
  private static <T> List<T> together(List<Callable<T>> tasks) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
    try {
      List<T> results = new ArrayList<>();
      for (Future<T> f : pool.invokeAll(tasks)) {
        try {
          results.add(f.get());
        } catch (ExecutionException e) {
          if (e.getCause() instanceof Error error) {
            throw error; // a failed assertion
          }
          throw e.getCause() instanceof Exception x ? x : e;
        }
      }
      return results;
    } finally {
      pool.shutdownNow();
    }
  }

  private interface IndexCheck {
    void check(int i) throws IOException;
  }

  /** Runs check(i) for every i below n on eight threads (each check waits for the OSD). */
  private static void onEight(int n, IndexCheck check) throws Exception {
    List<Callable<Void>> tasks = new ArrayList<>();
    for (int t = 0; t < 8; t++) {
      int first = t;
      tasks.add(
          () -> {
            for (int i = first; i < n; i += 8) {
              check.check(i);
            }
            return null;
          });
    }
    together(tasks);
  }

  @Test
  void twoHostsTakeAndReleaseTheSameNewBlocksAtOnce() throws Exception {
    List<byte[]> blocks = blocks(14, 2000);
    List<Hash> hashes = blocks.stream().map(RadosPoolTest::hash).toList();
    long before = hostA.objectCount();

    AtomicInteger createdByA = new AtomicInteger();
    AtomicInteger createdByB = new AtomicInteger();
    together(
        List.<Callable<Void>>of(
            () -> takeAll(hostA, "A", hashes, blocks, createdByA),
            () -> takeAll(hostB, "B", hashes, blocks, createdByB)));

    assertThat(createdByA.get() + createdByB.get()).as("objects created").isEqualTo(2000);
    assertThat(hostA.objectCount()).as("objects in the pool").isEqualTo(before + 2000);
    onEight(
        hashes.size(),
        i -> {
          Hash h = hashes.get(i);
          assertThat(hostA.count(h)).as("count of block %d", i).isEqualTo(2);
          assertThat(hostB.read(h)).as("content of block %d", i).isEqualTo(blocks.get(i));
        });

    AtomicInteger removedByA = new AtomicInteger();
    AtomicInteger removedByB = new AtomicInteger();
    together(
        List.<Callable<Void>>of(
            () -> releaseAll(hostA, "A", hashes, removedByA),
            () -> releaseAll(hostB, "B", hashes, removedByB)));

    assertThat(removedByA.get() + removedByB.get()).as("objects removed").isEqualTo(2000);
    assertThat(hostA.objectCount()).as("objects in the pool").isEqualTo(before);
    onEight(
        hashes.size(), i -> assertThat(hostB.exists(hashes.get(i))).as("block %d", i).isFalse());
  }

  private static Void takeAll(
      RadosPool host, String holder, List<Hash> hashes, List<byte[]> blocks, AtomicInteger created)
      throws IOException {
    for (int i = 0; i < hashes.size(); i++) {
      if (host.take(holder, hashes.get(i), blocks.get(i), blocks.get(i).length)) {
        created.incrementAndGet();
      }
    }
    return null;
  }

  private static Void releaseAll(
      RadosPool host, String holder, List<Hash> hashes, AtomicInteger removed) throws IOException {
    for (Hash h : hashes) {
      if (host.release(holder, h)) {
        removed.incrementAndGet();
      }
    }
    return null;
  }

  @Test
  void aBlockStaysReadableUntilTheLastHostReleasesIt() throws IOException {
    byte[] content = blocks(15, 1).get(0);
    Hash h = hash(content);

    assertThat(hostA.take("A", h, content, content.length)).as("first take creates").isTrue();
    assertThat(hostA.read(h)).isEqualTo(content);
    assertThat(hostB.take("B", h, content, content.length)).as("second take creates").isFalse();
    assertThat(hostB.count(h)).isEqualTo(2);
    assertThat(hostB.holders(h)).containsExactly("A", "B");

    assertThat(hostA.release("A", h)).as("A's release removes").isFalse();
    assertThat(hostB.read(h)).isEqualTo(content);
    assertThat(hostA.count(h)).isEqualTo(1);
    assertThat(hostA.holders(h)).containsExactly("B");

    assertThat(hostB.release("B", h)).as("B's release removes").isTrue();
    assertThat(hostA.read(h)).isNull();
    assertThat(hostA.count(h)).isZero();
    assertThat(hostA.exists(h)).isFalse();
  }

  /**
   * A count of ten and more (numops' text, which the OSD compares as bytes) falls by one with each
   * holder's release and the last one removes the block; releases of shared and unshared blocks in
   * turn (each guessing wrong what the one before found) count as one at a time do.
   */
  @Test
  void everyReleaseButTheLastLeavesTheBlockWhateverTheCount() throws IOException {
    byte[] content = blocks(20, 1).get(0);
    Hash h = hash(content);
    int holders = 12;
    for (int i = 0; i < holders; i++) {
      hostA.take("H" + i, h, content, content.length);
    }
    assertThat(hostB.count(h)).isEqualTo(holders);
    for (int i = 0; i < holders; i++) {
      boolean lastOne = i == holders - 1;
      assertThat(hostB.release("H" + i, h)).as("H%d's release removes", i).isEqualTo(lastOne);
      assertThat(hostA.release("H" + i, h)).as("H%d's release replayed", i).isFalse();
      assertThat(hostA.count(h)).as("after H%d's release", i).isEqualTo(holders - 1 - i);
      assertThat(hostA.read(h)).isEqualTo(lastOne ? null : content);
    }

    List<byte[]> blocks = blocks(21, 8);
    for (byte[] b : blocks) {
      hostA.take("A", hash(b), b, b.length);
    }
    for (int i = 0; i < blocks.size(); i += 2) { // every other block shared
      hostB.takeExisting("B", hash(blocks.get(i)));
    }
    for (int i = 0; i < blocks.size(); i++) {
      Hash b = hash(blocks.get(i));
      boolean shared = i % 2 == 0;
      assertThat(hostA.release("A", b)).as("A's release of block %d", i).isEqualTo(!shared);
      assertThat(hostA.exists(b)).as("block %d after A's release", i).isEqualTo(shared);
    }
    for (int i = 0; i < blocks.size(); i += 2) {
      assertThat(hostB.release("B", hash(blocks.get(i)))).isTrue();
    }
  }

  @Test
  void takeNewCountsAsTakeDoesAndReadsReturnEverySize() throws IOException {
    SplittableRandom random = new SplittableRandom(System.nanoTime());
    for (int size : new int[] {1, 16384, 65536, 65537, 200_000}) {
      byte[] content = new byte[size];
      random.nextBytes(content);
      Hash h = hash(content);

      assertThat(hostA.takeNew("A", h, content, size)).as("A's takeNew creates").isTrue();
      assertThat(hostA.takeNew("A", h, content, size)).as("A's takeNew again").isFalse();
      assertThat(hostB.takeNew("B", h, content, size)).as("B's takeNew").isFalse();
      assertThat(hostA.take("B", h, content, size)).as("B's take after its takeNew").isFalse();
      assertThat(hostA.count(h)).as("one reference per holder").isEqualTo(2);
      assertThat(hostA.holders(h)).containsExactly("A", "B");
      assertThat(hostB.read(h)).as("%d bytes read back", size).isEqualTo(content);

      assertThat(hostA.release("A", h)).isFalse();
      assertThat(hostB.release("B", h)).isTrue();
      assertThat(hostA.read(h)).isNull();
    }
  }

  @Test
  void aTakeOrReleaseRepeatedCountsOnceAndDropsNoOtherHoldersReference() throws IOException {
    byte[] content = blocks(18, 1).get(0);
    Hash h = hash(content);

    assertThat(hostA.take("A", h, content, content.length)).isTrue();
    assertThat(hostA.take("A", h, content, content.length)).as("A's take again").isFalse();
    assertThat(hostB.take("B", h, content, content.length)).isFalse();
    assertThat(hostA.count(h)).as("one reference per holder").isEqualTo(2);

    assertThat(hostA.release("A", h)).isFalse();
    // A's release replayed (as after a crash before its queue was cleared), three times
    for (int i = 0; i < 3; i++) {
      assertThat(hostA.release("A", h)).as("A's release replayed").isFalse();
      assertThat(hostB.read(h)).as("B's block after A's replay %d", i).isEqualTo(content);
      assertThat(hostB.count(h)).isEqualTo(1);
      assertThat(hostB.holders(h)).containsExactly("B");
    }
    assertThat(hostB.release("B", h)).isTrue();
    assertThat(hostB.release("B", h)).as("B's release replayed").isFalse();
    assertThat(hostA.exists(h)).isFalse();
  }

  @Test
  void takingAnExistingBlockCountsOnceAndTakesNoMissingOne() throws IOException {
    byte[] content = blocks(19, 1).get(0);
    Hash h = hash(content);

    assertThat(hostB.takeExisting("B", h)).as("a block the pool lacks").isFalse();
    assertThat(hostB.exists(h)).as("numops alone would create an empty object").isFalse();
    assertThat(hostA.take("A", h, content, content.length)).isTrue();
    assertThat(hostB.takeExisting("B", h)).isTrue();
    assertThat(hostB.takeExisting("B", h)).as("B's take again").isTrue();
    assertThat(hostA.count(h)).as("one reference per holder").isEqualTo(2);
    assertThat(hostA.holders(h)).containsExactly("A", "B");
    assertThat(hostA.release("A", h)).isFalse();
    assertThat(hostB.read(h)).as("B's block after A's release").isEqualTo(content);
    assertThat(hostB.release("B", h)).isTrue();
    assertThat(hostA.exists(h)).isFalse();
    assertThat(hostA.identity())
        .as("one cluster, one pool: one identity from both hosts")
        .matches("rados:blocks of cluster [0-9a-f-]{36}")
        .isEqualTo(hostB.identity());
  }

  /**
   * An entry on the list of stores is written only over the one its writer names: two hosts that
   * both expect the old entry, one wins. One entry is read by its key, not mistaken for a longer
   * key it begins.
   */
  @Test
  void anEntryOnTheListIsWrittenOnlyOverTheOneItsWriterExpects() throws IOException {
    String h = "reg-" + System.nanoTime();
    assertThat(hostA.registered(h)).isNull();
    assertThat(hostA.register(h, null, "first")).isTrue();
    assertThat(hostB.register(h, null, "second")).as("B expects no entry").isFalse();
    assertThat(hostB.register(h, "first", "B's")).isTrue();
    assertThat(hostA.register(h, "first", "A's")).as("A's entry was read before B's").isFalse();
    assertThat(hostA.registered(h)).isEqualTo("B's");
    assertThat(hostA.register(h + "x", null, "longer")).isTrue();
    assertThat(hostA.registered(h)).isEqualTo("B's");
    assertThat(hostA.registered(h.substring(0, h.length() - 1))).isNull();
    assertThat(hostA.registered()).containsEntry(h, "B's").containsEntry(h + "x", "longer");
    hostA.unregister(h);
    hostA.unregister(h + "x");
    assertThat(hostA.registered(h)).isNull();
  }

  @Test
  void releasingAMissingBlockCreatesNothing() throws IOException {
    Hash h = hash(blocks(16, 1).get(0));

    assertThat(hostA.release("A", h)).isFalse();
    assertThat(hostA.exists(h)).as("numops alone would create an empty object").isFalse();
    assertThat(hostA.read(h)).isNull();
  }

  @Test
  void aStoppedOsdIsATimeoutAndTheNextTakeWorks() throws Exception {
    byte[] content = blocks(17, 1).get(0);
    Hash h = hash(content);
    try (RadosPool host =
        RadosPool.connect(ceph.conf(), "admin", "blocks", Duration.ofSeconds(3))) {
      ceph.signalOsd("STOP");
      try {
        assertTimeoutPreemptively(
            Duration.ofSeconds(30),
            () ->
                assertThatThrownBy(() -> host.take("A", h, content, content.length))
                    .isInstanceOf(RadosTimeoutException.class)
                    .hasMessageContaining(h.toString())
                    .hasMessageContaining("pool rados:blocks did not answer in 3 s"));
      } finally {
        ceph.signalOsd("CONT");
      }
      // The OSD may yet apply the operation that timed out: the block exists once, and A's
      // reference is counted once, whichever take applied.
      host.take("A", h, content, content.length);
      assertThat(host.read(h)).isEqualTo(content);
      assertThat(host.count(h)).isEqualTo(1);
      assertThat(host.release("A", h)).as("the one release removes").isTrue();
    }
  }
}
