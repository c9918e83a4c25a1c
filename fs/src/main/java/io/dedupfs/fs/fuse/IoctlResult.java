package io.dedupfs.fs.fuse;

import java.util.Objects;

/**
 * The answer to an ioctl: the value {@code ioctl(2)} returns, and the bytes copied back to the
 * caller's buffer (at most the size encoded in the ioctl number; empty for {@code _IO}/{@code _IOW}
 * commands).
 */
public record IoctlResult(int result, byte[] out) {
  private static final byte[] NONE = new byte[0];

  public IoctlResult {
    Objects.requireNonNull(out, "out");
  }

  public static IoctlResult of(int result) {
    return new IoctlResult(result, NONE);
  }
}
