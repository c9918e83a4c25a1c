package io.dedupfs.fs.cli;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(
    name = "stats",
    mixinStandardHelpOptions = true,
    description = {
      "Space figures of the datastore, or of files, directories or snapshots in it.",
      "",
      "logical: the files' sizes. stored: every distinct block they use, once (leaves without their trailing "
          + "zeros, and tree nodes). exclusive: what deleting them would free; shared: the rest of stored. "
          + "referenced: the data their files reference, holes excluded: each non-zero leaf's bytes up to its "
          + "last non-zero one, counted once per reference (a leaf in two files, or twice in one, counts twice; "
          + "bytes past a file's end are always zero, so a file's last leaf never counts beyond it).",
      "",
      "dedupe ratio: referenced / stored, as ZFS's dedupratio (bytes referenced over bytes allocated): "
          + "holes and zeros count on neither side, so it measures sharing only. Files that share nothing show "
          + "just under 1.00 (tree nodes are stored, not referenced); 1.00 when nothing is stored (an empty "
          + "store, a file of holes only). The whole datastore's figures include its snapshots, which share "
          + "their files' data: each snapshot of unchanged data adds about 1 to the ratio.",
      "",
      "compressed: the same blocks as stored, each at what it takes as stored (compressed blocks"
          + " compressed). compress ratio: stored / compressed, as ZFS's compressratio; referenced /"
          + " compressed is both ratios together. The whole datastore's figures also show its"
          + " compression (see set-compression)."
    })
final class StatsCommand implements Callable<Integer> {
  @Option(
      names = "--store",
      paramLabel = "STORE",
      description = "A store (mounted or not); PATHs are then relative to its root.")
  Path store;

  @Option(
      names = "--per-file",
      description =
          "A table of every file below the PATHs (logical, stored, exclusive, shared), then each PATH's total.")
  boolean perFile;

  @Mixin OutputOptions.Tables output = new OutputOptions.Tables();

  @Parameters(
      arity = "0..*",
      paramLabel = "PATH",
      description =
          "Files or directories inside one dedupfs mount (default: the current directory).")
  List<Path> paths;

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    List<Target> targets = new java.util.ArrayList<>();
    if (paths == null || paths.isEmpty()) {
      targets.add(Target.of(null, store));
    } else {
      for (Path p : paths) {
        Target t = Target.of(p, store);
        if (!targets.isEmpty() && !t.store().equals(targets.get(0).store())) {
          throw new Main.UsageException(p + " is not in the same datastore as " + paths.get(0));
        }
        targets.add(t);
      }
    }
    Map<String, String> params = new LinkedHashMap<>();
    params.put("path", targets.get(0).path()); // what a daemon without "paths" reads
    params.put("paths", Integer.toString(targets.size()));
    for (int i = 0; i < targets.size(); i++) {
      params.put("path." + i, targets.get(i).path());
    }
    if (perFile) {
      params.put("perfile", "true");
    }
    return Admin.execute(
        targets.get(0).store(), "stats", output.addTo(params), true, spec.commandLine().getOut());
  }
}
