package io.dedupfs.fs.fuse;

import static io.dedupfs.fs.fuse.Native.MEM;

import java.lang.invoke.VarHandle;
import jnr.constants.platform.Errno;

/**
 * One worker's FUSE-over-io_uring ring (Linux 6.14 and later): an io_uring with one FUSE ring entry
 * of queue {@code qid}. The kernel queues a request on the queue of the CPU its caller runs on
 * (each CPU's callers have a queue of their own, where /dev/fuse has one for all) and hands it to
 * an idle entry of that queue by completing the entry's last command; the worker answers it and
 * asks for the next one in a single command ({@code COMMIT_AND_FETCH}), where the /dev/fuse loop
 * needs a read and a write.
 *
 * <p>A request arrives in two buffers: the header ({@code struct fuse_uring_req_header}: the in
 * header, the operation's own header, the entry's commit id and payload size) and the payload (the
 * other arguments). libfuse 3.14 takes a request as one contiguous buffer, so the payload buffer
 * sits {@link #PREFIX} bytes into a larger one and {@link #next} copies the two headers in front of
 * the payload: the payload itself (a write's data) is never copied. The reply that libfuse writes
 * ({@link #reply}, called from the session's writev) goes back the same way: its out header into
 * the header buffer, the rest into the payload buffer.
 *
 * <p>Used by its worker thread only; one command in flight at a time.
 */
final class Ring implements AutoCloseable {
  private static final System.Logger LOG = System.getLogger(FuseSession.class.getName());

  /** Room before the payload for the in header (40 bytes) and the operation's (at most 128). */
  private static final int PREFIX = 256;

  private static final int PAGE = 4096;

  private static final int EIO = Errno.EIO.intValue();
  private static final int EINTR = Errno.EINTR.intValue();
  private static final int EAGAIN = Errno.EAGAIN.intValue();

  /** Submission and completion entries: one command is in flight at a time. */
  private static final int ENTRIES = 2;

  private final Native.LibUring lib;
  private final int fuseFd;
  private final int qid;
  private final int payloadCapacity;

  /** liburing's {@code struct io_uring}, and what it points into. */
  private final long ring;

  private final int ringFd;
  private final long sqHead;
  private final long sqTail;
  private final long sqMask;
  private final long sqArray;
  private final long sqes;
  private final long cqHead;
  private final long cqTail;
  private final long cqMask;
  private final long cqes;

  /** The entry's buffers (page-aligned inside their allocations) and its two iovecs. */
  private final long headerAllocation;

  private final long header;
  private final long regionAllocation;
  private final long region;
  private final long payload;
  private final long iov;

  private long commitId;
  private long requestAddress;
  private int requestSize;

  /** Between {@link #next} and the commit: libfuse's reply goes to this entry. */
  private boolean inRequest;

  private boolean replied;

  private Ring(Native.LibUring lib, int fuseFd, int qid, int payloadCapacity, long ring) {
    this.lib = lib;
    this.fuseFd = fuseFd;
    this.qid = qid;
    this.payloadCapacity = payloadCapacity;
    this.ring = ring;
    this.ringFd = MEM.getInt(ring + Layout.URING_RING_FD);
    this.sqHead = MEM.getAddress(ring + Layout.URING_SQ_KHEAD);
    this.sqTail = MEM.getAddress(ring + Layout.URING_SQ_KTAIL);
    this.sqMask = MEM.getInt(MEM.getAddress(ring + Layout.URING_SQ_KRING_MASK));
    this.sqArray = MEM.getAddress(ring + Layout.URING_SQ_ARRAY);
    this.sqes = MEM.getAddress(ring + Layout.URING_SQ_SQES);
    this.cqHead = MEM.getAddress(ring + Layout.URING_CQ_KHEAD);
    this.cqTail = MEM.getAddress(ring + Layout.URING_CQ_KTAIL);
    this.cqMask = MEM.getInt(MEM.getAddress(ring + Layout.URING_CQ_KRING_MASK));
    this.cqes = MEM.getAddress(ring + Layout.URING_CQ_CQES);
    this.headerAllocation = MEM.allocateMemory(2L * PAGE, true);
    this.header = align(headerAllocation);
    this.regionAllocation = MEM.allocateMemory(PAGE + PREFIX + (long) payloadCapacity, true);
    this.region = align(regionAllocation);
    this.payload = region + PREFIX;
    this.iov = MEM.allocateMemory(2L * Layout.IOV_SIZEOF, true);
    MEM.putAddress(iov + Layout.IOV_BASE, header);
    MEM.putLong(iov + Layout.IOV_LEN, PAGE);
    MEM.putAddress(iov + Layout.IOV_SIZEOF + Layout.IOV_BASE, payload);
    MEM.putLong(iov + Layout.IOV_SIZEOF + Layout.IOV_LEN, payloadCapacity);
  }

  private static long align(long address) {
    return (address + PAGE - 1) & -PAGE;
  }

  /**
   * A ring for queue {@code qid} of the FUSE connection {@code fuseFd}, whose entry takes payloads
   * of {@code payloadCapacity} bytes (the kernel asks for at least its largest: max_write, or
   * max_pages pages).
   *
   * @throws IllegalStateException when the kernel refuses an io_uring
   */
  static Ring open(Native.LibUring lib, int fuseFd, int qid, int payloadCapacity) {
    long ring = MEM.allocateMemory(Layout.URING_SIZEOF, true);
    long params = MEM.allocateMemory(Layout.URING_PARAMS_SIZEOF, true);
    try {
      MEM.putInt(params + Layout.URING_PARAMS_FLAGS, Layout.IORING_SETUP_SQE128);
      int res = lib.io_uring_queue_init_params(ENTRIES, ring, params);
      if (res < 0) {
        MEM.freeMemory(ring);
        throw new IllegalStateException("io_uring_setup failed: errno " + -res);
      }
    } finally {
      MEM.freeMemory(params);
    }
    return new Ring(lib, fuseFd, qid, payloadCapacity, ring);
  }

  /** The queue this ring's entry serves (the CPU whose callers it answers). */
  int qid() {
    return qid;
  }

  /**
   * Registers the entry and waits for its first request: 0 when one arrived, else a negative errno
   * (-EAGAIN: the connection is not initialized yet; -ENOTCONN: it has ended).
   */
  int register() {
    long sqe = nextSqe();
    MEM.putInt(sqe + Layout.SQE_CMD_OP, Layout.URING_CMD_REGISTER);
    MEM.putAddress(sqe + Layout.SQE_ADDR, iov);
    MEM.putInt(sqe + Layout.SQE_LEN, 2);
    return submitAndWait();
  }

  /**
   * Sends the reply {@link #reply} took (or {@code -EIO} if libfuse sent none) and waits for the
   * next request: 0 when one arrived, else a negative errno (-ENOTCONN: the connection has ended).
   */
  int commitAndFetch() {
    if (!replied) {
      LOG.log(System.Logger.Level.ERROR, "a request through io_uring had no reply; answering EIO");
      replyError(-EIO);
    }
    inRequest = false;
    long sqe = nextSqe();
    MEM.putInt(sqe + Layout.SQE_CMD_OP, Layout.URING_CMD_COMMIT_AND_FETCH);
    MEM.putLong(sqe + Layout.SQE_CMD_COMMIT_ID, commitId);
    return submitAndWait();
  }

  /**
   * Lays the request that arrived out as one buffer ({@link #requestAddress}, {@link #requestSize})
   * for libfuse; false (and the request answered with EIO) when its sizes make no sense.
   */
  boolean next() {
    commitId = MEM.getLong(header + Layout.URING_HEADER_COMMIT_ID);
    replied = false;
    inRequest = true;
    long len = Integer.toUnsignedLong(MEM.getInt(header + Layout.URING_HEADER_IN_OUT));
    long payloadSize = Integer.toUnsignedLong(MEM.getInt(header + Layout.URING_HEADER_PAYLOAD_SZ));
    long opSize = len - Layout.IN_HEADER_SIZEOF - payloadSize;
    if (opSize < 0 || opSize > Layout.URING_HEADER_OP_IN_SIZE || payloadSize > payloadCapacity) {
      LOG.log(
          System.Logger.Level.ERROR,
          "a request through io_uring of "
              + len
              + " bytes with a payload of "
              + payloadSize
              + " does not fit its buffers; answering EIO");
      replyError(-EIO);
      return false;
    }
    long start = payload - opSize - Layout.IN_HEADER_SIZEOF;
    MEM.copyMemory(header + Layout.URING_HEADER_IN_OUT, start, Layout.IN_HEADER_SIZEOF);
    MEM.copyMemory(header + Layout.URING_HEADER_OP_IN, start + Layout.IN_HEADER_SIZEOF, opSize);
    requestAddress = start;
    requestSize = (int) len;
    return true;
  }

  long requestAddress() {
    return requestAddress;
  }

  int requestSize() {
    return requestSize;
  }

  /** Where a view of requests may start, and how long it may be: the whole request area. */
  long viewAddress() {
    return region;
  }

  int viewCapacity() {
    return PREFIX + payloadCapacity;
  }

  /** Whether libfuse's replies on this thread go to this ring (a request is being served). */
  boolean inRequest() {
    return inRequest;
  }

  /**
   * Takes libfuse's reply ({@code count} iovecs: the out header, then the answer) into the entry's
   * buffers; returns the bytes taken, as writev would.
   */
  long reply(long iovs, int count) {
    long total = 0;
    long at = 0;
    for (int i = 0; i < count; i++) {
      long base = MEM.getAddress(iovs + (long) i * Layout.IOV_SIZEOF + Layout.IOV_BASE);
      long len = MEM.getLong(iovs + (long) i * Layout.IOV_SIZEOF + Layout.IOV_LEN);
      total += len;
      if (i == 0) {
        MEM.copyMemory(base, header + Layout.URING_HEADER_IN_OUT, Math.min(len, 16));
        continue;
      }
      if (at + len > payloadCapacity) {
        LOG.log(
            System.Logger.Level.ERROR, "a reply of over " + (at + len) + " bytes; answering EIO");
        replyError(-EIO);
        return total;
      }
      if (base < region + PREFIX + payloadCapacity && base + len > payload + at) {
        byte[] b = new byte[(int) len]; // the answer lies in the request's own buffer
        MEM.getByteArray(base, b, 0, b.length);
        MEM.putByteArray(payload + at, b, 0, b.length);
      } else {
        MEM.copyMemory(base, payload + at, len);
      }
      at += len;
    }
    MEM.putInt(header + Layout.URING_HEADER_PAYLOAD_SZ, (int) at);
    replied = true;
    return total;
  }

  /** Answers the request with {@code error} (negative errno) and nothing else. */
  private void replyError(int error) {
    long unique = MEM.getLong(header + Layout.URING_HEADER_IN_OUT + 8);
    MEM.putInt(header + Layout.URING_HEADER_IN_OUT, 16);
    MEM.putInt(header + Layout.URING_HEADER_IN_OUT + Layout.OUT_ERROR, error);
    MEM.putLong(header + Layout.URING_HEADER_IN_OUT + 8, unique);
    MEM.putInt(header + Layout.URING_HEADER_PAYLOAD_SZ, 0);
    replied = true;
  }

  /** The next submission entry, zeroed and filled with what every command of the entry shares. */
  private long nextSqe() {
    int tail = MEM.getInt(sqTail); // only this thread moves the tail
    int index = (int) (tail & sqMask);
    long sqe = sqes + (long) index * Layout.SQE_SIZEOF;
    MEM.setMemory(sqe, Layout.SQE_SIZEOF, (byte) 0);
    MEM.putByte(sqe + Layout.SQE_OPCODE, (byte) Layout.IORING_OP_URING_CMD);
    MEM.putInt(sqe + Layout.SQE_FD, fuseFd);
    MEM.putLong(sqe + Layout.SQE_USER_DATA, qid);
    MEM.putShort(sqe + Layout.SQE_CMD_QID, (short) qid);
    MEM.putInt(sqArray + 4L * index, index);
    return sqe;
  }

  /** Publishes the prepared entry, enters the ring and returns the result of one completion. */
  private int submitAndWait() {
    VarHandle.releaseFence(); // the entry's bytes before the tail that publishes it
    MEM.putInt(sqTail, MEM.getInt(sqTail) + 1);
    while (true) {
      int toSubmit = MEM.getInt(sqTail) - MEM.getInt(sqHead); // what the kernel has not taken
      int res = lib.io_uring_enter(ringFd, toSubmit, 1, Layout.IORING_ENTER_GETEVENTS, 0);
      if (res < 0 && res != -EINTR && res != -EAGAIN) {
        return res;
      }
      int head = MEM.getInt(cqHead);
      int tail = MEM.getInt(cqTail);
      VarHandle.acquireFence(); // the completion's bytes after the tail that published it
      if (head != tail) {
        int result = MEM.getInt(cqes + (head & cqMask) * (long) Layout.CQE_SIZEOF + Layout.CQE_RES);
        VarHandle.releaseFence();
        MEM.putInt(cqHead, head + 1);
        return result;
      }
    }
  }

  @Override
  public void close() {
    lib.io_uring_queue_exit(ring);
    MEM.freeMemory(ring);
    MEM.freeMemory(headerAllocation);
    MEM.freeMemory(regionAllocation);
    MEM.freeMemory(iov);
  }
}
