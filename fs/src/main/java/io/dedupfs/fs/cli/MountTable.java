package io.dedupfs.fs.cli;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** What /proc/self/mountinfo says about a mountpoint. */
final class MountTable {
  static final String FSTYPE = "fuse.dedupfs";

  /** One mount: where, its type, and its source (for dedupfs, the store's path). */
  record Mounted(Path mountpoint, String fstype, String source) {
    boolean isDedupfs() {
      return FSTYPE.equals(fstype);
    }
  }

  private MountTable() {}

  /** The topmost mount on exactly {@code mountpoint} (a real path), if any. */
  static Optional<Mounted> at(Path mountpoint) throws IOException {
    Mounted found = null;
    for (Mounted m : all()) {
      if (m.mountpoint().equals(mountpoint)) {
        found = m;
      }
    }
    return Optional.ofNullable(found);
  }

  /** The dedupfs mount that holds {@code path} (a real path): the innermost one, if any. */
  static Optional<Mounted> dedupfsHolding(Path path) throws IOException {
    Mounted found = null;
    for (Mounted m : all()) {
      if (path.startsWith(m.mountpoint())
          && (found == null
              || m.mountpoint().getNameCount() >= found.mountpoint().getNameCount())) {
        found = m;
      }
    }
    return found != null && found.isDedupfs() ? Optional.of(found) : Optional.empty();
  }

  /**
   * The real path of {@code path}, also when it is the mountpoint of a FUSE mount whose daemon is
   * gone: stat fails there with ENOTCONN ("Transport endpoint is not connected"), so the path is
   * resolved through its parent and accepted if the mount table has a mount on it.
   *
   * @throws NoSuchFileException if there is nothing at {@code path}
   */
  static Path realPath(Path path) throws IOException {
    try {
      return path.toRealPath();
    } catch (NoSuchFileException e) {
      throw e;
    } catch (FileSystemException e) {
      Path abs = path.toAbsolutePath().normalize();
      if (abs.getParent() != null && abs.getFileName() != null) {
        Path candidate = abs.getParent().toRealPath().resolve(abs.getFileName().toString());
        if (at(candidate).isPresent()) {
          return candidate;
        }
      }
      throw e;
    }
  }

  /** Whether the file system mounted on {@code mountpoint} answers (a dead FUSE mount does not). */
  static boolean answers(Path mountpoint) {
    try {
      Files.readAttributes(mountpoint, java.nio.file.attribute.BasicFileAttributes.class);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Every mount, in mount order. */
  static List<Mounted> all() throws IOException {
    List<Mounted> out = new ArrayList<>();
    for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
      String[] f = line.split(" ");
      int dash = indexOf(f, "-");
      if (f.length < 5 || dash < 0 || dash + 2 >= f.length) {
        continue;
      }
      out.add(new Mounted(Path.of(unescape(f[4])), unescape(f[dash + 1]), unescape(f[dash + 2])));
    }
    return out;
  }

  private static int indexOf(String[] fields, String s) {
    for (int i = 6; i < fields.length; i++) {
      if (fields[i].equals(s)) {
        return i;
      }
    }
    return -1;
  }

  /** mountinfo writes space, tab, newline and backslash as \ooo octal escapes. */
  static String unescape(String s) {
    if (s.indexOf('\\') < 0) {
      return s;
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 3 < s.length()) {
        b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
        i += 3;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }
}
