package io.dedupfs.engine;

/**
 * What a receive did: the snapshot it created; the stream's bytes; the blocks the stream carried,
 * those of them the store held already, and the bytes it stored; the inodes it created.
 */
public record ReceiveReport(
    String snapshot,
    long streamBytes,
    long blocksReceived,
    long blocksAlreadyHeld,
    long bytesStored,
    long inodes) {}
