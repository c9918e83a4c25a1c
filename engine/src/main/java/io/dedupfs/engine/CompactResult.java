package io.dedupfs.engine;

/** The size of {@code data.mdb} before and after a compact. */
public record CompactResult(long bytesBefore, long bytesAfter) {}
