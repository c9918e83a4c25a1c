package io.dedupfs.engine;

import io.dedupfs.engine.Slot.Leaf;
import io.dedupfs.engine.Slot.Node;
import io.dedupfs.engine.Slot.Piece;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One file's contents: the committed Merkle tree (a root hash and a height) and, over it, an
 * overlay of the nodes and leaves changed since the last commit. Writes, punches, truncates and
 * range clones change only the overlay; {@link #freeze} turns the overlay into a {@link
 * TreeCommit}, which is hashed and {@link TreeCommit#apply applied} (stores what is new, from the
 * root down, stopping wherever a subtree is already stored) without the owner's lock, while writes
 * go on.
 *
 * <p>Not thread-safe: the owner ({@link FileContent}) guards it with its lock. The one exception is
 * a frozen commit's {@link TreeCommit#hash} and {@link TreeCommit#apply}, which run without that
 * lock (see below).
 *
 * <p>A {@link Slot} of the overlay (the root, or a child of a {@link Node}) holds one of: a {@link
 * Hash} (a subtree as committed, untouched), a {@link Node} or a {@link Leaf} (materialized and
 * perhaps changed). Invariant: every byte at or beyond {@link #length} is zero.
 *
 * <p>Freezing and layering. {@link #freeze} marks every {@link Piece} of the overlay frozen: from
 * then on they never change, so the commit may hash and store them without the lock while readers
 * still read them. A change that reaches a frozen piece changes a copy of it instead (copy on
 * write), whose base is the frozen piece: the block the commit is about to store. When the commit
 * is durable, {@link #finish} makes its root the committed one, replaces every frozen piece still
 * in the overlay by its (now stored) hash and resolves the copies' bases to hashes. If it failed,
 * {@link #rollback} thaws the frozen pieces (they are dirty again) and gives the copies the bases
 * of the pieces they were copied from, so nothing written is lost. Only one commit of a tree is in
 * flight at a time (the owner's commit lock).
 */
final class FileTree {
  private static final byte[] ZEROS = new byte[Geometry.MAX_LEAF_SIZE];

  private final Geometry g;
  private final BlockStore store;

  /** The store-wide count of unfrozen overlay memory, kept in step with {@link #dirtyBytes}. */
  private final AtomicLong dirtyTotal;

  /** Hashes the leaves that writes fill whole, ahead of their commit; null: the commit does. */
  private final EarlyHasher earlyHasher;

  /** Where leaves take their arrays, and where a commit gives them back once stored. */
  private final LeafBuffers buffers;

  private Hash root;
  private int rootHeight;
  private Slot top;
  private int topHeight;
  private long length;
  private long committedLength;

  /** Unfrozen pieces of the overlay (frozen ones are counted by the commit in flight). */
  private int dirtyLeaves;

  private int dirtyNodes;

  /** The overlay holds references to blocks from outside this file's committed tree (a clone). */
  private boolean foreign;

  /** Something changed since the last freeze (or the load). */
  private boolean changed;

  /**
   * The commit between {@link #freeze} and {@link #finish} or {@link #rollback}; null when none.
   */
  private TreeCommit inFlight;

  /** A tree on its own: its dirty memory counted only here, its leaves' arrays not used again. */
  FileTree(Geometry g, BlockStore store, Hash root, int height, long length) {
    this(g, store, root, height, length, new AtomicLong(), null, new LeafBuffers(g.leafSize, 0));
  }

  FileTree(
      Geometry g,
      BlockStore store,
      Hash root,
      int height,
      long length,
      AtomicLong dirtyTotal,
      EarlyHasher earlyHasher,
      LeafBuffers buffers) {
    this.g = g;
    this.store = store;
    this.dirtyTotal = dirtyTotal;
    this.earlyHasher = earlyHasher;
    this.buffers = buffers;
    this.root = root;
    this.rootHeight = height;
    this.top = root;
    this.topHeight = height;
    this.length = length;
    this.committedLength = length;
  }

  long length() {
    return length;
  }

  int height() {
    return rootHeight;
  }

  /** Changed since the last freeze: a commit now would have something to do. */
  boolean isDirty() {
    return changed;
  }

  /** A frozen commit is being hashed or stored. */
  boolean committing() {
    return inFlight != null;
  }

  /**
   * Memory held by the unfrozen part of the overlay, for the dirty-memory bound: its leaves, and an
   * estimate for its nodes, which matter when small writes land far apart (a 4 KiB write may bring
   * in three nodes).
   */
  long dirtyBytes() {
    return bytes(dirtyLeaves, dirtyNodes);
  }

  private long bytes(long leaves, long nodes) {
    return leaves * g.leafSize + nodes * Node.MEMORY;
  }

  private void countLeaf(int n) {
    dirtyLeaves += n;
    dirtyTotal.addAndGet((long) n * g.leafSize);
  }

  private void countNode(int n) {
    dirtyNodes += n;
    dirtyTotal.addAndGet((long) n * Node.MEMORY);
  }

  /** Forgets every change since the last commit. Not while a commit is in flight. */
  void discard() {
    requireNoCommit();
    top = root;
    topHeight = rootHeight;
    length = committedLength;
    release();
    foreign = false;
    changed = false;
  }

  /** Gives back the dirty-memory count of the overlay (the contents are being dropped). */
  void release() {
    dirtyTotal.addAndGet(-dirtyBytes());
    dirtyLeaves = 0;
    dirtyNodes = 0;
  }

  private void requireNoCommit() {
    if (inFlight != null) {
      throw new IllegalStateException("a commit of this file is in flight");
    }
  }

  // ---------------------------------------------------------------- reading

  /**
   * Copies bytes at {@code offset} into {@code dst}, up to its remaining space or the end of file.
   */
  int read(ReadTxn txn, long offset, ByteBuffer dst) throws IOException {
    if (offset >= length) {
      return 0;
    }
    int total = (int) Math.min(dst.remaining(), length - offset);
    int start = dst.position();
    try (BlockStore.LeafReader leaves = store.leafReader(txn, dst, total < STREAMING_READ)) {
      int done = 0;
      while (done < total) {
        long pos = offset + done;
        int inLeaf = (int) (pos & (g.leafSize - 1));
        int n = Math.min(total - done, g.leafSize - inLeaf);
        Slot leaf = leafSlot(txn, pos >>> g.leafShift);
        if (leaf instanceof Leaf l) {
          dst.put(start + done, l.data, inLeaf, n);
        } else if (leaf instanceof Hash h && !h.isZero()) {
          leaves.read(h, start + done, inLeaf, n);
        } else {
          dst.put(start + done, ZEROS, 0, n);
        }
        done += n;
      }
      leaves.finish();
    }
    dst.position(start + total);
    return total;
  }

  /**
   * Reads of at least this many bytes (sequential streams, in practice) leave the verified cache to
   * the small ones.
   */
  static final int STREAMING_READ = 128 * 1024;

  /**
   * The leaf at {@code leafIndex}, as a {@link Leaf} of the overlay or the committed leaf's hash.
   */
  private Slot leafSlot(ReadTxn txn, long leafIndex) throws IOException {
    Slot s = top;
    for (int level = topHeight; level > 0; level--) {
      int i = index(leafIndex, level);
      if (s instanceof Node n) {
        s = n.kids[i];
      } else if (s instanceof Hash h && !h.isZero()) {
        s = Geometry.child(store.load(txn, h, level), i);
      } else {
        return s; // a hole (a leaf is only at level 0)
      }
    }
    return s;
  }

  /**
   * The first offset at or after {@code from} that holds data ({@code wantData}) or is in a hole;
   * -1 when there is none before the end of the file (for a hole, the end of the file counts).
   */
  long seek(ReadTxn txn, long from, boolean wantData) throws IOException {
    if (from >= length) {
      return -1;
    }
    long found = find(txn, top, topHeight, 0, from, wantData, false);
    if (wantData) {
      return found >= 0 && found < length ? found : -1;
    }
    return found >= 0 ? Math.min(found, length) : length;
  }

  private long find(
      ReadTxn txn, Slot s, int level, long start, long from, boolean wantData, boolean knownDense)
      throws IOException {
    long at = Math.max(from, start);
    if (s instanceof Leaf l) {
      boolean data = Geometry.storedLeafLength(l.data) > 0;
      return data == wantData ? at : -1;
    }
    if (s instanceof Hash h) {
      if (h.isZero()) {
        return wantData ? -1 : at;
      }
      if (level == 0 || knownDense) {
        return wantData ? at : -1;
      }
      byte[] content = store.load(txn, h, level);
      long childSpan = g.span(level - 1);
      for (int i = (int) ((at - start) / childSpan); i < Geometry.FANOUT; i++) {
        long r =
            find(
                txn,
                Geometry.child(content, i),
                level - 1,
                start + i * childSpan,
                from,
                wantData,
                Geometry.dense(content, i));
        if (r >= 0) {
          return r;
        }
      }
      return -1;
    }
    Node n = (Node) s;
    long childSpan = g.span(level - 1);
    for (int i = (int) ((at - start) / childSpan); i < Geometry.FANOUT; i++) {
      long r =
          find(
              txn,
              n.kids[i],
              level - 1,
              start + i * childSpan,
              from,
              wantData,
              Geometry.dense(n.cleanDense, i));
      if (r >= 0) {
        return r;
      }
    }
    return -1;
  }

  // ---------------------------------------------------------------- changing

  void write(ReadTxn txn, long offset, ByteBuffer src) throws IOException {
    int total = src.remaining();
    if (total == 0) {
      return;
    }
    changed = true;
    growTo(txn, offset + total);
    int done = 0;
    while (done < total) {
      long pos = offset + done;
      int inLeaf = (int) (pos & (g.leafSize - 1));
      int n = Math.min(total - done, g.leafSize - inLeaf);
      Leaf l = leafFor(txn, pos >>> g.leafShift, n == g.leafSize);
      int version = l.changing();
      src.get(l.data, inLeaf, n);
      if (n == g.leafSize && earlyHasher != null) {
        earlyHasher.offer(l, version);
      }
      done += n;
    }
    length = Math.max(length, offset + total);
  }

  /**
   * Makes {@code [offset, end)} read as zeros (punch hole, zero range); whole subtrees become
   * holes.
   */
  void zero(ReadTxn txn, long offset, long end) throws IOException {
    end = Math.min(end, g.span(topHeight));
    if (offset < end) {
      changed = true;
      top = zeroIn(txn, top, topHeight, 0, offset, end);
    }
  }

  void truncate(ReadTxn txn, long newLength) throws IOException {
    changed = true;
    if (newLength < length) {
      zero(txn, newLength, length);
    } else {
      growTo(txn, newLength);
    }
    length = newLength;
  }

  /**
   * Makes the subtree at {@code level}, {@code index} (counted in subtrees of that level from the
   * start of the file) the given committed subtree of another tree: a range clone without copying.
   * The caller must commit before the other tree can change.
   */
  void share(ReadTxn txn, int level, long index, Hash subtree, boolean dense) throws IOException {
    long start = index * g.span(level);
    changed = true;
    growTo(txn, Math.max(start + 1, g.span(level)));
    foreign = true;
    if (level == topHeight) {
      drop(top);
      top = subtree;
      return;
    }
    top = mutable(txn, top, topHeight);
    Node n = (Node) top;
    for (int l = topHeight; l > level + 1; l--) {
      int i = Geometry.childIndex(start, g.span(l - 1));
      n = (Node) mutableKid(txn, n, i, l - 1);
    }
    int i = Geometry.childIndex(start, g.span(level));
    drop(n.kids[i]);
    n.kids[i] = subtree;
    n.setCleanDense(i, dense);
  }

  /**
   * The committed subtree at {@code level}, {@code index}, and whether it is dense. Requires a
   * clean tree.
   */
  Hash subtree(ReadTxn txn, int level, long index, boolean[] dense) throws IOException {
    if (isDirty() || committing()) {
      throw new IllegalStateException("subtree() needs a committed tree");
    }
    if (level > rootHeight) {
      throw new IllegalArgumentException("level " + level + " above the root " + rootHeight);
    }
    if (level == rootHeight) {
      Hash h = index == 0 ? root : Hash.ZERO;
      dense[0] = isDense(txn, h, level);
      return h;
    }
    Hash h = root;
    boolean d = false;
    long start = index * g.span(level);
    for (int l = rootHeight; l > level && !h.isZero(); l--) {
      byte[] content = store.load(txn, h, l);
      int i = Geometry.childIndex(start, g.span(l - 1));
      h = Geometry.child(content, i);
      d = Geometry.dense(content, i);
    }
    dense[0] = d && !h.isZero();
    return h;
  }

  private void growTo(ReadTxn txn, long end) throws IOException {
    if (end > Geometry.MAX_FILE_SIZE) {
      throw new IllegalArgumentException("beyond the largest file size");
    }
    int needed = g.heightFor(end);
    while (topHeight < needed) {
      // The old root becomes the leftmost child, with its exact density bit: a node's bytes, and
      // so its hash, depend only on the data below it, whatever order it was written in.
      Node n = new Node(topHeight + 1, Hash.ZERO, null);
      countNode(1);
      n.kids[0] = top;
      if (top instanceof Hash h && isDense(txn, h, topHeight)) {
        Geometry.setDense(n.cleanDense, 0);
      }
      top = n;
      topHeight++;
    }
  }

  /**
   * Whether a committed subtree has no all-zero leaf: a stored leaf always does; a node says so in
   * its bitmap.
   */
  private boolean isDense(ReadTxn txn, Hash h, int level) throws IOException {
    if (h.isZero()) {
      return false;
    }
    if (level == 0) {
      return true;
    }
    byte[] content = store.load(txn, h, level);
    for (int i = 0; i < Geometry.FANOUT; i++) {
      if (!Geometry.dense(content, i)) {
        return false;
      }
    }
    return true;
  }

  /**
   * The leaf at {@code leafIndex}, made changeable along its path. With {@code whole} the caller
   * writes all of it: what the leaf held is not loaded (nor checked, so a damaged leaf can be
   * written over, as a disk's bad sector can).
   */
  private Leaf leafFor(ReadTxn txn, long leafIndex, boolean whole) throws IOException {
    if (topHeight == 0) {
      top = whole ? blankFor(top) : mutable(txn, top, 0);
      return (Leaf) top;
    }
    Piece s = mutable(txn, top, topHeight);
    top = s;
    for (int level = topHeight; level > 1; level--) {
      s = mutableKid(txn, (Node) s, index(leafIndex, level), level - 1);
    }
    Node parent = (Node) s;
    int i = index(leafIndex, 1);
    if (whole) {
      parent.kids[i] = blankFor(parent.kids[i]);
    }
    return (Leaf) mutableKid(txn, parent, i, 0);
  }

  /**
   * A leaf that replaces slot content {@code s} and will be written over in full: s itself when it
   * is an unfrozen leaf, else a new, zeroed one with s as its base.
   */
  private Leaf blankFor(Slot s) {
    if (s instanceof Leaf l && !l.frozen) {
      return l;
    }
    countLeaf(1);
    return new Leaf(s, buffers.take(false));
  }

  /** Child {@code i} (at {@code level}) of an unfrozen node, made changeable in place. */
  private Piece mutableKid(ReadTxn txn, Node n, int i, int level) throws IOException {
    if (n.kids[i] instanceof Piece p && !p.frozen) {
      return p;
    }
    Piece k = mutable(txn, n.kids[i], level);
    n.kids[i] = k;
    return k;
  }

  /**
   * What may be changed in place of slot content {@code s}: a materialized hash, a copy of a frozen
   * piece, or s itself.
   */
  private Piece mutable(ReadTxn txn, Slot s, int level) throws IOException {
    if (s instanceof Hash h) {
      return materialize(txn, h, level);
    }
    Piece p = (Piece) s;
    if (!p.frozen) {
      return p;
    }
    if (p instanceof Leaf l) {
      countLeaf(1);
      byte[] data = buffers.take(false);
      System.arraycopy(l.data, 0, data, 0, data.length);
      Leaf copy = new Leaf(l, data);
      copy.rewritten = true;
      return copy;
    }
    countNode(1);
    return new Node((Node) p);
  }

  private Slot zeroIn(ReadTxn txn, Slot s, int level, long start, long offset, long end)
      throws IOException {
    long span = g.span(level);
    if (offset <= start && start + span <= end) {
      drop(s);
      return Hash.ZERO;
    }
    if (s instanceof Hash h && h.isZero()) {
      return s;
    }
    Piece m = mutable(txn, s, level);
    long from = Math.max(offset, start);
    long to = Math.min(end, start + span);
    if (m instanceof Leaf l) {
      l.changing();
      Arrays.fill(l.data, (int) (from - start), (int) (to - start), (byte) 0);
      return l;
    }
    Node n = (Node) m;
    long childSpan = g.span(level - 1);
    int first = (int) ((from - start) / childSpan);
    int last = (int) ((to - 1 - start) / childSpan);
    for (int i = first; i <= last; i++) {
      n.kids[i] = zeroIn(txn, n.kids[i], level - 1, start + i * childSpan, offset, end);
    }
    return n;
  }

  private Piece materialize(ReadTxn txn, Hash h, int level) throws IOException {
    if (level == 0) {
      Leaf l = new Leaf(h, buffers.take(true));
      if (!h.isZero()) {
        store.loadLeafInto(txn, h, l.data);
        l.rewritten = true;
      }
      countLeaf(1);
      return l;
    }
    countNode(1);
    return new Node(level, h, h.isZero() ? null : store.load(txn, h, level));
  }

  /**
   * Forgets an overlay subtree that is being replaced, for the dirty-memory count. Frozen pieces
   * are the commit's.
   */
  private void drop(Slot s) {
    if (s instanceof Leaf l && !l.frozen) {
      countLeaf(-1);
    } else if (s instanceof Node n && !n.frozen) {
      countNode(-1);
      for (Slot k : n.kids) {
        drop(k);
      }
    }
  }

  private static int index(long leafIndex, int level) {
    return (int) ((leafIndex >>> (Geometry.FANOUT_SHIFT * (level - 1))) & (Geometry.FANOUT - 1));
  }

  // ---------------------------------------------------------------- committing

  /**
   * Freezes the overlay as the next commit (the caller holds the owner's lock and its commit lock;
   * no other commit may be in flight). The tree first drops to the height its length needs. From
   * here on the commit's pieces are immutable: {@link TreeCommit#hash} and {@link TreeCommit#apply}
   * may run without the lock. The unfrozen overlay starts empty.
   */
  TreeCommit freeze(ReadTxn txn) throws IOException {
    requireNoCommit();
    Slot newTop = top;
    int h = topHeight;
    for (int min = g.heightFor(length); h > min; h--) {
      if (newTop instanceof Node n) {
        newTop = n.kids[0];
      } else if (newTop instanceof Hash t && !t.isZero()) {
        newTop = Geometry.child(store.load(txn, t, h), 0);
      }
    }
    top = newTop; // what was above holds nothing but zeros (every byte at or beyond length is zero)
    topHeight = h;
    List<Leaf> leaves = new ArrayList<>();
    List<Node> nodes = new ArrayList<>();
    collect(newTop, leaves, nodes);
    TreeCommit c =
        new TreeCommit(
            g.leafSize,
            store,
            root,
            rootHeight,
            newTop,
            h,
            length,
            foreign,
            leaves,
            nodes,
            dirtyBytes(),
            buffers);
    release();
    foreign = false;
    changed = false;
    inFlight = c;
    return c;
  }

  /** Marks the pieces below {@code s} frozen: leaves in any order, nodes children first. */
  private static void collect(Slot s, List<Leaf> leaves, List<Node> nodes) {
    if (s instanceof Leaf l) {
      l.frozen = true;
      leaves.add(l);
    } else if (s instanceof Node n) {
      n.frozen = true;
      for (Slot k : n.kids) {
        collect(k, leaves, nodes);
      }
      nodes.add(n);
    }
  }

  /**
   * After {@code c} is durable (the caller holds the owner's lock): its root is the committed tree;
   * every frozen piece left in the overlay becomes its hash, and bases that name frozen pieces
   * become their hashes.
   */
  void finish(TreeCommit c) {
    if (c != inFlight) {
      throw new IllegalStateException("not the commit in flight");
    }
    Hash r = c.root();
    root = r;
    rootHeight = c.newHeight;
    committedLength = c.length;
    inFlight = null;
    if (top instanceof Piece p) {
      if (p.frozen) {
        top = r; // nothing changed since the freeze: the overlay is empty
      } else {
        settle(p, true);
      }
    }
  }

  /**
   * After {@code c} failed or was given up (the caller holds the owner's lock): nothing of it is
   * stored, the committed tree stays, and its pieces are dirty again, so a later commit stores
   * them. Copies made meanwhile take over the bases of the pieces they were copied from.
   */
  void rollback(TreeCommit c) {
    if (c != inFlight) {
      throw new IllegalStateException("not the commit in flight");
    }
    inFlight = null;
    changed = true;
    foreign |= c.foreign;
    if (top instanceof Piece p) {
      settle(p, false);
    }
  }

  /**
   * Settles an overlay piece after the commit in flight ended ({@code stored}: durably). A frozen
   * piece is thawed (not stored) or replaced by its hash in its parent (stored); an unfrozen one
   * has its bases resolved and its children settled.
   */
  private void settle(Piece p, boolean stored) {
    if (p.frozen) {
      if (stored) {
        throw new IllegalStateException("a stored piece is replaced by its parent");
      }
      p.frozen = false;
      if (p instanceof Leaf) {
        countLeaf(1);
        return;
      }
      countNode(1);
    } else if (p.base instanceof Piece from) {
      // a copy of a piece of the commit: its base is what that piece was to become, or was
      p.base = stored ? Slot.hashOf(from) : from.base;
      if (p instanceof Node n && from instanceof Node f) {
        if (stored) {
          for (int i = 0; i < Geometry.FANOUT; i++) {
            if (n.baseKids[i] instanceof Piece k) {
              n.baseKids[i] = Slot.hashOf(k);
            }
          }
        } else {
          n.baseKids = f.baseKids;
        }
      }
    }
    if (p instanceof Node n) {
      for (int i = 0; i < Geometry.FANOUT; i++) {
        if (n.kids[i] instanceof Piece k) {
          if (stored && k.frozen) {
            Hash kh = Slot.hashOf(k);
            n.kids[i] = kh;
            n.setCleanDense(i, k instanceof Node kn ? kn.dense : !kh.isZero());
          } else {
            settle(k, stored);
          }
        }
      }
    }
  }
}
