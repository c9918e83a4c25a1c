package io.dedupfs.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compression on a real mount (issue 12): the same files on a store created with {@code
 * --compression none} and one with {@code lz4}; {@code dedupfs stats --json} and the {@code
 * user.dedupfs.*} attributes say stored and compressed bytes and the compress ratio; {@code df}
 * shows the compressed store using less, and each store's df "used" is its live pages;
 * set-compression on the mounted store changes what later blocks are stored as, and every file
 * reads back right.
 */
@ExtendWith(Mounted.PrintLogsOnFailure.class)
class CompressionIT {
  static final long M = 1L << 20;
  static final List<String> report = new ArrayList<>();

  @TempDir Path tempDir;

  private Path tmp;
  private final List<Mounted> mounts = new ArrayList<>();

  @BeforeEach
  void realTmp() throws IOException {
    Mounted.assumeFuseAvailable();
    tmp = tempDir.toRealPath();
  }

  @AfterEach
  void unmount() {
    Mounted.closeAll(mounts);
  }

  @AfterAll
  static void printReport() {
    report.forEach(l -> System.out.println("CompressionIT: " + l));
  }

  private Mounted mount(String name, String compression) {
    Path store = tmp.resolve(name + "-store");
    cli("create", "--compression", compression, store.toString());
    Mounted m = Mounted.mount(store, tmp.resolve(name + "-mnt"), tmp);
    mounts.add(m);
    return m;
  }

  /**
   * {@code n} bytes that compress about 2x: 16-byte pieces, each random or (two times in three) a
   * copy of one of the 256 before it.
   */
  static byte[] compressible(long seed, int n) {
    SplittableRandom r = new SplittableRandom(seed);
    byte[] out = new byte[n];
    for (int i = 0; i < n; i += 8) {
      long v = r.nextLong();
      for (int j = 0; j < 8 && i + j < n; j++) {
        out[i + j] = (byte) (v >>> (8 * j));
      }
    }
    for (int at = 16; at + 16 <= n; at += 16) {
      if (r.nextInt(3) > 0) {
        System.arraycopy(out, at - 16 * (1 + r.nextInt(Math.min(at / 16, 256))), out, at, 16);
      }
    }
    return out;
  }

  static void writeSynced(Path file, byte[] data) throws IOException {
    try (FileChannel ch =
        FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ByteBuffer b = ByteBuffer.wrap(data);
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(true);
    }
  }

  @Test
  void statsAttributesAndDfSayWhatCompressionSaves() throws Exception {
    byte[] text = compressible(1, (int) (64 * M));
    byte[] noise = new byte[(int) (16 * M)];
    new SplittableRandom(2).nextBytes(noise);
    byte[] later = compressible(3, (int) (16 * M));
    Mounted plain = mount("none", "none");
    Mounted packed = mount("lz4", "lz4");
    for (Mounted m : List.of(plain, packed)) {
      writeSynced(m.mountpoint().resolve("text.img"), text);
      writeSynced(m.mountpoint().resolve("noise.img"), noise);
    }
    Path mnt = packed.mountpoint();

    Object all = Json.parse(cli("stats", "--json", mnt.toString()));
    long stored = Json.longAt(all, "paths", 0, "stored_bytes");
    long compressed = Json.longAt(all, "paths", 0, "compressed_bytes");
    assertThat(Json.at(all, "store", "compression")).isEqualTo("lz4");
    assertThat(stored).isGreaterThan(80 * M);
    assertThat(compressed).isLessThan(stored - 20 * M);
    assertThat((Double) Json.at(all, "paths", 0, "compress_ratio"))
        .isCloseTo((double) stored / compressed, org.assertj.core.data.Offset.offset(0.0051));
    Object plainAll = Json.parse(cli("stats", "--json", plain.mountpoint().toString()));
    assertThat(Json.longAt(plainAll, "paths", 0, "stored_bytes"))
        .as("the same blocks before compression")
        .isEqualTo(stored);
    assertThat(Json.longAt(plainAll, "paths", 0, "compressed_bytes")).isEqualTo(stored);

    for (String f : List.of("text.img", "noise.img")) {
      Path p = mnt.resolve(f);
      Object one = Json.parse(cli("stats", "--json", p.toString()));
      long s = Json.longAt(one, "paths", 0, "stored_bytes");
      long c = Json.longAt(one, "paths", 0, "compressed_bytes");
      assertThat(attribute(p, "stored")).isEqualTo(Long.toString(s));
      assertThat(attribute(p, "compressed")).isEqualTo(Long.toString(c));
      assertThat(attribute(p, "compressratio"))
          .isEqualTo(String.format(Locale.ROOT, "%.3f", (double) s / c));
      report.add(
          String.format(
              "%s: stored %,d, compressed %,d, compressratio %s",
              f, s, c, attribute(p, "compressratio")));
      if (f.equals("noise.img")) {
        assertThat(c).as("random data is kept raw").isEqualTo(s);
      } else {
        assertThat((double) s / c).isBetween(1.5, 3.0);
      }
    }

    SpaceIT.dfMatchesTheStore(mnt, packed.store());
    SpaceIT.dfMatchesTheStore(plain.mountpoint(), plain.store());
    long usedPlain = OperationsIT.df(plain.mountpoint())[1];
    long usedPacked = OperationsIT.df(mnt)[1];
    report.add(
        String.format(
            "df used: none %,d, lz4 %,d (stored %,d, compressed %,d)",
            usedPlain, usedPacked, stored, compressed));
    assertThat(usedPlain - usedPacked)
        .as("df counts what the disk holds: the compressed store less by what compression saved")
        .isGreaterThan((stored - compressed) * 3 / 4);

    assertThat(cli("set-compression", "zstd:3", mnt.toString())).contains("lz4 -> zstd:3");
    writeSynced(mnt.resolve("later.img"), later);
    Object after = Json.parse(cli("stats", "--json", mnt.toString()));
    assertThat(Json.at(after, "store", "compression")).isEqualTo("zstd:3");
    Object laterStats = Json.parse(cli("stats", "--json", mnt.resolve("later.img").toString()));
    assertThat(Json.longAt(laterStats, "paths", 0, "compressed_bytes"))
        .isLessThan(Json.longAt(laterStats, "paths", 0, "stored_bytes") * 3 / 4);
    assertThat(cli("stats", mnt.toString()))
        .contains("compress ratio:")
        .containsPattern("compression: +zstd:3");

    packed.close();
    Mounted again = Mounted.mount(packed.store(), mnt, tmp);
    mounts.add(again);
    assertThat(Tools.sha256(mnt.resolve("text.img"))).isEqualTo(Tools.sha256(text));
    assertThat(Tools.sha256(mnt.resolve("noise.img"))).isEqualTo(Tools.sha256(noise));
    assertThat(Tools.sha256(mnt.resolve("later.img"))).isEqualTo(Tools.sha256(later));
    assertThat(cli("scrub", "--json", mnt.toString())).contains("\"damaged\":[]");
    assertThat(Json.at(Json.parse(cli("stats", "--json", mnt.toString())), "store", "compression"))
        .as("the setting is kept in the store")
        .isEqualTo("zstd:3");
  }

  private static String attribute(Path p, String name) {
    return Tools.run("getfattr", "--only-values", "-n", "user.dedupfs." + name, p.toString())
        .strip();
  }

  private static String cli(String... args) {
    Shell.Result r = Mounted.cli(Duration.ofMinutes(5), args);
    assertThat(r.exitCode()).as("dedupfs %s\n%s", String.join(" ", args), r).isZero();
    return r.stdout();
  }
}
