package io.dedupfs.fs.cli;

import io.dedupfs.fs.fuse.Posix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code dedupfs clone}: dedupfs's reflink ioctl (README, "Cloning"), issued on DST naming SRC.
 * Both must be on the same dedupfs mount.
 */
@Command(
    name = "clone",
    mixinStandardHelpOptions = true,
    description = {
      "Clone SRC into DST on the same dedupfs mount without copying data.",
      "Whole file: DST (created if missing) becomes a copy of SRC. With --length or offsets: a range."
    })
final class CloneCommand implements Callable<Integer> {
  /** {@code _IOW('D', 1, struct dedupfs_clone_range)}; the README documents it. */
  static final long DEDUPFS_IOC_CLONE_RANGE = 0x40204401L;

  @Option(
      names = "--src-offset",
      paramLabel = "BYTES",
      converter = LongSizes.class,
      description = "Default 0.")
  long srcOffset;

  @Option(
      names = "--length",
      paramLabel = "BYTES",
      converter = LongSizes.class,
      description = "Bytes to clone; 0 (the default) means to the end of SRC.")
  long length;

  @Option(
      names = "--dst-offset",
      paramLabel = "BYTES",
      converter = LongSizes.class,
      description = "Default 0.")
  long dstOffset;

  @Parameters(index = "0", paramLabel = "SRC")
  Path src;

  @Parameters(index = "1", paramLabel = "DST")
  Path dst;

  @Override
  public Integer call() throws IOException {
    if (!Files.exists(src)) {
      throw new Main.UsageException(src + ": no such file");
    }
    if (Files.isDirectory(src) || Files.isDirectory(dst)) {
      throw new Main.UsageException(
          (Files.isDirectory(src) ? src : dst) + " is a directory; clone copies files");
    }
    if (srcOffset < 0 || length < 0 || dstOffset < 0) {
      throw new Main.UsageException("offsets and length must not be negative");
    }
    Path dstDir = dst.toAbsolutePath().getParent();
    if (!Files.isDirectory(dstDir)) {
      throw new Main.UsageException(dstDir + ": no such directory");
    }
    String type = Files.getFileStore(src).type();
    if (!MountTable.FSTYPE.equals(type)) {
      throw new Main.UsageException(src + " is not on a dedupfs mount (it is on " + type + ")");
    }
    if (!Files.getAttribute(src, "unix:dev")
        .equals(Files.getAttribute(Files.exists(dst) ? dst : dstDir, "unix:dev"))) {
      throw new Main.UsageException(src + " and " + dst + " are not on the same dedupfs mount");
    }
    int mode = modeOf(src);
    try {
      Posix.ioctlOnPair(src, dst, mode, DEDUPFS_IOC_CLONE_RANGE, srcFd -> argument(srcFd));
    } catch (IOException e) {
      throw new IOException("cannot clone " + src + " to " + dst + ": " + e.getMessage(), e);
    }
    return 0;
  }

  private byte[] argument(int srcFd) {
    return ByteBuffer.allocate(32)
        .order(ByteOrder.nativeOrder())
        .putLong(srcFd)
        .putLong(srcOffset)
        .putLong(length)
        .putLong(dstOffset)
        .array();
  }

  private static int modeOf(Path p) throws IOException {
    Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS);
    int mode = 0;
    for (PosixFilePermission perm : perms) {
      mode |= 1 << (8 - perm.ordinal());
    }
    return mode;
  }

  /** Sizes as longs, e.g. 1G. */
  static final class LongSizes implements picocli.CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
      return Sizes.parse(value);
    }
  }
}
