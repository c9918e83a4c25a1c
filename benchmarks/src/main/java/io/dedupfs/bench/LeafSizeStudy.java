package io.dedupfs.bench;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.engine.SetAttributes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The leaf-size study: for each leaf size, writes the same disk images into a fresh store and
 * reports what the store costs and how fast it was written.
 *
 * <pre>
 * java --add-opens ... -cp benchmarks.jar io.dedupfs.bench.LeafSizeStudy \
 *     --leaf-kib 4,8,16,32,64 --stores DIR [--random-writes N] IMAGE...
 * </pre>
 *
 * <p>Per leaf size, per image: a new file, the image written into it in 1 MiB writes at their
 * offsets, skipping 1 MiB pieces that are all zero (as {@code cp --sparse=always} does; the size is
 * then set with a truncate), and a flush at the end; the store then holds every image at once.
 * Measured:
 *
 * <ul>
 *   <li>logical bytes: the images' sizes; non-zero bytes: their leaves that are not all zero;
 *   <li>unique bytes: distinct non-zero leaves (by SHA-256, counted here, independently of the
 *       engine) times the leaf size: what an ideal block store of that leaf size must keep;
 *   <li>store bytes: the LMDB file's used pages ({@link Datastore#stats()}) after everything is
 *       flushed: data, tree nodes, reference counts, namespace and LMDB's own overhead;
 *   <li>write MiB/s: non-zero-chunk bytes written per second of {@code write} + {@code flush} calls
 *       (reading the image, from the page cache, is not timed);
 *   <li>random 4 KiB writes per second into the first image's file (4 KiB-aligned, fresh random
 *       data, a flush every 256 writes), the other side of the trade: a 4 KiB write rewrites a
 *       leaf;
 *   <li>random 4 KiB reads per second of the first image's file (as changed by those writes) after
 *       reopening the store with a 32 MiB verified cache (the tree nodes fit, the leaves do not): a
 *       4 KiB read loads and hashes a whole leaf;
 *   <li>the unique bytes after each image, to show which image adds what.
 * </ul>
 */
public final class LeafSizeStudy {
  private static final int MIB = 1 << 20;

  private LeafSizeStudy() {}

  public static void main(String[] args) throws Exception {
    List<Integer> leaves = List.of(4, 8, 16, 32, 64);
    Path stores = null;
    int randomWrites = 16384;
    int randomReads = 200000;
    List<Path> images = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--leaf-kib" -> leaves = parseList(args[++i]);
        case "--stores" -> stores = Path.of(args[++i]);
        case "--random-writes" -> randomWrites = Integer.parseInt(args[++i]);
        case "--random-reads" -> randomReads = Integer.parseInt(args[++i]);
        default -> images.add(Path.of(args[i]));
      }
    }
    if (stores == null || images.isEmpty()) {
      System.err.println(
          "usage: LeafSizeStudy --stores DIR [--leaf-kib 4,8,16,32,64] [--random-writes N] [--random-reads N] IMAGE...");
      System.exit(2);
    }
    List<Row> rows = new ArrayList<>();
    for (int kib : leaves) {
      Row r =
          study(kib * 1024, stores.resolve("leaf-" + kib + "k"), images, randomWrites, randomReads);
      System.out.println(r.line());
      rows.add(r);
    }
    System.out.println();
    System.out.println(
        "| leaf | logical MiB | non-zero MiB | unique MiB | store MiB | logical / unique | non-zero / unique"
            + " | store / unique | store / logical | write MiB/s | random 4 KiB writes/s | random 4 KiB reads/s |");
    System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (Row r : rows) {
      System.out.println(r.markdown());
    }
    System.out.println();
    StringBuilder head = new StringBuilder("| leaf |");
    StringBuilder rule = new StringBuilder("|---|");
    for (Path image : images) {
      head.append(" unique MiB after ").append(image.getFileName()).append(" |");
      rule.append("---|");
    }
    System.out.println(head);
    System.out.println(rule);
    for (Row r : rows) {
      StringBuilder b = new StringBuilder("| " + r.leafSize / 1024 + " KiB |");
      for (long u : r.uniqueAfter) {
        b.append(String.format(Locale.ROOT, " %,.0f |", Row.mib(u)));
      }
      System.out.println(b);
    }
  }

  private record Row(
      int leafSize,
      long logical,
      long nonZero,
      long unique,
      long store,
      long writeNanos,
      long written,
      double randomPerSecond,
      double readsPerSecond,
      List<Long> uniqueAfter) {
    String line() {
      return String.format(
          Locale.ROOT,
          "leaf %2d KiB: logical %,d B, non-zero %,d B, unique %,d B, store %,d B; dedupe %.2fx (non-zero %.2fx),"
              + " store/unique %.3f; write %.0f MiB/s; random 4 KiB writes %.0f/s, reads %.0f/s",
          leafSize / 1024,
          logical,
          nonZero,
          unique,
          store,
          (double) logical / unique,
          (double) nonZero / unique,
          (double) store / unique,
          mibPerSecond(),
          randomPerSecond,
          readsPerSecond);
    }

    String markdown() {
      return String.format(
          Locale.ROOT,
          "| %d KiB | %,.0f | %,.0f | %,.0f | %,.0f | %.2f | %.2f | %.3f | %.3f | %.0f | %,.0f | %,.0f |",
          leafSize / 1024,
          mib(logical),
          mib(nonZero),
          mib(unique),
          mib(store),
          (double) logical / unique,
          (double) nonZero / unique,
          (double) store / unique,
          (double) store / logical,
          mibPerSecond(),
          randomPerSecond,
          readsPerSecond);
    }

    double mibPerSecond() {
      return written / (double) MIB / (writeNanos / 1e9);
    }

    static double mib(long b) {
      return b / (double) MIB;
    }
  }

  private static Row study(
      int leafSize, Path dir, List<Path> images, int randomWrites, int randomReads)
      throws IOException, NoSuchAlgorithmException {
    BenchSupport.deleteTree(dir);
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    Set<ByteBuffer> distinct = new HashSet<>();
    byte[] chunk = new byte[MIB];
    long logical = 0;
    long nonZero = 0;
    long written = 0;
    long writeNanos = 0;
    long store;
    double randomPerSecond;
    double readsPerSecond;
    List<Long> uniqueAfter = new ArrayList<>();
    long firstIno = -1;
    long firstSize = 0;
    try (Datastore ds = Datastore.open(dir, DatastoreConfig.defaults().withLeafSize(leafSize))) {
      int n = 0;
      for (Path image : images) {
        long size = Files.size(image);
        long ino =
            ds.mknod(Datastore.ROOT, "image" + n++ + "-" + image.getFileName(), 0644, 0, 0, 0)
                .ino();
        if (firstIno < 0) {
          firstIno = ino;
          firstSize = size;
        }
        try (FileChannel ch = FileChannel.open(image)) {
          for (long off = 0; off < size; off += MIB) {
            int len = (int) Math.min(MIB, size - off);
            ByteBuffer b = ByteBuffer.wrap(chunk, 0, len);
            while (b.hasRemaining() && ch.read(b, off + b.position()) >= 0) {
              // read the whole chunk
            }
            boolean any = false;
            for (int l = 0; l < len; l += leafSize) {
              int ll = Math.min(leafSize, len - l);
              if (!BenchSupport.isZero(chunk, l, ll)) {
                any = true;
                nonZero += leafSize;
                md.update(chunk, l, ll);
                distinct.add(ByteBuffer.wrap(md.digest()));
              }
            }
            if (any) {
              long t0 = System.nanoTime();
              ds.write(ino, off, ByteBuffer.wrap(chunk, 0, len));
              writeNanos += System.nanoTime() - t0;
              written += len;
            }
          }
        }
        long t0 = System.nanoTime();
        ds.setattr(
            ino, SetAttributes.size(size)); // the size, when the image ends in zeros; commits
        ds.flush(ino);
        writeNanos += System.nanoTime() - t0;
        logical += size;
        uniqueAfter.add((long) distinct.size() * leafSize);
      }
      ds.sync();
      ds.reclaim();
      store = ds.stats().storeBytes();
      randomPerSecond = randomWrites(ds, firstIno, firstSize, randomWrites);
    }
    // Reopened with a 32 MiB verified cache: room for the tree nodes (10 MiB at 4 KiB leaves), not
    // for the leaves: nearly every leaf read comes from LMDB and is hashed.
    DatastoreConfig small = DatastoreConfig.defaults();
    small = small.withLeafSize(leafSize).withCacheBytes(32L << 20);
    try (Datastore ds = Datastore.open(dir, small)) {
      readsPerSecond = BenchSupport.randomReads(ds, firstIno, firstSize, randomReads);
    }
    BenchSupport.deleteTree(dir);
    return new Row(
        leafSize,
        logical,
        nonZero,
        (long) distinct.size() * leafSize,
        store,
        writeNanos,
        written,
        randomPerSecond,
        readsPerSecond,
        uniqueAfter);
  }

  /** Random 4 KiB-aligned writes of fresh random data, a flush every 256; writes per second. */
  private static double randomWrites(Datastore ds, long ino, long size, int count)
      throws IOException {
    if (count <= 0) {
      return Double.NaN;
    }
    byte[] pool = BenchSupport.randomBytes(16 * MIB, 11);
    SplittableRandom random = new SplittableRandom(12);
    long t0 = System.nanoTime();
    for (int i = 1; i <= count; i++) {
      long offset = random.nextLong(size / 4096) * 4096;
      int at = random.nextInt(pool.length / 4096) * 4096;
      BenchSupport.stamp(pool, at, 4096);
      ds.write(ino, offset, ByteBuffer.wrap(pool, at, 4096));
      if (i % 256 == 0) {
        ds.flush(ino);
      }
    }
    ds.flush(ino);
    return count / ((System.nanoTime() - t0) / 1e9);
  }

  private static List<Integer> parseList(String s) {
    List<Integer> out = new ArrayList<>();
    for (String p : s.split(",")) {
      out.add(Integer.parseInt(p.trim()));
    }
    return out;
  }
}
