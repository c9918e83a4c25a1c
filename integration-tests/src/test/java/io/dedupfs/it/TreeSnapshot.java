package io.dedupfs.it;

import static java.nio.file.LinkOption.NOFOLLOW_LINKS;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Everything stat, readlink, the xattr calls and read say about a tree, one line per path: type and
 * permissions, owner, size, link count, inode number, device number, the three times to the
 * nanosecond, a symlink's target, the user.* extended attributes and a regular file's SHA-256. Two
 * snapshots are equal when nothing a program can see has changed.
 */
final class TreeSnapshot {
  private TreeSnapshot() {}

  /** Relative path ("" for the root) -> description. Stats each path before reading it. */
  static Map<String, String> of(Path root) {
    Map<String, String> tree = new TreeMap<>();
    List<Path> paths = new ArrayList<>();
    try (Stream<Path> s = Files.walk(root)) {
      s.forEach(paths::add);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    for (Path p : paths) {
      tree.put(root.relativize(p).toString(), describe(p));
    }
    return tree;
  }

  static String describe(Path p) {
    try {
      Map<String, Object> a = Files.readAttributes(p, "unix:*", NOFOLLOW_LINKS);
      int mode = (int) a.get("mode");
      StringBuilder b = new StringBuilder();
      b.append("mode=")
          .append(Integer.toOctalString(mode))
          .append(" uid=")
          .append(a.get("uid"))
          .append(" gid=")
          .append(a.get("gid"))
          .append(" size=")
          .append(a.get("size"))
          .append(" nlink=")
          .append(a.get("nlink"))
          .append(" ino=")
          .append(a.get("ino"))
          .append(" rdev=")
          .append(a.get("rdev"))
          .append(" atime=")
          .append(((FileTime) a.get("lastAccessTime")).toInstant())
          .append(" mtime=")
          .append(((FileTime) a.get("lastModifiedTime")).toInstant())
          .append(" ctime=")
          .append(((FileTime) a.get("ctime")).toInstant());
      int type = mode & OperationsIT.S_IFMT;
      if (type == OperationsIT.S_IFLNK) {
        b.append(" -> ").append(Files.readSymbolicLink(p));
        return b.toString();
      }
      if (type == OperationsIT.S_IFREG || type == OperationsIT.S_IFDIR) {
        UserDefinedFileAttributeView v =
            Files.getFileAttributeView(p, UserDefinedFileAttributeView.class, NOFOLLOW_LINKS);
        for (String name : new java.util.TreeSet<>(v.list())) {
          ByteBuffer buf = ByteBuffer.allocate(v.size(name));
          v.read(name, buf);
          b.append(" user.")
              .append(name)
              .append('=')
              .append(HexFormat.of().formatHex(buf.array(), 0, buf.position()));
        }
      }
      if (type == OperationsIT.S_IFREG) {
        b.append(" sha256=").append(Tools.sha256(p));
      }
      return b.toString();
    } catch (IOException e) {
      throw new UncheckedIOException(p.toString(), e);
    }
  }
}
