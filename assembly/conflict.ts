// Range-conflict tables, one per task group (US 7,167,969 claims 5-7).
//
// A table holds the page ranges in flight, in arrival order. Each entry is an
// inclusive range [first, last] of u32 page numbers, a mode (shared or
// exclusive), an owner (the task running it) and an id. Two ranges conflict
// when they overlap and at least one of them is exclusive; shared ranges
// never conflict with each other.
//
// The entries are kept as a structure of arrays so that a query compares
// four entries per SIMD instruction, sixteen a loop step. Each table,
// `stride` bytes:
//
//   table
//   +--------+--------+--------+--------+--------+--------+--------+
//   | header | firsts | lasts  | xfirsts| xlasts | owners | ids    |
//   | 16 B   | u32 x  | u32 x  | u32 x  | u32 x  | u32 x  | i32 x  |
//   |        | slots  | slots  | slots  | slots  | slots  | slots  |
//   +--------+--------+--------+--------+--------+--------+--------+
//
//   header:  0            4            8            12           16
//            +------------+------------+------------+------------+
//            | count      | next id    | wrapped    | (unused)   |
//            +------------+------------+------------+------------+
//
//   firsts, lasts:    every entry's ends, XOR 0x80000000 (BIAS): unsigned
//                     order becomes signed order, and one i32x4.gt_s
//                     compares four ends (x86 has no unsigned SIMD compare,
//                     so i32x4.le_u costs two instructions).
//   xfirsts, xlasts:  the same ends for an exclusive entry; the EMPTY pair
//                     for a shared one. This is the exclusive mask folded
//                     into the ends: a shared query scans these, an
//                     exclusive query scans firsts/lasts, and neither loop
//                     loads a mask.
//
//   EMPTY = (first 0x7FFFFFFF, last 0x80000000) biased, ie. [0xFFFFFFFF, 0]:
//   a pair with first > last that overlaps every range except the whole
//   space [0, 0xFFFFFFFF]; a query for that range takes a path of its own
//   (it overlaps every real entry). An entry is exclusive exactly when its
//   x-pair is real (xfirst <= xlast as signed).
//
// `slots` is the capacity rounded up to a multiple of 16, so a loop can read
// a whole step past the last entry. Slots at and after `count` are padding:
// both pairs EMPTY and id 0, so padding never conflicts and is never found
// by id, and no loop needs a scalar tail.
//
// Entry i arrived before entry j when i < j. Removal shifts the later
// entries down one slot, keeping that order; a query returns the first
// conflicting slot, which is the earliest conflicting arrival.
//
// Ids come from a per-table counter masked to 31 bits that skips 0. Until
// the counter first wraps, every live id is below it and cannot collide;
// after that, ids still live are skipped.

import { OK, E_NOT_READY, E_INVALID_ARG, E_NOT_FOUND, E_FULL, E_TABLE_RANGE } from './status';
import { reserve, ready } from './layout';

@inline const HEADER: usize = 16;
@inline const H_COUNT: usize = 0;
@inline const H_NEXT: usize = 4;
@inline const H_WRAPPED: usize = 8;

@inline const A_FIRST: usize = 0;
@inline const A_LAST: usize = 1;
@inline const A_XFIRST: usize = 2;
@inline const A_XLAST: usize = 3;
@inline const A_OWNER: usize = 4;
@inline const A_ID: usize = 5;
@inline const ARRAYS: usize = 6;
@inline const STEP: usize = 16; // entries a loop step

@inline const ID_MASK: u32 = 0x7FFFFFFF;
@inline const BIAS: u32 = 0x80000000;
@inline const EMPTY_FIRST: u32 = 0x7FFFFFFF; // biased 0xFFFFFFFF
@inline const EMPTY_LAST: u32 = 0x80000000;  // biased 0
@inline const MAX_PAGE: u32 = 0xFFFFFFFF;

@inline export const MODE_SHARED: u32 = 0;
@inline export const MODE_EXCLUSIVE: u32 = 1;

export let tableCount: u32 = 0;
export let tableCapacity: u32 = 0;
let tablesBase: usize = 0;
let arrayBytes: usize = 0; // slots * 4
let stride: usize = 0;     // bytes per table

// --- setup ------------------------------------------------------------------

/** Reserves `tables` tables of `capacity` entries. False when they do not fit. */
export function conflictSetup(tables: u32, capacity: u32): bool {
  tableCount = tables;
  tableCapacity = capacity;
  let slots = (<u64>capacity + <u64>(STEP - 1)) & ~<u64>(STEP - 1);
  let bytes = <u64>HEADER + <u64>ARRAYS * slots * 4;
  let total = <u64>tables * bytes;
  if (total > 0xFFFF0000) return false;
  arrayBytes = <usize>(slots * 4);
  stride = <usize>bytes;
  tablesBase = reserve(total, 64);
  return tablesBase != 0;
}

/** Empties every table once memory is committed. */
export function conflictReset(): void {
  let slots = <u32>(arrayBytes >> 2);
  for (let t: u32 = 0; t < tableCount; t++) {
    let tb = tableAt(t);
    memory.fill(tb, 0, stride);
    store<u32>(tb, 1, H_NEXT);
    clearSlots(tb, 0, slots);
  }
}

// --- helpers ----------------------------------------------------------------

@inline function tableAt(table: u32): usize { return tablesBase + <usize>table * stride; }
@inline function arr(tb: usize, which: usize): usize { return tb + HEADER + which * arrayBytes; }
@inline function countOf(tb: usize): u32 { return load<u32>(tb, H_COUNT); }
@inline function setCount(tb: usize, n: u32): void { store<u32>(tb, n, H_COUNT); }

/** Slot of the live entry `id`, or -1. Padding ids are 0 and never match. */
function slotOf(tb: usize, id: i32): i32 {
  if (id <= 0) return -1;
  let ids = arr(tb, A_ID);
  let key = i32x4.splat(id);
  let end = <usize>countOf(tb) << 2;
  for (let off: usize = 0; off < end; off += 32) {
    let a = i32x4.eq(v128.load(ids + off), key);
    let b = i32x4.eq(v128.load(ids + off, 16), key);
    if (v128.any_true(v128.or(a, b))) {
      let m = <u32>i32x4.bitmask(a) | (<u32>i32x4.bitmask(b) << 4);
      return <i32>((off >> 2) + <usize>ctz(m));
    }
  }
  return -1;
}

/**
 * First slot in [0, limit) whose pair in `firsts`/`lasts` overlaps the
 * biased range [bf, bl], or -1. Sixteen slots a step; a hit at or past
 * `limit` (a live entry after a blocker's own, or padding) is no hit.
 * Not for the whole space [0, 0xFFFFFFFF], which EMPTY pairs overlap.
 */
@inline function firstOverlap(firsts: usize, lasts: usize, bf: u32, bl: u32, limit: u32): i32 {
  let qf = i32x4.splat(bf);
  let ql = i32x4.splat(bl);
  let end = <usize>limit << 2;
  // A pair misses the range when pair.first > last || first > pair.last.
  for (let off: usize = 0; off < end; off += STEP * 4) {
    let f = firsts + off;
    let l = lasts + off;
    let a = v128.or(i32x4.gt_s(v128.load(f), ql), i32x4.gt_s(qf, v128.load(l)));
    let b = v128.or(i32x4.gt_s(v128.load(f, 16), ql), i32x4.gt_s(qf, v128.load(l, 16)));
    let c = v128.or(i32x4.gt_s(v128.load(f, 32), ql), i32x4.gt_s(qf, v128.load(l, 32)));
    let d = v128.or(i32x4.gt_s(v128.load(f, 48), ql), i32x4.gt_s(qf, v128.load(l, 48)));
    if (!i32x4.all_true(v128.and(v128.and(a, b), v128.and(c, d)))) {
      let miss = <u32>i32x4.bitmask(a) | (<u32>i32x4.bitmask(b) << 4) |
        (<u32>i32x4.bitmask(c) << 8) | (<u32>i32x4.bitmask(d) << 12);
      let slot = (off >> 2) + <usize>ctz(~miss);
      return slot < <usize>limit ? <i32>slot : -1;
    }
  }
  return -1;
}

/** First slot in [0, limit) whose pair is real (first <= last), or -1. */
function firstReal(firsts: usize, lasts: usize, limit: u32): i32 {
  let end = <usize>limit << 2;
  for (let off: usize = 0; off < end; off += 16) {
    let miss = <u32>i32x4.bitmask(i32x4.gt_s(v128.load(firsts + off), v128.load(lasts + off)));
    if (miss != 0xF) {
      let slot = (off >> 2) + <usize>ctz(~miss);
      return slot < <usize>limit ? <i32>slot : -1;
    }
  }
  return -1;
}

/**
 * First slot in [0, limit) that conflicts with [first, last] (biased) held
 * exclusively or not, or -1.
 */
@inline function firstConflict(tb: usize, bf: u32, bl: u32, exclusive: bool, limit: u32): i32 {
  let firsts = arr(tb, exclusive ? A_FIRST : A_XFIRST);
  let lasts = arr(tb, exclusive ? A_LAST : A_XLAST);
  if (bf == (0 ^ BIAS) && bl == (MAX_PAGE ^ BIAS)) return firstReal(firsts, lasts, limit);
  return firstOverlap(firsts, lasts, bf, bl, limit);
}

@inline function fill32(p: usize, value: u32, n: u32): void {
  for (let i: u32 = 0; i < n; i++) store<u32>(p + (<usize>i << 2), value);
}

/** Makes slots [from, to) padding: both pairs EMPTY, id 0. */
function clearSlots(tb: usize, from: u32, to: u32): void {
  if (to <= from) return;
  let at = <usize>from << 2;
  let n = to - from;
  fill32(arr(tb, A_FIRST) + at, EMPTY_FIRST, n);
  fill32(arr(tb, A_LAST) + at, EMPTY_LAST, n);
  fill32(arr(tb, A_XFIRST) + at, EMPTY_FIRST, n);
  fill32(arr(tb, A_XLAST) + at, EMPTY_LAST, n);
  memory.fill(arr(tb, A_ID) + at, 0, <usize>n << 2);
}

/** Removes the entry in `slot`, shifting the later ones down one slot. */
function removeSlot(tb: usize, slot: u32): void {
  let n = countOf(tb);
  let at = <usize>slot << 2;
  let tail = <usize>(n - slot - 1) << 2;
  if (tail != 0) {
    for (let a: usize = 0; a < ARRAYS; a++) {
      let base = arr(tb, a) + at;
      memory.copy(base, base + 4, tail);
    }
  }
  clearSlots(tb, n - 1, n);
  setCount(tb, n - 1);
}

/** The id in `slot`, or 0 for no slot (-1). */
@inline function idAt(tb: usize, slot: i32): i32 {
  return slot < 0 ? 0 : load<i32>(arr(tb, A_ID) + (<usize>slot << 2));
}

// --- exports ----------------------------------------------------------------

/**
 * Records [first, last] in `table`, shared (mode 0) or exclusive (mode 1),
 * for `owner`, after every entry already there. Returns its id (>= 1).
 * The range goes in whether or not it conflicts: ask conflictQuery first,
 * or conflictBlocker after.
 */
export function conflictInsert(table: u32, first: u32, last: u32, mode: u32, owner: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  if (first > last || mode > MODE_EXCLUSIVE) return E_INVALID_ARG;
  let tb = tableAt(table);
  if (countOf(tb) >= tableCapacity) return E_FULL;
  return append(tb, first, last, mode, owner);
}

/**
 * Records [first, last] in `table` as conflictInsert does, but only when no
 * entry there conflicts with it: returns its id (>= 1), or 0 when an entry
 * conflicts (nothing is recorded), or E_FULL. One call for what a query and
 * an insert do (the synchronous read path).
 */
export function conflictTryInsert(table: u32, first: u32, last: u32, mode: u32, owner: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  if (first > last || mode > MODE_EXCLUSIVE) return E_INVALID_ARG;
  let tb = tableAt(table);
  let n = countOf(tb);
  if (n >= tableCapacity) return E_FULL;
  if (firstConflict(tb, first ^ BIAS, last ^ BIAS, mode == MODE_EXCLUSIVE, n) >= 0) return 0;
  return append(tb, first, last, mode, owner);
}

/** Appends an entry to `tb` (the caller checked its arguments and that it has room); returns its new id. */
function append(tb: usize, first: u32, last: u32, mode: u32, owner: u32): i32 {
  let n = countOf(tb);
  let next = load<u32>(tb, H_NEXT);
  let wrapped = load<u32>(tb, H_WRAPPED) != 0;
  let id: u32;
  do {
    id = next;
    next = (next + 1) & ID_MASK;
    if (next == 0) wrapped = true;
  } while (id == 0 || (wrapped && slotOf(tb, <i32>id) >= 0));
  store<u32>(tb, next, H_NEXT);
  store<u32>(tb, wrapped ? 1 : 0, H_WRAPPED);
  let at = <usize>n << 2;
  let exclusive = mode == MODE_EXCLUSIVE;
  store<u32>(arr(tb, A_FIRST) + at, first ^ BIAS);
  store<u32>(arr(tb, A_LAST) + at, last ^ BIAS);
  store<u32>(arr(tb, A_XFIRST) + at, exclusive ? first ^ BIAS : EMPTY_FIRST);
  store<u32>(arr(tb, A_XLAST) + at, exclusive ? last ^ BIAS : EMPTY_LAST);
  store<u32>(arr(tb, A_OWNER) + at, owner);
  store<u32>(arr(tb, A_ID) + at, id);
  setCount(tb, n + 1);
  return <i32>id;
}

/**
 * The id of the earliest-arrived entry of `table` that conflicts with
 * [first, last] in `mode`, or 0 when none does.
 */
export function conflictQuery(table: u32, first: u32, last: u32, mode: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  if (first > last || mode > MODE_EXCLUSIVE) return E_INVALID_ARG;
  let tb = tableAt(table);
  return idAt(tb, firstConflict(tb, first ^ BIAS, last ^ BIAS, mode == MODE_EXCLUSIVE, countOf(tb)));
}

/**
 * The id of the earliest entry that arrived before `id` and conflicts with
 * it, or 0 when none does: an entry may run when this is 0, so entries are
 * only ever held back by earlier ones (FIFO fairness).
 */
export function conflictBlocker(table: u32, id: i32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  let tb = tableAt(table);
  let slot = slotOf(tb, id);
  if (slot < 0) return E_NOT_FOUND;
  let at = <usize>slot << 2;
  let exclusive = load<i32>(arr(tb, A_XFIRST) + at) <= load<i32>(arr(tb, A_XLAST) + at);
  let bf = load<u32>(arr(tb, A_FIRST) + at);
  let bl = load<u32>(arr(tb, A_LAST) + at);
  return idAt(tb, firstConflict(tb, bf, bl, exclusive, <u32>slot));
}

/** Removes the entry `id`. Returns OK, or E_NOT_FOUND. */
export function conflictRemove(table: u32, id: i32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  let tb = tableAt(table);
  let slot = slotOf(tb, id);
  if (slot < 0) return E_NOT_FOUND;
  removeSlot(tb, <u32>slot);
  return OK;
}

/** Removes every entry of `owner`, keeping the others' order. Returns how many. */
export function conflictRemoveOwner(table: u32, owner: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  let tb = tableAt(table);
  let n = countOf(tb);
  let owners = arr(tb, A_OWNER);
  // Find the first entry of `owner` four at a time; padding owners are
  // stale, so a hit at or past the count is no hit.
  let key = i32x4.splat(owner);
  let end = <usize>n << 2;
  let start = n;
  for (let off: usize = 0; off < end; off += 16) {
    let m = <u32>i32x4.bitmask(i32x4.eq(v128.load(owners + off), key));
    if (m != 0) { start = <u32>(off >> 2) + ctz(m); break; }
  }
  if (start >= n) return 0;
  // Compact the rest in one pass.
  let keep = start;
  for (let i = start + 1; i < n; i++) {
    let at = <usize>i << 2;
    if (load<u32>(owners + at) == owner) continue;
    let to = <usize>keep << 2;
    for (let a: usize = 0; a < ARRAYS; a++) {
      let base = arr(tb, a);
      store<u32>(base + to, load<u32>(base + at));
    }
    keep++;
  }
  clearSlots(tb, keep, n);
  setCount(tb, keep);
  return <i32>(n - keep);
}

/** Number of entries in `table`. */
export function conflictCount(table: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  return <i32>countOf(tableAt(table));
}

/** Removes every entry of `table`. Ids keep counting, so old ids stay unknown. */
export function conflictClear(table: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (table >= tableCount) return E_TABLE_RANGE;
  let tb = tableAt(table);
  clearSlots(tb, 0, countOf(tb));
  setCount(tb, 0);
  return OK;
}
