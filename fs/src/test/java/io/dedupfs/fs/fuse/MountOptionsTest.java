package io.dedupfs.fs.fuse;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link MountOptions.Builder}: its defaults, that each setter sets its own component, and the
 * checks.
 */
class MountOptionsTest {
  @Test
  void builderStartsFromTheDefaults() {
    assertThat(MountOptions.builder().build())
        .isEqualTo(
            new MountOptions(
                "dedupfs",
                "",
                false,
                false,
                true,
                List.of(),
                8,
                false,
                true,
                1.0,
                1.0,
                Duration.ofSeconds(10),
                Duration.ofSeconds(5),
                false));
    assertThat(MountOptions.defaults()).isEqualTo(MountOptions.builder().build());
  }

  @Test
  void eachSetterSetsItsComponentAndToBuilderKeepsTheRest() {
    MountOptions o =
        MountOptions.builder()
            .fsname("/s,t")
            .subtype("dedupfs")
            .allowOther(true)
            .readOnly(true)
            .defaultPermissions(false)
            .extraOptions(List.of("noatime"))
            .threads(3)
            .writebackCache(true)
            .ioUring(false)
            .attrTimeout(2)
            .entryTimeout(3)
            .initTimeout(Duration.ofSeconds(4))
            .unmountTimeout(Duration.ofSeconds(6))
            .debug(true)
            .build();
    assertThat(o)
        .isEqualTo(
            new MountOptions(
                "/s,t",
                "dedupfs",
                true,
                true,
                false,
                List.of("noatime"),
                3,
                true,
                false,
                2.0,
                3.0,
                Duration.ofSeconds(4),
                Duration.ofSeconds(6),
                true));
    assertThat(o.toBuilder().build()).isEqualTo(o);
    assertThat(o.toBuilder().threads(5).build())
        .isEqualTo(
            new MountOptions(
                "/s,t",
                "dedupfs",
                true,
                true,
                false,
                List.of("noatime"),
                5,
                true,
                false,
                2.0,
                3.0,
                Duration.ofSeconds(4),
                Duration.ofSeconds(6),
                true));
    assertThat(o.toArgs())
        .containsExactly(
            "dedupfs",
            "-o",
            "fsname=/s\\,t",
            "-o",
            "subtype=dedupfs",
            "-o",
            "allow_other",
            "-o",
            "ro",
            "-o",
            "debug",
            "-o",
            "noatime");
  }

  @Test
  void buildChecksAsTheRecordDoes() {
    assertThatThrownBy(() -> MountOptions.builder().threads(0).build())
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> MountOptions.builder().fsname(null).build())
        .isInstanceOf(NullPointerException.class);
  }
}
