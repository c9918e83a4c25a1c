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

@Command(name = "stats", mixinStandardHelpOptions = true,
    description = "Space figures of the datastore, or of files, directories or snapshots in it.")
final class StatsCommand implements Callable<Integer> {
  @Option(names = "--store", paramLabel = "STORE", description = "A store (mounted or not); PATHs are then relative to its root.")
  Path store;

  @Option(names = "--per-file", description = "A table of every file below the PATHs (logical, stored, exclusive, shared), then each PATH's total.")
  boolean perFile;

  @Mixin
  OutputOptions.Tables output = new OutputOptions.Tables();

  @Parameters(arity = "0..*", paramLabel = "PATH", description = "Files or directories inside one dedupfs mount (default: the current directory).")
  List<Path> paths;

  @Spec
  CommandSpec spec;

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
    return Admin.execute(targets.get(0).store(), "stats", output.addTo(params), true, spec.commandLine().getOut());
  }
}
