package io.dedupfs.engine;

import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;

/**
 * The directory a store lives in, held by this process: what may be opened there (a new store in a
 * missing or empty directory, else an existing one), and the lock on {@code dedupfs.lock} that
 * keeps any other open out, shared for read-only opens. {@link #close} releases the lock.
 */
final class StoreDirectory implements Closeable {
  final Path dir;
  final boolean readOnly;

  /** No store is there yet: opening creates one. */
  final boolean fresh;

  private final FileChannel lockFile;
  private final FileLock lock;

  private StoreDirectory(
      Path dir, boolean readOnly, boolean fresh, FileChannel lockFile, FileLock lock) {
    this.dir = dir;
    this.readOnly = readOnly;
    this.fresh = fresh;
    this.lockFile = lockFile;
    this.lock = lock;
  }

  /**
   * Takes {@code dir} for a store, creating the directory when it is missing. Refuses a directory
   * that holds anything else than a store, and a store that another process (or another open in
   * this one) is using.
   */
  static StoreDirectory lock(Path dir, boolean readOnly) throws IOException {
    boolean fresh = !Files.exists(dir) || isEmptyDir(dir);
    if (fresh && readOnly) {
      throw new StoreException(
          dir + " holds no dedupfs store, and a read-only open cannot create one");
    }
    if (!fresh && !Files.isDirectory(dir)) {
      throw new StoreException(dir + " is not a directory");
    }
    if (!fresh && !Files.exists(dir.resolve("data.mdb"))) {
      throw new StoreException(
          dir + " is not a dedupfs store (it is not empty and has no data.mdb)");
    }
    if (!fresh) {
      Lmdb.requireLmdbFile(dir.resolve("data.mdb"));
    }
    FileChannel ch;
    if (readOnly) {
      // Shared, and with read access only: works on a read-only filesystem, and excludes a writer.
      if (!Files.exists(dir.resolve("dedupfs.lock"))) {
        throw new StoreException(dir + " is not a dedupfs store (it has no dedupfs.lock)");
      }
      ch = FileChannel.open(dir.resolve("dedupfs.lock"), StandardOpenOption.READ);
    } else {
      Files.createDirectories(dir);
      ch =
          FileChannel.open(
              dir.resolve("dedupfs.lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
    }
    FileLock lock;
    try {
      lock = ch.tryLock(0, Long.MAX_VALUE, readOnly);
    } catch (OverlappingFileLockException e) {
      lock = null;
    }
    if (lock == null) {
      ch.close();
      throw new StoreException(
          "the store " + dir + " is in use by another process (is it mounted already?)");
    }
    return new StoreDirectory(dir, readOnly, fresh, ch, lock);
  }

  /** True when {@code dir} holds a dedupfs store. */
  static boolean isStore(Path dir) {
    return Files.isRegularFile(dir.resolve("data.mdb"))
        && Files.exists(dir.resolve("dedupfs.lock"));
  }

  private static boolean isEmptyDir(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return false;
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.findAny().isEmpty();
    }
  }

  /** Opens the LMDB environment in the directory, its map starting at {@code mapSize} bytes. */
  Lmdb openLmdb(long mapSize) throws IOException {
    return new Lmdb(dir, readOnly, fresh, mapSize);
  }

  /** Releases the lock: another open may take the directory. */
  @Override
  public void close() throws IOException {
    lock.release();
    lockFile.close();
  }
}
