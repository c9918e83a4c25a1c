package io.dedupfs.engine;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The send stream's format (FORMAT.md, "Send streams"): its constants, a snapshot's namespace in
 * the stream's canonical order, and the digesting, counting reader and writer both ends use. A
 * snapshot's namespace digest (the SHA-256 of its namespace records as the stream encodes them,
 * access times left out) names its contents on both sides: a receiver checks an incremental
 * stream's base against it.
 */
final class SendStream {
  static final byte[] MAGIC = "DDFSSEND".getBytes(StandardCharsets.US_ASCII);
  static final int VERSION = 1;

  /**
   * The version of a stream by reference: its blocks are named, not carried ({@link #REFERENCE}),
   * and its header names the pool that holds them.
   */
  static final int BY_REFERENCE_VERSION = 2;

  static final int BLOCK = 'B';
  static final int REFERENCE = 'R';
  static final int INODE = 'I';
  static final int ENTRY = 'E';
  static final int END = 'Z';

  /** The largest symlink target and extended attribute value a record may carry. */
  static final int MAX_VALUE = 1 << 20;

  private SendStream() {}

  /** A namespace record: an inode under its stream id, or a name of one. */
  sealed interface Record permits Node, Link {}

  /**
   * An inode: {@code id} numbers inodes in the order the walk first meets them (the snapshot's
   * directory is 1); {@code inode} keeps the store's record (its number, parent, snapshot and link
   * count are not sent).
   */
  record Node(long id, Inode inode, Map<String, byte[]> xattrs) implements Record {}

  /** Entry {@code name} of directory {@code parent} names inode {@code child} (stream ids). */
  record Link(long parent, String name, long child) implements Record {}

  /** A snapshot's namespace in stream order, with each regular inode's first path. */
  record Listing(List<Record> records, Map<Long, String> paths, byte[] digest) {
    List<Node> regularFiles() {
      List<Node> out = new ArrayList<>();
      for (Record r : records) {
        if (r instanceof Node n && n.inode().isRegular()) {
          out.add(n);
        }
      }
      return out;
    }
  }

  /**
   * The namespace below {@code top} (a snapshot's directory), breadth first: a directory's entries
   * in the store's order (by cookie, so the same on every store), each inode at its first name.
   */
  static Listing list(Namespace ns, ReadTxn txn, long top) throws IOException {
    List<Record> out = new ArrayList<>();
    Map<Long, Long> ids = new HashMap<>();
    Map<Long, String> paths = new HashMap<>();
    Map<Long, String> dirPath = new HashMap<>();
    ids.put(top, 1L);
    out.add(new Node(1, ns.inode(txn, top), ns.xattrs(txn, top)));
    dirPath.put(1L, "");
    Deque<long[]> dirs = new ArrayDeque<>();
    dirs.add(new long[] {top, 1});
    while (!dirs.isEmpty()) {
      long[] d = dirs.poll();
      for (DirEntry e : ns.listAll(txn, d[0])) {
        Long id = ids.get(e.ino());
        String path = dirPath.get(d[1]).isEmpty() ? e.name() : dirPath.get(d[1]) + "/" + e.name();
        if (id == null) {
          id = (long) ids.size() + 1;
          ids.put(e.ino(), id);
          Inode i = ns.inode(txn, e.ino());
          out.add(new Node(id, i, ns.xattrs(txn, e.ino())));
          if (i.isDirectory()) {
            dirs.add(new long[] {e.ino(), id});
            dirPath.put(id, path);
          } else if (i.isRegular()) {
            paths.put(id, path);
          }
        }
        out.add(new Link(d[1], e.name(), id));
      }
    }
    Out digestOnly = new Out(OutputStream.nullOutputStream());
    for (Record r : out) {
      digestOnly.record(r, false);
    }
    digestOnly.flush();
    return new Listing(out, paths, digestOnly.digest());
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }

  /** The receiving side's name for a stream: 8 bytes of SHA-256 over what identifies it. */
  static long streamId(String name, byte[] digest, byte[] fromDigest) {
    MessageDigest md = sha256();
    md.update(name.getBytes(StandardCharsets.UTF_8));
    md.update((byte) 0);
    md.update(digest);
    if (fromDigest != null) {
      md.update(fromDigest);
    }
    byte[] h = md.digest();
    long id = 0;
    for (int i = 0; i < 8; i++) {
      id = id << 8 | (h[i] & 0xff);
    }
    return id;
  }

  /** A resume token: the stream's id and how many of its blocks the receiver holds. */
  static String token(long id, long blocks) {
    return String.format("%016x-%d", id, blocks);
  }

  /** {@link #token}'s two numbers; IllegalArgumentException if it is not one. */
  static long[] parseToken(String token) {
    int dash = token.indexOf('-');
    if (dash != 16) {
      throw new IllegalArgumentException("not a resume token: " + token);
    }
    try {
      return new long[] {
        Long.parseUnsignedLong(token.substring(0, 16), 16), Long.parseLong(token.substring(17))
      };
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a resume token: " + token, e);
    }
  }

  /** Writes a stream: counts its bytes and digests every byte written. */
  static final class Out extends DataOutputStream {
    private final MessageDigest md;
    private final Counting counted;

    Out(OutputStream out) {
      this(new Counting(out), sha256());
    }

    private Out(Counting out, MessageDigest md) {
      super(new java.security.DigestOutputStream(out, md));
      this.md = md;
      this.counted = out;
    }

    long bytes() {
      return counted.n;
    }

    /** The digest of every byte so far (resets it). */
    byte[] digest() {
      return md.digest();
    }

    void string(String s) throws IOException {
      byte[] b = s.getBytes(StandardCharsets.UTF_8);
      writeShort(b.length);
      write(b);
    }

    void hash(Hash h) throws IOException {
      byte[] b = new byte[Hash.SIZE];
      h.writeTo(b, 0);
      write(b);
    }

    void block(Hash h, int level, byte[] content) throws IOException {
      writeByte(BLOCK);
      writeByte(level);
      hash(h);
      writeInt(content.length);
      write(content);
    }

    /** A block by reference: its level, hash and content's length, not its content. */
    void reference(Hash h, int level, int length) throws IOException {
      writeByte(REFERENCE);
      writeByte(level);
      hash(h);
      writeInt(length);
    }

    /** A namespace record; {@code withAtime} false writes access times as 0 (the digest). */
    void record(Record r, boolean withAtime) throws IOException {
      if (r instanceof Link l) {
        writeByte(ENTRY);
        writeLong(l.parent());
        writeLong(l.child());
        string(l.name());
        return;
      }
      Node n = (Node) r;
      Inode i = n.inode();
      writeByte(INODE);
      writeLong(n.id());
      writeInt(i.mode());
      writeInt(i.uid());
      writeInt(i.gid());
      writeLong(i.size());
      writeLong(withAtime ? i.atimeNs() : 0);
      writeLong(i.mtimeNs());
      writeLong(i.ctimeNs());
      writeLong(i.rdev());
      writeByte(i.height());
      hash(i.root());
      byte[] target = i.target().getBytes(StandardCharsets.UTF_8);
      writeInt(target.length);
      write(target);
      writeShort(n.xattrs().size());
      for (var e : n.xattrs().entrySet()) {
        string(e.getKey());
        writeInt(e.getValue().length);
        write(e.getValue());
      }
    }
  }

  /** Counts what goes through. */
  private static final class Counting extends java.io.FilterOutputStream {
    long n;

    Counting(OutputStream out) {
      super(out);
    }

    @Override
    public void write(int b) throws IOException {
      out.write(b);
      n++;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      out.write(b, off, len);
      n += len;
    }
  }

  /** Reads a stream: digests every byte read; a premature end is a truncated stream. */
  static final class In {
    private final DataInputStream in;
    private final MessageDigest md = sha256();
    private long bytes;

    In(InputStream in) {
      this.in = new DataInputStream(in);
    }

    long bytes() {
      return bytes;
    }

    byte[] digest() {
      return md.digest();
    }

    void readFully(byte[] b) throws IOException {
      try {
        in.readFully(b);
      } catch (EOFException e) {
        throw new StreamException("the stream is truncated (it ends after " + bytes + " bytes)");
      }
      md.update(b);
      bytes += b.length;
    }

    /** Reads 32 bytes without digesting them: the trailing digest. */
    byte[] trailer() throws IOException {
      byte[] b = new byte[32];
      try {
        in.readFully(b);
      } catch (EOFException e) {
        throw new StreamException(
            "the stream is truncated (it ends after " + bytes + " bytes, in its digest)");
      }
      bytes += 32;
      return b;
    }

    private final byte[] scratch = new byte[8];

    int u8() throws IOException {
      byte[] b = new byte[1];
      readFully(b);
      return b[0] & 0xff;
    }

    int u16() throws IOException {
      byte[] b = new byte[2];
      readFully(b);
      return (b[0] & 0xff) << 8 | (b[1] & 0xff);
    }

    int i32() throws IOException {
      byte[] b = new byte[4];
      readFully(b);
      return java.nio.ByteBuffer.wrap(b).getInt();
    }

    long i64() throws IOException {
      readFully(scratch);
      return java.nio.ByteBuffer.wrap(scratch).getLong();
    }

    String string() throws IOException {
      byte[] b = new byte[u16()];
      readFully(b);
      return new String(b, StandardCharsets.UTF_8);
    }

    Hash hash() throws IOException {
      byte[] b = new byte[Hash.SIZE];
      readFully(b);
      return Hash.wrap(b);
    }

    byte[] bytes(int max, String what) throws IOException {
      int n = i32();
      if (n < 0 || n > max) {
        throw new StreamException("the stream is damaged: " + what + " of " + n + " bytes");
      }
      byte[] b = new byte[n];
      readFully(b);
      return b;
    }

    /** An INODE record's body (its type byte read). */
    Node node() throws IOException {
      long id = i64();
      int mode = i32();
      int uid = i32();
      int gid = i32();
      long size = i64();
      long atime = i64();
      long mtime = i64();
      long ctime = i64();
      long rdev = i64();
      int height = u8();
      Hash root = hash();
      String target = new String(bytes(MAX_VALUE, "a symlink target"), StandardCharsets.UTF_8);
      Map<String, byte[]> xattrs = new java.util.TreeMap<>();
      for (int n = u16(); n > 0; n--) {
        String name = string();
        xattrs.put(name, bytes(MAX_VALUE, "an extended attribute"));
      }
      return new Node(
          id,
          new Inode(
              0, mode, uid, gid, 0, size, atime, mtime, ctime, rdev, 0, 0, 0, height, root, target),
          xattrs);
    }

    Link link() throws IOException {
      long parent = i64();
      long child = i64();
      return new Link(parent, string(), child);
    }
  }
}
