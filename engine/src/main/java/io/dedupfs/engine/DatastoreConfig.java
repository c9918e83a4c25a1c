package io.dedupfs.engine;

import java.nio.file.Path;
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
 * @param logFile where a new store's intent log is made: an absolute path of a file that does not
 *     exist yet, on another file system (a fast device of its own, as ZFS's separate log device),
 *     which the store's {@code intent.log} then links to; null: in the store's directory. Used only
 *     when a store is created (an existing store keeps its own)
 * @param blocksIn where a new store keeps its blocks: a pool ({@link #withBlocksIn}); null: in its
 *     LMDB
 * @param pools opens the pool of a store whose blocks are in one
 * @param poolCacheBytes for a store whose blocks are in a pool: the blocks' content it keeps on the
 *     local disk, in its LMDB, to read them without a round trip ({@link BlockCache}); 0: none, and
 *     a writable open empties the cache
 * @param poolHeartbeat for a store whose blocks are in a pool, open for writing: how often it
 *     refreshes its entry on the pool's list of stores, so that {@code dedupfs pool forget} can
 *     tell that it is alive ({@link PoolHeartbeat})
 */
public record DatastoreConfig(
    int leafSize,
    boolean readOnly,
    long cacheBytes,
    long dirtyLimitBytes,
    Duration flushInterval,
    Compression compression,
    long logBytes,
    Path logFile,
    BlockPool.Location blocksIn,
    BlockPool.Opener pools,
    long poolCacheBytes,
    Duration poolHeartbeat) {

  /**
   * The default leaf size; benchmarks/leaf-size-study.sh measures what it trades (dedupe ratio,
   * write speed, space).
   */
  public static final int DEFAULT_LEAF_SIZE = 16 * 1024;

  /** The default of {@code poolCacheBytes}. */
  public static final long DEFAULT_POOL_CACHE_BYTES = 1L << 30;

  /** The smallest intent log. */
  public static final long MIN_LOG_BYTES = 1L << 20;

  public DatastoreConfig {
    new Geometry(leafSize); // validates
    if (cacheBytes < 0 || dirtyLimitBytes < leafSize || poolCacheBytes < 0) {
      throw new IllegalArgumentException("cache and dirty limits must be positive");
    }
    Objects.requireNonNull(compression);
    if (poolHeartbeat.compareTo(Duration.ofSeconds(1)) < 0) {
      throw new IllegalArgumentException("the pool heartbeat is at least a second apart");
    }
    if (logBytes != 0 && logBytes < MIN_LOG_BYTES) {
      throw new IllegalArgumentException(
          "an intent log takes at least " + MIN_LOG_BYTES + " bytes");
    }
    if (logFile != null && !logFile.isAbsolute()) {
      throw new IllegalArgumentException("the intent log's path must be absolute: " + logFile);
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
        null,
        null,
        DEFAULT_POOL_CACHE_BYTES,
        PoolHeartbeat.DEFAULT_EVERY);
  }

  public DatastoreConfig withLeafSize(int bytes) {
    return with(f -> f.leafSize = bytes);
  }

  public DatastoreConfig withReadOnly(boolean ro) {
    return with(f -> f.readOnly = ro);
  }

  public DatastoreConfig withCacheBytes(long bytes) {
    return with(f -> f.cacheBytes = bytes);
  }

  public DatastoreConfig withDirtyLimit(long bytes) {
    return with(f -> f.dirtyLimitBytes = bytes);
  }

  public DatastoreConfig withFlushInterval(Duration d) {
    return with(f -> f.flushInterval = d);
  }

  public DatastoreConfig withCompression(Compression c) {
    return with(f -> f.compression = c);
  }

  /** See {@code logBytes} above. */
  public DatastoreConfig withLogBytes(long bytes) {
    return with(f -> f.logBytes = bytes);
  }

  /** See {@code logFile} above. */
  public DatastoreConfig withLogFile(Path file) {
    return with(f -> f.logFile = file);
  }

  /** See {@code blocksIn} above. */
  public DatastoreConfig withBlocksIn(BlockPool.Location where) {
    return with(f -> f.blocksIn = where);
  }

  /** See {@code pools} above. */
  public DatastoreConfig withPools(BlockPool.Opener opener) {
    return with(f -> f.pools = opener);
  }

  /** See {@code poolCacheBytes} above. */
  public DatastoreConfig withPoolCacheBytes(long bytes) {
    return with(f -> f.poolCacheBytes = bytes);
  }

  /** See {@code poolHeartbeat} above. */
  public DatastoreConfig withPoolHeartbeat(Duration every) {
    return with(f -> f.poolHeartbeat = every);
  }

  /** This config with what {@code change} sets in a copy of its fields. */
  private DatastoreConfig with(java.util.function.Consumer<Fields> change) {
    Fields f = new Fields(this);
    change.accept(f);
    return new DatastoreConfig(
        f.leafSize,
        f.readOnly,
        f.cacheBytes,
        f.dirtyLimitBytes,
        f.flushInterval,
        f.compression,
        f.logBytes,
        f.logFile,
        f.blocksIn,
        f.pools,
        f.poolCacheBytes,
        f.poolHeartbeat);
  }

  /** A config's fields, for {@link #with} to change one. */
  private static final class Fields {
    int leafSize;
    boolean readOnly;
    long cacheBytes;
    long dirtyLimitBytes;
    Duration flushInterval;
    Compression compression;
    long logBytes;
    Path logFile;
    BlockPool.Location blocksIn;
    BlockPool.Opener pools;
    long poolCacheBytes;
    Duration poolHeartbeat;

    Fields(DatastoreConfig c) {
      leafSize = c.leafSize;
      readOnly = c.readOnly;
      cacheBytes = c.cacheBytes;
      dirtyLimitBytes = c.dirtyLimitBytes;
      flushInterval = c.flushInterval;
      compression = c.compression;
      logBytes = c.logBytes;
      logFile = c.logFile;
      blocksIn = c.blocksIn;
      pools = c.pools;
      poolCacheBytes = c.poolCacheBytes;
      poolHeartbeat = c.poolHeartbeat;
    }
  }
}
