package io.dedupfs.fs.fuse;

/**
 * The connection parameters negotiated in INIT ({@code struct fuse_conn_info}). The application's
 * {@link FuseOperations#init} receives what the kernel offers and libfuse proposes, and returns
 * what it wants. Written back: {@code want} (restricted to {@code capable}), {@code maxWrite}
 * (never above the offered value, which is the 1 MiB libfuse's buffers hold), {@code maxReadahead},
 * {@code maxBackground}, {@code congestionThreshold} and {@code timeGran}. {@code maxRead} is fixed
 * by the mount options.
 *
 * <p>The binding prepares {@code want} before the application sees it: libfuse's defaults, plus
 * {@link #CAP_WRITEBACK_CACHE} when {@link MountOptions#writebackCache()} is set, minus the splice
 * capabilities (write payloads must arrive in memory) and minus {@link #CAP_HANDLE_KILLPRIV} (so
 * the kernel itself clears setuid/setgid bits on write and chown instead of expecting the
 * filesystem to).
 */
public record ConnectionInfo(
    int protoMajor,
    int protoMinor,
    int capable,
    int want,
    int maxWrite,
    int maxRead,
    int maxReadahead,
    int maxBackground,
    int congestionThreshold,
    int timeGran) {

  /** {@code FUSE_CAP_*} bits (fuse_common.h, libfuse 3.14). */
  public static final int CAP_ASYNC_READ = 1 << 0;

  public static final int CAP_POSIX_LOCKS = 1 << 1;
  public static final int CAP_ATOMIC_O_TRUNC = 1 << 3;
  public static final int CAP_EXPORT_SUPPORT = 1 << 4;
  public static final int CAP_DONT_MASK = 1 << 6;
  public static final int CAP_SPLICE_WRITE = 1 << 7;
  public static final int CAP_SPLICE_MOVE = 1 << 8;
  public static final int CAP_SPLICE_READ = 1 << 9;
  public static final int CAP_FLOCK_LOCKS = 1 << 10;
  public static final int CAP_IOCTL_DIR = 1 << 11;
  public static final int CAP_AUTO_INVAL_DATA = 1 << 12;
  public static final int CAP_READDIRPLUS = 1 << 13;
  public static final int CAP_READDIRPLUS_AUTO = 1 << 14;
  public static final int CAP_ASYNC_DIO = 1 << 15;
  public static final int CAP_WRITEBACK_CACHE = 1 << 16;
  public static final int CAP_NO_OPEN_SUPPORT = 1 << 17;
  public static final int CAP_PARALLEL_DIROPS = 1 << 18;
  public static final int CAP_POSIX_ACL = 1 << 19;
  public static final int CAP_HANDLE_KILLPRIV = 1 << 20;
  public static final int CAP_CACHE_SYMLINKS = 1 << 23;
  public static final int CAP_NO_OPENDIR_SUPPORT = 1 << 24;
  public static final int CAP_EXPLICIT_INVAL_DATA = 1 << 25;
  public static final int CAP_EXPIRE_ONLY = 1 << 26;

  static final int CAP_SPLICE_ALL = CAP_SPLICE_WRITE | CAP_SPLICE_MOVE | CAP_SPLICE_READ;

  public boolean isCapable(int cap) {
    return (capable & cap) == cap;
  }

  public boolean wants(int cap) {
    return (want & cap) == cap;
  }

  public ConnectionInfo withWant(int want) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  /** Turns {@code cap} on in {@code want} if the kernel is capable of it, or off. */
  public ConnectionInfo withWanted(int cap, boolean on) {
    return withWant(on ? want | (cap & capable) : want & ~cap);
  }

  public ConnectionInfo withMaxWrite(int maxWrite) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  public ConnectionInfo withMaxReadahead(int maxReadahead) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  public ConnectionInfo withMaxBackground(int maxBackground) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  public ConnectionInfo withCongestionThreshold(int congestionThreshold) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  public ConnectionInfo withTimeGran(int timeGran) {
    return new ConnectionInfo(
        protoMajor,
        protoMinor,
        capable,
        want,
        maxWrite,
        maxRead,
        maxReadahead,
        maxBackground,
        congestionThreshold,
        timeGran);
  }

  static ConnectionInfo read(long conn) {
    var m = Native.MEM;
    return new ConnectionInfo(
        m.getInt(conn + Layout.CONN_PROTO_MAJOR),
        m.getInt(conn + Layout.CONN_PROTO_MINOR),
        m.getInt(conn + Layout.CONN_CAPABLE),
        m.getInt(conn + Layout.CONN_WANT),
        m.getInt(conn + Layout.CONN_MAX_WRITE),
        m.getInt(conn + Layout.CONN_MAX_READ),
        m.getInt(conn + Layout.CONN_MAX_READAHEAD),
        m.getInt(conn + Layout.CONN_MAX_BACKGROUND),
        m.getInt(conn + Layout.CONN_CONGESTION_THRESHOLD),
        m.getInt(conn + Layout.CONN_TIME_GRAN));
  }

  /**
   * Writes the negotiable fields back; {@code offered} is what {@link #read} returned before the
   * application ran.
   */
  void write(long conn, ConnectionInfo offered) {
    var m = Native.MEM;
    // libfuse rejects the whole INIT (EPROTO) if want has bits the kernel lacks.
    m.putInt(conn + Layout.CONN_WANT, want & offered.capable);
    // A larger max_write than offered would let the kernel send writes bigger than libfuse's
    // receive buffer.
    // Below one page libfuse's max_pages arithmetic breaks.
    long offeredMaxWrite = Integer.toUnsignedLong(offered.maxWrite);
    long clamped = Math.min(Math.max(Integer.toUnsignedLong(maxWrite), 4096), offeredMaxWrite);
    m.putInt(conn + Layout.CONN_MAX_WRITE, (int) clamped);
    m.putInt(conn + Layout.CONN_MAX_READAHEAD, maxReadahead);
    m.putInt(conn + Layout.CONN_MAX_BACKGROUND, maxBackground);
    m.putInt(conn + Layout.CONN_CONGESTION_THRESHOLD, congestionThreshold);
    m.putInt(conn + Layout.CONN_TIME_GRAN, timeGran);
  }
}
