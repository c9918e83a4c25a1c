package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import io.dedupfs.fs.Mount;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.Writer;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalInt;

/**
 * Administrative operations on a store (snapshots, statistics, scrub, fsck, compact) that work the
 * same whether the store is mounted or not. A mounted store is open in its daemon, which holds its
 * lock: the command sends the operation over the daemon's control socket ({@code
 * STORE/dedupfs.sock}, root only) and shows what the daemon answers, line by line as it comes
 * (progress). An unmounted store is opened here, for the length of the operation.
 *
 * <p>An operation is a name and string parameters; paths in the parameters are relative to the
 * store's root directory (the client resolves the user's paths first), so the daemon never depends
 * on the client's working directory.
 */
final class Admin {
  private static final System.Logger LOG = System.getLogger(Admin.class.getName());
  static final String SOCKET = "dedupfs.sock";

  /** What an operation runs against. {@code mount} is null when the store is not mounted. */
  record Context(Datastore store, Mount mount) {}

  /** One administrative operation. Writes its report to {@code reply}; returns an exit code. */
  @FunctionalInterface
  interface Op {
    int run(Context ctx, Map<String, String> params, Reply reply) throws Exception;
  }

  /**
   * Where an operation's output goes: text (or JSON) to {@code out}, and how far it has come to
   * {@code progress}, which the client renders (a redrawn line on a terminal, plain lines in a
   * pipe, JSON objects with --json).
   */
  record Reply(PrintWriter out, Progress progress, Data data) {}

  /**
   * The bytes an operation reads and writes besides its text (a send stream): {@code in} is the
   * client's (its stdin, or what a receiver answers), {@code out} goes to the client's stdout (or
   * to the receiver). Through the daemon both travel over the control socket as frames; null when
   * the operation has none.
   */
  record Data(InputStream in, OutputStream out) {
    static final Data NONE = new Data(null, null);
  }

  /** The operations that take {@link Data}: the daemon reads and writes data frames for them. */
  private static final java.util.Set<String> DATA_OPS =
      java.util.Set.of("send", "receive", "receive.serve");

  /**
   * {@code done} of {@code total} {@code unit}s ("bytes", "blocks"...; "" for a step) of {@code
   * phase}.
   */
  @FunctionalInterface
  interface Progress {
    void report(String phase, String unit, long done, long total);
  }

  private Admin() {}

  /**
   * Runs operation {@code name} of {@code ops} on {@code store}: through its daemon when it is
   * mounted, else on the store opened here ({@code readOnly}: without changing it).
   */
  static int execute(
      Path store, String name, Map<String, String> params, boolean readOnly, PrintWriter out)
      throws Exception {
    return execute(store, name, params, readOnly, out, null);
  }

  /** As above, with the operation's progress shown by {@code progress} (null: not shown). */
  static int execute(
      Path store,
      String name,
      Map<String, String> params,
      boolean readOnly,
      PrintWriter out,
      ProgressRenderer progress)
      throws Exception {
    return execute(store, name, params, readOnly, out, progress, Data.NONE);
  }

  /** As above, with the operation's {@link Data}. */
  static int execute(
      Path store,
      String name,
      Map<String, String> params,
      boolean readOnly,
      PrintWriter out,
      ProgressRenderer progress,
      Data data)
      throws Exception {
    try {
      OptionalInt remote = remote(store, name, params, out, progress, data);
      if (remote.isPresent()) {
        return remote.getAsInt();
      }
      if (!Datastore.isStore(store)) {
        throw new Main.UsageException(store + " is not a dedupfs store");
      }
      try (Datastore ds = Datastore.open(store, StorePaths.config().withReadOnly(readOnly));
          PrintWriter shown = new PrintWriter(new ClearingWriter(out, progress))) {
        Reply reply =
            new Reply(
                shown,
                (phase, unit, done, total) -> {
                  if (progress != null) {
                    shown.flush();
                    progress.update(phase, unit, done, total);
                  }
                },
                data);
        return Ops.get(name).run(new Context(ds, null), params, reply);
      }
    } finally {
      if (progress != null) {
        progress.clear();
      }
    }
  }

  // ---------------------------------------------------------------- client

  private static OptionalInt remote(
      Path store,
      String name,
      Map<String, String> params,
      PrintWriter out,
      ProgressRenderer progress,
      Data data)
      throws IOException {
    Path socket = store.resolve(SOCKET);
    if (!Files.exists(socket)) {
      return OptionalInt.empty();
    }
    SocketChannel ch;
    try {
      ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
    } catch (IOException e) {
      if (!Files.isWritable(socket) && isMounted(store)) {
        // not "in use by another process" (what opening it here would say): the daemon is there,
        // but only root may ask it
        throw new IOException(
            "the store is mounted and its control socket " + socket + " is root-only: run as root");
      }
      return OptionalInt
          .empty(); // a socket left by a daemon that was killed: the store is not in use
    }
    try (ch) {
      DataOutputStream req =
          new DataOutputStream(new java.io.BufferedOutputStream(out(ch), 1 << 16));
      req.writeUTF(name);
      req.writeInt(params.size());
      for (var e : params.entrySet()) {
        req.writeUTF(e.getKey());
        req.writeUTF(e.getValue());
      }
      req.flush();
      if (data.in() != null) {
        pump(data.in(), req);
      }
      DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(in(ch), 1 << 16));
      while (true) {
        int type;
        try {
          type = in.readByte();
        } catch (EOFException e) {
          throw new IOException(
              "the dedupfs daemon of " + store + " closed the connection (see its log)");
        }
        switch (type) {
          case 'O' -> {
            String text = in.readUTF();
            if (progress != null) {
              progress.clear();
            }
            out.print(text);
            out.flush();
          }
          case 'P' -> {
            String phase = in.readUTF();
            String unit = in.readUTF();
            long done = in.readLong();
            long total = in.readLong();
            if (progress != null) {
              progress.update(phase, unit, done, total);
            }
          }
          case 'D' -> {
            byte[] b = new byte[in.readInt()];
            in.readFully(b);
            if (data.out() != null) {
              data.out().write(b);
              if (b.length == 0) {
                data.out().flush();
              }
            }
          }
          case 'E' -> throw new RemoteFailure(in.readUTF(), in.readBoolean());
          case 'X' -> {
            return OptionalInt.of(in.readInt());
          }
          default -> throw new IOException("unexpected answer from the dedupfs daemon of " + store);
        }
      }
    }
  }

  /**
   * Copies {@code from} to the daemon as data frames (a length, then that many bytes; 0 ends them),
   * in a thread of its own while the answers come back.
   */
  private static void pump(InputStream from, DataOutputStream to) {
    Thread t =
        new Thread(
            () -> {
              byte[] buf = new byte[1 << 16];
              try {
                for (int n; (n = from.read(buf)) > 0; ) {
                  to.writeInt(n);
                  to.write(buf, 0, n);
                  to.flush();
                }
                to.writeInt(0);
                to.flush();
              } catch (IOException e) {
                // the daemon closed the connection: its answer says why
              }
            },
            "dedupfs-data");
    t.setDaemon(true);
    t.start();
  }

  /** The daemon's side of {@link #pump}: the data frames as a stream. */
  private static final class FrameInputStream extends ChunkInput {
    private final DataInputStream in;
    private int left;
    private boolean ended;

    FrameInputStream(DataInputStream in) {
      this.in = in;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      if (len == 0) {
        return 0;
      }
      while (left == 0) {
        if (ended) {
          return -1;
        }
        left = in.readInt(); // EOFException: the client went away
        ended = left == 0;
      }
      int n = in.read(b, off, Math.min(len, left));
      if (n < 0) {
        throw new EOFException("the client went away");
      }
      left -= n;
      return n;
    }
  }

  /**
   * The channel's bytes as a stream. Not {@link Channels#newInputStream}: its streams lock the
   * channel's blocking lock for each read and write, so a read waiting for the daemon's answer
   * would hold up the thread sending it data.
   */
  private static InputStream in(SocketChannel ch) {
    return new ChunkInput() {
      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        return len == 0 ? 0 : ch.read(java.nio.ByteBuffer.wrap(b, off, len));
      }
    };
  }

  /** The channel as a stream to write to (see {@link #in(SocketChannel)}). */
  private static OutputStream out(SocketChannel ch) {
    return new ChunkOutput() {
      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(b, off, len);
        while (buf.hasRemaining()) {
          ch.write(buf);
        }
      }
    };
  }

  /** An input stream that reads in chunks: a single byte is a chunk of one. */
  abstract static class ChunkInput extends InputStream {
    @Override
    public int read() throws IOException {
      byte[] b = new byte[1];
      return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
    }
  }

  /** An output stream that writes chunks: a single byte is a chunk of one. */
  abstract static class ChunkOutput extends OutputStream {
    @Override
    public void write(int b) throws IOException {
      write(new byte[] {(byte) b}, 0, 1);
    }
  }

  /** Whether a dedupfs mount of {@code store} is in the mount table. */
  private static boolean isMounted(Path store) {
    try {
      for (MountTable.Mounted m : MountTable.all()) {
        if (m.isDedupfs()
            && Path.of(m.source())
                .toAbsolutePath()
                .normalize()
                .equals(store.toAbsolutePath().normalize())) {
          return true;
        }
      }
    } catch (IOException | RuntimeException e) {
      // cannot tell: say nothing about it
    }
    return false;
  }

  /** The daemon's operation failed; its message is shown as if the operation had run here. */
  static final class RemoteFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final boolean usage;

    RemoteFailure(String message, boolean usage) {
      super(message);
      this.usage = usage;
    }
  }

  // ---------------------------------------------------------------- server

  /**
   * The daemon's end: accepts operations on {@code STORE/dedupfs.sock} while the store is mounted.
   */
  static final class Server implements AutoCloseable {
    private final Path socket;
    private final ServerSocketChannel server;
    private final Context context;

    Server(Path store, Context context) throws IOException {
      this.socket = store.resolve(SOCKET);
      this.context = context;
      Files.deleteIfExists(
          socket); // left by a daemon that was killed; the store lock says we own the store
      server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
      server.bind(UnixDomainSocketAddress.of(socket));
      Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
      Thread t = new Thread(this::accept, "dedupfs-control");
      t.setDaemon(true);
      t.start();
    }

    private void accept() {
      while (server.isOpen()) {
        try {
          SocketChannel ch = server.accept();
          Thread t = new Thread(() -> serve(ch), "dedupfs-control-op");
          t.setDaemon(true);
          t.start();
        } catch (IOException e) {
          if (server.isOpen()) {
            LOG.log(System.Logger.Level.WARNING, "control socket: " + e);
          }
        }
      }
    }

    private void serve(SocketChannel ch) {
      try (ch) {
        DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(in(ch), 1 << 16));
        DataOutputStream answer =
            new DataOutputStream(new java.io.BufferedOutputStream(out(ch), 1 << 16));
        String name = in.readUTF();
        Map<String, String> params = new LinkedHashMap<>();
        for (int n = in.readInt(); n > 0; n--) {
          params.put(in.readUTF(), in.readUTF());
        }
        // What changes the store goes into the log; looking (stats, listing snapshots) only when
        // debugging.
        boolean looks = name.equals("stats") || name.equals("snapshot.list");
        LOG.log(
            looks ? System.Logger.Level.DEBUG : System.Logger.Level.INFO,
            "control: " + name + " " + params);
        int code;
        FrameWriter frames = new FrameWriter(answer);
        try (PrintWriter out = new PrintWriter(frames)) {
          Data data =
              DATA_OPS.contains(name)
                  ? new Data(
                      new FrameInputStream(in),
                      new java.io.BufferedOutputStream(frames.dataStream(), 1 << 16))
                  : Data.NONE;
          Reply reply =
              new Reply(
                  out,
                  (phase, unit, done, total) -> frames.progress(phase, unit, done, total),
                  data);
          try {
            code = Ops.get(name).run(context, params, reply);
            if (data.out() != null) {
              data.out().flush();
            }
            out.flush();
          } catch (Exception | Error e) {
            out.flush();
            if (e instanceof ClientGone) {
              LOG.log(
                  System.Logger.Level.INFO,
                  "control operation "
                      + name
                      + " stopped: the client went away ("
                      + e.getCause().getMessage()
                      + ")");
              return;
            }
            if (e instanceof java.nio.file.FileSystemException
                || e instanceof io.dedupfs.engine.StreamException) {
              // refused as the mount would refuse it (a read-only snapshot, a missing name...): the
              // user sees the message; the log needs no stack trace
              LOG.log(
                  System.Logger.Level.INFO,
                  "control operation " + name + " refused: " + Main.message(e));
            } else if (!(e instanceof Main.UsageException)) {
              LOG.log(System.Logger.Level.WARNING, "control operation " + name + " failed", e);
            }
            answer.writeByte('E');
            answer.writeUTF(Main.message(e));
            answer.writeBoolean(e instanceof Main.UsageException);
            answer.flush();
            return;
          }
          answer.writeByte('X');
          answer.writeInt(code);
          answer.flush();
        }
      } catch (IOException e) {
        LOG.log(System.Logger.Level.INFO, "control connection ended: " + e);
      }
    }

    @Override
    public void close() {
      try {
        server.close();
        Files.deleteIfExists(socket);
      } catch (IOException e) {
        LOG.log(System.Logger.Level.WARNING, "closing the control socket: " + e);
      }
    }
  }

  /** The client of a data operation stopped reading (it was killed, or its pipe closed). */
  private static final class ClientGone extends IOException {
    private static final long serialVersionUID = 1L;

    ClientGone(IOException cause) {
      super("the client went away", cause);
    }
  }

  /**
   * Sends each line (or whatever is flushed) as one 'O' frame, so output shows as it happens, and
   * each progress report as a 'P' frame (phase, unit, done, total) for the client to render.
   */
  private static final class FrameWriter extends Writer {
    private final DataOutputStream out;
    private final StringBuilder pending = new StringBuilder();

    FrameWriter(DataOutputStream out) {
      this.out = out;
    }

    @Override
    public void write(char[] buf, int off, int len) throws IOException {
      for (int i = off; i < off + len; i++) {
        pending.append(buf[i]);
        if (buf[i] == '\n' || pending.length() >= 16384) {
          flush();
        }
      }
    }

    /**
     * After the text written so far. Locks as the PrintWriter around this writer does (on this
     * writer).
     */
    void progress(String phase, String unit, long done, long total) {
      synchronized (this) {
        try {
          flush();
          out.writeByte('P');
          out.writeUTF(phase);
          out.writeUTF(unit);
          out.writeLong(done);
          out.writeLong(total);
          out.flush();
        } catch (IOException e) {
          // the client went away: the operation goes on; its end is logged
        }
      }
    }

    /** Data frames ('D', a length, the bytes) to the client's {@link Data#out}. */
    OutputStream dataStream() {
      return new ChunkOutput() {
        @Override
        public void write(byte[] b, int off, int len) throws IOException {
          if (len == 0) {
            return;
          }
          synchronized (FrameWriter.this) {
            try {
              FrameWriter.this.flush();
              out.writeByte('D');
              out.writeInt(len);
              out.write(b, off, len);
            } catch (IOException e) {
              throw new ClientGone(e);
            }
          }
        }

        @Override
        public void flush() throws IOException {
          synchronized (FrameWriter.this) {
            try {
              out.writeByte('D');
              out.writeInt(0);
              out.flush();
            } catch (IOException e) {
              throw new ClientGone(e);
            }
          }
        }
      };
    }

    @Override
    public void flush() throws IOException {
      if (pending.length() > 0) {
        out.writeByte('O');
        out.writeUTF(pending.toString());
        pending.setLength(0);
      }
      out.flush();
    }

    @Override
    public void close() throws IOException {
      flush();
    }
  }

  /**
   * Writes to {@code out}, first clearing the progress line, if any (an operation run in this
   * process).
   */
  private static final class ClearingWriter extends Writer {
    private final PrintWriter out;
    private final ProgressRenderer progress;

    ClearingWriter(PrintWriter out, ProgressRenderer progress) {
      this.out = out;
      this.progress = progress;
    }

    @Override
    public void write(char[] buf, int off, int len) {
      if (progress != null && len > 0) {
        progress.clear();
      }
      out.write(buf, off, len);
    }

    @Override
    public void flush() {
      out.flush();
    }

    @Override
    public void close() {
      out.flush(); // not out's close: it is the command's stdout
    }
  }
}
