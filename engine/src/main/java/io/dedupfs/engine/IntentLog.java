package io.dedupfs.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.zip.CRC32C;

/**
 * The intent log, {@code intent.log}: what an fsync covers is appended here and made durable with
 * one sequential write and one device flush, and folded into the files' trees later by ordinary
 * commits. See FORMAT.md, "Intent log".
 *
 * <p>A fixed-size file written in place: a 512-byte header, then records in a ring, each starting
 * on a 512-byte boundary. The file is filled with zeros when it is made, so an fdatasync after an
 * append writes data only, never file metadata. A record is needed until its file's commit that
 * covers it is durable ({@link #folded}); {@link #append} never overwrites a record still needed,
 * and refuses (returns null) when the ring has no room: the caller then commits instead.
 *
 * <p>Positions are virtual: they only grow; a record at virtual position v is at {@code HEADER + v
 * % capacity} in the file, and never straddles the ring's end.
 *
 * <p>Two ways of making records durable, both a group commit: fsyncs that arrive while the log is
 * being written share the next write and its device flush. Where the file system takes direct I/O
 * ({@link #direct}), records are written with O_DIRECT and O_DSYNC at 4 KiB-aligned offsets, one
 * write at a time: a thread that syncs while no write is going on writes every record appended so
 * far that lies next to the first in the ring (a batch, {@link #BATCH_BYTES} at most, longer for
 * one long record), and the write returns once they are on the device. One write at a time, because
 * the device flushes that O_DSYNC writes imply may not overlap: on this project's machine of
 * 2026-12-04, four threads each writing its own 8 KiB record wrote no more records a second than
 * one thread (7,524 against 7,298, fio), and one 32 KiB write cost a third more than one of 8 KiB;
 * where they do overlap (1.9 times one thread's rate on the machine of 2026-12-02), a batch of four
 * records still costs one write, a third longer than one record's. Elsewhere (tmpfs) a record is
 * written into the page cache when it is appended, and one {@link #sync} flushes for every waiter.
 * In both ways {@link #sync} of a file's record returns once that record and every earlier record
 * of the same file are durable: replay stops at the first record of a file that is missing
 * (FORMAT.md), so a later record alone would not do.
 *
 * <p>Locks: the monitor of this object guards the ring (head, sequence numbers, the records still
 * needed and their states, the batch being written) and is held for a buffered append's write,
 * never for a direct write; waiters for direct writes wait on it. {@link #syncLock} guards the
 * durable position of buffered writes and is never held during a flush. Neither is held while
 * waiting for the other.
 */
final class IntentLog implements AutoCloseable {
  static final String FILE = "intent.log";

  /** The {@code meta} key of the log's current id: records of any other id are not read. */
  static final String META_ID = "logId";

  /** The default size of the file: the ring holds this much less one header block. */
  static final long DEFAULT_BYTES = 128L << 20;

  static final int ALIGN = 512;

  /** Where direct writes start and how long they are: the page size, which direct I/O needs. */
  static final int DIRECT_ALIGN = 4096;

  private static final int HEADER = ALIGN;
  private static final byte[] FILE_MAGIC = "dedupfs intent log\n".getBytes(StandardCharsets.UTF_8);

  /**
   * The log's format: 2 since a record may follow one at or below its file's folded row (FORMAT.md,
   * "Intent log"), which code of format 1 would not replay; a log of format 1 is read as it is and
   * marked 2 by a writable open before it takes a record.
   */
  private static final int FILE_VERSION = 2;

  private static final int RECORD_MAGIC = 0x44444c47; // "DDLG"

  /** Bytes of a record before its ranges. */
  static final int RECORD_HEADER = 84;

  /** Bytes before each range's data: offset (8) and length (4). */
  static final int RANGE_HEADER = 12;

  private final FileChannel ch;

  /** The log opened with O_DIRECT and O_DSYNC, or null where the file system refuses it. */
  private final FileChannel direct;

  private volatile long logId;
  private final long capacity;

  /**
   * What the log did since it was opened, for {@code dedupfs stats}: records appended and their
   * bytes, appends refused for want of room (the fsync then committed), and the writes that made
   * records durable (direct writes of batches, or flushes of the page cache) with how long each
   * took, its device flush included; and how often it was found half full of records not yet folded
   * ({@link #foldingForRoom}). Atomics: counted without the log's locks.
   */
  private final LongAdder recordsAppended = new LongAdder();

  private final LongAdder bytesAppended = new LongAdder();
  private final LongAdder refused = new LongAdder();
  private final LongAdder foldsForRoom = new LongAdder();
  private final LongAdder writes = new LongAdder();
  private final LongAdder writeNanos = new LongAdder();

  /** Writes by how long they took: slot b counts those of 2^b to 2^(b+1) microseconds. */
  private final AtomicLongArray writeMicros = new AtomicLongArray(32);

  // ---- guarded by this
  private long nextSeq;
  private long head;
  private final TreeMap<Long, Needed> needed = new TreeMap<>();
  private final Map<Long, ArrayDeque<Needed>> neededByIno = new HashMap<>();

  /**
   * Of {@link #neededByIno}, the records not yet on the device (direct writes only): pending, being
   * written or failed. {@link #sync} looks at these only, so that an fsync costs the same however
   * many durable records its file has waiting for a commit.
   */
  private final Map<Long, ArrayDeque<Needed>> unwrittenByIno = new HashMap<>();

  /**
   * The records whose bytes no thread has claimed yet (direct writes only), in the order of their
   * numbers, which is their order in the ring.
   */
  private final ArrayDeque<Needed> unclaimed = new ArrayDeque<>();

  /** A thread is writing a batch of records (direct writes only). */
  private boolean batchWriting;

  private volatile long appendedEnd;

  /** The intact records read when the log was opened, until {@link #recovered} is done. */
  private final List<Record> recovered = new ArrayList<>();

  // ---- guarded by syncLock
  private final Object syncLock = new Object();
  private long durableEnd;
  private boolean syncing;

  /**
   * A record not yet folded: whose it is, where it starts, how long it is in the ring and, for a
   * direct write, its bytes until they are written ({@code pending}; null for a record folded
   * before a batch claimed it: not written), whether a batch being written holds it ({@code
   * writing}), and whether that write failed. Guarded by the log's monitor.
   */
  private static final class Needed {
    final long seq;
    final long ino;
    final long start;
    final int size;
    ByteBuffer pending;
    boolean writing;
    boolean failed;

    /** Folded while its write was still going on: dropped once the write ends. */
    boolean foldedEarly;

    Needed(long seq, long ino, long start, long size, ByteBuffer pending) {
      this.seq = seq;
      this.ino = ino;
      this.start = start;
      this.size = (int) size;
      this.pending = pending;
    }

    boolean inFlight() {
      return pending != null || writing;
    }
  }

  /** A record read back from the file, found at {@code position} in the ring, {@code size} long. */
  record Record(
      long seq,
      long prevSeq,
      long ino,
      long truncateTo,
      long length,
      long mtimeNs,
      long ctimeNs,
      List<Range> ranges,
      long position,
      long size) {}

  /** Bytes of a file at an offset, as they were when the record was made. */
  record Range(long offset, byte[] data) {}

  /** Where an appended record ends (wait for it with {@link #sync}), and its sequence number. */
  record Appended(long seq, long end) {}

  private IntentLog(FileChannel ch, FileChannel direct, long logId, long capacity) {
    this.ch = ch;
    this.direct = direct;
    this.logId = logId;
    this.capacity = capacity;
  }

  /**
   * Makes a new log of {@code bytes} in {@code dir} (written in full with zeros and flushed, then
   * renamed into place), replacing any old one; with {@code elsewhere} (an absolute path, on
   * another file system), the log is made there and {@code dir}'s {@value #FILE} becomes a symbolic
   * link to it (FORMAT.md, "Files").
   */
  static void create(Path dir, long bytes, Path elsewhere) throws IOException {
    if (elsewhere != null) {
      requireNew(elsewhere);
    }
    long size = Math.max(HEADER + 64L * ALIGN, bytes / ALIGN * ALIGN);
    Path file = elsewhere == null ? dir.resolve(FILE) : elsewhere;
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (FileChannel c =
        FileChannel.open(
            tmp,
            StandardOpenOption.CREATE,
            StandardOpenOption.TRUNCATE_EXISTING,
            StandardOpenOption.WRITE)) {
      ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20);
      for (long at = 0; at < size; ) {
        zeros.clear().limit((int) Math.min(zeros.capacity(), size - at));
        at += c.write(zeros, at);
      }
      ByteBuffer h = ByteBuffer.allocate(HEADER);
      h.put(FILE_MAGIC).putInt(FILE_VERSION).putLong(size).flip();
      c.write(h, 0);
      c.force(true);
    }
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
    forceDirectory(file.getParent());
    if (elsewhere != null) {
      link(dir, elsewhere);
    }
  }

  /** Makes a new log of {@code bytes} in {@code dir}; see above. */
  static void create(Path dir, long bytes) throws IOException {
    create(dir, bytes, null);
  }

  /**
   * Moves the log of the store in {@code dir}, which the caller has locked (no open uses it), to
   * {@code elsewhere} (an absolute path of a file that does not exist, on another file system),
   * which {@value #FILE} then links to; or, with {@code elsewhere} null, back into {@code dir}. The
   * log is copied whole, records and all (they carry the store's log id, not their place), and
   * flushed before the link or the file takes the old one's name; only then is the old one deleted.
   * A crash at any point leaves {@value #FILE} naming a whole log, and at worst the other copy
   * behind. Returns the file the log is now in.
   */
  static Path move(Path dir, Path elsewhere) throws IOException {
    Path name = dir.resolve(FILE);
    Path old = linkedFile(dir);
    if (!Files.exists(name)) {
      throw new StoreException(
          "the intent log of "
              + dir
              + " is missing"
              + (old == null ? "" : ": " + name + " links to " + old + ", which is not there"));
    }
    if (elsewhere == null && old == null) {
      throw new StoreException("the intent log of " + dir + " is in the store already");
    }
    if (elsewhere != null) {
      requireNew(elsewhere);
    }
    Path file = elsewhere == null ? name : elsewhere;
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (FileChannel from = FileChannel.open(name, StandardOpenOption.READ);
        FileChannel to =
            FileChannel.open(
                tmp,
                StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
      // copied by hand, not transferTo: a reflink copy would share extents, and the first appends
      // would then change the file's metadata, which their flushes must not have to write
      ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
      for (long at = 0, size = from.size(); at < size; ) {
        b.clear();
        int n = from.read(b, at);
        if (n < 0) {
          throw new java.io.EOFException(name + " ended at " + at + " of " + size + " bytes");
        }
        b.flip();
        while (b.hasRemaining()) {
          at += to.write(b, at);
        }
      }
      to.force(true);
    }
    if (elsewhere == null) {
      Files.move(tmp, name, StandardCopyOption.ATOMIC_MOVE); // over the link
      forceDirectory(dir);
    } else {
      Files.move(tmp, elsewhere, StandardCopyOption.ATOMIC_MOVE);
      forceDirectory(elsewhere.getParent());
      link(dir, elsewhere); // over the file or the old link
    }
    if (old != null) {
      Files.delete(old);
    }
    return file;
  }

  /** Refuses a log file that exists (another store's log, say): a log goes into a new file. */
  private static void requireNew(Path file) throws IOException {
    if (Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      throw new StoreException(file + " exists: the intent log goes into a new file");
    }
  }

  /**
   * Makes {@code dir}'s {@value #FILE} a symbolic link to {@code file}, atomically (a link made
   * beside it, renamed over it), and durable.
   */
  private static void link(Path dir, Path file) throws IOException {
    Path link = dir.resolve(FILE + ".tmp");
    Files.deleteIfExists(link);
    Files.createSymbolicLink(link, file);
    Files.move(link, dir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE);
    forceDirectory(dir);
  }

  /** Makes what was renamed in {@code dir} durable. */
  private static void forceDirectory(Path dir) throws IOException {
    try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
      d.force(true);
    }
  }

  /**
   * The file that {@code dir}'s log link names, when its {@value #FILE} is a symbolic link (a log
   * made elsewhere by {@link #create}); null when it is not one.
   */
  static Path linkedFile(Path dir) throws IOException {
    Path link = dir.resolve(FILE);
    return Files.isSymbolicLink(link) ? link.resolveSibling(Files.readSymbolicLink(link)) : null;
  }

  /**
   * Opens the log in {@code dir} (read-only: for reading only) and reads every intact record of id
   * {@code logId} in it; the records are {@link #recovered}.
   */
  static IntentLog open(Path dir, long logId, boolean readOnly) throws IOException {
    return open(dir, logId, readOnly, true);
  }

  /**
   * As above; {@code tryDirect} false: records go through the page cache even where direct I/O
   * works.
   */
  static IntentLog open(Path dir, long logId, boolean readOnly, boolean tryDirect)
      throws IOException {
    Path file = dir.resolve(FILE);
    FileChannel ch;
    try {
      ch =
          readOnly
              ? FileChannel.open(file, StandardOpenOption.READ)
              : FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
    } catch (NoSuchFileException e) {
      throw new StoreException(
          "the store's intent log "
              + file
              + " is missing: writes that were fsynced since the last commit are lost with it");
    }
    try {
      ByteBuffer h = ByteBuffer.allocate(HEADER);
      ch.read(h, 0);
      h.flip();
      byte[] magic = new byte[FILE_MAGIC.length];
      long size = ch.size();
      if (h.remaining() < FILE_MAGIC.length + 12) {
        throw new StoreException(file + " is not a dedupfs intent log (too short)");
      }
      h.get(magic);
      int version = h.getInt();
      long declared = h.getLong();
      if (!java.util.Arrays.equals(magic, FILE_MAGIC) || version < 1 || version > FILE_VERSION) {
        throw new StoreException(
            file + " is not a dedupfs intent log of version 1 to " + FILE_VERSION);
      }
      if (declared != size || size <= HEADER) {
        throw new StoreException(file + " is " + size + " bytes long, not " + declared);
      }
      if (version < FILE_VERSION && !readOnly) {
        ch.write(ByteBuffer.allocate(4).putInt(0, FILE_VERSION), FILE_MAGIC.length);
        ch.force(false);
      }
      IntentLog log =
          new IntentLog(ch, readOnly || !tryDirect ? null : openDirect(file), logId, size - HEADER);
      log.scan();
      return log;
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw e;
    }
  }

  /** The log for direct, synchronous writes; null where the file system does not take them. */
  private static FileChannel openDirect(Path file) {
    try {
      OpenOption[] options = {
        StandardOpenOption.WRITE,
        StandardOpenOption.DSYNC,
        com.sun.nio.file.ExtendedOpenOption.DIRECT
      };
      FileChannel d = FileChannel.open(file, options);
      if (file.getFileSystem().provider().getFileStore(file).getBlockSize() > DIRECT_ALIGN) {
        d.close();
        return null;
      }
      return d;
    } catch (IOException | UnsupportedOperationException e) {
      return null; // tmpfs and others: written through the page cache and flushed
    }
  }

  /**
   * Whether records are written with O_DIRECT and O_DSYNC, each by the thread that waits for it.
   */
  boolean direct() {
    return direct != null;
  }

  /** The intact records found when the log was opened, in file order. */
  List<Record> recovered() {
    return recovered;
  }

  /**
   * Reads every intact record of this store; the next record's sequence number follows them. The
   * ring is read 4 MiB at a time and searched in memory: one read per 512-byte boundary of an empty
   * 128 MiB log was 262,144 system calls, most of a store's open.
   */
  private void scan() throws IOException {
    Window window = new Window(4 << 20);
    long maxSeq = 0;
    long pos = 0;
    while (pos < capacity) {
      ByteBuffer head = window.at(pos, RECORD_HEADER);
      int len = head.remaining() >= RECORD_HEADER ? recordLength(head) : -1;
      if (len < 0 || pos + len > capacity) {
        pos += ALIGN;
        continue;
      }
      ByteBuffer rec = window.at(pos, len);
      Record r = rec.remaining() == len ? decode(rec, pos) : null;
      if (r == null) {
        pos += ALIGN;
        continue;
      }
      recovered.add(r);
      maxSeq = Math.max(maxSeq, r.seq());
      pos += padded(len);
    }
    nextSeq = maxSeq + 1;
  }

  /** A stretch of the ring read into memory, moved forward as {@link #scan} goes. */
  private final class Window {
    private final ByteBuffer buf;
    private long start = -1;

    Window(int bytes) {
      buf = ByteBuffer.allocate(bytes).limit(0);
    }

    /** Bytes {@code pos} to {@code pos + len} of the ring, fewer at its end. */
    ByteBuffer at(long pos, int len) throws IOException {
      len = (int) Math.min(len, capacity - pos);
      if (len > buf.capacity()) {
        ByteBuffer b = ByteBuffer.allocate(len);
        readFully(b, HEADER + pos);
        return b.flip();
      }
      if (start < 0 || pos < start || pos + len > start + buf.limit()) {
        buf.clear().limit((int) Math.min(buf.capacity(), capacity - pos));
        readFully(buf, HEADER + pos);
        buf.flip();
        start = pos;
      }
      int from = (int) (pos - start);
      return buf.slice(from, Math.min(len, buf.limit() - from));
    }
  }

  private void readFully(ByteBuffer b, long at) throws IOException {
    while (b.hasRemaining()) {
      int n = ch.read(b, at);
      if (n < 0) {
        return;
      }
      at += n;
    }
  }

  /** The record length a header claims, or -1 when it is no header of this log. */
  private int recordLength(ByteBuffer b) {
    if (b.getInt(0) != RECORD_MAGIC || b.getLong(16) != logId) {
      return -1;
    }
    int len = b.getInt(4);
    return len >= RECORD_HEADER && len <= capacity ? len : -1;
  }

  /** The record in {@code b} if its checksum and layout hold, else null. */
  private Record decode(ByteBuffer b, long position) {
    int len = b.getInt(4);
    CRC32C crc = new CRC32C();
    crc.update(b.duplicate().position(12).limit(len));
    if ((int) crc.getValue() != b.getInt(8)) {
      return null;
    }
    b.position(24);
    long seq = b.getLong();
    long prev = b.getLong();
    long ino = b.getLong();
    long truncateTo = b.getLong();
    long length = b.getLong();
    long mtime = b.getLong();
    long ctime = b.getLong();
    int n = b.getInt();
    List<Range> ranges = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      if (b.remaining() < RANGE_HEADER) {
        return null;
      }
      long off = b.getLong();
      int rl = b.getInt();
      if (rl < 0 || rl > b.remaining()) {
        return null;
      }
      byte[] d = new byte[rl];
      b.get(d);
      ranges.add(new Range(off, d));
    }
    return new Record(
        seq, prev, ino, truncateTo, length, mtime, ctime, ranges, position, padded(len));
  }

  private static long padded(long len) {
    return padded(len, ALIGN);
  }

  private static long padded(long len, int align) {
    return (len + align - 1) / align * align;
  }

  /** How far apart, and how long, records are written. */
  private int writeAlign() {
    return direct == null ? ALIGN : DIRECT_ALIGN;
  }

  /** The file's size: its header and the ring. */
  long fileBytes() {
    return HEADER + capacity;
  }

  long capacity() {
    return capacity;
  }

  /**
   * A new record of {@code ranges} ranges holding {@code dataBytes} bytes, to fill and {@link
   * #append}: the header is written but for the sequence number and checksum.
   */
  ByteBuffer newRecord(
      long prevSeq,
      long ino,
      long truncateTo,
      long length,
      long mtimeNs,
      long ctimeNs,
      int ranges,
      long dataBytes) {
    long len = RECORD_HEADER + (long) ranges * RANGE_HEADER + dataBytes;
    if (len > Integer.MAX_VALUE - ALIGN) {
      throw new IllegalArgumentException("record too long");
    }
    ByteBuffer b = ByteBuffer.allocate((int) padded(len, writeAlign()));
    b.putInt(RECORD_MAGIC).putInt((int) len).putInt(0).putInt(0).putLong(logId).putLong(0);
    b.putLong(prevSeq).putLong(ino).putLong(truncateTo).putLong(length);
    b.putLong(mtimeNs).putLong(ctimeNs).putInt(ranges);
    return b;
  }

  /**
   * Appends a record made by {@link #newRecord} and filled: gives it the next sequence number, its
   * checksum and its place in the ring, and writes it into the page cache, or leaves it to {@link
   * #sync} to write directly. Not durable until {@link #sync}. Null when the ring has no room for
   * it until commits fold older records.
   */
  synchronized Appended append(long ino, ByteBuffer rec) throws IOException {
    int len = rec.getInt(4);
    long size = padded(len, writeAlign());
    long start = placeFor(size);
    long tail = needed.isEmpty() ? start : oldestNeededStart();
    if (size > capacity
        || Math.floorMod(start, capacity) + size > capacity
        || start + size - tail > capacity) {
      refused.increment();
      return null;
    }
    long seq = nextSeq++;
    rec.putLong(24, seq);
    CRC32C crc = new CRC32C();
    crc.update(rec.duplicate().position(12).limit(len));
    rec.putInt(8, (int) crc.getValue());
    rec.clear().limit((int) size);
    if (direct == null) {
      long at = HEADER + Math.floorMod(start, capacity);
      while (rec.hasRemaining()) {
        at += ch.write(rec, at);
      }
    }
    head = start + size;
    Needed n = new Needed(seq, ino, start, size, direct == null ? null : rec);
    needed.put(seq, n);
    neededByIno.computeIfAbsent(ino, k -> new ArrayDeque<>()).add(n);
    if (direct != null) {
      unwrittenByIno.computeIfAbsent(ino, k -> new ArrayDeque<>()).add(n);
      unclaimed.add(n);
    }
    appendedEnd = head;
    recordsAppended.increment();
    bytesAppended.add(size);
    return new Appended(seq, head);
  }

  /**
   * Where a record of {@code size} bytes goes: at the head, or past it to the next place a direct
   * write may start, or at the next lap's start when it would straddle the ring's end.
   */
  private long placeFor(long size) {
    long phys = Math.floorMod(head, capacity);
    long start = head + skipToAligned(phys);
    if (Math.floorMod(start, capacity) + size > capacity || start - head + phys >= capacity) {
      start = head + (capacity - phys); // the next lap: a record never straddles the end
      start += skipToAligned(0);
    }
    return start;
  }

  /** Bytes from ring position {@code phys} to the next one where this log's writes may start. */
  private long skipToAligned(long phys) {
    return Math.floorMod(-(HEADER + phys), (long) writeAlign());
  }

  /**
   * Returns once the record {@code seq} of {@code ino} and every earlier record of that file are
   * durable ({@code end}: where the record ends in the ring). With direct writes, this thread waits
   * for the batch being written, if any, then writes the next batch, which holds every record
   * appended meanwhile; otherwise one caller flushes for all who wait meanwhile. Either way, fsyncs
   * that arrive together share a write and a device flush (group commit). Throws when a write or
   * flush failed: the records may be lost, and the caller commits the file instead.
   */
  void sync(long ino, long seq, long end) throws IOException {
    if (direct == null) {
      sync(end);
      return;
    }
    while (true) {
      List<Needed> batch;
      synchronized (this) {
        ArrayDeque<Needed> q = unwrittenByIno.get(ino);
        Needed first = q == null ? null : q.peekFirst();
        if (first == null || first.seq > seq) {
          return;
        }
        for (Needed n : q) {
          if (n.seq > seq) {
            break;
          }
          if (n.failed) {
            throw new IOException("writing intent log record " + n.seq + " failed");
          }
        }
        if (batchWriting) {
          try {
            wait();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for the intent log");
          }
          continue;
        }
        batch = claimBatch();
      }
      write(batch);
    }
  }

  /** The most bytes one direct write takes, unless a single record is longer. */
  static final int BATCH_BYTES = 1 << 20;

  /**
   * Claims the next batch: pending records that follow each other in the ring, from the oldest,
   * {@link #BATCH_BYTES} at most (one record at least). Caller holds the monitor, and no batch is
   * being written.
   */
  private List<Needed> claimBatch() {
    List<Needed> batch = new ArrayList<>();
    long from = 0;
    long to = 0;
    for (Needed n; (n = unclaimed.peekFirst()) != null; ) {
      if (!batch.isEmpty() && (n.start != to || to + n.size - from > BATCH_BYTES)) {
        break; // the next lap, or enough for one write
      }
      unclaimed.pollFirst();
      if (batch.isEmpty()) {
        from = n.start;
      }
      to = n.start + n.size;
      n.writing = true;
      if (n.foldedEarly) {
        n.pending = null; // a durable commit holds it already: not written
      }
      batch.add(n);
    }
    if (batch.isEmpty()) {
      throw new IllegalStateException("a record not on the device is not pending");
    }
    batchWriting = true;
    return batch;
  }

  /**
   * Writes {@code batch}, claimed by this thread, in one O_DIRECT and O_DSYNC write. A record
   * folded before it was claimed is not written: zeros take its place.
   */
  private void write(List<Needed> batch) throws IOException {
    boolean done = false;
    try {
      Needed first = batch.get(0);
      Needed last = batch.get(batch.size() - 1);
      ByteBuffer buf = directBuffer((int) (last.start + last.size - first.start));
      for (Needed n : batch) {
        int at = (int) (n.start - first.start);
        if (n.pending != null) {
          buf.put(at, n.pending, 0, n.size);
        } else {
          buf.put(at, new byte[n.size]);
        }
      }
      long at = HEADER + Math.floorMod(first.start, capacity);
      long began = System.nanoTime();
      while (buf.hasRemaining()) {
        at += direct.write(buf, at);
      }
      wrote(System.nanoTime() - began);
      done = true;
    } finally {
      synchronized (this) {
        batchWriting = false;
        for (Needed n : batch) {
          n.pending = null;
          n.writing = false;
          n.failed = !done;
          if (done) {
            forget(unwrittenByIno, n);
          }
          if (n.foldedEarly) {
            drop(n);
          }
        }
        notifyAll();
      }
    }
  }

  /** The log was found half full of records not yet folded, and their files' commits queued. */
  void foldingForRoom() {
    foldsForRoom.increment();
  }

  private void wrote(long nanos) {
    writes.increment();
    writeNanos.add(nanos);
    long micros = Math.max(1, nanos / 1000);
    writeMicros.incrementAndGet(Math.min(31, 63 - Long.numberOfLeadingZeros(micros)));
  }

  /** See {@link #recordsAppended}, and {@link Datastore.LogActivity}. */
  Datastore.LogActivity activity() {
    long n = writes.sum();
    long p99 = 0;
    long below = 0;
    for (int b = 0; b < writeMicros.length() && n > 0; b++) {
      below += writeMicros.get(b);
      if (below * 100 >= n * 99) {
        p99 = 2L << b;
        break;
      }
    }
    return new Datastore.LogActivity(
        recordsAppended.sum(),
        bytesAppended.sum(),
        refused.sum(),
        foldsForRoom.sum(),
        n,
        n == 0 ? 0 : writeNanos.sum() / n / 1000,
        p99,
        neededBytes());
  }

  /**
   * {@code n} bytes of memory that direct I/O takes (page-aligned, outside the heap): a buffer this
   * thread keeps for batches up to {@link #BATCH_BYTES}, a new one for a longer record. (The JDK
   * would copy a heap buffer itself, but JDK 17's aligned temporary buffers fail to be freed.)
   */
  private static ByteBuffer directBuffer(int n) {
    ByteBuffer b = WRITE_BUFFER.get();
    if (b == null || b.capacity() < n) {
      b = ByteBuffer.allocateDirect(n + DIRECT_ALIGN).alignedSlice(DIRECT_ALIGN);
      if (n <= BATCH_BYTES) {
        WRITE_BUFFER.set(b);
      }
    }
    return b.clear().limit(n);
  }

  private static final ThreadLocal<ByteBuffer> WRITE_BUFFER = new ThreadLocal<>();

  /** Forgets a record: its space may be written over. Caller holds the monitor. */
  private void drop(Needed n) {
    needed.remove(n.seq);
    forget(neededByIno, n);
    forget(unwrittenByIno, n);
  }

  /** Removes {@code n} from its file's queue in {@code byIno}. Caller holds the monitor. */
  private static void forget(Map<Long, ArrayDeque<Needed>> byIno, Needed n) {
    ArrayDeque<Needed> q = byIno.get(n.ino);
    if (q != null && q.remove(n) && q.isEmpty()) {
      byIno.remove(n.ino);
    }
  }

  /**
   * Returns once everything appended up to virtual position {@code end} is on the device. One
   * caller flushes for all who wait meanwhile (group commit). For records written through the page
   * cache.
   */
  private void sync(long end) throws IOException {
    while (true) {
      synchronized (syncLock) {
        while (syncing && durableEnd < end) {
          try {
            syncLock.wait();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for the intent log");
          }
        }
        if (durableEnd >= end) {
          return;
        }
        syncing = true;
      }
      long target = appendedEnd; // every append that ended before this is covered by the flush
      boolean done = false;
      try {
        long began = System.nanoTime();
        ch.force(false);
        wrote(System.nanoTime() - began);
        done = true;
      } finally {
        synchronized (syncLock) {
          syncing = false;
          if (done) {
            durableEnd = Math.max(durableEnd, target);
          }
          syncLock.notifyAll();
        }
      }
    }
  }

  /**
   * The records of {@code ino} up to {@code seq} are folded into its durable tree (or the inode is
   * gone: {@code Long.MAX_VALUE}): their space may be written over.
   */
  synchronized void folded(long ino, long seq) {
    ArrayDeque<Needed> q = neededByIno.get(ino);
    if (q == null) {
      return;
    }
    for (Needed n : List.copyOf(q)) {
      if (n.seq > seq) {
        break;
      }
      if (n.inFlight()) {
        n.foldedEarly = true; // its space stays taken until its write ends
      } else {
        drop(n);
      }
    }
  }

  /** The sequence number of the last record appended (0 before any). */
  synchronized long lastSeq() {
    return nextSeq - 1;
  }

  /**
   * Goes on in the generation read at open, keeping {@code replayed} (records applied to files
   * whose commit could not be made yet: a full disk) until commits fold them: appends continue
   * after the newest record read.
   */
  synchronized void keep(List<Record> replayed) {
    Record newest = null;
    for (Record r : recovered) {
      if (newest == null || r.seq() > newest.seq()) {
        newest = r;
      }
    }
    if (newest == null) {
      return;
    }
    head = newest.position() + newest.size();
    appendedEnd = head;
    for (Record r : replayed) {
      // the ring as one lap ending at head: a record beyond head is of the lap before
      long start = r.position() < head ? r.position() : r.position() - capacity;
      Needed n = new Needed(r.seq(), r.ino(), start, r.size(), null);
      needed.put(r.seq(), n);
      neededByIno.computeIfAbsent(r.ino(), k -> new ArrayDeque<>()).add(n);
    }
    synchronized (syncLock) {
      durableEnd = head;
    }
  }

  /**
   * Starts a new generation of id {@code id}, once every record read at open is folded: numbers
   * start from 1 and the ring from its start; records of the old id are never read again.
   */
  void newGeneration(long id) {
    synchronized (this) {
      logId = id;
      nextSeq = 1;
      head = 0;
      needed.clear();
      neededByIno.clear();
      unwrittenByIno.clear();
      unclaimed.clear();
      appendedEnd = 0;
    }
    synchronized (syncLock) {
      durableEnd = 0;
    }
  }

  /** Bytes of the ring taken by records not yet folded. */
  synchronized long neededBytes() {
    return needed.isEmpty() ? 0 : head - oldestNeededStart();
  }

  /**
   * Where the oldest needed record starts: records follow each other in the ring in the order of
   * their numbers (those kept at open too, see {@link #keep}).
   */
  private long oldestNeededStart() {
    return needed.firstEntry().getValue().start;
  }

  /** The files with records not yet folded, oldest record first. */
  synchronized Collection<Long> inosWithNeeded() {
    Set<Long> out = new LinkedHashSet<>();
    for (Needed n : needed.values()) {
      out.add(n.ino);
    }
    return out;
  }

  @Override
  public void close() throws IOException {
    try (FileChannel c = ch) {
      if (direct != null) {
        direct.close();
      }
    }
  }
}
