package io.dedupfs.engine;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The reference counts that applying every queued decrement ({@code pending}) would leave, worked
 * out in memory inside one read transaction, changing nothing: a queued decrement means a stored
 * count is higher than the references by the queued amount, and a block whose count would reach
 * zero would be freed and decrement its children in turn. So figures taken on a store with a queue
 * are those it will have once reclaim has run. Costs work per queued decrement and per block those
 * would free.
 */
final class PendingView {
  /** Counts after the queue, of the blocks it touches. */
  private final Map<Hash, Long> counts = new HashMap<>();

  private final Set<Hash> freed = new HashSet<>();
  private final List<String> problems = new ArrayList<>();
  private final long queued;

  private PendingView(long queued) {
    this.queued = queued;
  }

  static PendingView of(ReadTxn txn, BlockStore blocks) throws IOException {
    Deque<Hash> queue = new ArrayDeque<>();
    blocks.forEachQueued(txn, queue::add);
    PendingView view = new PendingView(queue.size());
    while (!queue.isEmpty()) {
      Hash h = queue.poll();
      long count = view.counts.containsKey(h) ? view.counts.get(h) : blocks.refcount(txn, h);
      if (count <= 0) {
        view.problems.add(
            "a queued decrement names block "
                + h
                + ", which is not stored (or is freed by the queue already)");
        continue;
      }
      view.counts.put(h, count - 1);
      if (count == 1) {
        view.freed.add(h);
        int level = blocks.level(txn, h);
        if (level > 0) {
          try {
            byte[] content = blocks.load(txn, h, level);
            for (int i = 0; i < Geometry.FANOUT; i++) {
              Hash child = Geometry.child(content, i);
              if (!child.isZero()) {
                queue.add(child);
              }
            }
          } catch (CorruptBlockException e) {
            view.problems.add(e.getMessage() + " (a node that the queued decrements free)");
          }
        }
      }
    }
    return view;
  }

  /** The count block {@code h} will have once the queue is applied (0: freed, or not stored). */
  long count(ReadTxn txn, BlockStore blocks, Hash h) {
    Long c = counts.get(h);
    return c != null ? c : blocks.refcount(txn, h);
  }

  /** Whether the queue frees block {@code h}. */
  boolean frees(Hash h) {
    return freed.contains(h);
  }

  Set<Hash> freed() {
    return Collections.unmodifiableSet(freed);
  }

  /** Decrements queued (not counting those they would cascade to). */
  long queued() {
    return queued;
  }

  /** Queued decrements that name blocks that are not there, or nodes that cannot be read. */
  List<String> problems() {
    return Collections.unmodifiableList(problems);
  }
}
