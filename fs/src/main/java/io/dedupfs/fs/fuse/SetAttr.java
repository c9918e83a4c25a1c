package io.dedupfs.fs.fuse;

import java.time.Instant;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * What a setattr request changes (chmod, chown, truncate, utimens); absent values stay as they are.
 * {@code UTIME_NOW} ({@code FUSE_SET_ATTR_ATIME_NOW}/{@code _MTIME_NOW}) is resolved by the binding
 * to the time the request was decoded, the same instant for both.
 *
 * @param fh present when the change was made through an open file (ftruncate, futimens, fchmod)
 */
public record SetAttr(
    OptionalInt mode,
    OptionalInt uid,
    OptionalInt gid,
    OptionalLong size,
    Optional<Instant> atime,
    Optional<Instant> mtime,
    Optional<Instant> ctime,
    OptionalLong fh) {

  /** {@code FUSE_SET_ATTR_*} bits of the {@code to_set} argument (fuse_lowlevel.h). */
  static final int MODE = 1 << 0;

  static final int UID = 1 << 1;
  static final int GID = 1 << 2;
  static final int SIZE = 1 << 3;
  static final int ATIME = 1 << 4;
  static final int MTIME = 1 << 5;
  static final int ATIME_NOW = 1 << 7;
  static final int MTIME_NOW = 1 << 8;
  static final int CTIME = 1 << 10;

  public SetAttr {
    Objects.requireNonNull(mode, "mode");
    Objects.requireNonNull(uid, "uid");
    Objects.requireNonNull(gid, "gid");
    Objects.requireNonNull(size, "size");
    Objects.requireNonNull(atime, "atime");
    Objects.requireNonNull(mtime, "mtime");
    Objects.requireNonNull(ctime, "ctime");
    Objects.requireNonNull(fh, "fh");
  }

  /** Decodes libfuse's {@code struct stat} + {@code to_set} mask. */
  static SetAttr decode(long stat, int toSet, OptionalLong fh) {
    var m = Native.MEM;
    Instant now = (toSet & (ATIME_NOW | MTIME_NOW)) != 0 ? Instant.now() : null;
    return new SetAttr(
        (toSet & MODE) != 0 ? OptionalInt.of(m.getInt(stat + Layout.ST_MODE)) : OptionalInt.empty(),
        (toSet & UID) != 0 ? OptionalInt.of(m.getInt(stat + Layout.ST_UID)) : OptionalInt.empty(),
        (toSet & GID) != 0 ? OptionalInt.of(m.getInt(stat + Layout.ST_GID)) : OptionalInt.empty(),
        (toSet & SIZE) != 0
            ? OptionalLong.of(m.getLong(stat + Layout.ST_SIZE))
            : OptionalLong.empty(),
        time(stat + Layout.ST_ATIM, toSet, ATIME, ATIME_NOW, now),
        time(stat + Layout.ST_MTIM, toSet, MTIME, MTIME_NOW, now),
        (toSet & CTIME) != 0 ? Optional.of(timespec(stat + Layout.ST_CTIM)) : Optional.empty(),
        fh);
  }

  private static Optional<Instant> time(
      long timespec, int toSet, int bit, int nowBit, Instant now) {
    if ((toSet & nowBit) != 0) {
      return Optional.of(now);
    }
    return (toSet & bit) != 0 ? Optional.of(timespec(timespec)) : Optional.empty();
  }

  private static Instant timespec(long addr) {
    return Instant.ofEpochSecond(Native.MEM.getLong(addr), Native.MEM.getLong(addr + 8));
  }
}
