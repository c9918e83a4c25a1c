package io.dedupfs.engine;

import java.nio.ByteBuffer;
import org.lmdbjava.Txn;

/**
 * A read transaction of the store's LMDB environment: a consistent view of every table. Handed out
 * only by {@link Lmdb#read} (or, as a {@link WriteTxn}, by {@link Lmdb#write}) for the length of
 * one callback, which may not keep it. Buffers its tables return stay valid until the callback
 * returns.
 */
sealed class ReadTxn permits WriteTxn {
  /**
   * The lmdbjava transaction: for the wrapper's classes ({@link Table}, {@link TableCursor}, {@link
   * Lmdb}) only.
   */
  final Txn<ByteBuffer> txn;

  ReadTxn(Txn<ByteBuffer> txn) {
    this.txn = txn;
  }
}
