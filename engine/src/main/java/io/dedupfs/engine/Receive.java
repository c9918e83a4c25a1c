package io.dedupfs.engine;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Receives a send stream (FORMAT.md, "Send streams") into a new snapshot, atomically: nothing of it
 * is visible until its last byte has arrived and matched the trailing digest.
 *
 * <p>Blocks are checked against their hashes as they arrive and stored in write transactions of up
 * to {@value #BATCH_BLOCKS} blocks. Until the snapshot exists they are held by a staging record in
 * table {@code meta}: each received block that no received parent has taken yet holds one reference
 * from it (a node, when it arrives, takes over its children's staged references, or adds one to a
 * child the store held already). The last transaction creates the snapshot's namespace, hands the
 * staged references of the file roots to their inodes, queues a decrement for whatever else is
 * staged and deletes the record. A stream that stops early (damaged, truncated, killed) leaves the
 * snapshot absent and the record in place: the same stream resumed continues it ({@code send
 * --resume TOKEN}), {@link #abort} drops it, and fsck counts its references.
 */
final class Receive {
  static final int BATCH_BLOCKS = 256;
  private static final long BATCH_BYTES = 8L << 20;
  private static final byte[] PREFIX = "receive/".getBytes(StandardCharsets.US_ASCII);
  private static final int MAX_LEVEL = 8;

  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;
  private final Snapshots snapshots;
  private final Geometry geometry;

  Receive(Lmdb db, Namespace ns, BlockStore blocks, Snapshots snapshots, Geometry geometry) {
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
    this.snapshots = snapshots;
    this.geometry = geometry;
  }

  private record Header(
      String name,
      boolean directory,
      String source,
      long createdNs,
      byte[] digest,
      String from,
      byte[] fromDigest,
      long skip,
      long id,
      String pool) {
    /** Whether the stream names its blocks by reference to the pool both stores share. */
    boolean byReference() {
      return pool != null;
    }
  }

  /** A received block: its content, or null for a leaf named by reference. */
  private record Block(Hash hash, int level, byte[] content, int length) {}

  ReceiveReport receive(InputStream stream, Consumer<Progress> progress) throws IOException {
    SendStream.In in = new SendStream.In(stream);
    Header h = header(in);
    long[] state = {h.skip, 0, 0, 0}; // next block's index; received; already held; bytes stored
    boolean[] staged = {db.read(txn -> committed(txn, h.id)) >= 0};
    List<SendStream.Node> nodes = new ArrayList<>();
    List<SendStream.Link> links = new ArrayList<>();
    List<Block> batch = new ArrayList<>();
    try {
      long batchBytes = 0;
      int type;
      int blockType = h.byReference() ? SendStream.REFERENCE : SendStream.BLOCK;
      while ((type = in.u8()) == blockType) {
        Block b =
            h.byReference()
                ? reference(in, state[0] + batch.size())
                : block(in, state[0] + batch.size());
        batch.add(b);
        batchBytes += b.length;
        if (batch.size() >= BATCH_BLOCKS || batchBytes >= BATCH_BYTES) {
          List<Block> full = new ArrayList<>(batch);
          batch.clear();
          batchBytes = 0;
          store(h, full, state);
          staged[0] = true;
          progress.accept(new Progress("receive", in.bytes(), 0));
        }
      }
      if (!batch.isEmpty()) {
        List<Block> last = new ArrayList<>(batch);
        batch.clear();
        store(h, last, state);
        staged[0] = true;
      }
      for (; type != SendStream.END; type = in.u8()) {
        if (type == SendStream.INODE) {
          nodes.add(in.node());
        } else if (type == SendStream.ENTRY) {
          links.add(in.link());
        } else {
          throw new StreamException(
              "the stream is damaged: an unknown record (type "
                  + type
                  + ") after "
                  + in.bytes()
                  + " bytes");
        }
      }
      long blocksSent = in.i64();
      long records = in.i64();
      byte[] computed = in.digest();
      if (!Arrays.equals(computed, in.trailer())) {
        throw new StreamException(
            "the stream is damaged: its trailing digest does not match its "
                + in.bytes()
                + " bytes");
      }
      if (blocksSent != state[1] || records != nodes.size() + links.size()) {
        throw new StreamException(
            "the stream is damaged: it says "
                + blocksSent
                + " blocks and "
                + records
                + " records, but holds "
                + state[1]
                + " and "
                + (nodes.size() + links.size()));
      }
      check(nodes, links);
    } catch (IOException | RuntimeException e) {
      if (h.byReference()) {
        throw dropped(h, e, staged[0]);
      }
      if (!batch.isEmpty() && !(e instanceof StoreFullException)) {
        try { // the blocks read and checked before the stream stopped: kept for a resume
          store(h, batch, state);
          staged[0] = true;
        } catch (IOException | RuntimeException again) {
          e.addSuppressed(again); // the batch itself was at fault
        }
      }
      if (!staged[0]) {
        if (e instanceof StreamException se) {
          throw se;
        }
        throw new StreamException(message(e));
      }
      long have = db.read(txn -> committed(txn, h.id));
      String token = SendStream.token(h.id, have);
      throw new StreamException(
          message(e)
              + ". Nothing of it is visible in the store; the "
              + have
              + " blocks that arrived are kept: complete it with `dedupfs send --resume "
              + token
              + "` (same snapshot"
              + (h.from == null ? "" : " and --from")
              + "), or drop them with `dedupfs receive --abort "
              + token
              + "`",
          token);
    }
    long now = Checks.now();
    db.write(txn -> finish(txn, h, nodes, links, now));
    progress.accept(new Progress("receive", in.bytes(), in.bytes()));
    return new ReceiveReport(
        h.name, in.bytes(), state[1], state[2], state[3], nodes.size(), h.byReference());
  }

  /**
   * A receive by reference that failed: whatever it staged is dropped at once (its references are
   * queued for release; reclaim releases their pool references), as nothing of it is worth keeping
   * for a resume: no block data crossed.
   */
  private StreamException dropped(Header h, Exception e, boolean staged) {
    if (staged) {
      try {
        db.write(
            txn -> {
              release(txn, h.id);
              return null;
            });
      } catch (IOException | RuntimeException again) {
        e.addSuppressed(again);
        return new StreamException(
            message(e)
                + ". Nothing of it is visible in the store; drop the references it took with"
                + " `dedupfs receive --abort "
                + SendStream.token(h.id, 0)
                + "`");
      }
    }
    return new StreamException(
        message(e) + ". Nothing of it is visible in the store, and nothing of it is kept");
  }

  private static String message(Throwable e) {
    if (e instanceof StreamException) {
      return e.getMessage();
    }
    return "the receive stopped: " + (e.getMessage() == null ? e.toString() : e.getMessage());
  }

  private Header header(SendStream.In in) throws IOException {
    byte[] magic = new byte[SendStream.MAGIC.length];
    in.readFully(magic);
    if (!Arrays.equals(magic, SendStream.MAGIC)) {
      throw new StreamException("this is not a dedupfs send stream (it does not start DDFSSEND)");
    }
    int version = in.u16();
    if (version != SendStream.VERSION && version != SendStream.BY_REFERENCE_VERSION) {
      throw new StreamException(
          "the stream has version "
              + version
              + "; this dedupfs reads send streams of versions "
              + SendStream.VERSION
              + " and "
              + SendStream.BY_REFERENCE_VERSION
              + " only");
    }
    int leafSize = in.i32();
    if (leafSize != geometry.leafSize) {
      throw new StreamException(
          "the stream's store has a leaf size of "
              + leafSize
              + " bytes, this one "
              + geometry.leafSize
              + ": their trees cannot be shared (receive into a store made with `dedupfs create"
              + " --leaf-size "
              + leafSize
              + "`)");
    }
    String name = in.string();
    try {
      Checks.checkName(name);
    } catch (FsException e) {
      throw new StreamException("the stream is damaged: a snapshot name '" + name + "'");
    }
    boolean directory = in.u8() == 1;
    String source = in.string();
    long created = in.i64();
    byte[] digest = new byte[32];
    in.readFully(digest);
    String from = null;
    byte[] fromDigest = null;
    if (in.u8() == 1) {
      from = in.string();
      fromDigest = new byte[32];
      in.readFully(fromDigest);
    }
    long skip = in.i64();
    String pool = version == SendStream.BY_REFERENCE_VERSION ? in.string() : null;
    if (pool != null) {
      samePool(pool, skip);
    }
    long id = SendStream.streamId(name, digest, fromDigest);
    String fromName = from;
    byte[] fromWanted = fromDigest;
    db.read(
        txn -> {
          if (exists(txn, name)) {
            throw new StreamException(
                "a snapshot named " + name + " exists in this store already (delete it first)");
          }
          if (fromName != null) {
            SnapshotInfo base;
            try {
              base = snapshots.find(txn, fromName);
            } catch (NoSuchFileException e) {
              throw new StreamException(
                  "this store has no snapshot "
                      + fromName
                      + ", the base of this incremental stream: receive "
                      + fromName
                      + " first");
            }
            if (!Arrays.equals(SendStream.list(ns, txn, base.ino()).digest(), fromWanted)) {
              throw new StreamException(
                  "this store's snapshot "
                      + fromName
                      + " is not the one this incremental stream was made from");
            }
          }
          long have = committed(txn, id);
          if (skip > 0 && have < skip) {
            throw new StreamException(
                have < 0
                    ? "this stream resumes an interrupted receive, but none of it is in this store:"
                        + " send it whole (without --resume)"
                    : "this stream resumes after block "
                        + skip
                        + " but this store holds "
                        + have
                        + " of its blocks: resume with the token "
                        + SendStream.token(id, have));
          }
          return null;
        });
    return new Header(name, directory, source, created, digest, from, fromDigest, skip, id, pool);
  }

  /** A stream by reference is for a store of the same pool only. */
  private void samePool(String pool, long skip) throws IOException {
    String mine = blocks.poolIdentity();
    if (mine == null) {
      throw new StreamException(
          "the stream names its blocks by reference to pool "
              + pool
              + ", but this store keeps its blocks in its own LMDB: send them (without"
              + " --by-reference)");
    }
    if (!mine.equals(pool)) {
      throw new StreamException(
          "the stream names its blocks by reference to pool "
              + pool
              + ", but this store keeps its blocks in "
              + mine
              + ": send them (without --by-reference)");
    }
    if (skip != 0) {
      throw new StreamException("the stream is damaged: a stream by reference is never resumed");
    }
  }

  /**
   * A REFERENCE record's body: a block the pool holds, named by its level, hash and length. A node
   * is read from the pool and checked against its hash (its children are counted from it); a leaf's
   * content never crosses (its length is the sender's word, as the pool's object holds it).
   */
  private Block reference(SendStream.In in, long index) throws IOException {
    int level = in.u8();
    Hash hash = in.hash();
    int length = in.i32();
    if (hash.isZero()
        || level > MAX_LEVEL
        || length < 0
        || length > (level == 0 ? geometry.leafSize : Geometry.NODE_BYTES)) {
      throw new StreamException(
          "the stream is damaged: block " + index + " (level " + level + ", " + hash + ")");
    }
    if (level == 0) {
      return new Block(hash, 0, null, length);
    }
    byte[] content = blocks.loadPooled(hash, level);
    if (content == null) {
      throw missing(hash, level);
    }
    content = Arrays.copyOf(content, Geometry.NODE_BYTES);
    if (Geometry.storedNodeLength(content) != length) {
      throw new StreamException(
          "the stream is damaged: block " + index + " (" + hash + ") is not of its length");
    }
    return new Block(hash, level, content, length);
  }

  private StreamException missing(Hash hash, int level) throws IOException {
    return new StreamException(
        "block "
            + hash
            + " (level "
            + level
            + ") of the stream is missing from "
            + blocks.poolIdentity()
            + ": was it deleted on the sending store since the send?");
  }

  private boolean exists(ReadTxn txn, String name) throws IOException {
    try {
      snapshots.find(txn, name);
      return true;
    } catch (NoSuchFileException e) {
      return false;
    }
  }

  /** A BLOCK record's body, checked against its hash. */
  private Block block(SendStream.In in, long index) throws IOException {
    int level = in.u8();
    Hash hash = in.hash();
    byte[] content = in.bytes(Math.max(geometry.leafSize, Geometry.NODE_BYTES), "a block");
    int length;
    Hash actual;
    if (level == 0) {
      length = content.length;
      while (length > 0 && content[length - 1] == 0) {
        length--;
      }
      actual =
          content.length > geometry.leafSize
              ? null
              : Hasher.leaf(content, length, geometry.leafSize);
    } else if (level <= MAX_LEVEL
        && content.length >= Geometry.BITMAP_BYTES
        && (content.length - Geometry.BITMAP_BYTES) % Hash.SIZE == 0) {
      content = Arrays.copyOf(content, Geometry.NODE_BYTES);
      length = Geometry.storedNodeLength(content);
      actual = Hasher.node(level, content);
    } else {
      length = 0;
      actual = null;
    }
    if (actual == null || hash.isZero() || !actual.equals(hash)) {
      throw new StreamException(
          "the stream is damaged: block "
              + index
              + " (level "
              + level
              + ", "
              + hash
              + ") does not match its hash");
    }
    return new Block(hash, level, content, length);
  }

  /** Stores a batch of received blocks, each held by the staging record until a parent takes it. */
  private void store(Header h, List<Block> batch, long[] state) throws IOException {
    List<Hash> taken = new ArrayList<>();
    long[] r;
    try {
      r = db.write(txn -> store(txn, h, batch, state, taken));
    } catch (IOException | RuntimeException e) {
      if (!taken.isEmpty()) {
        try { // the references this failed transaction took in the pool
          blocks.releasePooled(taken);
        } catch (IOException | RuntimeException again) {
          e.addSuppressed(again); // left to a reconcile
        }
      }
      throw e;
    }
    state[0] += batch.size();
    state[1] += batch.size();
    state[2] += r[0];
    state[3] += r[1];
  }

  /**
   * By reference: takes the pool references of the blocks of {@code batch} that this store does not
   * count (several at once), adding them to {@code taken}; a block the pool lacks fails the
   * receive.
   */
  private void takePooled(WriteTxn txn, Header h, List<Block> batch, List<Hash> taken)
      throws IOException {
    Set<Hash> wanted = new java.util.LinkedHashSet<>();
    for (Block b : batch) {
      if (!isStaged(txn, h.id, b.hash) && !blocks.exists(txn, b.hash)) {
        wanted.add(b.hash);
      }
    }
    List<Hash> ask = new ArrayList<>(wanted);
    List<Hash> missing = blocks.takePooled(ask);
    ask.removeAll(missing);
    taken.addAll(ask);
    if (!missing.isEmpty()) {
      Hash m = missing.get(0);
      for (Block b : batch) {
        if (b.hash.equals(m)) {
          throw missing(m, b.level);
        }
      }
    }
  }

  /** The transaction of {@link #store}: each block of the batch stored or held, and staged. */
  private long[] store(WriteTxn txn, Header h, List<Block> batch, long[] state, List<Hash> taken)
      throws IOException {
    if (h.byReference()) {
      takePooled(txn, h, batch, taken);
    }
    long have = committed(txn, h.id);
    long held = 0;
    long bytes = 0;
    for (Block b : batch) {
      if (isStaged(txn, h.id, b.hash)) {
        held++;
        continue;
      }
      if (blocks.exists(txn, b.hash)) {
        blocks.incref(txn, b.hash);
        stage(txn, h.id, b.hash, b.level);
        held++;
        continue;
      }
      if (b.level > 0) {
        for (int i = 0; i < Geometry.FANOUT; i++) {
          Hash c = Geometry.child(b.content, i);
          if (c.isZero()) {
            continue;
          }
          int level = blocks.level(txn, c);
          if (level != b.level - 1) {
            throw new StreamException(
                "the stream names block "
                    + c
                    + (level < 0
                        ? ", which neither it nor this store holds"
                        : " at level " + (b.level - 1) + ", stored here at " + level)
                    + (h.from == null ? "" : " (was snapshot " + h.from + " changed here?)"));
          }
          take(txn, h.id, c);
        }
      }
      if (h.byReference()) {
        blocks.putPooled(txn, b.hash, b.level, b.length);
      } else {
        blocks.putNew(txn, b.hash, b.level, b.content, b.length);
      }
      stage(txn, h.id, b.hash, b.level);
      bytes += b.length;
    }
    putRecord(txn, h.id, Math.max(have, h.skip + state[1] + batch.size()), h.name);
    return new long[] {held, bytes};
  }

  /** The namespace records make sense: ids, types, names, every inode named. */
  private static void check(List<SendStream.Node> nodes, List<SendStream.Link> links)
      throws StreamException {
    if (nodes.isEmpty() || !nodes.get(0).inode().isDirectory()) {
      throw new StreamException("the stream is damaged: it holds no snapshot directory");
    }
    for (int i = 0; i < nodes.size(); i++) {
      SendStream.Node n = nodes.get(i);
      int type = n.inode().type();
      if (n.id() != i + 1
          || !(type == Inode.S_IFDIR
              || type == Inode.S_IFREG
              || type == Inode.S_IFLNK
              || type == 0020000
              || type == 0060000
              || type == 0010000
              || type == 0140000)) {
        throw new StreamException("the stream is damaged: inode record " + (i + 1));
      }
    }
    Set<Long> named = new HashSet<>();
    Set<String> names = new HashSet<>();
    for (SendStream.Link l : links) {
      if (l.parent() < 1
          || l.parent() > nodes.size()
          || l.child() < 2
          || l.child() > nodes.size()
          || !nodes.get((int) l.parent() - 1).inode().isDirectory()
          || !names.add(l.parent() + "/" + l.name())
          || (!named.add(l.child()) && nodes.get((int) l.child() - 1).inode().isDirectory())) {
        throw new StreamException("the stream is damaged: entry " + l.name());
      }
      try {
        Checks.checkName(l.name());
      } catch (FsException e) {
        throw new StreamException("the stream is damaged: entry '" + l.name() + "'");
      }
    }
    if (named.size() != nodes.size() - 1) {
      throw new StreamException("the stream is damaged: an inode without a name");
    }
  }

  /** The last transaction: the snapshot's namespace, its roots' references, the staging gone. */
  private ReceiveReport finish(
      WriteTxn txn, Header h, List<SendStream.Node> nodes, List<SendStream.Link> links, long now)
      throws IOException {
    if (exists(txn, h.name)) {
      throw new StreamException(
          "a snapshot named " + h.name + " was created meanwhile: the stream was not received");
    }
    long snaps = snapshots.makeDir(txn, now);
    long[] ino = new long[nodes.size() + 1];
    for (int i = 1; i <= nodes.size(); i++) {
      ino[i] = ns.allocateIno(txn);
    }
    long top = ino[1];
    int[] nlink = new int[nodes.size() + 1];
    long[] parent = new long[nodes.size() + 1];
    parent[1] = snaps;
    for (SendStream.Node n : nodes) {
      if (n.inode().isDirectory()) {
        nlink[(int) n.id()] = 2;
      }
    }
    for (SendStream.Link l : links) {
      int c = (int) l.child();
      if (nodes.get(c - 1).inode().isDirectory()) {
        parent[c] = ino[(int) l.parent()];
        nlink[(int) l.parent()]++;
      } else {
        nlink[c]++;
      }
    }
    for (SendStream.Node n : nodes) {
      int id = (int) n.id();
      Inode s = n.inode();
      Inode i =
          new Inode(
              ino[id],
              s.mode(),
              s.uid(),
              s.gid(),
              nlink[id],
              s.size(),
              s.atimeNs(),
              s.mtimeNs(),
              s.ctimeNs(),
              s.rdev(),
              s.isDirectory() ? parent[id] : 0,
              top,
              0,
              s.isRegular() ? s.height() : 0,
              s.isRegular() ? s.root() : Hash.ZERO,
              s.isSymlink() ? s.target() : "");
      if (i.isRegular() && !i.root().isZero()) {
        int level = blocks.level(txn, i.root());
        if (level != i.height()) {
          throw new StreamException(
              "the stream names block "
                  + i.root()
                  + " as a file's root"
                  + (level < 0 ? ", which neither it nor this store holds" : " at another level"));
        }
        take(txn, h.id, i.root());
      }
      ns.put(txn, i);
      for (Map.Entry<String, byte[]> x : n.xattrs().entrySet()) {
        ns.putXattr(txn, i.ino(), x.getKey(), x.getValue());
      }
    }
    for (SendStream.Link l : links) {
      SendStream.Node c = nodes.get((int) l.child() - 1);
      ns.putEntry(txn, ino[(int) l.parent()], l.name(), ino[(int) l.child()], c.inode().type());
    }
    ns.putEntry(txn, snaps, h.name, top, Inode.S_IFDIR);
    Inode s = ns.inode(txn, snaps);
    ns.put(txn, s.withNlink(s.nlink() + 1, now).withTimes(s.atimeNs(), now, now));
    release(txn, h.id);
    snapshots.put(txn, new SnapshotInfo(h.name, h.source, h.directory, h.createdNs, top));
    return null;
  }

  // ---- the staging record, in table meta: "receive/" + stream id (int64) -> blocks received
  // (int64), start (int64), snapshot name; and "receive/" + id + hash -> level (one byte), one per
  // staged reference

  private static ByteBuffer key(long id) {
    return Lmdb.key().put(PREFIX).putLong(id).flip();
  }

  private static ByteBuffer key(long id, Hash hash) {
    ByteBuffer k = Lmdb.key().put(PREFIX).putLong(id);
    hash.writeTo(k);
    return k.flip();
  }

  /** How many blocks of stream {@code id} the store holds; -1 when it has no record of it. */
  private long committed(ReadTxn txn, long id) {
    ByteBuffer v = db.meta.get(txn, key(id));
    return v == null ? -1 : v.getLong(v.position());
  }

  private void putRecord(WriteTxn txn, long id, long blocksHeld, String name) {
    ByteBuffer old = db.meta.get(txn, key(id));
    long started = old == null ? Checks.now() : old.getLong(old.position() + 8);
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    db.meta.put(
        txn, key(id), Lmdb.value(16 + n.length).putLong(blocksHeld).putLong(started).put(n).flip());
  }

  private boolean isStaged(ReadTxn txn, long id, Hash hash) {
    return db.meta.get(txn, key(id, hash)) != null;
  }

  private void stage(WriteTxn txn, long id, Hash hash, int level) {
    db.meta.put(txn, key(id, hash), Lmdb.value(1).put((byte) level).flip());
  }

  /** A new reference to {@code hash}: the staged one if there is one, else one more. */
  private void take(WriteTxn txn, long id, Hash hash) {
    if (!db.meta.delete(txn, key(id, hash))) {
      blocks.incref(txn, hash);
    }
  }

  /** Drops whatever stream {@code id} still stages (one queued decrement each) and its record. */
  private void release(WriteTxn txn, long id) {
    List<byte[]> keys = new ArrayList<>();
    forEach(
        txn,
        (sid, hash, level) -> {
          if (sid == id && hash != null) {
            keys.add(hashBytes(hash));
          }
        });
    for (byte[] hb : keys) {
      Hash hash = Hash.wrap(hb);
      blocks.decref(txn, hash);
      db.meta.delete(txn, key(id, hash));
    }
    db.meta.delete(txn, key(id));
  }

  private static byte[] hashBytes(Hash h) {
    byte[] b = new byte[Hash.SIZE];
    h.writeTo(b, 0);
    return b;
  }

  /** What {@link #forEach} passes: a record ({@code hash} null) or one staged reference. */
  @FunctionalInterface
  interface StagedVisitor {
    void visit(long id, Hash hash, int level);
  }

  /** Every staging record and staged reference, in key order. */
  static void forEach(ReadTxn txn, Lmdb db, StagedVisitor visitor) {
    try (TableCursor c = db.meta.openCursor(txn)) {
      for (boolean ok = c.seek(Lmdb.key().put(PREFIX).flip()); ok; ok = c.next()) {
        ByteBuffer k = c.key();
        int p = k.position();
        if (k.remaining() < PREFIX.length + 8
            || !k.slice(p, PREFIX.length).equals(ByteBuffer.wrap(PREFIX))) {
          return;
        }
        long id = k.getLong(p + PREFIX.length);
        if (k.remaining() == PREFIX.length + 8 + Hash.SIZE) {
          ByteBuffer v = c.val();
          visitor.visit(id, Hash.read(k, p + PREFIX.length + 8), v.get(v.position()));
        } else {
          visitor.visit(id, null, -1);
        }
      }
    }
  }

  private void forEach(ReadTxn txn, StagedVisitor visitor) {
    forEach(txn, db, visitor);
  }

  /** Every interrupted receive. */
  List<InterruptedReceive> interrupted() throws IOException {
    return db.read(
        txn -> {
          Map<Long, InterruptedReceive> out = new HashMap<>();
          forEach(
              txn,
              (id, hash, level) -> {
                if (hash == null) {
                  ByteBuffer v = db.meta.get(txn, key(id));
                  int p = v.position();
                  byte[] n = new byte[v.remaining() - 16];
                  v.get(p + 16, n);
                  out.put(
                      id,
                      new InterruptedReceive(
                          SendStream.token(id, v.getLong(p)),
                          new String(n, StandardCharsets.UTF_8),
                          v.getLong(p),
                          v.getLong(p + 8)));
                }
              });
          return new ArrayList<>(out.values());
        });
  }

  /** Drops an interrupted receive's blocks; NoSuchFileException if the token names none. */
  void abort(String token) throws IOException {
    long id;
    try {
      id = SendStream.parseToken(token)[0];
    } catch (IllegalArgumentException e) {
      throw new StreamException(e.getMessage());
    }
    db.write(
        txn -> {
          if (committed(txn, id) < 0) {
            throw new NoSuchFileException(token, null, "no interrupted receive of that token");
          }
          release(txn, id);
          return null;
        });
  }
}
