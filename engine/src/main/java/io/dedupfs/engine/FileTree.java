package io.dedupfs.engine;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.lmdbjava.Txn;

/**
 * One file's contents: the committed Merkle tree (a root hash and a height) and, over it, an
 * overlay of the nodes and leaves changed since the last commit. Writes, punches, truncates and
 * range clones change only the overlay; {@link #prepareCommit} hashes it bottom-up and
 * {@link Commit#apply} stores what is new, from the root down, stopping wherever a subtree is
 * already stored.
 *
 * <p>Not thread-safe: the owner ({@link FileContent}) guards it with its lock.
 *
 * <p>A slot of the overlay (the root, or a child of a {@link Node}) holds one of: a {@link Hash}
 * (a subtree as committed, untouched), a {@link Node} or a {@link Leaf} (materialized and perhaps
 * changed). Invariant: every byte at or beyond {@link #length} is zero.
 */
final class FileTree {
  private static final byte[] ZEROS = new byte[Geometry.MAX_LEAF_SIZE];

  private final Geometry g;
  private final BlockStore store;

  private Hash root;
  private int rootHeight;
  private Object top;
  private int topHeight;
  private long length;
  private long committedLength;
  private int dirtyLeaves;
  private int dirtyNodes;
  /** The overlay holds references to blocks from outside this file's committed tree (a clone). */
  private boolean foreign;

  FileTree(Geometry g, BlockStore store, Hash root, int height, long length) {
    this.g = g;
    this.store = store;
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

  boolean isDirty() {
    return top != root || topHeight != rootHeight || length != committedLength;
  }

  /**
   * Memory held by the overlay, for the dirty-memory bound: its leaves, and an estimate for its
   * nodes, which matter when small writes land far apart (a 4 KiB write may bring in three nodes).
   */
  long dirtyBytes() {
    return (long) dirtyLeaves * g.leafSize + (long) dirtyNodes * Node.MEMORY;
  }

  /** Forgets every change since the last commit. */
  void discard() {
    top = root;
    topHeight = rootHeight;
    length = committedLength;
    dirtyLeaves = 0;
    dirtyNodes = 0;
    foreign = false;
  }

  // ---------------------------------------------------------------- reading

  /** Copies bytes at {@code offset} into {@code dst}, up to its remaining space or the end of file. */
  int read(Txn<ByteBuffer> txn, long offset, ByteBuffer dst) throws CorruptBlockException {
    if (offset >= length) {
      return 0;
    }
    int total = (int) Math.min(dst.remaining(), length - offset);
    int done = 0;
    while (done < total) {
      long pos = offset + done;
      int inLeaf = (int) (pos & (g.leafSize - 1));
      int n = Math.min(total - done, g.leafSize - inLeaf);
      Object leaf = leafSlot(txn, pos >>> g.leafShift);
      if (leaf instanceof Leaf l) {
        dst.put(l.data, inLeaf, n);
      } else {
        Hash h = (Hash) leaf;
        byte[] content = h.isZero() ? ZEROS : store.load(txn, h, 0);
        int have = Math.max(0, Math.min(n, content.length - inLeaf)); // stored leaves lack their trailing zeros
        if (have > 0) {
          dst.put(content, inLeaf, have);
        }
        dst.put(ZEROS, 0, n - have);
      }
      done += n;
    }
    return total;
  }

  /** The leaf at {@code leafIndex}, as a dirty {@link Leaf} or the committed leaf's hash. */
  private Object leafSlot(Txn<ByteBuffer> txn, long leafIndex) throws CorruptBlockException {
    Object s = top;
    for (int level = topHeight; level > 0; level--) {
      int i = index(leafIndex, level);
      if (s instanceof Node n) {
        s = n.kids[i];
      } else {
        Hash h = (Hash) s;
        if (h.isZero()) {
          return h;
        }
        s = Geometry.child(store.load(txn, h, level), i);
      }
    }
    return s;
  }

  /**
   * The first offset at or after {@code from} that holds data ({@code wantData}) or is in a hole;
   * -1 when there is none before the end of the file (for a hole, the end of the file counts).
   */
  long seek(Txn<ByteBuffer> txn, long from, boolean wantData) throws CorruptBlockException {
    if (from >= length) {
      return -1;
    }
    long found = find(txn, top, topHeight, 0, from, wantData, false);
    if (wantData) {
      return found >= 0 && found < length ? found : -1;
    }
    return found >= 0 ? Math.min(found, length) : length;
  }

  private long find(Txn<ByteBuffer> txn, Object s, int level, long start, long from, boolean wantData, boolean knownDense)
      throws CorruptBlockException {
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
        long r = find(txn, Geometry.child(content, i), level - 1, start + i * childSpan, from, wantData, Geometry.dense(content, i));
        if (r >= 0) {
          return r;
        }
      }
      return -1;
    }
    Node n = (Node) s;
    long childSpan = g.span(level - 1);
    for (int i = (int) ((at - start) / childSpan); i < Geometry.FANOUT; i++) {
      long r = find(txn, n.kids[i], level - 1, start + i * childSpan, from, wantData, Geometry.dense(n.cleanDense, i));
      if (r >= 0) {
        return r;
      }
    }
    return -1;
  }

  // ---------------------------------------------------------------- changing

  void write(Txn<ByteBuffer> txn, long offset, ByteBuffer src) throws CorruptBlockException {
    int total = src.remaining();
    if (total == 0) {
      return;
    }
    growTo(txn, offset + total);
    int done = 0;
    while (done < total) {
      long pos = offset + done;
      int inLeaf = (int) (pos & (g.leafSize - 1));
      int n = Math.min(total - done, g.leafSize - inLeaf);
      src.get(leafFor(txn, pos >>> g.leafShift).data, inLeaf, n);
      done += n;
    }
    length = Math.max(length, offset + total);
  }

  /** Makes {@code [offset, end)} read as zeros (punch hole, zero range); whole subtrees become holes. */
  void zero(Txn<ByteBuffer> txn, long offset, long end) throws CorruptBlockException {
    end = Math.min(end, g.span(topHeight));
    if (offset < end) {
      top = zeroIn(txn, top, topHeight, 0, offset, end);
    }
  }

  void truncate(Txn<ByteBuffer> txn, long newLength) throws CorruptBlockException {
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
  void share(Txn<ByteBuffer> txn, int level, long index, Hash subtree, boolean dense) throws CorruptBlockException {
    long start = index * g.span(level);
    growTo(txn, Math.max(start + 1, g.span(level)));
    foreign = true;
    if (level == topHeight) {
      drop(top);
      top = subtree;
      return;
    }
    if (top instanceof Hash h) {
      top = materialize(txn, h, topHeight);
    }
    Node n = (Node) top;
    for (int l = topHeight; l > level + 1; l--) {
      int i = Geometry.childIndex(start, g.span(l - 1));
      Object k = n.kids[i];
      if (k instanceof Hash h) {
        k = materialize(txn, h, l - 1);
        n.kids[i] = k;
      }
      n = (Node) k;
    }
    int i = Geometry.childIndex(start, g.span(level));
    drop(n.kids[i]);
    n.kids[i] = subtree;
    if (dense) {
      Geometry.setDense(n.cleanDense, i);
    } else {
      n.cleanDense[i >>> 3] &= (byte) ~(1 << (i & 7));
    }
  }

  /** The committed subtree at {@code level}, {@code index}, and whether it is dense. Requires a clean tree. */
  Hash subtree(Txn<ByteBuffer> txn, int level, long index, boolean[] dense) throws CorruptBlockException {
    if (isDirty()) {
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

  private void growTo(Txn<ByteBuffer> txn, long end) throws CorruptBlockException {
    if (end > Geometry.MAX_FILE_SIZE) {
      throw new IllegalArgumentException("beyond the largest file size");
    }
    int needed = g.heightFor(end);
    while (topHeight < needed) {
      // The old root becomes the leftmost child, with its exact density bit: a node's bytes, and
      // so its hash, depend only on the data below it, whatever order it was written in.
      Node n = new Node(topHeight + 1, Hash.ZERO, null);
      dirtyNodes++;
      n.kids[0] = top;
      if (top instanceof Hash h && isDense(txn, h, topHeight)) {
        Geometry.setDense(n.cleanDense, 0);
      }
      top = n;
      topHeight++;
    }
  }

  /** Whether a committed subtree has no all-zero leaf: a stored leaf always does; a node says so in its bitmap. */
  private boolean isDense(Txn<ByteBuffer> txn, Hash h, int level) throws CorruptBlockException {
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

  private Leaf leafFor(Txn<ByteBuffer> txn, long leafIndex) throws CorruptBlockException {
    if (top instanceof Hash h) {
      top = materialize(txn, h, topHeight);
    }
    Object s = top;
    for (int level = topHeight; level > 0; level--) {
      Node n = (Node) s;
      int i = index(leafIndex, level);
      Object k = n.kids[i];
      if (k instanceof Hash h) {
        k = materialize(txn, h, level - 1);
        n.kids[i] = k;
      }
      s = k;
    }
    return (Leaf) s;
  }

  private Object zeroIn(Txn<ByteBuffer> txn, Object s, int level, long start, long offset, long end)
      throws CorruptBlockException {
    long span = g.span(level);
    if (offset <= start && start + span <= end) {
      drop(s);
      return Hash.ZERO;
    }
    if (s instanceof Hash h && h.isZero()) {
      return s;
    }
    Object m = s instanceof Hash h ? materialize(txn, h, level) : s;
    long from = Math.max(offset, start);
    long to = Math.min(end, start + span);
    if (m instanceof Leaf l) {
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

  private Object materialize(Txn<ByteBuffer> txn, Hash h, int level) throws CorruptBlockException {
    if (level == 0) {
      byte[] data = new byte[g.leafSize];
      if (!h.isZero()) {
        byte[] content = store.load(txn, h, 0);
        System.arraycopy(content, 0, data, 0, content.length);
      }
      dirtyLeaves++;
      return new Leaf(h, data);
    }
    dirtyNodes++;
    return new Node(level, h, h.isZero() ? null : store.load(txn, h, level));
  }

  /** Forgets an overlay subtree that is being replaced, for the dirty-memory count. */
  private void drop(Object s) {
    if (s instanceof Leaf) {
      dirtyLeaves--;
    } else if (s instanceof Node n) {
      dirtyNodes--;
      for (Object k : n.kids) {
        drop(k);
      }
    }
  }

  private static int index(long leafIndex, int level) {
    return (int) ((leafIndex >>> (Geometry.FANOUT_SHIFT * (level - 1))) & (Geometry.FANOUT - 1));
  }

  // ---------------------------------------------------------------- committing

  /** Hashes the overlay (leaves in parallel) and returns what committing it would do. */
  Commit prepareCommit(Txn<ByteBuffer> txn) throws CorruptBlockException {
    List<Leaf> leaves = new ArrayList<>();
    collectLeaves(top, leaves);
    leaves.parallelStream().forEach(l -> l.hash(g.leafSize));
    Object newTop = top;
    hashNodes(newTop);
    int h = topHeight;
    for (int min = g.heightFor(length); h > min; h--) {
      if (newTop instanceof Node n) {
        newTop = n.kids[0];
      } else if (!((Hash) newTop).isZero()) {
        newTop = Geometry.child(store.load(txn, (Hash) newTop, h), 0);
      }
    }
    return new Commit(newTop, h);
  }

  private static void collectLeaves(Object s, List<Leaf> out) {
    if (s instanceof Leaf l) {
      out.add(l);
    } else if (s instanceof Node n) {
      for (Object k : n.kids) {
        collectLeaves(k, out);
      }
    }
  }

  private static void hashNodes(Object s) {
    if (s instanceof Node n) {
      for (Object k : n.kids) {
        hashNodes(k);
      }
      n.hash();
    }
  }

  private static Hash hashOf(Object s) {
    return s instanceof Hash h ? h : s instanceof Leaf l ? l.hash : ((Node) s).hash;
  }

  /** The outcome of hashing an overlay: a new root, to be stored by {@link #apply}. */
  final class Commit {
    final Object newTop;
    final int newHeight;

    private Commit(Object newTop, int newHeight) {
      this.newTop = newTop;
      this.newHeight = newHeight;
    }

    Hash root() {
      return hashOf(newTop);
    }

    /**
     * Stores the new blocks and moves reference counts from the old tree to the new one, inside
     * the caller's write transaction. Pure with respect to this object: it may be run again if
     * the transaction is retried.
     */
    void apply(Txn<ByteBuffer> txn) throws CorruptBlockException {
      if (newTop instanceof Hash h) {
        if (!h.equals(root)) {
          incref(txn, h);
          store.decref(txn, root);
        }
        return;
      }
      Hash base = newTop instanceof Leaf l ? l.base : ((Node) newTop).base;
      boolean owns = newHeight == rootHeight && base.equals(root) && !root.isZero();
      swap(txn, newTop, owns);
      if (!owns) {
        store.decref(txn, root);
      }
    }

    /**
     * Gives the new content of a slot one reference. With {@code owns}, the slot's old content
     * (its base) loses the reference its old parent held; a node whose base had no other
     * reference takes over the base's references to unchanged children instead of counting them
     * again, so a change costs work along its path only.
     */
    private void swap(Txn<ByteBuffer> txn, Object slot, boolean owns) throws CorruptBlockException {
      Hash h = hashOf(slot);
      Hash base = slot instanceof Leaf l ? l.base : ((Node) slot).base;
      if (owns && h.equals(base)) {
        return;
      }
      if (h.isZero() || store.exists(txn, h)) {
        incref(txn, h);
        if (owns) {
          store.decref(txn, base);
        }
        return;
      }
      if (slot instanceof Leaf l) {
        store.putNew(txn, h, 0, l.data, l.storedLength);
        if (owns) {
          store.decref(txn, base);
        }
        return;
      }
      Node n = (Node) slot;
      boolean transfer = owns && !foreign && !base.isZero() && store.refcount(txn, base) == 1;
      store.putNew(txn, h, n.level, n.padded, n.storedLength);
      for (int i = 0; i < Geometry.FANOUT; i++) {
        Object k = n.kids[i];
        Hash baseKid = transfer ? n.baseKids[i] : null;
        if (k instanceof Hash kh) {
          if (!transfer) {
            incref(txn, kh);
          } else if (!kh.equals(baseKid)) {
            incref(txn, kh);
            store.decref(txn, baseKid);
          }
        } else {
          Hash kBase = k instanceof Leaf l ? l.base : ((Node) k).base;
          boolean kidOwns = transfer && kBase.equals(baseKid);
          swap(txn, k, kidOwns);
          if (transfer && !kidOwns) {
            store.decref(txn, baseKid);
          }
        }
      }
      if (transfer) {
        store.deleteTransferred(txn, base);
      } else if (owns) {
        store.decref(txn, base);
      }
    }

    private void incref(Txn<ByteBuffer> txn, Hash h) {
      if (!h.isZero()) {
        store.incref(txn, h);
      }
    }

    /** After the transaction committed: the new tree is the committed one, the overlay is empty. */
    void finish() {
      root = root();
      rootHeight = newHeight;
      top = root;
      topHeight = newHeight;
      dirtyLeaves = 0;
      dirtyNodes = 0;
      foreign = false;
      committedLength = length;
    }
  }

  // ---------------------------------------------------------------- overlay values

  /** A leaf being changed: a full leaf-size copy. */
  static final class Leaf {
    final Hash base;
    final byte[] data;
    Hash hash;
    int storedLength;

    Leaf(Hash base, byte[] data) {
      this.base = base;
      this.data = data;
    }

    void hash(int leafSize) {
      storedLength = Geometry.storedLeafLength(data);
      hash = storedLength == 0 ? Hash.ZERO : Hasher.leaf(data, storedLength, leafSize);
    }
  }

  /** A node being changed: its children, each a Hash, Node or Leaf. */
  static final class Node {
    /** Roughly what a node in the overlay costs: two arrays of 128 references, up to 128 hashes, its content. */
    static final int MEMORY = 16 * 1024;
    final int level;
    final Hash base;
    /** The base's children (null for a new node), to tell which children changed. */
    final Hash[] baseKids;
    final Object[] kids = new Object[Geometry.FANOUT];
    /** Density bits of the children that are still plain hashes. */
    final byte[] cleanDense = new byte[Geometry.BITMAP_BYTES];
    Hash hash;
    boolean dense;
    byte[] padded;
    int storedLength;

    Node(int level, Hash base, byte[] baseContent) {
      this.level = level;
      this.base = base;
      if (baseContent == null) {
        baseKids = null;
        Arrays.fill(kids, Hash.ZERO);
      } else {
        baseKids = new Hash[Geometry.FANOUT];
        for (int i = 0; i < Geometry.FANOUT; i++) {
          baseKids[i] = Geometry.child(baseContent, i);
          kids[i] = baseKids[i];
        }
        System.arraycopy(baseContent, 0, cleanDense, 0, Geometry.BITMAP_BYTES);
      }
    }

    void hash() {
      padded = new byte[Geometry.NODE_BYTES];
      boolean allDense = true;
      boolean allZero = true;
      for (int i = 0; i < Geometry.FANOUT; i++) {
        Object k = kids[i];
        Hash kh;
        boolean kd;
        if (k instanceof Hash h) {
          kh = h;
          kd = !h.isZero() && Geometry.dense(cleanDense, i);
        } else if (k instanceof Leaf l) {
          kh = l.hash;
          kd = !kh.isZero();
        } else {
          Node c = (Node) k;
          kh = c.hash;
          kd = c.dense;
        }
        kh.writeTo(padded, Geometry.BITMAP_BYTES + i * Hash.SIZE);
        if (kd) {
          Geometry.setDense(padded, i);
        }
        allDense &= kd;
        allZero &= kh.isZero();
      }
      hash = allZero ? Hash.ZERO : Hasher.node(level, padded);
      dense = allDense;
      storedLength = Geometry.storedNodeLength(padded);
    }
  }
}
