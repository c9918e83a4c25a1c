package io.dedupfs.engine;

import java.nio.file.FileSystemException;

/**
 * A namespace error that {@code java.nio.file} has no exception for. The {@link Kind} says which,
 * so that a caller (the mount) can answer the errno ext4 would.
 */
public final class FsException extends FileSystemException {
  private static final long serialVersionUID = 1L;

  /** What went wrong; each maps to one errno in the mount. */
  public enum Kind {
    /** EISDIR: a file operation on a directory. */
    IS_DIRECTORY,
    /** EINVAL: an argument out of range, e.g. renaming a directory into itself. */
    INVALID_ARGUMENT,
    /** ENAMETOOLONG: a name longer than 255 bytes. */
    NAME_TOO_LONG,
    /** ENODATA: no such extended attribute. */
    NO_SUCH_ATTRIBUTE,
    /** EEXIST for extended attributes created with XATTR_CREATE. */
    ATTRIBUTE_EXISTS,
    /** EROFS: the store or this part of it is read-only. */
    READ_ONLY,
    /** EMLINK: too many hard links. */
    TOO_MANY_LINKS,
    /** EFBIG: beyond the largest file size. */
    FILE_TOO_BIG,
    /** EPERM: not allowed, e.g. a hard link to a directory. */
    NOT_PERMITTED,
    /** ENOTSUP: a mode of an operation this store does not support. */
    NOT_SUPPORTED,
    /** ENXIO: seeking for data or a hole at or past the end of a file. */
    NO_SUCH_OFFSET
  }

  private final Kind kind;

  public FsException(Kind kind, String file, String reason) {
    super(file, null, reason);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }
}
