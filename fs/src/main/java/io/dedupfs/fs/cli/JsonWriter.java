package io.dedupfs.fs.cli;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;

/**
 * Writes one compact JSON value (RFC 8259) for {@code --json}: objects and arrays nest, commas and
 * colons are placed by the writer, strings are escaped. Numbers are written as given: byte counts
 * as plain integers.
 *
 * <pre>{@code
 * String s = new JsonWriter().beginObject().name("files").value(2).name("path").value("/vms").endObject().toString();
 * }</pre>
 */
final class JsonWriter {
  private final StringBuilder out = new StringBuilder();

  /** Per open object or array: whether a value was written in it yet. */
  private final Deque<boolean[]> open = new ArrayDeque<>();

  private boolean afterName;

  JsonWriter beginObject() {
    beforeValue();
    out.append('{');
    open.push(new boolean[1]);
    return this;
  }

  JsonWriter endObject() {
    open.pop();
    out.append('}');
    return this;
  }

  JsonWriter beginArray() {
    beforeValue();
    out.append('[');
    open.push(new boolean[1]);
    return this;
  }

  JsonWriter endArray() {
    open.pop();
    out.append(']');
    return this;
  }

  /** The name of the next member of the current object. */
  JsonWriter name(String name) {
    if (afterName) {
      throw new IllegalStateException("two names in a row: " + name);
    }
    comma();
    quote(name, out);
    out.append(':');
    afterName = true;
    return this;
  }

  JsonWriter value(String s) {
    beforeValue();
    if (s == null) {
      out.append("null");
    } else {
      quote(s, out);
    }
    return this;
  }

  JsonWriter value(long n) {
    beforeValue();
    out.append(n);
    return this;
  }

  JsonWriter value(boolean b) {
    beforeValue();
    out.append(b);
    return this;
  }

  /**
   * A non-integer figure (a ratio), with {@code decimals} digits after the point; NaN and
   * infinities as null.
   */
  JsonWriter value(double d, int decimals) {
    beforeValue();
    if (Double.isNaN(d) || Double.isInfinite(d)) {
      out.append("null");
    } else {
      out.append(String.format(Locale.ROOT, "%." + decimals + "f", d));
    }
    return this;
  }

  /** name(n).value(v), for the common case. */
  JsonWriter field(String n, long v) {
    return name(n).value(v);
  }

  JsonWriter field(String n, String v) {
    return name(n).value(v);
  }

  JsonWriter field(String n, boolean v) {
    return name(n).value(v);
  }

  @Override
  public String toString() {
    return out.toString();
  }

  private void beforeValue() {
    if (afterName) {
      afterName = false;
      return;
    }
    comma();
  }

  private void comma() {
    boolean[] any = open.peek();
    if (any != null) {
      if (any[0]) {
        out.append(',');
      }
      any[0] = true;
    }
  }

  /**
   * Appends {@code s} as a JSON string: quotes, backslash and control characters escaped (RFC 8259,
   * section 7).
   */
  static void quote(String s, StringBuilder b) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        case '\b' -> b.append("\\b");
        case '\f' -> b.append("\\f");
        default -> {
          if (c < 0x20
              || c == 0x7f
              || c == '\u2028'
              || c == '\u2029'
              || Character.isSurrogate(c) && !validSurrogate(s, i)) {
            b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    b.append('"');
  }

  static String quote(String s) {
    StringBuilder b = new StringBuilder();
    quote(s, b);
    return b.toString();
  }

  /**
   * Whether the surrogate at {@code i} is half of a pair (a lone one is escaped, so the output
   * stays valid UTF-8).
   */
  private static boolean validSurrogate(String s, int i) {
    char c = s.charAt(i);
    if (Character.isHighSurrogate(c)) {
      return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
    }
    return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
  }
}
