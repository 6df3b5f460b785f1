import { TwinpageError } from '../errors.js';
import { u32, intIn } from './args.js';
import { check, E_FULL } from './status.js';
import { Info, type CoreExports } from './exports.js';

/**
 * How a range is held: `shared` ranges (reads) never conflict with each
 * other; an `exclusive` range (a write) conflicts with every range it overlaps.
 */
export type RangeMode = 'shared' | 'exclusive';

const MAX_ID = 0x7FFFFFFF;

/**
 * The cheap exact test of the hot paths: true only for an integer number in
 * [0, 2^32) (the typeof keeps `>>>` from throwing on a bigint or symbol).
 * Anything else goes to args.js for the error.
 */
const isU32 = (x: number): boolean => typeof x === 'number' && (x >>> 0) === x;

/** 0 for shared, 1 for exclusive; INVALID_ARGUMENT for anything else. */
function modeCode(mode: RangeMode): number {
  if (mode === 'shared') return 0;
  if (mode === 'exclusive') return 1;
  throw TwinpageError.invalidArgument(`mode must be 'shared' or 'exclusive', got ${String(mode)}`);
}

/** Checks an inclusive page range; throws INVALID_ARGUMENT naming the bad end. */
function checkRange(first: number, last: number): void {
  u32(first, 'first');
  u32(last, 'last');
  if (first > last) throw TwinpageError.invalidArgument(`first (${first}) must not be after last (${last})`);
}

/**
 * One range-conflict table of the core (one per task group): the page ranges
 * in flight, in arrival order, each held shared or exclusive by an owner
 * (the task running it).
 *
 * Two ranges conflict when they overlap and at least one is exclusive.
 * Ranges are inclusive `[first, last]` of u32 page numbers. The table only
 * records and answers: `insert` never refuses a range because it conflicts,
 * so the caller asks `query` before inserting, or `blocker` after.
 */
export class ConflictTable {
  /** The table's handle in the core. */
  readonly index: number;
  /** Most entries the table holds at once (`conflictCapacity` of the core). */
  readonly capacity: number;
  readonly #x: CoreExports;
  readonly #insert: CoreExports['conflictInsert'];
  readonly #tryInsert: CoreExports['conflictTryInsert'];
  readonly #query: CoreExports['conflictQuery'];
  readonly #blocker: CoreExports['conflictBlocker'];
  readonly #remove: CoreExports['conflictRemove'];

  constructor(exports: CoreExports, index: number) {
    this.#x = exports;
    this.#insert = exports.conflictInsert;
    this.#tryInsert = exports.conflictTryInsert;
    this.#query = exports.conflictQuery;
    this.#blocker = exports.conflictBlocker;
    this.#remove = exports.conflictRemove;
    this.index = index;
    this.capacity = Number(exports.info(Info.TableCapacity));
  }

  /**
   * Records `[first, last]` held in `mode` by `owner`, after every entry
   * already in the table.
   * @returns the entry's id, from 1 to 2^31-1, unique among live entries.
   * @throws FULL when the table holds `capacity` entries; INVALID_ARGUMENT
   *   for a bad range, mode or owner.
   */
  insert(first: number, last: number, mode: RangeMode, owner: number): number {
    if (!isU32(first) || !isU32(last) || first > last) checkRange(first, last);
    if (!isU32(owner)) u32(owner, 'owner');
    const r = this.#insert(this.index, first, last, modeCode(mode), owner);
    return r < 0 ? check(r, `insert range [${first}, ${last}]`) : r;
  }

  /**
   * Records `[first, last]` as `insert` does, only when it can run at once:
   * no entry conflicts with it and the table has room.
   * @returns the entry's id, or 0 when it cannot go in now (nothing is
   *   recorded).
   * @throws INVALID_ARGUMENT for a bad range, mode or owner.
   */
  tryInsert(first: number, last: number, mode: RangeMode, owner: number): number {
    if (!isU32(first) || !isU32(last) || first > last) checkRange(first, last);
    if (!isU32(owner)) u32(owner, 'owner');
    const r = this.#tryInsert(this.index, first, last, modeCode(mode), owner);
    return r >= 0 ? r : r === E_FULL ? 0 : check(r, `insert range [${first}, ${last}]`);
  }

  /**
   * The id of the earliest-arrived entry that conflicts with `[first, last]`
   * held in `mode`, or 0 when it could run now.
   * @throws INVALID_ARGUMENT for a bad range or mode.
   */
  query(first: number, last: number, mode: RangeMode): number {
    if (!isU32(first) || !isU32(last) || first > last) checkRange(first, last);
    const r = this.#query(this.index, first, last, mode === 'shared' ? 0 : modeCode(mode));
    return r < 0 ? check(r, `query range [${first}, ${last}]`) : r;
  }

  /**
   * The id of the earliest entry that arrived before entry `id` and conflicts
   * with it, or 0 when entry `id` may run. An entry is only ever held back
   * by earlier ones, so waiters are served in arrival order.
   * @throws NOT_FOUND when no entry has this id; INVALID_ARGUMENT when `id`
   *   is not an integer from 0 to 2^31-1.
   */
  blocker(id: number): number {
    if (!isU32(id) || id > MAX_ID) intIn(id, 0, MAX_ID, 'id');
    const r = this.#blocker(this.index, id);
    return r < 0 ? check(r, `blocker of entry ${id}`) : r;
  }

  /**
   * Removes entry `id`; the others keep their order.
   * @throws NOT_FOUND when no entry has this id; INVALID_ARGUMENT when `id`
   *   is not an integer from 0 to 2^31-1.
   */
  remove(id: number): void {
    if (!isU32(id) || id > MAX_ID) intIn(id, 0, MAX_ID, 'id');
    const r = this.#remove(this.index, id);
    if (r < 0) check(r, `remove entry ${id}`);
  }

  /**
   * Removes every entry held by `owner` (a task that failed or finished).
   * @returns how many entries were removed.
   */
  removeOwner(owner: number): number {
    return check(this.#x.conflictRemoveOwner(this.index, u32(owner, 'owner')), `remove owner ${owner}`);
  }

  /** Number of entries in the table. */
  get size(): number {
    return check(this.#x.conflictCount(this.index), 'count entries');
  }

  /** Removes every entry. Ids keep counting, so ids handed out before stay unknown. */
  clear(): void {
    check(this.#x.conflictClear(this.index), 'clear table');
  }
}
