package io.dedupfs.fs.fuse;

import java.util.Objects;

/** The answer to create: the new entry and the open file on it. */
public record CreatedFile(Entry entry, OpenFile file) {
  public CreatedFile {
    Objects.requireNonNull(entry, "entry");
    Objects.requireNonNull(file, "file");
  }
}
