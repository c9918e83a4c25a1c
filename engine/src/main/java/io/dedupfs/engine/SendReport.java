package io.dedupfs.engine;

/**
 * What a send wrote: the stream's bytes; the blocks it carried and their bytes; the subtrees it
 * left out because the receiver holds them (unchanged since {@code --from}, or answered by the
 * receiver), each counted once whatever its size; blocks left out because a resumed receive holds
 * them; the inodes of the snapshot's namespace; whether it named its blocks by reference to the
 * pool both stores share (then {@code blockBytes} counts the bytes named, none of which crossed).
 */
public record SendReport(
    String snapshot,
    String from,
    long streamBytes,
    long blocksSent,
    long blockBytes,
    long subtreesSkipped,
    long blocksResumed,
    long inodes,
    boolean byReference) {}
