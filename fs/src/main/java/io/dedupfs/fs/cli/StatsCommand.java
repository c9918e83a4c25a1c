package io.dedupfs.fs.cli;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "stats", mixinStandardHelpOptions = true,
    description = "Space figures of the datastore, or of one file, directory or snapshot in it.")
final class StatsCommand implements Callable<Integer> {
  @Option(names = "--store", paramLabel = "STORE", description = "A store (mounted or not); PATH is then relative to its root.")
  Path store;

  @Parameters(arity = "0..1", paramLabel = "PATH", description = "A file or directory inside a dedupfs mount (default: the current directory).")
  Path path;

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    Target t = Target.of(path, store);
    return Admin.execute(t.store(), "stats", Map.of("path", t.path()), true, spec.commandLine().getOut());
  }
}
