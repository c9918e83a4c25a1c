package io.dedupfs.engine;

import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The live state of one regular file's contents: its tree with unflushed changes, and the
 * modification times those changes set.
 *
 * <p>{@link #lock} guards every field and the tree: reads share it; writes, truncates, punches,
 * clones and flushes hold it exclusively. When two files are locked at once (a copy between
 * files), the one with the smaller inode number is locked first.
 */
final class FileContent {
  final long ino;
  /** A file of a snapshot: nothing may change it. Fixed for the inode's life. */
  final boolean readOnly;
  final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
  final FileTree tree;
  /** Times set by writes not yet flushed; meaningful while {@link #timesDirty}. */
  long mtimeNs;
  long ctimeNs;
  boolean timesDirty;
  /** When the oldest unflushed change was made (System.nanoTime), for the flush timer. */
  long dirtySince;
  /** Dropped from the store's table of open contents by forget: whoever finds it so loads the inode again. */
  boolean retired;

  FileContent(long ino, boolean readOnly, FileTree tree) {
    this.ino = ino;
    this.readOnly = readOnly;
    this.tree = tree;
  }

  boolean isDirty() {
    return timesDirty || tree.isDirty();
  }

  void touch(long nowNs) {
    if (!isDirty()) {
      dirtySince = System.nanoTime();
    }
    mtimeNs = nowNs;
    ctimeNs = nowNs;
    timesDirty = true;
  }
}
