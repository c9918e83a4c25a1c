package io.dedupfs.engine;

import java.util.List;

/**
 * What a restore changed, so that a mount can drop the kernel's cached data and attributes of
 * {@code changedInodes} (contents or attributes replaced in place) and its cached lookups of
 * {@code changedEntries}.
 */
public record Restored(List<Long> changedInodes, List<DirName> changedEntries) {
  public Restored {
    changedInodes = List.copyOf(changedInodes);
    changedEntries = List.copyOf(changedEntries);
  }
}
