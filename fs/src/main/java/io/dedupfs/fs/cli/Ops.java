package io.dedupfs.fs.cli;

import io.dedupfs.engine.CompactResult;
import io.dedupfs.engine.Damage;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DirName;
import io.dedupfs.engine.Progress;
import io.dedupfs.engine.Restored;
import io.dedupfs.engine.ScrubReport;
import io.dedupfs.engine.SnapshotInfo;
import io.dedupfs.engine.SpaceUsage;
import io.dedupfs.engine.StoreStats;
import java.io.PrintWriter;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/** Every administrative operation, by the name that travels over the control socket. */
final class Ops {
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

  private Ops() {}

  static Admin.Op get(String name) {
    Admin.Op op = switch (name) {
      case "stats" -> Ops::stats;
      case "snapshot.create" -> Ops::snapshotCreate;
      case "snapshot.list" -> Ops::snapshotList;
      case "snapshot.delete" -> Ops::snapshotDelete;
      case "snapshot.restore" -> Ops::snapshotRestore;
      case "scrub" -> Ops::scrub;
      case "fsck" -> Ops::fsck;
      case "compact" -> Ops::compact;
      default -> null;
    };
    if (op == null) {
      throw new Main.UsageException("unknown operation '" + name + "' (is the daemon older than this command?)");
    }
    return op;
  }

  private static int stats(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    Datastore ds = ctx.store();
    String path = p.getOrDefault("path", "");
    SpaceUsage u = ds.usage(path);
    out.printf("%-16s %s%n", "path:", path.isEmpty() ? "/ (the whole datastore)" : "/" + path);
    out.printf("%-16s %,d%n", "files:", u.files());
    out.printf("%-16s %s%n", "logical:", bytes(u.logicalBytes()));
    out.printf("%-16s %s%n", "stored:", bytes(u.storedBytes()));
    out.printf("%-16s %s   (what deleting it would free)%n", "exclusive:", bytes(u.exclusiveBytes()));
    out.printf("%-16s %s%n", "shared:", bytes(u.sharedBytes()));
    out.printf(Locale.ROOT, "%-16s %.2f%n", "dedupe ratio:", u.dedupeRatio());
    if (path.isEmpty()) {
      StoreStats s = ds.stats();
      out.printf("%-16s %s%n", "store on disk:", bytes(s.storeBytes()));
      out.printf("%-16s %s%n", "disk free:", bytes(s.diskFreeBytes()));
      out.printf("%-16s %,d bytes%n", "leaf size:", s.leafSize());
    }
    return 0;
  }

  private static int snapshotCreate(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    boolean areaExisted = snapshotArea(ctx.store()) != null;
    SnapshotInfo s = ctx.store().createSnapshot(p.get("name"), p.get("path"));
    forgetSnapshotEntry(ctx, s.name(), !areaExisted); // a lookup that found nothing there may be cached
    out.printf("created snapshot %s of /%s, browsable at %s/%s%n", s.name(), s.sourcePath(),
        Datastore.SNAPSHOTS, s.name());
    return 0;
  }

  private static int snapshotList(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    List<SnapshotInfo> all = ctx.store().snapshots();
    out.printf("%-24s %-19s %-9s %s%n", "NAME", "CREATED", "KIND", "SOURCE");
    for (SnapshotInfo s : all) {
      out.printf("%-24s %-19s %-9s /%s%n", s.name(), TIME.format(Instant.EPOCH.plusNanos(s.createdNs())),
          s.directory() ? "directory" : "file", s.sourcePath());
    }
    return 0;
  }

  private static int snapshotDelete(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    ctx.store().deleteSnapshot(p.get("name"));
    forgetSnapshotEntry(ctx, p.get("name"), false);
    out.printf("deleted snapshot %s%n", p.get("name"));
    return 0;
  }

  /**
   * The kernel caches lookups and attributes: after a snapshot is created or deleted behind its
   * back, it must forget {@code .snapshots/NAME}, the attributes of {@code .snapshots} (its link
   * count and times changed) and, when the first snapshot created it, {@code .snapshots} in the root.
   */
  private static void forgetSnapshotEntry(Admin.Context ctx, String name, boolean areaIsNew) throws Exception {
    Long area = snapshotArea(ctx.store());
    if (ctx.mount() == null || area == null) {
      return;
    }
    List<DirName> entries = new java.util.ArrayList<>(List.of(new DirName(area, name)));
    if (areaIsNew) {
      entries.add(new DirName(Datastore.ROOT, Datastore.SNAPSHOTS));
    }
    ctx.mount().invalidate(List.of(area), entries);
  }

  /** The inode of {@code .snapshots}, or null before the first snapshot. */
  private static Long snapshotArea(Datastore store) throws java.io.IOException {
    try {
      return store.resolve(Datastore.SNAPSHOTS);
    } catch (java.nio.file.NoSuchFileException e) {
      return null;
    }
  }

  private static int snapshotRestore(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    Restored r = ctx.store().restoreSnapshot(p.get("name"), p.get("path"), p.get("to"));
    if (ctx.mount() != null) {
      ctx.mount().invalidate(r.changedInodes(), r.changedEntries());
    }
    out.printf("restored %s%s; files and directories changed: %d%n", p.get("name"),
        p.get("path").isEmpty() ? "" : "/" + p.get("path"), r.changedInodes().size());
    return 0;
  }

  private static int scrub(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    ScrubReport r = ctx.store().scrub(progress(out));
    out.printf("scrub: %,d blocks, %s checked; %d damaged%n", r.blocksChecked(), bytes(r.bytesChecked()),
        r.damaged().size());
    for (Damage d : r.damaged()) {
      out.printf("damaged: /%s bytes %d-%d (inode %d): %s%n", d.path(), d.offset(), d.offset() + d.length() - 1,
          d.ino(), d.reason());
    }
    return r.damaged().isEmpty() ? 0 : 1;
  }

  private static int fsck(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    List<String> problems = ctx.store().fsck(progress(out));
    problems.forEach(x -> out.println("problem: " + x));
    out.println(problems.isEmpty() ? "fsck: clean" : "fsck: " + problems.size() + " problems");
    return problems.isEmpty() ? 0 : 1;
  }

  private static int compact(Admin.Context ctx, Map<String, String> p, PrintWriter out) throws Exception {
    CompactResult r = ctx.store().compact(progress(out));
    out.printf("compact: %s -> %s on disk%n", bytes(r.bytesBefore()), bytes(r.bytesAfter()));
    return 0;
  }

  /** Prints progress at most about once a second, and whenever the phase changes. */
  private static Consumer<Progress> progress(PrintWriter out) {
    return new Consumer<>() {
      private String phase;
      private long done = -1;
      private long last;

      @Override
      public void accept(Progress pr) {
        long now = System.nanoTime();
        boolean samePhase = pr.phase().equals(phase);
        if (samePhase && (pr.done() == done || (now - last < 1_000_000_000L && pr.done() < pr.total()))) {
          return;
        }
        phase = pr.phase();
        done = pr.done();
        last = now;
        if (pr.total() > 0) {
          out.printf(Locale.ROOT, "%s: %,d/%,d (%.0f%%)%n", pr.phase(), pr.done(), pr.total(), 100.0 * pr.done() / pr.total());
        } else {
          out.printf("%s: %,d%n", pr.phase(), pr.done());
        }
        out.flush();
      }
    };
  }

  static String bytes(long n) {
    if (n < 1024) {
      return n + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = n;
    int u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return String.format(Locale.ROOT, "%.1f %s (%,d bytes)", v, units[u], n);
  }
}
