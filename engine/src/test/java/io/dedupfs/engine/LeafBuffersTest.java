package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.cache.Cache;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Leaf arrays are used again once their commit has stored them, and what they held never shows
 * through: not in a file that takes them, not in the cache of checked blocks.
 */
class LeafBuffersTest {
  private static final int LEAF = 4096;

  @TempDir Path dir;

  @Test
  void takesWhatWasGivenBackZeroedWhenAskedAndKeepsNoMoreThanItsBound() {
    LeafBuffers b = new LeafBuffers(LEAF, 2 * LEAF);
    byte[] first = b.take(false);
    Arrays.fill(first, (byte) 7);
    b.give(first);
    byte[] again = b.take(true);
    assertThat(again).as("the array given back").isSameAs(first);
    assertThat(again).as("zeroed when asked").containsOnly(0);

    b.give(new byte[LEAF]);
    b.give(new byte[LEAF]);
    b.give(new byte[LEAF]);
    assertThat(b.free()).as("kept up to its bound").isEqualTo(2);
    assertThatThrownBy(() -> b.give(new byte[LEAF / 2]))
        .isInstanceOf(IllegalArgumentException.class);
  }

  /**
   * Rounds of files written in full and in part, each round's commits giving arrays back that the
   * next round's writes take: a leaf made from a hole must read as zeros beside what is written, a
   * leaf rewritten in part (whose array the cache keeps) must not be handed out again, and every
   * file must read back as its model, from the overlay, from the cache and from the store.
   */
  @Test
  void arraysUsedAgainNeverShowWhatTheyHeld() throws IOException {
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      SplittableRandom r = new SplittableRandom(11);
      int leaves = 64;
      long[] files = new long[4];
      byte[][] models = new byte[files.length][];
      for (int f = 0; f < files.length; f++) {
        files[f] = TestStores.create(ds, "f" + f);
        models[f] = new byte[2 * leaves * LEAF]; // a hole after the written half
        ds.setattr(files[f], SetAttributes.size(models[f].length));
      }
      Cache<Hash, byte[]> checked = ((CountedBlockStore) ds.blocks).verified;
      for (int round = 0; round < 6; round++) {
        for (int f = 0; f < files.length; f++) {
          if (round == 0 || r.nextInt(3) == 0) {
            byte[] whole = TestStores.randomBytes(r, leaves * LEAF);
            System.arraycopy(whole, 0, models[f], 0, whole.length);
            TestStores.write(ds, files[f], 0, whole);
          }
          for (int i = 0; i < 40; i++) { // in part: rewritten leaves, and leaves of the hole
            int at = r.nextInt(models[f].length - 300);
            byte[] part = TestStores.randomBytes(r, 1 + r.nextInt(300));
            System.arraycopy(part, 0, models[f], at, part.length);
            TestStores.write(ds, files[f], at, part);
          }
          for (int g = 0; g <= f; g++) { // from the overlay, while others were given back
            TestStores.assertSameBytes(
                TestStores.read(ds, files[g], 0, models[g].length), models[g], "file " + g);
          }
          ds.flush(files[f]);
        }
        for (int f = 0; f < files.length; f++) { // from the store and the cache
          TestStores.assertSameBytes(
              TestStores.read(ds, files[f], 0, models[f].length), models[f], "file " + f);
        }
        for (var e : checked.asMap().entrySet()) {
          assertThat(holds(e.getKey(), e.getValue()))
              .as("a block the cache holds matches its hash, round %d", round)
              .isTrue();
        }
      }
      assertThat(ds.files.buffers().free()).as("arrays were given back").isPositive();
      assertConsistent(ds);
    }
  }

  /** Whether {@code content} is the leaf or the node (of a low level) {@code hash} names. */
  private static boolean holds(Hash hash, byte[] content) {
    if (Hasher.leaf(content, content.length, LEAF).equals(hash)) {
      return true;
    }
    byte[] padded = Arrays.copyOf(content, Geometry.NODE_BYTES);
    for (int level = 1; level <= 3; level++) {
      if (Hasher.node(level, padded).equals(hash)) {
        return true;
      }
    }
    return false;
  }
}
