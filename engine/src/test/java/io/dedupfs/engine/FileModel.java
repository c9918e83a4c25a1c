package io.dedupfs.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a file should contain: a sparse map of 4 KiB model pages (absent pages, and every byte at or
 * past {@link #size}, are zero). Pages that become all zero are dropped, so a page is present
 * exactly when it holds data. Offsets may reach many GiB.
 */
final class FileModel {
  static final int PAGE = 4096;

  private final TreeMap<Long, byte[]> pages = new TreeMap<>();
  private long size;

  long size() {
    return size;
  }

  /** Total bytes of the pages that hold data. */
  long dataBytes() {
    return (long) pages.size() * PAGE;
  }

  void write(long off, byte[] data) {
    put(off, data, 0, data.length);
    size = Math.max(size, off + data.length);
  }

  byte[] read(long off, int len) {
    int n = (int) Math.max(0, Math.min(len, size - off));
    byte[] out = new byte[n];
    for (Map.Entry<Long, byte[]> e :
        pages.subMap(off / PAGE, true, (off + n) / PAGE, true).entrySet()) {
      long pageStart = e.getKey() * PAGE;
      long from = Math.max(off, pageStart);
      long to = Math.min(off + n, pageStart + PAGE);
      if (from < to) {
        System.arraycopy(
            e.getValue(), (int) (from - pageStart), out, (int) (from - off), (int) (to - from));
      }
    }
    return out;
  }

  /** Zeroes {@code [off, end)}; the size does not change. */
  void zero(long off, long end) {
    if (off >= end) {
      return;
    }
    List<Long> touched =
        new ArrayList<>(pages.subMap(off / PAGE, true, (end - 1) / PAGE, true).keySet());
    for (long p : touched) {
      long pageStart = p * PAGE;
      byte[] page = pages.get(p);
      int from = (int) (Math.max(off, pageStart) - pageStart);
      int to = (int) (Math.min(end, pageStart + PAGE) - pageStart);
      Arrays.fill(page, from, to, (byte) 0);
      normalize(p);
    }
  }

  void truncate(long newSize) {
    if (newSize < size) {
      zero(newSize, size);
    }
    size = newSize;
  }

  /** Zeroes {@code [off, off + len)}, growing the file to its end unless {@code keepSize}. */
  void zeroRange(long off, long len, boolean keepSize) {
    zero(off, off + len);
    if (!keepSize) {
      size = Math.max(size, off + len);
    }
  }

  /** copy_file_range as the engine implements it; returns the count copied. */
  long copyRange(FileModel src, long srcOff, long dstOff, long len) {
    long n = Math.min(len, Math.max(0, src.size - srcOff));
    if (n == 0) {
      return 0;
    }
    List<long[]> chunks = new ArrayList<>(); // {srcPosition, length} of the source's data
    List<byte[]> bytes = new ArrayList<>();
    for (Map.Entry<Long, byte[]> e :
        src.pages.subMap(srcOff / PAGE, true, (srcOff + n - 1) / PAGE, true).entrySet()) {
      long pageStart = e.getKey() * PAGE;
      long from = Math.max(srcOff, pageStart);
      long to = Math.min(srcOff + n, pageStart + PAGE);
      chunks.add(new long[] {from, to - from});
      bytes.add(Arrays.copyOfRange(e.getValue(), (int) (from - pageStart), (int) (to - pageStart)));
    }
    zero(dstOff, dstOff + n);
    for (int i = 0; i < chunks.size(); i++) {
      byte[] b = bytes.get(i);
      put(dstOff + chunks.get(i)[0] - srcOff, b, 0, b.length);
    }
    size = Math.max(size, dstOff + n);
    return n;
  }

  FileModel copy() {
    FileModel m = new FileModel();
    pages.forEach((k, v) -> m.pages.put(k, v.clone()));
    m.size = size;
    return m;
  }

  // ---- holes as the engine defines them: a leaf-aligned leaf with no data

  boolean leafHasData(long leaf, int leafSize) {
    long first = leaf * leafSize / PAGE;
    long last = ((leaf + 1) * leafSize - 1) / PAGE;
    return !pages.subMap(first, true, last, true).isEmpty();
  }

  /** SEEK_DATA: the first offset at or after {@code off} in a leaf holding data; -1 for ENXIO. */
  long seekData(long off, int leafSize) {
    if (off >= size) {
      return -1;
    }
    long leaf = off / leafSize;
    if (leafHasData(leaf, leafSize)) {
      return off;
    }
    Long p = pages.ceilingKey((leaf + 1) * leafSize / PAGE);
    if (p == null) {
      return -1;
    }
    long start = p * PAGE / leafSize * leafSize;
    return start < size ? start : -1;
  }

  /**
   * SEEK_HOLE: the first offset at or after {@code off} in a leaf without data, else the size; -1
   * for ENXIO.
   */
  long seekHole(long off, int leafSize) {
    if (off >= size) {
      return -1;
    }
    for (long leaf = off / leafSize; leaf * leafSize < size; leaf++) {
      if (!leafHasData(leaf, leafSize)) {
        return Math.max(off, leaf * leafSize);
      }
    }
    return size;
  }

  /** The data pages' offsets, in order. */
  List<Long> dataPageOffsets() {
    List<Long> out = new ArrayList<>();
    for (long p : pages.keySet()) {
      out.add(p * PAGE);
    }
    return out;
  }

  private void put(long off, byte[] data, int from, int len) {
    long end = off + len;
    for (long p = off / PAGE; p * PAGE < end; p++) {
      long pageStart = p * PAGE;
      long a = Math.max(off, pageStart);
      long b = Math.min(end, pageStart + PAGE);
      byte[] page = pages.computeIfAbsent(p, k -> new byte[PAGE]);
      System.arraycopy(data, (int) (from + a - off), page, (int) (a - pageStart), (int) (b - a));
      normalize(p);
    }
  }

  private void normalize(long p) {
    byte[] page = pages.get(p);
    for (byte b : page) {
      if (b != 0) {
        return;
      }
    }
    pages.remove(p);
  }
}
