package io.dedupfs.fs;

import io.dedupfs.engine.CorruptBlockException;
import io.dedupfs.engine.FsException;
import io.dedupfs.engine.PoolTimeoutException;
import io.dedupfs.engine.StoreFullException;
import io.dedupfs.fs.fuse.ErrnoException;
import io.dedupfs.fs.fuse.FuseSession;
import java.nio.charset.CharacterCodingException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import jnr.constants.platform.Errno;

/**
 * The one place where failures become errno values, chosen to be what ext4 answers for the same
 * mistake. Expected answers (ENOENT, EEXIST ...) are not logged; a damaged block is logged as an
 * error; anything unexpected is logged with its stack trace and answered with EIO.
 */
final class Errnos implements FuseSession.ErrorMapper {
  private static final System.Logger LOG = System.getLogger(Errnos.class.getName());

  static final int ENOENT = Errno.ENOENT.intValue();
  static final int EIO = Errno.EIO.intValue();
  static final int EBADF = Errno.EBADF.intValue();
  static final int EEXIST = Errno.EEXIST.intValue();
  static final int ENOTDIR = Errno.ENOTDIR.intValue();
  static final int EISDIR = Errno.EISDIR.intValue();
  static final int EINVAL = Errno.EINVAL.intValue();
  static final int EFBIG = Errno.EFBIG.intValue();
  static final int ENOSPC = Errno.ENOSPC.intValue();
  static final int EROFS = Errno.EROFS.intValue();
  static final int EMLINK = Errno.EMLINK.intValue();
  static final int ENAMETOOLONG = Errno.ENAMETOOLONG.intValue();
  static final int ENOTEMPTY = Errno.ENOTEMPTY.intValue();
  static final int ENODATA = Errno.ENODATA.intValue();
  static final int ENOTTY = Errno.ENOTTY.intValue();
  static final int EOPNOTSUPP = Errno.EOPNOTSUPP.intValue();
  static final int ENXIO = Errno.ENXIO.intValue();
  static final int EPERM = Errno.EPERM.intValue();
  static final int EACCES = Errno.EACCES.intValue();
  static final int EILSEQ = Errno.EILSEQ.intValue();
  static final int EXDEV = Errno.EXDEV.intValue();

  @Override
  public int errno(Throwable t) {
    if (t instanceof ErrnoException e) {
      return e.errno();
    }
    if (t instanceof FsException e) {
      return of(e.kind());
    }
    if (t instanceof NoSuchFileException) {
      return ENOENT;
    }
    if (t instanceof FileAlreadyExistsException) {
      return EEXIST;
    }
    if (t instanceof NotDirectoryException) {
      return ENOTDIR;
    }
    if (t instanceof DirectoryNotEmptyException) {
      return ENOTEMPTY;
    }
    if (t instanceof AccessDeniedException) {
      return EACCES;
    }
    if (t instanceof StoreFullException) {
      LOG.log(System.Logger.Level.WARNING, "store full: " + t.getMessage());
      return ENOSPC;
    }
    if (t instanceof PoolTimeoutException) {
      // the pool did not answer (an OSD down): no damage, a later request may succeed
      LOG.log(System.Logger.Level.WARNING, t.getMessage() + "; answering EIO");
      return EIO;
    }
    if (t instanceof CorruptBlockException) {
      LOG.log(System.Logger.Level.ERROR, t.getMessage() + " (run `dedupfs scrub` on the store)");
      return EIO;
    }
    if (t instanceof CharacterCodingException) {
      return EILSEQ; // names are UTF-8 (README: limitations)
    }
    LOG.log(System.Logger.Level.WARNING, "request failed unexpectedly; answering EIO", t);
    return EIO;
  }

  static int of(FsException.Kind kind) {
    return switch (kind) {
      case IS_DIRECTORY -> EISDIR;
      case INVALID_ARGUMENT -> EINVAL;
      case NAME_TOO_LONG -> ENAMETOOLONG;
      case NO_SUCH_ATTRIBUTE -> ENODATA;
      case ATTRIBUTE_EXISTS -> EEXIST;
      case READ_ONLY -> EROFS;
      case TOO_MANY_LINKS -> EMLINK;
      case FILE_TOO_BIG -> EFBIG;
      case NOT_PERMITTED -> EPERM;
      case NOT_SUPPORTED -> EOPNOTSUPP;
      case NO_SUCH_OFFSET -> ENXIO;
    };
  }
}
