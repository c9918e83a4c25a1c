package io.dedupfs.engine;

import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.time.Instant;

/** The checks that the store's operations share: names, offsets, what may change, and the clock. */
final class Checks {
  private Checks() {}

  static Inode requireDir(Inode i) throws NotDirectoryException {
    if (!i.isDirectory()) {
      throw new NotDirectoryException("inode " + i.ino());
    }
    return i;
  }

  /** A directory that new names may go into: not removed (ENOENT, as ext4 answers). */
  static Inode requireLiveDir(Inode i) throws NoSuchFileException, NotDirectoryException {
    if (requireDir(i).nlink() == 0) {
      throw new NoSuchFileException("inode " + i.ino(), null, "the directory has been removed");
    }
    return i;
  }

  /** Refuses to change an inode of the snapshot area (EROFS). */
  static Inode requireChangeable(Inode i) throws FsException {
    if (i.isReadOnly()) {
      throw new FsException(
          FsException.Kind.READ_ONLY, "inode " + i.ino(), "snapshots are read-only");
    }
    return i;
  }

  static void requireChangeable(FileContent fc) throws FsException {
    if (fc.readOnly) {
      throw new FsException(
          FsException.Kind.READ_ONLY, "inode " + fc.ino, "snapshots are read-only");
    }
  }

  /**
   * Refuses to add, remove or rename {@code name} in directory {@code dir}: a directory of the
   * snapshot area, or {@code .snapshots} in the root, whether it exists yet or not.
   */
  static void requireChangeable(Inode dir, long dirIno, String name) throws FsException {
    requireChangeable(dir);
    if (dirIno == Namespace.ROOT && name.equals(Snapshots.DIR)) {
      throw new FsException(
          FsException.Kind.READ_ONLY, name, "the name " + Snapshots.DIR + " is kept for snapshots");
    }
  }

  static void checkName(String name) throws FsException {
    if (name.isEmpty()
        || name.equals(".")
        || name.equals("..")
        || name.indexOf('/') >= 0
        || name.indexOf('\0') >= 0) {
      throw new FsException(FsException.Kind.INVALID_ARGUMENT, name, "not a valid file name");
    }
    if (name.getBytes(StandardCharsets.UTF_8).length > Namespace.NAME_MAX) {
      throw new FsException(FsException.Kind.NAME_TOO_LONG, name, "longer than 255 bytes");
    }
  }

  static void requireOffset(long offset) throws FsException {
    if (offset < 0) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, "offset " + offset, "negative offset");
    }
  }

  /** Refuses any change to a store open read-only. */
  static void requireWritable(DatastoreConfig config, Path dir) throws FsException {
    if (config.readOnly()) {
      throw new FsException(
          FsException.Kind.READ_ONLY, dir.toString(), "the store is open read-only");
    }
  }

  static long now() {
    Instant t = Instant.now();
    return t.getEpochSecond() * 1_000_000_000L + t.getNano();
  }
}
