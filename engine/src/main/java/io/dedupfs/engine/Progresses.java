package io.dedupfs.engine;

import java.util.function.Consumer;

/** Progress reporting for long operations. */
final class Progresses {
  private static final long INTERVAL_NS = 200_000_000L;

  private Progresses() {}

  /**
   * Passes on the first report of each phase, every report of a phase's end ({@code done >= total}:
   * each phase ends with one), and others at most five times a second. Null: reports go nowhere.
   */
  static Consumer<Progress> throttled(Consumer<Progress> to) {
    if (to == null) {
      return p -> {};
    }
    return new Consumer<>() {
      private String phase;
      private long last;

      @Override
      public void accept(Progress p) {
        long now = System.nanoTime();
        if (!p.phase().equals(phase) || p.done() >= p.total() || now - last >= INTERVAL_NS) {
          phase = p.phase();
          last = now;
          to.accept(p);
        }
      }
    };
  }
}
