package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;
import jnr.ffi.Pointer;

/**
 * Asks the kernel for {@code FUSE_HANDLE_KILLPRIV_V2}, which libfuse 3.14 does not know how to ask
 * for. Without it the kernel sends a getxattr of {@code security.capability} before every write
 * through the page cache (a second request per write, answered ENODATA), because a FUSE mount never
 * marks an inode as having no privileges to drop. With it the mount has {@code SB_NOSEC}, so an
 * inode without set-user-ID bits or capabilities is asked about once, and the kernel tells the
 * filesystem instead, in flags of the write, setattr, open and create requests ({@link
 * RequestContext#killSuidGid}), when to drop set-user-ID and set-group-ID bits. The kernel still
 * drops capabilities itself, and does not clear the mode bits itself on chown and truncate.
 *
 * <p>How: libfuse builds INIT's reply from the capabilities it knows, so the flag is added to the
 * reply on its way out. {@link #install} gives the session a custom writev ({@code
 * fuse_session_custom_io}) before any request is read. The first reply is INIT's; this writev adds
 * the flag to it when the kernel offered it, gives the session libc's own read and writev back (no
 * later reply passes through Java), and writes the reply. fuse_session_custom_io replaces the
 * session's io pointer, which every receiving worker reads: {@link FuseSession} runs one worker
 * until {@link #awaitReplied} and starts the others after. Each call to fuse_session_custom_io
 * leaves libfuse's previous copy of the io (32 bytes) unfreed: once per mount.
 *
 * <p>Only with libfuse 3.14, whose fuse_session_custom_io and INIT reply are as written here (3.17
 * changed the function's signature); elsewhere {@link #install} returns null and the kernel goes on
 * asking.
 */
final class KillPrivV2 {
  private static final System.Logger LOG = System.getLogger(KillPrivV2.class.getName());

  private final Native.LibFuseIo lib;
  private final long se;
  private final IntSupplier kernelFlags;
  private final long libcRead;
  private final long libcWritev;
  private final CountDownLatch replied = new CountDownLatch(1);

  /** The closure libfuse calls, and its native stub: kept reachable while libfuse may call it. */
  private final Callbacks.Writev hook = this::writev;

  private Pointer hookStub;

  /** Until the first reply: only that one, INIT's, is changed. */
  private final AtomicBoolean first = new AtomicBoolean(true);

  private KillPrivV2(Native.LibFuseIo lib, long se, IntSupplier kernelFlags) {
    this.lib = lib;
    this.se = se;
    this.kernelFlags = kernelFlags;
    this.libcRead = Native.libcFunction("read");
    this.libcWritev = Native.libcFunction("writev");
  }

  /**
   * Hooks the INIT reply of the mounted session {@code se}, before any worker reads a request;
   * {@code kernelFlags} gives the flags of the kernel's INIT request once it has arrived. Null
   * (nothing hooked, logged) with a libfuse other than 3.14.
   */
  static KillPrivV2 install(long se, IntSupplier kernelFlags) {
    Native.LibFuseIo lib;
    String version;
    try {
      lib = Native.fuseIo();
      version = lib.fuse_pkgversion();
    } catch (UnsatisfiedLinkError e) { // before 3.13: no custom io
      lib = null;
      version = e.getMessage();
    }
    if (lib == null || version == null || !version.startsWith("3.14.")) {
      LOG.log(
          System.Logger.Level.INFO,
          "libfuse "
              + version
              + " is not 3.14: not asking for FUSE_HANDLE_KILLPRIV_V2 (the kernel asks for"
              + " security.capability before each cached write)");
      return null;
    }
    KillPrivV2 k = new KillPrivV2(lib, se, kernelFlags);
    k.hookStub =
        jnr.ffi.Runtime.getSystemRuntime()
            .getClosureManager()
            .getClosurePointer(Callbacks.Writev.class, k.hook);
    k.setIo(k.hookStub.address());
    return k;
  }

  /** Waits until INIT's reply went out; false after {@code timeout}. */
  boolean awaitReplied(Duration timeout) throws InterruptedException {
    return replied.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Gives the session an io whose writev is {@code writev} and whose read is libc's. */
  private void setIo(long writev) {
    long io = MEM.allocateMemory(Layout.CUSTOM_IO_SIZEOF, true);
    try {
      MEM.putAddress(io + Layout.CUSTOM_IO_WRITEV, writev);
      MEM.putAddress(io + Layout.CUSTOM_IO_READ, libcRead);
      int res = lib.fuse_session_custom_io(se, io, lib.fuse_session_fd(se));
      if (res != 0) {
        throw new IllegalStateException("fuse_session_custom_io failed: errno " + -res);
      }
    } finally {
      MEM.freeMemory(io); // libfuse keeps a copy
    }
  }

  /**
   * The session's writev until INIT's reply is out: adds the flag to that reply, hands the session
   * libc's writev, then writes. Lets nothing escape into native code.
   */
  private long writev(int fd, long iov, int count, long userdata) {
    try {
      if (!first.compareAndSet(true, false)) {
        return Native.libc().writev(fd, iov, count); // handing over failed: a plain write
      }
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "writing a reply failed", t);
      return -1;
    }
    try {
      if (count >= 2
          && MEM.getInt(MEM.getAddress(iov + Layout.IOV_BASE) + Layout.OUT_ERROR) == 0
          && MEM.getLong(iov + Layout.IOV_SIZEOF + Layout.IOV_LEN) >= Layout.INIT_OUT_FLAGS + 4
          && (kernelFlags.getAsInt() & Layout.INIT_HANDLE_KILLPRIV_V2) != 0) {
        long out =
            MEM.getAddress(iov + Layout.IOV_SIZEOF + Layout.IOV_BASE) + Layout.INIT_OUT_FLAGS;
        MEM.putInt(out, MEM.getInt(out) | Layout.INIT_HANDLE_KILLPRIV_V2);
      } else {
        LOG.log(
            System.Logger.Level.INFO,
            "the kernel does not offer FUSE_HANDLE_KILLPRIV_V2: it asks for security.capability"
                + " before each cached write");
      }
      setIo(libcWritev);
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "changing INIT's reply failed; it goes out unchanged", t);
    }
    try {
      return Native.libc().writev(fd, iov, count);
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "writing INIT's reply failed", t);
      return -1;
    } finally {
      replied.countDown();
    }
  }
}
