package io.dedupfs.engine;

import java.util.Arrays;

/**
 * What a slot of a {@link FileTree}'s overlay (its top, or a child of a {@link Node}) holds:
 *
 * <ul>
 *   <li>a {@link Hash}: a subtree as committed, untouched ({@link Hash#ZERO}: a hole, all zeros);
 *   <li>a {@link Leaf}: a leaf materialized in memory, perhaps changed;
 *   <li>a {@link Node}: a node materialized in memory, whose children are slots in turn.
 * </ul>
 *
 * <p>Leaves and nodes are the {@link Piece}s of the overlay. A piece is frozen while the commit
 * that stores it is in flight (see {@link FileTree}); freezing is a state of the piece, not a type,
 * since a failed commit thaws it again.
 */
sealed interface Slot permits Hash, Slot.Piece {

  /** The hash of a slot's content: a committed subtree's, or a hashed piece's. */
  static Hash hashOf(Slot s) {
    if (s instanceof Hash h) {
      return h;
    }
    return s instanceof Leaf l ? l.hash : ((Node) s).hash;
  }

  /**
   * A leaf or node of the overlay. {@link #base} is what the slot held in the committed tree: a
   * {@link Hash}, or, for a copy of a frozen piece made while its commit is in flight, that piece
   * (resolved to a hash when the commit ends).
   */
  abstract static sealed class Piece implements Slot permits Leaf, Node {
    Slot base;

    /**
     * Part of the commit in flight: never changed (a change copies it). Guarded by the owner's
     * lock.
     */
    boolean frozen;

    Piece(Slot base) {
      this.base = base;
    }

    /** The committed hash this piece replaces; a frozen piece's base is always resolved. */
    Hash baseHash() {
      return (Hash) base;
    }
  }

  /**
   * A leaf being changed: a full leaf-size copy. A leaf that a write filled may be hashed early, by
   * an {@link EarlyHasher}, while the writer goes on and the commit before it runs; the commit then
   * takes that hash instead of working it out again, as long as data has not changed since.
   */
  final class Leaf extends Piece {
    final byte[] data;
    Hash hash;
    int storedLength;

    /**
     * Its data began as a stored or frozen leaf's, to be changed in part: a writer came back to
     * data already there, as a guest's random writes do, and is likely to come back again. Once
     * stored, such a leaf's content is kept in the cache of checked blocks ({@link
     * BlockStore#keepChecked}), so that the next write in part copies it from there instead of
     * reading and checking it again.
     */
    boolean rewritten;

    /**
     * Counts the changes of data, so that an early hash of an older content is refused. This field
     * and the two after it are guarded by this leaf's monitor.
     */
    private int version;

    /** The hash of data at the current version, worked out early; null when none. */
    private Hash early;

    private int earlyLength;

    Leaf(Slot base, byte[] data) {
      super(base);
      this.data = data;
    }

    /**
     * Called before every change of data (by its owner, under the owner's lock): what was hashed
     * early no longer holds. Returns the version data will have once changed.
     */
    synchronized int changing() {
      early = null;
      return ++version;
    }

    synchronized int version() {
      return version;
    }

    /**
     * The early hash of data as it was at {@code atVersion}, of its first {@code length} bytes:
     * kept unless data has changed since. Data read while it changed gives a hash that is never
     * kept: every change bumps the version before it touches data.
     */
    synchronized void hashedEarly(int atVersion, Hash h, int length) {
      if (atVersion == version) {
        early = h;
        earlyLength = length;
      }
    }

    /** Sets {@link #hash} and {@link #storedLength}: the early hash if data is unchanged since. */
    void hash(int leafSize) {
      synchronized (this) {
        if (early != null) {
          storedLength = earlyLength;
          hash = early;
          return;
        }
      }
      storedLength = Geometry.storedLeafLength(data);
      hash = storedLength == 0 ? Hash.ZERO : Hasher.leaf(data, storedLength, leafSize);
    }
  }

  /** A node being changed: its children, each a slot. */
  final class Node extends Piece {
    /**
     * Roughly what a node in the overlay costs: two arrays of 128 references, up to 128 hashes, its
     * content.
     */
    static final int MEMORY = 16 * 1024;

    final int level;

    /**
     * The base's children (null for a new node), to tell which children changed: hashes, or frozen
     * pieces (see {@link Piece#base}).
     */
    Slot[] baseKids;

    final Slot[] kids;

    /** Density bits of the children that are still plain hashes. */
    final byte[] cleanDense;

    Hash hash;
    boolean dense;
    byte[] padded;
    int storedLength;

    Node(int level, Hash base, byte[] baseContent) {
      super(base);
      this.level = level;
      this.kids = new Slot[Geometry.FANOUT];
      this.cleanDense = new byte[Geometry.BITMAP_BYTES];
      if (baseContent == null) {
        baseKids = null;
        Arrays.fill(kids, Hash.ZERO);
      } else {
        baseKids = new Slot[Geometry.FANOUT];
        for (int i = 0; i < Geometry.FANOUT; i++) {
          baseKids[i] = Geometry.child(baseContent, i);
          kids[i] = baseKids[i];
        }
        System.arraycopy(baseContent, 0, cleanDense, 0, Geometry.BITMAP_BYTES);
      }
    }

    /** A changeable copy of a frozen node: the same children, and the frozen node as its base. */
    Node(Node frozen) {
      super(frozen);
      this.level = frozen.level;
      this.kids = frozen.kids.clone();
      this.baseKids = frozen.kids.clone();
      this.cleanDense = frozen.cleanDense.clone();
    }

    /** Sets or clears the density bit of child {@code i}, a plain hash. */
    void setCleanDense(int i, boolean dense) {
      if (dense) {
        Geometry.setDense(cleanDense, i);
      } else {
        cleanDense[i >>> 3] &= (byte) ~(1 << (i & 7));
      }
    }

    void hash() {
      padded = new byte[Geometry.NODE_BYTES];
      boolean allDense = true;
      boolean allZero = true;
      for (int i = 0; i < Geometry.FANOUT; i++) {
        Slot k = kids[i];
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
