package io.dedupfs.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * A simulated power cut, for {@link CrashTest} and the mount's CrashIT: {@code powercut.c} (a
 * resource beside this class), preloaded into a process, journals the process's writes to a store,
 * which of them were made durable, and what it reported on its standard output; {@link Journal#cut}
 * then applies the journal up to any of its entries to a copy of the store as it was before the
 * process started, as a disk that lost power at that moment could hold it: every write made durable
 * before it, and of the others either none or a random choice of their 4 KiB pieces (written back
 * in any order, or not at all). The journal's format is described in powercut.c.
 */
public final class PowerCut {
  /** What a disk writes whole, at most: the unit of the random choice. */
  private static final int PIECE = 4096;

  private static final int HEADER = 32;

  private PowerCut() {}

  /** Compiles powercut.c in {@code dir}; returns the library for LD_PRELOAD. */
  public static Path build(Path dir) throws IOException, InterruptedException {
    Path src = dir.resolve("powercut.c");
    Path lib = dir.resolve("libpowercut.so");
    try (var in = PowerCut.class.getResourceAsStream("powercut.c")) {
      Files.copy(in, src);
    }
    Process gcc =
        new ProcessBuilder("gcc", "-shared", "-fPIC", "-O2", "-o", lib + "", src + "", "-ldl")
            .redirectErrorStream(true)
            .start();
    String out = new String(gcc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(gcc.waitFor(60, TimeUnit.SECONDS) && gcc.exitValue() == 0)
        .as("gcc builds powercut.c (scripts/deps.sh installs gcc): %s", out)
        .isTrue();
    return lib;
  }

  /**
   * The environment that has a process journal into {@code journal} its writes below {@code store},
   * and with {@code report} what it writes to its standard output, which must be a file.
   */
  public static Map<String, String> environment(Path lib, Path store, Path journal, boolean report)
      throws IOException {
    return Map.of(
        "LD_PRELOAD", lib.toString(),
        "POWERCUT_DIR", store.toRealPath().toString(),
        "POWERCUT_JOURNAL", journal.toString(),
        "POWERCUT_REPORT", report ? "1" : "0");
  }

  /** Copies directory {@code from} (files only) into a new directory {@code to}. */
  public static void copy(Path from, Path to) throws IOException {
    Files.createDirectories(to);
    try (var files = Files.list(from)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Files.copy(f, to.resolve(f.getFileName()));
      }
    }
  }

  /**
   * What {@link Journal#cut} did with the writes before the cut: those made durable (kept), and of
   * the others those it kept some pieces of ({@code partly}, all of them perhaps) and those it
   * lost.
   */
  public record Cut(int durable, int partly, int lost) {}

  /**
   * One entry: its type, file, number and argument (see powercut.c), and where its bytes are in the
   * journal file.
   */
  private record Entry(int type, int file, long seq, long arg, long length, long dataAt) {}

  /** A journal, read whole (its entries' headers; their bytes stay in the file). */
  public static final class Journal implements AutoCloseable {
    private final FileChannel ch;
    private final List<Entry> entries = new ArrayList<>();
    private final Map<Integer, String> names = new HashMap<>();

    /** The report's file number, or -1 before the child wrote one. */
    private int reportFile = -1;

    public Journal(Path file) throws IOException {
      ch = FileChannel.open(file, StandardOpenOption.READ);
      ByteBuffer h = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN);
      long size = ch.size();
      for (long at = 0; at + HEADER <= size; ) {
        readFully(h.clear(), at);
        Entry e =
            new Entry(
                h.getInt(0), h.getInt(4), h.getLong(8), h.getLong(16), h.getLong(24), at + HEADER);
        if (e.dataAt + e.length > size) {
          break; // cut off by the kill: the write it tells of had not returned
        }
        if (e.type == 'N') {
          String name = new String(bytes(e.dataAt, (int) e.length), StandardCharsets.UTF_8);
          names.put(e.file, name);
          if (name.isEmpty()) {
            reportFile = e.file;
          }
        } else if ("WDTS".indexOf(e.type) < 0) {
          throw new IOException("journal entry of type " + e.type + " at " + at);
        }
        entries.add(e);
        at = e.dataAt + e.length;
      }
    }

    /** Entries in the journal. */
    public int size() {
      return entries.size();
    }

    /** The index of the first entry of the report, or -1 when there is none. */
    public int firstReport() {
      for (int i = 0; i < entries.size(); i++) {
        if (entries.get(i).file == reportFile && entries.get(i).type == 'W') {
          return i;
        }
      }
      return -1;
    }

    /** What the child had written to its standard output before entry {@code upTo}. */
    public String report(int upTo) throws IOException {
      StringBuilder s = new StringBuilder();
      for (Entry e : entries.subList(0, upTo)) {
        if (e.file == reportFile && e.type == 'W') {
          s.append(new String(bytes(e.dataAt, (int) e.length), StandardCharsets.UTF_8));
        }
      }
      return s.toString();
    }

    /**
     * Applies the entries before {@code upTo} to {@code store}, a copy of the directory as the
     * child found it: every write made durable before {@code upTo}, and of the others none when
     * {@code lost} is null, else each 4 KiB piece with a chance of one half.
     */
    public Cut cut(int upTo, Path store, SplittableRandom lost) throws IOException {
      Map<Integer, Long> durableBelow = new HashMap<>();
      for (Entry e : entries.subList(0, upTo)) {
        if (e.type == 'S') {
          durableBelow.merge(e.file, e.arg, Math::max);
        }
      }
      int durable = 0;
      int partly = 0;
      int dropped = 0;
      Map<Integer, RandomAccessFile> open = new HashMap<>();
      try {
        for (Entry e : entries.subList(0, upTo)) {
          if (e.file == reportFile || (e.type != 'W' && e.type != 'D' && e.type != 'T')) {
            continue;
          }
          RandomAccessFile out = open.get(e.file);
          if (out == null) {
            out = new RandomAccessFile(store.resolve(names.get(e.file)).toFile(), "rw");
            open.put(e.file, out);
          }
          boolean isDurable = e.type == 'D' || e.seq < durableBelow.getOrDefault(e.file, 0L);
          boolean kept;
          if (e.type == 'T') {
            kept = isDurable || (lost != null && lost.nextBoolean());
            if (kept) {
              out.setLength(e.arg);
            }
          } else {
            kept = write(e, out.getChannel(), isDurable, lost);
          }
          if (isDurable) {
            durable++;
          } else if (kept) {
            partly++;
          } else {
            dropped++;
          }
        }
      } finally {
        for (RandomAccessFile f : open.values()) {
          f.close();
        }
      }
      return new Cut(durable, partly, dropped);
    }

    /**
     * Copies write {@code e} into {@code out}: all of it when {@code whole}, else each piece of it
     * that {@code lost} keeps (none without it). Returns whether any was copied.
     */
    private boolean write(Entry e, FileChannel out, boolean whole, SplittableRandom lost)
        throws IOException {
      boolean any = false;
      long end = e.arg + e.length;
      for (long from = e.arg; from < end; ) {
        long to = Math.min(end, (from / PIECE + 1) * PIECE);
        if (whole || (lost != null && lost.nextBoolean())) {
          ByteBuffer piece = ByteBuffer.wrap(bytes(e.dataAt + (from - e.arg), (int) (to - from)));
          for (long at = from; piece.hasRemaining(); ) {
            at += out.write(piece, at);
          }
          any = true;
        }
        from = to;
      }
      return any;
    }

    private byte[] bytes(long at, int n) throws IOException {
      ByteBuffer b = ByteBuffer.allocate(n);
      readFully(b, at);
      return b.array();
    }

    private void readFully(ByteBuffer b, long at) throws IOException {
      while (b.hasRemaining()) {
        int n = ch.read(b, at);
        if (n < 0) {
          throw new IOException("journal ends early at " + at);
        }
        at += n;
      }
    }

    @Override
    public void close() throws IOException {
      ch.close();
    }
  }
}
