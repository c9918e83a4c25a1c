package io.dedupfs.engine;

/**
 * How far a long operation (scrub, fsck, compact) has come: {@code done} of {@code total} units of
 * its current {@code phase} (blocks for scrub and fsck, bytes for compact's copy). {@code total} is
 * an estimate when the store changes meanwhile; 0 when unknown.
 */
public record Progress(String phase, long done, long total) {}
