package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Random namespace operations on a few names in a few directories, many of them bound to fail:
 * every failure must be one of the {@code java.nio.file} exceptions the mount maps to an errno,
 * every success must show in a lookup, and Fsck must find the namespace consistent throughout (link
 * counts, "..", entry types, orphans), across a reopen too.
 */
class NamespaceFuzzTest {
  private static final String[] NAMES = {"a", "b", "c", "d", "e"};

  @TempDir Path tmp;

  @TestFactory
  Stream<DynamicTest> randomNamespaceOperations() {
    int seeds = TestStores.longRuns() ? 20 : 3;
    int ops = TestStores.longRuns() ? 20000 : 2000;
    return java.util.stream.LongStream.range(0, seeds)
        .mapToObj(
            seed ->
                DynamicTest.dynamicTest(
                    "seed " + seed,
                    () -> {
                      Path dir = Files.createTempDirectory(tmp, "ns");
                      try {
                        run(dir, seed, ops);
                      } catch (Throwable t) {
                        throw new AssertionError("namespace fuzz failed with seed " + seed, t);
                      }
                    }));
  }

  private static void run(Path dir, long seed, int ops) throws IOException {
    SplittableRandom r = new SplittableRandom(seed);
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    try {
      List<Long> dirs = new ArrayList<>(List.of(Datastore.ROOT));
      List<Long> nodes = new ArrayList<>();
      for (int i = 0; i < ops; i++) {
        long d1 = dirs.get(r.nextInt(dirs.size()));
        long d2 = dirs.get(r.nextInt(dirs.size()));
        String n1 = NAMES[r.nextInt(NAMES.length)];
        String n2 = NAMES[r.nextInt(NAMES.length)];
        try {
          switch (r.nextInt(10)) {
            case 0 -> nodes.add(ds.mknod(d1, n1, 0644, 0, 0, 0).ino());
            case 1 -> {
              long d = ds.mkdir(d1, n1, 0755, 0, 0).ino();
              dirs.add(d);
              assertThat(ds.lookup(d1, n1).ino()).isEqualTo(d);
            }
            case 2 -> nodes.add(ds.symlink(d1, n1, "target", 0, 0).ino());
            case 3 -> {
              if (!nodes.isEmpty()) {
                long n = nodes.get(r.nextInt(nodes.size()));
                ds.link(n, d1, n1);
                assertThat(ds.lookup(d1, n1).ino()).isEqualTo(n);
              }
            }
            case 4 -> {
              long victim = ds.lookup(d1, n1).ino();
              ds.unlink(d1, n1);
              if (r.nextBoolean()) {
                ds.forget(victim);
              }
            }
            case 5 -> {
              long victim = ds.lookup(d1, n1).ino();
              ds.rmdir(d1, n1);
              ds.forget(victim);
            }
            case 6, 7 -> {
              long moved = ds.lookup(d1, n1).ino();
              ds.rename(d1, n1, d2, n2, r.nextBoolean() ? 0 : Datastore.RENAME_NOREPLACE);
              assertThat(ds.lookup(d2, n2).ino()).isEqualTo(moved);
            }
            case 8 -> {
              long x = ds.lookup(d1, n1).ino();
              long y = ds.lookup(d2, n2).ino();
              ds.rename(d1, n1, d2, n2, Datastore.RENAME_EXCHANGE);
              assertThat(ds.lookup(d1, n1).ino()).isEqualTo(y);
              assertThat(ds.lookup(d2, n2).ino()).isEqualTo(x);
            }
            default -> {
              long x = ds.lookup(d1, n1).ino();
              ds.setxattr(x, "user." + n2, new byte[] {1}, r.nextInt(3));
            }
          }
        } catch (FileSystemException expected) {
          // the mount maps each of these to an errno
        }
        if (i % 100 == 99) {
          assertThat(new Fsck(ds.db, ds.blocks).check()).as("fsck after operation %d", i).isEmpty();
        }
        if (i == ops / 2) {
          ds.close();
          ds = Datastore.open(dir, TestStores.config(4096));
          assertThat(new Fsck(ds.db, ds.blocks).check()).as("fsck after reopening").isEmpty();
        }
      }
      for (long d : dirs) {
        try {
          ds.readdir(d, 0, 1000);
        } catch (NoSuchFileException gone) {
          // removed and forgotten
        }
      }
      TestStores.assertConsistent(ds);
    } finally {
      ds.close();
    }
  }
}
