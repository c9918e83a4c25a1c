package io.dedupfs.fs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

class TableTest {
  @Test
  void alignedForPeopleTabSeparatedForScripts() {
    Table t =
        new Table("NAME", ">SIZE", "SOURCE")
            .row("nightly", "4.0 MiB", "/")
            .row("a", "12 B", "/vms/x");
    StringWriter people = new StringWriter();
    t.print(new PrintWriter(people, true), false);
    assertThat(people.toString().lines())
        .containsExactly(
            "NAME        SIZE  SOURCE", "nightly  4.0 MiB  /", "a           12 B  /vms/x");
    StringWriter scripts = new StringWriter();
    t.print(new PrintWriter(scripts, true), true);
    assertThat(scripts.toString().lines())
        .containsExactly("nightly\t4.0 MiB\t/", "a\t12 B\t/vms/x");
  }
}
