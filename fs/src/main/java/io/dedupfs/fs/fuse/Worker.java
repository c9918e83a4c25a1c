package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import jnr.constants.platform.Errno;

/**
 * A JVM-owned thread that loops {@code fuse_session_receive_buf} / {@code
 * fuse_session_process_buf}, so libfuse invokes the operation callbacks on this thread, one request
 * at a time. It owns the native memory its requests need (receive buffer descriptor, reply
 * structures, a reply data buffer), which is why the dispatcher finds it as {@code
 * Thread.currentThread()} instead of allocating per request.
 *
 * <p>A worker given a {@link Ring} takes its requests from that ring instead (FUSE over io_uring)
 * and hands each to libfuse the same way; libfuse's reply reaches the ring through the session's
 * writev ({@link InitReply}). It is not bound to the CPU whose callers its queue serves (as libfuse
 * binds its ring threads): one guest's queue of requests all comes from one CPU, and workers bound
 * to it left the other CPUs idle (4 KiB random reads at queue depth 32: 47,000 a second bound,
 * 81,000 unbound, 65,000 through /dev/fuse; 2 cores, 2026-12-06).
 */
final class Worker extends Thread {
  private static final System.Logger LOG = System.getLogger(FuseSession.class.getName());
  private static final int EINTR = Errno.EINTR.intValue();
  private static final int EAGAIN = Errno.EAGAIN.intValue();
  private static final int ENOTCONN = Errno.ENOTCONN.intValue();
  private static final int ECONNABORTED = Errno.ECONNABORTED.intValue();
  private static final int ECANCELED = Errno.ECANCELED.intValue();

  /**
   * libfuse's receive buffer: FUSE_MAX_MAX_PAGES (256) pages + FUSE_BUFFER_HEADER_SIZE (one page).
   */
  private static final int REQUEST_VIEW_CAPACITY = 257 * 4096;

  /**
   * Largest read/readdir the kernel sends with max_pages = 256. Grown on demand should one be
   * larger.
   */
  private static final int INITIAL_REPLY_CAPACITY = 1 << 20;

  /** Offsets in the scratch block. */
  private static final int SCRATCH_FUSE_BUF = 0;

  private static final int SCRATCH_ENTRY = 64;
  private static final int SCRATCH_STATVFS = 256;
  private static final int SCRATCH_STAT = 384;
  private static final int SCRATCH_STRING = 1024;

  /** Room for a NUL-terminated name or symlink target (PATH_MAX is 4096). */
  static final int STRING_CAPACITY = 8192;

  private static final int SCRATCH_SIZE = SCRATCH_STRING + STRING_CAPACITY;

  private final FuseSession session;
  private final Native.LibFuse lib;
  private final long se;
  private final long scratch;
  private final CharsetDecoder utf8 =
      StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT);
  final Filler filler = new Filler();

  private long replyAddress;
  private ByteBuffer replyBuffer;

  /** Where the current request starts, and its number of bytes. */
  private long requestMemory;

  private long requestSize;

  /**
   * A read-only view of the memory requests arrive in (libfuse's receive buffer as last seen, or
   * the ring's request area), from {@code viewAddress}.
   */
  private ByteBuffer requestView;

  private long viewAddress;

  /** The ring this worker serves, or null: it reads /dev/fuse. */
  private final Ring ring;

  Worker(FuseSession session, Native.LibFuse lib, long se, int index) {
    this(session, lib, se, "fuse-worker-" + index, null);
  }

  /** A worker that serves {@code ring}. */
  Worker(FuseSession session, Native.LibFuse lib, long se, int index, Ring ring) {
    this(session, lib, se, "fuse-ring-" + ring.qid() + "-" + index, ring);
  }

  private Worker(FuseSession session, Native.LibFuse lib, long se, String name, Ring ring) {
    super(name);
    setDaemon(true);
    this.session = session;
    this.lib = lib;
    this.se = se;
    this.ring = ring;
    this.scratch = MEM.allocateMemory(SCRATCH_SIZE, true);
    allocateReply(INITIAL_REPLY_CAPACITY);
  }

  /** The ring whose request this thread is serving, or null. */
  static Ring servingRing() {
    return Thread.currentThread() instanceof Worker w && w.ring != null && w.ring.inRequest()
        ? w.ring
        : null;
  }

  @Override
  public void run() {
    if (ring != null) {
      serveRing();
      return;
    }
    long fuseBuf = scratch + SCRATCH_FUSE_BUF;
    try {
      while (true) {
        int res = lib.fuse_session_receive_buf(se, fuseBuf);
        if (res == -EINTR || res == -EAGAIN) {
          continue;
        }
        if (res <= 0) {
          // 0: the session exited or the kernel unmounted (libfuse turns ENODEV into 0).
          if (res < 0) {
            LOG.log(System.Logger.Level.ERROR, "fuse_session_receive_buf failed: errno " + -res);
            lib.fuse_session_exit(se);
          }
          break;
        }
        requestSize = res;
        long mem = MEM.getAddress(fuseBuf + Layout.BUF_MEM);
        if (mem != viewAddress) {
          viewAddress = mem;
          requestView = MEM.newDirectByteBuffer(mem, REQUEST_VIEW_CAPACITY).asReadOnlyBuffer();
        }
        requestMemory = mem;
        lib.fuse_session_process_buf(se, fuseBuf);
      }
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, getName() + " stopped", t);
      lib.fuse_session_exit(se);
    } finally {
      // libfuse malloc()ed the receive buffer on the first receive; it is ours to free.
      long mem = MEM.getAddress(fuseBuf + Layout.BUF_MEM);
      if (mem != 0) {
        Native.libc().free(mem);
      }
      MEM.freeMemory(replyAddress);
      MEM.freeMemory(scratch);
      session.workerExited();
    }
  }

  /**
   * Serves the ring until the connection ends: registers its entry (again while the kernel has not
   * finished INIT), then hands each request to libfuse and commits the reply while fetching the
   * next.
   */
  private void serveRing() {
    long fuseBuf = scratch + SCRATCH_FUSE_BUF;
    try {
      viewAddress = ring.viewAddress();
      requestView = MEM.newDirectByteBuffer(viewAddress, ring.viewCapacity()).asReadOnlyBuffer();
      int res;
      while ((res = ring.register()) == -EAGAIN) {
        Thread.sleep(1);
      }
      MEM.setMemory(fuseBuf, Layout.BUF_SIZEOF, (byte) 0); // a memory buffer; size, mem below
      while (res == 0) {
        if (ring.next()) {
          requestMemory = ring.requestAddress();
          requestSize = ring.requestSize();
          MEM.putLong(fuseBuf + Layout.BUF_SIZE, requestSize);
          MEM.putAddress(fuseBuf + Layout.BUF_MEM, requestMemory);
          lib.fuse_session_process_buf(se, fuseBuf);
        }
        res = ring.commitAndFetch();
      }
      if (res != -ENOTCONN && res != -ECONNABORTED && res != -ECANCELED) {
        session.ringFailed(getName(), -res);
      }
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, getName() + " stopped", t);
      lib.fuse_session_exit(se);
    } finally {
      ring.close();
      MEM.freeMemory(replyAddress);
      MEM.freeMemory(scratch);
      session.ringWorkerExited();
    }
  }

  /** A {@code struct fuse_entry_param} to fill for reply_entry / reply_create. */
  long entryParam() {
    return scratch + SCRATCH_ENTRY;
  }

  /** A {@code struct stat} to fill for reply_attr and add_direntry. */
  long stat() {
    return scratch + SCRATCH_STAT;
  }

  long statvfs() {
    return scratch + SCRATCH_STATVFS;
  }

  /** Native address of the reply buffer (what {@link #replyBuffer(int)} wrote to). */
  long replyAddress() {
    return replyAddress;
  }

  /**
   * The reply buffer with position 0 and limit {@code size}, at least {@code size} bytes of
   * capacity.
   */
  ByteBuffer replyBuffer(int size) {
    if (size > replyBuffer.capacity()) {
      MEM.freeMemory(replyAddress);
      allocateReply(size);
    }
    replyBuffer.clear().limit(size);
    return replyBuffer;
  }

  private void allocateReply(int capacity) {
    replyAddress = MEM.allocateMemory(capacity, false);
    replyBuffer = MEM.newDirectByteBuffer(replyAddress, capacity);
  }

  /**
   * A read-only view of {@code size} bytes at {@code address} in the current request. Normally a
   * slice of the view over libfuse's receive buffer (one small object, no JNI); anything outside it
   * gets its own view.
   */
  ByteBuffer payload(long address, int size) {
    long offset = address - viewAddress;
    if (address >= requestMemory
        && address + size <= requestMemory + requestSize
        && offset + size <= requestView.capacity()) {
      ByteBuffer view = requestView;
      view.clear().position((int) offset).limit((int) offset + size);
      return view.slice();
    }
    return MEM.newDirectByteBuffer(address, size).asReadOnlyBuffer();
  }

  /**
   * The 32-bit value at {@code offset} in the kernel's request being served (0 past its end): for
   * what libfuse does not pass on.
   */
  int requestInt(int offset) {
    return offset >= 0 && offset + 4 <= requestSize ? MEM.getInt(requestMemory + offset) : 0;
  }

  /** Decodes a NUL-terminated name from the kernel as strict UTF-8. */
  String name(long address) throws CharacterCodingException {
    int length = (int) MEM.getStringLength(address);
    byte[] bytes = new byte[length];
    MEM.getByteArray(address, bytes, 0, length);
    for (byte b : bytes) {
      if (b < 0) {
        return utf8.decode(ByteBuffer.wrap(bytes)).toString();
      }
    }
    // All ASCII: Latin-1 decoding is a plain copy into a compact string.
    return new String(bytes, StandardCharsets.ISO_8859_1);
  }

  /** Copies {@code s} as a NUL-terminated UTF-8 string into the scratch string area. */
  long cString(String s) {
    byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
    if (bytes.length >= STRING_CAPACITY) {
      throw new IllegalArgumentException(
          "name or link target of " + bytes.length + " bytes is too long");
    }
    long address = scratch + SCRATCH_STRING;
    MEM.putByteArray(address, bytes, 0, bytes.length);
    MEM.putByte(address + bytes.length, (byte) 0);
    return address;
  }

  /**
   * Packs one readdir reply into the reply buffer, as {@code fuse_add_direntry} would: a {@code
   * struct fuse_dirent} per entry (u64 ino, u64 off, u32 namelen, u32 type, the name, zero padding
   * to 8 bytes). Written in Java: no native call per entry, and jnr-ffi 2.2.17 passes the sixth
   * argument of an all-{@code long} native call as garbage (seen here with fuse_add_direntry's
   * offset).
   */
  final class Filler implements DirectoryFiller {
    private static final int DIRENT_HEADER = 24;
    private ByteBuffer buf;
    private boolean active;

    void begin(int size) {
      buf = replyBuffer(size).order(ByteOrder.nativeOrder());
      active = true;
    }

    /** Ends the reply; returns its length. */
    int end() {
      active = false;
      return buf.position();
    }

    @Override
    public boolean add(String name, long ino, int mode, long nextOffset) {
      if (!active) {
        throw new IllegalStateException("DirectoryFiller used outside its readdir call");
      }
      byte[] n = name.getBytes(StandardCharsets.UTF_8);
      int length = (DIRENT_HEADER + n.length + 7) & ~7;
      if (length > buf.remaining()) {
        return false;
      }
      int start = buf.position();
      buf.putLong(ino)
          .putLong(nextOffset)
          .putInt(n.length)
          .putInt((mode & Attr.S_IFMT) >>> 12)
          .put(n);
      while (buf.position() < start + length) {
        buf.put((byte) 0);
      }
      return true;
    }
  }
}
