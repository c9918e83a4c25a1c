package io.dedupfs.bench.fuse;

import io.dedupfs.fs.Connection;
import io.dedupfs.fs.fuse.FuseSession;
import io.dedupfs.fs.fuse.MountOptions;
import io.dedupfs.fs.fuse.Posix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code benchmarks/nullfs [-f] [--writeback-cache] MOUNTPOINT}: mounts {@link NullFs}, the
 * do-nothing filesystem on dedupfs's FUSE binding, for benchmark ceilings
 * (benchmarks/fuse-bench.sh). Not part of the product: it lives in the benchmarks module and runs
 * with dedupfs's jar on the class path first ({@code java -cp
 * fs/target/dedupfs.jar:benchmarks/target/benchmarks.jar io.dedupfs.bench.fuse.NullFsMain ...},
 * which the {@code benchmarks/nullfs} script does), so that it measures the very binding the
 * product jar has. It always serves in the foreground ({@code -f} is accepted for symmetry with
 * {@code dedupfs mount}) until the mountpoint is unmounted ({@code umount MOUNTPOINT}) or the
 * process gets SIGINT/SIGTERM. The mount type is {@code fuse.nullfs}.
 */
@Command(
    name = "nullfs",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Mount a do-nothing filesystem on MOUNTPOINT (benchmarks only): writes are discarded,",
      "reads return zeros. Serves in the foreground until unmounted."
    })
public final class NullFsMain implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = {"-f", "--foreground"},
      description = "Serve in the foreground (always the case).")
  boolean foreground;

  @Option(
      names = "--writeback-cache",
      description = "Let the kernel cache writes, as dedupfs's option does.")
  boolean writebackCache;

  @Option(
      names = "--io-uring",
      negatable = true,
      defaultValue = "true",
      fallbackValue = "true",
      description =
          "Take requests through io_uring where the kernel offers it (default, as dedupfs).")
  boolean ioUring;

  @Option(
      names = "--allow-other",
      description = "Let users other than the mounting one use the mount.")
  boolean allowOther;

  @Option(
      names = "--threads",
      paramLabel = "N",
      description = "Requests served at once (default: ${DEFAULT-VALUE}, as dedupfs).")
  int threads = 8;

  @Option(
      names = "--files",
      paramLabel = "N",
      description = "Files the root starts with: file0... (default: ${DEFAULT-VALUE}).")
  int files = 4;

  @Option(
      names = "--file-size",
      paramLabel = "SIZE",
      converter = Size.class,
      description = "Size of each of those files, e.g. 1G (default: 1G).")
  long fileSize = 1L << 30;

  @Parameters(paramLabel = "MOUNTPOINT", description = "An empty directory.")
  Path mountpoint;

  public static void main(String[] args) {
    // One line per log record, as dedupfs logs.
    if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty(
          "java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %3$s: %5$s%6$s%n");
    }
    CommandLine cl = new CommandLine(new NullFsMain());
    cl.setParameterExceptionHandler(
        (e, args2) -> {
          e.getCommandLine()
              .getErr()
              .println("nullfs: " + e.getMessage() + " (see 'nullfs --help')");
          return CommandLine.ExitCode.USAGE;
        });
    cl.setExecutionExceptionHandler(
        (e, commandLine, parseResult) -> {
          commandLine
              .getErr()
              .println("nullfs: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
          return CommandLine.ExitCode.SOFTWARE;
        });
    System.exit(cl.execute(args));
  }

  @Override
  public Integer call() throws Exception {
    if (threads < 1 || threads > 256) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "threads must be from 1 to 256, not " + threads);
    }
    if (files < 0) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--files must not be negative");
    }
    Path mnt = requireEmptyDirectory(mountpoint);
    MountOptions options =
        MountOptions.builder()
            .fsname("nullfs")
            .subtype("nullfs")
            .allowOther(allowOther)
            .writebackCache(writebackCache)
            .ioUring(ioUring)
            .threads(threads)
            .build();
    int uid = Posix.euid();
    NullFs fs =
        new NullFs(files, fileSize, uid, uid); // gid: Posix has no getegid; benchmarks run as root
    FuseSession session = FuseSession.mount(mnt, options, fs);
    Connection.tune(session);
    Runtime.getRuntime().addShutdownHook(new Thread(session::close, "nullfs-shutdown"));
    System.err.println(
        "nullfs: serving on "
            + mnt
            + " (pid "
            + ProcessHandle.current().pid()
            + (writebackCache ? ", writeback cache" : "")
            + ")");
    session.awaitUnmounted();
    session.close();
    return 0;
  }

  /**
   * The real path of {@code dir}, which must be an empty directory (so not a mountpoint in use).
   */
  private Path requireEmptyDirectory(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "mountpoint " + dir + " is not a directory");
    }
    Path real = dir.toRealPath();
    try (Stream<Path> entries = Files.list(real)) {
      if (entries.findAny().isPresent()) {
        throw new CommandLine.ParameterException(
            spec.commandLine(), "mountpoint " + real + " is not empty");
      }
    }
    return real;
  }

  /**
   * Sizes such as {@code 8M}, {@code 1G}, {@code 64KiB} or plain bytes (binary units), as dedupfs
   * parses them.
   */
  static final class Size implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
      String v = value.trim().toUpperCase(Locale.ROOT).replaceFirst("I?B$", "");
      int shift =
          v.isEmpty()
              ? 0
              : switch (v.charAt(v.length() - 1)) {
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                default -> 0;
              };
      try {
        long n = Long.parseLong(shift == 0 ? v : v.substring(0, v.length() - 1));
        if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
          throw new NumberFormatException();
        }
        return n << shift;
      } catch (NumberFormatException e) {
        throw new CommandLine.TypeConversionException(
            "'" + value + "' is not a size (e.g. 8M, 1G)");
      }
    }
  }
}
