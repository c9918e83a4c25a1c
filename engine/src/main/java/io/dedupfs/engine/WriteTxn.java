package io.dedupfs.engine;

import java.nio.ByteBuffer;
import org.lmdbjava.Txn;

/**
 * A write transaction: the one open at a time (see {@link Lmdb#write}); it sees its own changes and
 * commits when the callback returns. May run more than once, after a map resize.
 */
final class WriteTxn extends ReadTxn {
  WriteTxn(Txn<ByteBuffer> txn) {
    super(txn);
  }
}
