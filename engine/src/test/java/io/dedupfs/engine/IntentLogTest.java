package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IntentLogTest {
  @TempDir Path dir;

  @Test
  void anFsyncedWriteSurvivesAnAbandonedStore() throws Exception {
    SplittableRandom r = new SplittableRandom(1);
    byte[] a = TestStores.randomBytes(r, 10_000);
    long ino;
    Datastore ds = Datastore.open(dir, TestStores.config(4096));
    ino = TestStores.create(ds, "f");
    TestStores.write(ds, ino, 5000, a);
    ds.fsync(ino);
    assertThat(ds.writeBack.bufferedBytes()).as("fsync logs, it does not commit").isPositive();
    ds.abandon();
    try (Datastore again = Datastore.open(dir, TestStores.config(4096))) {
      assertThat(again.getattr(ino).size()).isEqualTo(15_000);
      assertThat(TestStores.read(again, ino, 5000, 10_000)).isEqualTo(a);
    }
  }
}
