package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockQuery;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.Difference;
import io.dedupfs.engine.Hash;
import io.dedupfs.engine.InterruptedReceive;
import io.dedupfs.engine.Progress;
import io.dedupfs.engine.ReceiveReport;
import io.dedupfs.engine.SendReport;
import io.dedupfs.engine.StreamException;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The operations of {@code dedupfs send} and {@code dedupfs receive}, run in the daemon of a
 * mounted store or on a store opened here; the stream travels as the operation's {@link
 * Admin.Data}.
 *
 * <p>The two-way protocol ({@code send --to}, {@code receive --serve}), over the receiver's stdin
 * and stdout: the sender writes {@code 'Q'}, a count n (int32) and n hashes of 32 bytes; the
 * receiver answers {@code 'A'}, n and n bytes (1: it holds that block). Then the sender writes
 * {@code 'S'} and the send stream; the receiver answers {@code 'R'} and its summary (a UTF string
 * as {@link DataOutputStream#writeUTF} writes it), or {@code 'F'} and why it refused the stream. A
 * sender whose store keeps its blocks in a pool first writes {@code 'P'} and the pool's identity
 * (UTF); the receiver answers {@code 'P'} and one byte, 1 when its store keeps its blocks in that
 * same pool: then the stream names the blocks by reference instead of carrying them.
 */
final class ReplicationOps {
  private ReplicationOps() {}

  static int send(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    Datastore ds = ctx.store();
    String name = p.get("name");
    String from = p.get("from");
    long start = System.nanoTime();
    OutputStream out = reply.data().out();
    SendReport r;
    String received = null;
    boolean byReference = p.containsKey("by-reference");
    if (!p.containsKey("two-way")) {
      r = ds.send(name, from, p.get("resume"), null, byReference, out, progress(reply, "send"));
      out.flush();
    } else {
      DataOutputStream to = new DataOutputStream(out);
      DataInputStream answers = new DataInputStream(reply.data().in());
      boolean shared = sharesPool(ds.poolIdentity(), to, answers);
      if (byReference && !shared) {
        throw new StreamException(
            "the receiver's store does not keep its blocks in this store's pool ("
                + (ds.poolIdentity() == null
                    ? "this store keeps them in its LMDB"
                    : ds.poolIdentity())
                + "): send without --by-reference");
      }
      BlockQuery ask =
          hashes -> {
            to.writeByte('Q');
            to.writeInt(hashes.size());
            for (Hash h : hashes) {
              to.write(h.toBytes());
            }
            to.flush();
            int type = answer(answers);
            int n = answers.readInt();
            if (type != 'A' || n != hashes.size()) {
              throw new IOException("the receiver's answer does not follow the protocol");
            }
            byte[] has = new byte[n];
            answers.readFully(has);
            boolean[] out2 = new boolean[n];
            for (int i = 0; i < n; i++) {
              out2[i] = has[i] != 0;
            }
            return out2;
          };
      OutputStream stream = new Admin.ChunkOutput() { // 'S' before the first byte of the stream
            boolean started;

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
              if (!started) {
                to.writeByte('S');
                started = true;
              }
              to.write(b, off, len);
            }

            @Override
            public void flush() throws IOException {
              to.flush();
            }
          };
      r = ds.send(name, from, null, ask, shared, stream, progress(reply, "send"));
      to.flush();
      if (answer(answers) != 'R') {
        throw new IOException("the receiver's answer does not follow the protocol");
      }
      received = answers.readUTF();
    }
    double s = (System.nanoTime() - start) / 1e9;
    reply
        .out()
        .printf(
            Locale.ROOT,
            "sent snapshot %s%s%s: stream %,d bytes (%s), %d blocks of %,d bytes, %d subtrees the"
                + " receiver holds skipped%s, %d inodes, in %.1f s (%s/s)%n",
            r.snapshot(),
            r.from() == null ? "" : " (incremental from " + r.from() + ")",
            r.byReference() ? " by reference to " + ds.poolIdentity() : "",
            r.streamBytes(),
            Ops.shortBytes(r.streamBytes()),
            r.blocksSent(),
            r.blockBytes(),
            r.subtreesSkipped(),
            r.blocksResumed() == 0 ? "" : ", " + r.blocksResumed() + " blocks resumed",
            r.inodes(),
            s,
            Ops.shortBytes((long) (r.streamBytes() / Math.max(s, 1e-3))));
    if (received != null) {
      reply.out().println("receiver: " + received);
    }
    return 0;
  }

  /**
   * Whether the receiver keeps its blocks in pool {@code pool} (null: this store has none, so the
   * receiver is not asked).
   */
  private static boolean sharesPool(String pool, DataOutputStream to, DataInputStream answers)
      throws IOException {
    if (pool == null) {
      return false;
    }
    to.writeByte('P');
    to.writeUTF(pool);
    to.flush();
    if (answer(answers) != 'P') {
      throw new IOException("the receiver's answer does not follow the protocol");
    }
    return answers.readByte() == 1;
  }

  /** The type of the receiver's next answer; its failure as an exception. */
  private static int answer(DataInputStream in) throws IOException {
    int type;
    try {
      type = in.readByte();
    } catch (EOFException e) {
      throw new IOException("the receiver closed the connection (see its messages above)");
    }
    if (type == 'F') {
      throw new IOException("the receiver refused the stream: " + in.readUTF());
    }
    return type;
  }

  static int receive(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    String summary = receive(ctx, reply, reply.data().in());
    reply.out().println(summary);
    return 0;
  }

  private static String receive(Admin.Context ctx, Admin.Reply reply, java.io.InputStream in)
      throws Exception {
    boolean areaExisted = Ops.snapshotArea(ctx.store()) != null;
    long start = System.nanoTime();
    ReceiveReport r = ctx.store().receive(in, progress(reply, "receive"));
    Ops.forgetSnapshotEntry(ctx, r.snapshot(), !areaExisted);
    double s = (System.nanoTime() - start) / 1e9;
    return String.format(
        Locale.ROOT,
        "received snapshot %s at %s/%s: stream %,d bytes, %d blocks%s (%d held already), %s"
            + " %s, %d inodes, in %.1f s (%s/s)",
        r.snapshot(),
        Datastore.SNAPSHOTS,
        r.snapshot(),
        r.streamBytes(),
        r.blocksReceived(),
        r.byReference() ? " by reference" : "",
        r.blocksAlreadyHeld(),
        Ops.shortBytes(r.bytesStored()),
        r.byReference() ? "referenced in the shared pool" : "stored",
        r.inodes(),
        s,
        Ops.shortBytes((long) (r.streamBytes() / Math.max(s, 1e-3))));
  }

  /** The receiving end of the two-way protocol (see the class comment). */
  static int serve(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    DataInputStream in = new DataInputStream(reply.data().in());
    DataOutputStream out = new DataOutputStream(reply.data().out());
    while (true) {
      int type = in.read();
      if (type == 'P') {
        String pool = in.readUTF();
        out.writeByte('P');
        out.writeByte(pool.equals(ctx.store().poolIdentity()) ? 1 : 0);
        out.flush();
      } else if (type == 'Q') {
        int n = in.readInt();
        if (n < 0 || n > 1 << 20) {
          throw new IOException("the sender does not follow the protocol");
        }
        List<Hash> hashes = new ArrayList<>(n);
        byte[] h = new byte[32];
        for (int i = 0; i < n; i++) {
          in.readFully(h);
          hashes.add(Hash.of(h));
        }
        boolean[] has = ctx.store().hasBlocks(hashes);
        out.writeByte('A');
        out.writeInt(n);
        for (boolean b : has) {
          out.writeByte(b ? 1 : 0);
        }
        out.flush();
      } else if (type == 'S') {
        try {
          String summary = receive(ctx, reply, in);
          out.writeByte('R');
          out.writeUTF(summary);
          out.flush();
          reply.out().println(summary);
          return 0;
        } catch (IOException | RuntimeException e) {
          out.writeByte('F');
          out.writeUTF(Main.message(e));
          out.flush();
          throw e;
        }
      } else if (type < 0) {
        throw new StreamException("the sender went away before its stream began");
      } else {
        throw new IOException("the sender does not follow the protocol (a '" + type + "')");
      }
    }
  }

  static int list(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    List<InterruptedReceive> all = ctx.store().interruptedReceives();
    if (all.isEmpty()) {
      reply.out().println("no interrupted receive");
    }
    for (InterruptedReceive i : all) {
      reply
          .out()
          .printf(
              "%s  snapshot %s, %d blocks kept since %s%n",
              i.token(),
              i.snapshot(),
              i.blocks(),
              java.time.Instant.ofEpochSecond(0, i.startedNs()));
    }
    return 0;
  }

  static int abort(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    ctx.store().abortReceive(p.get("token"));
    reply.out().printf("dropped the blocks of interrupted receive %s%n", p.get("token"));
    return 0;
  }

  /** At most this many byte ranges per file in the text output (--json lists all). */
  static final int RANGES_SHOWN = 8;

  static int diff(Admin.Context ctx, Map<String, String> p, Admin.Reply reply) throws Exception {
    String older = p.get("older");
    String newer = p.get("newer");
    List<Difference> diff = ctx.store().diff(older, newer);
    java.io.PrintWriter out = reply.out();
    if ("json".equals(p.get("format"))) {
      JsonWriter j =
          new JsonWriter().beginObject().field("type", "diff").field("older", older).name("newer");
      if (newer == null) {
        j.value("live");
      } else {
        j.value(newer);
      }
      j.name("changes").beginArray();
      for (Difference d : diff) {
        j.beginObject()
            .field("path", d.path())
            .field("change", d.change().name().toLowerCase(Locale.ROOT))
            .field("changed_bytes", d.changedBytes())
            .name("ranges")
            .beginArray();
        for (Difference.ByteRange r : d.ranges()) {
          j.beginObject().field("offset", r.offset()).field("length", r.length()).endObject();
        }
        j.endArray().endObject();
      }
      out.println(j.endArray().endObject());
      return 0;
    }
    Map<Difference.Change, Integer> counts = new java.util.EnumMap<>(Difference.Change.class);
    for (Difference d : diff) {
      counts.merge(d.change(), 1, Integer::sum);
      StringBuilder line =
          new StringBuilder(
              String.format("%-10s %s", d.change().name().toLowerCase(Locale.ROOT), d.path()));
      if (!d.ranges().isEmpty()) {
        line.append(
            String.format(
                Locale.ROOT,
                "  %d range%s, %s:",
                d.ranges().size(),
                d.ranges().size() == 1 ? "" : "s",
                Ops.shortBytes(d.changedBytes())));
        for (Difference.ByteRange r :
            d.ranges().subList(0, Math.min(RANGES_SHOWN, d.ranges().size()))) {
          line.append(' ').append(r.offset()).append('-').append(r.offset() + r.length() - 1);
        }
        if (d.ranges().size() > RANGES_SHOWN) {
          line.append(" ... (")
              .append(d.ranges().size() - RANGES_SHOWN)
              .append(" more; --json lists all)");
        }
      }
      out.println(line);
    }
    out.printf(
        "diff %s..%s: %d modified, %d added, %d removed, %d attributes%n",
        older,
        newer == null ? "(live)" : newer,
        counts.getOrDefault(Difference.Change.MODIFIED, 0),
        counts.getOrDefault(Difference.Change.ADDED, 0),
        counts.getOrDefault(Difference.Change.REMOVED, 0),
        counts.getOrDefault(Difference.Change.ATTRIBUTES, 0));
    return 0;
  }

  private static Consumer<Progress> progress(Admin.Reply reply, String op) {
    return pr -> reply.progress().report(op, "bytes", pr.done(), pr.total());
  }
}
