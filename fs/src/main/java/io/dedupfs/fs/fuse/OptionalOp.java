package io.dedupfs.fs.fuse;

/**
 * Operations that are registered with libfuse only when the application says it implements them
 * ({@link FuseOperations#optionalOps()}). For these the kernel treats a single ENOSYS answer as
 * "not supported" for the rest of the mount (copy_file_range, fallocate) or falls back to generic
 * behaviour (lseek: data everywhere; ioctl: ENOTTY), so an application that does implement them
 * must never be shadowed by a default ENOSYS, and one that does not gets libfuse's own ENOSYS.
 */
public enum OptionalOp {
  FALLOCATE(Layout.Op.FALLOCATE),
  LSEEK(Layout.Op.LSEEK),
  IOCTL(Layout.Op.IOCTL),
  COPY_FILE_RANGE(Layout.Op.COPY_FILE_RANGE);

  final Layout.Op op;

  OptionalOp(Layout.Op op) {
    this.op = op;
  }
}
