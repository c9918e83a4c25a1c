package io.dedupfs.fs;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DirName;
import io.dedupfs.fs.fuse.FuseSession;
import io.dedupfs.fs.fuse.MountOptions;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** A datastore served on a mountpoint: the one way in from the command line to the FUSE adapter. */
public final class Mount implements AutoCloseable {
  private final FuseSession session;

  private Mount(FuseSession session) {
    this.session = session;
  }

  /**
   * Mounts {@code store} on {@code mountpoint}; returns once the kernel's INIT has been answered.
   * {@code snapdirVisible}: whether listing the root shows {@code .snapshots}.
   */
  public static Mount start(
      Datastore store, Path mountpoint, MountOptions options, boolean snapdirVisible)
      throws IOException {
    DedupFs fs = new DedupFs(store, options.readOnly(), snapdirVisible);
    FuseSession session = FuseSession.mount(mountpoint, options, fs, new Errnos());
    fs.bind(session);
    Connection.tune(session);
    return new Mount(session);
  }

  /**
   * Tells the kernel that the store changed these inodes and names behind its back (a snapshot
   * restore), so that it drops its cached pages, attributes and lookups of them.
   */
  public void invalidate(List<Long> inodes, List<DirName> entries) {
    for (long ino : inodes) {
      session.invalidateInode(ino, 0, 0);
    }
    for (DirName e : entries) {
      session.invalidateEntry(e.parent(), e.name());
    }
  }

  /** Blocks until the filesystem is unmounted (from outside, or by {@link #close}). */
  public void awaitUnmounted() throws InterruptedException {
    session.awaitUnmounted();
  }

  /** Unmounts and waits for the requests in flight; the store stays open (its owner closes it). */
  @Override
  public void close() {
    session.close();
  }
}
