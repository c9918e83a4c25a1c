package io.dedupfs.engine;

/**
 * What a receive did: the snapshot it created; the stream's bytes; the blocks the stream carried,
 * those of them the store held already, and the bytes it stored (by reference: the bytes it took
 * pool references to, stored by another store); the inodes it created; whether the stream named its
 * blocks by reference to the pool both stores share.
 */
public record ReceiveReport(
    String snapshot,
    long streamBytes,
    long blocksReceived,
    long blocksAlreadyHeld,
    long bytesStored,
    long inodes,
    boolean byReference) {}
