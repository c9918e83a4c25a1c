package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.engine.StoreException;
import io.dedupfs.rados.RadosPool;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

/** Checks of the paths a command is given, made before anything is created or mounted. */
final class StorePaths {
  private StorePaths() {}

  /**
   * {@code store} will be created: it must be missing or an empty directory, and the leaf size
   * valid.
   */
  static void requireCreatable(Path store, int leafSize) throws IOException {
    validLeafSize(leafSize);
    if (Datastore.isStore(store)) {
      throw new Main.UsageException(store + " is already a dedupfs store");
    }
    requireStoreOrEmpty(store, false);
  }

  /**
   * {@code store} is a store. A missing path or an empty directory is refused with a pointer to
   * {@code dedupfs create}: a mistyped path in an fstab line or a unit must not make a new, empty
   * datastore that VMs then write into.
   */
  static void requireStore(Path store) throws IOException {
    requireStoreOrEmpty(store, true);
  }

  /**
   * {@code store} is a store, or (unless {@code mustExist}) a missing or empty directory to create
   * one in.
   */
  private static void requireStoreOrEmpty(Path store, boolean mustExist) throws IOException {
    if (Datastore.isStore(store)) {
      return;
    }
    if (!Files.exists(store)) {
      Path parent = store.toAbsolutePath().getParent();
      if (parent != null && Files.exists(parent) && !Files.isDirectory(parent)) {
        throw new Main.UsageException(store + ": " + parent + " is not a directory");
      }
      if (mustExist) {
        throw new Main.UsageException(
            store + ": no such store (create one with 'dedupfs create " + store + "')");
      }
      return;
    }
    if (!Files.isDirectory(store)) {
      throw new Main.UsageException(store + " is not a directory (a store is a directory)");
    }
    if (!isEmpty(store)) {
      throw new Main.UsageException(
          store
              + " is not a dedupfs store and not empty; "
              + "give a dedupfs store, or a missing or empty directory to create one in");
    }
    if (mustExist) {
      throw new Main.UsageException(
          store
              + " is an empty directory, not a store (create one in it with 'dedupfs create "
              + store
              + "')");
    }
  }

  /** The mountpoint must be an existing, empty directory that nothing is mounted on. */
  static Path requireMountpoint(Path mountpoint) throws IOException {
    Path real;
    try {
      real = MountTable.realPath(mountpoint);
    } catch (NoSuchFileException e) {
      throw new Main.UsageException(
          "mountpoint " + mountpoint + " does not exist (create it with mkdir)");
    }
    var mounted = MountTable.at(real);
    if (mounted.isPresent() && !MountTable.answers(real)) {
      throw new Main.UsageException(
          "mountpoint "
              + real
              + " is still mounted ("
              + mounted.get().fstype()
              + " from "
              + mounted.get().source()
              + ") but its daemon is gone; unmount it first ("
              + (mounted.get().isDedupfs() ? "dedupfs umount " : "umount ")
              + real
              + ")");
    }
    if (!Files.isDirectory(real)) {
      throw new Main.UsageException("mountpoint " + mountpoint + " is not a directory");
    }
    if (mounted.isPresent()) {
      throw new Main.UsageException(
          "mountpoint "
              + real
              + " is already mounted ("
              + mounted.get().fstype()
              + " from "
              + mounted.get().source()
              + ")");
    }
    if (!isEmpty(real)) {
      throw new Main.UsageException("mountpoint " + real + " is not empty");
    }
    return real;
  }

  /**
   * The configuration every command opens stores with: the defaults, and the block pools the
   * command knows ({@code rados:POOL}), so that a store whose blocks are in a pool opens.
   */
  static DatastoreConfig config() {
    return config(RadosPool.DEFAULT_TIMEOUT);
  }

  /** {@link #config()} whose pools time out after {@code poolTimeout} (mount's pool_timeout). */
  static DatastoreConfig config(Duration poolTimeout) {
    return DatastoreConfig.defaults().withPools(where -> openPool(where, poolTimeout));
  }

  private static BlockPool openPool(BlockPool.Location where, Duration timeout) throws IOException {
    if (where.name().startsWith(RadosPool.SCHEME)) {
      return RadosPool.open(where, timeout);
    }
    throw new StoreException("unknown kind of block pool: " + where.name());
  }

  /**
   * The file {@code option} names for an intent log, absolute, checked: new, in a directory that
   * exists.
   */
  static Path newIntentLog(Path file, String option) {
    Path f = file.toAbsolutePath().normalize();
    if (Files.exists(f, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      throw new Main.UsageException(option + ": " + f + " exists; the log goes into a new file");
    }
    if (f.getParent() == null || !Files.isDirectory(f.getParent())) {
      throw new Main.UsageException(option + ": " + f.getParent() + " is not a directory");
    }
    return f;
  }

  static void validLeafSize(int leafSize) {
    try {
      DatastoreConfig.defaults().withLeafSize(leafSize);
    } catch (IllegalArgumentException e) {
      throw new Main.UsageException(e.getMessage());
    }
  }

  private static boolean isEmpty(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.findAny().isEmpty();
    }
  }
}
