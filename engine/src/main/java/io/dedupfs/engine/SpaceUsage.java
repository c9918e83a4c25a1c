package io.dedupfs.engine;

/**
 * Space figures of a file, a directory tree, a snapshot or the whole store (FORMAT.md, Statistics).
 *
 * @param files regular files (a hard-linked file once)
 * @param logicalBytes the sum of their sizes
 * @param storedBytes the stored length (before compression) of every distinct block reachable from
 *     them: leaves without their trailing zeros and tree nodes, each once however often it is
 *     referenced
 * @param exclusiveBytes what deleting all of them would free: the blocks that nothing else
 *     references
 * @param sharedBytes {@code storedBytes - exclusiveBytes}: blocks that something else references
 *     too
 * @param referencedBytes the data their trees reference: the stored length of every non-zero leaf
 *     (its bytes up to its last non-zero one), counted once per reference: a leaf at two offsets,
 *     or in two files, counts twice; holes and tree nodes count nothing. A file's last leaf, partly
 *     past the file's end, counts its bytes up to its last non-zero one, which is never past the
 *     end (every byte at or beyond a file's size is zero): so {@code referencedBytes <=
 *     logicalBytes}: what storing the data without deduplication would take (tree nodes aside)
 * @param compressedBytes what the blocks counted in {@code storedBytes} take as stored: compressed
 *     blocks at their compressed length, the others at their length ({@code <= storedBytes})
 */
public record SpaceUsage(
    long files,
    long logicalBytes,
    long storedBytes,
    long exclusiveBytes,
    long sharedBytes,
    long referencedBytes,
    long compressedBytes) {
  /**
   * Referenced bytes per stored byte, as ZFS's dedupratio (bytes referenced over bytes allocated):
   * holes and trailing zeros count on neither side, so it measures sharing only. Tree nodes are
   * stored but not referenced data, so files that share nothing show just under 1. 1 when nothing
   * is stored (no data, or holes only).
   */
  public double dedupeRatio() {
    return storedBytes == 0 ? 1 : (double) referencedBytes / storedBytes;
  }

  /**
   * Stored bytes before compression per byte after it, as ZFS's compressratio: 1 when nothing is
   * compressed (or stored). Together with {@link #dedupeRatio}: {@code referencedBytes /
   * compressedBytes} is their product.
   */
  public double compressRatio() {
    return compressedBytes == 0 ? 1 : (double) storedBytes / compressedBytes;
  }
}
