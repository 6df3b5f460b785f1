// A plain-TypeScript reference model of the out-of-sync bitmap
// (assembly/bitmap.ts as seen through bindings/core/bitmap.ts): the set
// pages kept as a sorted array of disjoint, non-touching runs, so that a
// range of 2^32 pages costs as little as one page. Written for clarity, not
// speed. Dirty chunks are the chunks of the pages each change actually
// flipped. The tests run the same commands on both and compare.

import { TwinpageError } from '../bindings/errors.js';

const END = 0xFFFFFFFF;
const LAST_PAGE = 0xFFFFFFFE;
export const CHUNK_PAGES = 32768;
export const CHUNK_BYTES = 4096;
export const CHUNKS = 131072;

/** The public surface both the wasm-backed PageBitmap and this model offer. */
export interface PageBitmapLike {
  readonly runBatch: number;
  readonly chunkCount: number;
  set(first: number, count?: number): number;
  clear(first: number, count?: number): number;
  has(page: number): boolean;
  next(from: number): number;
  count(): number;
  countRange(first: number, count: number): number;
  runs(from: number, max?: number): Uint32Array;
  allRuns(from?: number): IterableIterator<[number, number]>;
  addRuns(pairs: Uint32Array): number;
  clearAll(): number;
  dirtyChunks(): number[];
  chunkBytes(chunk: number): Uint8Array;
  loadChunk(chunk: number, data: Uint8Array): number;
  markClean(chunk: number): void;
  markDirty(chunk: number): void;
}

/** A run of pages [first, end). */
interface Run { first: number; end: number }

const isInt = (x: unknown, min: number, max: number): x is number =>
  typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;

export class PageBitmapModel implements PageBitmapLike {
  readonly runBatch: number;
  /** Set pages, ascending, disjoint and never touching. */
  list: Run[] = [];
  readonly dirty = new Set<number>();

  constructor(runBatch = 4096) {
    this.runBatch = runBatch;
  }

  get chunkCount(): number {
    const last = this.list.at(-1);
    return last ? Math.floor((last.end - 1) / CHUNK_PAGES) + 1 : 0;
  }

  set(first: number, count = 1): number {
    const end = this.#range(first, count);
    return this.#set(first, end);
  }

  clear(first: number, count = 1): number {
    const end = this.#range(first, count);
    // The pieces of [first, end) that are set: each is cleared and dirties its chunks.
    const hit = this.#overlaps(first, end);
    const keep: Run[] = [];
    for (const r of this.list) {
      if (r.end <= first || r.first >= end) { keep.push(r); continue; }
      if (r.first < first) keep.push({ first: r.first, end: first });
      if (r.end > end) keep.push({ first: end, end: r.end });
    }
    this.list = keep;
    return this.#dirtyPieces(hit);
  }

  has(page: number): boolean {
    if (!isInt(page, 0, LAST_PAGE)) throw TwinpageError.invalidArgument('page');
    return this.list.some((r) => r.first <= page && page < r.end);
  }

  next(from: number): number {
    if (!isInt(from, 0, END)) throw TwinpageError.invalidArgument('from');
    const r = this.list.find((x) => x.end > from);
    return r ? Math.max(r.first, from) : -1;
  }

  count(): number {
    return this.list.reduce((s, r) => s + r.end - r.first, 0);
  }

  countRange(first: number, count: number): number {
    const end = this.#range(first, count);
    return this.#overlaps(first, end).reduce((s, r) => s + r.end - r.first, 0);
  }

  runs(from: number, max = this.runBatch): Uint32Array {
    if (!isInt(from, 0, END)) throw TwinpageError.invalidArgument('from');
    if (!isInt(max, 1, this.runBatch)) throw TwinpageError.invalidArgument('max');
    const out: number[] = [];
    for (const r of this.list) {
      if (r.end <= from) continue;
      if (out.length === 2 * max) break;
      const first = Math.max(r.first, from);
      out.push(first, r.end - first);
    }
    return Uint32Array.from(out);
  }

  *allRuns(from = 0): IterableIterator<[number, number]> {
    const runs = this.runs(from, this.runBatch);
    for (let i = 0; i < runs.length; i += 2) yield [runs[i], runs[i + 1]];
    if (runs.length === 2 * this.runBatch) yield* this.allRuns(runs[runs.length - 2] + runs[runs.length - 1]);
  }

  addRuns(pairs: Uint32Array): number {
    if (!(pairs instanceof Uint32Array) || pairs.length % 2 !== 0) throw TwinpageError.invalidArgument('pairs');
    for (let i = 0; i < pairs.length; i += 2) {
      if (pairs[i + 1] === 0 || pairs[i] + pairs[i + 1] > END) throw TwinpageError.invalidArgument('run');
    }
    let added = 0;
    for (let i = 0; i < pairs.length; i += 2) added += this.#set(pairs[i], pairs[i] + pairs[i + 1]);
    return added;
  }

  clearAll(): number {
    const n = this.count();
    this.#dirtyPieces(this.list);
    this.list = [];
    return n;
  }

  dirtyChunks(): number[] {
    return [...this.dirty].sort((a, b) => a - b);
  }

  chunkBytes(chunk: number): Uint8Array {
    this.#chunk(chunk);
    const out = new Uint8Array(CHUNK_BYTES);
    const base = chunk * CHUNK_PAGES;
    for (const r of this.#overlaps(base, base + CHUNK_PAGES)) {
      // Bit by bit up to a byte boundary, whole bytes through the middle, bit by bit at the end.
      let p = r.first;
      for (; p < r.end && (p - base) & 7; p++) out[(p - base) >>> 3] |= 1 << ((p - base) & 7);
      const whole = (r.end - p) >>> 3;
      out.fill(0xFF, (p - base) >>> 3, ((p - base) >>> 3) + whole);
      p += whole * 8;
      for (; p < r.end; p++) out[(p - base) >>> 3] |= 1 << ((p - base) & 7);
    }
    return out;
  }

  loadChunk(chunk: number, data: Uint8Array): number {
    this.#chunk(chunk);
    if (!(data instanceof Uint8Array) || data.length !== CHUNK_BYTES) throw TwinpageError.invalidArgument('data');
    if (chunk === CHUNKS - 1 && (data[CHUNK_BYTES - 1] & 0x80) !== 0) throw TwinpageError.invalidArgument('page 2^32-1');
    const base = chunk * CHUNK_PAGES;
    // Drop the chunk's pages (not dirtying), then add the loaded ones.
    const keep: Run[] = [];
    for (const r of this.list) {
      if (r.end <= base || r.first >= base + CHUNK_PAGES) { keep.push(r); continue; }
      if (r.first < base) keep.push({ first: r.first, end: base });
      if (r.end > base + CHUNK_PAGES) keep.push({ first: base + CHUNK_PAGES, end: r.end });
    }
    // The loaded runs (in order, apart from each other), merged with the rest in one pass:
    // one #insert per run costs a sort each, too slow for a chunk of alternating bits.
    const loaded: Run[] = [];
    let weight = 0;
    let start = -1;
    for (let i = 0; i <= CHUNK_PAGES; i++) {
      const on = i < CHUNK_PAGES && (data[i >>> 3] & (1 << (i & 7))) !== 0;
      if (on) weight++;
      if (on && start < 0) start = i;
      if (!on && start >= 0) {
        loaded.push({ first: base + start, end: base + i });
        start = -1;
      }
    }
    const all = [...keep, ...loaded].sort((a, b) => a.first - b.first);
    const merged: Run[] = [];
    for (const r of all) {
      const last = merged.at(-1);
      if (last && r.first <= last.end) last.end = Math.max(last.end, r.end);
      else merged.push({ ...r });
    }
    this.list = merged;
    this.dirty.delete(chunk);
    return weight;
  }

  markClean(chunk: number): void {
    this.#chunk(chunk);
    this.dirty.delete(chunk);
  }

  markDirty(chunk: number): void {
    this.#chunk(chunk);
    this.dirty.add(chunk);
  }

  /** Sets [first, end); the pieces that were clear dirty their chunks. */
  #set(first: number, end: number): number {
    const gaps: Run[] = [];
    let at = first;
    for (const r of this.#overlaps(first, end)) {
      if (r.first > at) gaps.push({ first: at, end: r.first });
      at = r.end;
    }
    if (at < end) gaps.push({ first: at, end });
    this.#insert(first, end);
    return this.#dirtyPieces(gaps);
  }

  /** Merges [first, end) into the list, joining runs it overlaps or touches. */
  #insert(first: number, end: number): void {
    const out: Run[] = [];
    let merged = { first, end };
    for (const r of this.list) {
      if (r.end < merged.first || r.first > merged.end) out.push(r);
      else merged = { first: Math.min(r.first, merged.first), end: Math.max(r.end, merged.end) };
    }
    out.push(merged);
    out.sort((a, b) => a.first - b.first);
    this.list = out;
  }

  /** The set pieces of [first, end), clipped. */
  #overlaps(first: number, end: number): Run[] {
    return this.list
      .filter((r) => r.end > first && r.first < end)
      .map((r) => ({ first: Math.max(r.first, first), end: Math.min(r.end, end) }));
  }

  /** Marks the chunks of `pieces` dirty; returns the pages they hold. */
  #dirtyPieces(pieces: Run[]): number {
    let n = 0;
    for (const p of pieces) {
      n += p.end - p.first;
      for (let c = Math.floor(p.first / CHUNK_PAGES); c <= Math.floor((p.end - 1) / CHUNK_PAGES); c++) this.dirty.add(c);
    }
    return n;
  }

  #range(first: number, count: number): number {
    if (!isInt(first, 0, END) || !isInt(count, 1, END) || first + count > END) throw TwinpageError.invalidArgument('range');
    return first + count;
  }

  #chunk(chunk: number): void {
    if (!isInt(chunk, 0, CHUNKS - 1)) throw TwinpageError.invalidArgument('chunk');
  }
}
