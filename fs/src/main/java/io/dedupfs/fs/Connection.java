package io.dedupfs.fs;

import io.dedupfs.fs.fuse.ConnectionInfo;
import io.dedupfs.fs.fuse.FuseSession;

/**
 * How a dedupfs mount sets up its connection with the kernel. Public for the do-nothing filesystem
 * that the benchmarks compare dedupfs with ({@code io.dedupfs.bench.fuse.NullFs}, in the benchmarks
 * module, outside the product jar): it uses this too, so that the two differ only in the work
 * behind each request.
 */
public final class Connection {
  /**
   * Four of the largest read requests (1 MiB): the kernel keeps several in flight, so a sequential
   * read keeps both the daemon's workers (each checking the SHA-256 of what it reads) busy.
   * Measured cold dd reads of 1 GiB, alternating on one mount: 710-820 MB/s with 4 MiB, 670-720
   * with 1 MiB (loaded 2-core machine).
   */
  private static final int READ_AHEAD_KB = 4096;

  private Connection() {}

  /** What to ask for at INIT (the writeback cache follows the mount option, in the binding). */
  public static ConnectionInfo negotiate(ConnectionInfo conn) {
    return conn.withMaxReadahead(1 << 20)
        .withWanted(ConnectionInfo.CAP_ATOMIC_O_TRUNC, true)
        .withWanted(ConnectionInfo.CAP_PARALLEL_DIROPS, true)
        .withWanted(ConnectionInfo.CAP_ASYNC_DIO, true);
  }

  /**
   * What INIT cannot set, once the session is mounted: the kernel caps readahead at 128 KiB
   * otherwise.
   */
  public static void tune(FuseSession session) {
    session.setReadAheadKb(READ_AHEAD_KB);
  }
}
