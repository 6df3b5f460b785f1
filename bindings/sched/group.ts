// One task group (US 7,167,969): N tasks serving the operations of one
// address range. A main queue holds operations as they arrive; each task has
// a mini queue. An idle task first drains its mini queue, else takes the
// main queue's head; an operation that conflicts with one a task T holds
// (running or queued on T) goes to the end of T's mini queue, so conflicting
// operations run one after another, in arrival order. Everything else runs
// in parallel.
//
// The group's range-conflict table (in the core) holds every operation the
// group has accepted and not finished, in arrival order; `blocker(id)` is the
// earliest earlier operation that conflicts with `id`. An operation starts
// only when it has no blocker, so conflicting operations never overlap.
//
// All of this runs on one event loop, so the table and the queues need no
// locks here.

import type { ConflictTable, RangeMode } from '../core/index.js';

/** One operation (or the part of one that falls in this group's range). */
export interface Work {
  first: number;
  last: number;
  mode: RangeMode;
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** The conflict-table entry, once accepted. */
  entry: number;
  /** The task it is queued on or running on, -1 while in the main queue. */
  task: number;
}

interface Task { running: Work | null; mini: Work[] }

export interface GroupCounters {
  queued: number;
  running: number;
  completed: number;
  failed: number;
  /** Highest number of operations this group ran at once. */
  maxParallel: number;
  /** Operations moved to a task's mini queue because of a conflict. */
  handoffs: number;
}

export class TaskGroup {
  readonly index: number;
  readonly #table: ConflictTable;
  readonly #tasks: Task[];
  readonly #main: Work[] = [];
  /** Accepted and not finished, by conflict-table entry. */
  readonly #byEntry = new Map<number, Work>();
  #running = 0;
  readonly counters: GroupCounters = { queued: 0, running: 0, completed: 0, failed: 0, maxParallel: 0, handoffs: 0 };
  #idleWaiters: Array<() => void> = [];

  constructor(index: number, table: ConflictTable, tasks: number) {
    this.index = index;
    this.#table = table;
    this.#tasks = Array.from({ length: tasks }, () => ({ running: null, mini: [] }));
  }

  /** Operations accepted and not finished. */
  get load(): number { return this.#byEntry.size; }

  /** Room for more: the conflict table holds every accepted operation. */
  get full(): boolean { return this.#byEntry.size >= this.#table.capacity; }

  /** Accepts an operation (the caller has checked `full`) and starts what can start. */
  accept(w: Work): void {
    w.entry = this.#table.insert(w.first, w.last, w.mode, 0);
    w.task = -1;
    this.#byEntry.set(w.entry, w);
    this.#main.push(w);
    this.counters.queued++;
    this.#pump();
  }

  /** Resolves when the group has nothing accepted. */
  idle(): Promise<void> {
    if (this.#byEntry.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Gives idle tasks work until none can start anything. */
  #pump(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (let t = 0; t < this.#tasks.length; t++) {
        const task = this.#tasks[t];
        if (task.running) continue;
        // The mini queue first: the first operation with nothing earlier in
        // its way starts; one waiting for an operation another task holds
        // follows it to that task.
        let started = false;
        for (let i = 0; i < task.mini.length && !started; i++) {
          const w = task.mini[i];
          const b = this.#table.blocker(w.entry);
          if (b === 0) {
            task.mini.splice(i, 1);
            this.#start(w, t);
            started = true;
            break;
          }
          const holder = this.#byEntry.get(b)!;
          if (holder.task !== t && holder.task >= 0) {
            task.mini.splice(i--, 1);
            this.#handOff(w, holder.task);
            progress = true;
          }
        }
        if (started) { progress = true; continue; }
        while (this.#main.length) {
          const w = this.#main.shift()!;
          const b = this.#table.blocker(w.entry);
          if (b === 0) {
            this.#start(w, t);
            progress = true;
            break;
          }
          const holder = this.#byEntry.get(b)!;
          this.#handOff(w, holder.task >= 0 ? holder.task : t);
          progress = true;
        }
      }
    }
  }

  #handOff(w: Work, task: number): void {
    w.task = task;
    this.#tasks[task].mini.push(w);
    this.counters.handoffs++;
  }

  #start(w: Work, t: number): void {
    w.task = t;
    this.#tasks[t].running = w;
    this.counters.queued--;
    this.#running++;
    this.counters.running = this.#running;
    if (this.#running > this.counters.maxParallel) this.counters.maxParallel = this.#running;
    let outcome: Promise<unknown>;
    try {
      outcome = Promise.resolve(w.run());
    } catch (err) {
      outcome = Promise.reject(err);
    }
    outcome.then(
      (value) => { this.#finish(w, t); this.counters.completed++; w.resolve(value); },
      (err) => { this.#finish(w, t); this.counters.failed++; w.reject(err); },
    );
  }

  #finish(w: Work, t: number): void {
    this.#tasks[t].running = null;
    this.#running--;
    this.counters.running = this.#running;
    this.#table.remove(w.entry);
    this.#byEntry.delete(w.entry);
    this.#pump();
    if (this.#byEntry.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const r of waiters) r();
    }
  }
}
