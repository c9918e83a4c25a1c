package io.dedupfs.fs.cli;

import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.fs.Mount;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
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
 * lock: the command sends the operation over the daemon's control socket ({@code STORE/dedupfs.sock},
 * root only) and shows what the daemon answers, line by line as it comes (progress). An unmounted
 * store is opened here, for the length of the operation.
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

  /** One administrative operation. Writes its report to {@code out}; returns an exit code. */
  @FunctionalInterface
  interface Op {
    int run(Context ctx, Map<String, String> params, PrintWriter out) throws Exception;
  }

  private Admin() {}

  /**
   * Runs operation {@code name} of {@code ops} on {@code store}: through its daemon when it is
   * mounted, else on the store opened here ({@code readOnly}: without changing it).
   */
  static int execute(Path store, String name, Map<String, String> params, boolean readOnly, PrintWriter out)
      throws Exception {
    OptionalInt remote = remote(store, name, params, out);
    if (remote.isPresent()) {
      return remote.getAsInt();
    }
    if (!Datastore.isStore(store)) {
      throw new Main.UsageException(store + " is not a dedupfs store");
    }
    try (Datastore ds = Datastore.open(store, DatastoreConfig.defaults().withReadOnly(readOnly))) {
      return Ops.get(name).run(new Context(ds, null), params, out);
    }
  }

  // ---------------------------------------------------------------- client

  private static OptionalInt remote(Path store, String name, Map<String, String> params, PrintWriter out)
      throws IOException {
    Path socket = store.resolve(SOCKET);
    if (!Files.exists(socket)) {
      return OptionalInt.empty();
    }
    SocketChannel ch;
    try {
      ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
    } catch (IOException e) {
      return OptionalInt.empty(); // a socket left by a daemon that was killed: the store is not in use
    }
    try (ch) {
      DataOutputStream req = new DataOutputStream(Channels.newOutputStream(ch));
      req.writeUTF(name);
      req.writeInt(params.size());
      for (var e : params.entrySet()) {
        req.writeUTF(e.getKey());
        req.writeUTF(e.getValue());
      }
      req.flush();
      DataInputStream in = new DataInputStream(Channels.newInputStream(ch));
      while (true) {
        int type;
        try {
          type = in.readByte();
        } catch (EOFException e) {
          throw new IOException("the dedupfs daemon of " + store + " closed the connection (see its log)");
        }
        switch (type) {
          case 'O' -> {
            out.print(in.readUTF());
            out.flush();
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

  /** The daemon's end: accepts operations on {@code STORE/dedupfs.sock} while the store is mounted. */
  static final class Server implements AutoCloseable {
    private final Path socket;
    private final ServerSocketChannel server;
    private final Context context;

    Server(Path store, Context context) throws IOException {
      this.socket = store.resolve(SOCKET);
      this.context = context;
      Files.deleteIfExists(socket); // left by a daemon that was killed; the store lock says we own the store
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
        DataInputStream in = new DataInputStream(Channels.newInputStream(ch));
        DataOutputStream answer = new DataOutputStream(Channels.newOutputStream(ch));
        String name = in.readUTF();
        Map<String, String> params = new LinkedHashMap<>();
        for (int n = in.readInt(); n > 0; n--) {
          params.put(in.readUTF(), in.readUTF());
        }
        // What changes the store goes into the log; looking (stats, listing snapshots) only when debugging.
        boolean looks = name.equals("stats") || name.equals("snapshot.list");
        LOG.log(looks ? System.Logger.Level.DEBUG : System.Logger.Level.INFO, "control: " + name + " " + params);
        int code;
        try (PrintWriter out = new PrintWriter(new FrameWriter(answer))) {
          try {
            code = Ops.get(name).run(context, params, out);
            out.flush();
          } catch (Exception | Error e) {
            out.flush();
            if (e instanceof java.nio.file.FileSystemException) {
              // refused as the mount would refuse it (a read-only snapshot, a missing name...): the
              // user sees the message; the log needs no stack trace
              LOG.log(System.Logger.Level.INFO, "control operation " + name + " refused: " + Main.message(e));
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

  /** Sends each line (or whatever is flushed) as one 'O' frame, so progress shows as it happens. */
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
}
