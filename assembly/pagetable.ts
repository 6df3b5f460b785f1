// Frame pool and page table.
//
// A fixed pool of page frames, reserved once by init(). An open-addressing
// hash table maps a virtual page number (u32) to the frame that caches it.
//
// Frame metadata, one 16-byte record per frame:
//
//   0            4          6         7         8                    16
//   +------------+----------+---------+---------+--------------------+
//   | page (u32) | pins     | flags   | ref     | checksum (u64)     |
//   |            | (u16)    | (u8)    | (u8)    | of the page bytes  |
//   +------------+----------+---------+---------+--------------------+
//
//   flags:  bit 0 MAPPED     the frame holds `page`
//           bit 1 EXCLUSIVE  pinned by one exclusive (write) pin
//           bit 2 DIRTY      must be written back before reuse
//           bit 3 IO         a read or write of the frame is in flight
//           bits 4-5 PRIO    cache priority 0..3
//   ref:    the CLOCK counter: set to 1 + PRIO on insert and on every pin,
//           decremented by the hand; a frame is a victim when it reaches 0.
//
// Page-table slot, 8 bytes, linear probing, load factor <= 1/4:
//
//   0            4            8
//   +------------+------------+
//   | page (u32) | frame (u32)|   page 0xFFFFFFFF marks an empty slot
//   +------------+------------+
//
// The table is 16 columns of linear probing, laid out row by row, so that
// the 16 pages of an aligned group share one row (128 bytes) and a run of
// pages is looked up from consecutive lines:
//
//            col 0   col 1          col 15
//   row 0  +-------+-------+-----+-------+
//   row 1  | slot  | slot  | ... | slot  |     slot index = row * 16 + col
//   ...    +-------+-------+-----+-------+
//
//   g = page >> 4,  h = g * 0x9E3779B1 (Fibonacci hashing)
//   home row = top bits of h,  column = (page ^ (h >> 16)) & 15
//
// A page probes down its column, one row at a time. The column mixes in the
// hash so that strided pages (one in 16, one in 256...) still spread over
// all columns. The table has at least 4 slots per frame (load <= 1/4).
//
// Deletion shifts later entries of the probe run back (no tombstones), so
// lookups stay short however many inserts and removes have happened.
// bindings/core/pagetable.ts probes the same table from JS for single
// lookups (a JS-to-wasm call costs more than the probe): keep both in step.

import {
  OK, E_NOT_READY, E_INVALID_ARG, E_FRAME_RANGE, E_PAGE_INVALID, E_NOT_FOUND, E_EXISTS,
  E_FULL, E_BUSY, E_CONFLICT, E_UNDERFLOW, E_NO_VICTIM, E_NOT_MAPPED,
} from './status';
import { reserve, ready } from './layout';

@inline export const NO_PAGE: u32 = 0xFFFFFFFF;
@inline const META_SIZE: usize = 16;

@inline export const F_MAPPED: u8 = 1;
@inline export const F_EXCLUSIVE: u8 = 2;
@inline export const F_DIRTY: u8 = 4;
@inline export const F_IO: u8 = 8;
@inline const PRIO_SHIFT: u8 = 4;
@inline const PRIO_MASK: u8 = 0x30;
@inline const MAX_PINS: u32 = 0xFFFF;

// Counters, u64 each, in this order (bindings/core/pagetable.ts reads them).
@inline const C_LOOKUPS: usize = 0;
@inline const C_HITS: usize = 1;
@inline const C_INSERTS: usize = 2;
@inline const C_REMOVES: usize = 3;
@inline const C_VICTIMS: usize = 4;
@inline const C_CLOCK_STEPS: usize = 5;
@inline const C_PIN_CONFLICTS: usize = 6;
@inline export const COUNTER_COUNT: usize = 8;

export let frameCount: u32 = 0;
export let metaBase: usize = 0;
export let slotBase: usize = 0;
export let slotMask: u32 = 0;
let rowShift: u32 = 0;
@inline const COLUMNS: u32 = 16;
let freeBase: usize = 0; // stack of free frame indexes
let freeTop: u32 = 0;
let mappedCount: u32 = 0;
let dirtyCount: u32 = 0;
let pinnedCount: u32 = 0;
let hand: u32 = 0;
export let countersBase: usize = 0;
export let scratchBase: usize = 0; // u32 x scratchCount: frame lists
export let scratchCount: u32 = 0;
let sortA: usize = 0; // u64 x frameCount: radix sort buffers
let sortB: usize = 0;

// --- setup ------------------------------------------------------------------

/** Reserves the frame metadata, table, free stack, scratch and counters. */
export function pageTableSetup(frames: u32, scratch: u32): bool {
  frameCount = frames;
  scratchCount = scratch;
  // Every column (COLUMNS interleaved probe sequences) gets more rows than
  // there are frames, so none can fill up: a probe always meets an empty
  // slot, whatever pages are mapped (a full column would loop forever).
  let cap: u64 = 64;
  while (cap < (<u64>frames + 1) * COLUMNS) cap <<= 1;
  if (cap > 0x80000000) return false;
  slotMask = <u32>cap - 1;
  rowShift = 32 - (<u32>ctz(cap) - 4);
  metaBase = reserve(<u64>frames * META_SIZE, 16);
  slotBase = reserve(<u64>cap * 8, 8);
  freeBase = reserve(<u64>frames * 4, 4);
  scratchBase = reserve(<u64>scratch * 4, 16);
  sortA = reserve(<u64>frames * 8, 8);
  sortB = reserve(<u64>frames * 8, 8);
  countersBase = reserve(<u64>COUNTER_COUNT * 8, 8);
  return metaBase != 0 && slotBase != 0 && freeBase != 0 && scratchBase != 0 &&
    sortA != 0 && sortB != 0 && countersBase != 0;
}

/** Fills the structures once memory is committed. */
export function pageTableReset(): void {
  memory.fill(slotBase, 0xFF, <usize>(slotMask + 1) * 8);
  memory.fill(metaBase, 0, <usize>frameCount * META_SIZE);
  for (let f: u32 = 0; f < frameCount; f++) {
    store<u32>(metaBase + <usize>f * META_SIZE, NO_PAGE);
    // Lowest frame on top, so frames fill in index order.
    store<u32>(freeBase + <usize>f * 4, frameCount - 1 - f);
  }
  freeTop = frameCount;
  mappedCount = 0;
  dirtyCount = 0;
  pinnedCount = 0;
  hand = 0;
  memory.fill(countersBase, 0, COUNTER_COUNT * 8);
}

// --- helpers ----------------------------------------------------------------

@inline function meta(frame: u32): usize { return metaBase + <usize>frame * META_SIZE; }
@inline function slot(i: u32): usize { return slotBase + <usize>i * 8; }
@inline function home(page: u32): u32 {
  let h = (page >>> 4) * 0x9E3779B1;
  return ((h >>> rowShift) << 4) | ((page ^ (h >>> 16)) & 15);
}
@inline function bump(counter: usize): void {
  let p = countersBase + counter * 8;
  store<u64>(p, load<u64>(p) + 1);
}
@inline function flagsOf(frame: u32): u8 { return load<u8>(meta(frame), 6); }
@inline function setFlags(frame: u32, flags: u8): void { store<u8>(meta(frame), flags, 6); }
@inline function pinsOf(frame: u32): u32 { return <u32>load<u16>(meta(frame), 4); }
@inline function touch(frame: u32, flags: u8): void {
  store<u8>(meta(frame), 1 + ((flags & PRIO_MASK) >> PRIO_SHIFT), 7);
}

/** Slot index holding `page`, or -1. */
@inline function find(page: u32): i32 {
  let i = home(page);
  while (true) {
    let k = load<u32>(slot(i));
    if (k == page) return <i32>i;
    if (k == NO_PAGE) return -1;
    i = (i + COLUMNS) & slotMask;
  }
  return -1;
}

/** Frame caching `page`, or -1; no argument checks, no counters. */
@inline export function frameOf(page: u32): i32 {
  let i = home(page);
  while (true) {
    let k = load<u32>(slot(i));
    if (k == page) return load<i32>(slot(i), 4);
    if (k == NO_PAGE) return -1;
    i = (i + COLUMNS) & slotMask;
  }
  return -1;
}

function tableInsert(page: u32, frame: u32): void {
  let i = home(page);
  while (load<u32>(slot(i)) != NO_PAGE) i = (i + COLUMNS) & slotMask;
  store<u32>(slot(i), page);
  store<u32>(slot(i), frame, 4);
}

/** Removes the slot at index `i`, shifting back later members of its run. */
function tableDelete(at: u32): void {
  let i = at;
  let j = at;
  while (true) {
    j = (j + COLUMNS) & slotMask;
    let k = load<u32>(slot(j));
    if (k == NO_PAGE) break;
    // Same column: compare rows. The entry at j may stay if its home row
    // lies cyclically in (row i, row j].
    let h = home(k) >>> 4;
    let ri = i >>> 4;
    let rj = j >>> 4;
    let stays = ri <= rj ? (ri < h && h <= rj) : (ri < h || h <= rj);
    if (stays) continue;
    store<u64>(slot(i), load<u64>(slot(j)));
    i = j;
  }
  store<u64>(slot(i), 0xFFFFFFFFFFFFFFFF);
}

function mapFrame(frame: u32, page: u32, prio: u8): void {
  let m = meta(frame);
  store<u32>(m, page);
  store<u16>(m, 0, 4);
  let flags: u8 = F_MAPPED | ((prio << PRIO_SHIFT) & PRIO_MASK);
  store<u8>(m, flags, 6);
  touch(frame, flags);
  store<u64>(m, 0, 8);
  tableInsert(page, frame);
  mappedCount++;
  bump(C_INSERTS);
}

/** Drops the frame's mapping; the caller has checked it is unpinned. */
function unmapFrame(frame: u32, at: u32): void {
  tableDelete(at);
  let m = meta(frame);
  if (load<u8>(m, 6) & F_DIRTY) dirtyCount--;
  store<u32>(m, NO_PAGE);
  store<u8>(m, 0, 6);
  store<u8>(m, 0, 7);
  mappedCount--;
  bump(C_REMOVES);
}

// --- single-page operations -----------------------------------------------

/** Frame caching `page`, or E_NOT_FOUND. */
export function pageLookup(page: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (page == NO_PAGE) return E_PAGE_INVALID;
  bump(C_LOOKUPS);
  let f = frameOf(page);
  if (f < 0) return E_NOT_FOUND;
  bump(C_HITS);
  return f;
}

/** Maps `page` into a free frame with cache priority `prio` (0..3); returns the frame. */
export function pageInsert(page: u32, prio: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (page == NO_PAGE) return E_PAGE_INVALID;
  if (prio > 3) return E_INVALID_ARG;
  if (find(page) >= 0) return E_EXISTS;
  if (freeTop == 0) return E_FULL;
  freeTop--;
  let frame = load<u32>(freeBase + <usize>freeTop * 4);
  mapFrame(frame, page, <u8>prio);
  return <i32>frame;
}

/**
 * Moves an unpinned, idle frame to `page` in one step (the usual end of an
 * eviction): the old page leaves the table, `page` enters it, the frame
 * comes back clean with priority `prio`. Returns the frame.
 */
export function pageRemap(frame: u32, page: u32, prio: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  if (page == NO_PAGE) return E_PAGE_INVALID;
  if (prio > 3) return E_INVALID_ARG;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  if (pinsOf(frame) != 0 || (flags & F_IO)) return E_BUSY;
  let old = load<u32>(meta(frame));
  if (old == page) return E_EXISTS;
  if (find(page) >= 0) return E_EXISTS;
  unmapFrame(frame, <u32>find(old));
  mapFrame(frame, page, <u8>prio);
  return <i32>frame;
}

/** Unmaps `page` and frees its frame (dirty contents are dropped). Returns the frame. */
export function pageRemove(page: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (page == NO_PAGE) return E_PAGE_INVALID;
  let at = find(page);
  if (at < 0) return E_NOT_FOUND;
  let frame = load<u32>(slot(<u32>at), 4);
  if (pinsOf(frame) != 0 || (flagsOf(frame) & F_IO)) return E_BUSY;
  unmapFrame(frame, <u32>at);
  store<u32>(freeBase + <usize>freeTop * 4, frame);
  freeTop++;
  return <i32>frame;
}

/** Page held by `frame`, as i64 so that all u32 pages fit; or a status. */
export function framePage(frame: u32): i64 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  if (!(flagsOf(frame) & F_MAPPED)) return E_NOT_MAPPED;
  return <i64>load<u32>(meta(frame));
}

function pinOne(frame: u32, exclusive: bool): i32 {
  if (frame >= frameCount) return E_FRAME_RANGE;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  let pins = pinsOf(frame);
  if ((flags & F_EXCLUSIVE) || (exclusive && pins != 0)) {
    bump(C_PIN_CONFLICTS);
    return E_CONFLICT;
  }
  if (pins == MAX_PINS) return E_FULL;
  if (pins == 0) pinnedCount++;
  store<u16>(meta(frame), <u16>(pins + 1), 4);
  if (exclusive) setFlags(frame, flags | F_EXCLUSIVE);
  touch(frame, flags);
  return <i32>(pins + 1);
}

function unpinOne(frame: u32): i32 {
  if (frame >= frameCount) return E_FRAME_RANGE;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  let pins = pinsOf(frame);
  if (pins == 0) return E_UNDERFLOW;
  pins--;
  store<u16>(meta(frame), <u16>pins, 4);
  if (pins == 0) {
    pinnedCount--;
    setFlags(frame, flags & ~F_EXCLUSIVE);
  }
  return <i32>pins;
}

/** Pins a frame, shared (exclusive = 0) or exclusive (1). Returns the pin count. */
export function framePin(frame: u32, exclusive: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (exclusive > 1) return E_INVALID_ARG;
  return pinOne(frame, exclusive == 1);
}

/** Drops one pin. Returns the pins left. */
export function frameUnpin(frame: u32): i32 {
  if (!ready) return E_NOT_READY;
  return unpinOne(frame);
}

/** Sets (1) or clears (0) the dirty flag. Returns OK. */
export function frameSetDirty(frame: u32, dirty: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  if (dirty > 1) return E_INVALID_ARG;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  let was = (flags & F_DIRTY) != 0;
  if (dirty == 1 && !was) { dirtyCount++; setFlags(frame, flags | F_DIRTY); }
  if (dirty == 0 && was) { dirtyCount--; setFlags(frame, flags & ~F_DIRTY); }
  return OK;
}

/** Sets (1) or clears (0) the I/O-in-flight flag. Returns OK. */
export function frameSetIo(frame: u32, busy: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  if (busy > 1) return E_INVALID_ARG;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  setFlags(frame, busy ? flags | F_IO : flags & ~F_IO);
  return OK;
}

/** Sets the frame's cache priority, 0..3. Returns OK. */
export function frameSetPriority(frame: u32, prio: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  if (prio > 3) return E_INVALID_ARG;
  let flags = flagsOf(frame);
  if (!(flags & F_MAPPED)) return E_NOT_MAPPED;
  setFlags(frame, (flags & ~PRIO_MASK) | <u8>(prio << PRIO_SHIFT));
  return OK;
}

/** Pin count in bits 0-15, flags in bits 16-23, CLOCK ref in bits 24-31. */
export function frameState(frame: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (frame >= frameCount) return E_FRAME_RANGE;
  return <i32>(load<u32>(meta(frame), 4) & 0x7FFFFFFF);
}

/**
 * Chooses a victim by CLOCK among mapped frames that are neither pinned nor
 * in I/O. The frame stays mapped; its DIRTY flag (frameState) says whether
 * it must be written back before pageRemap. Free frames are not victims:
 * pageInsert takes those first.
 */
export function frameVictim(): i32 {
  if (!ready) return E_NOT_READY;
  if (mappedCount == 0) return E_NO_VICTIM;
  // A frame's ref is at most 4, so five sweeps find any idle frame.
  let limit = frameCount * 5;
  for (let s: u32 = 0; s < limit; s++) {
    let f = hand;
    hand = hand + 1 == frameCount ? 0 : hand + 1;
    let m = meta(f);
    let flags = load<u8>(m, 6);
    if (!(flags & F_MAPPED) || (flags & F_IO) || load<u16>(m, 4) != 0) continue;
    let ref = load<u8>(m, 7);
    if (ref != 0) { store<u8>(m, ref - 1, 7); continue; }
    let p = countersBase + C_CLOCK_STEPS * 8;
    store<u64>(p, load<u64>(p) + <u64>(s + 1));
    bump(C_VICTIMS);
    return <i32>f;
  }
  let p = countersBase + C_CLOCK_STEPS * 8;
  store<u64>(p, load<u64>(p) + <u64>limit);
  return E_NO_VICTIM;
}

// --- batched operations (frame lists in the u32 scratch) -------------------

/**
 * Looks up pages first .. first + count - 1; writes each frame, or -1 when
 * the page is not cached, to scratch[0 .. count). Returns the number found.
 */
export function pageLookupRun(first: u32, count: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (count == 0 || count > scratchCount) return E_INVALID_ARG;
  if (<u64>first + <u64>count - 1 >= <u64>NO_PAGE) return E_PAGE_INVALID;
  let found: u32 = 0;
  let i: u32 = 0;
  while (i < count) {
    let page = first + i;
    // Whole aligned groups whose pages all sit in their home row: 16 at once.
    if ((page & 15) == 0 && count - i >= 16 && lookupGroup(page, scratchBase + (<usize>i << 2))) {
      found += 16;
      i += 16;
      continue;
    }
    let f = frameOf(page);
    store<i32>(scratchBase + (<usize>i << 2), f);
    found += <u32>(f >= 0);
    i++;
  }
  let p = countersBase + C_LOOKUPS * 8;
  store<u64>(p, load<u64>(p) + <u64>count);
  p = countersBase + C_HITS * 8;
  store<u64>(p, load<u64>(p) + <u64>found);
  return <i32>found;
}

/**
 * The fast path of a run: an aligned group of 16 pages that all sit in their
 * home row. Column c of the row holds page base + (c ^ m), so output pair v
 * is slot pair v ^ (m >> 1), its lanes swapped when m is odd. Writes the 16
 * frames to `out` and returns true; returns false (out partly written) as
 * soon as a page is absent or displaced, and the caller probes singly.
 */
function lookupGroup(base: u32, out: usize): bool {
  let h = (base >>> 4) * 0x9E3779B1;
  let row = slot((h >>> rowShift) << 4);
  let m = (h >>> 16) & 15;
  let half = m >>> 1;
  let pages = i32x4(<i32>base, 0, <i32>base + 1, 0);
  let two = i32x4(2, 0, 2, 0);
  for (let v: u32 = 0; v < 8; v++) {
    let pair = v128.load(row + (<usize>(v ^ half) << 4));
    if (m & 1) pair = v128.shuffle<i32>(pair, pair, 2, 3, 0, 1);
    // pages sit in lanes 0 and 2, their frames in lanes 1 and 3
    if ((i32x4.bitmask(i32x4.eq(pair, pages)) & 0b0101) != 0b0101) return false;
    v128.store_lane<i64>(out + (<usize>v << 3), v128.shuffle<i32>(pair, pair, 1, 3, 1, 3), 0);
    pages = i32x4.add(pages, two);
  }
  return true;
}

/**
 * Pins every frame of scratch[0 .. count), all or none: on the first
 * failure the pins already taken are dropped and that failure is returned.
 */
export function framePinList(count: u32, exclusive: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (count == 0 || count > scratchCount || exclusive > 1) return E_INVALID_ARG;
  for (let i: u32 = 0; i < count; i++) {
    let r = pinOne(load<u32>(scratchBase + <usize>i * 4), exclusive == 1);
    if (r < 0) {
      for (let j: u32 = 0; j < i; j++) unpinOne(load<u32>(scratchBase + <usize>j * 4));
      return r;
    }
  }
  return OK;
}

/**
 * Unpins every frame of scratch[0 .. count), all or none: on the first
 * failure the pins already dropped are restored and that failure returned.
 */
export function frameUnpinList(count: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (count == 0 || count > scratchCount) return E_INVALID_ARG;
  for (let i: u32 = 0; i < count; i++) {
    let p = scratchBase + <usize>i * 4;
    let frame = load<u32>(p);
    // Remember in bit 31 whether this pin was exclusive, to restore it.
    let wasExclusive = frame < frameCount && (flagsOf(frame) & F_EXCLUSIVE) != 0;
    let r = unpinOne(frame);
    if (r < 0) {
      for (let j: u32 = 0; j < i; j++) {
        let q = scratchBase + <usize>j * 4;
        let e = load<u32>(q);
        let g = e & 0x7FFFFFFF;
        pinOne(g, (e >>> 31) != 0);
        store<u32>(q, g);
      }
      return r;
    }
    if (wasExclusive) store<u32>(p, frame | 0x80000000);
  }
  for (let i: u32 = 0; i < count; i++) {
    let p = scratchBase + <usize>i * 4;
    store<u32>(p, load<u32>(p) & 0x7FFFFFFF);
  }
  return OK;
}

/**
 * Writes the dirty frames to scratch[0 ..) in ascending page order, ready to
 * be written back with adjacent pages coalesced. Returns how many.
 */
export function frameDirtyList(): i32 {
  if (!ready) return E_NOT_READY;
  let n: u32 = 0;
  for (let f: u32 = 0; f < frameCount; f++) {
    let m = meta(f);
    if ((load<u8>(m, 6) & (F_MAPPED | F_DIRTY)) == (F_MAPPED | F_DIRTY)) {
      store<u64>(sortA + <usize>n * 8, (<u64>load<u32>(m) << 32) | <u64>f);
      n++;
    }
  }
  let sorted = n > 32 ? radixSortByHigh(n) : insertionSort(n);
  for (let i: u32 = 0; i < n; i++) {
    store<u32>(scratchBase + <usize>i * 4, <u32>load<u64>(sorted + <usize>i * 8));
  }
  return <i32>n;
}

function insertionSort(n: u32): usize {
  for (let i: u32 = 1; i < n; i++) {
    let v = load<u64>(sortA + <usize>i * 8);
    let j = i;
    while (j > 0 && load<u64>(sortA + <usize>(j - 1) * 8) > v) {
      store<u64>(sortA + <usize>j * 8, load<u64>(sortA + <usize>(j - 1) * 8));
      j--;
    }
    store<u64>(sortA + <usize>j * 8, v);
  }
  return sortA;
}

/** LSD radix sort of sortA[0 .. n) by the high 32 bits, 8 bits a pass. */
function radixSortByHigh(n: u32): usize {
  let counts = memory.data(256 * 4);
  let src = sortA;
  let dst = sortB;
  for (let shift: u64 = 32; shift < 64; shift += 8) {
    memory.fill(counts, 0, 256 * 4);
    for (let i: u32 = 0; i < n; i++) {
      let d = <usize>((load<u64>(src + <usize>i * 8) >> shift) & 0xFF);
      store<u32>(counts + d * 4, load<u32>(counts + d * 4) + 1);
    }
    let sum: u32 = 0;
    for (let d: usize = 0; d < 256; d++) {
      let c = load<u32>(counts + d * 4);
      store<u32>(counts + d * 4, sum);
      sum += c;
    }
    for (let i: u32 = 0; i < n; i++) {
      let v = load<u64>(src + <usize>i * 8);
      let d = <usize>((v >> shift) & 0xFF);
      let at = load<u32>(counts + d * 4);
      store<u64>(dst + <usize>at * 8, v);
      store<u32>(counts + d * 4, at + 1);
    }
    let t = src; src = dst; dst = t;
  }
  return src;
}

// --- totals -----------------------------------------------------------------

/** 0 mapped, 1 free, 2 dirty, 3 pinned frames. */
export function frameTotals(which: u32): i32 {
  if (!ready) return E_NOT_READY;
  switch (which) {
    case 0: return <i32>mappedCount;
    case 1: return <i32>freeTop;
    case 2: return <i32>dirtyCount;
    case 3: return <i32>pinnedCount;
  }
  return E_INVALID_ARG;
}
