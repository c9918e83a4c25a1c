package io.dedupfs.engine;

import java.time.Duration;
import java.util.Objects;

/**
 * How a store is created and run.
 *
 * @param leafSize bytes per data leaf; used only when a store is created (an existing store keeps
 *     its own)
 * @param readOnly open without changing anything
 * @param cacheBytes memory for blocks already checked against their hash
 * @param dirtyLimitBytes memory for written data not yet committed (buffered, or frozen by a commit
 *     in flight); a file that buffers a quarter of it is committed in the background, and a writer
 *     that finds the limit reached waits for commits before going on
 * @param flushInterval the longest that written data stays in memory before a flush
 * @param compression how a new store compresses blocks; used only when a store is created (an
 *     existing store keeps its own, which {@link Datastore#setCompression} changes)
 * @param logBytes the size of the intent log that fsyncs append to, when it is made (a store keeps
 *     the log it has); 0: fsyncs commit instead (the log is still read at open)
 */
public record DatastoreConfig(
    int leafSize,
    boolean readOnly,
    long cacheBytes,
    long dirtyLimitBytes,
    Duration flushInterval,
    Compression compression,
    long logBytes,
    BlockPool.Location blocksIn,
    BlockPool.Opener pools) {

  /**
   * The default leaf size; benchmarks/leaf-size-study.sh measures what it trades (dedupe ratio,
   * write speed, space).
   */
  public static final int DEFAULT_LEAF_SIZE = 16 * 1024;

  /** The smallest intent log. */
  public static final long MIN_LOG_BYTES = 1L << 20;

  public DatastoreConfig {
    new Geometry(leafSize); // validates
    if (cacheBytes < 0 || dirtyLimitBytes < leafSize) {
      throw new IllegalArgumentException("cache and dirty limits must be positive");
    }
    Objects.requireNonNull(compression);
    if (logBytes != 0 && logBytes < MIN_LOG_BYTES) {
      throw new IllegalArgumentException(
          "an intent log takes at least " + MIN_LOG_BYTES + " bytes");
    }
  }

  public static DatastoreConfig defaults() {
    return new DatastoreConfig(
        DEFAULT_LEAF_SIZE,
        false,
        256L << 20,
        512L << 20,
        Duration.ofSeconds(5),
        Compression.DEFAULT,
        IntentLog.DEFAULT_BYTES,
        null,
        null);
  }

  public DatastoreConfig withLeafSize(int bytes) {
    return new DatastoreConfig(
        bytes,
        readOnly,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        logBytes,
        blocksIn,
        pools);
  }

  public DatastoreConfig withReadOnly(boolean ro) {
    return new DatastoreConfig(
        leafSize,
        ro,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        logBytes,
        blocksIn,
        pools);
  }

  public DatastoreConfig withCacheBytes(long bytes) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        bytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        logBytes,
        blocksIn,
        pools);
  }

  public DatastoreConfig withDirtyLimit(long bytes) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        cacheBytes,
        bytes,
        flushInterval,
        compression,
        logBytes,
        blocksIn,
        pools);
  }

  public DatastoreConfig withFlushInterval(Duration d) {
    return new DatastoreConfig(
        leafSize, readOnly, cacheBytes, dirtyLimitBytes, d, compression, logBytes, blocksIn, pools);
  }

  public DatastoreConfig withCompression(Compression c) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        c,
        logBytes,
        blocksIn,
        pools);
  }

  /** See {@code logBytes} above. */
  public DatastoreConfig withLogBytes(long bytes) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        bytes,
        blocksIn,
        pools);
  }

  /** See {@code blocksIn} above. */
  public DatastoreConfig withBlocksIn(BlockPool.Location where) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        logBytes,
        where,
        pools);
  }

  /** See {@code pools} above. */
  public DatastoreConfig withPools(BlockPool.Opener opener) {
    return new DatastoreConfig(
        leafSize,
        readOnly,
        cacheBytes,
        dirtyLimitBytes,
        flushInterval,
        compression,
        logBytes,
        blocksIn,
        opener);
  }
}
