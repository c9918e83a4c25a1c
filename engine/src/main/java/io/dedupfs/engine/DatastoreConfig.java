package io.dedupfs.engine;

import java.time.Duration;

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
 */
public record DatastoreConfig(
    int leafSize,
    boolean readOnly,
    long cacheBytes,
    long dirtyLimitBytes,
    Duration flushInterval,
    Compression compression) {

  /**
   * The default leaf size; benchmarks/leaf-size-study.sh measures what it trades (dedupe ratio,
   * write speed, space).
   */
  public static final int DEFAULT_LEAF_SIZE = 16 * 1024;

  public DatastoreConfig {
    new Geometry(leafSize); // validates
    if (cacheBytes < 0 || dirtyLimitBytes < leafSize) {
      throw new IllegalArgumentException("cache and dirty limits must be positive");
    }
    java.util.Objects.requireNonNull(compression);
  }

  /** A configuration with the default compression. */
  public DatastoreConfig(
      int leafSize,
      boolean readOnly,
      long cacheBytes,
      long dirtyLimitBytes,
      Duration flushInterval) {
    this(leafSize, readOnly, cacheBytes, dirtyLimitBytes, flushInterval, Compression.DEFAULT);
  }

  public static DatastoreConfig defaults() {
    return new DatastoreConfig(
        DEFAULT_LEAF_SIZE, false, 256L << 20, 512L << 20, Duration.ofSeconds(5));
  }

  public DatastoreConfig withLeafSize(int bytes) {
    return new DatastoreConfig(
        bytes, readOnly, cacheBytes, dirtyLimitBytes, flushInterval, compression);
  }

  public DatastoreConfig withReadOnly(boolean ro) {
    return new DatastoreConfig(
        leafSize, ro, cacheBytes, dirtyLimitBytes, flushInterval, compression);
  }

  public DatastoreConfig withDirtyLimit(long bytes) {
    return new DatastoreConfig(leafSize, readOnly, cacheBytes, bytes, flushInterval, compression);
  }

  public DatastoreConfig withFlushInterval(Duration d) {
    return new DatastoreConfig(leafSize, readOnly, cacheBytes, dirtyLimitBytes, d, compression);
  }

  public DatastoreConfig withCompression(Compression c) {
    return new DatastoreConfig(leafSize, readOnly, cacheBytes, dirtyLimitBytes, flushInterval, c);
  }
}
