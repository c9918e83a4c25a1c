package io.dedupfs.engine;

/** A name in a directory: an entry that was added, removed or made to name another inode. */
public record DirName(long parent, String name) {}
