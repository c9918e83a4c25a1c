package io.dedupfs.engine;

/**
 * A receive that stopped before its end: the blocks that arrived are kept (referenced by a staging
 * record, see FORMAT.md) until {@code send --resume token} completes it or {@code receive --abort
 * token} drops them.
 */
public record InterruptedReceive(String token, String snapshot, long blocks, long startedNs) {}
