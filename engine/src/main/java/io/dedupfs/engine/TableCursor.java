package io.dedupfs.engine;

import java.nio.ByteBuffer;
import org.lmdbjava.Cursor;
import org.lmdbjava.GetOp;

/**
 * A position in a {@link Table}, in key order, inside one transaction; close it before the
 * transaction ends (try-with-resources). {@link #key} and {@link #val} are LMDB's buffers: valid
 * until the cursor moves or the transaction ends, never to be written.
 */
final class TableCursor implements AutoCloseable {
  private final Cursor<ByteBuffer> c;

  TableCursor(Cursor<ByteBuffer> c) {
    this.c = c;
  }

  boolean first() {
    return c.first();
  }

  boolean last() {
    return c.last();
  }

  boolean next() {
    return c.next();
  }

  /** Moves to the first key at or after {@code key}; false when there is none. */
  boolean seek(ByteBuffer key) {
    return c.get(key, GetOp.MDB_SET_RANGE);
  }

  ByteBuffer key() {
    return c.key();
  }

  ByteBuffer val() {
    return c.val();
  }

  /** Deletes the entry under the cursor (a cursor of a {@link WriteTxn}). */
  void delete() {
    c.delete();
  }

  @Override
  public void close() {
    c.close();
  }
}
