package io.dedupfs.engine;

import java.nio.ByteBuffer;
import org.lmdbjava.Dbi;
import org.lmdbjava.Stat;

/**
 * One table (LMDB database) of the store, FORMAT.md. Keys and values are byte buffers; the key and
 * value layouts belong to the classes that own the table ({@link Namespace}, {@link Snapshots},
 * {@link LmdbBlockStore}). Reads take any transaction, changes a {@link WriteTxn}. A buffer
 * returned by {@link #get} is LMDB's: valid until the transaction ends or changes the table, never
 * to be written. Keys and values passed in are copied by LMDB during the call.
 *
 * <p>A table object lives as long as its {@link Lmdb}; {@link Lmdb#compact} reopens what it refers
 * to, with no transaction open.
 */
final class Table {
  final String name;

  /**
   * Set by {@link Lmdb} when the environment is opened or reopened (under its map lock); null: the
   * table does not exist.
   */
  Dbi<ByteBuffer> dbi;

  Table(String name) {
    this.name = name;
  }

  /**
   * Whether the table exists (only {@code snapshots} and {@code folded} may be missing, in an older
   * store opened read-only).
   */
  boolean present() {
    return dbi != null;
  }

  /** The value under {@code key}, or null. */
  ByteBuffer get(ReadTxn txn, ByteBuffer key) {
    return dbi.get(txn.txn, key);
  }

  void put(WriteTxn txn, ByteBuffer key, ByteBuffer value) {
    dbi.put(txn.txn, key, value);
  }

  /**
   * Makes room for a value of {@code size} bytes under {@code key} and returns it to be filled
   * before the transaction changes anything else.
   */
  ByteBuffer reserve(WriteTxn txn, ByteBuffer key, int size) {
    return dbi.reserve(txn.txn, key, size);
  }

  /** Deletes the entry under {@code key}; false when there was none. */
  boolean delete(WriteTxn txn, ByteBuffer key) {
    return dbi.delete(txn.txn, key);
  }

  /** Deletes every entry (the table stays). */
  void clear(WriteTxn txn) {
    dbi.drop(txn.txn, false);
  }

  TableCursor openCursor(ReadTxn txn) {
    return new TableCursor(dbi.openCursor(txn.txn));
  }

  TableStat stat(ReadTxn txn) {
    return new TableStat(dbi.stat(txn.txn));
  }

  /** Figures of a table as of one transaction. */
  static final class TableStat {
    final long entries;
    final long branchPages;
    final long leafPages;
    final long overflowPages;

    TableStat(Stat s) {
      entries = s.entries;
      branchPages = s.branchPages;
      leafPages = s.leafPages;
      overflowPages = s.overflowPages;
    }

    /** Pages of its B-tree and its overflow pages. */
    long pages() {
      return branchPages + leafPages + overflowPages;
    }
  }
}
