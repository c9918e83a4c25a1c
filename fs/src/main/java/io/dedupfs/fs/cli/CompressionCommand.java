package io.dedupfs.fs.cli;

import io.dedupfs.engine.Compression;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dedupfs set-compression}: how the blocks a store stores from now on are compressed. */
@Command(
    name = "set-compression",
    mixinStandardHelpOptions = true,
    description = {
      "Compress the blocks the datastore stores from now on with COMPRESSION: none, lz4 or"
          + " zstd[:LEVEL] (LEVEL 1 to 19, default 3). Blocks already stored keep their form, and"
          + " every form stays readable. Mounted or not; the setting is kept in the store.",
      "A leaf is kept compressed only when that saves at least one page (4 KiB) of the store:"
          + " incompressible data is stored raw, and leaves of 4 KiB are never compressed."
          + " `dedupfs stats` shows the setting and the compress ratio."
    })
final class CompressionCommand implements Callable<Integer> {
  @Parameters(
      index = "0",
      paramLabel = "COMPRESSION",
      converter = Compressions.class,
      description = "none, lz4 or zstd[:LEVEL].")
  Compression compression;

  @Parameters(
      index = "1",
      arity = "0..1",
      paramLabel = "MOUNTPOINT",
      description = "Any path in the mount (default: the current directory).")
  Path path;

  @Option(names = "--store", paramLabel = "STORE", description = "A store (mounted or not).")
  Path store;

  @picocli.CommandLine.Mixin OutputOptions output = new OutputOptions();

  @Spec CommandSpec spec;

  @Override
  public Integer call() throws Exception {
    Target t = Target.of(path, store);
    Map<String, String> params = output.addTo(new LinkedHashMap<>());
    params.put("compression", compression.toString());
    return Admin.execute(t.store(), "set-compression", params, false, spec.commandLine().getOut());
  }

  /** Reads a compression setting for picocli, with the engine's message when it is wrong. */
  static final class Compressions implements CommandLine.ITypeConverter<Compression> {
    @Override
    public Compression convert(String value) {
      try {
        return Compression.parse(value);
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }
}
