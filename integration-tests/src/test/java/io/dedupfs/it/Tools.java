package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Real commands for the mount tests: python3 for the system calls java.nio cannot make (renameat2,
 * fallocate, lseek SEEK_DATA, copy_file_range, O_DIRECT, ioctl, xattr flags), a loop-mounted ext4
 * to compare errno values with, and checksums.
 */
final class Tools {
  private Tools() {}

  /** Debian's python3 (pyenv shims and the like may not see the test's environment). */
  static String python3() {
    return Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";
  }

  /**
   * Runs a python3 program with arguments (sys.argv[1:]); fails with its output unless it exits 0.
   */
  static String python(String program, Object... args) {
    List<String> cmd = new ArrayList<>(List.of(python3(), "-c", program));
    for (Object a : args) {
      cmd.add(a.toString());
    }
    Shell.Result r = Shell.run(Duration.ofMinutes(5), Map.of(), cmd);
    if (!r.ok()) {
      throw new AssertionError("python3 failed:\n" + r.describe());
    }
    return r.stdout();
  }

  /** Runs a command; fails with its output unless it exits 0; returns its stdout. */
  static String run(String... command) {
    return Shell.checked(Duration.ofMinutes(5), command).stdout();
  }

  /** SHA-256 of a file's bytes, read through the page cache. */
  static String sha256(Path file) {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static String sha256(byte[] data) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * SHA-256 and size of a file read with O_DIRECT, which on FUSE bypasses the page cache: the bytes
   * come from the daemon, not from what the kernel kept of earlier writes.
   */
  static String sha256Direct(Path file) {
    return python(
            """
                import hashlib, mmap, os, sys
                fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
                buf = mmap.mmap(-1, 1 << 20)
                h = hashlib.sha256()
                off = 0
                while True:
                    n = os.preadv(fd, [buf], off)
                    if n <= 0:
                        break
                    h.update(buf[:n])
                    off += n
                os.close(fd)
                print(h.hexdigest(), off)
                """,
            file)
        .strip();
  }

  /** {@link #sha256Direct} of in-memory bytes: "HEX SIZE". */
  static String sha256AndSize(byte[] data, int size) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      md.update(data, 0, size);
      return HexFormat.of().formatHex(md.digest()) + " " + size;
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  static boolean isRoot() {
    try {
      return "0"
          .equals(
              Files.readAllLines(Path.of("/proc/self/status")).stream()
                  .filter(l -> l.startsWith("Uid:"))
                  .findFirst()
                  .orElse("Uid: -1")
                  .split("\\s+")[1]);
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * An ext4 file system (4 KiB blocks) in a sparse image, loop-mounted on a directory; {@link
   * #close} unmounts it and {@link #mountAgain} mounts it again.
   */
  static final class Ext4 implements AutoCloseable {
    private final Path image;
    private final Path mountpoint;

    Ext4(Path dir, long bytes) throws IOException {
      image = dir.resolve("ext4.img");
      try (var ch =
          java.nio.channels.FileChannel.open(
              image,
              java.nio.file.StandardOpenOption.CREATE_NEW,
              java.nio.file.StandardOpenOption.WRITE)) {
        ch.truncate(0);
        ch.write(java.nio.ByteBuffer.wrap(new byte[1]), bytes - 1);
      }
      run("mkfs.ext4", "-q", "-F", "-b", "4096", image.toString());
      mountpoint = Files.createDirectories(dir.resolve("ext4"));
      mountAgain();
    }

    Path root() {
      return mountpoint;
    }

    void mountAgain() throws IOException {
      run("mount", "-o", "loop", image.toString(), mountpoint.toString());
      assertThat(Mounted.fstypeAt(mountpoint.toRealPath())).contains("ext4");
    }

    @Override
    public void close() {
      Shell.Result r = Shell.run("umount", mountpoint.toString());
      if (!r.ok()) {
        Shell.run("umount", "-l", mountpoint.toString());
      }
    }
  }
}
