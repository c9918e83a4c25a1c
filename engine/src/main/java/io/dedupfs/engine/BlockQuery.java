package io.dedupfs.engine;

import java.io.IOException;
import java.util.List;

/**
 * Asks a receiver which blocks it holds (the two-way send): a stored node implies its whole
 * subtree.
 */
@FunctionalInterface
public interface BlockQuery {
  /** For each hash, whether the receiving store holds that block. */
  boolean[] has(List<Hash> hashes) throws IOException;
}
