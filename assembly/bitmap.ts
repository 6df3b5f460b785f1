// The out-of-sync bitmap: one bit per page of the u32 page space, "the
// partner may lack this page" (DRBD's drbd_bitmap.c), issue #16.
//
// It lives in an instance of its own, set up by bitmapInit() instead of
// init(): the core's memory is laid out once and never grows, while this one
// grows as chunks are needed (bindings/core/bitmap.ts refreshes its views
// after a call that grew it). The two modes exclude each other: an instance
// answers either the core's exports or these, and E_NOT_READY to the others.
//
// The page space (2^32 pages, 512 MiB of bits) is cut into 131072 chunks of
// 32768 pages (4 KiB of bits), kept in two levels, like a page table:
//
//   page  |<- 8 ->|<---- 9 ---->|<------- 15 -------->|
//         | top t | entry i     | bit in the chunk    |   chunk c = page >> 15
//
//   top directory (static, 256 x 8 B)     directory block (4 KiB)       chunk block (4 KiB)
//   +-----------+------+-------+          +-----------+--------+-------+   +------------------+
//   | dir block | live | dirty |  t ───▶  | block     | weight | flags | ─▶ | 512 u64 words,   |
//   | u32       | u16  | u16   |          | u32       | u16    | u16   |   | bit k of word j  |
//   +-----------+------+-------+          +-----------+--------+-------+   | = page 64j + k   |
//     0 = none: reads see block 0,         512 entries, one per chunk      +------------------+
//     a block of zeros (empty entries)
//
//   live   entries of the directory that hold a block or are dirty; a
//          directory whose count falls to 0 is freed
//   dirty  entries with F_DIRTY: changed since the caller last saved them
//   weight set bits in the chunk, 0 .. 32768
//   flags  bit 0 F_DIRTY
//
// Two blocks are shared and never written: block 0 (ZERO, all zeros) and
// block 1 (ONES, all ones). An empty chunk points at ZERO and a full one at
// ONES, so that reads never branch on absence (an absent directory reads as
// block 0, whose entries all point at ZERO), a long run costs one entry per
// chunk and no block, and the whole space set costs 256 directory blocks
// (1 MiB). A chunk has a block of its own only while it holds 1 .. 32767
// bits; writes first give a partly covered chunk its own block (at most two
// per range: its ends), so a refusal (E_TOO_LARGE) comes before any change.
//
// Linear memory, grown as blocks are needed and never past the limit given
// to bitmapInit:
//
//   0        __heap_base                                                4 KiB aligned
//   +--------+--------------+--------+-----------------------+------+------+-------+----
//   | static | top directory| weight | io area (runs out,    | ZERO | ONES | block | ...
//   | data   | 2 KiB        | 64 B   | runs in, chunk bytes) |      |      | 2     |
//   +--------+--------------+--------+-----------------------+------+------+-------+----
//
// Freed blocks go on a free list (linked through their first u32) and are
// reused before memory grows; memory never shrinks, so it stays at the most
// blocks ever held at once, a bound proportional to what was set or spanned.
// Chunk bytes are the on-disk form (little-endian words): bit k of byte j of
// chunk c is page c * 32768 + 8j + k. Page 0xFFFFFFFF is not a page and its
// bit (the last of chunk 131071) is never set.
//
// The weight (set pages, an f64 so that the bindings read it without a
// BigInt) sits in memory after the top directory. bindings/core/bitmap.ts
// tests a page, and sets or clears one in a chunk that has a block of its
// own and stays neither full nor empty, from JS through views of this
// layout (a call into WebAssembly costs more than the work): keep both in
// step.

import { OK, E_NOT_READY, E_INVALID_ARG, E_NOT_FOUND, E_TOO_LARGE, E_ALREADY_INIT } from './status';
import { ready } from './layout';

@inline const WASM_PAGE: u64 = 65536;
@inline const MAX_WASM_PAGES: u32 = 65536; // 4 GiB
@inline const BLOCK_SHIFT: u32 = 12;
@inline const BLOCK_BYTES: usize = 4096;
@inline const CHUNK_SHIFT: u32 = 15;
@inline const CHUNK_PAGES: u32 = 32768;
@inline const CHUNK_MASK: u32 = 32767;
@inline const CHUNK_WORDS: u32 = 512;
@inline const CHUNKS: u32 = 131072;
@inline const DIR_SHIFT: u32 = 9;
@inline const DIR_MASK: u32 = 511;
@inline const DIR_ENTRIES: u32 = 512;
@inline const TOPS: u32 = 256;
/** One past the last page: 0xFFFFFFFF is not a page. */
@inline const END: u64 = 0xFFFFFFFF;
@inline const MAX_RUNS: u32 = 65536;
@inline const RUN_SLACK: usize = 512;

@inline const ZERO: u32 = 0;
@inline const ONES: u32 = 1;
@inline const F_DIRTY: u32 = 1;

/** Set once bitmapInit() has laid out memory; every bitmap export checks it first. */
export let bitmapReady: bool = false;
let topBase: usize = 0;
let ioBase: usize = 0;
let ioBytes: usize = 0;
let runMax: u32 = 0;
let poolBase: usize = 0;
let poolBlocks: u32 = 0; // blocks carved from memory so far, ZERO and ONES included
let maxBlocks: u32 = 0;
let maxPages: u32 = 0;   // wasm pages memory may grow to
let freeHead: u32 = 0;   // 0: the free list is empty (block 0 is never free)
let freeCount: u32 = 0;
let weightAt: usize = 0; // f64: set pages (in memory: the bindings' one-page paths keep it too)
let ownChunks: u32 = 0;  // chunks with a block of their own
let fullChunks: u32 = 0; // chunks pointing at ONES
let dirBlocks: u32 = 0;

// --- setup ------------------------------------------------------------------

/**
 * Lays out a bitmap instance: an io area for `runs` run pairs (at least one
 * chunk's bytes), and a memory limit of `limitPages` wasm pages of 64 KiB
 * (0: none but the 4 GiB of wasm32; the whole space needs about 514 MiB).
 * Once per instance, and not in an instance set up by init().
 */
export function bitmapInit(runs: u32, limitPages: u32): i32 {
  if (bitmapReady || ready) return E_ALREADY_INIT;
  if (runs == 0 || runs > MAX_RUNS || limitPages > MAX_WASM_PAGES) return E_INVALID_ARG;
  let limit = limitPages == 0 ? MAX_WASM_PAGES : limitPages;
  topBase = (__heap_base + 63) & ~<usize>63;
  weightAt = topBase + <usize>TOPS * 8;
  ioBase = weightAt + 64;
  // Runs out are written as edges, a word's worth past the batch at most.
  ioBytes = max(<usize>runs * 8 + RUN_SLACK, BLOCK_BYTES);
  poolBase = (ioBase + ioBytes + BLOCK_BYTES - 1) & ~(BLOCK_BYTES - 1);
  let room = <u64>limit * WASM_PAGE;
  let least = <u64>poolBase + 3 * <u64>BLOCK_BYTES; // ZERO, ONES and one block
  if (least > room) return E_TOO_LARGE;
  let blocks = (room - <u64>poolBase) >> BLOCK_SHIFT;
  let most = <u64>(2 + CHUNKS + TOPS);
  maxBlocks = <u32>(blocks < most ? blocks : most);
  maxPages = limit;
  if (!growTo(<u64>poolBase + 2 * <u64>BLOCK_BYTES, false)) return E_TOO_LARGE;
  memory.fill(blockAt(ONES), 0xFF, BLOCK_BYTES);
  poolBlocks = 2;
  runMax = runs;
  bitmapReady = true;
  return OK;
}

/**
 * Grows memory to hold `end` bytes, and by an eighth more when `slack` and
 * the limit allow (growth detaches the bindings' views: not every block).
 */
function growTo(end: u64, slack: bool): bool {
  let have = <u32>memory.size();
  let need = <u32>((end + WASM_PAGE - 1) / WASM_PAGE);
  if (need <= have) return true;
  if (need > maxPages) return false;
  let want = slack ? need + (have >> 3) : need;
  if (want > maxPages) want = maxPages;
  if (memory.grow(<i32>(want - have)) >= 0) return true;
  return want != need && memory.grow(<i32>(need - have)) >= 0;
}

@inline function addWeight(d: f64): void { store<f64>(weightAt, load<f64>(weightAt) + d); }

// --- blocks -----------------------------------------------------------------

@inline function blockAt(b: u32): usize { return poolBase + (<usize>b << BLOCK_SHIFT); }
@inline function topAt(t: u32): usize { return topBase + (<usize>t << 3); }
/** The directory entry of chunk `c` (inside block ZERO when its directory is absent: read only). */
@inline function entryAt(c: u32): usize {
  return blockAt(load<u32>(topAt(c >> DIR_SHIFT))) + (<usize>(c & DIR_MASK) << 3);
}
@inline function blockOf(e: usize): u32 { return load<u32>(e); }
@inline function weightOf(e: usize): u32 { return <u32>load<u16>(e, 4); }
@inline function flagsOf(e: usize): u32 { return <u32>load<u16>(e, 6); }

/** A block filled with `fill` (0 or 0xFF), or 0 when the limit is reached. */
function alloc(fill: u8): u32 {
  let b: u32;
  if (freeHead != 0) {
    b = freeHead;
    freeHead = load<u32>(blockAt(b));
    freeCount--;
    memory.fill(blockAt(b), fill, BLOCK_BYTES);
    return b;
  }
  if (poolBlocks >= maxBlocks) return 0;
  if (!growTo(<u64>poolBase + (<u64>(poolBlocks + 1) << BLOCK_SHIFT), true)) return 0;
  b = poolBlocks++;
  // Memory past the last carved block has never been written: it is zero.
  if (fill != 0) memory.fill(blockAt(b), fill, BLOCK_BYTES);
  return b;
}

function release(b: u32): void {
  store<u32>(blockAt(b), freeHead);
  freeHead = b;
  freeCount++;
}

/**
 * Writes chunk `c`'s entry `e` (its directory present), keeping the
 * directory's live and dirty counts and the block counters, and freeing
 * the old block when it was the chunk's own and is replaced.
 */
function putEntry(c: u32, e: usize, block: u32, w: u32, flags: u32): void {
  let t = topAt(c >> DIR_SHIFT);
  let oldBlock = blockOf(e);
  let oldFlags = flagsOf(e);
  let wasLive = <u32>(oldBlock != ZERO || (oldFlags & F_DIRTY) != 0);
  let isLive = <u32>(block != ZERO || (flags & F_DIRTY) != 0);
  if (wasLive != isLive) store<u16>(t, <u16>(<u32>load<u16>(t, 4) + isLive - wasLive), 4);
  let wasDirty = oldFlags & F_DIRTY;
  let isDirty = flags & F_DIRTY;
  if (wasDirty != isDirty) store<u16>(t, <u16>(<u32>load<u16>(t, 6) + isDirty - wasDirty), 6);
  if (oldBlock != block) {
    if (oldBlock > ONES) { ownChunks--; release(oldBlock); } else if (oldBlock == ONES) fullChunks--;
    if (block > ONES) ownChunks++; else if (block == ONES) fullChunks++;
  }
  store<u32>(e, block);
  store<u16>(e, <u16>w, 4);
  store<u16>(e, <u16>flags, 6);
}

/** Gives top `t` a directory block. False when the limit is reached. */
function ensureDir(t: u32): bool {
  let p = topAt(t);
  if (load<u32>(p) != 0) return true;
  let d = alloc(0);
  if (d == 0) return false;
  store<u32>(p, d);
  store<u32>(p, 0, 4); // live and dirty counts
  dirBlocks++;
  return true;
}

/** Frees top `t`'s directory when no entry holds a block or is dirty. */
function settleDir(t: u32): void {
  let p = topAt(t);
  let d = load<u32>(p);
  if (d == 0 || load<u16>(p, 4) != 0) return;
  release(d);
  store<u32>(p, 0);
  dirBlocks--;
}

/** A chunk with a block of its own that is empty or full goes back to ZERO or ONES. */
function settle(c: u32): void {
  let e = entryAt(c);
  let b = blockOf(e);
  if (b <= ONES) return;
  let w = weightOf(e);
  if (w == 0) putEntry(c, e, ZERO, 0, flagsOf(e));
  else if (w == CHUNK_PAGES) putEntry(c, e, ONES, w, flagsOf(e));
}

/** Gives chunk `c` (its directory present) a block of its own when it points at `shared`. */
function own(c: u32, shared: u32): bool {
  let e = entryAt(c);
  if (blockOf(e) != shared) return true;
  let b = alloc(shared == ONES ? 0xFF : 0);
  if (b == 0) return false;
  putEntry(c, e, b, weightOf(e), flagsOf(e));
  return true;
}

// --- words ------------------------------------------------------------------

/** Bits lo & 63 .. 63 of a word. */
@inline function fromMask(lo: u32): u64 { return ~<u64>0 << <u64>(lo & 63); }
/** Bits 0 .. (hi - 1) & 63 of a word (hi > 0). */
@inline function toMask(hi: u32): u64 { return ~<u64>0 >> <u64>(63 - ((hi - 1) & 63)); }
@inline function wordAt(p: usize, w: u32): usize { return p + (<usize>w << 3); }

/**
 * Set bits in `n` words from `p`, by u64 popcnt four words a step (the
 * hardware instruction: i8x16.popcnt, a byte-table shuffle on x86 without
 * AVX-512, measured 30% slower over a chunk).
 */
function popcntWords(p: usize, n: u32): u32 {
  let sum: u64 = 0;
  let i: u32 = 0;
  for (; i + 4 <= n; i += 4) {
    let a = wordAt(p, i);
    sum += popcnt<u64>(load<u64>(a)) + popcnt<u64>(load<u64>(a, 8)) +
      popcnt<u64>(load<u64>(a, 16)) + popcnt<u64>(load<u64>(a, 24));
  }
  for (; i < n; i++) sum += popcnt<u64>(load<u64>(wordAt(p, i)));
  return <u32>sum;
}

/** Sets bits [lo, hi) of the chunk at `p`; returns how many were clear. */
function setBits(p: usize, lo: u32, hi: u32): u32 {
  let w0 = lo >> 6;
  let w1 = (hi - 1) >> 6;
  let m0 = fromMask(lo);
  let m1 = toMask(hi);
  if (w0 == w1) {
    let a = wordAt(p, w0);
    let v = load<u64>(a);
    let m = m0 & m1;
    store<u64>(a, v | m);
    return <u32>popcnt<u64>(m & ~v);
  }
  let a = wordAt(p, w0);
  let v = load<u64>(a);
  store<u64>(a, v | m0);
  let n = <u32>popcnt<u64>(m0 & ~v);
  let inner = w1 - w0 - 1;
  if (inner != 0) {
    let from = wordAt(p, w0 + 1);
    n += (inner << 6) - popcntWords(from, inner);
    memory.fill(from, 0xFF, <usize>inner << 3);
  }
  a = wordAt(p, w1);
  v = load<u64>(a);
  store<u64>(a, v | m1);
  return n + <u32>popcnt<u64>(m1 & ~v);
}

/** Clears bits [lo, hi) of the chunk at `p`; returns how many were set. */
function clearBits(p: usize, lo: u32, hi: u32): u32 {
  let w0 = lo >> 6;
  let w1 = (hi - 1) >> 6;
  let m0 = fromMask(lo);
  let m1 = toMask(hi);
  if (w0 == w1) {
    let a = wordAt(p, w0);
    let v = load<u64>(a);
    let m = m0 & m1;
    store<u64>(a, v & ~m);
    return <u32>popcnt<u64>(m & v);
  }
  let a = wordAt(p, w0);
  let v = load<u64>(a);
  store<u64>(a, v & ~m0);
  let n = <u32>popcnt<u64>(m0 & v);
  let inner = w1 - w0 - 1;
  if (inner != 0) {
    let from = wordAt(p, w0 + 1);
    n += popcntWords(from, inner);
    memory.fill(from, 0, <usize>inner << 3);
  }
  a = wordAt(p, w1);
  v = load<u64>(a);
  store<u64>(a, v & ~m1);
  return n + <u32>popcnt<u64>(m1 & v);
}

/** Set bits [lo, hi) of the chunk at `p`. */
function countBits(p: usize, lo: u32, hi: u32): u32 {
  let w0 = lo >> 6;
  let w1 = (hi - 1) >> 6;
  let m0 = fromMask(lo);
  let m1 = toMask(hi);
  if (w0 == w1) return <u32>popcnt<u64>(load<u64>(wordAt(p, w0)) & m0 & m1);
  return <u32>popcnt<u64>(load<u64>(wordAt(p, w0)) & m0) +
    popcntWords(wordAt(p, w0 + 1), w1 - w0 - 1) +
    <u32>popcnt<u64>(load<u64>(wordAt(p, w1)) & m1);
}

/**
 * The first set bit at or after `bit` in the chunk at `p`, or -1. Word by
 * word to a 64-byte line, then a line a step: four v128 or-ed together and
 * one any_true skip 512 clear bits.
 */
function firstSet(p: usize, bit: u32): i32 {
  let w = bit >> 6;
  let v = load<u64>(wordAt(p, w)) & fromMask(bit);
  if (v != 0) return <i32>((w << 6) + <u32>ctz<u64>(v));
  w++;
  while ((w & 7) != 0) {
    v = load<u64>(wordAt(p, w));
    if (v != 0) return <i32>((w << 6) + <u32>ctz<u64>(v));
    w++;
  }
  while (w < CHUNK_WORDS) {
    let a = wordAt(p, w);
    let any = v128.or(
      v128.or(v128.load(a), v128.load(a, 16)),
      v128.or(v128.load(a, 32), v128.load(a, 48)),
    );
    if (v128.any_true(any)) {
      for (let k: u32 = 0; k < 8; k++) {
        v = load<u64>(wordAt(a, k));
        if (v != 0) return <i32>(((w + k) << 6) + <u32>ctz<u64>(v));
      }
    }
    w += 8;
  }
  return -1;
}

// --- walks over chunks ------------------------------------------------------

/** The first set page at or after `from`, or END. Absent directories are skipped whole. */
function nextSet(from: u64): u64 {
  if (from >= END) return END;
  let c = <u32>(from >> CHUNK_SHIFT);
  let bit = <u32>from & CHUNK_MASK;
  while (c < CHUNKS) {
    let t = c >> DIR_SHIFT;
    let d = load<u32>(topAt(t));
    if (d == 0) {
      c = (t + 1) << DIR_SHIFT;
      bit = 0;
      continue;
    }
    let e = blockAt(d) + (<usize>(c & DIR_MASK) << 3);
    let w = weightOf(e);
    if (w == CHUNK_PAGES) return (<u64>c << CHUNK_SHIFT) + <u64>bit;
    if (w != 0) {
      let i = firstSet(blockAt(blockOf(e)), bit);
      if (i >= 0) return (<u64>c << CHUNK_SHIFT) + <u64>i;
    }
    c++;
    bit = 0;
  }
  return END;
}

/** Sets pages [first, last] (prepared: see prepareSet). Returns how many were clear. */
function setRange(first: u32, last: u32): u64 {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  let added: u64 = 0;
  for (let c = c0; c <= c1; c++) {
    let e = entryAt(c);
    let w = weightOf(e);
    if (w == CHUNK_PAGES) continue;
    let lo = c == c0 ? first & CHUNK_MASK : 0;
    let hi = c == c1 ? (last & CHUNK_MASK) + 1 : CHUNK_PAGES;
    let n: u32;
    if (lo == 0 && hi == CHUNK_PAGES) {
      n = CHUNK_PAGES - w;
      putEntry(c, e, ONES, CHUNK_PAGES, flagsOf(e) | F_DIRTY);
    } else {
      let b = blockOf(e);
      n = setBits(blockAt(b), lo, hi);
      if (n == 0) continue;
      w += n;
      putEntry(c, e, w == CHUNK_PAGES ? ONES : b, w, flagsOf(e) | F_DIRTY);
    }
    added += n;
  }
  addWeight(<f64>added);
  return added;
}

/**
 * Allocates what setting [first, last] needs: the directories over its
 * chunks, and a block of its own for each end chunk that is partly covered
 * and empty. False when the limit is reached (then undo with unprepare).
 */
function prepareSet(first: u32, last: u32): bool {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  let t1 = c1 >> DIR_SHIFT;
  for (let t = c0 >> DIR_SHIFT; t <= t1; t++) if (!ensureDir(t)) return false;
  let partial0 = (first & CHUNK_MASK) != 0 || (c0 == c1 && (last & CHUNK_MASK) != CHUNK_MASK);
  if (partial0 && !own(c0, ZERO)) return false;
  if (c1 != c0 && (last & CHUNK_MASK) != CHUNK_MASK && !own(c1, ZERO)) return false;
  return true;
}

/**
 * Clears pages [first, last] (prepared: see prepareClear). Returns how many
 * were set. Chunks under absent directories are skipped whole.
 */
function clearRange(first: u32, last: u32): u64 {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  let removed: u64 = 0;
  let c = c0;
  while (c <= c1) {
    let t = c >> DIR_SHIFT;
    if (load<u32>(topAt(t)) == 0) {
      c = (t + 1) << DIR_SHIFT;
      continue;
    }
    let e = entryAt(c);
    let w = weightOf(e);
    if (w != 0) {
      let lo = c == c0 ? first & CHUNK_MASK : 0;
      let hi = c == c1 ? (last & CHUNK_MASK) + 1 : CHUNK_PAGES;
      if (lo == 0 && hi == CHUNK_PAGES) {
        removed += w;
        putEntry(c, e, ZERO, 0, flagsOf(e) | F_DIRTY);
      } else {
        let b = blockOf(e);
        let n = clearBits(blockAt(b), lo, hi);
        if (n != 0) {
          w -= n;
          removed += n;
          putEntry(c, e, w == 0 ? ZERO : b, w, flagsOf(e) | F_DIRTY);
        }
      }
    }
    c++;
  }
  addWeight(-<f64>removed);
  return removed;
}

/** Gives each partly covered end chunk that is full a block of its own. */
function prepareClear(first: u32, last: u32): bool {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  let partial0 = (first & CHUNK_MASK) != 0 || (c0 == c1 && (last & CHUNK_MASK) != CHUNK_MASK);
  if (partial0 && !own(c0, ONES)) return false;
  if (c1 != c0 && (last & CHUNK_MASK) != CHUNK_MASK && !own(c1, ONES)) return false;
  return true;
}

/** Undoes a failed prepareSet or prepareClear: blocks and directories it gave go back. */
function unprepare(first: u32, last: u32): void {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  settle(c0);
  settle(c1);
  let t1 = c1 >> DIR_SHIFT;
  for (let t = c0 >> DIR_SHIFT; t <= t1; t++) settleDir(t);
}

/** Set pages of [first, last]: whole chunks by their weight, ends by popcount. */
function countRange(first: u32, last: u32): u64 {
  let c0 = first >> CHUNK_SHIFT;
  let c1 = last >> CHUNK_SHIFT;
  let sum: u64 = 0;
  let c = c0;
  while (c <= c1) {
    let t = c >> DIR_SHIFT;
    if (load<u32>(topAt(t)) == 0) {
      c = (t + 1) << DIR_SHIFT;
      continue;
    }
    let e = entryAt(c);
    let w = weightOf(e);
    if (w != 0) {
      let lo = c == c0 ? first & CHUNK_MASK : 0;
      let hi = c == c1 ? (last & CHUNK_MASK) + 1 : CHUNK_PAGES;
      if (lo == 0 && hi == CHUNK_PAGES) sum += w;
      else if (w == CHUNK_PAGES) sum += hi - lo;
      else sum += countBits(blockAt(blockOf(e)), lo, hi);
    }
    c++;
  }
  return sum;
}

/** A bad page range: count 0, or past the last page. */
@inline function badRange(first: u32, count: u32): bool {
  return count == 0 || <u64>first + <u64>count > END;
}

// --- exports ----------------------------------------------------------------
//
// Counts and pages come back as f64 (exact below 2^53), so that the JS side
// gets a number, not a BigInt, and statuses stay negative.

/** Sets `count` pages from `first`. Returns how many were clear before. */
export function bitmapSet(first: u32, count: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  if (badRange(first, count)) return E_INVALID_ARG;
  let last = first + (count - 1);
  if (!prepareSet(first, last)) {
    unprepare(first, last);
    return E_TOO_LARGE;
  }
  return <f64>setRange(first, last);
}

/** Clears `count` pages from `first`. Returns how many were set before. */
export function bitmapClear(first: u32, count: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  if (badRange(first, count)) return E_INVALID_ARG;
  let last = first + (count - 1);
  if (!prepareClear(first, last)) {
    unprepare(first, last);
    return E_TOO_LARGE;
  }
  return <f64>clearRange(first, last);
}

/** 1 when `page` is set, else 0. */
export function bitmapTest(page: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (page == <u32>END) return E_INVALID_ARG;
  let p = blockAt(blockOf(entryAt(page >> CHUNK_SHIFT)));
  let bit = page & CHUNK_MASK;
  return <i32>((load<u64>(wordAt(p, bit >> 6)) >> <u64>(bit & 63)) & 1);
}

/** The first set page at or after `from`, or E_NOT_FOUND. */
export function bitmapNext(from: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  let p = nextSet(from);
  return p >= END ? <f64>E_NOT_FOUND : <f64>p;
}

/** Set pages among `count` pages from `first`. */
export function bitmapCount(first: u32, count: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  if (badRange(first, count)) return E_INVALID_ARG;
  return <f64>countRange(first, first + (count - 1));
}

/** Set pages in all (kept up to date by every change). */
export function bitmapWeight(): f64 {
  if (!bitmapReady) return E_NOT_READY;
  return load<f64>(weightAt);
}

/**
 * Writes up to `max` runs of set pages that start at or after `from` (a run
 * holding `from` counts from `from`) to the io area as u32 pairs (first,
 * count), in address order; returns how many. Runs are whole: the next call
 * goes on from the end of the last one.
 */
export function bitmapRuns(from: u32, max: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (max == 0 || max > runMax) return E_INVALID_ARG;
  // One pass over chunks and words writing edges: the page where a run
  // starts, then the page where it ends, and so on; `open` is whether the
  // page before the one looked at is set. In a chunk with a block of its
  // own, edges are the bits of v ^ (v << 1 | open), written two a word
  // whatever their number (then one a step when there are more), so that
  // the loop hardly branches on the bits. The batch ends after the word
  // where the edges reach 2 * max: the first max runs are whole then, and
  // edges past them are dropped (the slack after the batch holds them),
  // for the next call finds them again from the end of the last run.
  let out = ioBase;
  let k: u32 = 0;
  let want = max << 1;
  let open: u64 = 0;
  let c = from >> CHUNK_SHIFT;
  let bit = from & CHUNK_MASK;
  while (c < CHUNKS && k < want) {
    let t = c >> DIR_SHIFT;
    let d = load<u32>(topAt(t));
    let e = blockAt(d) + (<usize>(c & DIR_MASK) << 3);
    let w = weightOf(e);
    let base = <u32>c << CHUNK_SHIFT;
    if (w == 0) {
      if (open != 0) {
        store<u32>(out + (<usize>k << 2), base);
        k++;
        open = 0;
      }
      // An absent directory: its 512 chunks are empty.
      c = d == 0 ? (t + 1) << DIR_SHIFT : c + 1;
      bit = 0;
      continue;
    }
    if (w == CHUNK_PAGES) {
      if (open == 0) {
        store<u32>(out + (<usize>k << 2), base + bit);
        k++;
        open = 1;
      }
      c++;
      bit = 0;
      continue;
    }
    let p = blockAt(blockOf(e));
    let wi = bit >> 6;
    // The first word without the pages before `bit`.
    let v = load<u64>(wordAt(p, wi)) & fromMask(bit);
    while (true) {
      let edges = v ^ ((v << 1) | open);
      let at = base + (wi << 6);
      let n = <u32>popcnt<u64>(edges);
      let q = out + (<usize>k << 2);
      store<u32>(q, at + <u32>ctz<u64>(edges));
      edges &= edges - 1;
      store<u32>(q, at + <u32>ctz<u64>(edges), 4);
      if (n > 2) {
        q += 8;
        edges &= edges - 1;
        while (edges != 0) {
          store<u32>(q, at + <u32>ctz<u64>(edges));
          q += 4;
          edges &= edges - 1;
        }
      }
      k += n;
      open = v >> 63;
      wi++;
      if (wi == CHUNK_WORDS || k >= want) break;
      // A 64-byte line with no edge (all clear outside a run, all set
      // inside one) is skipped whole.
      if ((wi & 7) == 0) {
        while (wi < CHUNK_WORDS) {
          let a = wordAt(p, wi);
          let same = open != 0
            ? !v128.any_true(v128.not(v128.and(v128.and(v128.load(a), v128.load(a, 16)), v128.and(v128.load(a, 32), v128.load(a, 48)))))
            : !v128.any_true(v128.or(v128.or(v128.load(a), v128.load(a, 16)), v128.or(v128.load(a, 32), v128.load(a, 48))));
          if (!same) break;
          wi += 8;
        }
        if (wi == CHUNK_WORDS) break;
      }
      v = load<u64>(wordAt(p, wi));
    }
    c++;
    bit = 0;
  }
  // A run open at the end of the space (none can be: page 0xFFFFFFFF is never set).
  if (open != 0 && k < want) {
    store<u32>(out + (<usize>k << 2), <u32>END);
    k++;
  }
  // Pairs of edges become (first, count).
  let n = min(k >> 1, max);
  for (let i: u32 = 0; i < n; i++) {
    let q = out + (<usize>i << 3);
    store<u32>(q, load<u32>(q, 4) - load<u32>(q), 4);
  }
  return <i32>n;
}

/**
 * Sets the `n` runs (u32 pairs first, count) in the io area, in any order,
 * overlapping or not. All or nothing: every run is checked, and everything
 * they need allocated, before the first bit changes. Returns how many
 * pages were clear before.
 */
export function bitmapAddRuns(n: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  if (n > runMax) return E_INVALID_ARG;
  for (let i: u32 = 0; i < n; i++) {
    let p = ioBase + (<usize>i << 3);
    if (badRange(load<u32>(p), load<u32>(p, 4))) return E_INVALID_ARG;
  }
  for (let i: u32 = 0; i < n; i++) {
    let p = ioBase + (<usize>i << 3);
    let first = load<u32>(p);
    if (!prepareSet(first, first + (load<u32>(p, 4) - 1))) {
      for (let j: u32 = 0; j <= i; j++) {
        let q = ioBase + (<usize>j << 3);
        let f = load<u32>(q);
        unprepare(f, f + (load<u32>(q, 4) - 1));
      }
      return E_TOO_LARGE;
    }
  }
  let added: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    let p = ioBase + (<usize>i << 3);
    let first = load<u32>(p);
    added += setRange(first, first + (load<u32>(p, 4) - 1));
  }
  return <f64>added;
}

/** Clears every page; chunks that held any become dirty. Returns how many were set. */
export function bitmapClearAll(): f64 {
  if (!bitmapReady) return E_NOT_READY;
  let removed = load<f64>(weightAt);
  for (let t: u32 = 0; t < TOPS; t++) {
    let d = load<u32>(topAt(t));
    if (d == 0) continue;
    let base = t << DIR_SHIFT;
    for (let i: u32 = 0; i < DIR_ENTRIES; i++) {
      let e = blockAt(d) + (<usize>i << 3);
      if (blockOf(e) != ZERO) putEntry(base + i, e, ZERO, 0, flagsOf(e) | F_DIRTY);
    }
  }
  store<f64>(weightAt, 0);
  return removed;
}

/**
 * Writes the indexes of up to `max` dirty chunks from chunk `from` on to
 * the io area (u32 each), ascending; returns how many.
 */
export function bitmapDirty(from: u32, max: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (max == 0 || <usize>max > ioBytes >> 2 || from > CHUNKS) return E_INVALID_ARG;
  let n: u32 = 0;
  let c = from;
  while (c < CHUNKS && n < max) {
    let t = c >> DIR_SHIFT;
    let p = topAt(t);
    let d = load<u32>(p);
    if (d == 0 || load<u16>(p, 6) == 0) {
      c = (t + 1) << DIR_SHIFT;
      continue;
    }
    if (flagsOf(blockAt(d) + (<usize>(c & DIR_MASK) << 3)) & F_DIRTY) {
      store<u32>(ioBase + (<usize>n << 2), c);
      n++;
    }
    c++;
  }
  return <i32>n;
}

/** Copies chunk `c`'s 4096 bytes to the io area. Returns its weight. */
export function bitmapChunkRead(c: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (c >= CHUNKS) return E_INVALID_ARG;
  let e = entryAt(c);
  memory.copy(ioBase, blockAt(blockOf(e)), BLOCK_BYTES);
  return <i32>weightOf(e);
}

/**
 * Replaces chunk `c` with the 4096 bytes in the io area (as read back from
 * disk); the chunk is then clean. Returns its weight. Refused when the
 * bytes set the bit of page 0xFFFFFFFF.
 */
export function bitmapChunkLoad(c: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (c >= CHUNKS) return E_INVALID_ARG;
  if (c == CHUNKS - 1 && (load<u8>(ioBase + BLOCK_BYTES - 1) & 0x80) != 0) return E_INVALID_ARG;
  let w = popcntWords(ioBase, CHUNK_WORDS);
  let t = c >> DIR_SHIFT;
  let old = weightOf(entryAt(c));
  if (w == 0) {
    if (load<u32>(topAt(t)) == 0) return 0;
    let e = entryAt(c);
    putEntry(c, e, ZERO, 0, flagsOf(e) & ~F_DIRTY);
    settleDir(t);
  } else {
    if (!ensureDir(t)) return E_TOO_LARGE;
    let e = entryAt(c);
    let b = blockOf(e);
    if (w == CHUNK_PAGES) {
      b = ONES;
    } else {
      if (b <= ONES) {
        b = alloc(0);
        if (b == 0) {
          settleDir(t);
          return E_TOO_LARGE;
        }
      }
      memory.copy(blockAt(b), ioBase, BLOCK_BYTES);
    }
    putEntry(c, e, b, w, flagsOf(e) & ~F_DIRTY);
  }
  addWeight(<f64>w - <f64>old);
  return <i32>w;
}

/** Marks chunk `c` saved: no longer dirty. */
export function bitmapMarkClean(c: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (c >= CHUNKS) return E_INVALID_ARG;
  let t = c >> DIR_SHIFT;
  if (load<u32>(topAt(t)) == 0) return OK;
  let e = entryAt(c);
  putEntry(c, e, blockOf(e), weightOf(e), flagsOf(e) & ~F_DIRTY);
  settleDir(t);
  return OK;
}

/** Marks chunk `c` dirty (a save of it failed: save it again). */
export function bitmapMarkDirty(c: u32): i32 {
  if (!bitmapReady) return E_NOT_READY;
  if (c >= CHUNKS) return E_INVALID_ARG;
  if (!ensureDir(c >> DIR_SHIFT)) return E_TOO_LARGE;
  let e = entryAt(c);
  putEntry(c, e, blockOf(e), weightOf(e), flagsOf(e) | F_DIRTY);
  return OK;
}

/** One past the highest chunk holding a set page; 0 when none does. */
export function bitmapChunkSpan(): i32 {
  if (!bitmapReady) return E_NOT_READY;
  let t = TOPS;
  while (t > 0) {
    t--;
    let d = load<u32>(topAt(t));
    if (d == 0) continue;
    let i = DIR_ENTRIES;
    while (i > 0) {
      i--;
      if (weightOf(blockAt(d) + (<usize>i << 3)) != 0) return <i32>((t << DIR_SHIFT) + i + 1);
    }
  }
  return 0;
}

/**
 * Where things are and how much is held, for the bindings:
 *   0 io area   1 io bytes   2 most runs a call   3 chunks with a block
 *   4 full chunks (ONES)     5 directory blocks   6 blocks carved
 *   7 free blocks            8 most blocks (the limit)
 *   9 top directory          10 block 0 (the pool)    11 the weight (f64)
 */
export function bitmapInfo(field: u32): f64 {
  if (!bitmapReady) return E_NOT_READY;
  switch (field) {
    case 0: return <f64>ioBase;
    case 1: return <f64>ioBytes;
    case 2: return <f64>runMax;
    case 3: return <f64>ownChunks;
    case 4: return <f64>fullChunks;
    case 5: return <f64>dirBlocks;
    case 6: return <f64>poolBlocks;
    case 7: return <f64>freeCount;
    case 8: return <f64>maxBlocks;
    case 9: return <f64>topBase;
    case 10: return <f64>poolBase;
    case 11: return <f64>weightAt;
  }
  return E_INVALID_ARG;
}
