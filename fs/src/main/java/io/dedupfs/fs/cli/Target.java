package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where an administrative command acts: a store, and a path inside it relative to its root ("" for
 * the root). Given a path inside a mounted dedupfs, the store is the mount's; given {@code
 * --store}, the path is taken as relative to the store's root; given neither, the current
 * directory.
 */
record Target(Path store, String path) {

  static Target of(Path path, Path store) throws IOException {
    if (store != null) {
      Path s = store.toAbsolutePath().normalize();
      if (!Datastore.isStore(s)) {
        throw new Main.UsageException(store + " is not a dedupfs store");
      }
      return new Target(s, path == null ? "" : relative(path.toString()));
    }
    if (path == null) {
      Path cwd = Path.of("").toAbsolutePath();
      if (MountTable.dedupfsHolding(cwd.toRealPath()).isEmpty()) {
        throw new Main.UsageException(
            "the current directory, "
                + cwd
                + ", is not inside a dedupfs mount: "
                + "give a path inside one, or --store STORE");
      }
      return inMount(cwd);
    }
    return inMount(path);
  }

  private static Target inMount(Path path) throws IOException {
    if (!Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      throw new Main.UsageException(path + ": no such file or directory");
    }
    Path parent = path.toAbsolutePath().getParent();
    Path real =
        parent == null ? path.toRealPath() : parent.toRealPath().resolve(path.getFileName());
    if (Files.isDirectory(real)) {
      real = real.toRealPath();
    }
    MountTable.Mounted m =
        MountTable.dedupfsHolding(real)
            .orElseThrow(
                () ->
                    new Main.UsageException(
                        path
                            + " is not inside a dedupfs mount "
                            + "(for a store that is not mounted, give --store STORE)"));
    return new Target(Path.of(m.source()), m.mountpoint().relativize(real).toString());
  }

  /** A user's store-relative path without leading or trailing slashes. */
  static String relative(String p) {
    String s = p.replaceAll("/+", "/");
    s = s.startsWith("/") ? s.substring(1) : s;
    return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
  }
}
