package io.dedupfs.engine;

import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The store's size on disk per byte of unique data, tree nodes and LMDB overhead included, must be
 * 1.1 or less. Measured twice: by LMDB's last page (what the B-trees hold) and by the size of
 * data.mdb (what the disk holds).
 */
class SpaceTest {
  private static final int MIB = 1 << 20;

  @TempDir Path dir;

  @ParameterizedTest(name = "leaf {0}, a flush every {1} MiB")
  @CsvSource({"16384, 64", "16384, 1", "4096, 64", "65536, 8"})
  void storeBytesPerUniqueByte(int leafSize, int flushEveryMib) throws IOException {
    int size = 64 * MIB;
    SplittableRandom r = new SplittableRandom(leafSize);
    try (Datastore ds = Datastore.open(dir, TestStores.config(leafSize))) {
      long ino = TestStores.create(ds, "unique");
      for (int off = 0; off < size; off += MIB) {
        ds.write(ino, off, ByteBuffer.wrap(TestStores.randomBytes(r, MIB)));
        if ((off / MIB + 1) % flushEveryMib == 0) {
          ds.flush(ino);
        }
      }
      ds.flush(ino);
      assertConsistent(ds);
      double pages = (double) ds.stats().storeBytes() / size;
      double file = (double) Files.size(dir.resolve("data.mdb")) / size;
      System.out.printf(
          "space: leaf %d, flush every %d MiB: %.4f (LMDB pages) %.4f (data.mdb) bytes per unique byte%n",
          leafSize, flushEveryMib, pages, file);
      assertThat(pages).isLessThanOrEqualTo(1.1);
      assertThat(file).isLessThanOrEqualTo(1.1);
    }
  }
}
