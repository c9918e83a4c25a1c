package io.dedupfs.fs.fuse;

/**
 * The answer to open, opendir and create: the application's handle and how the kernel should treat
 * it.
 *
 * @param fh handle passed back with every request on this open file
 * @param directIo bypass the page cache for this open (reads and writes go straight to the daemon)
 * @param keepCache keep cached data from earlier opens instead of invalidating it
 * @param nonSeekable the file is a stream
 * @param cacheReaddir (opendir only) let the kernel cache the directory listing
 * @param noFlush do not send flush on close
 */
public record OpenFile(
    long fh,
    boolean directIo,
    boolean keepCache,
    boolean nonSeekable,
    boolean cacheReaddir,
    boolean noFlush) {

  public static OpenFile of(long fh) {
    return new OpenFile(fh, false, false, false, false, false);
  }

  public OpenFile withDirectIo(boolean directIo) {
    return new OpenFile(fh, directIo, keepCache, nonSeekable, cacheReaddir, noFlush);
  }

  public OpenFile withKeepCache(boolean keepCache) {
    return new OpenFile(fh, directIo, keepCache, nonSeekable, cacheReaddir, noFlush);
  }

  public OpenFile withCacheReaddir(boolean cacheReaddir) {
    return new OpenFile(fh, directIo, keepCache, nonSeekable, cacheReaddir, noFlush);
  }

  /** The {@code fuse_file_info} bitfield word for these flags. */
  int bits() {
    return (directIo ? Layout.FI_BIT_DIRECT_IO : 0)
        | (keepCache ? Layout.FI_BIT_KEEP_CACHE : 0)
        | (nonSeekable ? Layout.FI_BIT_NONSEEKABLE : 0)
        | (cacheReaddir ? Layout.FI_BIT_CACHE_READDIR : 0)
        | (noFlush ? Layout.FI_BIT_NOFLUSH : 0);
  }
}
