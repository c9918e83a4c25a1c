package io.dedupfs.engine;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.engine.TestStores.assertConsistent;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Directories, names, links, renames and attributes, with the errors the mount maps to ext4's
 * errnos.
 */
class NamespaceTest {
  private static final int UID = 1000;
  private static final int GID = 100;

  @TempDir Path dir;
  private Datastore ds;

  @BeforeEach
  void open() throws IOException {
    ds = Datastore.open(dir, TestStores.config(4096));
  }

  @AfterEach
  void checkAndClose() throws IOException {
    assertConsistent(ds);
    ds.close();
  }

  private long file(long parent, String name) throws IOException {
    return ds.mknod(parent, name, 0640, 0, UID, GID).ino();
  }

  private long mkdir(long parent, String name) throws IOException {
    return ds.mkdir(parent, name, 0750, UID, GID).ino();
  }

  private static void assertKind(ThrowingCallable call, FsException.Kind kind) {
    assertThatThrownBy(call)
        .isInstanceOfSatisfying(FsException.class, e -> assertThat(e.kind()).isEqualTo(kind));
  }

  private List<String> names(long d) throws IOException {
    List<String> out = new ArrayList<>();
    for (DirEntry e : ds.readdir(d, 0, Integer.MAX_VALUE)) {
      out.add(e.name());
    }
    return out;
  }

  @Test
  void createsFilesDirectoriesAndSymlinks() throws IOException {
    long f = file(ROOT, "f");
    long d = mkdir(ROOT, "d");
    long s = ds.symlink(d, "s", "../f", UID, GID).ino();
    Attributes fa = ds.lookup(ROOT, "f");
    assertThat(fa.ino()).isEqualTo(f);
    assertThat(fa.isRegularFile()).isTrue();
    assertThat(fa.mode()).isEqualTo(Inode.S_IFREG | 0640);
    assertThat(fa.nlink()).isEqualTo(1);
    assertThat(fa.uid()).isEqualTo(UID);
    assertThat(fa.gid()).isEqualTo(GID);
    Attributes da = ds.getattr(d);
    assertThat(da.isDirectory()).isTrue();
    assertThat(da.nlink()).isEqualTo(2);
    assertThat(ds.getattr(ROOT).nlink()).as("the root gains a link per subdirectory").isEqualTo(3);
    assertThat(ds.readlink(s)).isEqualTo("../f");
    assertThat(ds.getattr(s).size()).isEqualTo(4);
    assertThat(ds.getattr(s).mode() & Inode.S_IFMT).isEqualTo(Inode.S_IFLNK);
    assertThat(names(ROOT)).containsExactlyInAnyOrder(".", "..", "f", "d");
    assertThat(names(d)).containsExactly(".", "..", "s");
    List<DirEntry> inD = ds.readdir(d, 0, 10);
    assertThat(inD.get(1).ino()).as("..").isEqualTo(ROOT);
    assertThat(inD.get(2).ino()).isEqualTo(s);
    assertThat(inD.get(2).mode()).isEqualTo(Inode.S_IFLNK);
  }

  @Test
  void refusesBadNamesAndMissingOrWrongParents() throws IOException {
    long f = file(ROOT, "f");
    assertThatThrownBy(() -> file(ROOT, "f")).isInstanceOf(FileAlreadyExistsException.class);
    assertThatThrownBy(() -> mkdir(ROOT, "f")).isInstanceOf(FileAlreadyExistsException.class);
    assertThatThrownBy(() -> ds.lookup(ROOT, "missing")).isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> ds.getattr(9999)).isInstanceOf(NoSuchFileException.class);
    assertThatThrownBy(() -> ds.lookup(f, "x")).isInstanceOf(NotDirectoryException.class);
    assertThatThrownBy(() -> file(f, "x")).isInstanceOf(NotDirectoryException.class);
    assertThatThrownBy(() -> ds.readdir(f, 0, 10)).isInstanceOf(NotDirectoryException.class);
    for (String bad : List.of("", ".", "..", "a/b", "nul\0")) {
      assertKind(() -> file(ROOT, bad), FsException.Kind.INVALID_ARGUMENT);
    }
    assertKind(() -> file(ROOT, "x".repeat(256)), FsException.Kind.NAME_TOO_LONG);
    assertKind(
        () -> file(ROOT, "é".repeat(128)), FsException.Kind.NAME_TOO_LONG); // 256 bytes in UTF-8
    file(ROOT, "x".repeat(255));
    assertKind(() -> ds.readlink(f), FsException.Kind.INVALID_ARGUMENT);
    assertKind(() -> ds.symlink(ROOT, "empty", "", UID, GID), FsException.Kind.INVALID_ARGUMENT);
    assertKind(
        () -> ds.mknod(ROOT, "dir", Inode.S_IFDIR | 0755, 0, 0, 0),
        FsException.Kind.INVALID_ARGUMENT);
    long d = mkdir(ROOT, "d");
    assertKind(() -> ds.read(d, 0, java.nio.ByteBuffer.allocate(1)), FsException.Kind.IS_DIRECTORY);
    assertKind(() -> ds.setattr(d, SetAttributes.size(0)), FsException.Kind.IS_DIRECTORY);
  }

  @Test
  void hardLinksShareOneInode() throws IOException {
    long f = file(ROOT, "f");
    long d = mkdir(ROOT, "d");
    TestStores.write(ds, f, 0, "hello".getBytes(StandardCharsets.UTF_8));
    assertThat(ds.link(f, d, "g").nlink()).isEqualTo(2);
    assertThat(ds.lookup(d, "g").ino()).isEqualTo(f);
    assertThat(TestStores.read(ds, ds.lookup(d, "g").ino(), 0, 10)).asString().isEqualTo("hello");
    assertThatThrownBy(() -> ds.link(f, ROOT, "f")).isInstanceOf(FileAlreadyExistsException.class);
    assertKind(() -> ds.link(d, ROOT, "dlink"), FsException.Kind.NOT_PERMITTED);
    ds.unlink(ROOT, "f");
    assertThat(ds.getattr(f).nlink()).isEqualTo(1);
    assertThat(TestStores.read(ds, f, 0, 10)).asString().isEqualTo("hello");
    ds.forget(f); // still named: nothing happens
    assertThat(ds.getattr(f).nlink()).isEqualTo(1);
  }

  @Test
  void unlinkAndRmdirCheckTypesAndEmptiness() throws IOException {
    long d = mkdir(ROOT, "d");
    file(d, "f");
    file(ROOT, "g");
    assertKind(() -> ds.unlink(ROOT, "d"), FsException.Kind.IS_DIRECTORY);
    assertThatThrownBy(() -> ds.rmdir(ROOT, "g")).isInstanceOf(NotDirectoryException.class);
    assertThatThrownBy(() -> ds.rmdir(ROOT, "d")).isInstanceOf(DirectoryNotEmptyException.class);
    assertThatThrownBy(() -> ds.unlink(ROOT, "missing")).isInstanceOf(NoSuchFileException.class);
    ds.unlink(d, "f");
    ds.rmdir(ROOT, "d");
    assertThat(ds.getattr(ROOT).nlink()).isEqualTo(2);
    assertThat(ds.getattr(d).nlink()).as("a removed directory that is still open").isEqualTo(0);
    assertThatThrownBy(() -> file(d, "late")).isInstanceOf(NoSuchFileException.class);
    ds.forget(d);
    assertThatThrownBy(() -> ds.getattr(d)).isInstanceOf(NoSuchFileException.class);
    assertThat(names(ROOT)).containsExactlyInAnyOrder(".", "..", "g");
  }

  @Test
  void renamesFilesAndDirectories() throws IOException {
    long a = mkdir(ROOT, "a");
    long b = mkdir(ROOT, "b");
    long f = file(a, "f");
    ds.rename(a, "f", a, "f2", 0);
    assertThat(ds.lookup(a, "f2").ino()).isEqualTo(f);
    assertThatThrownBy(() -> ds.lookup(a, "f")).isInstanceOf(NoSuchFileException.class);
    ds.rename(a, "f2", b, "f", 0);
    assertThat(ds.lookup(b, "f").ino()).isEqualTo(f);
    assertThat(names(a)).containsExactly(".", "..");

    long sub = mkdir(a, "sub");
    file(sub, "inner");
    assertThat(ds.getattr(a).nlink()).isEqualTo(3);
    ds.rename(a, "sub", b, "sub", 0);
    assertThat(ds.getattr(a).nlink()).isEqualTo(2);
    assertThat(ds.getattr(b).nlink()).isEqualTo(3);
    assertThat(ds.readdir(sub, 0, 2).get(1).ino()).as("the moved directory's ..").isEqualTo(b);
    assertThat(ds.lookup(sub, "inner").isRegularFile()).isTrue();

    assertKind(() -> ds.rename(ROOT, "b", sub, "b", 0), FsException.Kind.INVALID_ARGUMENT);
    assertKind(() -> ds.rename(ROOT, "b", b, "self", 0), FsException.Kind.INVALID_ARGUMENT);
    assertKind(
        () -> ds.rename(b, "sub", ROOT, "x", RENAME_BOTH), FsException.Kind.INVALID_ARGUMENT);
    assertThatThrownBy(() -> ds.rename(b, "missing", b, "x", 0))
        .isInstanceOf(NoSuchFileException.class);
    ds.rename(b, "f", sub, "inner", 0); // replaces a file
    assertThat(ds.lookup(sub, "inner").ino()).isEqualTo(f);
    ds.rename(sub, "inner", sub, "inner", 0); // onto itself: nothing
    assertThat(ds.lookup(sub, "inner").ino()).isEqualTo(f);
  }

  private static final int RENAME_BOTH = Datastore.RENAME_NOREPLACE | Datastore.RENAME_EXCHANGE;

  @Test
  void renameOverExistingTargets() throws IOException {
    long f = file(ROOT, "f");
    long g = file(ROOT, "g");
    long d = mkdir(ROOT, "d");
    long e = mkdir(ROOT, "e");
    long full = mkdir(ROOT, "full");
    file(full, "x");
    assertThatThrownBy(() -> ds.rename(ROOT, "f", ROOT, "g", Datastore.RENAME_NOREPLACE))
        .isInstanceOf(FileAlreadyExistsException.class);
    assertThatThrownBy(() -> ds.rename(ROOT, "d", ROOT, "f", 0))
        .isInstanceOf(NotDirectoryException.class);
    assertKind(() -> ds.rename(ROOT, "f", ROOT, "d", 0), FsException.Kind.IS_DIRECTORY);
    assertThatThrownBy(() -> ds.rename(ROOT, "d", ROOT, "full", 0))
        .isInstanceOf(DirectoryNotEmptyException.class);

    ds.rename(ROOT, "f", ROOT, "g", 0);
    assertThat(ds.lookup(ROOT, "g").ino()).isEqualTo(f);
    assertThat(ds.getattr(g).nlink()).as("the replaced file lives on while open").isEqualTo(0);
    ds.forget(g);
    assertThatThrownBy(() -> ds.getattr(g)).isInstanceOf(NoSuchFileException.class);

    ds.rename(ROOT, "d", ROOT, "e", 0);
    assertThat(ds.lookup(ROOT, "e").ino()).isEqualTo(d);
    assertThat(ds.getattr(ROOT).nlink()).isEqualTo(4); // ., .., e (was d), full
    assertThat(ds.getattr(e).nlink()).isEqualTo(0);
    ds.forget(e);

    long h = file(ROOT, "h");
    ds.link(h, ROOT, "h2");
    ds.rename(ROOT, "h", ROOT, "h2", 0); // two names of one inode: POSIX says nothing happens
    assertThat(names(ROOT)).contains("h", "h2");
    assertThat(ds.getattr(h).nlink()).isEqualTo(2);
  }

  @Test
  void renameExchangeSwapsTwoNames() throws IOException {
    long a = mkdir(ROOT, "a");
    long b = mkdir(ROOT, "b");
    long f = file(a, "f");
    long sub = mkdir(b, "sub");
    assertThatThrownBy(() -> ds.rename(a, "f", b, "missing", Datastore.RENAME_EXCHANGE))
        .isInstanceOf(NoSuchFileException.class);
    ds.rename(a, "f", b, "sub", Datastore.RENAME_EXCHANGE);
    assertThat(ds.lookup(a, "f").ino()).isEqualTo(sub);
    assertThat(ds.lookup(b, "sub").ino()).isEqualTo(f);
    assertThat(ds.readdir(sub, 0, 2).get(1).ino()).as("the exchanged directory's ..").isEqualTo(a);
    assertThat(ds.getattr(a).nlink()).isEqualTo(3);
    assertThat(ds.getattr(b).nlink()).isEqualTo(2);
    assertThat(ds.readdir(a, 2, 10).get(0).mode())
        .as("the entry's type follows the inode")
        .isEqualTo(Inode.S_IFDIR);
    assertKind(
        () -> ds.rename(ROOT, "a", a, "f", Datastore.RENAME_EXCHANGE),
        FsException.Kind.INVALID_ARGUMENT);
  }

  @Test
  void extendedAttributes() throws IOException {
    long f = file(ROOT, "f");
    byte[] v = "value".getBytes(StandardCharsets.UTF_8);
    assertKind(() -> ds.getxattr(f, "user.a"), FsException.Kind.NO_SUCH_ATTRIBUTE);
    assertKind(
        () -> ds.setxattr(f, "user.a", v, Datastore.XATTR_REPLACE),
        FsException.Kind.NO_SUCH_ATTRIBUTE);
    ds.setxattr(f, "user.a", v, Datastore.XATTR_CREATE);
    assertKind(
        () -> ds.setxattr(f, "user.a", v, Datastore.XATTR_CREATE),
        FsException.Kind.ATTRIBUTE_EXISTS);
    ds.setxattr(f, "user.a", new byte[0], Datastore.XATTR_REPLACE);
    assertThat(ds.getxattr(f, "user.a")).isEmpty();
    ds.setxattr(f, "user.big", new byte[64 * 1024], 0);
    ds.setxattr(f, "security.selinux", v, 0);
    assertThat(ds.listxattr(f)).containsExactlyInAnyOrder("user.a", "user.big", "security.selinux");
    long other = file(ROOT, "other");
    ds.setxattr(other, "user.a", v, 0);
    ds.removexattr(f, "user.big");
    assertKind(() -> ds.removexattr(f, "user.big"), FsException.Kind.NO_SUCH_ATTRIBUTE);
    assertThat(ds.listxattr(f)).containsExactlyInAnyOrder("user.a", "security.selinux");
    assertThat(ds.listxattr(other)).containsExactly("user.a");
    assertKind(() -> ds.setxattr(f, "", v, 0), FsException.Kind.NAME_TOO_LONG);
    ds.unlink(ROOT, "f");
    ds.forget(f);
    assertThat(ds.listxattr(other)).containsExactly("user.a");
  }

  @Test
  void readdirPagesNeitherSkipNorRepeatWhileEntriesComeAndGo() throws IOException {
    long d = mkdir(ROOT, "d");
    Set<String> stable = new HashSet<>();
    for (int i = 0; i < 300; i++) {
      file(d, "stable" + i);
      stable.add("stable" + i);
    }
    SplittableRandom r = new SplittableRandom(5);
    Set<String> seen = new HashSet<>();
    List<String> listed = new ArrayList<>();
    int churn = 0;
    long offset = 0;
    for (List<DirEntry> page; !(page = ds.readdir(d, offset, 1 + r.nextInt(9))).isEmpty(); ) {
      for (DirEntry e : page) {
        listed.add(e.name());
        seen.add(e.name());
        offset = e.nextOffset();
      }
      file(d, "new" + churn); // may or may not be listed
      if (churn > 2) {
        ds.unlink(d, "new" + (churn - 2));
      }
      churn++;
    }
    assertThat(listed).as("no entry is listed twice").doesNotHaveDuplicates();
    assertThat(seen)
        .as("every entry present throughout is listed")
        .containsAll(stable)
        .contains(".", "..");
    assertThat(listed.subList(0, 2)).containsExactly(".", "..");
  }

  @Test
  void anUnlinkedFileLivesUntilForgotten() throws IOException {
    long f = file(ROOT, "f");
    byte[] data = TestStores.randomBytes(new SplittableRandom(1), 100_000);
    TestStores.write(ds, f, 0, data);
    ds.flush(f);
    ds.reclaim();
    long blocksWithFile = TestStores.counts(ds).blocks();
    ds.unlink(ROOT, "f");
    assertThatThrownBy(() -> ds.lookup(ROOT, "f")).isInstanceOf(NoSuchFileException.class);
    assertThat(ds.getattr(f).nlink()).isZero();
    TestStores.assertSameBytes(TestStores.read(ds, f, 0, data.length), data, "the unlinked file");
    TestStores.write(ds, f, data.length, data);
    ds.flush(f);
    assertThat(ds.getattr(f).size()).isEqualTo(2L * data.length);
    assertThatThrownBy(() -> ds.link(f, ROOT, "back")).isInstanceOf(NoSuchFileException.class);
    ds.forget(f);
    assertThatThrownBy(() -> ds.getattr(f)).isInstanceOf(NoSuchFileException.class);
    ds.reclaim();
    assertThat(blocksWithFile).isPositive();
    assertThat(TestStores.counts(ds).blocks()).as("its blocks are freed").isZero();
  }

  @Test
  void orphansLeftAtCloseAreDeletedAtTheNextOpen() throws IOException {
    long f = file(ROOT, "f");
    TestStores.write(ds, f, 0, TestStores.randomBytes(new SplittableRandom(2), 50_000));
    ds.unlink(ROOT, "f");
    ds.close();
    ds = Datastore.open(dir, TestStores.config(4096));
    assertThatThrownBy(() -> ds.getattr(f)).isInstanceOf(NoSuchFileException.class);
    ds.reclaim();
    assertThat(TestStores.counts(ds).blocks()).isZero();
  }

  @Test
  void setattrChangesModeOwnerTimesAndSize() throws IOException {
    long f = file(ROOT, "f");
    TestStores.write(ds, f, 0, new byte[] {1, 2, 3});
    Attributes a =
        ds.setattr(f, new SetAttributes(04755, 7, 8, null, 1_000_000_123L, 2_000_000_456L));
    assertThat(a.mode()).isEqualTo(Inode.S_IFREG | 04755);
    assertThat(a.uid()).isEqualTo(7);
    assertThat(a.gid()).isEqualTo(8);
    assertThat(a.atimeNs()).isEqualTo(1_000_000_123L);
    assertThat(a.mtimeNs()).isEqualTo(2_000_000_456L);
    assertThat(a.size()).isEqualTo(3);
    long before = System.currentTimeMillis() * 1_000_000L - 1_000_000_000L;
    a =
        ds.setattr(
            f, new SetAttributes(null, null, null, null, SetAttributes.NOW, SetAttributes.NOW));
    assertThat(a.atimeNs()).isGreaterThan(before);
    assertThat(a.mtimeNs()).isGreaterThan(before);
    a = ds.setattr(f, SetAttributes.size(1));
    assertThat(a.size()).isEqualTo(1);
    assertThat(TestStores.read(ds, f, 0, 10)).containsExactly(1);
    long s = ds.symlink(ROOT, "s", "f", 0, 0).ino();
    assertKind(() -> ds.setattr(s, SetAttributes.size(0)), FsException.Kind.INVALID_ARGUMENT);
  }

  @Test
  void setattrKeepsAChangeTimeTheCallerGives() throws IOException {
    long f = file(ROOT, "f");
    Attributes a =
        ds.setattr(
            f, new SetAttributes(null, null, null, null, null, 5_000_000_007L, 6_000_000_009L));
    assertThat(a.mtimeNs()).isEqualTo(5_000_000_007L);
    assertThat(a.ctimeNs()).isEqualTo(6_000_000_009L);
    ds.close();
    ds = Datastore.open(dir, TestStores.config(4096));
    assertThat(ds.getattr(f).ctimeNs()).isEqualTo(6_000_000_009L);
  }

  @Test
  void everythingSurvivesAReopen() throws IOException {
    long d = mkdir(ROOT, "d");
    long f = file(d, "f");
    long s = ds.symlink(ROOT, "s", "d/f", 5, 6).ino();
    ds.link(f, ROOT, "f2");
    TestStores.write(ds, f, 5000, "contents".getBytes(StandardCharsets.UTF_8));
    ds.setxattr(d, "user.x", new byte[] {9}, 0);
    ds.setattr(f, new SetAttributes(0600, 11, 12, null, 123L, null));
    List<Attributes> before = new ArrayList<>();
    for (long ino : new long[] {ROOT, d, f, s}) {
      before.add(ds.getattr(ino));
    }
    List<DirEntry> rootBefore = ds.readdir(ROOT, 0, 100);
    ds.close();
    ds = Datastore.open(dir, TestStores.config(4096));
    List<Attributes> after = new ArrayList<>();
    for (long ino : new long[] {ROOT, d, f, s}) {
      after.add(ds.getattr(ino));
    }
    assertThat(after).isEqualTo(before);
    assertThat(ds.readdir(ROOT, 0, 100)).isEqualTo(rootBefore);
    assertThat(ds.readlink(s)).isEqualTo("d/f");
    assertThat(ds.getxattr(d, "user.x")).containsExactly(9);
    assertThat(TestStores.read(ds, f, 5000, 100)).asString().isEqualTo("contents");
    long next = file(ROOT, "new");
    assertThat(next).as("inode numbers are never reused").isGreaterThan(s);
  }
}
