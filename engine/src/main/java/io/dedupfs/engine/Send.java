package io.dedupfs.engine;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Writes a snapshot as a send stream (FORMAT.md, "Send streams"): the header, the blocks of its
 * files' trees, children before their parents, then its namespace records and the trailing digest.
 *
 * <p>Which blocks: every block of the snapshot's trees once, less what the receiver holds. With a
 * base snapshot ({@code from}), each file's tree is walked beside the base's file of the same path
 * and every subtree whose hash (and level) equals the base's there is left out, as is any tree
 * equal to a base file's root, so the work is proportional to what changed. With a {@link
 * BlockQuery} the receiver is asked, level by level from the roots, which blocks it holds; a held
 * node stands for its whole subtree. A resumed stream leaves out the blocks a token says arrived
 * (the order of blocks is a function of the snapshot, so the same stream sent again has them
 * first).
 *
 * <p>Blocks are read in read transactions of at most {@value #BATCH_BLOCKS} blocks and written out
 * after each closes, so a slow pipe pins no old pages of the store.
 */
final class Send {
  static final int BATCH_BLOCKS = 1024;
  private static final long BATCH_BYTES = 16L << 20;
  private static final int QUERY_BATCH = 4096;

  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;
  private final Snapshots snapshots;
  private final Geometry geometry;

  Send(Lmdb db, Namespace ns, BlockStore blocks, Snapshots snapshots, Geometry geometry) {
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
    this.snapshots = snapshots;
    this.geometry = geometry;
  }

  private record Prep(
      SnapshotInfo info, SendStream.Listing listing, SnapshotInfo from, SendStream.Listing old) {}

  /** A block to write: its content, or null for one named by reference (then its length). */
  private record Block(Hash hash, int level, byte[] content, int length) {}

  SendReport send(
      String name,
      String fromName,
      String resumeToken,
      BlockQuery receiver,
      boolean byReference,
      OutputStream sink,
      Consumer<Progress> progress)
      throws IOException {
    String pool = byReference ? pool(resumeToken) : null;
    Prep p =
        db.read(
            txn -> {
              SnapshotInfo info = snapshots.find(txn, name);
              SnapshotInfo from = fromName == null ? null : snapshots.find(txn, fromName);
              return new Prep(
                  info,
                  SendStream.list(ns, txn, info.ino()),
                  from,
                  from == null ? null : SendStream.list(ns, txn, from.ino()));
            });
    byte[] fromDigest = p.old == null ? null : p.old.digest();
    long id = SendStream.streamId(name, p.listing.digest(), fromDigest);
    long skip = 0;
    if (resumeToken != null) {
      if (receiver != null) {
        throw new IllegalArgumentException(
            "a two-way send resumes by itself (the receiver holds what arrived): no token needed");
      }
      long[] t;
      try {
        t = SendStream.parseToken(resumeToken);
      } catch (IllegalArgumentException e) {
        throw new StreamException(e.getMessage());
      }
      if (t[0] != id) {
        throw new StreamException(
            "the resume token "
                + resumeToken
                + " is of another stream (not snapshot "
                + name
                + (fromName == null ? "" : " from " + fromName)
                + " as it is now)");
      }
      skip = t[1];
    }
    Walk walk = new Walk(p, skip, byReference);
    if (receiver != null) {
      walk.lacking = lacking(p.listing, receiver);
    }
    SendStream.Out out = new SendStream.Out(new BufferedOutputStream(sink, 1 << 16));
    out.write(SendStream.MAGIC);
    out.writeShort(byReference ? SendStream.BY_REFERENCE_VERSION : SendStream.VERSION);
    out.writeInt(geometry.leafSize);
    out.string(name);
    out.writeByte(p.info.directory() ? 1 : 0);
    out.string(p.info.sourcePath());
    out.writeLong(p.info.createdNs());
    out.write(p.listing.digest());
    out.writeByte(p.from == null ? 0 : 1);
    if (p.from != null) {
      out.string(fromName);
      out.write(fromDigest);
    }
    out.writeLong(skip);
    if (byReference) {
      out.string(pool);
    }
    long sent = 0;
    long blockBytes = 0;
    boolean more = true;
    while (more) {
      List<Block> batch = new ArrayList<>();
      more = db.read(txn -> walk.step(txn, batch));
      for (Block b : batch) {
        if (b.content == null) {
          out.reference(b.hash, b.level, b.length);
        } else {
          out.block(b.hash, b.level, b.content);
        }
        sent++;
        blockBytes += b.length;
      }
      progress.accept(new Progress("send", out.bytes(), 0));
    }
    for (SendStream.Record r : p.listing.records()) {
      out.record(r, true);
    }
    out.writeByte(SendStream.END);
    out.writeLong(sent);
    out.writeLong(p.listing.records().size());
    out.write(out.digest());
    out.flush();
    progress.accept(new Progress("send", out.bytes(), out.bytes()));
    long inodes = p.listing.records().stream().filter(r -> r instanceof SendStream.Node).count();
    return new SendReport(
        name,
        fromName,
        out.bytes(),
        sent,
        blockBytes,
        walk.skipped,
        walk.resumed,
        inodes,
        byReference);
  }

  /** The pool a stream by reference names: this store's, which the receiver must share. */
  private String pool(String resumeToken) throws IOException {
    if (resumeToken != null) {
      throw new IllegalArgumentException(
          "a send by reference is not resumed: send it again whole (no block data crosses)");
    }
    String pool = blocks.poolIdentity();
    if (pool == null) {
      throw new StreamException(
          "this store keeps its blocks in its own LMDB, not in a shared pool: nothing to send by"
              + " reference (send the blocks: leave out --by-reference)");
    }
    return pool;
  }

  /**
   * The blocks below the snapshot's roots that the receiver lacks: asked level by level, in
   * batches, from the roots down; the children of a node it holds are not asked about.
   */
  private Set<Hash> lacking(SendStream.Listing listing, BlockQuery receiver) throws IOException {
    Set<Hash> lacking = new HashSet<>();
    Set<Hash> asked = new HashSet<>();
    List<Hash> frontier = new ArrayList<>();
    List<Integer> levels = new ArrayList<>();
    for (SendStream.Node n : listing.regularFiles()) {
      Hash r = n.inode().root();
      if (!r.isZero() && asked.add(r)) {
        frontier.add(r);
        levels.add(n.inode().height());
      }
    }
    while (!frontier.isEmpty()) {
      List<Hash> next = new ArrayList<>();
      List<Integer> nextLevels = new ArrayList<>();
      for (int from = 0; from < frontier.size(); from += QUERY_BATCH) {
        int to = Math.min(frontier.size(), from + QUERY_BATCH);
        List<Hash> part = frontier.subList(from, to);
        boolean[] has = receiver.has(part);
        List<Integer> partLevels = levels.subList(from, to);
        db.read(
            txn -> {
              for (int i = 0; i < part.size(); i++) {
                if (has[i]) {
                  continue;
                }
                Hash h = part.get(i);
                int level = partLevels.get(i);
                lacking.add(h);
                if (level > 0) {
                  byte[] content = blocks.load(txn, h, level);
                  for (int c = 0; c < Geometry.FANOUT; c++) {
                    Hash k = Geometry.child(content, c);
                    if (!k.isZero() && asked.add(k)) {
                      next.add(k);
                      nextLevels.add(level - 1);
                    }
                  }
                }
              }
              return null;
            });
      }
      frontier = next;
      levels = nextLevels;
    }
    return lacking;
  }

  /** One tree position being walked: the new tree's block, and the base's block there. */
  private static final class Frame {
    final Hash hash;
    final int level;
    final Hash old;
    final int oldLevel;
    byte[] content;
    byte[] oldContent;
    int next;

    Frame(Hash hash, int level, Hash old, int oldLevel) {
      this.hash = hash;
      this.level = level;
      this.old = old;
      this.oldLevel = oldLevel;
    }
  }

  /** The walk over every file's tree, post-order, resumable between read transactions. */
  private final class Walk {
    private final List<SendStream.Node> files;
    private final Map<Long, String> paths;
    private final Map<String, Inode> oldByPath = new HashMap<>();
    private final Set<Hash> oldRoots = new HashSet<>();
    private final Set<Hash> sent = new HashSet<>();
    private final Deque<Frame> stack = new ArrayDeque<>();
    private final long skip;
    private final boolean byReference;

    /** With a receiver asked: the blocks still to send. */
    Set<Hash> lacking;

    private int nextFile;
    private long index;
    long skipped;
    long resumed;

    Walk(Prep p, long skip, boolean byReference) {
      this.files = p.listing.regularFiles();
      this.paths = p.listing.paths();
      this.skip = skip;
      this.byReference = byReference;
      if (p.old != null) {
        for (SendStream.Node n : p.old.regularFiles()) {
          oldByPath.put(p.old.paths().get(n.id()), n.inode());
          if (!n.inode().root().isZero()) {
            oldRoots.add(n.inode().root());
          }
        }
      }
    }

    /** Adds blocks to {@code batch} until it is full; false when the walk is over. */
    boolean step(ReadTxn txn, List<Block> batch) throws IOException {
      long bytes = 0;
      while (batch.size() < BATCH_BLOCKS && bytes < BATCH_BYTES) {
        if (stack.isEmpty()) {
          if (nextFile == files.size()) {
            return false;
          }
          Inode f = files.get(nextFile++).inode();
          Inode o = oldByPath.get(paths.get(files.get(nextFile - 1).id()));
          Hash old = o == null ? Hash.ZERO : o.root();
          int oldLevel = o == null ? 0 : o.height();
          while (oldLevel > f.height() && !old.isZero()) {
            old = Geometry.child(blocks.load(txn, old, oldLevel), 0); // the file shrank
            oldLevel--;
          }
          push(f.root(), f.height(), old, oldLevel);
          continue;
        }
        Frame f = stack.peek();
        if (f.level > 0) {
          if (f.content == null) {
            f.content = blocks.load(txn, f.hash, f.level);
            if (!f.old.isZero() && f.oldLevel == f.level) {
              f.oldContent = blocks.load(txn, f.old, f.level);
            }
          }
          if (f.next < Geometry.FANOUT) {
            int i = f.next++;
            Hash c = Geometry.child(f.content, i);
            if (f.oldContent != null) {
              push(c, f.level - 1, Geometry.child(f.oldContent, i), f.level - 1);
            } else if (i == 0 && f.oldLevel < f.level) {
              push(c, f.level - 1, f.old, f.oldLevel); // the base was smaller: its tree is here
            } else {
              push(c, f.level - 1, Hash.ZERO, 0);
            }
            continue;
          }
        }
        stack.pop();
        long n = index++;
        if (lacking != null) {
          lacking.remove(f.hash);
        } else if (blocks.refcount(txn, f.hash) > 1) {
          sent.add(f.hash); // a block of count 1 has one parent: the walk meets it once
        }
        if (n < skip) {
          resumed++;
          continue;
        }
        if (byReference) { // named by hash: the receiver takes its reference in the pool
          batch.add(new Block(f.hash, f.level, null, (int) blocks.storedLength(txn, f.hash)));
          continue;
        }
        byte[] content = f.level > 0 ? f.content : blocks.loadFromDisk(txn, f.hash, 0);
        batch.add(new Block(f.hash, f.level, content, content.length));
        bytes += content.length;
      }
      return true;
    }

    private void push(Hash h, int level, Hash old, int oldLevel) {
      if (h.isZero() || sent.contains(h)) {
        return;
      }
      if ((h.equals(old) && level == oldLevel)
          || oldRoots.contains(h)
          || (lacking != null && !lacking.contains(h))) {
        skipped++;
        return;
      }
      stack.push(new Frame(h, level, old, oldLevel));
    }
  }
}
