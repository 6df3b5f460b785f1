// The ranges pointers hold: one of the core's conflict tables, with waiters.
// A pointer (or a partner's release, a free, a checkpoint's barrier) takes its
// page range shared or exclusive, and waits until no range that arrived
// before it conflicts: readers share, a writer excludes, arrival order is kept.

import { TwinpageError } from '../errors.js';
import type { ConflictTable } from '../core/index.js';

export class RangeLocks {
  readonly #table: ConflictTable;
  /** Waiters per entry, woken when it leaves. */
  readonly #waiters = new Map<number, Array<() => void>>();

  constructor(table: ConflictTable) {
    this.#table = table;
  }

  /** Takes `[first, last]` in arrival order; BUSY when the table is full. */
  insert(first: number, last: number, exclusive: boolean): number {
    const table = this.#table;
    if (table.size >= table.capacity) throw TwinpageError.busy(`${table.capacity} pointers are already held or waiting`);
    return table.insert(first, last, exclusive ? 'exclusive' : 'shared', 0);
  }

  /** Takes `[first, last]` shared when it can be at once (no writer holds or waits for it, the table has room); else 0. */
  tryShared(first: number, last: number): number {
    return this.#table.tryInsert(first, last, 'shared', 0);
  }

  /** Whether no writer holds or waits for any page of `[first, last]` (a copy made now reads committed bytes). */
  freeForShared(first: number, last: number): boolean {
    return this.#table.query(first, last, 'shared') === 0;
  }

  /**
   * Waits until no entry that arrived before `entry` conflicts with it.
   * Rejects with the signal's reason once `signal` aborts (the entry stays:
   * the caller removes it).
   */
  async waitTurn(entry: number, signal?: AbortSignal): Promise<void> {
    const table = this.#table;
    for (let b = table.blocker(entry); b !== 0; b = table.blocker(entry)) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const list = this.#waiters.get(b) ?? [];
        this.#waiters.set(b, list);
        if (!signal) { list.push(resolve); return; }
        const onAbort = () => {
          const i = list.indexOf(wake);
          if (i >= 0) list.splice(i, 1);
          reject(signal.reason);
        };
        const wake = () => { signal.removeEventListener('abort', onAbort); resolve(); };
        list.push(wake);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** Ends `entry` and wakes whoever waited on it. */
  remove(entry: number): void {
    this.#table.remove(entry);
    const waiters = this.#waiters.get(entry);
    if (waiters) {
      this.#waiters.delete(entry);
      for (const w of waiters) w();
    }
  }
}
