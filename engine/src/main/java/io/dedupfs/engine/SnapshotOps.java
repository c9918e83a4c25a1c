package io.dedupfs.engine;

import static io.dedupfs.engine.Checks.checkName;
import static io.dedupfs.engine.Checks.now;
import static io.dedupfs.engine.Checks.requireDir;

import java.io.IOException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;

/**
 * Snapshots as the store offers them: taking one (after flushing what it covers), listing,
 * deleting, and restoring one in place. The records are {@link Snapshots}'s and the restore's tree
 * walk is {@link Restore}'s; this class plans a restore, takes the locks of the files it may
 * replace (in the lock order, before its transaction) and retires the contents it replaced.
 */
final class SnapshotOps {
  private static final long ROOT = Namespace.ROOT;

  private final Path dir;
  private final DatastoreConfig config;
  private final Lmdb db;
  private final Namespace ns;
  private final BlockStore blocks;

  /** The snapshots' records. */
  final Snapshots snapshots;

  private final OpenFiles files;
  private final WriteBack writeBack;

  SnapshotOps(
      Path dir,
      DatastoreConfig config,
      Lmdb db,
      Namespace ns,
      BlockStore blocks,
      OpenFiles files,
      WriteBack writeBack) {
    this.dir = dir;
    this.config = config;
    this.db = db;
    this.ns = ns;
    this.blocks = blocks;
    this.snapshots = new Snapshots(db, ns, blocks);
    this.files = files;
    this.writeBack = writeBack;
  }

  /** See {@link Datastore#createSnapshot}. */
  SnapshotInfo create(String name, String sourcePath) throws IOException {
    requireWritable();
    checkName(name);
    String source = Namespace.normalize(sourcePath);
    writeBack.flushBelow(source);
    long now = now();
    return db.write(txn -> snapshots.create(txn, name, source, now));
  }

  /** Every snapshot, oldest first. */
  List<SnapshotInfo> list() throws IOException {
    return db.read(snapshots::list);
  }

  /**
   * Deletes snapshot {@code name}; the space only it used comes back with the next reclaim (soon,
   * in the background).
   */
  void delete(String name) throws IOException {
    requireWritable();
    checkName(name);
    long now = now();
    db.write(
        txn -> {
          snapshots.delete(txn, name, now, files::isLoaded);
          return null;
        });
    writeBack.reclaimSoon();
  }

  /** See {@link Datastore#restoreSnapshot}. */
  Restored restore(String name, String pathInSnapshot, String targetPath) throws IOException {
    return restore(name, pathInSnapshot, targetPath, false);
  }

  /**
   * See {@link Datastore#restoreSnapshot}. A {@code dryRun} runs the very same restore, with the
   * same locks, in a write transaction that it aborts: it reports what the restore would change and
   * changes nothing (no commit, so no block reference or queued decrement escapes; the file
   * contents it loaded only to lock them are dropped again, as a restore drops them).
   */
  Restored restore(String name, String pathInSnapshot, String targetPath, boolean dryRun)
      throws IOException {
    requireWritable();
    checkName(name);
    String inSnapshot = Namespace.normalize(pathInSnapshot == null ? "" : pathInSnapshot);
    RestorePlan plan = db.read(txn -> planRestore(txn, name, inSnapshot, targetPath, true));
    Set<Long> openBefore = new HashSet<>();
    for (long ino : plan.files()) {
      if (files.isLoaded(ino)) {
        openBefore.add(ino);
      }
    }
    List<FileContent> locked = files.lockContents(plan.files());
    try {
      Set<Long> lockedInos = new HashSet<>();
      Set<Long> dirty = new HashSet<>();
      for (FileContent fc : locked) {
        lockedInos.add(fc.ino);
        if (fc.isDirty()) {
          dirty.add(fc.ino);
        }
      }
      long now = now();
      Lmdb.WriteWork<Restored> work =
          txn -> {
            RestorePlan p = planRestore(txn, name, inSnapshot, targetPath, false); // as it is now
            Restore restore =
                new Restore(
                    ns,
                    blocks,
                    txn,
                    now,
                    lockedInos::contains,
                    dirty::contains,
                    ino ->
                        files.isLoaded(ino)
                            && (!lockedInos.contains(ino)
                                || openBefore.contains(ino)
                                || dirty.contains(ino)));
            Restored done =
                restore.run(
                    ns.inode(txn, p.source()), p.targetParent(), p.targetName(), p.targetPath());
            for (long ino : done.changedInodes()) {
              writeBack.contentsReplaced(txn, ino);
            }
            return done;
          };
      if (dryRun) {
        Restored r = db.writeAndAbort(work);
        for (FileContent fc : locked) {
          if (!openBefore.contains(fc.ino) && !fc.isDirty()) {
            files.retire(fc); // loaded only to be locked: unchanged, and not kept loaded
          }
        }
        return r;
      }
      Restored r = db.write(work);
      Set<Long> replaced = new HashSet<>(r.changedInodes());
      for (FileContent fc : locked) {
        if (replaced.contains(fc.ino) || (!openBefore.contains(fc.ino) && !fc.isDirty())) {
          files.retire(
              fc); // its overlay (discarded) and tree are of the old contents; whoever comes next
          // loads the new
        }
      }
      writeBack.reclaimSoon();
      return r;
    } finally {
      OpenFiles.unlockAll(locked);
    }
  }

  /**
   * What a restore works on: the snapshot inode, the target's directory and name (directory 0: the
   * root itself), and the regular files now at or below the target, which it may replace in place;
   * and the target's path (store-relative, normalized).
   */
  private record RestorePlan(
      long source,
      long targetParent,
      String targetName,
      SortedSet<Long> files,
      String targetPath) {}

  private RestorePlan planRestore(
      ReadTxn txn, String name, String inSnapshot, String targetPath, boolean withFiles)
      throws IOException {
    SnapshotInfo info = snapshots.find(txn, name);
    long source;
    String target;
    if (info.directory()) {
      source = ns.resolve(txn, info.ino(), inSnapshot);
      target =
          targetPath != null
              ? targetPath
              : (info.sourcePath().isEmpty()
                  ? inSnapshot
                  : inSnapshot.isEmpty()
                      ? info.sourcePath()
                      : info.sourcePath() + "/" + inSnapshot);
    } else {
      List<DirEntry> only = ns.listAll(txn, info.ino());
      if (only.size() != 1 || !(inSnapshot.isEmpty() || inSnapshot.equals(only.get(0).name()))) {
        throw new NoSuchFileException(
            inSnapshot,
            null,
            "snapshot " + name + " holds the file " + only.get(0).name() + " only");
      }
      source = only.get(0).ino();
      target = targetPath != null ? targetPath : info.sourcePath();
    }
    List<String> parts = Namespace.components(target);
    if (parts.isEmpty()) {
      return new RestorePlan(
          source,
          0,
          "",
          withFiles
              ? new TreeSet<>(NamespaceOps.regularFilesBelow(ns, txn, ROOT).keySet())
              : new TreeSet<>(),
          "");
    }
    String last = parts.get(parts.size() - 1);
    checkName(last);
    long parent = ns.resolve(txn, String.join("/", parts.subList(0, parts.size() - 1)));
    requireDir(ns.inode(txn, parent));
    long[] e = ns.entry(txn, parent, last);
    SortedSet<Long> below =
        e == null || !withFiles
            ? new TreeSet<>()
            : new TreeSet<>(NamespaceOps.regularFilesBelow(ns, txn, e[0]).keySet());
    return new RestorePlan(source, parent, last, below, String.join("/", parts));
  }

  private void requireWritable() throws FsException {
    Checks.requireWritable(config, dir);
  }
}
