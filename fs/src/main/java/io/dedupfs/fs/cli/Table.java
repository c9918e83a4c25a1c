package io.dedupfs.fs.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * A table for people (a header, columns padded to their widest cell, figures right-aligned) or,
 * scripted ({@code -H}, as {@code zfs list -H}), without header, one tab between cells.
 */
final class Table {
  private final List<String> header;
  private final boolean[] right;
  private final List<List<String>> rows = new ArrayList<>();

  /** Columns by name; a name starting with '>' is right-aligned (the '>' is not shown). */
  Table(String... columns) {
    header = new ArrayList<>();
    right = new boolean[columns.length];
    for (int i = 0; i < columns.length; i++) {
      right[i] = columns[i].startsWith(">");
      header.add(right[i] ? columns[i].substring(1) : columns[i]);
    }
  }

  Table row(String... cells) {
    if (cells.length != header.size()) {
      throw new IllegalArgumentException(cells.length + " cells for " + header.size() + " columns");
    }
    rows.add(List.of(cells));
    return this;
  }

  void print(PrintWriter out, boolean scripted) {
    if (scripted) {
      for (List<String> r : rows) {
        out.println(String.join("\t", r));
      }
      return;
    }
    int[] width = new int[header.size()];
    List<List<String>> all = new ArrayList<>();
    all.add(header);
    all.addAll(rows);
    for (List<String> r : all) {
      for (int i = 0; i < width.length; i++) {
        width[i] = Math.max(width[i], r.get(i).length());
      }
    }
    for (List<String> r : all) {
      StringBuilder b = new StringBuilder();
      for (int i = 0; i < width.length; i++) {
        String c = r.get(i);
        boolean last = i == width.length - 1;
        String pad = " ".repeat(width[i] - c.length());
        b.append(right[i] ? pad + c : last ? c : c + pad);
        if (!last) {
          b.append("  ");
        }
      }
      out.println(b);
    }
  }
}
