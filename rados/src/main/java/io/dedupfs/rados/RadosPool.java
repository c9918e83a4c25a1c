package io.dedupfs.rados;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.Hash;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * One client's connection to a RADOS pool that keeps blocks as objects named by their hash (hex).
 * Each object records who holds a reference to it: one omap key {@code s.HOLDER} per holder (a
 * store, by its id), and their number in the omap key {@code refs}, which the OSD's {@code numops}
 * object class updates. A holder holds at most one reference to a block (a store counts its own
 * references in its LMDB), so taking and releasing are idempotent: a take or release retried after
 * a timeout or a crash never counts twice nor drops another holder's reference. Several clients
 * (hosts) may take and release the same blocks at once: every change to an object is one compound
 * operation that its primary OSD applies atomically, so a block is created once, counted once per
 * holder and removed once, when the last holder releases it. One object is no block: {@link
 * #REGISTRY}, the pool's list of its stores.
 *
 * <p>Every call waits for the OSD's answer, at most the timeout given to {@link #connect}; no
 * answer in time is a {@link RadosTimeoutException} (and whether a write took effect is then
 * unknown), every other failure a {@link RadosException}. Thread-safe: librados serves many threads
 * on one connection. {@link #close} only after every call has returned.
 */
public final class RadosPool implements BlockPool {
  /** The omap key that holds an object's reference count, as numops' decimal text. */
  static final String REFS = "refs";

  /** The prefix of the omap keys that mark each holder's reference: {@code s.HOLDER} = "1". */
  static final String HOLDER_PREFIX = "s.";

  /**
   * The object that lists the pool's stores (not a block: its name is no hash): one omap key {@code
   * s.HOLDER} per store, whose value describes it (host, directory, when registered).
   */
  static final String REGISTRY = "dedupfs.stores";

  /** How many registered stores one read of {@link #REGISTRY} returns. */
  private static final int REGISTRY_PAGE = 1000;

  private static final java.util.regex.Pattern BLOCK_NAME =
      java.util.regex.Pattern.compile("[0-9a-f]+");

  /** The size of the largest block (a store's largest leaf, 64 KiB): read in one call. */
  private static final int READ_AT_ONCE = 65536;

  /** The most holders {@link #holders} lists. */
  private static final int MAX_HOLDERS = 10_000;

  private static final java.util.regex.Pattern HOLDER =
      java.util.regex.Pattern.compile("[A-Za-z0-9._-]{1,64}");
  private static final byte[] HELD = {'1'};
  private static final byte[] NOT_HELD = new byte[1];

  private static final int ENOENT = 2;
  private static final int EEXIST = 17;
  private static final int ECANCELED = 125;
  private static final byte[] ADD_ONE = numopsAdd(1);
  private static final byte[] ADD_MINUS_ONE = numopsAdd(-1);
  private static final byte[] ZERO = "0".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] ONE = "1".getBytes(StandardCharsets.US_ASCII);

  private final Librados.Lib rados;
  private final String pool;
  private final long cluster;
  private final long io;
  private final long timeoutSeconds;

  /** The last call timed out: {@link #refreshMap} before the next. */
  private volatile boolean mapStale;

  private final AtomicBoolean closed = new AtomicBoolean();

  /** Whether the last {@link #release} removed its object: the case the next one tries first. */
  private volatile boolean releasesLast = true;

  private RadosPool(Librados.Lib rados, String pool, long cluster, long io, long timeoutSeconds) {
    this.rados = rados;
    this.pool = pool;
    this.cluster = cluster;
    this.io = io;
    this.timeoutSeconds = timeoutSeconds;
  }

  /** How a store names a RADOS pool: {@code rados:POOL}. */
  public static final String SCHEME = "rados:";

  /**
   * The timeout of the pools that {@link #open(BlockPool.Location)} connects to, in seconds: longer
   * than Ceph takes with its defaults to notice a dead OSD and move its placement groups (heartbeat
   * grace 20 s, then peering), so that such a failover is a pause and not an error for a VM's disk;
   * shorter than the kernel's hung-task warning (120 s).
   */
  public static final long DEFAULT_TIMEOUT_SECONDS = 60;

  /** {@link #DEFAULT_TIMEOUT_SECONDS} as a duration. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(DEFAULT_TIMEOUT_SECONDS);

  /**
   * Connects to the pool a store records ({@link BlockPool.Opener}): {@code where}'s name is {@code
   * rados:POOL}, its conf the Ceph configuration file, its client the client's name without {@code
   * client.}; every call times out after {@link #DEFAULT_TIMEOUT}.
   */
  public static RadosPool open(BlockPool.Location where) throws IOException {
    return open(where, DEFAULT_TIMEOUT);
  }

  /** {@link #open(BlockPool.Location)} with every call timing out after {@code timeout}. */
  public static RadosPool open(BlockPool.Location where, Duration timeout) throws IOException {
    String name = where.name();
    if (!name.startsWith(SCHEME) || name.length() == SCHEME.length()) {
      throw new RadosException("not a RADOS pool: " + name + " (rados:POOL)");
    }
    Path conf = Path.of(where.conf());
    if (!java.nio.file.Files.isReadable(conf)) {
      throw new RadosException("cannot read the Ceph configuration " + conf);
    }
    return connect(conf, where.client(), name.substring(SCHEME.length()), timeout);
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
      return new RadosPool(rados, pool, cluster, out[0], timeout.toSeconds());
    } catch (IOException | RuntimeException e) {
      rados.rados_shutdown(cluster);
      throw e;
    }
  }

  /**
   * Takes {@code holder}'s reference to block {@code hash}, whose content is {@code content[0,
   * length)}: marks the object as held by {@code holder} and adds one to its count, or creates the
   * object with the content, the mark and the count one. Idempotent: a holder that already holds
   * the block changes nothing (so a take retried after a timeout or a crash counts once). Returns
   * whether this call created the object.
   */
  @Override
  public boolean take(String holder, Hash hash, byte[] content, int length) throws IOException {
    String oid = hash.toString();
    String key = holderKey(holder);
    while (true) {
      int r = takeIfExists(oid, key);
      if (r == 0 || r == -ECANCELED) {
        return false; // ECANCELED: the holder holds it already
      }
      if (r != -ENOENT) {
        throw failure("take " + describe(oid) + " for " + holder, r);
      }
      if (create(oid, holder, key, content, length)) {
        return true;
      }
      // Another client created it between our two operations: take a reference to it.
    }
  }

  /**
   * Creates block {@code oid} exclusively with the content, {@code holder}'s mark and the count
   * one; false when it exists already.
   */
  private boolean create(String oid, String holder, String key, byte[] content, int length)
      throws IOException {
    int r =
        operate(
            oid,
            op -> {
              rados.rados_write_op_create(op, Librados.CREATE_EXCLUSIVE, null);
              rados.rados_write_op_write_full(op, content, length);
              setHeld(op, key);
              rados.rados_write_op_exec(op, "numops", "add", ADD_ONE, ADD_ONE.length, 0);
            });
    if (r != 0 && r != -EEXIST) {
      throw failure("take " + describe(oid) + " for " + holder + ": creating it", r);
    }
    return r == 0;
  }

  /**
   * {@link #take} for a block that is probably new: first the exclusive creation with the content,
   * the mark and the count one (one round trip), and only when the object exists already {@link
   * #take}'s adding of a reference (a second).
   */
  @Override
  public boolean takeNew(String holder, Hash hash, byte[] content, int length) throws IOException {
    return create(hash.toString(), holder, holderKey(holder), content, length)
        || take(holder, hash, content, length);
  }

  /**
   * Takes {@code holder}'s reference to block {@code hash} if the pool holds it, in one compound
   * operation, as {@link #take} does for an existing object (assert exists, the holder's mark
   * compared and set, the count added to): no content crosses. Returns false, taking nothing, when
   * the object is missing.
   */
  @Override
  public boolean takeExisting(String holder, Hash hash) throws IOException {
    String oid = hash.toString();
    String key = holderKey(holder);
    int r = takeIfExists(oid, key);
    if (r == 0 || r == -ECANCELED) {
      return true; // ECANCELED: the holder holds it already
    }
    if (r == -ENOENT) {
      return false;
    }
    throw failure("take " + describe(oid) + " for " + holder, r);
  }

  /**
   * The compound operation that takes the reference of holder mark {@code key} to an existing
   * object: 0 taken, -ECANCELED held already, -ENOENT no such object.
   */
  private int takeIfExists(String oid, String key) {
    return operate(
        oid,
        op -> {
          rados.rados_write_op_assert_exists(op);
          // a missing key compares as empty: the holder has no reference yet
          rados.rados_write_op_omap_cmp(op, key, Librados.CMPXATTR_OP_EQ, NOT_HELD, 0, 0);
          setHeld(op, key);
          rados.rados_write_op_exec(op, "numops", "add", ADD_ONE, ADD_ONE.length, 0);
        });
  }

  /** {@code rados:POOL} in the cluster of this fsid: the same pool from every host. */
  @Override
  public String identity() throws IOException {
    byte[] fsid = new byte[64];
    int n = rados.rados_cluster_fsid(cluster, fsid, fsid.length);
    check(n, "reading the cluster's fsid");
    return SCHEME + pool + " of cluster " + new String(fsid, 0, n, StandardCharsets.US_ASCII);
  }

  /**
   * The pool's MAX AVAIL from the monitor's {@code df} (what {@code ceph df} shows: the free space
   * of the OSDs under the pool's rule, divided by its replication, short of the full ratio).
   */
  @Override
  public long availableBytes() throws IOException {
    String df = monCommand("{\"prefix\": \"df\", \"format\": \"json\"}");
    long avail = poolFigure(df, pool, "max_avail");
    if (avail < 0) {
      throw new RadosException("the monitor's df has no max_avail for pool " + pool);
    }
    return avail;
  }

  /**
   * Figure {@code name} (a whole number) of pool {@code pool} in the JSON of the monitor's {@code
   * df}: {@code "pools": [{"name": "POOL", "id": N, "stats": {..., "NAME": 123, ...}}, ...]}; -1
   * when it is not there.
   */
  static long poolFigure(String df, String pool, String name) {
    java.util.regex.Matcher m =
        java.util.regex.Pattern.compile(
                "\\{\\s*\"name\"\\s*:\\s*\""
                    + java.util.regex.Pattern.quote(pool)
                    + "\"[^{}]*\"stats\"\\s*:\\s*\\{([^{}]*)\\}")
            .matcher(df);
    if (!m.find()) {
      return -1;
    }
    java.util.regex.Matcher f =
        java.util.regex.Pattern.compile("\"" + name + "\"\\s*:\\s*(\\d+)").matcher(m.group(1));
    return f.find() ? Long.parseLong(f.group(1)) : -1;
  }

  /** Runs a monitor command (JSON) and returns its output. */
  private String monCommand(String json) throws IOException {
    long[] out = new long[1];
    long[] outLen = new long[1];
    long[] status = new long[1];
    long[] statusLen = new long[1];
    int r =
        rados.rados_mon_command(
            cluster, new String[] {json}, 1, null, 0, out, outLen, status, statusLen);
    try {
      if (r < 0) {
        String why = status[0] == 0 ? "" : ": " + text(status[0], statusLen[0]);
        throw failure("monitor command " + json + why, r);
      }
      return out[0] == 0 ? "" : text(out[0], outLen[0]);
    } finally {
      if (out[0] != 0) {
        rados.rados_buffer_free(out[0]);
      }
      if (status[0] != 0) {
        rados.rados_buffer_free(status[0]);
      }
    }
  }

  private static String text(long address, long length) {
    byte[] b = new byte[(int) length];
    Librados.MEM.getByteArray(address, b, 0, b.length);
    return new String(b, StandardCharsets.UTF_8);
  }

  /**
   * Releases {@code holder}'s reference to block {@code hash}: removes the holder's mark and
   * subtracts one from the count, or removes the object if that was the last reference. Idempotent:
   * a holder that holds no reference (released before, perhaps by a release that a crash
   * interrupted) drops nobody else's, but still removes an object left with the count zero. Returns
   * whether this call removed the object. A block that is not there (already removed by another
   * client) is released.
   *
   * <p>One round trip when the guess is right: the holder's reference is either the last (the
   * object is removed) or one of several (the count falls), and each case is one compound operation
   * that compares the count first. The guess is what the previous release found: the blocks of a
   * deleted file are mostly all shared or all not. A wrong guess costs a second round trip; when
   * neither case holds, {@link #releaseInTwoSteps} decides.
   */
  @Override
  public boolean release(String holder, Hash hash) throws IOException {
    String oid = hash.toString();
    String key = holderKey(holder);
    boolean last = releasesLast;
    for (int i = 0; i < 2; i++, last = !last) {
      int r = releaseIf(last, oid, key);
      if (r == 0) {
        releasesLast = last;
        return last;
      }
      if (r == -ENOENT) {
        return false;
      }
      if (r != -ECANCELED) { // ECANCELED: the other case, or neither
        throw failure("release " + describe(oid) + " for " + holder, r);
      }
    }
    return releaseInTwoSteps(oid, holder, key);
  }

  /**
   * The compound operation that releases the reference of the holder of mark {@code key} if it is
   * the object's only one ({@code last}: the object is removed) or one of several (the mark is
   * removed and the count falls by one): 0 released, -ECANCELED not so, -ENOENT no such object. The
   * count is numops' decimal text without leading zeros, which the OSD compares as bytes: greater
   * than "1" is a count of two or more.
   */
  private int releaseIf(boolean last, String oid, String key) {
    return operate(
        oid,
        op -> {
          rados.rados_write_op_assert_exists(op);
          rados.rados_write_op_omap_cmp(op, key, Librados.CMPXATTR_OP_EQ, HELD, HELD.length, 0);
          byte countIs = last ? Librados.CMPXATTR_OP_EQ : Librados.CMPXATTR_OP_GT;
          rados.rados_write_op_omap_cmp(op, REFS, countIs, ONE, ONE.length, 0);
          if (last) {
            rados.rados_write_op_remove(op);
          } else {
            removeKey(op, key);
            rados.rados_write_op_exec(op, "numops", "add", ADD_MINUS_ONE, ADD_MINUS_ONE.length, 0);
          }
        });
  }

  /**
   * {@link #release} when the holder holds no reference or the count is not what its mark says (or
   * changed between the two guesses): drops the holder's reference if it holds one, then removes
   * the object if its count is zero.
   */
  private boolean releaseInTwoSteps(String oid, String holder, String key) throws IOException {
    int r =
        operate(
            oid,
            op -> {
              rados.rados_write_op_assert_exists(op);
              rados.rados_write_op_omap_cmp(op, key, Librados.CMPXATTR_OP_EQ, HELD, HELD.length, 0);
              removeKey(op, key);
              rados.rados_write_op_exec(
                  op, "numops", "add", ADD_MINUS_ONE, ADD_MINUS_ONE.length, 0);
            });
    if (r == -ENOENT) {
      return false;
    }
    if (r != 0 && r != -ECANCELED) { // ECANCELED: the holder holds none
      throw failure("release " + describe(oid) + " for " + holder, r);
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
    throw failure("release " + describe(oid) + ": removing it", r);
  }

  /** The holders of block {@code hash}'s references, in key order; empty when it is missing. */
  @Override
  public List<String> holders(Hash hash) throws IOException {
    Map<String, byte[]> marks = omap(hash.toString(), null, HOLDER_PREFIX, MAX_HOLDERS);
    List<String> out = new ArrayList<>();
    if (marks != null) {
      for (String k : marks.keySet()) {
        out.add(k.substring(HOLDER_PREFIX.length()));
      }
    }
    return out;
  }

  /**
   * Sets {@code holder}'s entry in the registry object {@link #REGISTRY}, its omap key {@code
   * s.HOLDER}, if it holds {@code expected} now: one operation that creates the object if missing,
   * compares the key (a missing key compares as empty, and no entry is empty) and sets it.
   */
  @Override
  public boolean register(String holder, String expected, String entry) throws IOException {
    String key = holderKey(holder);
    byte[] was = expected == null ? new byte[0] : expected.getBytes(StandardCharsets.UTF_8);
    byte[] value = entry.getBytes(StandardCharsets.UTF_8);
    int r =
        operate(
            REGISTRY,
            op -> {
              rados.rados_write_op_create(op, Librados.CREATE_IDEMPOTENT, null);
              rados.rados_write_op_omap_cmp(op, key, Librados.CMPXATTR_OP_EQ, was, was.length, 0);
              setKey(op, key, value);
            });
    if (r == -ECANCELED) {
      return false;
    }
    answered(r, "registering store " + holder + " in pool " + pool);
    return true;
  }

  @Override
  public void unregister(String holder) throws IOException {
    String key = holderKey(holder);
    int r = operate(REGISTRY, op -> removeKey(op, key));
    if (r != -ENOENT) { // no registry: nobody registered
      answered(r, "unregistering store " + holder + " in pool " + pool);
    }
  }

  @Override
  public Map<String, String> registered() throws IOException {
    Map<String, String> stores = new TreeMap<>();
    String after = null;
    while (true) {
      Map<String, byte[]> page = omap(REGISTRY, after, HOLDER_PREFIX, REGISTRY_PAGE);
      if (page == null) {
        return stores; // no registry yet
      }
      for (Map.Entry<String, byte[]> e : page.entrySet()) {
        stores.put(
            e.getKey().substring(HOLDER_PREFIX.length()),
            new String(e.getValue(), StandardCharsets.UTF_8));
        after = e.getKey();
      }
      if (page.size() < REGISTRY_PAGE) {
        return stores;
      }
    }
  }

  @Override
  public String registered(String holder) throws IOException {
    String key = holderKey(holder);
    // the first key that begins with it: the key itself if present (it sorts before longer ones)
    Map<String, byte[]> found = omap(REGISTRY, null, key, 1);
    byte[] entry = found == null ? null : found.get(key);
    return entry == null ? null : new String(entry, StandardCharsets.UTF_8);
  }

  /** The pool's blocks: its objects whose names are hashes, listed. */
  @Override
  public void forEachBlocks(int batch, Blocks action) throws IOException {
    List<Hash> next = new ArrayList<>(batch);
    forEachBlockObject(
        oid -> {
          next.add(Hash.parse(oid));
          if (next.size() == batch) {
            action.accept(next);
            next.clear();
          }
        });
    if (!next.isEmpty()) {
      action.accept(next);
    }
  }

  /** The stored bytes of block {@code hash}, or null when the pool does not hold it. */
  @Override
  public byte[] read(Hash hash) throws IOException {
    String oid = hash.toString();
    // one round trip for an object of at most READ_AT_ONCE bytes (every block of a store)
    byte[] buf = new byte[READ_AT_ONCE + 1];
    refreshMap();
    int n = settled(rados.rados_read(io, oid, buf, buf.length, 0));
    if (n == -ENOENT) {
      return null;
    }
    answered(n, "read " + describe(oid));
    if (n <= READ_AT_ONCE) {
      return java.util.Arrays.copyOf(buf, n);
    }
    return readLarge(oid);
  }

  /** An object larger than {@link #READ_AT_ONCE}: its size, then its bytes. */
  private byte[] readLarge(String oid) throws IOException {
    long[] size = new long[1];
    refreshMap();
    int r = settled(rados.rados_stat(io, oid, size, 0));
    if (r == -ENOENT) {
      return null;
    }
    answered(r, "stat " + describe(oid));
    if (size[0] > Integer.MAX_VALUE - 8) {
      throw new RadosException("read " + describe(oid) + ": too large, " + size[0] + " bytes");
    }
    // Blocks are written once, whole: the size cannot change, only the object disappear.
    byte[] content = new byte[(int) size[0]];
    r = settled(rados.rados_read(io, oid, content, content.length, 0));
    if (r == -ENOENT) {
      return null;
    }
    answered(r, "read " + describe(oid));
    if (r != content.length) {
      throw new RadosException(
          "read " + describe(oid) + ": got " + r + " of " + content.length + " bytes");
    }
    return content;
  }

  /** The reference count of block {@code hash}, 0 when the pool does not hold it. */
  public long count(Hash hash) throws IOException {
    String oid = hash.toString();
    Map<String, byte[]> refs = omap(oid, null, REFS, 2);
    if (refs == null) {
      return 0;
    }
    byte[] text = refs.get(REFS);
    if (text == null) {
      throw new RadosException("count " + describe(oid) + ": it has no " + REFS + " key");
    }
    return (long) Double.parseDouble(new String(text, StandardCharsets.US_ASCII));
  }

  /**
   * Up to {@code max} omap entries of {@code oid} whose keys start with {@code prefix} and come
   * after {@code after} (null: from the first), in key order; null when the object is missing.
   */
  private Map<String, byte[]> omap(String oid, String after, String prefix, int max)
      throws IOException {
    refreshMap();
    long op = rados.rados_create_read_op();
    long iter = 0;
    try {
      long[] out = new long[1];
      rados.rados_read_op_omap_get_vals2(op, after, prefix, max, out, 0, 0);
      iter = out[0];
      int r = settled(rados.rados_read_op_operate(op, io, oid, Librados.OPERATION_NOFLAG));
      if (r == -ENOENT) {
        return null;
      }
      answered(r, "reading the omap of " + describe(oid));
      Map<String, byte[]> entries = new TreeMap<>();
      long[] key = new long[1];
      long[] val = new long[1];
      long[] len = new long[1];
      while (rados.rados_omap_get_next(iter, key, val, len) == 0 && key[0] != 0) {
        byte[] value = new byte[(int) len[0]];
        Librados.MEM.getByteArray(val[0], value, 0, value.length);
        entries.put(cString(key[0]), value);
      }
      return entries;
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
    refreshMap();
    int r = settled(rados.rados_stat(io, oid, new long[1], 0));
    if (r == -ENOENT) {
      return false;
    }
    answered(r, "stat " + describe(oid));
    return true;
  }

  /**
   * Passes every block {@code holder} holds a reference to: lists the pool's objects and reads each
   * one's mark of the holder (one round trip per object). Objects whose names are not hashes are
   * skipped.
   */
  @Override
  public void forEachHeld(String holder, Consumer<Hash> action) throws IOException {
    String key = holderKey(holder);
    forEachBlocks(
        1024,
        batch -> {
          for (Hash h : batch) {
            Map<String, byte[]> mark = omap(h.toString(), null, key, 1);
            if (mark != null && mark.containsKey(key)) {
              action.accept(h);
            }
          }
        });
  }

  /**
   * How many blocks the pool holds, counted by listing them all (for tests and checks): its objects
   * but {@link #REGISTRY}.
   */
  public long objectCount() throws IOException {
    return objects().size();
  }

  /** The names of the pool's blocks (hex hashes), listed (for tests and checks). */
  public List<String> objects() throws IOException {
    List<String> all = new ArrayList<>();
    forEachBlockObject(all::add);
    return all;
  }

  /** A call for each object's name; may fail. */
  @FunctionalInterface
  private interface Names {
    void accept(String name) throws IOException;
  }

  /** Lists the pool: passes the name of each object named by a hash (hex). */
  private void forEachBlockObject(Names action) throws IOException {
    forEachObject(
        oid -> {
          if (oid.length() == 2 * Hash.SIZE && BLOCK_NAME.matcher(oid).matches()) {
            action.accept(oid);
          }
        });
  }

  /** Lists the pool: passes each object's name. */
  private void forEachObject(Names action) throws IOException {
    long[] out = new long[1];
    refreshMap();
    answered(settled(rados.rados_nobjects_list_open(io, out)), "listing pool " + pool);
    long ctx = out[0];
    try {
      int r;
      while ((r = rados.rados_nobjects_list_next(ctx, out, 0, 0)) == 0) {
        action.accept(cString(out[0]));
      }
      if (r != -ENOENT) {
        throw failure("listing pool " + pool, r);
      }
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

  /** Whether {@code name} can name a holder: 1 to 64 letters, digits, '.', '_' or '-'. */
  public static boolean isHolder(String name) {
    return HOLDER.matcher(name).matches();
  }

  /** The omap key that marks {@code holder}'s reference. */
  private static String holderKey(String holder) {
    if (!isHolder(holder)) {
      throw new IllegalArgumentException(
          "a holder is 1 to 64 letters, digits, '.', '_' or '-': " + holder);
    }
    return HOLDER_PREFIX + holder;
  }

  /** Adds to {@code op}: set the omap key {@code key} to {@link #HELD}. */
  private void setHeld(long op, String key) {
    setKey(op, key, HELD);
  }

  /** Adds to {@code op}: set the omap key {@code key} to {@code value}. */
  private void setKey(long op, String key, byte[] value) {
    byte[] k = key.getBytes(StandardCharsets.US_ASCII);
    // three one-element arrays (key pointer, value pointer, value length), then the key, NUL, value
    long mem = Librados.MEM.allocateMemory(3 * Long.BYTES + k.length + 1 + value.length, true);
    try {
      long keyAt = mem + 3 * Long.BYTES;
      long valAt = keyAt + k.length + 1;
      Librados.MEM.putByteArray(keyAt, k, 0, k.length);
      Librados.MEM.putByteArray(valAt, value, 0, value.length);
      Librados.MEM.putAddress(mem, keyAt);
      Librados.MEM.putAddress(mem + Long.BYTES, valAt);
      Librados.MEM.putLong(mem + 2 * Long.BYTES, value.length);
      // librados copies the keys and values into the operation here
      rados.rados_write_op_omap_set(op, mem, mem + Long.BYTES, mem + 2 * Long.BYTES, 1);
    } finally {
      Librados.MEM.freeMemory(mem);
    }
  }

  /** Adds to {@code op}: remove the omap key {@code key}. */
  private void removeKey(long op, String key) {
    byte[] k = key.getBytes(StandardCharsets.US_ASCII);
    long mem = Librados.MEM.allocateMemory(Long.BYTES + k.length + 1, true);
    try {
      Librados.MEM.putByteArray(mem + Long.BYTES, k, 0, k.length);
      Librados.MEM.putAddress(mem, mem + Long.BYTES);
      rados.rados_write_op_omap_rm_keys(op, mem, 1);
    } finally {
      Librados.MEM.freeMemory(mem);
    }
  }

  private interface OpBuilder {
    void build(long op);
  }

  /** Builds one compound write operation and runs it on {@code oid}: 0 or a negative errno. */
  private int operate(String oid, OpBuilder builder) {
    refreshMap();
    long op = rados.rados_create_write_op();
    try {
      builder.build(op);
      return settled(rados.rados_write_op_operate(op, io, oid, 0, Librados.OPERATION_NOFLAG));
    } finally {
      rados.rados_release_write_op(op);
    }
  }

  private String describe(String oid) {
    return "block " + oid + " in pool " + pool;
  }

  private static void check(int r, String what) throws IOException {
    if (r < 0) {
      throw RadosException.of(what, r);
    }
  }

  /**
   * While calls time out, fetches the cluster's latest OSD map before each call: librados alone may
   * go on sending to an OSD that was down when a call timed out and has come back (measured on Ceph
   * 16: calls timed out for minutes after the OSD was up again), so that the pool would never
   * answer again. The map is fetched until a call gets an answer ({@link #settled}): one fetched
   * while the OSD was still down does not end it.
   */
  private void refreshMap() {
    if (mapStale) {
      rados.rados_wait_for_latest_osdmap(cluster);
    }
  }

  /** Notes whether the call that answered {@code r} timed out (see {@link #refreshMap}). */
  private int settled(int r) {
    boolean timedOut = r == -RadosTimeoutException.ETIMEDOUT;
    if (mapStale != timedOut) {
      mapStale = timedOut;
    }
    return r;
  }

  /** Throws what a call that answered {@code r} failed with, if it failed. */
  private void answered(int r, String what) throws IOException {
    if (r < 0) {
      throw failure(what, r);
    }
  }

  /**
   * The failure of {@code what}, which answered {@code r} (a negative errno): a timeout says which
   * pool did not answer and in how long (not a damaged block: the caller may try again later).
   */
  private IOException failure(String what, int r) {
    if (r == -RadosTimeoutException.ETIMEDOUT) {
      return new RadosTimeoutException(
          "pool " + SCHEME + pool + " did not answer in " + timeoutSeconds + " s (" + what + ")");
    }
    return RadosException.of(what, r);
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
