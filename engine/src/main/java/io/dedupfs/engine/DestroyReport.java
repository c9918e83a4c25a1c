package io.dedupfs.engine;

/**
 * What {@link Datastore#destroy} did: the pool the store kept its blocks in ({@code rados:POOL}; ""
 * for a store whose blocks were in its LMDB) and how many references to blocks there it released.
 */
public record DestroyReport(String pool, long released) {}
