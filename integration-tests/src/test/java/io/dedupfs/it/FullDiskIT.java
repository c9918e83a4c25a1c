package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A store on a small loop-mounted ext4 (256 MiB) filled to the brim through the mount (issue 5).
 * The writer is refused once the disk is full (a write that would go over the dirty limit, and the
 * fsync of what did not fit); the mount stays up; every byte fsynced before is intact; after files
 * are deleted and their space reclaimed, writes succeed again on the same mount; everything reads
 * back and fsck is clean. The errno the writer gets must be ENOSPC: see {@link
 * #theWriterGetsEnospcNotEio}.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class FullDiskIT {
  static final long M = 1L << 20;

  @TempDir Path tempDir;

  /**
   * Python: writes unique 1 MiB blocks (every 4 KiB stamped with the seed and offset) to FILE and
   * fsyncs every 8 MiB until a call fails; then tries one more write, an fsync and the close.
   * Prints "synced BYTES", "failed CALL ERRNO" and the three attempts, one line each.
   */
  static final String FILL =
      """
            import errno, os, random, struct, sys
            path, seed = sys.argv[1], int(sys.argv[2])
            base = random.Random(seed).randbytes(1 << 20)
            def block(off):
                b = bytearray(base)
                for i in range(0, len(b), 4096):
                    struct.pack_into('<QQ', b, i, seed, off + i)
                return b
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            off = synced = 0
            def name(e):
                return errno.errorcode.get(e.errno, str(e.errno))
            try:
                while True:
                    call = 'write'
                    os.pwrite(fd, block(off), off)
                    off += 1 << 20
                    if off % (8 << 20) == 0:
                        call = 'fsync'
                        os.fsync(fd)
                        synced = off
            except OSError as e:
                print('synced', synced)
                print('failed', call, name(e))
            for what, fn in (('write', lambda: os.pwrite(fd, block(off), off)), ('fsync', lambda: os.fsync(fd)),
                             ('close', lambda: os.close(fd))):
                try:
                    fn()
                    print('again', what, 'ok')
                except OSError as e:
                    print('again', what, name(e))
            """;

  /** Python: SHA-256 of the first BYTES bytes FILL writes with SEED. */
  static final String FILLED =
      """
            import hashlib, random, struct, sys
            n, seed = int(sys.argv[1]), int(sys.argv[2])
            base = random.Random(seed).randbytes(1 << 20)
            h = hashlib.sha256()
            for off in range(0, n, 1 << 20):
                b = bytearray(base)
                for i in range(0, len(b), 4096):
                    struct.pack_into('<QQ', b, i, seed, off + i)
                h.update(b)
            print(h.hexdigest())
            """;

  record Fill(
      long synced, String failedCall, String errno, Map<String, String> again, String output) {}

  private Fill fill(Path file, long seed) {
    String out = Tools.python(FILL, file, seed);
    List<String> lines = out.lines().toList();
    Map<String, String> again = new java.util.LinkedHashMap<>();
    for (String l : lines.subList(2, lines.size())) {
      String[] f = l.split(" ");
      again.put(f[1], f[2]);
    }
    String[] failed = lines.get(1).split(" ");
    return new Fill(Long.parseLong(lines.get(0).split(" ")[1]), failed[1], failed[2], again, out);
  }

  @Test
  void aFullDiskRefusesWritesKeepsTheMountAndFsyncedDataAndRecovers() throws Exception {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    try (Tools.Ext4 disk = new Tools.Ext4(tmp, 256 * M);
        Mounted m = Mounted.mount(disk.root().resolve("store"), tmp.resolve("mnt"), tmp)) {
      Path mnt = m.mountpoint();
      String[] keep = StoreTools.uniqueWithDigest(mnt.resolve("keep.img"), 48 * M, 151);
      Fill f = fill(mnt.resolve("fill.img"), 152);
      System.out.println("FullDiskIT: filling: " + f.output().replace('\n', '|'));
      assertThat(f.synced())
          .as("bytes fsynced before the disk was full\n%s", f.output())
          .isGreaterThan(64 * M);
      assertThat(f.again().get("fsync"))
          .as("fsync of writes that did not fit\n%s", f.output())
          .isNotEqualTo("ok");

      // the mount is up and answers; what was fsynced reads back
      assertThat(m.isAlive()).isTrue();
      assertThat(Mounted.isMounted(mnt)).isTrue();
      try (var names = Files.list(mnt)) {
        assertThat(names.map(p -> p.getFileName().toString()).sorted().toList())
            .containsExactly("fill.img", "keep.img");
      }
      assertThat(StoreTools.digest(mnt.resolve("keep.img"))).isEqualTo(keep[1]);
      assertThat(
              Tools.python(
                      """
                    import hashlib, sys
                    with open(sys.argv[1], 'rb') as f:
                        print(hashlib.sha256(f.read(int(sys.argv[2]))).hexdigest())
                    """,
                      mnt.resolve("fill.img"),
                      f.synced())
                  .strip())
          .as("the fsynced part of the file that filled the disk")
          .isEqualTo(Tools.python(FILLED, f.synced(), 152).strip());

      // delete, let reclaim run (fsck applies it), write again on the same mount
      Files.delete(mnt.resolve("fill.img"));
      Shell.Result fsck = Mounted.cli(Duration.ofMinutes(5), "fsck", mnt.toString());
      assertThat(fsck.exitCode()).as("fsck after the delete\n%s", fsck).isZero();
      String[] after = StoreTools.uniqueWithDigest(mnt.resolve("after.img"), 96 * M, 153);
      assertThat(StoreTools.digest(mnt.resolve("after.img"))).isEqualTo(after[1]);
      assertThat(StoreTools.digest(mnt.resolve("keep.img"))).isEqualTo(keep[1]);
      StoreTools.Figures now = StoreTools.stats(mnt);
      System.out.printf("FullDiskIT: after delete and rewrite: %s%n", now);
      assertThat(now.logical()).isEqualTo(144 * M);
      assertThat(Mounted.cli(Duration.ofMinutes(5), "fsck", mnt.toString()).stdout())
          .contains("fsck: clean");
    }
  }

  /**
   * The errno of a full disk is ENOSPC, for the write that does not fit and for fsync and close of
   * what could not be committed: never EIO, which means damage.
   *
   * <p>On ext4, LMDB reports the short write to the full disk as EIO, and f_bfree never drops below
   * ext4's reserved clusters (5 MiB on this 256 MiB disk): the engine takes such an EIO for a full
   * disk (Lmdb.isDiskFull).
   */
  @Test
  void theWriterGetsEnospcNotEio() throws IOException {
    Mounted.assumeFuseAvailable();
    Path tmp = tempDir.toRealPath();
    try (Tools.Ext4 disk = new Tools.Ext4(tmp, 256 * M);
        Mounted m = Mounted.mount(disk.root().resolve("store"), tmp.resolve("mnt"), tmp)) {
      Fill f = fill(m.mountpoint().resolve("fill.img"), 161);
      assertThat(f.errno())
          .as("errno of the %s that met the full disk\n%s", f.failedCall(), f.output())
          .isEqualTo("ENOSPC");
      assertThat(f.again())
          .as("after the disk was full\n%s", f.output())
          .containsEntry("fsync", "ENOSPC");
      assertThat(f.again().get("write"))
          .isIn("ok", "ENOSPC"); // ok: buffered, below the dirty limit
      assertThat(f.again().get("close")).isIn("ok", "ENOSPC");
      m.close();
      assertThat(m.output())
          .as("a full disk is no unexpected failure")
          .doesNotContain("request failed unexpectedly");
    }
  }
}
