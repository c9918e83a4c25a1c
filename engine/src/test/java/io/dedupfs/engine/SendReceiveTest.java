package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Send streams: a snapshot sent from one store and received into another comes out equal (bytes
 * against an in-memory model, holes, modes, owners, times, extended attributes, hard links,
 * symlinks), an incremental stream carries only changed blocks, a two-way send only what the
 * receiver lacks, and a damaged, truncated or unsuitable stream changes nothing visible, keeps what
 * arrived for a resumed send, and gives it all back on abort.
 */
class SendReceiveTest {
  private static final int LEAF = 4096;

  @TempDir Path dirA;
  @TempDir Path dirB;
  @TempDir Path dirC;
  private Datastore a;
  private Datastore b;
  private final SplittableRandom r = new SplittableRandom(13);

  /** What each file of store a should hold: path -> model. */
  private final Map<String, FileModel> models = new TreeMap<>();

  @BeforeEach
  void open() throws IOException {
    a = Datastore.open(dirA, TestStores.config(LEAF));
    b = Datastore.open(dirB, TestStores.config(LEAF));
  }

  @AfterEach
  void checkAndClose() throws IOException {
    for (Datastore ds : new Datastore[] {a, b}) {
      assertConsistent(ds);
      ds.close();
    }
  }

  private long file(long dir, String path, String name) throws IOException {
    long ino =
        a.mknod(dir, name, 0600 | r.nextInt(0200), 0, r.nextInt(2000), r.nextInt(2000)).ino();
    models.put(path, new FileModel());
    return ino;
  }

  /** Random writes (some far apart, leaving holes) to the file at {@code path}. */
  private void scribble(String path, int writes, long span) throws IOException {
    long ino = a.resolve(path);
    FileModel m = models.get(path);
    for (int i = 0; i < writes; i++) {
      long off = r.nextLong(span);
      byte[] data = TestStores.randomBytes(r, 1 + r.nextInt(3 * LEAF));
      if (r.nextInt(5) == 0) {
        Arrays.fill(data, (byte) 0); // zeros: holes in the tree
      }
      TestStores.write(a, ino, off, data);
      m.write(off, data);
    }
    a.flush(ino);
  }

  /** A tree with every kind of inode, hard links (one across directories), xattrs and holes. */
  private void populate() throws IOException {
    long vms = a.mkdir(ROOT, "vms", 0750, 1000, 100).ino();
    long sub = a.mkdir(vms, "sub", 0700, 7, 8).ino();
    file(vms, "vms/big.img", "big.img");
    scribble("vms/big.img", 60, 3L << 20);
    file(vms, "vms/small", "small");
    scribble("vms/small", 3, 5000);
    file(sub, "vms/sub/empty", "empty");
    file(ROOT, "top", "top");
    scribble("top", 10, 200_000);
    long dup = file(ROOT, "dup-of-top", "dup-of-top");
    a.copyRange(a.resolve("top"), 0, dup, 0, a.getattr(a.resolve("top")).size());
    models.get("dup-of-top").write(0, TestStores.read(a, a.resolve("top"), 0, 200_000 + 3 * LEAF));
    a.link(a.resolve("vms/small"), sub, "small-link");
    a.symlink(sub, "s", "../big.img", 5, 6);
    a.mknod(sub, "fifo", 0010640, 0, 3, 4);
    a.setxattr(sub, "user.dir", "d".getBytes(StandardCharsets.UTF_8), 0);
    a.setxattr(a.resolve("vms/big.img"), "user.big", new byte[] {0, 1, 2}, 0);
    a.setattr(vms, new SetAttributes(0711, 5, 6, null, 1_000_000_007L, 2_000_000_009L));
    a.setattr(
        a.resolve("top"),
        new SetAttributes(null, null, null, null, 3_000_000_011L, 4_000_000_013L));
  }

  private static byte[] send(Datastore ds, String name, String from) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ds.send(name, from, out, p -> {});
    return out.toByteArray();
  }

  private static ReceiveReport receive(Datastore ds, byte[] stream) throws IOException {
    return ds.receive(new ByteArrayInputStream(stream), p -> {});
  }

  private long snapshotDir(Datastore ds, String name) throws IOException {
    return ds.resolve(Datastore.SNAPSHOTS + "/" + name);
  }

  /** The received snapshot equals the sent one: attributes, bytes, holes, links, the model. */
  private void assertSame(String name) throws IOException {
    long sa = snapshotDir(a, name);
    long sb = snapshotDir(b, name);
    assertThat(Trees.describe(b, sb)).isEqualTo(Trees.describe(a, sa));
    assertThat(Trees.attributes(b, sb)).isEqualTo(Trees.attributes(a, sa));
    Map<String, Long> ia = Trees.inodes(a, sa);
    Map<String, Long> ib = Trees.inodes(b, sb);
    assertThat(ib.keySet()).isEqualTo(ia.keySet());
    Map<Long, Long> same = new HashMap<>();
    for (String p : ia.keySet()) {
      Long before = same.putIfAbsent(ia.get(p), ib.get(p));
      assertThat(before == null ? ib.get(p) : before).as("hard links of " + p).isEqualTo(ib.get(p));
      Attributes x = a.getattr(ia.get(p));
      Attributes y = b.getattr(ib.get(p));
      assertThat(y.nlink()).as("links of " + p).isEqualTo(x.nlink());
      assertThat(y.ctimeNs()).as("ctime of " + p).isEqualTo(x.ctimeNs());
      if (x.isRegularFile()) {
        assertThat(TestStores.root(b, ib.get(p)))
            .as("tree of " + p)
            .isEqualTo(TestStores.root(a, ia.get(p)));
        assertThat(TestStores.seekHole(b, ib.get(p), 0))
            .isEqualTo(TestStores.seekHole(a, ia.get(p), 0));
      }
    }
    SnapshotInfo ka = a.snapshots().stream().filter(s -> s.name().equals(name)).findFirst().get();
    SnapshotInfo kb = b.snapshots().stream().filter(s -> s.name().equals(name)).findFirst().get();
    assertThat(kb.sourcePath()).isEqualTo(ka.sourcePath());
    assertThat(kb.directory()).isEqualTo(ka.directory());
    assertThat(kb.createdNs()).isEqualTo(ka.createdNs());
  }

  /** The received snapshot's files hold what the model says. */
  private void assertModels(String name, Map<String, FileModel> expected) throws IOException {
    long sb = snapshotDir(b, name);
    for (var e : expected.entrySet()) {
      long ino = b.resolve(Datastore.SNAPSHOTS + "/" + name + "/" + e.getKey());
      FileModel m = e.getValue();
      assertThat(b.getattr(ino).size()).as(e.getKey()).isEqualTo(m.size());
      TestStores.assertSameBytes(
          TestStores.read(b, ino, 0, (int) m.size()), m.read(0, (int) m.size()), e.getKey());
    }
    assertThat(sb).isPositive();
  }

  private static Map<String, FileModel> copy(Map<String, FileModel> models) {
    Map<String, FileModel> out = new TreeMap<>();
    models.forEach((k, v) -> out.put(k, v.copy()));
    return out;
  }

  @Test
  void aFullStreamReproducesTheSnapshotInAnotherStore() throws IOException {
    populate();
    a.createSnapshot("one", "");
    byte[] stream = send(a, "one", null);
    ReceiveReport rep = receive(b, stream);
    assertThat(rep.snapshot()).isEqualTo("one");
    assertThat(rep.streamBytes()).isEqualTo(stream.length);
    assertSame("one");
    assertModels("one", models);
    assertThat(b.usage("").storedBytes())
        .as("every block once")
        .isEqualTo(a.usage(Datastore.SNAPSHOTS + "/one").storedBytes());
    // a file snapshot and a directory snapshot too
    a.createSnapshot("file", "vms/big.img");
    a.createSnapshot("dir", "vms");
    receive(b, send(a, "file", null));
    receive(b, send(a, "dir", null));
    assertSame("file");
    assertSame("dir");
    // and it restores as a local snapshot does
    b.restoreSnapshot("one", "", null);
    assertThat(Trees.describe(b, ROOT)).isEqualTo(Trees.describe(a, snapshotDir(a, "one")));
  }

  @Test
  void anIncrementalStreamCarriesOnlyTheChangedBlocks() throws IOException {
    populate();
    a.createSnapshot("one", "");
    receive(b, send(a, "one", null));
    Map<String, FileModel> before = copy(models);
    long big = a.resolve("vms/big.img");
    FileModel m = models.get("vms/big.img");
    int changed = 0;
    for (int i = 0; i < 8; i++) { // 8 leaves, each in a different place
      long off = (long) r.nextInt((int) (m.size() / LEAF)) * LEAF;
      byte[] data = TestStores.randomBytes(r, LEAF);
      TestStores.write(a, big, off, data);
      m.write(off, data);
      changed += LEAF;
    }
    a.flush(big);
    TestStores.write(a, a.resolve("vms/small"), 100_000, new byte[] {1}); // grows a tree
    models.get("vms/small").write(100_000, new byte[] {1});
    a.flush(a.resolve("vms/small"));
    a.rename(ROOT, "top", ROOT, "renamed", 0);
    models.put("renamed", models.remove("top"));
    a.createSnapshot("two", "");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    SendReport rep = a.send("two", "one", out, p -> {});
    // 8 leaves, at most 8 level-1 nodes and the root of the big image, the small file's 2-3 blocks
    assertThat(rep.blockBytes())
        .isLessThanOrEqualTo(changed + 12L * Geometry.NODE_BYTES + 2 * LEAF);
    assertThat(rep.blocksSent()).isLessThanOrEqualTo(8 + 8 + 1 + 4);
    receive(b, out.toByteArray());
    assertSame("two");
    assertModels("two", models);
    assertModels("one", before);
    // the base must be there, and be the same
    b.deleteSnapshot("two");
    b.deleteSnapshot("one");
    assertThatThrownBy(() -> receive(b, out.toByteArray()))
        .isInstanceOf(StreamException.class)
        .hasMessageContaining("has no snapshot one");
  }

  @Test
  void aTwoWaySendLeavesOutWhatTheReceiverHolds() throws IOException {
    populate();
    a.createSnapshot("one", "");
    receive(b, send(a, "one", null));
    a.createSnapshot("again", "");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    SendReport rep = a.send("again", null, null, b::hasBlocks, out, p -> {});
    assertThat(rep.blocksSent()).isZero();
    assertThat(rep.subtreesSkipped()).isPositive();
    receive(b, out.toByteArray());
    assertSame("again");
    SendReport oneWay = a.send("again", null, new ByteArrayOutputStream(), p -> {});
    assertThat(out.size()).isLessThan((int) oneWay.streamBytes() / 20);
  }

  @Test
  void aDamagedStreamChangesNothingVisibleAndAbortGivesItsBlocksBack() throws IOException {
    populate();
    a.createSnapshot("one", "");
    byte[] stream = send(a, "one", null);
    assertConsistent(b);
    long storedBefore = TestStores.counts(b).storedBytes();
    String before = Trees.describe(b, ROOT).toString();
    for (int trial = 0; trial < 40; trial++) {
      byte[] bad = stream.clone();
      int at =
          trial < 4
              ? new int[] {0, 9, stream.length - 1, stream.length - 40}[trial]
              : r.nextInt(bad.length);
      bad[at] ^= (byte) (1 << r.nextInt(8));
      byte[] damaged = bad;
      assertThatThrownBy(() -> receive(b, damaged))
          .as("a flipped byte at " + at + " of " + stream.length)
          .isInstanceOf(StreamException.class);
      assertUnchanged(before, storedBefore);
    }
    for (int trial = 0; trial < 20; trial++) {
      int n = trial == 0 ? 0 : r.nextInt(stream.length);
      byte[] cut = Arrays.copyOf(stream, n);
      assertThatThrownBy(() -> receive(b, cut))
          .as("cut after " + n + " of " + stream.length)
          .isInstanceOf(StreamException.class)
          .hasMessageContaining(n < 12 ? "" : "truncated");
      assertUnchanged(before, storedBefore);
    }
  }

  /** No snapshot, the namespace as it was, and after dropping interrupted receives, no block. */
  private void assertUnchanged(String before, long storedBefore) throws IOException {
    assertThat(b.snapshots()).isEmpty();
    assertThat(Trees.describe(b, ROOT).toString()).isEqualTo(before);
    assertConsistent(b);
    for (InterruptedReceive i : b.interruptedReceives()) {
      b.abortReceive(i.token());
    }
    assertConsistent(b);
    assertThat(TestStores.counts(b).storedBytes()).isEqualTo(storedBefore);
  }

  @Test
  void aCutStreamResumesFromItsToken() throws IOException {
    populate();
    a.createSnapshot("one", "");
    byte[] stream = send(a, "one", null);
    byte[] cut = Arrays.copyOf(stream, stream.length * 2 / 3);
    StreamException e = null;
    try {
      receive(b, cut);
    } catch (StreamException x) {
      e = x;
    }
    assertThat(e).isNotNull();
    assertThat(e.token()).isNotNull();
    assertThat(e.getMessage()).contains("send --resume " + e.token());
    assertThat(b.snapshots()).isEmpty();
    assertConsistent(b); // fsck counts the staged references
    List<InterruptedReceive> pending = b.interruptedReceives();
    assertThat(pending).extracting(InterruptedReceive::token).containsExactly(e.token());
    ByteArrayOutputStream rest = new ByteArrayOutputStream();
    SendReport rep = a.send("one", null, e.token(), null, rest, p -> {});
    assertThat(rep.blocksResumed()).isPositive();
    assertThat(rest.size()).isLessThan(stream.length / 2);
    receive(b, rest.toByteArray());
    assertSame("one");
    assertModels("one", models);
    assertThat(b.interruptedReceives()).isEmpty();
    assertThatThrownBy(() -> a.send("one", null, "0123456789abcdef-3", null, rest, p -> {}))
        .isInstanceOf(StreamException.class)
        .hasMessageContaining("another stream");
  }

  @Test
  void streamsThatDoNotFitAreRefused() throws IOException {
    populate();
    a.createSnapshot("one", "");
    byte[] stream = send(a, "one", null);
    receive(b, stream);
    assertThatThrownBy(() -> receive(b, stream))
        .isInstanceOf(StreamException.class)
        .hasMessageContaining("exists in this store already");
    assertThatThrownBy(
            () -> receive(b, "hello world, not a stream".getBytes(StandardCharsets.UTF_8)))
        .isInstanceOf(StreamException.class)
        .hasMessageContaining("not a dedupfs send stream");
    b.close();
    TestStores.assertConsistent(a);
    b = Datastore.open(dirC, TestStores.config(16384));
    assertThatThrownBy(() -> receive(b, stream))
        .isInstanceOf(StreamException.class)
        .hasMessageContaining("leaf size of 4096");
    assertThat(b.snapshots()).isEmpty();
    List<Object> none = new ArrayList<>();
    assertThat(b.interruptedReceives()).isEqualTo(none);
  }
}
