package io.dedupfs.engine;

import java.util.List;
import java.util.Locale;

/**
 * What a restore changed, so that a mount can drop the kernel's cached data and attributes of
 * {@code changedInodes} (contents or attributes replaced in place) and its cached lookups of {@code
 * changedEntries}; and, for people, {@code changes}: each path it changed and how, in the order of
 * its walk (a directory before what is below it). A dry run reports what the restore would change.
 */
public record Restored(
    List<Long> changedInodes, List<DirName> changedEntries, List<Change> changes) {
  public Restored {
    changedInodes = List.copyOf(changedInodes);
    changedEntries = List.copyOf(changedEntries);
    changes = List.copyOf(changes);
  }

  /** How a path changed. */
  public enum Action {
    /**
     * A non-directory given the snapshot's contents and attributes (in place or as a new inode), or
     * an entry of another type replaced by the snapshot's.
     */
    REPLACED,
    /** A name only the snapshot has, copied from it (each path below a copied directory too). */
    CREATED,
    /** A name the snapshot lacks, deleted (each path below a removed directory too). */
    REMOVED,
    /** A directory given the snapshot's mode, owner, times and extended attributes. */
    ATTRIBUTES;

    /** "replaced", "created", "removed", "attributes". */
    public String word() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /** {@code path}: relative to the store's root ("" the root itself), "/"-separated. */
  public record Change(String path, Action action) {}
}
