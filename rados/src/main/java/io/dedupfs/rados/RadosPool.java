package io.dedupfs.rados;

import io.dedupfs.engine.Hash;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One client's connection to a RADOS pool that keeps blocks as objects named by their hash (hex),
 * each with its reference count in an omap key that the OSD's {@code numops} object class updates.
 * Several clients (hosts) may take and release the same blocks at once: every change to an object
 * is one compound operation that its primary OSD applies atomically, so a block is created once,
 * counted once per take and removed once, when the last reference goes.
 *
 * <p>Every call waits for the OSD's answer, at most the timeout given to {@link #connect}; no
 * answer in time is a {@link RadosTimeoutException} (and whether a write took effect is then
 * unknown), every other failure a {@link RadosException}. Thread-safe: librados serves many threads
 * on one connection. {@link #close} only after every call has returned.
 */
public final class RadosPool implements AutoCloseable {
  /** The omap key that holds an object's reference count, as numops' decimal text. */
  static final String REFS = "refs";

  private static final int ENOENT = 2;
  private static final int EEXIST = 17;
  private static final int ECANCELED = 125;
  private static final byte[] ADD_ONE = numopsAdd(1);
  private static final byte[] ADD_MINUS_ONE = numopsAdd(-1);
  private static final byte[] ZERO = "0".getBytes(StandardCharsets.US_ASCII);

  private final Librados.Lib rados;
  private final String pool;
  private final long cluster;
  private final long io;
  private final AtomicBoolean closed = new AtomicBoolean();

  private RadosPool(Librados.Lib rados, String pool, long cluster, long io) {
    this.rados = rados;
    this.pool = pool;
    this.cluster = cluster;
    this.io = io;
  }

  /**
   * Connects as {@code client.<clientId>} with the cluster configuration (and keyring) named by
   * {@code conf}, to {@code pool}. {@code timeout} (whole seconds, at least one) bounds every later
   * call and the connection itself: it sets {@code rados_osd_op_timeout}, {@code
   * rados_mon_op_timeout} and {@code client_mount_timeout}.
   */
  public static RadosPool connect(Path conf, String clientId, String pool, Duration timeout)
      throws IOException {
    if (timeout.toSeconds() < 1) {
      throw new IllegalArgumentException(
          "the RADOS timeout is whole seconds, at least 1: " + timeout);
    }
    String where = "pool " + pool + " as client." + clientId + " with " + conf;
    Librados.Lib rados;
    try {
      rados = Librados.lib();
    } catch (UnsatisfiedLinkError e) {
      throw new RadosException(
          "cannot load " + Librados.LIBRADOS + " (install ceph-common: scripts/deps.sh)", e);
    }
    long[] out = new long[1];
    check(rados.rados_create2(out, "ceph", "client." + clientId, 0), "rados_create2 for " + where);
    long cluster = out[0];
    try {
      check(rados.rados_conf_read_file(cluster, conf.toString()), "reading " + conf);
      String seconds = Long.toString(timeout.toSeconds());
      for (String option :
          new String[] {"rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"}) {
        check(rados.rados_conf_set(cluster, option, seconds), "setting " + option);
      }
      check(rados.rados_connect(cluster), "connecting to " + where);
      check(rados.rados_ioctx_create(cluster, pool, out), "opening " + where);
      return new RadosPool(rados, pool, cluster, out[0]);
    } catch (IOException | RuntimeException e) {
      rados.rados_shutdown(cluster);
      throw e;
    }
  }

  /**
   * Takes a reference to block {@code hash} with these bytes: adds one to the object's count, or
   * creates the object with the content and the count one. Returns whether this call created it.
   */
  public boolean take(Hash hash, byte[] content) throws IOException {
    String oid = hash.toString();
    while (true) {
      int r = operate(oid, op -> addToCount(op, ADD_ONE));
      if (r == 0) {
        return false;
      }
      if (r != -ENOENT) {
        throw RadosException.of("take " + describe(oid) + ": adding a reference", r);
      }
      r =
          operate(
              oid,
              op -> {
                rados.rados_write_op_create(op, Librados.CREATE_EXCLUSIVE, null);
                rados.rados_write_op_write_full(op, content, content.length);
                rados.rados_write_op_exec(op, "numops", "add", ADD_ONE, ADD_ONE.length, 0);
              });
      if (r == 0) {
        return true;
      }
      if (r != -EEXIST) {
        throw RadosException.of("take " + describe(oid) + ": creating it", r);
      }
      // Another client created it between our two operations: count on it.
    }
  }

  /**
   * Releases a reference to block {@code hash}: subtracts one from its count and removes the object
   * if that was the last reference and no client took a new one meanwhile. Returns whether this
   * call removed it. A block that is not there (already removed by another client) is released.
   */
  public boolean release(Hash hash) throws IOException {
    String oid = hash.toString();
    int r = operate(oid, op -> addToCount(op, ADD_MINUS_ONE));
    if (r == -ENOENT) {
      return false;
    }
    if (r != 0) {
      throw RadosException.of("release " + describe(oid) + ": dropping a reference", r);
    }
    r =
        operate(
            oid,
            op -> {
              rados.rados_write_op_assert_exists(op);
              rados.rados_write_op_omap_cmp(op, REFS, Librados.CMPXATTR_OP_EQ, ZERO, 1, 0);
              rados.rados_write_op_remove(op);
            });
    if (r == 0) {
      return true;
    }
    if (r == -ECANCELED || r == -ENOENT) {
      return false; // still referenced, or removed by the client that released it last
    }
    throw RadosException.of("release " + describe(oid) + ": removing it", r);
  }

  /** The stored bytes of block {@code hash}, or null when the pool does not hold it. */
  public byte[] read(Hash hash) throws IOException {
    String oid = hash.toString();
    long[] size = new long[1];
    int r = rados.rados_stat(io, oid, size, 0);
    if (r == -ENOENT) {
      return null;
    }
    check(r, "stat " + describe(oid));
    if (size[0] > Integer.MAX_VALUE - 8) {
      throw new RadosException("read " + describe(oid) + ": too large, " + size[0] + " bytes");
    }
    // Blocks are written once, whole: the size cannot change, only the object disappear.
    byte[] content = new byte[(int) size[0]];
    r = rados.rados_read(io, oid, content, content.length, 0);
    if (r == -ENOENT) {
      return null;
    }
    check(r, "read " + describe(oid));
    if (r != content.length) {
      throw new RadosException(
          "read " + describe(oid) + ": got " + r + " of " + content.length + " bytes");
    }
    return content;
  }

  /** The reference count of block {@code hash}, 0 when the pool does not hold it. */
  public long count(Hash hash) throws IOException {
    String oid = hash.toString();
    long op = rados.rados_create_read_op();
    long iter = 0;
    try {
      long[] out = new long[1];
      rados.rados_read_op_omap_get_vals2(op, null, REFS, 2, out, 0, 0);
      iter = out[0];
      int r = rados.rados_read_op_operate(op, io, oid, Librados.OPERATION_NOFLAG);
      if (r == -ENOENT) {
        return 0;
      }
      check(r, "count " + describe(oid));
      long[] key = new long[1];
      long[] val = new long[1];
      long[] len = new long[1];
      while (rados.rados_omap_get_next(iter, key, val, len) == 0 && key[0] != 0) {
        if (REFS.equals(cString(key[0]))) {
          byte[] text = new byte[(int) len[0]];
          Librados.MEM.getByteArray(val[0], text, 0, text.length);
          return (long) Double.parseDouble(new String(text, StandardCharsets.US_ASCII));
        }
      }
      throw new RadosException("count " + describe(oid) + ": it has no " + REFS + " key");
    } finally {
      if (iter != 0) {
        rados.rados_omap_get_end(iter);
      }
      rados.rados_release_read_op(op);
    }
  }

  /** Whether the pool holds block {@code hash}. */
  public boolean exists(Hash hash) throws IOException {
    String oid = hash.toString();
    int r = rados.rados_stat(io, oid, new long[1], 0);
    if (r == -ENOENT) {
      return false;
    }
    check(r, "stat " + describe(oid));
    return true;
  }

  /** How many objects the pool holds, counted by listing them all (for tests and checks). */
  public long objectCount() throws IOException {
    long[] out = new long[1];
    check(rados.rados_nobjects_list_open(io, out), "listing pool " + pool);
    long ctx = out[0];
    try {
      long n = 0;
      int r;
      while ((r = rados.rados_nobjects_list_next(ctx, out, 0, 0)) == 0) {
        n++;
      }
      if (r != -ENOENT) {
        throw RadosException.of("listing pool " + pool, r);
      }
      return n;
    } finally {
      rados.rados_nobjects_list_close(ctx);
    }
  }

  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      rados.rados_ioctx_destroy(io);
      rados.rados_shutdown(cluster);
    }
  }

  /** Asserts that the object exists (numops alone would create it empty), then adds to REFS. */
  private void addToCount(long op, byte[] numopsInput) {
    rados.rados_write_op_assert_exists(op);
    rados.rados_write_op_exec(op, "numops", "add", numopsInput, numopsInput.length, 0);
  }

  private interface OpBuilder {
    void build(long op);
  }

  /** Builds one compound write operation and runs it on {@code oid}: 0 or a negative errno. */
  private int operate(String oid, OpBuilder builder) {
    long op = rados.rados_create_write_op();
    try {
      builder.build(op);
      return rados.rados_write_op_operate(op, io, oid, 0, Librados.OPERATION_NOFLAG);
    } finally {
      rados.rados_release_write_op(op);
    }
  }

  private String describe(String oid) {
    return "block " + oid + " in pool " + pool;
  }

  private static void check(int r, String what) throws RadosException {
    if (r < 0) {
      throw RadosException.of(what, r);
    }
  }

  /** numops' "add" input: the key and the decimal addend, each a Ceph string (le32 length). */
  private static byte[] numopsAdd(int addend) {
    byte[] key = REFS.getBytes(StandardCharsets.US_ASCII);
    byte[] value = Integer.toString(addend).getBytes(StandardCharsets.US_ASCII);
    ByteBuffer in = ByteBuffer.allocate(8 + key.length + value.length);
    in.order(ByteOrder.LITTLE_ENDIAN);
    in.putInt(key.length).put(key).putInt(value.length).put(value);
    return in.array();
  }

  private static String cString(long address) {
    return new String(Librados.MEM.getZeroTerminatedByteArray(address), StandardCharsets.US_ASCII);
  }
}
