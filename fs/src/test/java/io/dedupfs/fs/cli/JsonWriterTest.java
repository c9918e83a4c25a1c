package io.dedupfs.fs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class JsonWriterTest {

  @Test
  void escapesWhatRfc8259Requires() {
    assertThat(JsonWriter.quote("plain /vms/vm1.img")).isEqualTo("\"plain /vms/vm1.img\"");
    assertThat(JsonWriter.quote("a\"b\\c")).isEqualTo("\"a\\\"b\\\\c\"");
    assertThat(JsonWriter.quote("\n\r\t\b\f")).isEqualTo("\"\\n\\r\\t\\b\\f\"");
    assertThat(JsonWriter.quote("\u0000\u0001\u001f\u007f"))
        .isEqualTo("\"\\u0000\\u0001\\u001f\\u007f\"");
    assertThat(JsonWriter.quote("é€ 😀")).as("non-ASCII as is").isEqualTo("\"é€ 😀\"");
    assertThat(JsonWriter.quote("\u2028\u2029")).isEqualTo("\"\\u2028\\u2029\"");
    assertThat(JsonWriter.quote("x\ud800y")).as("a lone surrogate").isEqualTo("\"x\\ud800y\"");
    assertThat(JsonWriter.quote("/")).as("the solidus needs no escape").isEqualTo("\"/\"");
  }

  @Test
  void placesCommasAndColons() {
    String s =
        new JsonWriter()
            .beginObject()
            .field("type", "stats")
            .name("paths")
            .beginArray()
            .beginObject()
            .field("path", "/a")
            .field("files", 2)
            .endObject()
            .beginObject()
            .field("path", "/b")
            .field("clean", true)
            .name("ratio")
            .value(1.5, 2)
            .endObject()
            .endArray()
            .name("empty")
            .beginArray()
            .endArray()
            .name("none")
            .value((String) null)
            .name("big")
            .value(Long.MAX_VALUE)
            .endObject()
            .toString();
    assertThat(s)
        .isEqualTo(
            "{\"type\":\"stats\",\"paths\":[{\"path\":\"/a\",\"files\":2},"
                + "{\"path\":\"/b\",\"clean\":true,\"ratio\":1.50}],\"empty\":[],\"none\":null,"
                + "\"big\":9223372036854775807}");
  }

  @Test
  void arraysOfStrings() {
    assertThat(
            new JsonWriter().beginArray().value("a").value("b\n").value(-1).endArray().toString())
        .isEqualTo("[\"a\",\"b\\n\",-1]");
    assertThat(
            new JsonWriter().beginObject().name("nan").value(Double.NaN, 2).endObject().toString())
        .isEqualTo("{\"nan\":null}");
  }
}
