package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The SHA-256 of a block: an immutable 32-byte value. {@link #ZERO} (all zero bytes) stands for an
 * all-zero leaf or subtree of any level; it is never stored.
 */
public final class Hash implements Slot {
  public static final int SIZE = 32;
  public static final Hash ZERO = new Hash(new byte[SIZE]);

  private final byte[] bytes;
  private final int hashCode;

  private Hash(byte[] bytes) {
    this.bytes = bytes;
    this.hashCode =
        (bytes[0] & 0xff) << 24
            | (bytes[1] & 0xff) << 16
            | (bytes[2] & 0xff) << 8
            | (bytes[3] & 0xff);
  }

  static Hash wrap(byte[] thirtyTwoBytes) {
    if (thirtyTwoBytes.length != SIZE) {
      throw new IllegalArgumentException("a hash has 32 bytes, not " + thirtyTwoBytes.length);
    }
    return isAllZero(thirtyTwoBytes) ? ZERO : new Hash(thirtyTwoBytes);
  }

  /** Reads 32 bytes at the buffer's absolute {@code offset}. */
  static Hash read(ByteBuffer buf, int offset) {
    byte[] b = new byte[SIZE];
    buf.get(offset, b);
    return wrap(b);
  }

  static Hash read(byte[] buf, int offset) {
    return wrap(Arrays.copyOfRange(buf, offset, offset + SIZE));
  }

  /** The hash whose 32 bytes are {@code bytes} (copied). */
  public static Hash of(byte[] bytes) {
    return wrap(bytes.clone());
  }

  /** Its 32 bytes, a copy. */
  public byte[] toBytes() {
    return bytes.clone();
  }

  public static Hash parse(String hex) {
    return wrap(HexFormat.of().parseHex(hex));
  }

  public boolean isZero() {
    return this == ZERO;
  }

  /** Whether the 32 bytes at the buffer's absolute {@code offset} are this hash. */
  boolean isAt(ByteBuffer buf, int offset) {
    if (buf.limit() - offset < SIZE) {
      return false;
    }
    for (int i = 0; i < SIZE; i++) {
      if (buf.get(offset + i) != bytes[i]) {
        return false;
      }
    }
    return true;
  }

  void writeTo(ByteBuffer buf) {
    buf.put(bytes);
  }

  void writeTo(byte[] dst, int offset) {
    System.arraycopy(bytes, 0, dst, offset, SIZE);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Hash h && hashCode == h.hashCode && Arrays.equals(bytes, h.bytes);
  }

  @Override
  public int hashCode() {
    return hashCode;
  }

  @Override
  public String toString() {
    return HexFormat.of().formatHex(bytes);
  }

  private static boolean isAllZero(byte[] b) {
    for (byte x : b) {
      if (x != 0) {
        return false;
      }
    }
    return true;
  }
}
