package io.dedupfs.fs;

import static io.dedupfs.engine.Datastore.ROOT;
import static io.dedupfs.fs.Kernel.O_RDONLY;
import static io.dedupfs.fs.Kernel.O_RDWR;
import static io.dedupfs.fs.Kernel.O_TRUNC;
import static io.dedupfs.fs.Kernel.O_WRONLY;
import static io.dedupfs.fs.Kernel.random;
import static org.assertj.core.api.Assertions.assertThat;

import io.dedupfs.engine.Datastore;
import io.dedupfs.fs.Kernel.Listed;
import io.dedupfs.fs.Kernel.Open;
import io.dedupfs.fs.Kernel.Request;
import io.dedupfs.fs.fuse.Attr;
import io.dedupfs.fs.fuse.FuseOperations;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What cannot change answers EROFS: every kind of change on a read-only mount, and in the snapshots
 * under {@code .snapshots}, while reads go on.
 */
class ReadOnlyTest {
  private static final byte[] DATA = random(1, 300_000);

  @TempDir Path dir;

  @Test
  void aReadOnlyMountReadsAndRefusesEveryChange() throws Exception {
    Path store = dir.resolve("store");
    try (Kernel k = Kernel.mount(store)) {
      populate(k, ROOT);
    }
    try (Kernel k = Kernel.mountReadOnly(store)) {
      long f = k.lookup(ROOT, "f");
      long d = k.lookup(ROOT, "d");
      assertReadable(k, f, d);
      assertRefused(k, ROOT, f, d);
      k.forget(f); // a read-only store deletes nothing
      assertThat(k.contents(k.lookup(ROOT, "f"))).isEqualTo(DATA);
    }
  }

  @Test
  void snapshotsReadAndRefuseEveryChange() throws Exception {
    try (Kernel k = Kernel.mount(dir.resolve("store"))) {
      long live = populate(k, ROOT);
      k.store.createSnapshot("s1", "");
      // the live file changes after the snapshot; the snapshot's copy does not
      Open w = k.open(live, O_RDWR);
      k.write(w, 0, new byte[] {1, 2, 3});
      k.close(w);

      // hidden from the root's listing (snapdir=hidden), found by name
      assertThat(k.readdir(ROOT, 100))
          .extracting(Kernel.Listed::name)
          .doesNotContain(Datastore.SNAPSHOTS)
          .contains("f");
      long snapshots = k.lookup(ROOT, Datastore.SNAPSHOTS);
      long s1 = k.lookup(snapshots, "s1");
      assertThat(k.readdir(snapshots, 100)).extracting(Kernel.Listed::name).contains("s1");
      long f = k.lookup(s1, "f");
      long d = k.lookup(s1, "d");
      assertThat(f).isNotEqualTo(live);
      assertReadable(k, f, d);
      assertRefused(k, s1, f, d);
      // .snapshots itself: nothing is added, removed or renamed there through the mount
      assertThat(k.errno(() -> k.fs.mkdir(Kernel.CALLER, snapshots, "s2", 0755)))
          .isEqualTo(Errnos.EROFS);
      assertThat(
              k.errno(
                  () -> k.fs.create(Kernel.CALLER, snapshots, "x", Attr.S_IFREG | 0644, O_WRONLY)))
          .isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.rmdir(snapshots, "s1"))).isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.rename(snapshots, "s1", snapshots, "s2", 0)))
          .isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.setxattr(s1, "user.b", new byte[1], 0)))
          .isEqualTo(Errnos.EROFS);
      // names cannot move into or out of the snapshots, nor take the name .snapshots
      assertThat(k.errno(() -> k.fs.rename(ROOT, "f", s1, "moved", 0))).isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.rename(s1, "f", ROOT, "moved", 0))).isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.rename(ROOT, "f", ROOT, Datastore.SNAPSHOTS, 0)))
          .isEqualTo(Errnos.EROFS);
      assertThat(k.errno(() -> k.fs.rmdir(ROOT, Datastore.SNAPSHOTS))).isEqualTo(Errnos.EROFS);
      assertThat(k.contents(live)).startsWith(1, 2, 3);
    }
  }

  /** A file f (with an xattr) and a directory d holding a file g; returns f's inode. */
  private static long populate(Kernel k, long parent) throws Exception {
    long f = k.cpFromOutside(DATA, parent, "f");
    k.fs.setxattr(f, "user.a", "A".getBytes(StandardCharsets.US_ASCII), 0);
    long d = k.mkdir(parent, "d");
    k.cpFromOutside(random(2, 1000), d, "g");
    return f;
  }

  private static void assertReadable(Kernel k, long f, long d) throws Exception {
    assertThat(k.contents(f)).isEqualTo(DATA);
    assertThat(k.getattr(f).size()).isEqualTo(DATA.length);
    assertThat(k.fs.getxattr(f, "user.a")).containsExactly('A');
    assertThat(k.fs.listxattr(f)).containsExactly("user.a");
    assertThat(k.readdir(d, 10)).extracting(Listed::name).containsExactlyInAnyOrder(".", "..", "g");
    Open r = k.open(f, O_RDONLY);
    assertThat(k.lseek(r, 0, FuseOperations.SEEK_HOLE)).isEqualTo(DATA.length);
    k.close(r);
  }

  /**
   * Every kind of change to directory {@code parent}, its file {@code f} and its directory {@code
   * d}: EROFS.
   */
  private static void assertRefused(Kernel k, long parent, long f, long d) throws Exception {
    Open r = k.open(f, O_RDONLY);
    Instant t = Instant.parse("2022-02-02T02:02:02Z");
    Map<String, Request> changes = new LinkedHashMap<>();
    changes.put(
        "create", () -> k.fs.create(Kernel.CALLER, parent, "new", Attr.S_IFREG | 0644, O_WRONLY));
    changes.put("mknod", () -> k.fs.mknod(Kernel.CALLER, parent, "new", Attr.S_IFIFO | 0644, 0));
    changes.put("mkdir", () -> k.fs.mkdir(Kernel.CALLER, parent, "new", 0755));
    changes.put("symlink", () -> k.fs.symlink(Kernel.CALLER, "target", parent, "new"));
    changes.put("link", () -> k.fs.link(f, parent, "new"));
    changes.put("unlink", () -> k.fs.unlink(parent, "f"));
    changes.put("rmdir", () -> k.fs.rmdir(parent, "d"));
    changes.put("rename", () -> k.fs.rename(parent, "f", parent, "g", 0));
    changes.put("rename into d", () -> k.fs.rename(parent, "f", d, "f", 0));
    changes.put("truncate", () -> k.setattr(f, Kernel.size(0, r)));
    changes.put("chmod", () -> k.setattr(f, Kernel.mode(0600, r)));
    changes.put("utimens", () -> k.setattr(f, Kernel.times(t, t, r)));
    changes.put("chmod d", () -> k.setattr(d, Kernel.mode(0700, r)));
    changes.put("open O_WRONLY", () -> k.fs.open(Kernel.CALLER, f, O_WRONLY));
    changes.put("open O_RDWR", () -> k.fs.open(Kernel.CALLER, f, O_RDWR));
    changes.put("open O_TRUNC", () -> k.fs.open(Kernel.CALLER, f, O_WRONLY | O_TRUNC));
    changes.put(
        "write", () -> k.fs.write(Kernel.CALLER, f, r.fh(), 0, ByteBuffer.wrap(new byte[10])));
    changes.put("fallocate", () -> k.fs.fallocate(f, r.fh(), 0, 0, 1 << 20));
    changes.put("punch hole", () -> k.fs.fallocate(f, r.fh(), 3, 0, 4096));
    changes.put(
        "copy_file_range", () -> k.fs.copyFileRange(f, r.fh(), 0, f, r.fh(), 1 << 20, 1000, 0));
    changes.put("setxattr", () -> k.fs.setxattr(f, "user.b", new byte[1], 0));
    changes.put("setxattr d", () -> k.fs.setxattr(d, "user.b", new byte[1], 0));
    changes.put("removexattr", () -> k.fs.removexattr(f, "user.a"));
    for (Map.Entry<String, Request> c : changes.entrySet()) {
      assertThat(k.errno(c.getValue())).as(c.getKey()).isEqualTo(Errnos.EROFS);
    }
    k.close(r);
    assertThat(k.contents(f)).isEqualTo(DATA);
  }
}
