package io.dedupfs.engine;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.lmdbjava.Dbi;
import org.lmdbjava.DbiFlags;
import org.lmdbjava.Env;
import org.lmdbjava.EnvFlags;
import org.lmdbjava.LmdbException;
import org.lmdbjava.LmdbNativeException;
import org.lmdbjava.Txn;

/**
 * The one LMDB environment of a store and its tables (see FORMAT.md). Every transaction goes
 * through {@link #read} or {@link #write}; lmdbjava types stay inside this package.
 *
 * <p>Locks: {@link #writer} admits one write transaction at a time (LMDB allows only one; holding
 * a Java lock keeps waiting threads visible to Java tools). {@link #mapLock} is held shared by
 * every transaction and exclusively only while the map is resized, which LMDB requires to happen
 * with no transaction open in the process. Order: writer, then mapLock.
 */
final class Lmdb implements AutoCloseable {
  /** What {@code meta} holds under {@code magic} in every dedupfs store. */
  static final String MAGIC = "dedupfs";
  /** The one format this code reads and writes: FORMAT.md. */
  static final int FORMAT_VERSION = 1;
  /** Address space only: the file grows as pages are written, not to the map's size. */
  static final long DEFAULT_MAP_SIZE = 1L << 40;
  private static final int EIO = 5;
  private static final int ENOSPC = 28;
  private static final int EDQUOT = 122;
  /** Below this much free space, an EIO from LMDB is taken for a full disk (see {@link #write}). */
  private static final long NEARLY_FULL = 1 << 20;

  final Env<ByteBuffer> env;
  final Dbi<ByteBuffer> meta;
  final Dbi<ByteBuffer> inodes;
  final Dbi<ByteBuffer> dirents;
  final Dbi<ByteBuffer> xattrs;
  final Dbi<ByteBuffer> blocks;
  final Dbi<ByteBuffer> refs;
  final Dbi<ByteBuffer> pending;
  final Dbi<ByteBuffer> orphans;
  final int pageSize;
  /** The store has no format record yet: it is being created (or its creation was interrupted before its first commit). */
  final boolean isNew;
  /** The most bytes a key may hold after a 32-byte hash. */
  final int maxKeyTail;
  private final Path dir;

  private final ReentrantLock writer = new ReentrantLock();
  private final ReentrantReadWriteLock mapLock = new ReentrantReadWriteLock();

  /** A unit of work inside one transaction; a write may run more than once (after a map resize). */
  @FunctionalInterface
  interface TxnWork<T> {
    T run(Txn<ByteBuffer> txn) throws IOException;
  }

  /**
   * Opens the environment in {@code dir} and checks its format record before touching anything
   * else; creates the tables only when {@code fresh} (the directory was empty) or when a
   * creation was interrupted before its first commit.
   */
  Lmdb(Path dir, boolean readOnly, boolean fresh, long mapSize) throws StoreException {
    EnvFlags[] flags =
        readOnly
            ? new EnvFlags[] {EnvFlags.MDB_NOTLS, EnvFlags.MDB_RDONLY_ENV}
            : new EnvFlags[] {EnvFlags.MDB_NOTLS};
    this.dir = dir;
    File file = dir.toFile();
    try {
      env = Env.create().setMapSize(mapSize).setMaxDbs(16).setMaxReaders(1024).open(file, flags);
    } catch (LmdbException e) {
      throw new StoreException(dir + " does not hold a readable LMDB environment: " + e.getMessage());
    }
    try {
      env.readerCheck(); // frees reader slots that a killed process left behind
      meta = env.openDbi("meta", fresh ? new DbiFlags[] {DbiFlags.MDB_CREATE} : new DbiFlags[0]);
      isNew = checkFormat(dir);
      if (isNew && readOnly) {
        throw new StoreException(dir + " holds no dedupfs store yet, and a read-only open cannot create one");
      }
      DbiFlags[] create = isNew ? new DbiFlags[] {DbiFlags.MDB_CREATE} : new DbiFlags[0];
      inodes = env.openDbi("inodes", create);
      dirents = env.openDbi("dirents", create);
      xattrs = env.openDbi("xattrs", create);
      blocks = env.openDbi("blocks", create);
      refs = env.openDbi("refs", create);
      pending = env.openDbi("pending", create);
      orphans = env.openDbi("orphans", create);
    } catch (LmdbException e) {
      env.close();
      throw new StoreException(dir + " is an LMDB environment but not a dedupfs store: " + e.getMessage());
    } catch (StoreException e) {
      env.close();
      throw e;
    }
    pageSize = env.stat().pageSize;
    maxKeyTail = env.getMaxKeySize() - Hash.SIZE;
  }

  /** Refuses another program's environment or another format version; true when there is no format record yet. */
  private boolean checkFormat(Path dir) throws StoreException {
    try (Txn<ByteBuffer> txn = env.txnRead()) {
      if (meta.stat(txn).entries == 0) {
        return true;
      }
      String magic = metaString(txn, "magic");
      if (!MAGIC.equals(magic)) {
        throw new StoreException(dir + " is an LMDB environment but not a dedupfs store");
      }
      String version = metaString(txn, "formatVersion");
      if (!Integer.toString(FORMAT_VERSION).equals(version)) {
        throw new StoreException("the store " + dir + " has format version " + version
            + "; this dedupfs reads version " + FORMAT_VERSION + " only");
      }
      return false;
    }
  }

  /** A text record of {@code meta}, or null. */
  String metaString(Txn<ByteBuffer> txn, String key) {
    ByteBuffer v = meta.get(txn, key().put(key.getBytes(StandardCharsets.US_ASCII)).flip());
    return v == null ? null : new String(bytes(v), StandardCharsets.UTF_8);
  }

  <T> T read(TxnWork<T> work) throws IOException {
    mapLock.readLock().lock();
    try (Txn<ByteBuffer> txn = env.txnRead()) {
      return work.run(txn);
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /**
   * Runs {@code work} in a write transaction and commits it durably. A full map is grown and the
   * work run again; a full disk aborts the transaction and throws {@link StoreFullException},
   * leaving the store as it was.
   */
  <T> T write(TxnWork<T> work) throws IOException {
    writer.lock();
    try {
      while (true) {
        try {
          return writeOnce(work);
        } catch (Env.MapFullException e) {
          growMap(e);
        } catch (LmdbNativeException e) {
          if (isDiskFull(e.getResultCode())) {
            throw new StoreFullException("no space left on the disk under the store " + dir, e);
          }
          throw new IOException("LMDB: " + e.getMessage(), e);
        }
      }
    } finally {
      writer.unlock();
    }
  }

  private <T> T writeOnce(TxnWork<T> work) throws IOException {
    mapLock.readLock().lock();
    try (Txn<ByteBuffer> txn = env.txnWrite()) {
      T result = work.run(txn);
      txn.commit();
      return result;
    } finally {
      mapLock.readLock().unlock();
    }
  }

  /**
   * LMDB reports ENOSPC or EDQUOT when a write fails outright, but EIO when it was short, as the
   * last write to a full disk is: so EIO counts as a full disk when almost nothing is free.
   */
  private boolean isDiskFull(int rc) {
    if (rc == ENOSPC || rc == EDQUOT) {
      return true;
    }
    try {
      return rc == EIO && Files.getFileStore(dir).getUnallocatedSpace() < NEARLY_FULL;
    } catch (IOException e) {
      return false;
    }
  }

  private void growMap(Env.MapFullException cause) throws StoreFullException {
    mapLock.writeLock().lock();
    try {
      long size = env.info().mapSize;
      if (size >= Long.MAX_VALUE / 4) {
        throw new StoreFullException("the store's map cannot grow beyond " + size + " bytes", cause);
      }
      env.setMapSize(size * 2);
    } finally {
      mapLock.writeLock().unlock();
    }
  }

  @Override
  public void close() {
    mapLock.writeLock().lock();
    try {
      env.close();
    } finally {
      mapLock.writeLock().unlock();
    }
  }

  // ---- small direct buffers, one set per thread: LMDB needs direct memory for keys and values.
  // A buffer is only borrowed for the duration of one LMDB call, which copies it.

  private static final ThreadLocal<ByteBuffer> KEY = ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(512));
  private static final ThreadLocal<ByteBuffer> VAL = ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(64 * 1024));

  static ByteBuffer key() {
    return KEY.get().clear();
  }

  static ByteBuffer key(long id) {
    return key().putLong(id).flip();
  }

  static ByteBuffer key(Hash hash) {
    ByteBuffer b = key();
    hash.writeTo(b);
    return b.flip();
  }

  static ByteBuffer value(int capacity) {
    ByteBuffer b = VAL.get();
    if (b.capacity() < capacity) {
      b = ByteBuffer.allocateDirect(Integer.highestOneBit(capacity) << 1);
      VAL.set(b);
    }
    return b.clear();
  }

  static byte[] bytes(ByteBuffer b) {
    byte[] out = new byte[b.remaining()];
    b.get(b.position(), out);
    return out;
  }
}
