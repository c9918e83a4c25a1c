package io.dedupfs.engine;

import io.dedupfs.engine.Slot.Leaf;
import io.dedupfs.engine.Slot.Node;
import io.dedupfs.engine.Slot.Piece;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A frozen overlay of a {@link FileTree} ({@link FileTree#freeze}): a new root, to be hashed
 * ({@link #hash}) and stored ({@link #apply}). Both may run without the owner's lock: nothing they
 * read changes until {@link FileTree#finish} or {@link FileTree#rollback}.
 */
final class TreeCommit {
  final Slot newTop;
  final int newHeight;

  /** The file's length as frozen. */
  final long length;

  /** Memory the frozen pieces hold (as counted while they were dirty). */
  final long bytes;

  /** The overlay held references to blocks from outside the file's committed tree (a clone). */
  final boolean foreign;

  private final int leafSize;
  private final BlockStore store;

  /** The committed tree this commit replaces (it stays committed until this one is finished). */
  private final Hash oldRoot;

  private final int oldHeight;
  private final List<Leaf> leaves;
  private final List<Node> nodes;

  /** Where the leaves' arrays go back once this commit is stored ({@link #stored}). */
  private final LeafBuffers buffers;

  private boolean hashed;

  /**
   * The form in which each leaf packed so far is stored ({@link BlockStore#pack}; a null value:
   * raw): the leaves {@link #packAhead} was given, and those {@link #apply} found the store lacked.
   */
  private final Map<Leaf, BlockStore.Packed> packed = new IdentityHashMap<>();

  /** The leaves the store lacked when the last {@link #apply} looked. */
  private List<Leaf> freshLeaves;

  TreeCommit(
      int leafSize,
      BlockStore store,
      Hash oldRoot,
      int oldHeight,
      Slot newTop,
      int newHeight,
      long length,
      boolean foreign,
      List<Leaf> leaves,
      List<Node> nodes,
      long bytes,
      LeafBuffers buffers) {
    this.leafSize = leafSize;
    this.store = store;
    this.oldRoot = oldRoot;
    this.oldHeight = oldHeight;
    this.newTop = newTop;
    this.newHeight = newHeight;
    this.length = length;
    this.foreign = foreign;
    this.leaves = leaves;
    this.nodes = nodes;
    this.bytes = bytes;
    this.buffers = buffers;
  }

  /** Hashes the frozen pieces: leaves in parallel, then nodes, children first. */
  void hash() {
    if (hashed) {
      return;
    }
    if (leaves.size() > 8) {
      leaves.parallelStream().forEach(l -> l.hash(leafSize));
    } else {
      leaves.forEach(l -> l.hash(leafSize));
    }
    for (Node n : nodes) {
      n.hash();
    }
    hashed = true;
  }

  Hash root() {
    return Slot.hashOf(newTop);
  }

  /** Whether this commit was frozen from contents whose committed tree is {@code committed}. */
  boolean replaces(Hash committed) {
    return oldRoot.equals(committed);
  }

  /**
   * Stores the new blocks and moves reference counts from the old tree to the new one, inside the
   * caller's write transaction. Pure with respect to this object but for the compressed forms it
   * keeps: it may be run again if the transaction is retried.
   */
  void apply(WriteTxn txn) throws IOException {
    hash();
    pack(txn);
    store.prepareNew(txn, fresh(txn));
    if (newTop instanceof Hash h) {
      if (!h.equals(oldRoot)) {
        store.incref(txn, h);
        store.decref(txn, oldRoot);
      }
      return;
    }
    Hash base = ((Piece) newTop).baseHash();
    boolean owns = newHeight == oldHeight && base.equals(oldRoot) && !oldRoot.isZero();
    swap(txn, newTop, owns);
    if (!owns) {
      store.decref(txn, oldRoot);
    }
  }

  /**
   * The blocks {@link #swap} will store new: the distinct leaves the store lacked when {@link
   * #pack} looked, then the nodes it lacks. Nodes are hashed, so their content is final.
   */
  private List<BlockStore.NewBlock> fresh(WriteTxn txn) {
    Map<Hash, BlockStore.NewBlock> out = new LinkedHashMap<>();
    for (Leaf l : freshLeaves) {
      out.putIfAbsent(l.hash, new BlockStore.NewBlock(l.hash, 0, l.data, l.storedLength));
    }
    for (Node n : nodes) {
      Hash h = n.hash;
      if (!h.isZero() && !out.containsKey(h) && !store.exists(txn, h)) {
        out.put(h, new BlockStore.NewBlock(h, n.level, n.padded, n.storedLength));
      }
    }
    return new ArrayList<>(out.values());
  }

  /**
   * Once this commit is stored and settled ({@link FileTree#finish}: no overlay names its leaves
   * any more, so no reader, who holds the owner's lock, finds them): its leaves {@link
   * Leaf#rewritten} go to the cache of checked blocks, and the arrays of the others back to the
   * buffers, for leaves to come. The cache takes a leaf's array itself when its content fills it:
   * nobody changes it any more. An early hash that still runs over one of these arrays is harmless:
   * only the leaf it was offered for, which is gone, would keep it ({@link Leaf#hashedEarly}).
   * Needs no lock.
   */
  void stored() {
    for (Leaf l : leaves) {
      if (l.rewritten && !l.hash.isZero()) {
        if (l.storedLength == l.data.length) {
          store.keepChecked(l.hash, l.data);
          continue;
        }
        store.keepChecked(l.hash, Arrays.copyOf(l.data, l.storedLength));
      }
      buffers.give(l.data);
    }
  }

  /**
   * The hashed leaves that the store lacks as {@code txn} sees it, for {@link #packAhead}. Hashes
   * first.
   */
  List<Leaf> missingLeaves(ReadTxn txn) {
    hash();
    return leaves.stream().filter(l -> !l.hash.isZero() && !store.exists(txn, l.hash)).toList();
  }

  /**
   * Compresses those of {@code some} not compressed yet, in parallel. Called with {@link
   * #missingLeaves} before the write transaction and outside it, so that LMDB's single writer only
   * stores what it finds compressed; {@link #apply} then compresses only the leaves the store lacks
   * in its transaction that were not given here (freed meanwhile). Needs no transaction and no
   * lock; not while {@link #apply} runs.
   */
  void packAhead(List<Leaf> some) {
    List<Leaf> todo = some.stream().filter(l -> !packed.containsKey(l)).toList();
    List<BlockStore.Packed> forms =
        (todo.size() > 8 ? todo.parallelStream() : todo.stream())
            .map(l -> store.pack(l.data, l.storedLength, 0))
            .toList(); // keeps the nulls (raw)
    for (int i = 0; i < todo.size(); i++) {
      packed.put(todo.get(i), forms.get(i));
    }
  }

  /** Finds the leaves the store lacks in {@code txn} and compresses those not compressed yet. */
  private void pack(WriteTxn txn) {
    freshLeaves = missingLeaves(txn);
    packAhead(freshLeaves);
  }

  /**
   * Gives the new content of a slot one reference. With {@code owns}, the slot's old content (its
   * base) loses the reference its old parent held; a node whose base had no other reference takes
   * over the base's references to unchanged children instead of counting them again, so a change
   * costs work along its path only.
   */
  private void swap(WriteTxn txn, Slot slot, boolean owns) throws IOException {
    Hash h = Slot.hashOf(slot);
    Hash base = ((Piece) slot).baseHash();
    if (owns && h.equals(base)) {
      return;
    }
    if (h.isZero() || store.exists(txn, h)) {
      store.incref(txn, h);
      if (owns) {
        store.decref(txn, base);
      }
      return;
    }
    if (slot instanceof Leaf l) {
      store.putNew(txn, h, 0, l.data, l.storedLength, packed.get(l));
      if (owns) {
        store.decref(txn, base);
      }
      return;
    }
    Node n = (Node) slot;
    // the new node inherits the old one's references to the children it keeps, when the old one was
    // only this slot's
    boolean transfer = owns && !foreign && !base.isZero() && store.soleReference(txn, base);
    store.putNew(txn, h, n.level, n.padded, n.storedLength);
    for (int i = 0; i < Geometry.FANOUT; i++) {
      Slot k = n.kids[i];
      Hash baseKid = transfer ? (Hash) n.baseKids[i] : null;
      if (k instanceof Hash kh) {
        if (!transfer) {
          store.incref(txn, kh);
        } else if (!kh.equals(baseKid)) {
          store.incref(txn, kh);
          store.decref(txn, baseKid);
        }
      } else {
        Hash kBase = ((Piece) k).baseHash();
        boolean kidOwns = transfer && kBase.equals(baseKid);
        swap(txn, k, kidOwns);
        if (transfer && !kidOwns) {
          store.decref(txn, baseKid);
        }
      }
    }
    if (transfer) {
      store.takeOver(txn, base);
    } else if (owns) {
      store.decref(txn, base);
    }
  }
}
