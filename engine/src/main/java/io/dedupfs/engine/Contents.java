package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Regular files' contents but for buffered writes ({@link WriteBack}): reads, seeks, truncates,
 * holes and zeroed ranges, and copies between files that share subtrees. Each runs under the file's
 * lock ({@link OpenFiles#withContent}); a copy takes both files' commit locks and locks in the lock
 * order. The caller has checked that the store is writable where it changes something.
 */
final class Contents {
  private final Lmdb db;
  private final Geometry geometry;
  private final OpenFiles files;
  private final WriteBack writeBack;

  Contents(Lmdb db, Geometry geometry, OpenFiles files, WriteBack writeBack) {
    this.db = db;
    this.geometry = geometry;
    this.files = files;
    this.writeBack = writeBack;
  }

  int read(long ino, long offset, ByteBuffer dst) throws IOException {
    Checks.requireOffset(offset);
    return files.withContent(ino, false, fc -> db.read(txn -> fc.tree.read(txn, offset, dst)));
  }

  /** Sets the size of {@code i}, a regular file, and commits it. */
  void truncate(Inode i, long size) throws IOException {
    if (i.isDirectory()) {
      throw new FsException(FsException.Kind.IS_DIRECTORY, "inode " + i.ino(), "is a directory");
    }
    if (!i.isRegular() || size < 0) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, "inode " + i.ino(), "cannot truncate this to " + size);
    }
    if (size > Geometry.MAX_FILE_SIZE) {
      throw new FsException(
          FsException.Kind.FILE_TOO_BIG, "inode " + i.ino(), "beyond the largest file size");
    }
    files.withContent(
        i.ino(),
        true,
        fc -> {
          db.read(
              txn -> {
                fc.tree.truncate(txn, size);
                return null;
              });
          fc.truncated(size);
          fc.touch(Checks.now());
          return null;
        });
    writeBack.flush(i.ino());
  }

  /** See {@link Datastore#punchHole}. */
  void punchHole(long ino, long offset, long length) throws IOException {
    changeContent(ino, offset, length, false, true);
  }

  /** See {@link Datastore#zeroRange}. */
  void zeroRange(long ino, long offset, long length, boolean keepSize) throws IOException {
    changeContent(ino, offset, length, !keepSize, true);
  }

  /** See {@link Datastore#allocate}. */
  void allocate(long ino, long offset, long length, boolean keepSize) throws IOException {
    changeContent(ino, offset, length, !keepSize, false);
  }

  /**
   * Zeroes {@code [offset, offset + length)} ({@code zero}) and extends the file to its end ({@code
   * grow}).
   */
  private void changeContent(long ino, long offset, long length, boolean grow, boolean zero)
      throws IOException {
    Checks.requireOffset(offset);
    if (length <= 0) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT, "inode " + ino, "length must be positive");
    }
    if (offset + length > Geometry.MAX_FILE_SIZE) {
      throw new FsException(
          FsException.Kind.FILE_TOO_BIG, "inode " + ino, "beyond the largest file size");
    }
    files.withContent(
        ino,
        true,
        fc -> {
          Checks.requireChangeable(fc);
          long end = offset + length;
          db.read(
              txn -> {
                if (zero) {
                  fc.tree.zero(txn, offset, end);
                  fc.changed(offset, end);
                }
                if (grow && end > fc.tree.length()) {
                  fc.tree.truncate(txn, end);
                  fc.truncated(end);
                }
                return null;
              });
          fc.touch(Checks.now());
          return null;
        });
  }

  /** The first offset at or after {@code offset} holding data ({@code data}) or in a hole. */
  long seek(long ino, long offset, boolean data) throws IOException {
    Checks.requireOffset(offset);
    long r = files.withContent(ino, false, fc -> db.read(txn -> fc.tree.seek(txn, offset, data)));
    if (r < 0) {
      throw new FsException(
          FsException.Kind.NO_SUCH_OFFSET,
          "inode " + ino,
          "no " + (data ? "data" : "hole") + " at or after " + offset);
    }
    return r;
  }

  /** See {@link Datastore#copyRange}. */
  long copyRange(long srcIno, long srcOffset, long dstIno, long dstOffset, long length)
      throws IOException {
    Checks.requireOffset(srcOffset);
    Checks.requireOffset(dstOffset);
    while (true) {
      FileContent src = files.content(srcIno);
      FileContent dst = files.content(dstIno);
      List<FileContent> both =
          src == dst ? List.of(src) : srcIno < dstIno ? List.of(src, dst) : List.of(dst, src);
      List<FileContent> locked = new ArrayList<>();
      try {
        for (FileContent fc : both) {
          OpenFiles.lockForCommit(fc);
          locked.add(fc);
        }
        if (!src.isRetired() && !dst.isRetired()) {
          return copyLocked(src, srcOffset, dst, dstOffset, length);
        }
      } finally {
        OpenFiles.unlockAll(locked);
      }
    }
  }

  /** {@link #copyRange} with both files' commit locks and locks held. */
  private long copyLocked(
      FileContent src, long srcOffset, FileContent dst, long dstOffset, long length)
      throws IOException {
    Checks.requireChangeable(dst);
    long n = Math.min(length, Math.max(0, src.tree.length() - srcOffset));
    if (n == 0) {
      return 0;
    }
    if (src == dst && srcOffset < dstOffset + n && dstOffset < srcOffset + n) {
      throw new FsException(
          FsException.Kind.INVALID_ARGUMENT,
          "inode " + src.ino,
          "overlapping copy within one file");
    }
    if (dstOffset + n > Geometry.MAX_FILE_SIZE) {
      throw new FsException(
          FsException.Kind.FILE_TOO_BIG, "inode " + dst.ino, "beyond the largest file size");
    }
    writeBack.commitHeld(src);
    writeBack.commitHeld(
        dst); // so that a copy that fails can be undone by discarding dst's changes
    try {
      dst.shared();
      new RangeCopy(geometry, db, src.tree, dst.tree, srcOffset, dstOffset, n).run();
      dst.touch(Checks.now());
      writeBack.commitHeld(
          dst); // now: the shared subtrees are counted for the source only until dst counts them
    } catch (IOException | RuntimeException e) {
      // dst's overlay may name blocks of src that only this commit would have counted: drop it
      dst.discardChanges();
      throw e;
    }
    return n;
  }
}
