// The scheduler: every storage operation of a node goes through here
// (US 7,167,969). The virtual address space is dealt to 2^k task groups in
// stripes of `stripePages` pages (stripe s belongs to group s mod 2^k), so
// that neighbouring data spreads over all groups. An operation is delegated
// to the group of each stripe it touches (split per stripe) and completes
// when all its parts do.
//
// Backpressure: each group accepts at most its conflict table's capacity.
// Parts that find their group full wait, in submission order (so conflicting
// operations still reach each group in the order they were submitted);
// `room()` lets a submitter wait until nothing is waiting.

import { TwinpageError } from '../errors.js';
import type { ConflictTable, RangeMode } from '../core/index.js';
import { TaskGroup, type Work } from './group.js';

/** Options of a Scheduler. */
export interface SchedulerOptions {
  /**
   * Tasks per group: how many operations of one group may run at once.
   * @default 4
   */
  tasks?: number;
  /**
   * Pages per stripe: the address space is dealt to the groups in stripes of
   * this many pages (a power of two).
   * @default 256
   */
  stripePages?: number;
}

/** A storage operation on the inclusive page range [first, last]. */
export interface Operation {
  first: number;
  last: number;
  /** `shared` operations (reads) never conflict with each other. @default 'exclusive' */
  mode?: RangeMode;
  /** Runs the operation on [first, last], a part of the whole when it spans stripes. */
  run: (first: number, last: number) => Promise<unknown> | unknown;
}

export interface SchedulerStats {
  groups: number;
  tasks: number;
  /** Accepted, not started (main and mini queues). */
  queued: number;
  running: number;
  /** Parts waiting for room in a full group. */
  waiting: number;
  completed: number;
  failed: number;
  /** Highest number of operations running at once in any one group. */
  maxParallel: number;
  /** Operations moved to a task's mini queue because of a conflict. */
  handoffs: number;
}

export class Scheduler {
  readonly groups: readonly TaskGroup[];
  readonly tasks: number;
  readonly stripePages: number;
  readonly #stripeShift: number;
  readonly #groupMask: number;
  /** Parts waiting for room, in submission order. */
  readonly #waiting: Array<{ group: TaskGroup; work: Work }> = [];
  #roomWaiters: Array<() => void> = [];

  /** One group per conflict table (their number must be a power of two). */
  constructor(tables: readonly ConflictTable[], options: SchedulerOptions = {}) {
    const n = tables.length;
    if (n === 0 || (n & (n - 1)) !== 0) throw TwinpageError.invalidArgument(`the number of task groups must be a power of two, got ${n}`);
    const tasks = options.tasks ?? 4;
    if (!Number.isInteger(tasks) || tasks < 1 || tasks > 1024) throw TwinpageError.invalidArgument(`tasks must be an integer from 1 to 1024, got ${String(tasks)}`);
    const stripe = options.stripePages ?? 256;
    if (!Number.isInteger(stripe) || stripe < 1 || stripe > 2 ** 31 || (stripe & (stripe - 1)) !== 0) {
      throw TwinpageError.invalidArgument(`stripePages must be a power of two, got ${String(stripe)}`);
    }
    this.tasks = tasks;
    this.stripePages = stripe;
    this.#stripeShift = Math.log2(stripe);
    this.#groupMask = n - 1;
    this.groups = tables.map((t, i) => new TaskGroup(i, t, tasks));
  }

  /** Queues an operation; resolves when every part of it has run, rejects with its first error. */
  submit(op: Operation): Promise<void> {
    const { first, last } = op;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last > 0xFFFFFFFF || first > last) {
      return Promise.reject(TwinpageError.invalidArgument(`operation range [${String(first)}, ${String(last)}] is not a page range`));
    }
    const mode = op.mode ?? 'exclusive';
    if (mode !== 'shared' && mode !== 'exclusive') return Promise.reject(TwinpageError.invalidArgument(`mode must be 'shared' or 'exclusive'`));
    const parts: Promise<unknown>[] = [];
    const stripe = this.stripePages;
    for (let start = first; start <= last;) {
      const end = Math.min(last, Math.floor(start / stripe) * stripe + stripe - 1);
      const group = this.groups[Math.floor(start / stripe) & this.#groupMask];
      const partFirst = start;
      const part = new Promise((resolve, reject) => {
        const work: Work = { first: partFirst, last: end, mode, run: async () => op.run(partFirst, end), resolve, reject, entry: 0, task: -1 };
        if (this.#waiting.length === 0 && !group.full) group.accept(work);
        else this.#waiting.push({ group, work });
      });
      // A finished part makes room in its group.
      part.then(this.#admitNext, this.#admitNext);
      parts.push(part);
      start = end + 1;
    }
    return (parts.length === 1 ? parts[0] : Promise.all(parts)).then(() => undefined);
  }

  /** Resolves when no part waits for room: a submitter that awaits this is throttled. */
  room(): Promise<void> {
    if (this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Resolves when every operation submitted so far has finished. */
  async drain(): Promise<void> {
    for (;;) {
      await Promise.all(this.groups.map((g) => g.idle()));
      if (this.#waiting.length === 0 && this.groups.every((g) => g.load === 0)) return;
      await this.room();
    }
  }

  stats(): SchedulerStats {
    const s: SchedulerStats = { groups: this.groups.length, tasks: this.tasks, queued: 0, running: 0, waiting: this.#waiting.length, completed: 0, failed: 0, maxParallel: 0, handoffs: 0 };
    for (const g of this.groups) {
      const c = g.counters;
      s.queued += c.queued;
      s.running += c.running;
      s.completed += c.completed;
      s.failed += c.failed;
      s.handoffs += c.handoffs;
      s.maxParallel = Math.max(s.maxParallel, c.maxParallel);
    }
    return s;
  }

  readonly #admitNext = () => this.#admit();

  /** Lets waiting parts in, in order, while their groups have room. */
  #admit(): void {
    while (this.#waiting.length && !this.#waiting[0].group.full) {
      const { group, work } = this.#waiting.shift()!;
      group.accept(work);
    }
    if (this.#waiting.length === 0) {
      const waiters = this.#roomWaiters;
      this.#roomWaiters = [];
      for (const r of waiters) r();
    }
  }
}
