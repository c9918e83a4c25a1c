package io.dedupfs.engine;

import java.nio.file.Path;

/**
 * The child process of {@link CrashTest}'s reclaim case: opens a store, deletes its file "big" (one
 * queued decrement, which reclaim turns into one per block), prints "deleted", reclaims, and prints
 * "reclaimed". It is killed somewhere in between.
 *
 * <p>Arguments: store directory.
 */
final class CrashReclaimer {
  private CrashReclaimer() {}

  public static void main(String[] args) throws Exception {
    try (Datastore ds = Datastore.open(Path.of(args[0]), TestStores.config(4096))) {
      long big = ds.lookup(Datastore.ROOT, "big").ino();
      ds.unlink(Datastore.ROOT, "big");
      ds.forget(big);
      System.out.println("deleted");
      System.out.flush();
      ds.reclaim();
      System.out.println("reclaimed");
      System.out.flush();
      Thread.sleep(60_000);
    }
  }
}
