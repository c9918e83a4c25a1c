package io.dedupfs.fs.cli;

import io.dedupfs.engine.BlockPool;
import io.dedupfs.rados.RadosPool;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --ceph-conf} and {@code --ceph-id}: how a command reaches a RADOS pool. */
final class CephOptions {
  static final String DEFAULT_CONF = "/etc/ceph/ceph.conf";

  @Option(
      names = "--ceph-conf",
      paramLabel = "FILE",
      description =
          "The Ceph configuration (it names the keyring) (default: " + DEFAULT_CONF + ").")
  Path conf;

  @Option(
      names = "--ceph-id",
      paramLabel = "NAME",
      description = "The Ceph client's name, without client. (default: admin).")
  String id;

  /** Whether either option was given. */
  boolean given() {
    return conf != null || id != null;
  }

  /**
   * Pool {@code name} ({@code rados:POOL}, as {@code what} gave it) reached with these options,
   * checked.
   */
  BlockPool.Location location(String name, String what) {
    if (!name.startsWith(RadosPool.SCHEME) || name.length() == RadosPool.SCHEME.length()) {
      throw new Main.UsageException(what + " takes rados:POOL, not " + name);
    }
    Path file = (conf == null ? Path.of(DEFAULT_CONF) : conf).toAbsolutePath();
    if (!Files.isReadable(file)) {
      throw new Main.UsageException("cannot read the Ceph configuration " + file);
    }
    String client = id == null ? "admin" : id;
    if (client.isEmpty() || client.startsWith("client.")) {
      throw new Main.UsageException("--ceph-id takes the name without client., not " + client);
    }
    return new BlockPool.Location(name, file.toString(), client);
  }
}
