package io.dedupfs.fs.cli;

import java.util.Map;
import picocli.CommandLine.Option;

/**
 * How a command prints its report: for people (the default), as JSON (--json), with exact figures
 * (-p).
 */
class OutputOptions {
  @Option(
      names = "--json",
      description =
          "Print JSON: one object per line; the last is the report (see the README, JSON output).")
  boolean json;

  @Option(
      names = "-p",
      description =
          "Exact figures: bytes and counts as plain integers, without units or separators.")
  boolean exact;

  /** Adds the options to an operation's parameters. */
  Map<String, String> addTo(Map<String, String> params) {
    if (json) {
      params.put("format", "json");
    }
    if (exact) {
      params.put("exact", "true");
    }
    return params;
  }

  /**
   * How progress is shown: a redrawn line on a terminal, plain lines in a pipe, JSON objects with
   * --json.
   */
  ProgressRenderer progress(java.io.PrintWriter out) {
    return ProgressRenderer.forOutput(out, json, exact);
  }

  /** ...and for tables: -H, without header, tab-separated (as zfs list -H). */
  static class Tables extends OutputOptions {
    @Option(names = "-H", description = "Scripted tables: no header, one tab between columns.")
    boolean scripted;

    @Override
    Map<String, String> addTo(Map<String, String> params) {
      super.addTo(params);
      if (scripted) {
        params.put("noheader", "true");
      }
      return params;
    }
  }
}
