package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.lmdbjava.Dbi;
import org.lmdbjava.Env;
import org.lmdbjava.Txn;

/**
 * Snapshots of a file, a directory and the whole store: taking, browsing, read-only, restoring,
 * deleting.
 */
class SnapshotTest {
  private static final int LEAF = 4096;

  @TempDir Path dir;
  private Datastore ds;
  private final SplittableRandom r = new SplittableRandom(17);

  @BeforeEach
  void open() throws IOException {
    ds = Datastore.open(dir, TestStores.config(LEAF));
  }

  @AfterEach
  void checkAndClose() throws IOException {
    if (ds != null) {
      assertConsistent(ds);
      ds.close();
    }
  }

  private long file(long parent, String name, byte[] data) throws IOException {
    long ino = ds.mknod(parent, name, 0640, 0, 1000, 100).ino();
    TestStores.write(ds, ino, 0, data);
    return ino;
  }

  private long mkdir(long parent, String name) throws IOException {
    return ds.mkdir(parent, name, 0750, 1000, 100).ino();
  }

  private byte[] contents(long ino) throws IOException {
    return TestStores.read(ds, ino, 0, (int) ds.getattr(ino).size());
  }

  private static void assertKind(ThrowingCallable call, FsException.Kind kind) {
    assertThatThrownBy(call)
        .isInstanceOfSatisfying(FsException.class, e -> assertThat(e.kind()).isEqualTo(kind));
  }

  @Test
  void aFileSnapshotKeepsItsBytesWhileTheFileChangesAndRestoresThemInPlace() throws IOException {
    byte[] v1 = TestStores.randomBytes(r, 300_000);
    long vms = mkdir(ROOT, "vms");
    long f = file(vms, "disk.img", v1); // not flushed: the snapshot must flush it
    ds.setxattr(f, "user.note", "one".getBytes(StandardCharsets.UTF_8), 0);

    SnapshotInfo s = ds.createSnapshot("before-upgrade", "vms/disk.img");
    assertThat(s.name()).isEqualTo("before-upgrade");
    assertThat(s.sourcePath()).isEqualTo("vms/disk.img");
    assertThat(s.directory()).isFalse();
    assertThat(s.ino()).isEqualTo(ds.resolve(".snapshots/before-upgrade"));
    assertThat(ds.snapshots()).containsExactly(s);
    long copy = ds.resolve(".snapshots/before-upgrade/disk.img");
    assertThat(copy).isNotEqualTo(f);
    TestStores.assertSameBytes(contents(copy), v1, "the snapshot's copy");
    assertThat(Trees.attributes(ds, copy)).isEqualTo(Trees.attributes(ds, f));
    assertThat(ds.pathOf(copy)).isEqualTo(".snapshots/before-upgrade/disk.img");

    byte[] v2 = v1.clone();
    for (int i = 0; i < 20; i++) {
      int at = r.nextInt(v2.length - 100);
      byte[] patch = TestStores.randomBytes(r, 100);
      System.arraycopy(patch, 0, v2, at, 100);
      TestStores.write(ds, f, at, patch);
    }
    ds.setattr(f, SetAttributes.size(400_000));
    v2 = Arrays.copyOf(v2, 400_000);
    ds.flush(f);
    TestStores.assertSameBytes(contents(copy), v1, "the snapshot after the file changed");
    TestStores.assertSameBytes(contents(f), v2, "the file");

    TestStores.write(ds, f, 5, new byte[] {1, 2, 3}); // unflushed: the restore discards it
    Restored restored = ds.restoreSnapshot("before-upgrade", "", null);
    assertThat(restored.changedInodes()).containsExactly(f);
    assertThat(restored.changedEntries()).isEmpty();
    assertThat(ds.resolve("vms/disk.img"))
        .as("a restored file keeps its inode number")
        .isEqualTo(f);
    TestStores.assertSameBytes(contents(f), v1, "the file restored");
    assertThat(Trees.attributes(ds, f)).isEqualTo(Trees.attributes(ds, copy));
    ds.flush(f);
    TestStores.assertSameBytes(contents(f), v1, "the file restored, after a flush");
    TestStores.write(ds, f, 0, TestStores.randomBytes(r, 64 * 1024)); // writing to a restored file
    ds.flush(f);
    TestStores.assertSameBytes(contents(copy), v1, "the snapshot after its restored file changed");
    ds.restoreSnapshot("before-upgrade", "", null);
    assertThat(ds.restoreSnapshot("before-upgrade", "disk.img", "vms/second.img").changedEntries())
        .containsExactly(new DirName(vms, "second.img"));
    TestStores.assertSameBytes(contents(ds.resolve("vms/second.img")), v1, "a restored copy");
    assertConsistent(ds);

    ds.deleteSnapshot("before-upgrade");
    assertThat(ds.snapshots()).isEmpty();
    assertThatThrownBy(() -> ds.resolve(".snapshots/before-upgrade"))
        .isInstanceOf(NoSuchFileException.class);
    assertThat(ds.getattr(copy).nlink()).as("its open file lives on until forgotten").isZero();
    ds.forget(copy);
    assertThatThrownBy(() -> ds.getattr(copy)).isInstanceOf(NoSuchFileException.class);
    TestStores.assertSameBytes(contents(f), v1, "the file, after its snapshot is deleted");
  }

  @Test
  void aDirectorySnapshotPreservesModesOwnersTimesXattrsSymlinksAndHardLinks() throws IOException {
    long vm = mkdir(ROOT, "vm");
    long sub = mkdir(vm, "sub");
    long disk = file(vm, "disk", TestStores.randomBytes(r, 100_000));
    ds.link(disk, sub, "disk-link");
    long outside = file(vm, "linked-outside", "x".getBytes(StandardCharsets.UTF_8));
    ds.link(outside, ROOT, "outside-name");
    ds.symlink(sub, "s", "../disk", 7, 8);
    ds.mknod(sub, "fifo", 0010644, 0, 0, 0);
    ds.setxattr(sub, "user.dir", "d".getBytes(StandardCharsets.UTF_8), 0);
    ds.setxattr(disk, "user.file", "f".getBytes(StandardCharsets.UTF_8), 0);
    ds.setattr(vm, new SetAttributes(0700, 5, 6, null, 1_000_000_000L, 2_000_000_000L));
    file(ROOT, "elsewhere", new byte[] {9});

    SnapshotInfo s = ds.createSnapshot("nightly", "vm");
    assertThat(s.directory()).isTrue();
    assertThat(Trees.describe(ds, s.ino())).isEqualTo(Trees.describe(ds, vm));
    assertThat(Trees.attributes(ds, s.ino()))
        .as("the snapshot's directory is a copy of the source directory")
        .isEqualTo(Trees.attributes(ds, vm));
    Map<String, Long> inos = Trees.inodes(ds, s.ino());
    assertThat(inos.get("disk"))
        .as("hard links inside stay one inode")
        .isEqualTo(inos.get("sub/disk-link"));
    assertThat(ds.getattr(inos.get("disk")).nlink()).isEqualTo(2);
    assertThat(ds.getattr(inos.get("linked-outside")).nlink())
        .as("a name outside is not copied")
        .isEqualTo(1);
    assertThat(ds.getattr(s.ino()).nlink()).isEqualTo(3);
    assertThat(ds.readlink(inos.get("sub/s"))).isEqualTo("../disk");
    assertThat(inos.values()).doesNotContainAnyElementsOf(Trees.inodes(ds, vm).values());
    assertThat(ds.lookup(ROOT, ".snapshots").isDirectory()).isTrue();
  }

  @Test
  void aWholeStoreSnapshotLeavesOutSnapshotsAndRestoresEverythingElse() throws IOException {
    long a = mkdir(ROOT, "a");
    long keep = file(a, "keep", TestStores.randomBytes(r, 50_000));
    long change = file(a, "change", TestStores.randomBytes(r, 70_000));
    long gone = file(ROOT, "gone", TestStores.randomBytes(r, 10_000));
    ds.link(gone, a, "gone-link");
    ds.symlink(ROOT, "link", "a/keep", 0, 0);
    SnapshotInfo first = ds.createSnapshot("first", "");
    SnapshotInfo all = ds.createSnapshot("all", "");
    assertThat(all.sourcePath()).isEmpty();
    Map<String, String> before = Trees.describe(ds, ROOT);
    assertThat(Trees.describe(ds, all.ino())).isEqualTo(before);
    assertThat(Trees.inodes(ds, all.ino())).doesNotContainKey(".snapshots");

    // change everything
    TestStores.write(ds, change, 1000, TestStores.randomBytes(r, 5000));
    ds.setxattr(change, "user.new", new byte[] {1}, 0);
    ds.unlink(ROOT, "gone");
    ds.unlink(a, "gone-link");
    ds.forget(gone);
    ds.rename(a, "keep", ROOT, "moved", 0);
    ds.unlink(ROOT, "link");
    ds.mkdir(ROOT, "link", 0755, 0, 0); // a directory where the symlink was
    file(ds.resolve("link"), "inner", new byte[] {1});
    long extra = mkdir(a, "extra");
    file(extra, "x", new byte[] {2});
    ds.setattr(a, SetAttributes.mode(0711));

    Restored restored = ds.restoreSnapshot("all", "", null);
    assertThat(Trees.describe(ds, ROOT)).isEqualTo(before);
    Map<String, Long> now = Trees.inodes(ds, ROOT);
    assertThat(now.get("a")).isEqualTo(a);
    assertThat(now.get("a/change"))
        .as("a file of the same name is restored in place")
        .isEqualTo(change);
    assertThat(now.get("gone"))
        .as("names of one inode in the snapshot are names of one inode again")
        .isEqualTo(now.get("a/gone-link"));
    assertThat(restored.changedInodes()).contains(change, a);
    assertThat(restored.changedEntries())
        .contains(
            new DirName(ROOT, "gone"),
            new DirName(ROOT, "link"),
            new DirName(ROOT, "moved"),
            new DirName(a, "extra"),
            new DirName(a, "keep"));
    assertThat(ds.snapshots()).extracting(SnapshotInfo::name).containsExactly("first", "all");
    assertThat(Trees.describe(ds, first.ino()))
        .as("the other snapshot is untouched")
        .isEqualTo(before);
    assertThat(ds.getattr(keep).nlink())
        .as("the file under a name the snapshot lacks, open, lives on until forgotten")
        .isZero();
    ds.forget(keep);
  }

  @Test
  void restoringPartsOfADirectorySnapshotToWhereTheyWereOrElsewhere() throws IOException {
    long vm = mkdir(ROOT, "vm");
    long sub = mkdir(vm, "sub");
    byte[] data = TestStores.randomBytes(r, 40_000);
    long f = file(sub, "f", data);
    ds.createSnapshot("s", "vm");
    ds.unlink(sub, "f");
    ds.rmdir(vm, "sub");

    assertThatThrownBy(() -> ds.restoreSnapshot("s", "sub/f", null))
        .as("its directory is gone too")
        .isInstanceOf(NoSuchFileException.class);
    Restored r1 = ds.restoreSnapshot("s", "sub", null);
    assertThat(r1.changedEntries()).containsExactly(new DirName(vm, "sub"));
    long newSub = ds.resolve("vm/sub");
    assertThat(newSub).isNotEqualTo(sub);
    TestStores.assertSameBytes(
        contents(ds.resolve("vm/sub/f")), data, "restored below a restored directory");

    ds.restoreSnapshot("s", "sub/f", "copy-of-f");
    TestStores.assertSameBytes(contents(ds.resolve("copy-of-f")), data, "restored elsewhere");
    ds.restoreSnapshot("s", "", "vm-copy");
    assertThat(Trees.describe(ds, ds.resolve("vm-copy")))
        .isEqualTo(Trees.describe(ds, ds.resolve(".snapshots/s")));

    assertThatThrownBy(() -> ds.restoreSnapshot("s", "sub/missing", null))
        .isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> ds.restoreSnapshot("nope", "", null))
        .isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> ds.restoreSnapshot("s", "sub/f", "no/such/dir/f"))
        .isInstanceOf(NoSuchFileException.class);
    assertKind(() -> ds.restoreSnapshot("s", "sub/f", "vm"), FsException.Kind.IS_DIRECTORY);
    assertThatThrownBy(() -> ds.restoreSnapshot("s", "sub", "copy-of-f"))
        .isInstanceOf(NotDirectoryException.class);
    assertKind(
        () -> ds.restoreSnapshot("s", "sub/f", ".snapshots/s/f2"), FsException.Kind.READ_ONLY);
    assertKind(() -> ds.restoreSnapshot("s", "sub", ".snapshots"), FsException.Kind.READ_ONLY);
    assertThat(f).isPositive();
  }

  @Test
  void contentsLoadedWhileARestoreReplacesThemAreLoadedAgain() throws IOException {
    byte[] before = TestStores.randomBytes(r, 3 * LEAF);
    long f = file(ROOT, "f", before);
    ds.flush(f);
    ds.createSnapshot("s", "f");
    TestStores.write(ds, f, 0, TestStores.randomBytes(r, 3 * LEAF));
    ds.flush(f);
    ds.forget(f); // clean: its contents are dropped, the next use loads them
    AtomicBoolean restored = new AtomicBoolean();
    ds.files.loadHook =
        ino -> {
          if (ino == f && restored.compareAndSet(false, true)) {
            ds.restoreSnapshot(
                "s", "", null); // between the reader's inode read and its publishing what it read
          }
        };
    byte[] read;
    try {
      read = contents(f);
    } finally {
      ds.files.loadHook = null;
    }
    assertThat(restored).isTrue();
    TestStores.assertSameBytes(
        read, before, "a read that loaded the file while a restore replaced it");
    TestStores.write(
        ds, f, 0, new byte[] {1}); // a commit from stale contents would release their root twice
    ds.flush(f);
    before[0] = 1;
    TestStores.assertSameBytes(contents(f), before, "after a write");
  }

  /**
   * What a dry run must leave as it was: figures, the queue, the next inode number, the loaded
   * contents.
   */
  private record State(
      SpaceUsage usage,
      long pending,
      long nextIno,
      java.util.Set<Long> loaded,
      Map<String, String> tree,
      Map<String, Long> inodes) {}

  /** The store's state, read without flushing anything (unflushed writes stay unflushed). */
  private State state(long top) throws IOException {
    Lmdb db = ds.db;
    Object[] figures =
        db.read(
            txn ->
                new Object[] {
                  new SpaceCounter(txn, db, ds.blocks, PendingView.of(txn, ds.blocks)).wholeStore(),
                  db.pending.stat(txn).entries,
                  new Namespace(db).peekNextIno(txn)
                });
    return new State(
        (SpaceUsage) figures[0],
        (Long) figures[1],
        (Long) figures[2],
        new java.util.TreeSet<>(ds.files.inos()),
        Trees.describe(ds, top),
        Trees.inodes(ds, top));
  }

  private static Map<String, Restored.Action> byPath(Restored r) {
    Map<String, Restored.Action> out = new java.util.LinkedHashMap<>();
    for (Restored.Change c : r.changes()) {
      assertThat(out.put(c.path(), c.action())).as("%s listed once", c.path()).isNull();
    }
    return out;
  }

  @Test
  void aDryRunListsExactlyWhatTheRestoreThenDoesAndChangesNothing() throws IOException {
    long vm = mkdir(ROOT, "vm");
    long disk = file(vm, "disk", TestStores.randomBytes(r, 200_000));
    file(vm, "conf", TestStores.randomBytes(r, 5_000));
    file(vm, "gone", TestStores.randomBytes(r, 9_000));
    long perm = file(vm, "perm", new byte[] {1});
    long dirty = file(vm, "dirty", TestStores.randomBytes(r, 30_000));
    file(vm, "kind", new byte[] {2});
    long sub = mkdir(vm, "sub");
    file(sub, "a", new byte[] {3});
    ds.mkdir(sub, "empty", 0755, 0, 0);
    ds.createSnapshot("s", "vm");

    TestStores.write(ds, disk, 4096, TestStores.randomBytes(r, 8192));
    ds.flush(disk);
    ds.unlink(vm, "gone");
    ds.unlink(sub, "a");
    ds.rmdir(sub, "empty");
    ds.rmdir(vm, "sub");
    ds.setattr(perm, SetAttributes.mode(0600));
    ds.unlink(vm, "kind");
    long kind = mkdir(vm, "kind"); // a file in the snapshot, a directory now
    file(kind, "y", new byte[] {4});
    long extra = file(vm, "extra", TestStores.randomBytes(r, 50_000));
    ds.flush(extra);
    long newdir = mkdir(vm, "newdir");
    ds.flush(file(newdir, "x", TestStores.randomBytes(r, 70_000)));
    ds.sync();
    ds.reclaim();
    byte[] unflushed = TestStores.randomBytes(r, 100);
    TestStores.write(
        ds, dirty, 1000, unflushed); // unflushed: a dry run keeps it, the restore discards it
    byte[] dirtyContents = contents(dirty);

    ds.reclaim(); // what earlier commits queued: the background reclaim may apply it at any moment
    State before = state(vm);
    Restored dry = ds.restoreSnapshot("s", "", null, true);
    State after = state(vm);
    assertThat(after)
        .as("a dry run changes nothing: figures, queue, inode numbers, loaded contents, tree")
        .isEqualTo(before);
    TestStores.assertSameBytes(contents(dirty), dirtyContents, "unflushed writes after a dry run");
    assertThat(ds.files.content(dirty).isDirty()).as("still unflushed").isTrue();
    assertThat(ds.fsck(p -> {})).as("fsck after a dry run").isEmpty();

    Map<String, Restored.Action> want = new java.util.LinkedHashMap<>();
    want.put("vm", Restored.Action.ATTRIBUTES);
    want.put("vm/disk", Restored.Action.REPLACED);
    want.put("vm/gone", Restored.Action.CREATED);
    want.put("vm/perm", Restored.Action.REPLACED);
    want.put("vm/dirty", Restored.Action.REPLACED);
    want.put("vm/kind", Restored.Action.REPLACED);
    want.put("vm/kind/y", Restored.Action.REMOVED);
    want.put("vm/sub", Restored.Action.CREATED);
    want.put("vm/sub/a", Restored.Action.CREATED);
    want.put("vm/sub/empty", Restored.Action.CREATED);
    want.put("vm/extra", Restored.Action.REMOVED);
    want.put("vm/newdir", Restored.Action.REMOVED);
    want.put("vm/newdir/x", Restored.Action.REMOVED);
    assertThat(byPath(dry)).as("the dry run's list").containsExactlyInAnyOrderEntriesOf(want);
    List<String> order = dry.changes().stream().map(Restored.Change::path).toList();
    assertThat(order.indexOf("vm/newdir"))
        .as("a directory before what is below it")
        .isLessThan(order.indexOf("vm/newdir/x"));
    assertThat(order.indexOf("vm/sub")).isLessThan(order.indexOf("vm/sub/a"));

    Restored real = ds.restoreSnapshot("s", "", null);
    assertThat(real.changes())
        .as("the restore does what the dry run listed, in the same order")
        .isEqualTo(dry.changes());
    assertThat(real.changedInodes()).isEqualTo(dry.changedInodes());
    assertThat(real.changedEntries()).isEqualTo(dry.changedEntries());
    assertThat(Trees.describe(ds, vm)).isEqualTo(Trees.describe(ds, ds.resolve(".snapshots/s")));
    assertThat(ds.restoreSnapshot("s", "", null, true).changes())
        .as("nothing left to do")
        .isEmpty();

    // one file to a new name, and the whole store, dry
    Restored copy = ds.restoreSnapshot("s", "disk", "vm/copy", true);
    assertThat(copy.changes())
        .containsExactly(new Restored.Change("vm/copy", Restored.Action.CREATED));
    assertThatThrownBy(() -> ds.resolve("vm/copy")).isInstanceOf(NoSuchFileException.class);
    ds.createSnapshot("all", "");
    file(ROOT, "later", new byte[] {5});
    ds.reclaim();
    before = state(ROOT);
    Restored all = ds.restoreSnapshot("all", "", null, true);
    assertThat(byPath(all))
        .containsEntry("later", Restored.Action.REMOVED)
        .doesNotContainKey(".snapshots");
    assertThat(state(ROOT)).isEqualTo(before);
    assertThat(ds.restoreSnapshot("all", "", null).changes()).isEqualTo(all.changes());
  }

  @Test
  void restoringADirectoryReplacesFilesInPlaceRemovesExtrasAndKeepsOpenFilesConsistent()
      throws IOException {
    long vm = mkdir(ROOT, "vm");
    byte[] d1 = TestStores.randomBytes(r, 200_000);
    byte[] d2 = TestStores.randomBytes(r, 20_000);
    long disk = file(vm, "disk", d1);
    long conf = file(vm, "conf", d2);
    long l1 = file(vm, "l1", new byte[] {1});
    ds.link(l1, vm, "l2");
    ds.createSnapshot("s", "vm");

    TestStores.write(ds, disk, 0, TestStores.randomBytes(r, 100_000));
    ds.flush(disk);
    TestStores.write(ds, disk, 150_000, new byte[] {7, 7, 7}); // unflushed
    assertThat(TestStores.read(ds, disk, 150_000, 3)).containsExactly(7, 7, 7);
    ds.unlink(vm, "conf");
    long conf2 =
        file(vm, "conf", "new".getBytes(StandardCharsets.UTF_8)); // a different inode, same name
    ds.unlink(vm, "l2");
    long l2 = file(vm, "l2", new byte[] {2}); // the hard link broken
    long extra = file(vm, "extra", new byte[] {3});
    ds.flush(extra);
    ds.forget(extra); // the kernel no longer holds it: its contents are not open
    ds.mkdir(vm, "extra-dir", 0755, 0, 0);

    Restored restored = ds.restoreSnapshot("s", "", null);
    assertThat(Trees.describe(ds, vm)).isEqualTo(Trees.describe(ds, ds.resolve(".snapshots/s")));
    assertThat(ds.resolve("vm/disk")).isEqualTo(disk);
    TestStores.assertSameBytes(contents(disk), d1, "an open file's contents, restored in place");
    assertThat(ds.resolve("vm/conf"))
        .as("the same name, another inode: replaced in place all the same")
        .isEqualTo(conf2);
    TestStores.assertSameBytes(contents(conf2), d2, "conf");
    assertThat(ds.resolve("vm/l1")).isEqualTo(ds.resolve("vm/l2"));
    assertThat(ds.getattr(ds.resolve("vm/l1")).nlink()).isEqualTo(2);
    assertThat(restored.changedInodes()).contains(disk, conf2);
    assertThat(restored.changedEntries())
        .as("one of l1 and l2 now names the other's inode")
        .hasSize(3)
        .contains(new DirName(vm, "extra"), new DirName(vm, "extra-dir"))
        .containsAnyOf(new DirName(vm, "l1"), new DirName(vm, "l2"));
    assertThatThrownBy(() -> ds.getattr(extra))
        .as("a removed file nobody had open is deleted")
        .isInstanceOf(NoSuchFileException.class);
    long replaced = ds.resolve("vm/l1") == l1 ? l2 : l1;
    assertThat(ds.getattr(replaced).nlink())
        .as("an open file whose name is taken lives on until forgotten")
        .isZero();
    ds.forget(replaced);
    assertThat(conf).isPositive();

    Restored again = ds.restoreSnapshot("s", "", null);
    assertThat(again.changedInodes()).as("nothing to do").isEmpty();
    assertThat(again.changedEntries()).isEmpty();
  }

  @Test
  void nothingChangesASnapshotAndReadingOrCloningFromItWorks() throws IOException {
    assertKind(() -> ds.mkdir(ROOT, ".snapshots", 0755, 0, 0), FsException.Kind.READ_ONLY);
    long f = file(ROOT, "f", TestStores.randomBytes(r, 30_000));
    long d = mkdir(ROOT, "d");
    file(d, "g", new byte[] {1});
    ds.createSnapshot("s", "");
    long snaps = ds.resolve(".snapshots");
    long top = ds.resolve(".snapshots/s");
    long sf = ds.resolve(".snapshots/s/f");
    long sd = ds.resolve(".snapshots/s/d");
    long sg = ds.resolve(".snapshots/s/d/g");
    ByteBuffer one = ByteBuffer.wrap(new byte[] {1});
    List<ThrowingCallable> refused =
        new ArrayList<>(
            List.of(
                () -> ds.write(sf, 0, one.duplicate()),
                () -> ds.setattr(sf, SetAttributes.size(0)),
                () -> ds.setattr(sf, SetAttributes.mode(0777)),
                () -> ds.setattr(sd, SetAttributes.mode(0777)),
                () -> ds.setattr(snaps, SetAttributes.mode(0777)),
                () -> ds.punchHole(sf, 0, 4096),
                () -> ds.zeroRange(sf, 0, 10, true),
                () -> ds.allocate(sf, 0, 1 << 20, false),
                () -> ds.setxattr(sf, "user.x", new byte[] {1}, 0),
                () -> ds.setxattr(top, "user.x", new byte[] {1}, 0),
                () -> ds.removexattr(sg, "user.x"),
                () -> ds.mknod(sd, "new", 0644, 0, 0, 0),
                () -> ds.mkdir(top, "new", 0755, 0, 0),
                () -> ds.mkdir(snaps, "new", 0755, 0, 0),
                () -> ds.symlink(sd, "new", "x", 0, 0),
                () -> ds.link(f, sd, "new"),
                () -> ds.link(sf, ROOT, "new"),
                () -> ds.unlink(sd, "g"),
                () -> ds.unlink(top, "f"),
                () -> ds.rmdir(top, "d"),
                () -> ds.rmdir(snaps, "s"),
                () -> ds.rmdir(ROOT, ".snapshots"),
                () -> ds.rename(top, "f", ROOT, "stolen", 0),
                () -> ds.rename(ROOT, "f", sd, "f", 0),
                () -> ds.rename(top, "f", top, "f2", 0),
                () -> ds.rename(ROOT, ".snapshots", ROOT, "x", 0),
                () -> ds.rename(ROOT, "d", ROOT, ".snapshots", 0),
                () -> ds.rename(ROOT, "f", sd, "g", Datastore.RENAME_EXCHANGE),
                () -> ds.copyRange(f, 0, sf, 0, 100)));
    Map<String, String> before = Trees.describe(ds, snaps);
    for (int i = 0; i < refused.size(); i++) {
      int n = i;
      assertThatThrownBy(refused.get(i))
          .as("operation %d", n)
          .isInstanceOfSatisfying(
              FsException.class,
              e ->
                  assertThat(e.kind()).as("operation %d", n).isEqualTo(FsException.Kind.READ_ONLY));
    }
    assertThat(Trees.describe(ds, snaps)).isEqualTo(before);

    long clone = ds.mknod(ROOT, "clone", 0644, 0, 0, 0).ino();
    assertThat(ds.copyRange(sf, 0, clone, 0, Long.MAX_VALUE / 4)).isEqualTo(30_000);
    TestStores.write(ds, clone, 10, new byte[] {1, 2, 3});
    ds.flush(clone);
    TestStores.assertSameBytes(contents(sf), contents(f), "the snapshot after its clone changed");
    ds.forget(sf); // the kernel forgetting a snapshot file changes nothing
    assertThat(ds.getattr(sf).nlink()).isEqualTo(1);
  }

  @Test
  void aSnapshotTakenWhileWritersRunHoldsWholeWritesAndEveryFlushedOne() throws Exception {
    int writers = 3;
    int region = 3 * LEAF + 1000; // several leaves, not aligned
    long d = mkdir(ROOT, "vms");
    long[] inos = new long[writers];
    AtomicLong[] flushed = new AtomicLong[writers];
    for (int w = 0; w < writers; w++) {
      inos[w] = ds.mknod(d, "disk" + w, 0644, 0, 0, 0).ino();
      flushed[w] = new AtomicLong();
    }
    AtomicBoolean done = new AtomicBoolean();
    ExecutorService pool = Executors.newFixedThreadPool(writers);
    List<Future<?>> running = new ArrayList<>();
    for (int w = 0; w < writers; w++) {
      int me = w;
      running.add(
          pool.submit(
              (Callable<Void>)
                  () -> {
                    for (long v = 1; !done.get(); v++) {
                      ds.write(
                          inos[me],
                          777 + (v % 3) * 100_000,
                          ByteBuffer.wrap(uniform(region, v))); // three regions, in turn
                      if (v % 4 == 0) {
                        ds.flush(inos[me]);
                        flushed[me].set(v);
                      }
                    }
                    return null;
                  }));
    }
    try {
      for (int k = 0; k < 25; k++) {
        long[] atLeast = new long[writers];
        for (int w = 0; w < writers; w++) {
          atLeast[w] = flushed[w].get();
        }
        SnapshotInfo s = ds.createSnapshot("s" + k, "vms");
        for (int w = 0; w < writers; w++) {
          long ino = ds.resolve(".snapshots/" + s.name() + "/disk" + w);
          long newest = 0;
          for (int part = 0; part < 3; part++) {
            newest =
                Math.max(
                    newest,
                    version(TestStores.read(ds, ino, 777 + part * 100_000L, region), region));
          }
          assertThat(newest)
              .as("snapshot %d, writer %d: every write flushed before it", k, w)
              .isGreaterThanOrEqualTo(atLeast[w]);
        }
        Thread.sleep(5);
      }
    } finally {
      done.set(true);
      for (Future<?> f : running) {
        f.get();
      }
      pool.shutdown();
    }
    for (int k = 0; k < 25; k++) {
      ds.deleteSnapshot("s" + k);
    }
  }

  private static byte[] uniform(int length, long v) {
    ByteBuffer b = ByteBuffer.allocate(length);
    while (b.remaining() >= 8) {
      b.putLong(v);
    }
    return b.array();
  }

  /** The version a region holds (0: not written yet); fails if it mixes two writes. */
  private static long version(byte[] region, int length) {
    if (region.length == 0 || Arrays.equals(region, new byte[region.length])) {
      return 0;
    }
    assertThat(region).hasSize(length);
    ByteBuffer b = ByteBuffer.wrap(region);
    long v = b.getLong(0);
    for (int i = 0; i + 8 <= length; i += 8) {
      if (b.getLong(i) != v) {
        throw new AssertionError(
            "a region mixes two writes: " + v + " and " + b.getLong(i) + " at byte " + i);
      }
    }
    return v;
  }

  @Test
  void namesAreCheckedAndUnique() throws IOException {
    file(ROOT, "f", new byte[] {1});
    ds.createSnapshot("s", "f");
    assertThatThrownBy(() -> ds.createSnapshot("s", "f"))
        .isInstanceOf(FileAlreadyExistsException.class);
    for (String bad : List.of("", ".", "..", "a/b")) {
      assertKind(() -> ds.createSnapshot(bad, "f"), FsException.Kind.INVALID_ARGUMENT);
    }
    assertKind(() -> ds.createSnapshot("x".repeat(256), "f"), FsException.Kind.NAME_TOO_LONG);
    ds.createSnapshot("x".repeat(255), "f");
    assertThatThrownBy(() -> ds.createSnapshot("t", "missing"))
        .isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> ds.createSnapshot("t", "f/below"))
        .isInstanceOf(NotDirectoryException.class);
    assertKind(() -> ds.createSnapshot("t", ".snapshots/s"), FsException.Kind.INVALID_ARGUMENT);
    ds.symlink(ROOT, "sl", "f", 0, 0);
    assertKind(() -> ds.createSnapshot("t", "sl"), FsException.Kind.INVALID_ARGUMENT);
    assertThatThrownBy(() -> ds.deleteSnapshot("t")).isInstanceOf(NoSuchFileException.class);
    assertThat(ds.snapshots()).extracting(SnapshotInfo::name).containsExactly("s", "x".repeat(255));
  }

  @Test
  void deletingASnapshotFreesWhatOnlyItUsed() throws IOException {
    byte[] data = TestStores.randomBytes(r, 1 << 20);
    long f = file(ROOT, "f", data);
    ds.flush(f);
    ds.reclaim();
    TestStores.Counts one = TestStores.counts(ds);
    ds.createSnapshot("s", "f");
    assertThat(TestStores.counts(ds)).as("a snapshot stores no block").isEqualTo(one);
    TestStores.write(ds, f, 0, TestStores.randomBytes(r, 1 << 20));
    ds.flush(f);
    ds.reclaim();
    assertThat(TestStores.counts(ds).blocks())
        .as("both versions are kept")
        .isGreaterThan(2 * one.blocks() - 3);
    long sf = ds.resolve(".snapshots/s/f");
    TestStores.assertSameBytes(contents(sf), data, "the snapshot"); // its contents are now open
    ds.deleteSnapshot("s");
    ds.reclaim();
    assertThat(TestStores.counts(ds).blocks())
        .as("an open file of a deleted snapshot lives until forgotten")
        .isGreaterThan(2 * one.blocks() - 3);
    TestStores.assertSameBytes(contents(sf), data, "the open file of a deleted snapshot");
    ds.forget(sf);
    ds.reclaim();
    assertThat(TestStores.counts(ds).blocks()).isEqualTo(one.blocks());
  }

  @Test
  void aSnapshotCostsWorkPerInodeNotPerByte() throws IOException {
    long small = file(ROOT, "small", TestStores.randomBytes(r, 64 * 1024));
    long big = ds.mknod(ROOT, "big", 0644, 0, 0, 0).ino();
    for (int i = 0; i < 64; i++) {
      TestStores.write(ds, big, (long) i << 20, TestStores.randomBytes(r, 1 << 20));
    }
    ds.flush(big);
    ds.flush(small);
    ds.reclaim();
    Snapshots.Cost[] cost = new Snapshots.Cost[2];
    long[] nanos = new long[2];
    String[] names = {"small", "big"};
    for (int i = 0; i < 2; i++) {
      TestStores.Counts before = TestStores.counts(ds);
      long t0 = System.nanoTime();
      ds.createSnapshot("of-" + names[i], names[i]);
      nanos[i] = System.nanoTime() - t0;
      cost[i] = ds.snapshotOps.snapshots.lastCost();
      TestStores.Counts after = TestStores.counts(ds);
      assertThat(after).as("no block stored or freed, nothing queued").isEqualTo(before);
    }
    assertThat(cost[0])
        .as("64 KiB: the snapshot directory and the file, one root referenced")
        .isEqualTo(new Snapshots.Cost(2, 1));
    assertThat(cost[1]).as("64 MiB: the same").isEqualTo(cost[0]);

    long many = mkdir(ROOT, "many");
    for (int i = 0; i < 1000; i++) {
      file(many, "f" + i, TestStores.randomBytes(r, 100));
    }
    ds.sync();
    long t0 = System.nanoTime();
    ds.createSnapshot("of-many", "many");
    long manyNanos = System.nanoTime() - t0;
    assertThat(ds.snapshotOps.snapshots.lastCost()).isEqualTo(new Snapshots.Cost(1001, 1000));
    System.out.printf(
        "snapshot cost: 64 KiB file %.2f ms, 64 MiB file %.2f ms (2 inodes, 1 root each); "
            + "1000 files %.2f ms (1001 inodes, 1000 roots)%n",
        nanos[0] / 1e6, nanos[1] / 1e6, manyNanos / 1e6);
    assertThat(small + big).isPositive();
  }

  @Test
  void snapshotsSurviveAReopenAndAStoreWithoutTheTableOpens() throws IOException {
    long f = file(ROOT, "f", TestStores.randomBytes(r, 10_000));
    SnapshotInfo s = ds.createSnapshot("s", "f");
    ds.close();
    ds = Datastore.open(dir, TestStores.config(LEAF));
    assertThat(ds.snapshots()).containsExactly(s);
    assertThat(ds.resolve(".snapshots/s/f")).isPositive();
    assertKind(
        () -> ds.setattr(ds.resolve(".snapshots/s/f"), SetAttributes.size(0)),
        FsException.Kind.READ_ONLY);
    ds.deleteSnapshot("s");
    ds.close();
    ds = null;

    // a store written before snapshots existed has no table "snapshots"
    try (Env<ByteBuffer> env = Env.create().setMaxDbs(16).open(dir.toFile())) {
      Dbi<ByteBuffer> table = env.openDbi("snapshots");
      try (Txn<ByteBuffer> txn = env.txnWrite()) {
        table.drop(txn, true);
        txn.commit();
      }
    }
    try (Datastore ro = Datastore.open(dir, TestStores.config(LEAF).withReadOnly(true))) {
      assertThat(ro.snapshots()).isEmpty();
      assertThat(ro.fsck(null)).isEmpty();
      TestStores.read(ro, f, 0, 10_000);
    }
    ds = Datastore.open(dir, TestStores.config(LEAF));
    ds.createSnapshot("s2", "f");
    assertThat(ds.snapshots()).extracting(SnapshotInfo::name).containsExactly("s2");
  }
}
