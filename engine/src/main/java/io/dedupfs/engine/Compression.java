package io.dedupfs.engine;

import java.util.Locale;

/**
 * How a store compresses the blocks it stores from now on (FORMAT.md, Compression): {@code none},
 * {@code lz4}, or {@code zstd} at a level. Blocks already stored keep their form; a store reads
 * every form whatever its setting. Its text form, {@link #toString}, is what {@link #parse} reads
 * and what the store's {@code meta} table keeps: {@code none}, {@code lz4}, {@code zstd:LEVEL}.
 *
 * @param algorithm {@code none}, {@code lz4} or {@code zstd}
 * @param level zstd's level ({@value #MIN_ZSTD_LEVEL}..{@value #MAX_ZSTD_LEVEL}); 0 for the others
 */
public record Compression(String algorithm, int level) {
  public static final int MIN_ZSTD_LEVEL = 1;
  public static final int MAX_ZSTD_LEVEL = 19;

  /** zstd's own default level, for {@code zstd} without one. */
  public static final int DEFAULT_ZSTD_LEVEL = 3;

  public static final Compression NONE = new Compression("none", 0);
  public static final Compression LZ4 = new Compression("lz4", 0);

  /**
   * What a new store uses unless told otherwise: chosen by measurement on VM-like images
   * (benchmarks/compression-study.sh, README's Benchmarks).
   */
  public static final Compression DEFAULT = LZ4;

  public Compression {
    switch (algorithm) {
      case "none", "lz4" -> {
        if (level != 0) {
          throw new IllegalArgumentException(algorithm + " takes no level");
        }
      }
      case "zstd" -> {
        if (level < MIN_ZSTD_LEVEL || level > MAX_ZSTD_LEVEL) {
          throw new IllegalArgumentException(
              "zstd's level must be "
                  + MIN_ZSTD_LEVEL
                  + " to "
                  + MAX_ZSTD_LEVEL
                  + ", not "
                  + level);
        }
      }
      default ->
          throw new IllegalArgumentException(
              "unknown compression '" + algorithm + "': none, lz4 or zstd[:LEVEL]");
    }
  }

  public static Compression zstd(int level) {
    return new Compression("zstd", level);
  }

  /**
   * Reads {@code none}, {@code lz4}, {@code zstd} or {@code zstd:LEVEL}.
   *
   * @throws IllegalArgumentException naming what is wrong
   */
  public static Compression parse(String text) {
    String t = text.trim().toLowerCase(Locale.ROOT);
    int colon = t.indexOf(':');
    String name = colon < 0 ? t : t.substring(0, colon);
    if (colon < 0) {
      return name.equals("zstd") ? zstd(DEFAULT_ZSTD_LEVEL) : new Compression(name, 0);
    }
    if (!name.equals("zstd")) {
      new Compression(name, 0); // an unknown name is named as such
      throw new IllegalArgumentException(name + " takes no level: '" + text + "'");
    }
    try {
      return zstd(Integer.parseInt(t.substring(colon + 1)));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("zstd's level must be a number: '" + text + "'");
    }
  }

  public boolean isNone() {
    return algorithm.equals("none");
  }

  @Override
  public String toString() {
    return algorithm.equals("zstd") ? "zstd:" + level : algorithm;
  }
}
