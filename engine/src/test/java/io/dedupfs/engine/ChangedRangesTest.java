package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.collect.Range;
import com.google.common.collect.RangeSet;
import com.google.common.collect.TreeRangeSet;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link ChangedRanges} against Guava's TreeRangeSet, which the intent log's records relied on. */
class ChangedRangesTest {
  @Test
  void touchingRangesJoinAndTheLengthClipsTheLast() {
    ChangedRanges r = new ChangedRanges();
    r.add(8192, 12288);
    r.add(0, 4096);
    r.add(4096, 8192);
    r.add(20000, 30000);
    r.add(16384, 16385);
    ChangedRanges.Merged m = r.below(25000);
    assertThat(listOf(m))
        .containsExactly(List.of(0L, 12288L), List.of(16384L, 16385L), List.of(20000L, 25000L));
    assertThat(m.bytes()).isEqualTo(12288 + 1 + 5000);
    assertThat(r.below(16384).count()).isEqualTo(1);
    assertThat(r.below(0).count()).isZero();
  }

  @Test
  void emptyRangesAreRefused() {
    ChangedRanges r = new ChangedRanges();
    assertThatThrownBy(() -> r.add(10, 10)).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> r.add(-1, 10)).isInstanceOf(IllegalArgumentException.class);
    assertThat(r.isEmpty()).isTrue();
  }

  /**
   * Random adds (in a small space, so that ranges overlap, touch and nest, or in a large one, so
   * that most stay apart; many, so that merges run while adding), copies and unions of two sets,
   * read at random lengths between the adds: always the model's ranges.
   */
  @Test
  void agreesWithTreeRangeSetOverRandomOperations() {
    for (long seed = 1; seed <= 40; seed++) {
      SplittableRandom rnd = new SplittableRandom(seed);
      ChangedRanges a = new ChangedRanges();
      ChangedRanges b = new ChangedRanges();
      RangeSet<Long> ma = TreeRangeSet.create();
      RangeSet<Long> mb = TreeRangeSet.create();
      long space = 1L << (10 + rnd.nextInt(20));
      // short ranges far apart (a guest's random 4 KiB writes: merges keep most) or long ones
      long longest = rnd.nextBoolean() ? 1 + rnd.nextInt(8192) : space / 8 + 1;
      int ops = 1 + rnd.nextInt(6000);
      for (int i = 0; i < ops; i++) {
        int op = rnd.nextInt(100);
        if (op < 80) {
          long start = rnd.nextLong(space);
          long end = start + 1 + rnd.nextLong(longest);
          boolean first = rnd.nextInt(4) > 0;
          (first ? a : b).add(start, end);
          (first ? ma : mb).add(Range.closedOpen(start, end));
        } else if (op < 95) {
          long length = rnd.nextLong(space + space / 4);
          assertThat(listOf(a.below(length)))
              .as("seed %d, op %d, below %d", seed, i, length)
              .isEqualTo(listOf(ma.subRangeSet(Range.closedOpen(0L, length))));
        } else if (op < 98) {
          ChangedRanges union = a.copy();
          union.addAll(b);
          RangeSet<Long> mu = TreeRangeSet.create(ma);
          mu.addAll(mb);
          assertThat(listOf(union.below(Long.MAX_VALUE)))
              .as("seed %d, op %d, union", seed, i)
              .isEqualTo(listOf(mu.subRangeSet(Range.closedOpen(0L, Long.MAX_VALUE))));
          // the copy is its own: a's ranges are still a's alone
          assertThat(listOf(a.below(Long.MAX_VALUE)))
              .isEqualTo(listOf(ma.subRangeSet(Range.closedOpen(0L, Long.MAX_VALUE))));
        } else {
          a = new ChangedRanges();
          ma = TreeRangeSet.create();
        }
        assertThat(a.isEmpty()).isEqualTo(ma.isEmpty());
      }
      ChangedRanges.Merged all = a.below(Long.MAX_VALUE);
      long modelBytes = 0;
      for (Range<Long> r : ma.asRanges()) {
        modelBytes += r.upperEndpoint() - r.lowerEndpoint();
      }
      assertThat(all.bytes()).as("seed %d", seed).isEqualTo(modelBytes);
    }
  }

  private static List<List<Long>> listOf(ChangedRanges.Merged m) {
    List<List<Long>> out = new ArrayList<>();
    for (int i = 0; i < m.count(); i++) {
      out.add(List.of(m.start(i), m.end(i)));
    }
    return out;
  }

  private static List<List<Long>> listOf(RangeSet<Long> s) {
    List<List<Long>> out = new ArrayList<>();
    for (Range<Long> r : s.asRanges()) {
      out.add(List.of(r.lowerEndpoint(), r.upperEndpoint()));
    }
    return out;
  }
}
