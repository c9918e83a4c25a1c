package io.dedupfs.bench;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.SplittableRandom;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

/**
 * What the codecs cost per 16 KiB leaf, beside SHA-256 (which every write and read pays), in this
 * thread's CPU time (the machine is shared: wall time would count the others' work): lz4's fast
 * compressor and safe decompressor, zstd at levels 1 and 3, on random data and on text (a GPL
 * licence text, the start of it). Runs with whichever lz4-java is first on the class path, so the
 * maintained fork (at.yawk.lz4, in benchmarks.jar) and the old org.lz4 can be compared:
 *
 * <pre>
 * java -cp benchmarks/target/benchmarks.jar io.dedupfs.bench.CodecCost
 * java -cp ~/.m2/repository/org/lz4/lz4-java/1.8.0/lz4-java-1.8.0.jar:benchmarks/target/benchmarks.jar \
 *     io.dedupfs.bench.CodecCost
 * </pre>
 */
public final class CodecCost {
  private static final int N = 16384;
  private static final int ITERATIONS = 20_000;

  private CodecCost() {}

  public static void main(String[] args) throws Exception {
    byte[] random = new byte[N];
    new SplittableRandom(1).nextBytes(random);
    byte[] text = Arrays.copyOf(Files.readAllBytes(Path.of("/usr/share/common-licenses/GPL-3")), N);
    LZ4Factory f = LZ4Factory.fastestInstance();
    System.out.println(
        f
            + " from "
            + LZ4Factory.class.getProtectionDomain().getCodeSource().getLocation()
            + "; zstd "
            + Zstd.class.getPackage().getImplementationVersion());
    LZ4Compressor lz4 = f.fastCompressor();
    LZ4SafeDecompressor unlz4 = f.safeDecompressor();
    byte[] out = new byte[Math.max(lz4.maxCompressedLength(N), (int) Zstd.compressBound(N))];
    byte[] back = new byte[N];
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    ZstdCompressCtx zstd1 = new ZstdCompressCtx().setLevel(1);
    ZstdCompressCtx zstd3 = new ZstdCompressCtx().setLevel(3);
    ZstdDecompressCtx unzstd = new ZstdDecompressCtx();
    for (int round = 0; round < 3; round++) { // the first rounds warm the JIT up
      for (byte[] in : new byte[][] {random, text}) {
        int[] len = new int[1];
        double lz = us(() -> len[0] = lz4.compress(in, 0, N, out, 0, out.length));
        int lzLen = len[0];
        double lzBack = us(() -> unlz4.decompress(out, 0, lzLen, back, 0, N));
        double hash =
            us(
                () -> {
                  sha.update(in, 0, N);
                  sha.digest();
                });
        double z1 = us(() -> len[0] = zstd1.compressByteArray(out, 0, out.length, in, 0, N));
        int z1Len = len[0];
        double z3 = us(() -> len[0] = zstd3.compressByteArray(out, 0, out.length, in, 0, N));
        int z3Len = len[0];
        double z3Back = us(() -> unzstd.decompressByteArray(back, 0, N, out, 0, z3Len));
        if (round == 2) {
          System.out.printf(
              "%-6s 16 KiB: SHA-256 %.1f us; lz4 -> %,d B in %.1f us, back %.1f us;"
                  + " zstd:1 -> %,d B in %.1f us; zstd:3 -> %,d B in %.1f us, back %.1f us%n",
              in == random ? "random" : "text",
              hash,
              lzLen,
              lz,
              lzBack,
              z1Len,
              z1,
              z3Len,
              z3,
              z3Back);
        }
      }
    }
  }

  /** Microseconds of this thread's CPU time per run of {@code r}. */
  private static double us(Runnable r) {
    ThreadMXBean t = ManagementFactory.getThreadMXBean();
    long c0 = t.getCurrentThreadCpuTime();
    for (int i = 0; i < ITERATIONS; i++) {
      r.run();
    }
    return (t.getCurrentThreadCpuTime() - c0) / 1e3 / ITERATIONS;
  }
}
