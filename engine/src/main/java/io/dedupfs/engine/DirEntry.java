package io.dedupfs.engine;

/**
 * One entry of a directory listing.
 *
 * @param mode the entry's file type bits (as in {@code st_mode})
 * @param nextOffset where a listing continues after this entry (pass it to {@code readdir})
 */
public record DirEntry(String name, long ino, int mode, long nextOffset) {}
