package io.dedupfs.engine;

/**
 * Space figures of a file, a directory tree, a snapshot or the whole store (FORMAT.md, Statistics).
 *
 * @param files regular files (a hard-linked file once)
 * @param logicalBytes the sum of their sizes
 * @param storedBytes the stored length of every distinct block reachable from them: leaves without
 *     their trailing zeros and tree nodes, each once however often it is referenced
 * @param exclusiveBytes what deleting all of them would free: the blocks that nothing else references
 * @param sharedBytes {@code storedBytes - exclusiveBytes}: blocks that something else references too
 */
public record SpaceUsage(long files, long logicalBytes, long storedBytes, long exclusiveBytes, long sharedBytes) {
  /** Logical bytes per stored byte; 0 when nothing is stored. */
  public double dedupeRatio() {
    return storedBytes == 0 ? 0 : (double) logicalBytes / storedBytes;
  }
}
