package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;
import jnr.ffi.Pointer;

/**
 * Asks the kernel, in INIT's reply, for what libfuse 3.14 does not know how to ask for: {@code
 * FUSE_HANDLE_KILLPRIV_V2}, and {@code FUSE_OVER_IO_URING} for a mount that serves its requests
 * through io_uring ({@link Ring}); and, for the latter, routes every later reply that a ring's
 * worker writes into its ring.
 *
 * <p>{@code FUSE_HANDLE_KILLPRIV_V2}: libfuse 3.14 does not ask for it. Without it the kernel sends
 * a getxattr of {@code security.capability} before every write through the page cache (a second
 * request per write, answered ENODATA), because a FUSE mount never marks an inode as having no
 * privileges to drop. With it the mount has {@code SB_NOSEC}, so an inode without set-user-ID bits
 * or capabilities is asked about once, and the kernel tells the filesystem instead, in flags of the
 * write, setattr, open and create requests ({@link RequestContext#killSuidGid}), when to drop
 * set-user-ID and set-group-ID bits. The kernel still drops capabilities itself, and does not clear
 * the mode bits itself on chown and truncate.
 *
 * <p>How: libfuse builds INIT's reply from the capabilities it knows, so the flag is added to the
 * reply on its way out. {@link #install} gives the session a custom writev ({@code
 * fuse_session_custom_io}) before any request is read. The first reply is INIT's; this writev adds
 * the flags to it when the kernel offered them, gives the session libc's own read and writev back
 * (no later reply passes through Java) or, with io_uring, a writev that sends a ring worker's
 * replies to its ring and the others to libc's, and writes the reply. fuse_session_custom_io
 * replaces the session's io pointer, which every receiving worker reads: {@link FuseSession} runs
 * one worker until {@link #awaitReplied} and starts the others after. Each call to
 * fuse_session_custom_io leaves libfuse's previous copy of the io (32 bytes) unfreed: once per
 * mount.
 *
 * <p>Only with libfuse 3.14, whose fuse_session_custom_io and INIT reply are as written here (3.17
 * changed the function's signature); elsewhere {@link #install} returns null and the kernel goes on
 * asking.
 */
final class InitReply {
  private static final System.Logger LOG = System.getLogger(InitReply.class.getName());

  private final Native.LibFuseIo lib;
  private final long se;
  private final boolean killPriv;
  private final boolean ioUring;
  private final IntSupplier kernelFlags;
  private final IntSupplier kernelFlags2;
  private final long libcRead;
  private final long libcWritev;
  private final CountDownLatch replied = new CountDownLatch(1);

  /** Whether the kernel took FUSE_OVER_IO_URING: INIT's reply asked for it. */
  private volatile boolean ioUringAsked;

  /** The largest payload of a request or reply, by INIT's reply (see {@link #payloadCapacity}). */
  private volatile int payloadCapacity;

  /** The closures libfuse calls, and their native stubs: reachable while libfuse may call them. */
  private final Callbacks.Writev hook = this::writev;

  private final Callbacks.Writev router = this::route;

  private Pointer hookStub;

  private Pointer routerStub;

  /** Until the first reply: only that one, INIT's, is changed. */
  private final AtomicBoolean first = new AtomicBoolean(true);

  private InitReply(
      Native.LibFuseIo lib,
      long se,
      boolean killPriv,
      boolean ioUring,
      IntSupplier kernelFlags,
      IntSupplier kernelFlags2) {
    this.lib = lib;
    this.se = se;
    this.killPriv = killPriv;
    this.ioUring = ioUring;
    this.kernelFlags = kernelFlags;
    this.kernelFlags2 = kernelFlags2;
    this.libcRead = Native.libcFunction("read");
    this.libcWritev = Native.libcFunction("writev");
  }

  /**
   * Hooks the INIT reply of the mounted session {@code se}, before any worker reads a request, to
   * ask for {@code FUSE_HANDLE_KILLPRIV_V2} ({@code killPriv}) and {@code FUSE_OVER_IO_URING}
   * ({@code ioUring}) when the kernel offers them; {@code kernelFlags} and {@code kernelFlags2}
   * give the flags of the kernel's INIT request once it has arrived. Null (nothing hooked, logged)
   * with a libfuse other than 3.14.
   */
  static InitReply install(
      long se,
      boolean killPriv,
      boolean ioUring,
      IntSupplier kernelFlags,
      IntSupplier kernelFlags2) {
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
              + " security.capability before each cached write) nor for io_uring");
      return null;
    }
    InitReply k = new InitReply(lib, se, killPriv, ioUring, kernelFlags, kernelFlags2);
    var closures = jnr.ffi.Runtime.getSystemRuntime().getClosureManager();
    k.hookStub = closures.getClosurePointer(Callbacks.Writev.class, k.hook);
    k.routerStub = closures.getClosurePointer(Callbacks.Writev.class, k.router);
    k.setIo(k.hookStub.address());
    return k;
  }

  /** Whether INIT's reply asked for io_uring (the kernel offered it); valid after it went out. */
  boolean ioUringAsked() {
    return ioUringAsked;
  }

  /**
   * What a ring entry's payload buffer must hold, as the kernel works it out from INIT's reply: the
   * largest of 8 KiB, max_write and max_pages pages. Valid once {@link #ioUringAsked}.
   */
  int payloadCapacity() {
    return payloadCapacity;
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
   * The session's writev until INIT's reply is out: adds the flags to that reply, hands the session
   * libc's writev (or {@link #route}), then writes. Lets nothing escape into native code.
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
      boolean ok =
          count >= 2 && MEM.getInt(MEM.getAddress(iov + Layout.IOV_BASE) + Layout.OUT_ERROR) == 0;
      long outLength = ok ? MEM.getLong(iov + Layout.IOV_SIZEOF + Layout.IOV_LEN) : 0;
      long out = ok ? MEM.getAddress(iov + Layout.IOV_SIZEOF + Layout.IOV_BASE) : 0;
      if (killPriv) {
        if (outLength >= Layout.INIT_OUT_FLAGS + 4
            && (kernelFlags.getAsInt() & Layout.INIT_HANDLE_KILLPRIV_V2) != 0) {
          long flags = out + Layout.INIT_OUT_FLAGS;
          MEM.putInt(flags, MEM.getInt(flags) | Layout.INIT_HANDLE_KILLPRIV_V2);
        } else {
          LOG.log(
              System.Logger.Level.INFO,
              "the kernel does not offer FUSE_HANDLE_KILLPRIV_V2: it asks for"
                  + " security.capability before each cached write");
        }
      }
      boolean uring =
          ioUring
              && outLength >= Layout.INIT_OUT_FLAGS2 + 4
              && (MEM.getInt(out + Layout.INIT_OUT_FLAGS) & Layout.INIT_EXT) != 0
              && (kernelFlags2.getAsInt() & Layout.INIT2_OVER_IO_URING) != 0;
      if (ioUring && !uring) {
        LOG.log(
            System.Logger.Level.WARNING,
            "the kernel does not offer FUSE over io_uring (Linux 6.14 or later, with"
                + " /sys/module/fuse/parameters/enable_uring set to Y): requests go through"
                + " /dev/fuse");
      }
      // The router first: should handing it over fail, INIT's reply must not ask for io_uring.
      setIo(uring ? routerStub.address() : libcWritev);
      if (uring) {
        long flags2 = out + Layout.INIT_OUT_FLAGS2;
        MEM.putInt(flags2, MEM.getInt(flags2) | Layout.INIT2_OVER_IO_URING);
        int maxWrite = MEM.getInt(out + Layout.INIT_OUT_MAX_WRITE);
        int maxPages = Short.toUnsignedInt(MEM.getShort(out + Layout.INIT_OUT_MAX_PAGES));
        payloadCapacity = Math.max(8192, Math.max(maxWrite, maxPages * 4096));
        ioUringAsked = true;
      }
    } catch (Throwable t) {
      LOG.log(
          System.Logger.Level.ERROR,
          "changing INIT's reply failed; it goes out without asking for io_uring",
          t);
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

  /**
   * The session's writev after INIT on a mount served through io_uring: a reply written by a ring's
   * worker goes into its ring ({@link Ring#reply}), anything else to the device: replies of the
   * /dev/fuse workers, and notifications (unique 0), even those a ring's worker sends while it
   * serves a request. Lets nothing escape into native code.
   */
  private long route(int fd, long iov, int count, long userdata) {
    try {
      Ring ring = Worker.servingRing();
      return ring != null && !isNotification(iov)
          ? ring.reply(iov, count)
          : Native.libc().writev(fd, iov, count);
    } catch (Throwable t) {
      LOG.log(System.Logger.Level.ERROR, "writing a reply failed", t);
      return -1;
    }
  }

  /** Whether the message in {@code iov} is a notification: its out header's unique is 0. */
  private static boolean isNotification(long iov) {
    return MEM.getLong(MEM.getAddress(iov + Layout.IOV_BASE) + Layout.OUT_UNIQUE) == 0;
  }
}
