package io.dedupfs.engine;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

/**
 * A block compressor and its decompressor, named in the store by a one-byte id (FORMAT.md,
 * Compression): {@link #LZ4_ID} is an LZ4 block (no frame), {@link #ZSTD_ID} a zstd frame.
 * Stateless for callers; any thread. Decompression is told the exact length to expect and never
 * trusts the stored bytes: whatever they hold, it returns that many bytes or throws {@link
 * CorruptBlockException}, never more, never a crash (LZ4's safe decompressor checks every offset;
 * zstd checks its input).
 */
abstract class Codec {
  static final int LZ4_ID = 1;
  static final int ZSTD_ID = 2;

  /** The one-byte id of this codec in the store. */
  final int id;

  private Codec(int id) {
    this.id = id;
  }

  /** The codec that writes {@code c}; null for {@code none}. */
  static Codec of(Compression c) {
    return switch (c.algorithm()) {
      case "lz4" -> new Lz4();
      case "zstd" -> new ZstdCodec(c.level());
      default -> null;
    };
  }

  /** The codec that reads blocks of {@code id}; null when no codec has that id. */
  static Codec reading(int id) {
    return switch (id) {
      case LZ4_ID -> LZ4_READER;
      case ZSTD_ID -> ZSTD_READER;
      default -> null;
    };
  }

  private static final Codec LZ4_READER = new Lz4();
  private static final Codec ZSTD_READER = new ZstdCodec(Compression.DEFAULT_ZSTD_LEVEL);

  /** The most bytes {@link #compress} may write for {@code n} bytes of input. */
  abstract int maxCompressedLength(int n);

  /**
   * This thread's output buffer for {@link #compress} of {@code n} bytes: at least {@link
   * #maxCompressedLength} long, reused by the thread's next call.
   */
  final byte[] scratch(int n) {
    byte[] out = SCRATCH.get();
    if (out.length < maxCompressedLength(n)) {
      out = new byte[maxCompressedLength(n)];
      SCRATCH.set(out);
    }
    return out;
  }

  private static final ThreadLocal<byte[]> SCRATCH = ThreadLocal.withInitial(() -> new byte[0]);

  /**
   * Compresses {@code src[0, n)} into {@code dst} (at least {@link #maxCompressedLength} bytes);
   * returns the compressed length, or -1 when a quick probe finds the data incompressible.
   */
  abstract int compress(byte[] src, int n, byte[] dst);

  /**
   * Decompresses {@code src[0, srcLength)} into {@code dst[0, n)}, where {@code n} is the length
   * the block was stored with.
   *
   * @throws CorruptBlockException when the bytes do not decompress to exactly {@code n} bytes
   */
  final void decompress(Hash hash, byte[] src, int srcLength, byte[] dst, int n)
      throws CorruptBlockException {
    int got;
    try {
      got = decompressOrThrow(src, srcLength, dst, n);
    } catch (RuntimeException e) { // the libraries' exceptions for malformed input
      throw new CorruptBlockException(hash, "its compressed bytes do not decompress: " + e);
    }
    if (got != n) {
      throw new CorruptBlockException(
          hash, "its compressed bytes decompress to " + got + " bytes, not " + n);
    }
  }

  abstract int decompressOrThrow(byte[] src, int srcLength, byte[] dst, int n);

  private static final class Lz4 extends Codec {
    private static final LZ4Factory FACTORY = LZ4Factory.fastestInstance();
    private final LZ4Compressor compressor = FACTORY.fastCompressor();
    private final LZ4SafeDecompressor decompressor = FACTORY.safeDecompressor();

    Lz4() {
      super(LZ4_ID);
    }

    @Override
    int maxCompressedLength(int n) {
      return compressor.maxCompressedLength(n);
    }

    @Override
    int compress(byte[] src, int n, byte[] dst) {
      return compressor.compress(src, 0, n, dst, 0, dst.length);
    }

    @Override
    int decompressOrThrow(byte[] src, int srcLength, byte[] dst, int n) {
      return decompressor.decompress(src, 0, srcLength, dst, 0, n);
    }
  }

  /**
   * zstd spends 8-12 us on 16 KiB of random data (lz4 1.6 us; SHA-256 10 us), so incompressible
   * data is first tried with lz4: what lz4 cannot shrink by 1/32 (random, encrypted or already
   * compressed data) is not worth zstd's attempt either (it would save a page of four only on data
   * whose byte values alone are skewed, which lz4's literals do not shrink).
   */
  private static final class ZstdCodec extends Codec {
    private static final ThreadLocal<byte[]> PROBE = ThreadLocal.withInitial(() -> new byte[0]);
    private final ThreadLocal<ZstdCompressCtx> compressors;

    private static final ThreadLocal<ZstdDecompressCtx> DECOMPRESSORS =
        ThreadLocal.withInitial(ZstdDecompressCtx::new);

    ZstdCodec(int level) {
      super(ZSTD_ID);
      compressors = ThreadLocal.withInitial(() -> new ZstdCompressCtx().setLevel(level));
    }

    @Override
    int maxCompressedLength(int n) {
      return (int) Zstd.compressBound(n);
    }

    @Override
    int compress(byte[] src, int n, byte[] dst) {
      byte[] probe = PROBE.get();
      if (probe.length < LZ4_READER.maxCompressedLength(n)) {
        probe = new byte[LZ4_READER.maxCompressedLength(n)];
        PROBE.set(probe);
      }
      if (LZ4_READER.compress(src, n, probe) > n - n / 32) {
        return -1;
      }
      return compressors.get().compressByteArray(dst, 0, dst.length, src, 0, n);
    }

    @Override
    int decompressOrThrow(byte[] src, int srcLength, byte[] dst, int n) {
      return DECOMPRESSORS.get().decompressByteArray(dst, 0, n, src, 0, srcLength);
    }
  }
}
