package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
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
 * {@code dedupfs send} and {@code dedupfs receive}: a snapshot copied to another store as a stream
 * (a pipe, a file, ssh), whole, incremental from an older snapshot the receiver holds, or two-way
 * (the receiver says which blocks it holds). Mounted stores or not, as the other administrative
 * commands.
 */
final class ReplicationCommands {
  private ReplicationCommands() {}

  /** Whether file descriptor {@code fd} (0, 1, 2) is a terminal. */
  static boolean isTerminal(int fd) {
    try {
      String t = Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
      return t.startsWith("/dev/pts/") || t.startsWith("/dev/tty");
    } catch (IOException | UnsupportedOperationException e) {
      return false;
    }
  }

  /** Progress on stderr, redrawn, when stderr is a terminal; else none (the summary says it). */
  static ProgressRenderer progress(PrintWriter err) {
    return isTerminal(2) && !"dumb".equals(System.getenv("TERM"))
        ? new ProgressRenderer(err, ProgressRenderer.Mode.TERMINAL, false, System::nanoTime)
        : null;
  }

  @Command(
      name = "send",
      mixinStandardHelpOptions = true,
      description = {
        "Write snapshot SNAPSHOT as a stream to stdout, for `dedupfs receive` on another store:",
        "  dedupfs send nightly | ssh backup dedupfs receive /var/lib/dedupfs/mnt",
        "  dedupfs send nightly > nightly.stream; dedupfs receive < nightly.stream",
        "With --from OLDER (a snapshot the receiver holds): only what changed since OLDER.",
        "With --to 'COMMAND': runs COMMAND (e.g. 'ssh backup dedupfs receive --serve') and asks it",
        "which blocks it holds first, so only blocks it lacks cross, even in a first send.",
        "Stores that keep their blocks in the same pool (rados:POOL of one cluster): --to finds",
        "out, and --by-reference says it for a one-way stream; the stream then names the blocks",
        "(no block data crosses) and the receiver takes its own references to them in the pool.",
        "Progress on a terminal, and a summary, go to stderr."
      })
  static final class Send implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "SNAPSHOT")
    String name;

    @Parameters(
        index = "1",
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @Option(
        names = "--from",
        paramLabel = "OLDER",
        description = "Send only the changes since snapshot OLDER, which the receiver holds.")
    String from;

    @Option(
        names = "--resume",
        paramLabel = "TOKEN",
        description = "Continue an interrupted receive: TOKEN is what the receiver printed.")
    String resume;

    @Option(
        names = "--to",
        paramLabel = "COMMAND",
        description =
            "Two-way: run COMMAND (a shell command, e.g. 'ssh backup dedupfs receive --serve'),"
                + " send it the stream and leave out the blocks it holds.")
    String to;

    @Option(
        names = "--by-reference",
        description =
            "Name the blocks instead of sending them: for a receiver whose store keeps its blocks"
                + " in the same pool as this one (it refuses the stream otherwise).")
    boolean byReference;

    @picocli.CommandLine.Mixin
    SnapshotCommand.StoreOption where = new SnapshotCommand.StoreOption();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      if (byReference && resume != null) {
        throw new Main.UsageException(
            "--resume is for streams that carry blocks; send by reference again whole");
      }
      if (to != null && resume != null) {
        throw new Main.UsageException(
            "--resume is for one-way streams; a two-way send (--to) resumes by itself");
      }
      if (to == null && isTerminal(1)) {
        throw new Main.UsageException(
            "the stream would go to a terminal: redirect it to a file or a pipe"
                + " (dedupfs send NAME > FILE, or | dedupfs receive ...)");
      }
      Target t = Target.of(path, where.store);
      PrintWriter err = spec.commandLine().getErr();
      Map<String, String> params = new LinkedHashMap<>();
      params.put("name", name);
      if (from != null) {
        params.put("from", from);
      }
      if (resume != null) {
        params.put("resume", resume);
      }
      if (byReference) {
        params.put("by-reference", "true");
      }
      if (to == null) {
        OutputStream stdout = new BufferedOutputStream(new FileOutputStream(FileDescriptor.out));
        int code =
            Admin.execute(
                t.store(), "send", params, true, err, progress(err), new Admin.Data(null, stdout));
        stdout.flush();
        return code;
      }
      params.put("two-way", "true");
      Process receiver =
          new ProcessBuilder("sh", "-c", to).redirectError(ProcessBuilder.Redirect.INHERIT).start();
      try {
        OutputStream toReceiver = new BufferedOutputStream(receiver.getOutputStream(), 1 << 16);
        int code =
            Admin.execute(
                t.store(),
                "send",
                params,
                true,
                err,
                progress(err),
                new Admin.Data(receiver.getInputStream(), toReceiver));
        toReceiver.close();
        int rc = receiver.waitFor();
        if (rc != 0) {
          throw new IOException("the receiver (" + to + ") exited with code " + rc);
        }
        return code;
      } finally {
        receiver.destroy();
      }
    }
  }

  @Command(
      name = "diff",
      mixinStandardHelpOptions = true,
      description = {
        "List what changed from snapshot OLDER to snapshot NEWER (NEWER '-': to the live tree",
        "OLDER was taken of): each path added, removed, modified (for a file, the exact byte",
        "ranges that differ, first-last) or with other attributes (mode, owner, times, xattrs).",
        "Paths are relative to the snapshot's top. Unchanged parts of files are skipped by",
        "their hashes: the time grows with what changed, not with the files' sizes."
      })
  static final class Diff implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "OLDER")
    String older;

    @Parameters(index = "1", paramLabel = "NEWER")
    String newer;

    @Parameters(
        index = "2",
        arity = "0..1",
        paramLabel = "MOUNTPOINT",
        description = "Any path in the mount (default: the current directory).")
    Path path;

    @picocli.CommandLine.Mixin
    SnapshotCommand.StoreOption where = new SnapshotCommand.StoreOption();

    @picocli.CommandLine.Mixin OutputOptions output = new OutputOptions();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Target t = Target.of(path, where.store);
      Map<String, String> params = output.addTo(new LinkedHashMap<>());
      params.put("older", older);
      if (!newer.equals("-")) {
        params.put("newer", newer);
      }
      return Admin.execute(
          t.store(), "diff", params, newer.equals("-") ? false : true, spec.commandLine().getOut());
    }
  }

  @Command(
      name = "receive",
      mixinStandardHelpOptions = true,
      description = {
        "Read a stream of `dedupfs send` from stdin and create its snapshot in this store, under",
        ".snapshots/NAME (browsable, restorable). Nothing of it is visible until all of it has",
        "arrived intact: a damaged or cut stream is refused, the blocks that arrived are kept",
        "for `dedupfs send --resume TOKEN` (the message names TOKEN) until --abort TOKEN."
      })
  static final class Receive implements Callable<Integer> {
    @Parameters(
        arity = "0..1",
        paramLabel = "STORE|MOUNTPOINT",
        description =
            "A store, mounted or not, or any path in a mount (default: the current directory).")
    Path path;

    @Option(
        names = "--serve",
        description =
            "The receiving end of `dedupfs send --to`: answer which blocks this store holds, then receive.")
    boolean serve;

    @Option(names = "--list", description = "List the interrupted receives and their tokens.")
    boolean list;

    @Option(
        names = "--abort",
        paramLabel = "TOKEN",
        description = "Drop the blocks an interrupted receive kept.")
    String abort;

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Path store =
          path != null && Datastore.isStore(path)
              ? path.toAbsolutePath().normalize()
              : Target.of(path, null).store();
      PrintWriter out = spec.commandLine().getOut();
      PrintWriter err = spec.commandLine().getErr();
      if (list) {
        return Admin.execute(store, "receive.list", Map.of(), true, out);
      }
      if (abort != null) {
        return Admin.execute(store, "receive.abort", Map.of("token", abort), false, out);
      }
      java.io.InputStream stdin =
          new BufferedInputStream(new FileInputStream(FileDescriptor.in), 1 << 16);
      if (serve) {
        OutputStream stdout = new BufferedOutputStream(new FileOutputStream(FileDescriptor.out));
        int code =
            Admin.execute(
                store, "receive.serve", Map.of(), false, err, null, new Admin.Data(stdin, stdout));
        stdout.flush();
        return code;
      }
      if (isTerminal(0)) {
        throw new Main.UsageException(
            "stdin is a terminal: give the stream on stdin (dedupfs send ... | dedupfs receive,"
                + " or dedupfs receive < FILE)");
      }
      return Admin.execute(
          store, "receive", Map.of(), false, out, progress(err), new Admin.Data(stdin, null));
    }
  }
}
