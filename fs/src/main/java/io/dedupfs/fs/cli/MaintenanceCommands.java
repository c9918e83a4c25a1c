package io.dedupfs.fs.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs scrub}, {@code fsck}, {@code compact} and {@code reconcile}: whole-store checks
 * and upkeep, mounted or not.
 */
final class MaintenanceCommands {
  private MaintenanceCommands() {}

  /** The part the three share: where, and which operation. */
  abstract static class StoreWide implements Callable<Integer> {
    @Parameters(
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @Option(names = "--store", paramLabel = "STORE", description = "A store (mounted or not).")
    Path store;

    @picocli.CommandLine.Mixin OutputOptions output = new OutputOptions();

    @Spec CommandSpec spec;

    abstract String operation();

    abstract boolean readOnly();

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, store);
      java.io.PrintWriter out = spec.commandLine().getOut();
      return Admin.execute(
          t.store(),
          operation(),
          output.addTo(new java.util.LinkedHashMap<>()),
          readOnly(),
          out,
          output.progress(out));
    }
  }

  @Command(
      name = "scrub",
      mixinStandardHelpOptions = true,
      description = {
        "Read every block in use, check it against its hash, and name each damaged file and offset.",
        "Exit code 1 when damage was found."
      })
  static final class Scrub extends StoreWide {
    @Override
    String operation() {
      return "scrub";
    }

    @Override
    boolean readOnly() {
      return true;
    }
  }

  @Command(
      name = "fsck",
      mixinStandardHelpOptions = true,
      description = {
        "Check that every reference resolves and every count is right.",
        "Exit code 1 when a problem was found."
      })
  static final class Fsck extends StoreWide {
    @Override
    String operation() {
      return "fsck";
    }

    @Override
    boolean readOnly() {
      return false; // applies the queued reclaim first
    }
  }

  @Command(
      name = "compact",
      mixinStandardHelpOptions = true,
      description =
          "Free what nothing uses any more and give the store's unused pages back to the disk.")
  static final class Compact extends StoreWide {
    @Override
    String operation() {
      return "compact";
    }

    @Override
    boolean readOnly() {
      return false;
    }
  }

  @Command(
      name = "reconcile",
      mixinStandardHelpOptions = true,
      description = {
        "For a store whose blocks are in a pool: release the pool references it took but never"
            + " recorded (a daemon killed in the middle of writes). Lists the whole pool, one"
            + " round trip per object; mounted (through its daemon) or not.",
        "On a store whose blocks are in its own LMDB there is nothing to reconcile (exit code 0)."
      })
  static final class Reconcile implements Callable<Integer> {
    @Parameters(
        index = "0",
        paramLabel = "STORE",
        description = "The store's directory (mounted or not).")
    Path store;

    @picocli.CommandLine.Mixin OutputOptions output = new OutputOptions();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(null, store);
      java.io.PrintWriter out = spec.commandLine().getOut();
      return Admin.execute(
          t.store(),
          "reconcile",
          output.addTo(new java.util.LinkedHashMap<>()),
          false,
          out,
          output.progress(out));
    }
  }
}
