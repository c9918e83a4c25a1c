package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the clone, snapshot and space tests share: the python helpers of {@code dedupfs_tools.py}
 * (unique data, sparse images, extent-aware digests, the clone ioctl, a brute-force recount of the
 * space figures), {@code dedupfs stats} parsed, the store file's size, and medians of timed runs.
 */
final class StoreTools {
  private StoreTools() {}

  private static Path script;

  /** dedupfs_tools.py, copied out of the test resources once per JVM. */
  static synchronized Path script() {
    if (script == null) {
      try (InputStream in = StoreTools.class.getResourceAsStream("dedupfs_tools.py")) {
        Path p = Files.createTempFile("dedupfs_tools-", ".py");
        p.toFile().deleteOnExit();
        Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
        script = p;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return script;
  }

  /**
   * Runs {@code dedupfs_tools.py ARGS}; fails with its output unless it exits 0; returns stdout.
   */
  static String py(Object... args) {
    List<String> cmd = new ArrayList<>(List.of(Tools.python3(), script().toString()));
    for (Object a : args) {
      cmd.add(a.toString());
    }
    Shell.Result r = Shell.run(Duration.ofMinutes(8), Map.of(), cmd);
    if (!r.ok()) {
      throw new AssertionError("dedupfs_tools.py failed:\n" + r.describe());
    }
    return r.stdout();
  }

  /**
   * Writes {@code size} bytes that no other (file offset, seed) writes, fsyncs; returns their
   * SHA-256.
   */
  static String unique(Path file, long size, long seed) {
    return uniqueWithDigest(file, size, seed)[0];
  }

  /** {@link #unique}: the SHA-256, and what {@link #digest} must give for the file. */
  static String[] uniqueWithDigest(Path file, long size, long seed) {
    String out = py("unique", file, size, seed).strip();
    int sp = out.indexOf(' ');
    return new String[] {out.substring(0, sp), out.substring(sp + 1)};
  }

  /** "SIZE EXTENTS SHA256" over the data extents; holes probed to read as zeros. */
  static String digest(Path file) {
    return py("digest", file).strip();
  }

  /** The clone ioctl from python: "ok" or "errno NAME MESSAGE". */
  static String ioctlClone(
      Path src, Path dst, long srcOffset, long length, long dstOffset, boolean create) {
    return py("clone", src, dst, srcOffset, length, dstOffset, create ? "create" : "").strip();
  }

  // ---- space figures -------------------------------------------------------------------------

  /**
   * The figures of {@code dedupfs stats}, in bytes; {@code storeOnDisk} only for the whole store
   * (else -1).
   */
  record Figures(
      long files,
      long logical,
      long stored,
      long exclusive,
      long shared,
      long referenced,
      long storeOnDisk) {
    /** Without storeOnDisk, to compare with a recount. */
    Figures figuresOnly() {
      return new Figures(files, logical, stored, exclusive, shared, referenced, -1);
    }

    /** The dedupe ratio these figures give: referenced / stored, 1 when nothing is stored. */
    double ratio() {
      return stored == 0 ? 1 : (double) referenced / stored;
    }
  }

  private static final Pattern LINE = Pattern.compile("^([a-z ]+):\\s+(.*)$", Pattern.MULTILINE);

  /** {@code dedupfs stats PATH}, parsed. */
  static Figures stats(Path path) {
    Shell.Result r = Mounted.cli("stats", path.toString());
    assertThat(r.exitCode()).as("dedupfs stats %s\n%s", path, r).isZero();
    Map<String, String> f = new LinkedHashMap<>();
    Matcher m = LINE.matcher(r.stdout());
    while (m.find()) {
      f.put(m.group(1), m.group(2).strip());
    }
    try {
      return new Figures(
          Long.parseLong(f.get("files").replace(",", "")),
          bytes(f.get("logical")),
          bytes(f.get("stored")),
          bytes(f.get("exclusive")),
          bytes(f.get("shared")),
          bytes(f.get("referenced")),
          f.containsKey("store on disk") ? bytes(f.get("store on disk")) : -1);
    } catch (RuntimeException e) {
      throw new AssertionError("cannot parse `dedupfs stats " + path + "`:\n" + r, e);
    }
  }

  /** "0 B", "812 B" or "1.2 MiB (1,234,567 bytes)": the exact count. */
  static long bytes(String figure) {
    Matcher exact = Pattern.compile("\\(([0-9,]+) bytes\\)").matcher(figure);
    if (exact.find()) {
      return Long.parseLong(exact.group(1).replace(",", ""));
    }
    Matcher small = Pattern.compile("^([0-9]+) B\\b").matcher(figure);
    if (small.find()) {
      return Long.parseLong(small.group(1));
    }
    throw new IllegalArgumentException("not a byte figure: " + figure);
  }

  /**
   * The whole store's stored bytes (every distinct block once), from the mountpoint's
   * user.dedupfs.stored.
   */
  static long storedBytes(Path mnt) {
    return xattr(mnt, "stored");
  }

  /**
   * logical, stored, exclusive, shared and referenced from the user.dedupfs.* attributes ({@code
   * files} and storeOnDisk -1).
   */
  static Figures xattrFigures(Path p) {
    return new Figures(
        -1,
        xattr(p, "logical"),
        xattr(p, "stored"),
        xattr(p, "exclusive"),
        xattr(p, "shared"),
        xattr(p, "referenced"),
        -1);
  }

  /** A computed figure: user.dedupfs.NAME of {@code p} (not listed, readable by name). */
  static long xattr(Path p, String name) {
    return Long.parseLong(xattrText(p, name));
  }

  /** user.dedupfs.NAME of {@code p} as text (the ratio: "2.000"). */
  static String xattrText(Path p, String name) {
    try {
      var view =
          Files.getFileAttributeView(p, java.nio.file.attribute.UserDefinedFileAttributeView.class);
      java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(64);
      view.read("dedupfs." + name, buf);
      return new String(buf.array(), 0, buf.position(), java.nio.charset.StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The size of STORE/data.mdb. */
  static long dataMdb(Path store) {
    try {
      return Files.size(store.resolve("data.mdb"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The brute-force recount: "" (the whole store) and each path, with leaf-level parts. */
  record Recount(
      Figures figures,
      long leafStored,
      long leafExclusive,
      long nodeStored,
      long leaves,
      long nodes) {}

  @SuppressWarnings("unchecked")
  static Map<String, Recount> recount(Path mnt, int leafSize, String... paths) {
    List<Object> args = new ArrayList<>(List.of("recount", mnt, leafSize));
    args.addAll(Arrays.asList(paths));
    String out = py(args.toArray());
    Map<String, Object> json = (Map<String, Object>) Json.parse(out);
    Map<String, Recount> result = new LinkedHashMap<>();
    for (var e : json.entrySet()) {
      Object v = e.getValue();
      result.put(
          e.getKey(),
          new Recount(
              new Figures(
                  Json.longAt(v, "files"),
                  Json.longAt(v, "logical"),
                  Json.longAt(v, "stored"),
                  Json.longAt(v, "exclusive"),
                  Json.longAt(v, "shared"),
                  Json.longAt(v, "referenced"),
                  -1),
              Json.longAt(v, "leaf_stored"),
              Json.longAt(v, "leaf_exclusive"),
              Json.longAt(v, "node_stored"),
              Json.longAt(v, "leaves"),
              Json.longAt(v, "nodes")));
    }
    return result;
  }

  /**
   * qemu-io on a raw image with the commands; fails unless every read and write completed and
   * verified.
   */
  static void qemuIo(Path image, String cache, List<String> commands) {
    List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw", "-t", cache));
    for (String c : commands) {
      cmd.add("-c");
      cmd.add(c);
    }
    cmd.add(image.toString());
    Shell.Result r = Shell.run(Duration.ofMinutes(5), Map.of(), cmd);
    String out = r.stdout() + r.stderr();
    assertThat(r.exitCode()).as("qemu-io exit code\n%s", r.describe()).isZero();
    assertThat(out)
        .as("qemu-io output")
        .doesNotContain("verification failed")
        .doesNotContainIgnoringCase("error")
        .doesNotContain("failed");
    long done =
        Pattern.compile("^(read|wrote) \\d+/\\d+ bytes", Pattern.MULTILINE)
            .matcher(out)
            .results()
            .count();
    long expected =
        commands.stream().filter(c -> c.startsWith("read") || c.startsWith("write")).count();
    assertThat(done).as("completed qemu-io requests\n%s", r.describe()).isEqualTo(expected);
  }

  // ---- timing ----------------------------------------------------------------------------------

  @FunctionalInterface
  interface Timed {
    void run(int i) throws Exception;
  }

  /** Median wall time, in seconds, of {@code runs} runs of {@code body} (given the run's index). */
  static double medianSeconds(int runs, Timed body) {
    double[] t = new double[runs];
    for (int i = 0; i < runs; i++) {
      long start = System.nanoTime();
      try {
        body.run(i);
      } catch (Exception e) {
        throw new AssertionError(e);
      }
      t[i] = (System.nanoTime() - start) / 1e9;
    }
    Arrays.sort(t);
    return t[runs / 2];
  }
}
