package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Datastore#diff}: the paths and exact byte ranges that differ between two snapshots, or a
 * snapshot and the live tree, checked against in-memory models after random writes, truncates,
 * holes punched, files added, removed and changed in mode.
 */
class DiffTest {
  private static final int LEAF = 4096;

  @TempDir Path dir;
  private Datastore ds;
  private final SplittableRandom r = new SplittableRandom(29);
  private final Map<String, FileModel> models = new TreeMap<>();

  @BeforeEach
  void open() throws IOException {
    ds = Datastore.open(dir, TestStores.config(LEAF));
  }

  @AfterEach
  void close() throws IOException {
    TestStores.assertConsistent(ds);
    ds.close();
  }

  /** The byte ranges where two models differ, merged, over the longer of the two. */
  private static List<Difference.ByteRange> expected(FileModel a, FileModel b) {
    long end = Math.max(a.size(), b.size());
    byte[] x = a.read(0, (int) end);
    byte[] y = b.read(0, (int) end);
    List<Difference.ByteRange> out = new ArrayList<>();
    long shorter = Math.min(a.size(), b.size());
    for (int i = 0; i < end; ) {
      boolean differs = i >= shorter || (i < x.length ? x[i] : 0) != (i < y.length ? y[i] : 0);
      if (!differs) {
        i++;
        continue;
      }
      int j = i;
      while (j < end && (j >= shorter || (j < x.length ? x[j] : 0) != (j < y.length ? y[j] : 0))) {
        j++;
      }
      out.add(new Difference.ByteRange(i, j - i));
      i = j;
    }
    return out;
  }

  private void change(String name, FileModel m) throws IOException {
    long ino = ds.resolve(name);
    switch (r.nextInt(4)) {
      case 0, 1 -> {
        long off = r.nextLong(Math.max(1, m.size() + 100_000));
        byte[] d = TestStores.randomBytes(r, 1 + r.nextInt(3 * LEAF));
        TestStores.write(ds, ino, off, d);
        m.write(off, d);
      }
      case 2 -> {
        long size = r.nextLong(Math.max(1, m.size() * 2));
        ds.setattr(ino, SetAttributes.size(size));
        m.truncate(size);
      }
      default -> {
        long off = r.nextLong(Math.max(1, m.size()));
        long len = 1 + r.nextInt(5 * LEAF);
        ds.punchHole(ino, off, len);
        m.zero(off, Math.min(off + len, m.size()));
      }
    }
    ds.flush(ino);
  }

  @Test
  void listsExactlyThePathsAndRangesThatChanged() throws IOException {
    for (int i = 0; i < 8; i++) {
      String name = "f" + i;
      long ino = TestStores.create(ds, name);
      FileModel m = new FileModel();
      for (int w = 0; w < 5; w++) {
        long off = r.nextLong(1_500_000);
        byte[] d = TestStores.randomBytes(r, 1 + r.nextInt(20_000));
        TestStores.write(ds, ino, off, d);
        m.write(off, d);
      }
      ds.flush(ino);
      models.put(name, m);
    }
    TestStores.create(ds, "gone");
    ds.mkdir(ROOT, "d", 0755, 0, 0);
    for (int round = 0; round < 6; round++) {
      ds.createSnapshot("s" + round, "");
      Map<String, FileModel> before = new TreeMap<>();
      models.forEach((k, v) -> before.put(k, v.copy()));
      List<String> changed = new ArrayList<>();
      for (String name : models.keySet()) {
        if (r.nextInt(3) == 0) {
          for (int c = 1 + r.nextInt(3); c > 0; c--) {
            change(name, models.get(name));
          }
          changed.add(name);
        }
      }
      String added = "new" + round;
      TestStores.create(ds, added);
      if (round == 0) {
        ds.unlink(ROOT, "gone");
        ds.setattr(ds.resolve("d"), SetAttributes.mode(0700));
      }
      ds.createSnapshot("t" + round, "");
      for (List<Difference> diff :
          List.of(ds.diff("s" + round, "t" + round), ds.diff("s" + round, null))) {
        Map<String, Difference> byPath = new TreeMap<>();
        diff.forEach(d -> byPath.put(d.path(), d));
        assertThat(byPath.get("/" + added).change()).isEqualTo(Difference.Change.ADDED);
        if (round == 0) {
          assertThat(byPath.get("/gone").change()).isEqualTo(Difference.Change.REMOVED);
          assertThat(byPath.get("/d").change()).isEqualTo(Difference.Change.ATTRIBUTES);
        }
        for (String name : models.keySet()) {
          List<Difference.ByteRange> want = expected(before.get(name), models.get(name));
          Difference d = byPath.get("/" + name);
          if (want.isEmpty()) {
            assertThat(d == null || d.ranges().isEmpty()).as(name + ": " + d).isTrue();
          } else {
            assertThat(d).as(name).isNotNull();
            assertThat(d.change()).isEqualTo(Difference.Change.MODIFIED);
            assertThat(d.ranges()).as(name + " in round " + round).isEqualTo(want);
          }
        }
        assertThat(byPath.keySet())
            .allMatch(
                p ->
                    p.equals("/")
                        || p.equals("/" + added)
                        || p.equals("/gone")
                        || p.equals("/d")
                        || changed.contains(p.substring(1)));
      }
    }
  }
}
