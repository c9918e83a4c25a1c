package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A commit's leaves are compressed before LMDB's single writer takes them ({@link
 * TreeCommit#packAhead}, as the write-back's commits do): the writer's transaction then compresses
 * nothing, and stores the same compressed blocks it would have made itself.
 */
class PackAheadTest {
  private static final int LEAF = 16384;
  private static final Geometry G = new Geometry(LEAF);
  private static final int LEAVES = 32;

  @TempDir Path dir;

  /** Compressions through {@link #store}, in all and inside {@link #apply}'s transaction. */
  private final AtomicInteger packs = new AtomicInteger();

  private final AtomicInteger packsInWriter = new AtomicInteger();
  private volatile boolean inWriter;

  @Test
  void theWriterCompressesNothingThatWasPackedAhead() throws IOException {
    try (Datastore ds =
        Datastore.open(dir, TestStores.config(LEAF).withCompression(Compression.LZ4))) {
      BlockStore store = counting(ds.blocks);
      byte[] ahead = TestStores.compressibleBytes(new SplittableRandom(3), LEAVES * LEAF);
      byte[] inside = TestStores.compressibleBytes(new SplittableRandom(4), LEAVES * LEAF);

      Hash aheadRoot = commit(ds, store, ahead, true);

      assertThat(packs).as("every leaf compressed once").hasValue(LEAVES);
      assertThat(packsInWriter).as("none of them by the writer").hasValue(0);

      Hash insideRoot = commit(ds, store, inside, false);

      assertThat(packsInWriter).as("without packAhead the writer compresses").hasValue(LEAVES);
      long compressed = ds.db.read(txn -> ds.db.compressed.stat(txn).entries);
      assertThat(compressed).as("both files' leaves are kept compressed").isEqualTo(2L * LEAVES);
      assertThat(readBack(ds, aheadRoot, ahead.length)).isEqualTo(ahead);
      assertThat(readBack(ds, insideRoot, inside.length)).isEqualTo(inside);
    }
  }

  /** Writes {@code data} into a new tree and commits it as the write-back does; its root. */
  private Hash commit(Datastore ds, BlockStore store, byte[] data, boolean packAhead)
      throws IOException {
    FileTree t = new FileTree(G, store, Hash.ZERO, 0, 0);
    TreeCommit c =
        ds.db.read(
            txn -> {
              t.write(txn, 0, ByteBuffer.wrap(data));
              return t.freeze(txn);
            });
    if (packAhead) {
      c.packAhead(ds.db.read(c::missingLeaves));
    }
    ds.db.write(
        txn -> {
          inWriter = true;
          try {
            c.apply(txn);
          } finally {
            inWriter = false;
          }
          return null;
        });
    return c.root();
  }

  private static byte[] readBack(Datastore ds, Hash root, int length) throws IOException {
    FileTree t = new FileTree(G, ds.blocks, root, G.heightFor(length), length);
    ByteBuffer got = ByteBuffer.allocate(length);
    ds.db.read(txn -> t.read(txn, 0, got));
    return got.array();
  }

  /** {@code real}, counting the calls of {@link BlockStore#pack}. */
  private BlockStore counting(BlockStore real) {
    return (BlockStore)
        Proxy.newProxyInstance(
            BlockStore.class.getClassLoader(),
            new Class<?>[] {BlockStore.class},
            (proxy, method, args) -> {
              if (method.getName().equals("pack")) {
                packs.incrementAndGet();
                if (inWriter) {
                  packsInWriter.incrementAndGet();
                }
              }
              try {
                return method.invoke(real, args);
              } catch (InvocationTargetException e) {
                throw e.getCause();
              }
            });
  }
}
