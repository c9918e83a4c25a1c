package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link BlockStore.LeafReader} copies and checks a large request's leaves on two threads, straight
 * from LMDB's map into the caller's buffer. Whatever way {@code finish} ends, the other thread must
 * be done by then: else it goes on reading map pages after the read transaction has ended (a map
 * resize or a compact's swap unmaps them; a writer reuses them) and writing into a buffer the
 * caller has taken back (the mount reuses it for the reply to the next request).
 */
class LeafReaderTest {
  private static final int LEAF = 16384;

  /**
   * Pieces per thread: enough that the other thread's half takes far longer than a failure on this
   * one.
   */
  private static final int PIECES = 20_000;

  private static final int PIECE = 16;

  @TempDir Path dir;

  @Test
  void finishDoesNotReturnWhileTheOtherThreadStillWritesIntoTheBuffer() throws Exception {
    byte[] data = TestStores.randomBytes(new SplittableRandom(3), LEAF);
    try (Datastore ds = Datastore.open(dir, TestStores.config(LEAF))) {
      long ino = TestStores.create(ds, "f");
      TestStores.write(ds, ino, 0, data);
      ds.flush(ino);
      Hash leaf = TestStores.root(ds, ino); // a one-leaf file's root is its leaf
      ByteBuffer dst = ByteBuffer.allocate(PIECES * PIECE);
      ds.db.read(
          txn -> {
            try (BlockStore.LeafReader reader = ds.blocks.leafReader(txn, dst, false)) {
              // This thread's half (the first) fails at once: a destination index out of range
              // stands
              // for any unchecked failure (an Error, say). The other half fills the buffer, piece
              // by piece.
              reader.read(leaf, dst.capacity(), 0, PIECE);
              for (int i = 1; i < PIECES; i++) {
                reader.read(leaf, 0, 0, PIECE);
              }
              for (int i = 0; i < PIECES; i++) {
                reader.read(leaf, i * PIECE, 0, PIECE);
              }
              assertThatThrownBy(reader::finish).isInstanceOf(IndexOutOfBoundsException.class);
            }
            return null;
          });
      byte[] want = Arrays.copyOf(data, PIECE);
      boolean doneAtReturn = Arrays.equals(lastPiece(dst), want);
      for (int i = 0; i < 3000 && !Arrays.equals(lastPiece(dst), want); i++) {
        Thread.sleep(10); // a stray thread: let it end before the store (and LMDB's map) goes away
      }
      assertThat(doneAtReturn).as("the other thread's half was done when finish returned").isTrue();
    }
  }

  private static byte[] lastPiece(ByteBuffer dst) {
    return Arrays.copyOfRange(dst.array(), (PIECES - 1) * PIECE, PIECES * PIECE);
  }
}
