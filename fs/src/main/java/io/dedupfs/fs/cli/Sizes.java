package io.dedupfs.fs.cli;

import java.util.Locale;
import picocli.CommandLine;

/** Parses sizes such as {@code 16384}, {@code 16K}, {@code 16KiB}, {@code 1M} (binary units). */
final class Sizes implements CommandLine.ITypeConverter<Integer> {
  @Override
  public Integer convert(String value) {
    return (int) parse(value);
  }

  static long parse(String value) {
    String v = value.trim().toUpperCase(Locale.ROOT);
    if (v.endsWith("IB")) {
      v = v.substring(0, v.length() - 2);
    } else if (v.endsWith("B") && v.length() > 1 && !Character.isDigit(v.charAt(v.length() - 2))) {
      v = v.substring(0, v.length() - 1);
    }
    int shift = 0;
    if (!v.isEmpty()) {
      switch (v.charAt(v.length() - 1)) {
        case 'K' -> shift = 10;
        case 'M' -> shift = 20;
        case 'G' -> shift = 30;
        default -> shift = 0;
      }
    }
    String digits = shift == 0 ? v : v.substring(0, v.length() - 1);
    try {
      long n = Long.parseLong(digits);
      if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
        throw new NumberFormatException();
      }
      return n << shift;
    } catch (NumberFormatException e) {
      throw new CommandLine.TypeConversionException(
          "'" + value + "' is not a size (e.g. 16384, 16K, 64KiB)");
    }
  }
}
