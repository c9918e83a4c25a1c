package io.dedupfs.fs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.params.provider.Arguments.arguments;

import io.dedupfs.engine.CorruptBlockException;
import io.dedupfs.engine.FsException;
import io.dedupfs.engine.FsException.Kind;
import io.dedupfs.engine.Hash;
import io.dedupfs.engine.StoreException;
import io.dedupfs.engine.StoreFullException;
import io.dedupfs.fs.fuse.ErrnoException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.reflect.Constructor;
import java.nio.charset.MalformedInputException;
import java.nio.charset.UnmappableCharacterException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.FileSystemLoopException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.NotLinkException;
import java.nio.file.ReadOnlyFileSystemException;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import jnr.constants.platform.Errno;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every failure the adapter can meet and the errno {@link Errnos} answers for it, listed one by one
 * with the expected errno spelled out (not taken from Errnos), so that changing any mapping fails
 * here.
 */
class ErrnosTest {
  /** Errnos logs the unexpected ones with their stack traces: expected here, so not shown. */
  private static final Logger ERRNOS_LOG = Logger.getLogger(Errnos.class.getName());

  private final Errnos errnos = new Errnos();

  @BeforeAll
  static void quiet() {
    ERRNOS_LOG.setLevel(Level.OFF);
  }

  @AfterAll
  static void loud() {
    ERRNOS_LOG.setLevel(null);
  }

  static Stream<Arguments> mappings() {
    return Stream.of(
        // an ErrnoException answers its own errno, whatever its cause
        arguments(new ErrnoException(Errno.ENOENT), Errno.ENOENT),
        arguments(new ErrnoException(Errno.EBADF, "unknown handle"), Errno.EBADF),
        arguments(
            new ErrnoException(Errno.ENOTTY, "ioctl", new StoreFullException("full", null)),
            Errno.ENOTTY),
        arguments(new ErrnoException(Errno.EXDEV.intValue(), "another mount", null), Errno.EXDEV),
        // the engine's FsException: one errno per kind
        arguments(fs(Kind.IS_DIRECTORY), Errno.EISDIR),
        arguments(fs(Kind.INVALID_ARGUMENT), Errno.EINVAL),
        arguments(fs(Kind.NAME_TOO_LONG), Errno.ENAMETOOLONG),
        arguments(fs(Kind.NO_SUCH_ATTRIBUTE), Errno.ENODATA),
        arguments(fs(Kind.ATTRIBUTE_EXISTS), Errno.EEXIST),
        arguments(fs(Kind.READ_ONLY), Errno.EROFS),
        arguments(fs(Kind.TOO_MANY_LINKS), Errno.EMLINK),
        arguments(fs(Kind.FILE_TOO_BIG), Errno.EFBIG),
        arguments(fs(Kind.NOT_PERMITTED), Errno.EPERM),
        arguments(fs(Kind.NOT_SUPPORTED), Errno.EOPNOTSUPP),
        arguments(fs(Kind.NO_SUCH_OFFSET), Errno.ENXIO),
        // java.nio.file's exceptions (the engine throws the first four)
        arguments(new NoSuchFileException("f"), Errno.ENOENT),
        arguments(new FileAlreadyExistsException("f"), Errno.EEXIST),
        arguments(new NotDirectoryException("f"), Errno.ENOTDIR),
        arguments(new DirectoryNotEmptyException("d"), Errno.ENOTEMPTY),
        arguments(new AccessDeniedException("f"), Errno.EACCES),
        arguments(new FileSystemException("f"), Errno.EIO),
        arguments(new NotLinkException("f"), Errno.EIO),
        arguments(new FileSystemLoopException("f"), Errno.EIO),
        arguments(new ReadOnlyFileSystemException(), Errno.EIO),
        // the store's own failures
        arguments(
            new StoreFullException("the disk is full", new IOException("ENOSPC")), Errno.ENOSPC),
        arguments(corruptBlock(), Errno.EIO),
        arguments(new StoreException("not a store"), Errno.EIO),
        // names that are not UTF-8
        arguments(new MalformedInputException(1), Errno.EILSEQ),
        arguments(new UnmappableCharacterException(1), Errno.EILSEQ),
        // anything else is unexpected: EIO (and a logged stack trace)
        arguments(new IOException("LMDB: failure"), Errno.EIO),
        arguments(new InterruptedIOException("interrupted"), Errno.EIO),
        arguments(new CompletionException(new NoSuchFileException("wrapped")), Errno.EIO),
        arguments(new IllegalStateException("bug"), Errno.EIO),
        arguments(new IllegalArgumentException("bug"), Errno.EIO),
        arguments(new RuntimeException("bug"), Errno.EIO),
        arguments(new AssertionError("bug"), Errno.EIO));
  }

  @ParameterizedTest(name = "{0} -> {1}")
  @MethodSource("mappings")
  void eachFailureGetsItsErrno(Throwable failure, Errno expected) {
    assertThat(errnos.errno(failure)).isEqualTo(expected.intValue());
  }

  @Test
  void everyKindOfFsExceptionIsListed() {
    Set<Kind> listed =
        mappings()
            .map(a -> a.get()[0])
            .filter(FsException.class::isInstance)
            .map(t -> ((FsException) t).kind())
            .collect(Collectors.toCollection(() -> EnumSet.noneOf(Kind.class)));
    assertThat(listed).containsExactlyInAnyOrder(Kind.values());
  }

  private static FsException fs(Kind kind) {
    return new FsException(kind, "inode 7", kind.name());
  }

  /**
   * The engine makes these only when a block does not match its hash; its constructor is not
   * public.
   */
  private static CorruptBlockException corruptBlock() {
    try {
      Constructor<CorruptBlockException> c =
          CorruptBlockException.class.getDeclaredConstructor(Hash.class, String.class);
      c.setAccessible(true);
      return c.newInstance(Hash.ZERO, "its bytes hash to something else");
    } catch (ReflectiveOperationException e) {
      throw new AssertionError(e);
    }
  }
}
