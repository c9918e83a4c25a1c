package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.engine.Compression;
import io.dedupfs.engine.Datastore;
import io.dedupfs.engine.DatastoreConfig;
import io.dedupfs.rados.RadosPool;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
    name = "create",
    mixinStandardHelpOptions = true,
    description = "Create an empty datastore in STORE (a missing or empty directory).")
final class CreateCommand implements Callable<Integer> {
  @Option(
      names = "--leaf-size",
      paramLabel = "SIZE",
      converter = Sizes.class,
      description =
          "Bytes per data block, a power of two from 4K to 64K (default: ${DEFAULT-VALUE}).")
  int leafSize = DatastoreConfig.DEFAULT_LEAF_SIZE;

  @Option(
      names = "--compression",
      paramLabel = "COMPRESSION",
      converter = CompressionCommand.Compressions.class,
      description =
          "How blocks are compressed: none, lz4 or zstd[:LEVEL] (LEVEL 1 to 19, default 3);"
              + " changed later by `dedupfs set-compression` (default: ${DEFAULT-VALUE}).")
  Compression compression = Compression.DEFAULT;

  @Option(
      names = "--blocks",
      paramLabel = "rados:POOL",
      description =
          "Keep the blocks in the Ceph RADOS pool POOL, shared with the other stores on it (the"
              + " namespace and the counts stay in STORE; leaves compressed as --compression says);"
              + " default: in STORE.")
  String blocks;

  @Option(
      names = "--ceph-conf",
      paramLabel = "FILE",
      description =
          "With --blocks: the Ceph configuration (it names the keyring) (default: "
              + DEFAULT_CEPH_CONF
              + ").")
  Path cephConf;

  @Option(
      names = "--ceph-id",
      paramLabel = "NAME",
      description = "With --blocks: the Ceph client's name, without client. (default: admin).")
  String cephId;

  static final String DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf";

  @Parameters(paramLabel = "STORE", description = "Directory for the store.")
  Path store;

  @Override
  public Integer call() throws IOException {
    StorePaths.requireCreatable(store, leafSize);
    DatastoreConfig config =
        StorePaths.config().withLeafSize(leafSize).withCompression(compression);
    BlockPool.Location pool = pool();
    if (pool != null) {
      config = config.withBlocksIn(pool);
    }
    try (Datastore ds = Datastore.open(store, config)) {
      System.out.println(
          "dedupfs: created "
              + store.toAbsolutePath()
              + " (leaf size "
              + ds.leafSize()
              + " bytes, compression "
              + ds.compression()
              + (pool == null ? "" : ", blocks in " + pool)
              + ")");
    }
    return 0;
  }

  /** The pool --blocks names, checked; null without --blocks. */
  private BlockPool.Location pool() {
    if (blocks == null) {
      if (cephConf != null || cephId != null) {
        throw new Main.UsageException("--ceph-conf and --ceph-id go with --blocks rados:POOL");
      }
      return null;
    }
    if (!blocks.startsWith(RadosPool.SCHEME) || blocks.length() == RadosPool.SCHEME.length()) {
      throw new Main.UsageException("--blocks takes rados:POOL, not " + blocks);
    }
    Path conf = (cephConf == null ? Path.of(DEFAULT_CEPH_CONF) : cephConf).toAbsolutePath();
    if (!Files.isReadable(conf)) {
      throw new Main.UsageException("cannot read the Ceph configuration " + conf);
    }
    String id = cephId == null ? "admin" : cephId;
    if (id.isEmpty() || id.startsWith("client.")) {
      throw new Main.UsageException("--ceph-id takes the name without client., not " + id);
    }
    return new BlockPool.Location(blocks, conf.toString(), id);
  }
}
