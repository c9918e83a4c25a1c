package io.dedupfs.fs;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.fs.Kernel.O_RDONLY;
import static io.dedupfs.fs.Kernel.O_RDWR;
import static io.dedupfs.fs.Kernel.PIECE;
import static io.dedupfs.fs.Kernel.random;
import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.fs.Kernel.Model;
import io.dedupfs.fs.Kernel.Open;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.FuseOperations;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The adapter answering the requests that cp, qemu-img, mv and programs that unlink open files
 * make, on a real store and without a kernel: replies, contents read back and errno values.
 */
class ProgramsTest {
  @TempDir Path dir;
  Kernel k;

  @BeforeEach
  void mount() throws Exception {
    k = Kernel.mount(dir.resolve("store"));
  }

  @AfterEach
  void unmount() throws Exception {
    k.close();
  }

  @Test
  void cpFromAnotherFilesystemCreatesAndWritesIn128KiBRequests() throws Exception {
    byte[] data = random(1, 3 * PIECE + 12_345);
    long ino = k.cpFromOutside(data, ROOT, "copy");

    Attr a = k.getattr(ino);
    assertThat(a.isRegularFile()).isTrue();
    assertThat(a.mode()).isEqualTo(Attr.S_IFREG | 0644);
    assertThat(a.size()).isEqualTo(data.length);
    assertThat(a.blocks()).isEqualTo((data.length + 511) / 512);
    assertThat(a.blksize()).isEqualTo(PIECE);
    assertThat(a.nlink()).isEqualTo(1);
    assertThat(a.uid()).isEqualTo(Kernel.CALLER.uid());
    assertThat(a.gid()).isEqualTo(Kernel.CALLER.gid());
    assertThat(k.contents(ino)).isEqualTo(data);
    assertThat(k.lookup(ROOT, "copy")).isEqualTo(ino);
    assertThat(k.cpFromOutside(new byte[0], ROOT, "empty")).isNotEqualTo(ino);
    assertThat(k.getattr(k.lookup(ROOT, "empty")).size()).isZero();
  }

  @Test
  void cpWithinTheMountCopiesWithCopyFileRangeAndSharesTheBlocks() throws Exception {
    byte[] data = random(2, 1_000_003);
    long src = k.cpFromOutside(data, ROOT, "src");
    long dst = k.cpWithin(src, ROOT, "dst", false);

    assertThat(dst).isNotEqualTo(src);
    assertThat(k.getattr(dst).size()).isEqualTo(data.length);
    assertThat(k.getattr(dst).mode()).isEqualTo(Attr.S_IFREG | 0644);
    assertThat(k.contents(dst)).isEqualTo(data);
    assertThat(k.contents(src)).isEqualTo(data);
    assertThat(figure(dst, "logical")).isEqualTo(data.length);
    assertThat(figure(dst, "shared")).isPositive();
  }

  @Test
  void cpPreservingSetsTimesAndModeThroughTheCopy() throws Exception {
    long src = k.cpFromOutside(random(3, 70_000), ROOT, "src");
    Instant atime = Instant.parse("2020-01-02T03:04:05.123456789Z");
    Instant mtime = Instant.parse("2021-06-07T08:09:10.987654321Z");
    Open s = k.open(src, O_RDONLY);
    k.setattr(src, Kernel.times(atime, mtime, s));
    k.setattr(src, Kernel.mode(0640, s));
    k.close(s);

    long dst = k.cpWithin(src, ROOT, "dst", true);
    Attr a = k.getattr(dst);
    assertThat(a.mode()).isEqualTo(Attr.S_IFREG | 0640);
    assertThat(a.atime()).isEqualTo(atime);
    assertThat(a.mtime()).isEqualTo(mtime);
    assertThat(a.size()).isEqualTo(70_000);
    assertThat(k.contents(dst)).isEqualTo(random(3, 70_000));
  }

  @Test
  void timesSetAfterBufferedWritesOutliveTheirFlush() throws Exception {
    // rsync -t, or cp -p from another filesystem: write, futimens, close (which flushes the writes)
    Open f = k.create(ROOT, "f", 0644, Kernel.O_WRONLY);
    Instant created = k.fstat(f).mtime();
    k.write(f, 0, random(10, 300_000));
    Instant t = Instant.parse("2020-01-01T00:00:00Z");
    Attr set = k.setattr(f.ino(), Kernel.times(t, t, f));
    assertThat(set.mtime()).isEqualTo(t);
    assertThat(set.atime()).isEqualTo(t);
    assertThat(set.ctime()).isAfterOrEqualTo(created);
    k.close(f);
    assertThat(k.getattr(f.ino()).mtime()).isEqualTo(t);
    assertThat(k.getattr(f.ino()).atime()).isEqualTo(t);

    // a later write moves the modification and change times again, the access time stays
    Open g = k.open(f.ino(), O_RDWR);
    k.write(g, 0, new byte[] {1});
    k.close(g);
    Attr after = k.getattr(f.ino());
    assertThat(after.mtime()).isAfter(t).isEqualTo(after.ctime());
    assertThat(after.atime()).isEqualTo(t);
    assertThat(after.size()).isEqualTo(300_000);
  }

  @Test
  void cpOntoAnExistingFileTruncatesItAtOpen() throws Exception {
    long ino = k.cpFromOutside(random(4, 500_000), ROOT, "f");
    k.cpOver(random(5, 1000), ROOT, "f");

    assertThat(k.lookup(ROOT, "f")).isEqualTo(ino);
    assertThat(k.getattr(ino).size()).isEqualTo(1000);
    assertThat(k.contents(ino)).isEqualTo(random(5, 1000));
  }

  @Test
  void qemuImgCreateMakesAnImageOfTheSizeWithoutData() throws Exception {
    long ino = k.qemuImgCreate(ROOT, "disk.raw", 8 << 20);

    assertThat(k.getattr(ino).size()).isEqualTo(8 << 20);
    Open img = k.open(ino, O_RDONLY);
    assertThat(k.dataExtents(img))
        .isEmpty(); // zeros are not stored: qemu's probe write left no data
    assertThat(k.lseek(img, 0, FuseOperations.SEEK_HOLE)).isZero();
    assertThat(k.read(img, (8 << 20) - 10, 100)).isEqualTo(new byte[10]);
    k.close(img);
    assertThat(k.contents(ino)).isEqualTo(new byte[8 << 20]);
  }

  @Test
  void qemuImgConvertCopiesTheDataExtentsIntoNewAndExistingImages() throws Exception {
    // the source of the traced run: 4 MiB, 192 KiB of data at 320 KiB and 4 KiB at 4000 KiB
    long src = k.qemuImgCreate(ROOT, "src.raw", 4 << 20);
    Model model = new Model();
    model.resize(4 << 20);
    Open s = k.open(src, O_RDWR);
    for (long[] w : new long[][] {{327_680, 196_608, 6}, {4_096_000, 4096, 7}}) {
      byte[] data = random(w[2], (int) w[1]);
      k.write(s, w[0], data);
      model.write(w[0], data);
    }
    k.close(s);
    Open check = k.open(src, O_RDONLY);
    // extents are whole leaves (16 KiB): the 4 KiB written make a 16 KiB extent
    assertThat(k.dataExtents(check))
        .containsExactly(new long[] {327_680, 524_288}, new long[] {4_096_000, 4_112_384});
    k.close(check);

    long converted = k.qemuImgConvert(src, ROOT, "new.raw", false);
    assertThat(k.getattr(converted).size()).isEqualTo(4 << 20);
    assertThat(k.contents(converted)).isEqualTo(model.bytes());
    Open c = k.open(converted, O_RDONLY);
    assertThat(k.dataExtents(c))
        .containsExactly(new long[] {327_680, 524_288}, new long[] {4_096_000, 4_112_384});
    k.close(c);

    // convert -n onto an image full of other data: the holes are punched, the size stays
    long existing = k.cpFromOutside(random(8, 5 << 20), ROOT, "old.raw");
    k.qemuImgConvert(src, ROOT, "old.raw", true);
    byte[] expected = Arrays.copyOf(model.bytes(), 5 << 20);
    System.arraycopy(random(8, 5 << 20), 4 << 20, expected, 4 << 20, 1 << 20);
    assertThat(k.getattr(existing).size()).isEqualTo(5 << 20);
    assertThat(k.contents(existing)).isEqualTo(expected);
  }

  @Test
  void renameOverAnExistingFileLeavesTheReplacedOneReadableThroughItsHandle() throws Exception {
    long newer = k.cpFromOutside(ascii("NEW"), ROOT, "f.tmp");
    long older = k.cpFromOutside(ascii("OLD"), ROOT, "f");
    Open open = k.open(older, O_RDONLY);

    k.fs.rename(ROOT, "f.tmp", ROOT, "f", 0);

    k.lookupMissing(ROOT, "f.tmp");
    assertThat(k.lookup(ROOT, "f")).isEqualTo(newer);
    assertThat(k.contents(newer)).isEqualTo(ascii("NEW"));
    assertThat(k.readAll(open)).isEqualTo(ascii("OLD"));
    assertThat(k.fstat(open).nlink()).isZero();
    assertThat(names(ROOT)).containsExactlyInAnyOrder(".", "..", "f");
    k.close(open);
    k.forget(older);
    assertThat(k.errno(() -> k.getattr(older))).isEqualTo(Errnos.ENOENT);
    assertThat(k.getattr(newer).nlink()).isEqualTo(1);
  }

  @Test
  void renameNoreplaceRefusesAnExistingNameAndExchangeSwapsTwo() throws Exception {
    long a = k.cpFromOutside(ascii("A"), ROOT, "a");
    long b = k.cpFromOutside(ascii("B"), ROOT, "b");
    long d = k.mkdir(ROOT, "d");

    assertThat(k.errno(() -> k.fs.rename(ROOT, "a", ROOT, "b", FuseOperations.RENAME_NOREPLACE)))
        .isEqualTo(Errnos.EEXIST);
    k.fs.rename(ROOT, "a", ROOT, "c", FuseOperations.RENAME_NOREPLACE);
    assertThat(k.lookup(ROOT, "c")).isEqualTo(a);

    k.fs.rename(ROOT, "c", ROOT, "b", FuseOperations.RENAME_EXCHANGE);
    assertThat(k.lookup(ROOT, "b")).isEqualTo(a);
    assertThat(k.lookup(ROOT, "c")).isEqualTo(b);
    assertThat(k.contents(k.lookup(ROOT, "b"))).isEqualTo(ascii("A"));
    // a file and a directory swap names; the directory cannot then move below itself
    k.fs.rename(ROOT, "c", ROOT, "d", FuseOperations.RENAME_EXCHANGE);
    assertThat(k.lookup(ROOT, "c")).isEqualTo(d);
    assertThat(k.lookup(ROOT, "d")).isEqualTo(b);
    assertThat(k.getattr(ROOT).nlink()).isEqualTo(3);
    assertThat(k.errno(() -> k.fs.rename(ROOT, "c", d, "x", 0))).isEqualTo(Errnos.EINVAL);
    assertThat(
            k.errno(() -> k.fs.rename(ROOT, "b", ROOT, "nothing", FuseOperations.RENAME_EXCHANGE)))
        .isEqualTo(Errnos.ENOENT);
    assertThat(k.errno(() -> k.fs.rename(ROOT, "b", ROOT, "c", 3))).isEqualTo(Errnos.EINVAL);
    assertThat(names(ROOT)).containsExactlyInAnyOrder(".", "..", "b", "c", "d");
  }

  @Test
  void unlinkWhileOpenKeepsTheFileUntilReleaseAndForget() throws Exception {
    byte[] data = random(9, 200_000);
    Open f = k.create(ROOT, "tmpfile", 0600, O_RDWR);
    k.write(f, 0, data);

    assertThat(k.lookup(ROOT, "tmpfile")).isEqualTo(f.ino()); // the kernel holds two lookups now
    k.fs.unlink(ROOT, "tmpfile");

    k.lookupMissing(ROOT, "tmpfile");
    assertThat(names(ROOT)).containsExactlyInAnyOrder(".", "..");
    assertThat(k.readAll(f)).isEqualTo(data);
    k.write(f, 100_000, new byte[] {1, 2, 3});
    k.fs.fsync(f.ino(), f.fh(), false);
    assertThat(k.read(f, 100_000, 3)).containsExactly(1, 2, 3);
    assertThat(k.fstat(f).nlink()).isZero();
    assertThat(k.fstat(f).size()).isEqualTo(data.length);
    // the space figures are computed by path: a file without a name has none (ENODATA, as ext4
    // answers for a missing attribute; the file itself is still there)
    assertThat(k.errno(() -> k.fs.getxattr(f.ino(), DedupFs.FIGURES + "logical")))
        .isEqualTo(Errnos.ENODATA);
    assertThat(k.fs.listxattr(f.ino())).isEmpty();
    // a new file of the same name is another inode
    long again = k.cpFromOutside(ascii("new"), ROOT, "tmpfile");
    assertThat(again).isNotEqualTo(f.ino());

    k.close(f);
    assertThat(k.getattr(f.ino()).nlink()).isZero(); // the kernel still knows it: not yet gone
    k.forget(f.ino(), 1);
    assertThat(k.getattr(f.ino()).nlink()).isZero(); // one lookup left
    k.forget(f.ino());
    assertThat(k.errno(() -> k.getattr(f.ino()))).isEqualTo(Errnos.ENOENT);
    assertThat(k.errno(() -> k.fs.read(f.ino(), f.fh(), 0, ByteBuffer.allocate(1))))
        .isEqualTo(Errnos.EBADF);
    assertThat(k.contents(again)).isEqualTo(ascii("new"));
  }

  private long figure(long ino, String name) throws Exception {
    return Long.parseLong(
        new String(k.fs.getxattr(ino, DedupFs.FIGURES + name), StandardCharsets.US_ASCII));
  }

  private List<String> names(long dirIno) throws Exception {
    return k.readdir(dirIno, 100).stream().map(Kernel.Listed::name).toList();
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }
}
