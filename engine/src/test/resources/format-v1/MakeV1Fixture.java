import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes the format-version-1 fixture with the engine as it was before compression (commit
 * bf6170e): a store of 16 KiB leaves holding "old" (12 leaves and 1234 bytes of compressible data
 * from seed 11, as TestStores.compressibleBytes makes it) and a snapshot "before" of it. Not
 * compiled with the tests: see README.md beside it.
 */
public class MakeV1Fixture {
  public static void main(String[] args) throws Exception {
    int leaf = 16384;
    byte[] data = compressibleBytes(new SplittableRandom(11), 12 * leaf + 1234);
    try (Datastore ds =
        Datastore.open(Path.of(args[0]), DatastoreConfig.defaults().withLeafSize(leaf))) {
      long ino = ds.mknod(Datastore.ROOT, "old", 0644, 0, 0, 0).ino();
      ds.write(ino, 0, ByteBuffer.wrap(data));
      ds.flush(ino);
      ds.createSnapshot("before", "old");
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

  static byte[] compressibleBytes(SplittableRandom r, int n) {
    byte[] out = randomBytes(r, n);
    for (int at = 16; at + 16 <= n; at += 16) {
      if (r.nextInt(3) > 0) {
        System.arraycopy(out, at - 16 * (1 + r.nextInt(Math.min(at / 16, 256))), out, at, 16);
      }
    }
    return out;
  }
}
