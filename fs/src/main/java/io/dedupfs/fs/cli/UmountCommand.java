package io.dedupfs.fs.cli;

import io.dedupfs.fs.fuse.Posix;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code dedupfs umount}: unmounts, then waits until the daemon has flushed and closed the store,
 * so that the store can be mounted again (or copied) as soon as this returns.
 */
@Command(
    name = "umount",
    mixinStandardHelpOptions = true,
    description = "Unmount a dedupfs mount and wait until its store is flushed and closed.")
final class UmountCommand implements Callable<Integer> {
  @Option(
      names = "--timeout",
      paramLabel = "SECONDS",
      description =
          "How long to wait for the daemon to close the store (default: ${DEFAULT-VALUE}).")
  int timeoutSeconds = 600;

  @Parameters(paramLabel = "MOUNTPOINT")
  Path mountpoint;

  @Override
  public Integer call() throws IOException, InterruptedException {
    Path real;
    try {
      real = MountTable.realPath(mountpoint); // also a mount whose daemon died (kill -9, OOM)
    } catch (NoSuchFileException e) {
      throw new Main.UsageException(mountpoint + ": no such directory");
    }
    MountTable.Mounted m =
        MountTable.at(real).orElseThrow(() -> new Main.UsageException(real + " is not mounted"));
    if (!m.isDedupfs()) {
      throw new Main.UsageException(real + " is not a dedupfs mount (it is " + m.fstype() + ")");
    }
    unmount(real);
    Path lock = Path.of(m.source()).resolve("dedupfs.lock");
    if (Files.exists(lock) && !awaitUnlocked(lock)) {
      throw new IOException(
          "unmounted "
              + real
              + ", but the daemon still holds "
              + m.source()
              + " after "
              + timeoutSeconds
              + " s (still flushing?)");
    }
    return 0;
  }

  private static void unmount(Path mnt) throws IOException, InterruptedException {
    if (Posix.euid() == 0) {
      try {
        Posix.umount(mnt);
      } catch (IOException e) {
        throw new IOException("cannot unmount " + mnt + ": " + e.getMessage());
      }
      return;
    }
    Process p = new ProcessBuilder("fusermount3", "-u", mnt.toString()).inheritIO().start();
    if (p.waitFor() != 0) {
      throw new IOException("fusermount3 -u " + mnt + " failed");
    }
  }

  /**
   * Waits until no process holds the store's lock (the daemon releases it after closing the store).
   */
  private boolean awaitUnlocked(Path lock) throws IOException, InterruptedException {
    long deadline = System.nanoTime() + timeoutSeconds * 1_000_000_000L;
    try (FileChannel ch = FileChannel.open(lock, StandardOpenOption.WRITE)) {
      while (true) {
        FileLock l = ch.tryLock();
        if (l != null) {
          l.release();
          return true;
        }
        if (System.nanoTime() > deadline) {
          return false;
        }
        Thread.sleep(50);
      }
    }
  }
}
