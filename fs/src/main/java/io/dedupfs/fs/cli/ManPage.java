package io.dedupfs.fs.cli;

import java.io.PrintWriter;
import java.util.Map;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code dedupfs man}: the manual page dedupfs(1) in roff, made from the same command definitions
 * as {@code --help}, so that the two never disagree. The set-up installs it ({@code
 * mount-scripts/install.sh}); {@code dedupfs man | man -l -} shows it without installing.
 */
@Command(name = "man", hidden = true, description = "Print the manual page dedupfs(1) (roff).")
final class ManPage implements Runnable {
  @Spec CommandSpec spec;

  @Override
  public void run() {
    CommandSpec top = spec.parent();
    PrintWriter out = spec.commandLine().getOut();
    out.print(render(top));
    out.flush();
  }

  static String render(CommandSpec top) {
    StringBuilder b = new StringBuilder();
    String version = String.join(" ", top.version()).lines().findFirst().orElse("dedupfs");
    // no date: the page of one build is always the same bytes (install.sh replaces only what
    // changed)
    b.append(".TH DEDUPFS 1 \"\" \"").append(escape(version)).append("\" \"User Commands\"\n");
    b.append(".SH NAME\n")
        .append("dedupfs \\- ")
        .append(escape(String.join(" ", top.usageMessage().description())))
        .append('\n');
    b.append(".SH SYNOPSIS\n.B dedupfs\n.I COMMAND\n[\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n");
    b.append(".SH DESCRIPTION\n")
        .append(
            "Every file is a Merkle tree of content-addressed blocks in one deduplicated LMDB store: ")
        .append("identical data is stored once, and copying or cloning a file stores no data. ")
        .append("The commands below create, mount and look after such stores.\n");
    b.append(".SH COMMANDS\n");
    commands(top, b);
    b.append(".SH EXIT STATUS\n0: done; 1: failed (the reason is one line on standard error); ")
        .append("2: a usage mistake.\n");
    b.append(".SH FILES\n.TP\n.I /var/lib/dedupfs/store\nthe default store\n")
        .append(".TP\n.I /var/lib/dedupfs/mnt\nthe default mountpoint\n")
        .append(".TP\n.I /var/log/dedupfs/\nthe daemons' logs\n");
    b.append(".SH SEE ALSO\n.BR mount (8),\n.BR fstab (5),\n.BR qemu-img (1),\n.BR virsh (1)\n");
    return b.toString();
  }

  /** Each visible command's usage, as --help prints it, under its whole name; subcommands after. */
  private static void commands(CommandSpec parent, StringBuilder b) {
    for (Map.Entry<String, CommandLine> e : parent.subcommands().entrySet()) {
      CommandSpec c = e.getValue().getCommandSpec();
      if (c.usageMessage().hidden() || !e.getKey().equals(c.name())) {
        continue; // hidden, or an alias listed under its own name
      }
      b.append(".SS \"").append(escape(c.qualifiedName())).append("\"\n.nf\n");
      String usage = e.getValue().getUsageMessage(CommandLine.Help.Ansi.OFF);
      usage.lines().forEach(line -> b.append(escapeLine(line)).append('\n'));
      b.append(".fi\n");
      commands(c, b);
    }
  }

  /** Text for roff: backslashes doubled, hyphens that are minus signs marked as such. */
  static String escape(String s) {
    return s.replace("\\", "\\e").replace("-", "\\-");
  }

  /** A line inside .nf: escaped, and one that starts with a control character kept as text. */
  private static String escapeLine(String line) {
    String e = escape(line);
    return e.startsWith(".") || e.startsWith("'") ? "\\&" + e : e;
  }
}
