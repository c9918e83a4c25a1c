package io.dedupfs.fs.cli;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Shows the progress of scrub, fsck and compact as the daemon (or the operation run here) reports
 * it: phase, units done, units in all. Three ways:
 *
 * <ul>
 *   <li>{@link Mode#TERMINAL}: one line, redrawn in place, with percent, rate and ETA; cleared
 *       before any other output and at the end;
 *   <li>{@link Mode#LINES} (a pipe or file): plain lines, the first and last of each phase and
 *       others at most once a second;
 *   <li>{@link Mode#JSON}: the same lines as JSON objects, {@code {"type":"progress",...}}.
 * </ul>
 *
 * Rates are over the phase so far. With {@code exact}, numbers are plain digits without units.
 */
final class ProgressRenderer {
  enum Mode {
    TERMINAL,
    LINES,
    JSON
  }

  static final long LINE_INTERVAL_NS = 1_000_000_000L;
  static final long REDRAW_INTERVAL_NS = 100_000_000L;

  private final PrintWriter out;
  private final Mode mode;
  private final boolean exact;
  private final LongSupplier clock;

  private String phase;
  private long phaseStart;
  private long lastShown;
  private long lastDone = -1;
  private boolean lineOnScreen;
  private int drawnWidth;

  ProgressRenderer(PrintWriter out, Mode mode, boolean exact, LongSupplier clock) {
    this.out = out;
    this.mode = mode;
    this.exact = exact;
    this.clock = clock;
  }

  /** For a command's output: a terminal when there is one, else plain lines; JSON with --json. */
  static ProgressRenderer forOutput(PrintWriter out, boolean json, boolean exact) {
    Mode mode = json ? Mode.JSON : isTerminal() ? Mode.TERMINAL : Mode.LINES;
    return new ProgressRenderer(out, mode, exact, System::nanoTime);
  }

  /**
   * Whether stdout is a terminal that can redraw a line (Java 17: a console means stdin and stdout
   * are ttys).
   */
  static boolean isTerminal() {
    return System.console() != null && !"dumb".equals(System.getenv("TERM"));
  }

  Mode mode() {
    return mode;
  }

  /**
   * One report: {@code done} of {@code total} {@code unit}s ("bytes", "blocks"...; "" for a step)
   * of {@code phase}.
   */
  synchronized void update(String phase, String unit, long done, long total) {
    long now = clock.getAsLong();
    boolean newPhase = !phase.equals(this.phase);
    if (newPhase) {
      this.phase = phase;
      phaseStart = now;
      lastDone = -1;
    }
    boolean end = total > 0 && done >= total;
    long interval = mode == Mode.TERMINAL ? REDRAW_INTERVAL_NS : LINE_INTERVAL_NS;
    if (!newPhase && (done == lastDone || (!end && now - lastShown < interval))) {
      return;
    }
    lastShown = now;
    lastDone = done;
    switch (mode) {
      case JSON -> {
        out.println(
            new JsonWriter()
                .beginObject()
                .field("type", "progress")
                .field("phase", phase)
                .field("unit", unit)
                .field("done", done)
                .field("total", total)
                .endObject());
        out.flush();
      }
      case LINES -> {
        out.println(text(phase, unit, done, total, now - phaseStart));
        out.flush();
      }
      case TERMINAL -> draw(text(phase, unit, done, total, now - phaseStart));
    }
  }

  /**
   * Clears the progress line, if one is on the screen, so that other output starts on a clean line.
   */
  synchronized void clear() {
    if (lineOnScreen) {
      out.print("\r" + " ".repeat(drawnWidth) + "\r");
      out.flush();
      lineOnScreen = false;
      drawnWidth = 0;
    }
  }

  private void draw(String line) {
    int pad = Math.max(0, drawnWidth - line.length());
    out.print("\r" + line + " ".repeat(pad));
    if (pad > 0) {
      out.print("\r" + line);
    }
    out.flush();
    lineOnScreen = true;
    drawnWidth = line.length();
  }

  /**
   * "copy: 120.0 MiB/266.0 MiB (45%), 80.0 MiB/s, ETA 2s"; "scrub: 12,345/27,000 blocks (45%),
   * 1,234 blocks/s, ETA 12s"; a step ("swap", 0 of 1) by its name alone.
   */
  String text(String phase, String unit, long done, long total, long elapsedNs) {
    if (unit.isEmpty() && total <= 1) {
      return phase;
    }
    StringBuilder b = new StringBuilder(phase).append(": ");
    if (total > 0) {
      b.append(amount(done, unit, false)).append('/').append(amount(total, unit, true));
      b.append(String.format(Locale.ROOT, " (%d%%)", Math.min(100, done * 100 / total)));
    } else {
      b.append(amount(done, unit, true));
    }
    if (elapsedNs >= 500_000_000L && done > 0) {
      double rate = done / (elapsedNs / 1e9);
      b.append(", ").append(rate(rate, unit));
      if (total > done) {
        b.append(", ETA ").append(duration((long) Math.ceil((total - done) / rate)));
      }
    }
    return b.toString();
  }

  /**
   * An amount of {@code unit}: bytes in binary units, others with thousands separators; exact:
   * digits.
   */
  private String amount(long n, String unit, boolean withUnit) {
    if (exact) {
      return Long.toString(n);
    }
    if (unit.equals("bytes")) {
      return Ops.shortBytes(n);
    }
    return String.format(Locale.ROOT, "%,d", n) + (withUnit && !unit.isEmpty() ? " " + unit : "");
  }

  private String rate(double perSecond, String unit) {
    if (exact) {
      return String.format(
          Locale.ROOT, "%d%s/s", Math.round(perSecond), unit.isEmpty() ? "" : " " + unit);
    }
    if (unit.equals("bytes")) {
      return Ops.shortBytes(Math.round(perSecond)) + "/s";
    }
    return String.format(
        Locale.ROOT, "%,d%s/s", Math.round(perSecond), unit.isEmpty() ? "" : " " + unit);
  }

  /** 7s, 3m05s, 2h04m. */
  static String duration(long seconds) {
    if (seconds < 60) {
      return seconds + "s";
    }
    if (seconds < 3600) {
      return String.format(Locale.ROOT, "%dm%02ds", seconds / 60, seconds % 60);
    }
    return String.format(Locale.ROOT, "%dh%02dm", seconds / 3600, seconds / 60 % 60);
  }
}
