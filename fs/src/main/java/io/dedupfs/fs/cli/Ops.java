package io.dedupfs.fs.cli;

import io.dedupfs.engine.Attributes;
import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.CompactResult;
import io.dedupfs.engine.Compression;
import io.dedupfs.engine.Damage;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DirEntry;
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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Consumer;

/** Every administrative operation, by the name that travels over the control socket. */
final class Ops {
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

  private Ops() {}

  static Admin.Op get(String name) {
    Admin.Op op =
        switch (name) {
          case "stats" -> Ops::stats;
          case "snapshot.create" -> Ops::snapshotCreate;
          case "snapshot.list" -> Ops::snapshotList;
          case "snapshot.delete" -> Ops::snapshotDelete;
          case "snapshot.restore" -> (ctx, p, reply) -> snapshotRestore(ctx, p, reply, false);
          case "snapshot.restore.dryrun" -> (ctx, p, reply) -> snapshotRestore(ctx, p, reply, true);
          case "scrub" -> Ops::scrub;
          case "fsck" -> Ops::fsck;
          case "compact" -> Ops::compact;
          case "reconcile" -> Ops::reconcile;
          case "send" -> ReplicationOps::send;
          case "receive" -> ReplicationOps::receive;
          case "receive.serve" -> ReplicationOps::serve;
          case "receive.list" -> ReplicationOps::list;
          case "receive.abort" -> ReplicationOps::abort;
          case "diff" -> ReplicationOps::diff;
          case "set-compression" -> Ops::setCompression;
          default -> null;
        };
    if (op == null) {
      throw new Main.UsageException(
          "unknown operation '" + name + "' (is the daemon older than this command?)");
    }
    return op;
  }

  /** The output options a command passes on: --json, -p (exact figures), -H (scripted tables). */
  private record Format(boolean json, boolean exact, boolean scripted) {
    static Format of(Map<String, String> p) {
      return new Format(
          "json".equals(p.get("format")),
          "true".equals(p.get("exact")),
          "true".equals(p.get("noheader")));
    }

    /** A byte figure on its own line: "4.0 MiB (4,194,304 bytes)", or with -p "4194304". */
    String bytes(long n) {
      return exact ? Long.toString(n) : Ops.bytes(n);
    }

    /** A byte figure in a table cell: "4.0 MiB", or with -p "4194304". */
    String cell(long n) {
      return exact ? Long.toString(n) : shortBytes(n);
    }

    String count(long n) {
      return exact ? Long.toString(n) : String.format(Locale.ROOT, "%,d", n);
    }
  }

  /**
   * The store-relative paths a command names: "paths" (a count) and "path.0"...; else the one
   * "path" ("" by default).
   */
  private static List<String> paths(Map<String, String> p) {
    if (!p.containsKey("paths")) {
      return List.of(p.getOrDefault("path", ""));
    }
    List<String> out = new ArrayList<>();
    for (int i = 0, n = Integer.parseInt(p.get("paths")); i < n; i++) {
      out.add(p.get("path." + i));
    }
    return out;
  }

  private static String shown(String path) {
    return "/" + path;
  }

  private static int stats(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    Datastore ds = ctx.store();
    PrintWriter out = reply.out();
    Format f = Format.of(p);
    boolean perFile = "true".equals(p.get("perfile"));
    List<String> paths = paths(p);
    Map<String, SpaceUsage> usage = new LinkedHashMap<>();
    Map<String, Map<String, SpaceUsage>> files = new LinkedHashMap<>();
    Datastore.LogFile log = ds.intentLog();
    for (String path : paths) {
      usage.put(path, ds.usage(path));
      if (perFile) {
        Map<String, SpaceUsage> below = new TreeMap<>();
        for (String file : regularFiles(ds, path)) {
          below.put(file, ds.usage(file));
        }
        files.put(path, below);
      }
    }
    if (f.json()) {
      StoreStats s = ds.stats();
      JsonWriter j =
          new JsonWriter().beginObject().field("type", "stats").name("paths").beginArray();
      for (var e : usage.entrySet()) {
        j.beginObject().field("path", shown(e.getKey()));
        figures(j, e.getValue());
        j.name("dedupe_ratio").value(e.getValue().dedupeRatio(), 2);
        j.name("compress_ratio").value(e.getValue().compressRatio(), 2);
        if (perFile) {
          j.name("per_file").beginArray();
          for (var file : files.get(e.getKey()).entrySet()) {
            j.beginObject().field("path", shown(file.getKey()));
            figures(j, file.getValue());
            j.endObject();
          }
          j.endArray();
        }
        j.endObject();
      }
      j.endArray()
          .name("store")
          .beginObject()
          .field("store_bytes", s.storeBytes())
          .field("live_bytes", s.liveBytes())
          .field("disk_free_bytes", s.diskFreeBytes())
          .field("available_bytes", s.availableBytes())
          .field("pooled_bytes", s.pool() == null ? 0 : s.pool().pooledBytes())
          .field("pool_available_bytes", s.pool() == null ? -1 : s.pool().availableBytes())
          .field("pool_cache_bytes", s.pool() == null ? 0 : s.pool().cacheBytes())
          .field("leaf_size", s.leafSize())
          .field("compression", ds.compression().toString())
          .field("intent_log", log == null ? "" : log.path().toString())
          .field("intent_log_bytes", log == null ? 0 : log.bytes());
      if (log != null) {
        Datastore.LogActivity a = log.activity();
        j.field("intent_log_records", a.records())
            .field("intent_log_record_bytes", a.recordBytes())
            .field("intent_log_refused", a.refused())
            .field("intent_log_folds_for_room", a.foldsForRoom())
            .field("intent_log_writes", a.writes())
            .field("intent_log_write_us_mean", a.writeMicrosMean())
            .field("intent_log_write_us_p99", a.writeMicrosP99())
            .field("intent_log_unfolded_bytes", a.unfoldedBytes());
      }
      j.endObject().endObject();
      out.println(j);
      return 0;
    }
    if (perFile) {
      Table t = new Table(">LOGICAL", ">STORED", ">EXCLUSIVE", ">SHARED", "PATH");
      for (var e : usage.entrySet()) {
        Map<String, SpaceUsage> below = files.get(e.getKey());
        for (var file : below.entrySet()) {
          usageRow(t, f, file.getValue(), shown(file.getKey()));
        }
        if (!(below.size() == 1 && below.containsKey(e.getKey()))) { // a file is its own total
          usageRow(t, f, e.getValue(), shown(e.getKey()));
        }
      }
      t.print(out, f.scripted());
      return 0;
    }
    if (f.scripted()) {
      Table t = new Table("PATH", ">FILES", ">LOGICAL", ">STORED", ">EXCLUSIVE", ">SHARED");
      for (var e : usage.entrySet()) {
        SpaceUsage u = e.getValue();
        t.row(
            shown(e.getKey()),
            f.count(u.files()),
            f.cell(u.logicalBytes()),
            f.cell(u.storedBytes()),
            f.cell(u.exclusiveBytes()),
            f.cell(u.sharedBytes()));
      }
      t.print(out, true);
      return 0;
    }
    boolean first = true;
    for (var e : usage.entrySet()) {
      String path = e.getKey();
      SpaceUsage u = e.getValue();
      if (!first) {
        out.println();
      }
      first = false;
      out.printf("%-16s %s%n", "path:", path.isEmpty() ? "/ (the whole datastore)" : "/" + path);
      out.printf("%-16s %s%n", "files:", f.count(u.files()));
      out.printf("%-16s %s%n", "logical:", f.bytes(u.logicalBytes()));
      out.printf("%-16s %s%n", "stored:", f.bytes(u.storedBytes()));
      out.printf(
          "%-16s %s   (what deleting it would free)%n", "exclusive:", f.bytes(u.exclusiveBytes()));
      out.printf("%-16s %s%n", "shared:", f.bytes(u.sharedBytes()));
      out.printf(
          "%-16s %s   (data its files reference, holes excluded)%n",
          "referenced:", f.bytes(u.referencedBytes()));
      out.printf(Locale.ROOT, "%-16s %.2f%n", "dedupe ratio:", u.dedupeRatio());
      out.printf(
          "%-16s %s   (stored, as compressed)%n", "compressed:", f.bytes(u.compressedBytes()));
      out.printf(Locale.ROOT, "%-16s %.2f%n", "compress ratio:", u.compressRatio());
      if (path.isEmpty()) {
        StoreStats s = ds.stats();
        out.printf("%-16s %s%n", "store on disk:", f.bytes(s.storeBytes()));
        out.printf(
            "%-16s %s   (df's used; the rest of the file is free pages that writes reuse)%n",
            "store in use:", f.bytes(s.liveBytes()));
        out.printf("%-16s %s%n", "disk free:", f.bytes(s.diskFreeBytes()));
        out.printf(
            "%-16s %s   (%s: disk free + the store's free pages)%n",
            "available:",
            f.bytes(s.availableBytes()),
            s.pool() == null ? "df's available" : "here");
        if (s.pool() != null) {
          out.printf(
              "%-16s %s   (the blocks it counts in its pool; df's used adds them)%n",
              "in the pool:", f.bytes(s.pool().pooledBytes()));
          out.printf(
              "%-16s %s   (of the store in use: blocks of the pool kept here; df's used leaves"
                  + " them out)%n",
              "local cache:", f.bytes(s.pool().cacheBytes()));
          out.printf(
              "%-16s %s   (df's available: what the pool can still take, ceph df's MAX AVAIL)%n",
              "pool available:",
              s.pool().availableBytes() < 0 ? "unknown" : f.bytes(s.pool().availableBytes()));
        }
        out.printf(
            "%-16s %s%n",
            "leaf size:",
            f.exact() ? Integer.toString(s.leafSize()) : String.format("%,d bytes", s.leafSize()));
        out.printf("%-16s %s   (of blocks stored from now on)%n", "compression:", ds.compression());
        if (log != null) {
          out.printf("%-16s %s, %s%n", "intent log:", log.path(), f.bytes(log.bytes()));
          logActivity(out, f, log.activity());
        }
      }
    }
    return 0;
  }

  /**
   * What the intent log did since the mount: for an administrator deciding whether it wants a
   * device of its own (its writes' time) or a larger size (refusals, what waits to be folded).
   */
  private static void logActivity(PrintWriter out, Format f, Datastore.LogActivity a) {
    out.printf(
        Locale.ROOT,
        "%-16s %s records, %s, in %s writes (%.2f records a write)%n",
        "  since mount:",
        f.count(a.records()),
        f.cell(a.recordBytes()),
        f.count(a.writes()),
        a.writes() == 0 ? 0.0 : a.records() / (double) a.writes());
    if (a.writes() > 0) {
      out.printf(
          "%-16s %s us on average with the device's flush, 99%% under %s us%n",
          "  its writes:", f.count(a.writeMicrosMean()), f.count(a.writeMicrosP99()));
    }
    out.printf("%-16s %s not folded yet%n", "  in the ring:", f.cell(a.unfoldedBytes()));
    out.printf(
        "%-16s %s   (times the ring was found half full and its files committed early)%n",
        "  half full:", f.count(a.foldsForRoom()));
    out.printf(
        "%-16s %s   (fsyncs that found no room in it and committed instead)%n",
        "  full:", f.count(a.refused()));
  }

  private static void figures(JsonWriter j, SpaceUsage u) {
    j.field("files", u.files())
        .field("logical_bytes", u.logicalBytes())
        .field("stored_bytes", u.storedBytes())
        .field("exclusive_bytes", u.exclusiveBytes())
        .field("shared_bytes", u.sharedBytes())
        .field("referenced_bytes", u.referencedBytes())
        .field("compressed_bytes", u.compressedBytes());
  }

  private static void usageRow(Table t, Format f, SpaceUsage u, String name) {
    t.row(
        f.cell(u.logicalBytes()),
        f.cell(u.storedBytes()),
        f.cell(u.exclusiveBytes()),
        f.cell(u.sharedBytes()),
        name);
  }

  /**
   * The regular files at or below {@code path} (store-relative), each inode once, by one of its
   * paths.
   */
  private static List<String> regularFiles(Datastore ds, String path) throws java.io.IOException {
    List<String> out = new ArrayList<>();
    Set<Long> seen = new HashSet<>();
    long ino = ds.resolve(path);
    Attributes a = ds.getattr(ino);
    if (a.isRegularFile()) {
      return List.of(path);
    }
    if (!a.isDirectory()) {
      return List.of();
    }
    Deque<Map.Entry<String, Long>> dirs = new ArrayDeque<>(List.of(Map.entry(path, ino)));
    while (!dirs.isEmpty()) {
      var dir = dirs.pop();
      long offset = 0;
      while (true) {
        List<DirEntry> batch = ds.readdir(dir.getValue(), offset, 1024);
        if (batch.isEmpty()) {
          break;
        }
        for (DirEntry e : batch) {
          offset = e.nextOffset();
          if (e.name().equals(".") || e.name().equals("..")) {
            continue;
          }
          String child = dir.getKey().isEmpty() ? e.name() : dir.getKey() + "/" + e.name();
          int type = e.mode() & 0170000;
          if (type == 0040000) {
            dirs.push(Map.entry(child, e.ino()));
          } else if (type == 0100000 && seen.add(e.ino())) {
            out.add(child);
          }
        }
      }
    }
    return out;
  }

  private static int snapshotCreate(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    boolean areaExisted = snapshotArea(ctx.store()) != null;
    SnapshotInfo s = ctx.store().createSnapshot(p.get("name"), p.get("path"));
    forgetSnapshotEntry(
        ctx, s.name(), !areaExisted); // a lookup that found nothing there may be cached
    reply
        .out()
        .printf(
            "created snapshot %s of /%s, browsable at %s/%s%n",
            s.name(), s.sourcePath(), Datastore.SNAPSHOTS, s.name());
    return 0;
  }

  /**
   * Every snapshot with its space: logical bytes, stored (every block it reaches, once: what it
   * refers to) and exclusive (what deleting it frees), as {@code zfs list -t snapshot -o
   * refer,used}.
   */
  private static int snapshotList(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    PrintWriter out = reply.out();
    Format f = Format.of(p);
    List<SnapshotInfo> all = ctx.store().snapshots();
    Map<String, SpaceUsage> usage = new LinkedHashMap<>();
    for (SnapshotInfo s : all) {
      usage.put(s.name(), ctx.store().usage(Datastore.SNAPSHOTS + "/" + s.name()));
    }
    if (f.json()) {
      JsonWriter j =
          new JsonWriter().beginObject().field("type", "snapshots").name("snapshots").beginArray();
      for (SnapshotInfo s : all) {
        j.beginObject()
            .field("name", s.name())
            .field(
                "created",
                DateTimeFormatter.ISO_INSTANT.format(Instant.EPOCH.plusNanos(s.createdNs())))
            .field("created_ns", s.createdNs())
            .field("kind", s.directory() ? "directory" : "file")
            .field("source", shown(s.sourcePath()));
        figures(j, usage.get(s.name()));
        j.endObject();
      }
      out.println(j.endArray().endObject());
      return 0;
    }
    Table t = new Table("NAME", "CREATED", "KIND", ">LOGICAL", ">STORED", ">EXCLUSIVE", "SOURCE");
    for (SnapshotInfo s : all) {
      Instant created = Instant.EPOCH.plusNanos(s.createdNs());
      SpaceUsage u = usage.get(s.name());
      t.row(
          s.name(),
          f.exact() ? Long.toString(created.getEpochSecond()) : TIME.format(created),
          s.directory() ? "directory" : "file",
          f.cell(u.logicalBytes()),
          f.cell(u.storedBytes()),
          f.cell(u.exclusiveBytes()),
          shown(s.sourcePath()));
    }
    t.print(out, f.scripted());
    return 0;
  }

  /** Snapshot {@code name}; else a usage error that names it and the snapshots there are. */
  private static SnapshotInfo snapshot(Datastore ds, String name) throws java.io.IOException {
    List<SnapshotInfo> all = ds.snapshots();
    for (SnapshotInfo s : all) {
      if (s.name().equals(name)) {
        return s;
      }
    }
    List<String> names = all.stream().map(SnapshotInfo::name).toList();
    throw new Main.UsageException(
        "no such snapshot: "
            + name
            + (names.isEmpty()
                ? " (there are no snapshots)"
                : names.size() <= 20
                    ? " (snapshots: " + String.join(", ", names) + ")"
                    : " (" + names.size() + " snapshots: see 'dedupfs snapshot list')"));
  }

  private static int snapshotDelete(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    snapshot(ctx.store(), p.get("name"));
    ctx.store().deleteSnapshot(p.get("name"));
    forgetSnapshotEntry(ctx, p.get("name"), false);
    reply.out().printf("deleted snapshot %s%n", p.get("name"));
    return 0;
  }

  /**
   * The kernel caches lookups and attributes: after a snapshot is created or deleted behind its
   * back, it must forget {@code .snapshots/NAME}, the attributes of {@code .snapshots} (its link
   * count and times changed) and, when the first snapshot created it, {@code .snapshots} in the
   * root.
   */
  static void forgetSnapshotEntry(Admin.Context ctx, String name, boolean areaIsNew)
      throws Exception {
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
  static Long snapshotArea(Datastore store) throws java.io.IOException {
    try {
      return store.resolve(Datastore.SNAPSHOTS);
    } catch (java.nio.file.NoSuchFileException e) {
      return null;
    }
  }

  /**
   * Restores a snapshot (a {@code dryRun}: the same restore, abandoned) and lists each path it
   * changed (would change): "replaced", "created", "removed" or "attributes" (a directory's), then
   * a summary. The dry run is an operation of its own, not a parameter: a daemon older than it
   * refuses it as unknown, where it would ignore an unknown parameter and restore for real.
   */
  private static int snapshotRestore(
      Admin.Context ctx, Map<String, String> p, Admin.Reply reply, boolean dryRun)
      throws Exception {
    checkRestore(ctx.store(), p);
    Restored r = ctx.store().restoreSnapshot(p.get("name"), p.get("path"), p.get("to"), dryRun);
    if (ctx.mount() != null && !dryRun) {
      ctx.mount().invalidate(r.changedInodes(), r.changedEntries());
    }
    PrintWriter out = reply.out();
    String what =
        p.get("name")
            + (p.get("path") == null || p.get("path").isEmpty() ? "" : "/" + p.get("path"));
    if (Format.of(p).json()) {
      JsonWriter j =
          new JsonWriter()
              .beginObject()
              .field("type", "restore")
              .field("snapshot", p.get("name"))
              .field("path", shown(p.get("path") == null ? "" : p.get("path")))
              .field("dry_run", dryRun)
              .name("changes")
              .beginArray();
      for (Restored.Change c : r.changes()) {
        j.beginObject()
            .field("path", shown(c.path()))
            .field("action", c.action().word())
            .endObject();
      }
      out.println(j.endArray().endObject());
      return 0;
    }
    Map<Restored.Action, Integer> counts = new java.util.EnumMap<>(Restored.Action.class);
    for (Restored.Change c : r.changes()) {
      out.printf("%-10s %s%n", c.action().word(), shown(c.path()));
      counts.merge(c.action(), 1, Integer::sum);
    }
    List<String> parts = new ArrayList<>();
    counts.forEach((a, n) -> parts.add(n + " " + a.word()));
    String summary = r.changes().isEmpty() ? "nothing to change" : String.join(", ", parts);
    if (dryRun && r.changes().isEmpty()) {
      out.printf("dry run: restoring %s would change nothing%n", what);
    } else if (dryRun) {
      out.printf(
          "dry run: restoring %s would make these changes (%s); nothing was changed%n",
          what, summary);
    } else {
      out.printf("restored %s: %s%n", what, summary);
    }
    return 0;
  }

  /**
   * Refuses a restore the engine would refuse, with a message that names what is wrong (the
   * engine's names only the last component): a missing snapshot or path in it, a --to whose
   * directory is missing, a directory onto a file, a file onto a directory.
   */
  private static void checkRestore(Datastore ds, Map<String, String> p) throws java.io.IOException {
    String name = p.get("name");
    SnapshotInfo info = snapshot(ds, name);
    String inSnapshot = p.get("path") == null ? "" : p.get("path");
    String what = "snapshot " + name + (inSnapshot.isEmpty() ? "" : "/" + inSnapshot);
    boolean sourceIsDirectory;
    if (info.directory()) {
      String source =
          Datastore.SNAPSHOTS + "/" + name + (inSnapshot.isEmpty() ? "" : "/" + inSnapshot);
      Attributes a = attributes(ds, source);
      if (a == null) {
        throw new Main.UsageException(
            "--path " + inSnapshot + ": no such file or directory in snapshot " + name);
      }
      sourceIsDirectory = a.isDirectory();
    } else {
      sourceIsDirectory = false; // the engine names the one file it holds when --path names another
    }
    String to = p.get("to");
    if (to == null) {
      return;
    }
    String shownTo = "--to " + p.getOrDefault("to.shown", "/" + to);
    int slash = to.lastIndexOf('/');
    String parent = slash < 0 ? "" : to.substring(0, slash);
    Attributes dir = attributes(ds, parent);
    if (dir == null) {
      throw new Main.UsageException(shownTo + ": its directory does not exist");
    }
    if (!dir.isDirectory()) {
      throw new Main.UsageException(shownTo + ": /" + parent + " is not a directory");
    }
    Attributes target = to.isEmpty() ? dir : attributes(ds, to);
    if (target == null) {
      return; // created
    }
    if (sourceIsDirectory && !target.isDirectory()) {
      throw new Main.UsageException(
          shownTo
              + ": is a file, and "
              + what
              + " is a directory: restore it to a "
              + "directory or a new name, or one file of it with --path");
    }
    if (!sourceIsDirectory && target.isDirectory()) {
      String file =
          info.directory()
              ? inSnapshot.substring(inSnapshot.lastIndexOf('/') + 1)
              : info.sourcePath().substring(info.sourcePath().lastIndexOf('/') + 1);
      throw new Main.UsageException(
          shownTo
              + ": is a directory, and "
              + what
              + " is a file: give the file's path, "
              + "e.g. --to "
              + p.getOrDefault("to.shown", "/" + to)
              + "/"
              + file);
    }
  }

  /** The attributes at {@code path} (store-relative), or null when nothing is there. */
  private static Attributes attributes(Datastore ds, String path) throws java.io.IOException {
    try {
      return ds.getattr(ds.resolve(path));
    } catch (java.nio.file.NoSuchFileException | java.nio.file.NotDirectoryException e) {
      return null;
    }
  }

  private static int scrub(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    PrintWriter out = reply.out();
    Format f = Format.of(p);
    ScrubReport r = ctx.store().scrub(progress(reply, "scrub"));
    if (f.json()) {
      JsonWriter j =
          new JsonWriter()
              .beginObject()
              .field("type", "scrub")
              .field("blocks_checked", r.blocksChecked())
              .field("bytes_checked", r.bytesChecked())
              .name("damaged")
              .beginArray();
      for (Damage d : r.damaged()) {
        j.beginObject()
            .field("path", shown(d.path()))
            .field("ino", d.ino())
            .field("offset", d.offset())
            .field("length", d.length())
            .field("reason", d.reason())
            .endObject();
      }
      out.println(j.endArray().endObject());
    } else {
      out.printf(
          "scrub: %s blocks, %s%s checked; %d damaged%n",
          f.count(r.blocksChecked()),
          f.bytes(r.bytesChecked()),
          f.exact() ? " bytes" : "",
          r.damaged().size());
      for (Damage d : r.damaged()) {
        out.printf(
            "damaged: /%s bytes %d-%d (inode %d): %s%n",
            d.path(), d.offset(), d.offset() + d.length() - 1, d.ino(), d.reason());
      }
    }
    return r.damaged().isEmpty() ? 0 : 1;
  }

  private static int fsck(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    PrintWriter out = reply.out();
    List<String> problems = ctx.store().fsck(progress(reply, "fsck"));
    if (Format.of(p).json()) {
      JsonWriter j =
          new JsonWriter()
              .beginObject()
              .field("type", "fsck")
              .field("clean", problems.isEmpty())
              .name("problems")
              .beginArray();
      problems.forEach(j::value);
      out.println(j.endArray().endObject());
    } else {
      problems.forEach(x -> out.println("problem: " + x));
      out.println(problems.isEmpty() ? "fsck: clean" : "fsck: " + problems.size() + " problems");
    }
    return problems.isEmpty() ? 0 : 1;
  }

  private static int compact(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    PrintWriter out = reply.out();
    Format f = Format.of(p);
    CompactResult r = ctx.store().compact(progress(reply, "compact"));
    if (f.json()) {
      out.println(
          new JsonWriter()
              .beginObject()
              .field("type", "compact")
              .field("bytes_before", r.bytesBefore())
              .field("bytes_after", r.bytesAfter())
              .endObject());
    } else {
      out.printf(
          "compact: %s -> %s%s on disk%n",
          f.bytes(r.bytesBefore()), f.bytes(r.bytesAfter()), f.exact() ? " bytes" : "");
    }
    return 0;
  }

  private static int reconcile(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    PrintWriter out = reply.out();
    Format f = Format.of(p);
    BlockPool.Location pool = ctx.store().blocksIn();
    long released = pool == null ? 0 : ctx.store().reconcile(progress(reply, "reconcile"));
    if (f.json()) {
      out.println(
          new JsonWriter()
              .beginObject()
              .field("type", "reconcile")
              .field("pool", pool == null ? "" : pool.name())
              .field("released", released)
              .endObject());
    } else if (pool == null) {
      out.println("reconcile: nothing to reconcile: the store keeps its blocks in its own LMDB");
    } else {
      out.printf(
          "reconcile: released %s references to blocks in %s that the store held but never"
              + " recorded%n",
          f.count(released), pool.name());
    }
    return 0;
  }

  private static int setCompression(Admin.Context ctx, Map<String, String> p, Admin.Reply reply)
      throws Exception {
    Compression next = Compression.parse(p.get("compression"));
    Compression before = ctx.store().compression();
    ctx.store().setCompression(next);
    if (Format.of(p).json()) {
      reply
          .out()
          .println(
              new JsonWriter()
                  .beginObject()
                  .field("type", "compression")
                  .field("compression", next.toString())
                  .field("previous", before.toString())
                  .endObject());
    } else {
      reply
          .out()
          .printf(
              "compression: %s -> %s (blocks stored from now on; stored blocks keep their form)%n",
              before, next);
    }
    return 0;
  }

  /** Passes the engine's progress on to the client, with the unit of each phase of {@code op}. */
  private static Consumer<Progress> progress(Admin.Reply reply, String op) {
    return pr -> reply.progress().report(pr.phase(), unit(op, pr.phase()), pr.done(), pr.total());
  }

  /**
   * What the engine counts in each phase (Scrubber, Fsck, Lmdb.compact): "" for a step that is
   * begun (0/1) or done (1/1).
   */
  static String unit(String op, String phase) {
    return switch (op + "." + phase) {
      case "scrub.scrub", "fsck.blocks", "fsck.counts", "reconcile.list", "reconcile.release" ->
          "blocks";
      case "scrub.locate" -> "files";
      case "fsck.namespace" -> "inodes";
      case "compact.copy" -> "bytes";
      default -> "";
    };
  }

  /** "812 B", "4.0 MiB": a figure for a table cell or a progress line. */
  static String shortBytes(long n) {
    if (n < 1024) {
      return n + " B";
    }
    String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = n;
    int u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
  }

  /**
   * "812 B", "4.0 MiB (4,194,304 bytes)": a figure on its own line, for people, with the exact
   * count.
   */
  static String bytes(long n) {
    return n < 1024 ? n + " B" : shortBytes(n) + String.format(Locale.ROOT, " (%,d bytes)", n);
  }
}
