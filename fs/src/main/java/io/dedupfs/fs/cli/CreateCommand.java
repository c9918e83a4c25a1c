package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.Compression;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "create",
    mixinStandardHelpOptions = true,
    description = "Create an empty datastore in STORE (a missing or empty directory).")
final class CreateCommand implements Callable<Integer> {
  @Option(
      names = "--leaf-size",
      paramLabel = "SIZE",
      converter = Sizes.class,
      description =
          "Bytes per data block, a power of two from 4K to 64K (default: ${DEFAULT-VALUE}).")
  int leafSize = DatastoreConfig.DEFAULT_LEAF_SIZE;

  @Option(
      names = "--compression",
      paramLabel = "COMPRESSION",
      converter = CompressionCommand.Compressions.class,
      description =
          "How blocks are compressed: none, lz4 or zstd[:LEVEL] (LEVEL 1 to 19, default 3);"
              + " changed later by `dedupfs set-compression` (default: ${DEFAULT-VALUE}).")
  Compression compression = Compression.DEFAULT;

  @Option(
      names = "--blocks",
      paramLabel = "rados:POOL",
      description =
          "Keep the blocks in the Ceph RADOS pool POOL, shared with the other stores on it (the"
              + " namespace and the counts stay in STORE; leaves compressed as --compression says);"
              + " default: in STORE.")
  String blocks;

  @Mixin CephOptions ceph = new CephOptions();

  /** The largest --log-size: the engine takes any size from its minimum; 64G is plenty. */
  private static final long MAX_LOG_BYTES = 64L << 30;

  @Option(
      names = "--log-size",
      paramLabel = "SIZE",
      description =
          "Size of the intent log that fsyncs append to, 1M to 64G: a larger log takes more"
              + " fsynced writes before commits must fold them into the trees (default: 128M).")
  String logSize;

  @Option(
      names = "--intent-log",
      paramLabel = "FILE",
      description =
          "Make the intent log in FILE (a new file; its directory must exist) instead of in STORE,"
              + " and link STORE/intent.log to it: a file system on a fast device of its own (as"
              + " ZFS's separate log device), whose flushes then do not wait for the store's disk."
              + " The store does not open while FILE is missing.")
  Path intentLog;

  @Parameters(paramLabel = "STORE", description = "Directory for the store.")
  Path store;

  @Override
  public Integer call() throws IOException {
    StorePaths.requireCreatable(store, leafSize);
    DatastoreConfig config =
        StorePaths.config().withLeafSize(leafSize).withCompression(compression);
    if (logSize != null) {
      config = config.withLogBytes(logBytes());
    }
    if (intentLog != null) {
      config = config.withLogFile(StorePaths.newIntentLog(intentLog, "--intent-log"));
    }
    BlockPool.Location pool = pool();
    if (pool != null) {
      config = config.withBlocksIn(pool);
    }
    try (Datastore ds = Datastore.open(store, config)) {
      System.out.println(
          "dedupfs: created "
              + store.toAbsolutePath()
              + " (leaf size "
              + ds.leafSize()
              + " bytes, compression "
              + ds.compression()
              + (pool == null ? "" : ", blocks in " + pool)
              + (intentLog == null ? "" : ", intent log in " + config.logFile())
              + ")");
    }
    return 0;
  }

  /** The size --log-size gives, checked. */
  private long logBytes() {
    long bytes;
    try {
      bytes = Sizes.parse(logSize);
    } catch (picocli.CommandLine.TypeConversionException e) {
      throw new Main.UsageException("--log-size: " + e.getMessage());
    }
    if (bytes < DatastoreConfig.MIN_LOG_BYTES || bytes > MAX_LOG_BYTES) {
      throw new Main.UsageException("--log-size must be from 1M to 64G, not " + logSize);
    }
    return bytes;
  }

  /** The pool --blocks names, checked; null without --blocks. */
  private BlockPool.Location pool() {
    if (blocks == null) {
      if (ceph.given()) {
        throw new Main.UsageException("--ceph-conf and --ceph-id go with --blocks rados:POOL");
      }
      return null;
    }
    return ceph.location(blocks, "--blocks");
  }
}
