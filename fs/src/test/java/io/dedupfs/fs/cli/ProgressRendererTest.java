package io.dedupfs.fs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

class ProgressRendererTest {
  private static final long S = 1_000_000_000L;

  private final StringWriter text = new StringWriter();
  private long now = 1000 * S;

  private ProgressRenderer renderer(ProgressRenderer.Mode mode, boolean exact) {
    return new ProgressRenderer(new PrintWriter(text), mode, exact, () -> now);
  }

  @Test
  void linesInAPipeAtMostOnceASecondWithRateAndEta() {
    ProgressRenderer r = renderer(ProgressRenderer.Mode.LINES, false);
    r.update("scrub", "blocks", 0, 10_000);
    now += S / 5;
    r.update("scrub", "blocks", 500, 10_000); // within the second: not shown
    now += 2 * S - S / 5;
    r.update("scrub", "blocks", 2_000, 10_000); // 1,000 blocks/s, 8,000 left
    now += S / 2;
    r.update("scrub", "blocks", 10_000, 10_000); // the end of a phase is always shown
    r.update("locate", "files", 0, 3);
    assertThat(text.toString().lines())
        .containsExactly(
            "scrub: 0/10,000 blocks (0%)",
            "scrub: 2,000/10,000 blocks (20%), 1,000 blocks/s, ETA 8s",
            "scrub: 10,000/10,000 blocks (100%), 4,000 blocks/s",
            "locate: 0/3 files (0%)");
  }

  @Test
  void bytesInBinaryUnitsOrExact() {
    ProgressRenderer r = renderer(ProgressRenderer.Mode.LINES, false);
    assertThat(r.text("copy", "bytes", 64L << 20, 256L << 20, 2 * S))
        .isEqualTo("copy: 64.0 MiB/256.0 MiB (25%), 32.0 MiB/s, ETA 6s");
    assertThat(
            renderer(ProgressRenderer.Mode.LINES, true)
                .text("copy", "bytes", 64L << 20, 256L << 20, 2 * S))
        .isEqualTo("copy: 67108864/268435456 (25%), 33554432 bytes/s, ETA 6s");
    assertThat(r.text("swap", "", 0, 1, 0)).isEqualTo("swap");
    assertThat(r.text("count", "blocks", 1234, 0, 0)).isEqualTo("count: 1,234 blocks");
  }

  @Test
  void etaInMinutesAndHours() {
    assertThat(ProgressRenderer.duration(59)).isEqualTo("59s");
    assertThat(ProgressRenderer.duration(185)).isEqualTo("3m05s");
    assertThat(ProgressRenderer.duration(7440)).isEqualTo("2h04m");
    ProgressRenderer r = renderer(ProgressRenderer.Mode.LINES, false);
    assertThat(r.text("blocks", "blocks", 100, 100_000, 10 * S)).endsWith("10 blocks/s, ETA 2h46m");
  }

  @Test
  void aTerminalGetsOneLineRedrawnAndCleared() {
    ProgressRenderer r = renderer(ProgressRenderer.Mode.TERMINAL, false);
    r.update("scrub", "blocks", 0, 100);
    now += S;
    r.update("scrub", "blocks", 50, 100);
    now += S;
    r.update("scrub", "blocks", 100, 100);
    r.clear();
    String s = text.toString();
    assertThat(s).doesNotContain("\n");
    assertThat(s)
        .contains(
            "\rscrub: 0/100 blocks (0%)",
            "\rscrub: 50/100 blocks (50%), 50 blocks/s, ETA 1s",
            "\rscrub: 100/100 blocks (100%), 50 blocks/s");
    String cleared = s.substring(s.lastIndexOf("blocks/s") + "blocks/s".length());
    assertThat(cleared).matches("\r *\r");
    text.getBuffer().setLength(0);
    r.clear();
    assertThat(text.toString()).as("nothing to clear").isEmpty();
  }

  @Test
  void aShorterLineOverwritesTheRestOfALongerOne() {
    ProgressRenderer r = renderer(ProgressRenderer.Mode.TERMINAL, false);
    r.update("scrub", "blocks", 10, 100);
    r.update("swap", "", 0, 1);
    String s = text.toString();
    String last = s.substring(s.indexOf("\rswap"));
    assertThat(last)
        .isEqualTo("\rswap" + " ".repeat("scrub: 10/100 blocks (10%)".length() - 4) + "\rswap");
  }

  @Test
  void jsonObjectsOnePerLine() {
    ProgressRenderer r = renderer(ProgressRenderer.Mode.JSON, false);
    r.update("copy", "bytes", 0, 4096);
    now += 2 * S;
    r.update("copy", "bytes", 4096, 4096);
    assertThat(text.toString().lines())
        .containsExactly(
            "{\"type\":\"progress\",\"phase\":\"copy\",\"unit\":\"bytes\",\"done\":0,\"total\":4096}",
            "{\"type\":\"progress\",\"phase\":\"copy\",\"unit\":\"bytes\",\"done\":4096,\"total\":4096}");
  }
}
