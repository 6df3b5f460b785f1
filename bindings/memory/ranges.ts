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

  /** Whether a shared range could be taken at once. */
  freeForShared(first: number, last: number): boolean {
    const table = this.#table;
    return table.size < table.capacity && table.query(first, last, 'shared') === 0;
  }

  /** Waits until no entry that arrived before `entry` conflicts with it. */
  async waitTurn(entry: number): Promise<void> {
    const table = this.#table;
    for (let b = table.blocker(entry); b !== 0; b = table.blocker(entry)) {
      await new Promise<void>((resolve) => {
        const list = this.#waiters.get(b);
        if (list) list.push(resolve); else this.#waiters.set(b, [resolve]);
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
