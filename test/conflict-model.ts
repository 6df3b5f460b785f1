// A plain-TypeScript reference model of one range-conflict table
// (assembly/conflict.ts as seen through bindings/core/conflict.ts): an array
// of entries in arrival order, scanned front to back. Written for clarity,
// not speed. The tests run the same commands on both and compare.

import { TwinpageError } from '../bindings/errors.js';
import type { RangeMode } from '../bindings/core/conflict.js';

const MAX_U32 = 0xFFFFFFFF;
const MAX_ID = 0x7FFFFFFF;

/** The public surface both the wasm-backed ConflictTable and this model offer. */
export interface ConflictTableLike {
  readonly capacity: number;
  readonly size: number;
  insert(first: number, last: number, mode: RangeMode, owner: number): number;
  tryInsert(first: number, last: number, mode: RangeMode, owner: number): number;
  query(first: number, last: number, mode: RangeMode): number;
  blocker(id: number): number;
  remove(id: number): void;
  removeOwner(owner: number): number;
  clear(): void;
}

export interface ModelEntry { id: number; first: number; last: number; exclusive: boolean; owner: number }

const isInt = (x: unknown, min: number, max: number): x is number =>
  typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;

/** Whether two entries conflict: they overlap and at least one is exclusive. */
export function conflicts(a: Omit<ModelEntry, 'id' | 'owner'>, b: Omit<ModelEntry, 'id' | 'owner'>): boolean {
  return a.first <= b.last && b.first <= a.last && (a.exclusive || b.exclusive);
}

export class ConflictTableModel implements ConflictTableLike {
  readonly capacity: number;
  /** Live entries, earliest arrival first. */
  entries: ModelEntry[] = [];
  /** The next id to try (31 bits; 0 is skipped). */
  next = 1;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number { return this.entries.length; }

  insert(first: number, last: number, mode: RangeMode, owner: number): number {
    this.#range(first, last);
    const exclusive = this.#mode(mode);
    if (!isInt(owner, 0, MAX_U32)) throw TwinpageError.invalidArgument('owner');
    if (this.entries.length >= this.capacity) throw TwinpageError.full('table is full');
    let id: number;
    do {
      id = this.next;
      this.next = (this.next + 1) & MAX_ID;
    } while (id === 0 || this.entries.some((e) => e.id === id));
    this.entries.push({ id, first, last, exclusive, owner });
    return id;
  }

  /** `insert` when nothing conflicts and there is room; else 0, and nothing changes. */
  tryInsert(first: number, last: number, mode: RangeMode, owner: number): number {
    this.#range(first, last);
    const exclusive = this.#mode(mode);
    if (!isInt(owner, 0, MAX_U32)) throw TwinpageError.invalidArgument('owner');
    if (this.entries.length >= this.capacity || this.entries.some((e) => conflicts(e, { first, last, exclusive }))) return 0;
    return this.insert(first, last, mode, owner);
  }

  query(first: number, last: number, mode: RangeMode): number {
    this.#range(first, last);
    const q = { first, last, exclusive: this.#mode(mode) };
    return this.entries.find((e) => conflicts(e, q))?.id ?? 0;
  }

  blocker(id: number): number {
    const at = this.#find(id);
    const me = this.entries[at];
    return this.entries.slice(0, at).find((e) => conflicts(e, me))?.id ?? 0;
  }

  remove(id: number): void {
    this.entries.splice(this.#find(id), 1);
  }

  removeOwner(owner: number): number {
    if (!isInt(owner, 0, MAX_U32)) throw TwinpageError.invalidArgument('owner');
    const before = this.entries.length;
    this.entries = this.entries.filter((e) => e.owner !== owner);
    return before - this.entries.length;
  }

  clear(): void {
    this.entries = [];
  }

  #range(first: number, last: number): void {
    if (!isInt(first, 0, MAX_U32) || !isInt(last, 0, MAX_U32) || first > last) {
      throw TwinpageError.invalidArgument('range');
    }
  }

  #mode(mode: RangeMode): boolean {
    if (mode !== 'shared' && mode !== 'exclusive') throw TwinpageError.invalidArgument('mode');
    return mode === 'exclusive';
  }

  #find(id: number): number {
    if (!isInt(id, 0, MAX_ID)) throw TwinpageError.invalidArgument('id');
    const at = this.entries.findIndex((e) => e.id === id);
    if (at < 0) throw TwinpageError.notFound(`entry ${id}`);
    return at;
  }
}
