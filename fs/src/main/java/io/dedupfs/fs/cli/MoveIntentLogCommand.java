package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * {@code dedupfs move-intent-log}: puts the intent log of a store that is not mounted on another
 * file system, or back into the store.
 */
@Command(
    name = "move-intent-log",
    mixinStandardHelpOptions = true,
    description = {
      "Move the intent log of STORE (not mounted) to FILE, a new file on another file system (a"
          + " fast device of its own, as ZFS's separate log device), and link STORE/intent.log"
          + " to it; without FILE, move it back into STORE. What the log holds moves with it."
          + " The store does not open while FILE is missing."
    })
final class MoveIntentLogCommand implements Callable<Integer> {
  @Parameters(index = "0", paramLabel = "STORE", description = "A store that is not mounted.")
  Path store;

  @Parameters(
      index = "1",
      arity = "0..1",
      paramLabel = "FILE",
      description = "Where the log goes (a new file; its directory must exist).")
  Path file;

  @Override
  public Integer call() throws IOException {
    StorePaths.requireStore(store);
    Path to = file == null ? null : StorePaths.newIntentLog(file, "FILE");
    Path now = Datastore.moveLog(store.toAbsolutePath(), to);
    System.out.println("dedupfs: the intent log of " + store.toAbsolutePath() + " is now " + now);
    return 0;
  }
}
