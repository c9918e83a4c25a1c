package io.dedupfs.it;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs a command to completion, with a time limit, and returns its exit code and output.
 *
 * <p>Output goes to temporary files rather than pipes: a command that leaves a daemon behind (e.g.
 * {@code dedupfs mount} without {@code -f}) must not keep us waiting for the end of a pipe the
 * daemon still holds.
 */
public final class Shell {

  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(2);

  private Shell() {}

  /** What a finished command left: its exit code, stdout and stderr. */
  public record Result(List<String> command, int exitCode, String stdout, String stderr) {

    public boolean ok() {
      return exitCode == 0;
    }

    /** Command, exit code and both outputs, for failure messages. */
    public String describe() {
      return "$ "
          + String.join(" ", command)
          + "\nexit code: "
          + exitCode
          + "\n--- stdout ---\n"
          + stdout
          + "\n--- stderr ---\n"
          + stderr;
    }

    @Override
    public String toString() {
      return describe();
    }
  }

  public static Result run(String... command) {
    return run(DEFAULT_TIMEOUT, Map.of(), List.of(command));
  }

  public static Result run(Duration timeout, String... command) {
    return run(timeout, Map.of(), List.of(command));
  }

  /**
   * Runs {@code command} with extra environment variables {@code env}, stdin from /dev/null.
   *
   * @throws IllegalStateException if it has not finished within {@code timeout} (it is killed)
   */
  public static Result run(Duration timeout, Map<String, String> env, List<String> command) {
    Path out = null;
    Path err = null;
    try {
      out = Files.createTempFile("dedupfs-it-", ".out");
      err = Files.createTempFile("dedupfs-it-", ".err");
      ProcessBuilder pb =
          new ProcessBuilder(command)
              .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
              .redirectOutput(out.toFile())
              .redirectError(err.toFile());
      pb.environment().putAll(env);
      Process p = pb.start();
      boolean finished;
      try {
        finished = p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        p.destroyForcibly();
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while running " + command, e);
      }
      if (!finished) {
        p.destroyForcibly();
        Result partial = new Result(command, -1, read(out), read(err));
        throw new IllegalStateException(
            "timed out after " + timeout + ", killed:\n" + partial.describe());
      }
      return new Result(command, p.exitValue(), read(out), read(err));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot run " + command, e);
    } finally {
      deleteQuietly(out);
      deleteQuietly(err);
    }
  }

  /** Like {@link #run(String...)}, but throws with the whole output unless it exits 0. */
  public static Result checked(String... command) {
    return checked(run(command));
  }

  public static Result checked(Duration timeout, String... command) {
    return checked(run(timeout, command));
  }

  private static Result checked(Result r) {
    if (!r.ok()) {
      throw new AssertionError("command failed:\n" + r.describe());
    }
    return r;
  }

  private static String read(Path file) throws IOException {
    return new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
  }

  private static void deleteQuietly(Path file) {
    if (file != null) {
      try {
        Files.deleteIfExists(file);
      } catch (IOException ignored) {
        // a temp file; nothing to do
      }
    }
  }
}
