package io.dedupfs.fs.cli;

import io.dedupfs.engine.StoreStats;
import java.util.Map;

/** Every administrative operation, by the name that travels over the control socket. */
final class Ops {
  private Ops() {}

  static Admin.Op get(String name) {
    Admin.Op op = switch (name) {
      case "stats" -> Ops::stats;
      default -> null;
    };
    if (op == null) {
      throw new Main.UsageException("unknown operation '" + name + "' (is the daemon older than this command?)");
    }
    return op;
  }

  private static int stats(Admin.Context ctx, Map<String, String> p, java.io.PrintWriter out) throws Exception {
    StoreStats s = ctx.store().stats();
    out.printf("store:      %s%n", ctx.store().directory());
    out.printf("on disk:    %,d bytes%n", s.storeBytes());
    out.printf("disk free:  %,d bytes%n", s.diskFreeBytes());
    out.printf("inodes:     %,d%n", s.inodes());
    out.printf("leaf size:  %,d bytes%n", s.leafSize());
    return 0;
  }
}
