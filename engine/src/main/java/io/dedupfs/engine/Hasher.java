package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * SHA-256 of leaves and tree nodes, with one reused {@link MessageDigest} per thread (the fastest
 * way on this JVM: ../shared/STORE-FACTS.md).
 *
 * <p>Leaves and nodes are hashed over different input lengths (a leaf: exactly the leaf size; a
 * node: 1 + 16 + 128 * 32 bytes, never a power of two), and a node's input starts with its level,
 * so a data block can never be taken for a tree node or a node for one of another level.
 */
final class Hasher {
  private static final ThreadLocal<MessageDigest> SHA256 =
      ThreadLocal.withInitial(Hasher::newDigest);
  private static final byte[] ZEROS = new byte[64 * 1024];

  private Hasher() {}

  /**
   * Hash of a leaf whose first {@code length} bytes are {@code data[0..length)} and whose remaining
   * {@code leafSize - length} bytes are zero.
   */
  static Hash leaf(byte[] data, int length, int leafSize) {
    MessageDigest md = SHA256.get();
    md.update(data, 0, length);
    for (int left = leafSize - length; left > 0; ) {
      int n = Math.min(left, ZEROS.length);
      md.update(ZEROS, 0, n);
      left -= n;
    }
    return Hash.wrap(md.digest());
  }

  /**
   * Hash of a leaf whose first {@code length} bytes are those of {@code buf} at absolute index
   * {@code at} (the buffer's position and limit are not used or changed) and whose remaining {@code
   * leafSize - length} bytes are zero.
   */
  static Hash leaf(ByteBuffer buf, int at, int length, int leafSize) {
    MessageDigest md = SHA256.get();
    if (buf.hasArray()) {
      md.update(buf.array(), buf.arrayOffset() + at, length);
    } else {
      md.update(buf.duplicate().limit(at + length).position(at));
    }
    for (int left = leafSize - length; left > 0; ) {
      int n = Math.min(left, ZEROS.length);
      md.update(ZEROS, 0, n);
      left -= n;
    }
    return Hash.wrap(md.digest());
  }

  /** Hash of an interior node: its level, its density bitmap and all 128 child hashes. */
  static Hash node(int level, byte[] paddedContent) {
    MessageDigest md = SHA256.get();
    md.update((byte) level);
    md.update(paddedContent);
    return Hash.wrap(md.digest());
  }

  private static MessageDigest newDigest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }
}
