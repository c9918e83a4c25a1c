package io.dedupfs.engine;

import java.util.List;

/**
 * What a scrub read: distinct blocks and their stored bytes, and each damaged block once per file
 * that uses it.
 */
public record ScrubReport(long blocksChecked, long bytesChecked, List<Damage> damaged) {
  public ScrubReport {
    damaged = List.copyOf(damaged);
  }
}
