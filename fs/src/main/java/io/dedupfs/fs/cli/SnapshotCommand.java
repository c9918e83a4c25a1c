package io.dedupfs.fs.cli;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs snapshot}: point-in-time copies of a file, a directory or the whole datastore,
 * browsable read-only under {@code .snapshots/NAME/} in the mount. Taking one costs time in
 * proportion to the number of files, never to their size.
 */
@Command(
    name = "snapshot",
    mixinStandardHelpOptions = true,
    description =
        "Create, list, delete and restore snapshots (read-only under .snapshots/NAME in the mount).",
    subcommands = {
      SnapshotCommand.Create.class,
      SnapshotCommand.ListSnapshots.class,
      SnapshotCommand.Delete.class,
      SnapshotCommand.Restore.class
    })
final class SnapshotCommand implements Runnable {
  @Spec CommandSpec spec;

  @Override
  public void run() {
    throw new picocli.CommandLine.ParameterException(
        spec.commandLine(), "missing subcommand (create, list, delete or restore)");
  }

  /** Options shared by the subcommands that act on a whole store. */
  static final class StoreOption {
    @Option(
        names = "--store",
        paramLabel = "STORE",
        description = "A store (mounted or not) instead of a path in a mount.")
    Path store;
  }

  @Command(
      name = "create",
      mixinStandardHelpOptions = true,
      description =
          "Snapshot PATH (a file or directory in a mount; the mountpoint for the whole datastore) as NAME.")
  static final class Create implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Parameters(
        index = "1",
        arity = "0..1",
        paramLabel = "PATH",
        description =
            "What to snapshot (default: the current directory); with --store, relative to the store's root (default: everything).")
    Path path;

    @picocli.CommandLine.Mixin StoreOption where = new StoreOption();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, where.store);
      return Admin.execute(
          t.store(),
          "snapshot.create",
          Map.of("name", name, "path", t.path()),
          false,
          spec.commandLine().getOut());
    }
  }

  @Command(
      name = "list",
      mixinStandardHelpOptions = true,
      description =
          "List the snapshots of a datastore: their logical bytes, the bytes stored for them and the "
              + "bytes only they hold (EXCLUSIVE: what deleting one frees).")
  static final class ListSnapshots implements Callable<Integer> {
    @Parameters(
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @picocli.CommandLine.Mixin StoreOption where = new StoreOption();

    @picocli.CommandLine.Mixin OutputOptions.Tables output = new OutputOptions.Tables();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, where.store);
      return Admin.execute(
          t.store(),
          "snapshot.list",
          output.addTo(new LinkedHashMap<>()),
          true,
          spec.commandLine().getOut());
    }
  }

  @Command(
      name = "delete",
      mixinStandardHelpOptions = true,
      description = "Delete snapshot NAME; the space only it used comes back.")
  static final class Delete implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Parameters(
        index = "1",
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @picocli.CommandLine.Mixin StoreOption where = new StoreOption();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, where.store);
      return Admin.execute(
          t.store(), "snapshot.delete", Map.of("name", name), false, spec.commandLine().getOut());
    }
  }

  @Command(
      name = "restore",
      mixinStandardHelpOptions = true,
      description = {
        "Bring back snapshot NAME, or one file or directory of it (--path), where it came from",
        "or to --to. Files that exist are replaced in place (open files see the restored bytes);",
        "files and directories the snapshot lacks (created since) are deleted.",
        "",
        "Prints each path it changed, one a line: 'replaced PATH' (given the snapshot's contents and",
        "attributes), 'created PATH' (brought back from the snapshot), 'removed PATH' (the snapshot",
        "lacks it), 'attributes PATH' (a directory given the snapshot's mode, owner, times); then a",
        "summary. --dry-run prints what it would change, and changes nothing."
      })
  static final class Restore implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Parameters(
        index = "1",
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @Option(
        names = "--path",
        paramLabel = "PATH-IN-SNAPSHOT",
        description = "A file or directory inside the snapshot (default: all of it).")
    String inSnapshot = "";

    @Option(
        names = "--to",
        paramLabel = "TARGET",
        description =
            "Where to restore it: a path in the mount (with --store: relative to the store's root).")
    Path to;

    @Option(
        names = {"-n", "--dry-run"},
        description =
            "List what the restore would change (the very same restore, whose transaction is abandoned) and change nothing.")
    boolean dryRun;

    @picocli.CommandLine.Mixin OutputOptions output = new OutputOptions();

    @picocli.CommandLine.Mixin StoreOption where = new StoreOption();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, where.store);
      Map<String, String> params = new LinkedHashMap<>();
      params.put("name", name);
      params.put("path", Target.relative(inSnapshot));
      if (to != null) {
        params.put("to", targetPath(t));
        params.put("to.shown", to.toString());
      }
      return Admin.execute(
          t.store(),
          dryRun ? "snapshot.restore.dryrun" : "snapshot.restore",
          output.addTo(params),
          false,
          spec.commandLine().getOut());
    }

    /** --to as a path relative to the store's root: in the same mount, or as given with --store. */
    private String targetPath(Target t) throws java.io.IOException {
      if (where.store != null) {
        return Target.relative(to.toString());
      }
      Path parent = to.toAbsolutePath().getParent();
      if (parent == null || !java.nio.file.Files.isDirectory(parent)) {
        throw new Main.UsageException("--to " + to + ": its directory does not exist");
      }
      Target dest = Target.of(parent, null);
      if (!dest.store().equals(t.store())) {
        throw new Main.UsageException("--to " + to + " is not in the same datastore");
      }
      return Target.relative(dest.path() + "/" + to.getFileName());
    }
  }
}
