package io.dedupfs.bench;

import io.dedupfs.engine.Compression;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.engine.SetAttributes;
import io.dedupfs.engine.SpaceUsage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The compression study: for each compression setting, writes the leaf-size study's VM-like images
 * into a fresh store (16 KiB leaves), then incompressible data into another, and reports what each
 * store takes on disk and how fast it was written and read. The row {@code none} is the store as it
 * was before compression (the same raw layout): the ceiling every other row is compared with.
 *
 * <pre>
 * java --add-opens ... -cp benchmarks.jar io.dedupfs.bench.CompressionStudy \
 *     --stores DIR [--compression none,lz4,zstd:1,zstd:3] [--random-mib 1024] IMAGE...
 * </pre>
 *
 * <p>Images: each written in 1 MiB writes at their offsets, skipping all-zero MiB (as {@code cp
 * --sparse=always}), the size set and flushed; the first image goes into the empty store, so its
 * speed is that of unique data ("unique write"); "write all" is every image, later ones largely
 * deduplicated against it. Store: the LMDB pages in use ({@link Datastore#stats()} live bytes, what
 * df counts) after a sync and reclaim. Reads: after reopening the store with a 32 MiB verified
 * cache (the leaves come from LMDB and are checked, and decompressed, on every read): the first
 * image read sequentially in 1 MiB reads, and random 4 KiB reads of it. The store's file is in the
 * page cache (RAM), so reads measure the CPU's work: hashing and decompressing.
 *
 * <p>Incompressible: seeded random bytes written sequentially in 1 MiB writes into a fresh store,
 * then read back as above.
 */
public final class CompressionStudy {
  private static final int MIB = 1 << 20;
  private static final int LEAF = 16 * 1024;

  private CompressionStudy() {}

  public static void main(String[] args) throws Exception {
    List<Compression> settings = new ArrayList<>();
    Path stores = null;
    int randomMib = 1024;
    int randomReads = 100_000;
    List<Path> images = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--compression" -> {
          for (String c : args[++i].split(",")) {
            settings.add(Compression.parse(c));
          }
        }
        case "--stores" -> stores = Path.of(args[++i]);
        case "--random-mib" -> randomMib = Integer.parseInt(args[++i]);
        case "--random-reads" -> randomReads = Integer.parseInt(args[++i]);
        default -> images.add(Path.of(args[i]));
      }
    }
    if (settings.isEmpty()) {
      settings =
          List.of(Compression.NONE, Compression.LZ4, Compression.zstd(1), Compression.zstd(3));
    }
    if (stores == null) {
      System.err.println(
          "usage: CompressionStudy --stores DIR [--compression none,lz4,zstd:1,...] [--random-mib N] [IMAGE...]");
      System.exit(2);
    }
    // warm-up, not measured: the JIT compiles the write and read paths before the first row
    incompressible(new Row(settings.get(0)), stores.resolve("warm-up"), 256);
    List<Row> rows = new ArrayList<>();
    for (Compression c : settings) {
      Row r = new Row(c);
      if (!images.isEmpty()) {
        images(r, stores.resolve("images-" + c.toString().replace(':', '-')), images, randomReads);
      }
      incompressible(r, stores.resolve("random-" + c.toString().replace(':', '-')), randomMib);
      System.out.println(r.line());
      rows.add(r);
    }
    Row base = rows.get(0);
    System.out.println();
    System.out.println(
        "VM-like images ("
            + images.size()
            + " images, "
            + String.format(Locale.ROOT, "%,.0f", rows.get(0).logical / (double) MIB)
            + " MiB logical), and "
            + randomMib
            + " MiB of incompressible data; ratios against the first row ("
            + base.compression
            + ")");
    System.out.println();
    System.out.println(
        "| compression | store MiB | less disk | compress ratio | dedupe ratio | unique write MiB/s"
            + " | write all MiB/s | seq read MiB/s | random 4 KiB reads/s"
            + " | incompressible: store MiB | write MiB/s | seq read MiB/s | random 4 KiB reads/s |");
    System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (Row r : rows) {
      System.out.println(r.markdown(base));
    }
  }

  /** One compression setting's figures. */
  private static final class Row {
    final Compression compression;
    long logical;
    long store;
    double compressRatio;
    double dedupeRatio;
    double uniqueWrite;
    double writeAll;
    double seqRead;
    double randomReads;
    long randomStore;
    double randomWrite;
    double randomSeqRead;
    double randomRandomReads;

    /** The same figures per second of the process's CPU time (all its threads). */
    double uniqueWriteCpu;

    double seqReadCpu;
    double randomReadsCpu;
    double randomWriteCpu;
    double randomSeqReadCpu;
    double randomRandomReadsCpu;

    Row(Compression compression) {
      this.compression = compression;
    }

    String line() {
      return String.format(
          Locale.ROOT,
          "%s: images: store %,d B, compress %.2fx, dedupe %.2fx, unique write %.0f MiB/s (%.0f per CPU s),"
              + " write all %.0f MiB/s, seq read %.0f MiB/s (%.0f per CPU s), random 4 KiB reads %.0f/s"
              + " (%.0f per CPU s); incompressible: store %,d B, write %.0f MiB/s (%.0f per CPU s), seq"
              + " read %.0f MiB/s (%.0f per CPU s), random 4 KiB reads %.0f/s (%.0f per CPU s)",
          compression,
          store,
          compressRatio,
          dedupeRatio,
          uniqueWrite,
          uniqueWriteCpu,
          writeAll,
          seqRead,
          seqReadCpu,
          randomReads,
          randomReadsCpu,
          randomStore,
          randomWrite,
          randomWriteCpu,
          randomSeqRead,
          randomSeqReadCpu,
          randomRandomReads,
          randomRandomReadsCpu);
    }

    String markdown(Row base) {
      return String.format(
          Locale.ROOT,
          "| %s | %,.0f | %.2fx | %.2f | %.2f | %.0f (%.0f %%) | %.0f (%.0f %%) | %.0f (%.0f %%) | %,.0f"
              + " (%.0f %%) | %,.0f | %.0f (%.0f %%) | %.0f (%.0f %%) | %,.0f (%.0f %%) |",
          compression,
          store / (double) MIB,
          base.store / (double) store,
          compressRatio,
          dedupeRatio,
          uniqueWrite,
          100 * uniqueWrite / base.uniqueWrite,
          writeAll,
          100 * writeAll / base.writeAll,
          seqRead,
          100 * seqRead / base.seqRead,
          randomReads,
          100 * randomReads / base.randomReads,
          randomStore / (double) MIB,
          randomWrite,
          100 * randomWrite / base.randomWrite,
          randomSeqRead,
          100 * randomSeqRead / base.randomSeqRead,
          randomRandomReads,
          100 * randomRandomReads / base.randomRandomReads);
    }
  }

  private static DatastoreConfig config(Compression c) {
    return DatastoreConfig.defaults().withLeafSize(LEAF).withCompression(c);
  }

  /** A config for reading: a 32 MiB verified cache, so leaves come from LMDB. */
  private static DatastoreConfig reading(Compression c) {
    return config(c).withCacheBytes(32L << 20);
  }

  private static void images(Row row, Path dir, List<Path> images, int randomReads)
      throws IOException {
    BenchSupport.deleteTree(dir);
    byte[] chunk = new byte[MIB];
    long written = 0;
    long nanos = 0;
    long firstIno = -1;
    long firstSize = 0;
    try (Datastore ds = Datastore.open(dir, config(row.compression))) {
      int n = 0;
      for (Path image : images) {
        long size = Files.size(image);
        long ino =
            ds.mknod(Datastore.ROOT, "image" + n++ + "-" + image.getFileName(), 0644, 0, 0, 0)
                .ino();
        long imageWritten = 0;
        long t0 = System.nanoTime();
        long c0 = cpu();
        try (FileChannel ch = FileChannel.open(image)) {
          for (long off = 0; off < size; off += MIB) {
            int len = (int) Math.min(MIB, size - off);
            ByteBuffer b = ByteBuffer.wrap(chunk, 0, len);
            while (b.hasRemaining() && ch.read(b, off + b.position()) >= 0) {
              // read the whole chunk
            }
            if (!BenchSupport.isZero(chunk, 0, len)) {
              ds.write(ino, off, ByteBuffer.wrap(chunk, 0, len));
              imageWritten += len;
            }
          }
        }
        ds.setattr(ino, SetAttributes.size(size));
        ds.flush(ino);
        long t = System.nanoTime() - t0; // reading the image (page cache) included: same for all
        if (firstIno < 0) {
          firstIno = ino;
          firstSize = size;
          row.uniqueWrite = imageWritten / (double) MIB / (t / 1e9);
          row.uniqueWriteCpu = imageWritten / (double) MIB / ((cpu() - c0) / 1e9);
        }
        nanos += t;
        written += imageWritten;
        row.logical += size;
      }
      ds.sync();
      ds.reclaim();
      row.writeAll = written / (double) MIB / (nanos / 1e9);
      row.store = ds.stats().liveBytes();
      SpaceUsage u = ds.usage("");
      row.compressRatio = u.compressRatio();
      row.dedupeRatio = u.dedupeRatio();
    }
    try (Datastore ds = Datastore.open(dir, reading(row.compression))) {
      long c0 = cpu();
      row.seqRead = sequentialRead(ds, firstIno, firstSize);
      row.seqReadCpu = firstSize / (double) MIB / ((cpu() - c0) / 1e9);
      c0 = cpu();
      row.randomReads = BenchSupport.randomReads(ds, firstIno, firstSize, randomReads);
      row.randomReadsCpu = randomReads / ((cpu() - c0) / 1e9);
    }
    BenchSupport.deleteTree(dir);
  }

  private static void incompressible(Row row, Path dir, int mib) throws IOException {
    BenchSupport.deleteTree(dir);
    byte[] pool = BenchSupport.randomBytes(64 * MIB, 21);
    long size = (long) mib * MIB;
    long ino;
    try (Datastore ds = Datastore.open(dir, config(row.compression))) {
      ino = ds.mknod(Datastore.ROOT, "random", 0644, 0, 0, 0).ino();
      long t0 = System.nanoTime();
      long c0 = cpu();
      for (long off = 0; off < size; off += MIB) {
        int at = (int) (off % pool.length);
        BenchSupport.stamp(pool, at, MIB); // every MiB unique
        ds.write(ino, off, ByteBuffer.wrap(pool, at, MIB));
      }
      ds.flush(ino);
      row.randomWrite = mib / ((System.nanoTime() - t0) / 1e9);
      row.randomWriteCpu = mib / ((cpu() - c0) / 1e9);
      ds.sync();
      row.randomStore = ds.stats().liveBytes();
    }
    try (Datastore ds = Datastore.open(dir, reading(row.compression))) {
      long c0 = cpu();
      row.randomSeqRead = sequentialRead(ds, ino, size);
      row.randomSeqReadCpu = mib / ((cpu() - c0) / 1e9);
      c0 = cpu();
      row.randomRandomReads = BenchSupport.randomReads(ds, ino, size, 100_000);
      row.randomRandomReadsCpu = 100_000 / ((cpu() - c0) / 1e9);
    }
    BenchSupport.deleteTree(dir);
  }

  /** The whole file in 1 MiB reads; MiB per second. */
  private static double sequentialRead(Datastore ds, long ino, long size) throws IOException {
    ByteBuffer b = ByteBuffer.allocateDirect(MIB);
    long t0 = System.nanoTime();
    for (long off = 0; off < size; off += MIB) {
      ds.read(ino, off, b.clear());
    }
    return size / (double) MIB / ((System.nanoTime() - t0) / 1e9);
  }

  /** CPU time of the whole process (every thread, the JIT's and GC's included), nanoseconds. */
  private static long cpu() {
    return ((com.sun.management.OperatingSystemMXBean)
            java.lang.management.ManagementFactory.getOperatingSystemMXBean())
        .getProcessCpuTime();
  }
}
