package io.dedupfs.fs.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs}: create, mount and unmount datastores. Errors are one line on stderr, prefixed
 * with "dedupfs: ", and a nonzero exit: 2 for a usage mistake, 1 for anything else.
 */
@Command(
    name = "dedupfs",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "A deduplicating FUSE filesystem for VM datastores.",
    subcommands = {
      CreateCommand.class,
      MountCommand.class,
      UmountCommand.class,
      CloneCommand.class,
      SnapshotCommand.class,
      StatsCommand.class,
      MaintenanceCommands.Scrub.class,
      MaintenanceCommands.Fsck.class,
      MaintenanceCommands.Compact.class,
      MaintenanceCommands.Reconcile.class,
      PoolCommands.Destroy.class,
      PoolCommands.Pool.class,
      ReplicationCommands.Send.class,
      ReplicationCommands.Receive.class,
      ReplicationCommands.Diff.class,
      CompressionCommand.class,
      MoveIntentLogCommand.class,
      CommandLine.HelpCommand.class,
      ManPage.class,
      AutoComplete.GenerateCompletion.class
    })
public final class Main implements Runnable {
  static final int EXIT_FAILURE = 1;
  static final int EXIT_USAGE = 2;

  @Spec CommandSpec spec;

  @Override
  public void run() {
    List<String> names =
        spec.subcommands().entrySet().stream()
            .filter(e -> !e.getValue().getCommandSpec().usageMessage().hidden())
            .map(Map.Entry::getKey)
            .toList();
    throw new CommandLine.ParameterException(
        spec.commandLine(), "missing command: one of " + String.join(", ", names));
  }

  public static void main(String[] args) {
    // One line per log record: the daemon's log is read by people and grep.
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty(
          "java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %3$s: %5$s%6$s%n");
    }
    System.exit(commandLine().execute(args));
  }

  static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new Main());
    cl.setParameterExceptionHandler(
        (e, args) -> {
          PrintWriter err = e.getCommandLine().getErr();
          // picocli reports missing parameters before unknown options: name the unknown option
          // instead
          String unknown =
              e instanceof CommandLine.MissingParameterException
                  ? unknownOption(e.getCommandLine(), args)
                  : null;
          String message = unknown != null ? "Unknown option: '" + unknown + "'" : e.getMessage();
          if (e instanceof CommandLine.UnmatchedArgumentException u
              && !u.getSuggestions().isEmpty()) {
            message +=
                " (did you mean "
                    + u.getSuggestions().stream()
                        .limit(3)
                        .map(x -> "'" + x + "'")
                        .collect(java.util.stream.Collectors.joining(" or "))
                    + "?)";
          }
          err.println(
              "dedupfs: "
                  + message
                  + " (see '"
                  + e.getCommandLine().getCommandSpec().qualifiedName()
                  + " --help')");
          return EXIT_USAGE;
        });
    cl.setExecutionExceptionHandler(
        (e, commandLine, parseResult) -> {
          commandLine.getErr().println("dedupfs: " + message(e));
          if (Boolean.getBoolean("dedupfs.debug")) {
            e.printStackTrace(commandLine.getErr());
          }
          return e instanceof UsageException || (e instanceof Admin.RemoteFailure r && r.usage)
              ? EXIT_USAGE
              : EXIT_FAILURE;
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
      String name =
          a.startsWith("--") && a.contains("=")
              ? a.substring(0, a.indexOf('='))
              : a.startsWith("--") ? a : a.substring(0, 2); // -fo, -oro: the first letter decides
      if (cl.getCommandSpec().findOption(name) == null) {
        return a;
      }
    }
    return null;
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

  /**
   * "dedupfs 0.1.0-SNAPSHOT (commit 0123456789)", from version.properties, which the build writes.
   */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() throws IOException {
      Properties p = new Properties();
      try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
        if (in != null) {
          p.load(in);
        }
      }
      String version = known(p.getProperty("version"));
      String commit = known(p.getProperty("commit"));
      String dirty = "true".equals(p.getProperty("dirty")) ? ", with uncommitted changes" : "";
      return new String[] {
        "dedupfs "
            + (version == null ? "(unknown version)" : version)
            + " (commit "
            + (commit == null ? "unknown" : commit)
            + dirty
            + ")",
        "Java "
            + Runtime.version()
            + ", "
            + System.getProperty("os.name")
            + " "
            + System.getProperty("os.arch")
      };
    }

    /** Null for a value the build did not fill in (left as ${...}) or left empty. */
    private static String known(String v) {
      return v == null || v.isBlank() || v.startsWith("${") ? null : v.strip();
    }
  }
}
