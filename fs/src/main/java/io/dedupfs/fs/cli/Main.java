package io.dedupfs.fs.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code dedupfs}: create, mount and unmount datastores. Errors are one line on stderr, prefixed
 * with "dedupfs: ", and a nonzero exit: 2 for a usage mistake, 1 for anything else.
 */
@Command(
    name = "dedupfs",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "A deduplicating FUSE filesystem for VM datastores.",
    subcommands = {CreateCommand.class, MountCommand.class, UmountCommand.class, CloneCommand.class,
        SnapshotCommand.class, StatsCommand.class, MaintenanceCommands.Scrub.class, MaintenanceCommands.Fsck.class, MaintenanceCommands.Compact.class})
public final class Main implements Runnable {
  static final int EXIT_FAILURE = 1;
  static final int EXIT_USAGE = 2;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(new CommandLine(this), "missing command (create, mount or umount)");
  }

  public static void main(String[] args) {
    // One line per log record: the daemon's log is read by people and grep.
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %3$s: %5$s%6$s%n");
    }
    System.exit(commandLine().execute(args));
  }

  static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Main());
    cl.setParameterExceptionHandler((e, args) -> {
      PrintWriter err = e.getCommandLine().getErr();
      // picocli reports missing parameters before unknown options: name the unknown option instead
      String unknown = e instanceof CommandLine.MissingParameterException ? unknownOption(e.getCommandLine(), args) : null;
      String message = unknown != null ? "Unknown option: '" + unknown + "'" : e.getMessage();
      err.println("dedupfs: " + message + " (see '" + String.join(" ", "dedupfs", name(e.getCommandLine())).strip()
          + " --help')");
      return EXIT_USAGE;
    });
    cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
      commandLine.getErr().println("dedupfs: " + message(e));
      if (Boolean.getBoolean("dedupfs.debug")) {
        e.printStackTrace(commandLine.getErr());
      }
      return e instanceof UsageException || (e instanceof Admin.RemoteFailure r && r.usage) ? EXIT_USAGE : EXIT_FAILURE;
    });
    return cl;
  }

  /** The first argument that looks like an option but is none of {@code cl}'s, or null. */
  private static String unknownOption(CommandLine cl, String[] args) {
    for (String a : args) {
      if (a.equals("--")) {
        return null;
      }
      if (!a.startsWith("-") || a.length() < 2) {
        continue;
      }
      String name = a.startsWith("--") && a.contains("=") ? a.substring(0, a.indexOf('='))
          : a.startsWith("--") ? a : a.substring(0, 2); // -fo, -oro: the first letter decides
      if (cl.getCommandSpec().findOption(name) == null) {
        return a;
      }
    }
    return null;
  }

  private static String name(CommandLine cl) {
    return cl.getParent() == null ? "" : cl.getCommandName();
  }

  static String message(Throwable e) {
    String m = e.getMessage();
    if (e instanceof java.nio.file.NoSuchFileException) {
      return m + ": no such file or directory";
    }
    if (e instanceof java.nio.file.AccessDeniedException) {
      return m + ": permission denied";
    }
    return m == null ? e.toString() : m;
  }

  /** A mistake in what the user asked for, found after parsing (exit code 2). */
  static final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
      super(message);
    }
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Main.class.getPackage().getImplementationVersion();
      return new String[] {"dedupfs " + (v == null ? "(development build)" : v)};
    }
  }
}
