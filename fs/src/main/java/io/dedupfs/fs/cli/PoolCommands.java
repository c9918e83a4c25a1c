package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DestroyReport;
import io.dedupfs.engine.PoolStores;
import io.dedupfs.engine.Progress;
import io.dedupfs.rados.RadosPool;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs destroy} (a store and, in a pool, its references) and {@code dedupfs pool
 * stores|forget} (the stores of a pool, seen from the pool). They run in this process: destroy on a
 * store that is not mounted, the pool commands on the pool alone.
 */
final class PoolCommands {
  private PoolCommands() {}

  @Command(
      name = "destroy",
      mixinStandardHelpOptions = true,
      description = {
        "Delete a store that is not mounted, with its files. For a store whose blocks are in a"
            + " pool, first release every pool reference it records (blocks no other store holds"
            + " leave the pool) and take it off the pool's list of stores.",
        "Interrupted, it leaves a store that refuses to open: run it again to finish."
      })
  static final class Destroy implements Callable<Integer> {
    @Parameters(paramLabel = "STORE", description = "The store's directory (not mounted).")
    Path store;

    @Mixin OutputOptions output = new OutputOptions();

    @Spec CommandSpec spec;

    @Override
    public Integer call() throws IOException {
      PrintWriter out = spec.commandLine().getOut();
      ProgressRenderer shown = output.progress(out);
      DestroyReport r = Datastore.destroy(store, StorePaths.config(), progress(shown, "blocks"));
      shown.clear();
      String where = store.toAbsolutePath().toString();
      if (output.json) {
        out.println(
            new JsonWriter()
                .beginObject()
                .field("type", "destroy")
                .field("store", where)
                .field("pool", r.pool())
                .field("released", r.released())
                .endObject());
      } else if (r.pool().isEmpty()) {
        out.println("destroy: deleted " + where);
      } else {
        out.printf(
            "destroy: deleted %s; released %s references to blocks in %s (those no other store"
                + " held left the pool)%n",
            where, count(output, r.released()), r.pool());
      }
      return 0;
    }
  }

  @Command(
      name = "pool",
      mixinStandardHelpOptions = true,
      description = "The stores of a block pool, seen from the pool.",
      subcommands = {Stores.class, Forget.class})
  static final class Pool {}

  /** What both pool commands take: the pool and how to reach it. */
  abstract static class PoolWide implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "rados:POOL", description = "The pool.")
    String pool;

    @Mixin CephOptions ceph = new CephOptions();

    @Spec CommandSpec spec;

    BlockPool open() throws IOException {
      return StorePaths.config().pools().open(ceph.location(pool, "the pool argument"));
    }
  }

  @Command(
      name = "stores",
      mixinStandardHelpOptions = true,
      description = {
        "List the stores that hold references in the pool, with how many blocks each holds, and"
            + " the pool's list of stores (host, directory, last writable open). A store that"
            + " holds blocks and is not on the list is gone (or was last opened by a dedupfs"
            + " without the list): dedupfs pool forget releases its references.",
        "Asks the pool about every block, one round trip each."
      })
  static final class Stores extends PoolWide {
    @Mixin OutputOptions.Tables output = new OutputOptions.Tables();

    @Override
    public Integer call() throws IOException {
      PrintWriter out = spec.commandLine().getOut();
      ProgressRenderer shown = output.progress(out);
      List<PoolStores.Holder> holders;
      try (BlockPool p = open()) {
        holders = PoolStores.list(p, progress(shown, "blocks"));
      }
      shown.clear();
      if (output.json) {
        JsonWriter j =
            new JsonWriter()
                .beginObject()
                .field("type", "pool-stores")
                .field("pool", pool)
                .name("stores")
                .beginArray();
        for (PoolStores.Holder h : holders) {
          j.beginObject()
              .field("store", h.id())
              .field("blocks", h.blocks())
              .field("registered", h.registration() != null)
              .field("registration", h.registration() == null ? "" : h.registration())
              .endObject();
        }
        out.println(j.endArray().endObject());
        return 0;
      }
      Table t = new Table("STORE", ">BLOCKS", "ON THE LIST");
      for (PoolStores.Holder h : holders) {
        t.row(
            h.id(),
            count(output, h.blocks()),
            h.registration() == null ? "no: gone?" : h.registration());
      }
      t.print(out, output.scripted);
      return 0;
    }
  }

  @Command(
      name = "forget",
      mixinStandardHelpOptions = true,
      description = {
        "Release every reference a store that is gone holds in the pool (its directory lost, or"
            + " references it took and never recorded), and mark its entry on the pool's list"
            + " of stores as forgotten: the store, should it turn up, refuses to open. Never for"
            + " a live store: its blocks would leave the pool.",
        "Asks the pool about every block, one round trip each."
      })
  static final class Forget extends PoolWide {
    @Parameters(index = "1", paramLabel = "STOREID", description = "As dedupfs pool stores lists.")
    String id;

    @Option(
        names = "--force",
        description =
            "Forget a store on the pool's list too (its directory is lost, so destroy cannot)."
                + " A store mounted somewhere is refused even so: its entry on the list changes"
                + " every 10 s, and forget watches it for 21 s first.")
    boolean force;

    @Mixin OutputOptions output = new OutputOptions();

    @Override
    public Integer call() throws IOException {
      if (!RadosPool.isHolder(id)) {
        throw new Main.UsageException(
            "a store id is 1 to 64 letters, digits, '.', '_' or '-' (dedupfs pool stores lists"
                + " them), not "
                + id);
      }
      PrintWriter out = spec.commandLine().getOut();
      ProgressRenderer shown = output.progress(out);
      long released;
      try (BlockPool p = open()) {
        released =
            PoolStores.forget(
                p,
                id,
                force,
                w ->
                    shown.update(
                        w.phase(),
                        w.phase().equals(PoolStores.WATCH) ? "seconds" : "blocks",
                        w.done(),
                        w.total()));
      }
      shown.clear();
      if (output.json) {
        out.println(
            new JsonWriter()
                .beginObject()
                .field("type", "pool-forget")
                .field("pool", pool)
                .field("store", id)
                .field("released", released)
                .endObject());
      } else {
        out.printf(
            "pool forget: released %s references of store %s in %s%n",
            count(output, released), id, pool);
      }
      return 0;
    }
  }

  /** Progress of an operation in this process, shown by {@code shown}, counted in {@code unit}. */
  private static Consumer<Progress> progress(ProgressRenderer shown, String unit) {
    return p -> shown.update(p.phase(), unit, p.done(), p.total());
  }

  private static String count(OutputOptions output, long n) {
    return output.exact ? Long.toString(n) : String.format(Locale.ROOT, "%,d", n);
  }
}
