package io.dedupfs.fs.cli;

import io.dedupfs.fs.Connection;
import io.dedupfs.fs.bench.NullFs;
import io.dedupfs.fs.fuse.FuseSession;
import io.dedupfs.fs.fuse.MountOptions;
import io.dedupfs.fs.fuse.Posix;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code dedupfs nullfs [-f] [--writeback-cache] MOUNTPOINT}: mounts {@link NullFs}, the do-nothing
 * filesystem on dedupfs's FUSE binding, for benchmark ceilings (benchmarks/fuse-bench.sh). Hidden:
 * not for administrators. It always serves in the foreground ({@code -f} is accepted for symmetry
 * with {@code dedupfs mount}) until the mountpoint is unmounted ({@code umount MOUNTPOINT}) or the
 * process gets SIGINT/SIGTERM. The mount type is {@code fuse.nullfs}.
 */
@Command(name = "nullfs", hidden = true, mixinStandardHelpOptions = true, sortOptions = false,
    description = {"Mount a do-nothing filesystem on MOUNTPOINT (benchmarks only): writes are discarded,",
        "reads return zeros. Serves in the foreground until unmounted."})
final class NullFsCommand implements Callable<Integer> {
  @Option(names = {"-f", "--foreground"}, description = "Serve in the foreground (always the case).")
  boolean foreground;

  @Option(names = "--writeback-cache", description = "Let the kernel cache writes, as dedupfs's option does.")
  boolean writebackCache;

  @Option(names = "--allow-other", description = "Let users other than the mounting one use the mount.")
  boolean allowOther;

  @Option(names = "--threads", paramLabel = "N", description = "Requests served at once (default: ${DEFAULT-VALUE}, as dedupfs).")
  int threads = 8;

  @Option(names = "--files", paramLabel = "N", description = "Files the root starts with: file0... (default: ${DEFAULT-VALUE}).")
  int files = 4;

  @Option(names = "--file-size", paramLabel = "SIZE", converter = LongSize.class,
      description = "Size of each of those files, e.g. 1G (default: 1G).")
  long fileSize = 1L << 30;

  @Parameters(paramLabel = "MOUNTPOINT", description = "An empty directory.")
  Path mountpoint;

  @Override
  public Integer call() throws Exception {
    if (threads < 1 || threads > 256) {
      throw new Main.UsageException("threads must be from 1 to 256, not " + threads);
    }
    if (files < 0) {
      throw new Main.UsageException("--files must not be negative");
    }
    Path mnt = StorePaths.requireMountpoint(mountpoint);
    MountOptions options = MountOptions.builder()
        .fsname("nullfs")
        .subtype("nullfs")
        .allowOther(allowOther)
        .writebackCache(writebackCache)
        .threads(threads)
        .build();
    int uid = Posix.euid();
    NullFs fs = new NullFs(files, fileSize, uid, uid); // gid: Posix has no getegid; benchmarks run as root
    FuseSession session = FuseSession.mount(mnt, options, fs, NullFs.errorMapper());
    Connection.tune(session);
    Runtime.getRuntime().addShutdownHook(new Thread(session::close, "nullfs-shutdown"));
    System.err.println("dedupfs nullfs: serving on " + mnt + " (pid " + ProcessHandle.current().pid()
        + (writebackCache ? ", writeback cache" : "") + ")");
    session.awaitUnmounted();
    session.close();
    return 0;
  }

  /** Sizes as {@link Sizes} parses them, but as a long (files of several GiB). */
  static final class LongSize implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
      return Sizes.parse(value);
    }
  }
}
