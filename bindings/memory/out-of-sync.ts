// The out-of-sync record: the pages this node's partner may lack (or, on a
// node being resynced, may hold differently), one bit per page in a
// PageBitmap (the core's bit operations, DRBD's bitmap), and the blocks one
// side lacks (found by comparing block lists at the handshake). Frames sent
// and not yet acknowledged at disk level are kept by sequence: their pages
// join the bitmap if the connection is lost before the acknowledgement; until
// then the write intents cover them (intents.ts).
//
// Kept on disk with the replica record (replica.ts), in the bitmap devices.

import type { PageBitmap } from '../core/bitmap.js';
import type { Block } from './blocks.js';

/** Out-of-sync runs a partner may send (more: the rest is ignored, and a resync compares checksums). */
export const MAX_RUNS = 1 << 24;

interface Sent { pages: number[]; blockId: string | undefined; settled?: () => void }

export class OutOfSync {
  readonly bitmap: PageBitmap;
  readonly #blocks = new Set<string>();
  /** Frames sent with changes and not yet acknowledged at disk level, by sequence. */
  readonly #sent = new Map<number, Sent>();
  #known = true;

  constructor(bitmap: PageBitmap) {
    this.bitmap = bitmap;
  }

  /** False when there is no trusted record (a node of an older version, a crash with write-back pages, a damaged bitmap): a resync compares checksums. */
  get known(): boolean { return this.#known; }
  forget(): void { this.#known = false; }
  learn(): void { this.#known = true; }

  /** Lagging pages (sent and unacknowledged ones not counted). */
  get size(): number { return this.bitmap.count(); }
  /** Lagging blocks. */
  get blockCount(): number { return this.#blocks.size; }
  get empty(): boolean { return this.bitmap.count() === 0 && this.#blocks.size === 0; }
  /** Frames sent with changes and not yet acknowledged at disk level. */
  get unacked(): boolean { return this.#sent.size > 0; }

  has(page: number): boolean { return this.bitmap.has(page); }
  add(page: number): void { this.bitmap.set(page); }
  addAll(pages: Iterable<number>): void { for (const p of pages) this.bitmap.set(p); }
  /** Removes `page`; true when it was there. */
  delete(page: number): boolean { return this.bitmap.clear(page) === 1; }
  /** Removes `count` pages from `first`. */
  deleteRun(first: number, count: number): void { this.bitmap.clear(first, count); }

  /** Every page of `block` (a block the partner lacks whole). */
  addBlockPages(block: Pick<Block, 'base' | 'pages'>): void {
    this.bitmap.set(block.base, block.pages);
  }

  /** Adds runs of pages, only where `blocks` are (a run may name anything). */
  addRuns(runs: Array<[number, number]>, blocks: Block[]): void {
    const sorted = [...blocks].sort((a, b) => a.base - b.base);
    for (const [first, count] of runs.slice(0, MAX_RUNS)) {
      // The first block ending after `first` (blocks do not overlap), then on while they start before the run ends.
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sorted[mid].base + sorted[mid].pages <= first) lo = mid + 1; else hi = mid;
      }
      for (let k = lo; k < sorted.length && sorted[k].base < first + count; k++) {
        const b = sorted[k];
        const from = Math.max(first, b.base);
        const to = Math.min(first + count, b.base + b.pages);
        if (to > from) this.bitmap.set(from, to - from);
      }
    }
  }

  /** Lagging pages as [first, count] runs, in address order. */
  *runs(): IterableIterator<[number, number]> {
    yield* this.bitmap.allRuns();
  }

  /** Lagging pages, in address order (as a list: for tests and small records). */
  sorted(): number[] {
    const out: number[] = [];
    for (const [first, count] of this.bitmap.allRuns()) for (let p = first; p < first + count; p++) out.push(p);
    return out;
  }

  addBlock(id: string): void { this.#blocks.add(id); }
  /** Takes the lagging block ids, leaving none. */
  takeBlocks(): string[] {
    const ids = [...this.#blocks];
    this.#blocks.clear();
    return ids;
  }

  /** Forgets every lagging page and block (this node holds what the partner holds). */
  clear(): void {
    this.bitmap.clearAll();
    this.#blocks.clear();
    this.#known = true;
  }

  /**
   * A frame with `pages` (and a block-table change of `blockId`) went out
   * as `seq`; `settled` is called once it is acknowledged at disk level or
   * its pages joined the record (the connection was lost).
   */
  sent(seq: number, pages: number[], blockId: string | undefined, settled?: () => void): void {
    if (pages.length || blockId !== undefined || settled) this.#sent.set(seq, { pages, blockId, settled });
  }

  /** The partner holds every frame up to `seq` at disk level. */
  acked(seq: number): void {
    for (const [s, entry] of this.#sent) {
      if (s > seq) continue;
      this.#sent.delete(s);
      entry.settled?.();
    }
  }

  /** The connection is gone: what it did not acknowledge lags. */
  lost(): void {
    const entries = [...this.#sent.values()];
    this.#sent.clear();
    for (const e of entries) {
      for (const p of e.pages) this.bitmap.set(p);
      if (e.blockId !== undefined) this.#blocks.add(e.blockId);
    }
    for (const e of entries) e.settled?.();
  }
}

/** Runs from a partner, checked: pairs of non-negative integers, skipping anything else. */
export function runsFrom(value: unknown[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of value) {
    if (!Array.isArray(r) || r.length !== 2) continue;
    const [first, count] = r as unknown[];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || (first as number) < 0 || (count as number) < 1) continue;
    if ((first as number) + (count as number) > 0xFFFFFFFF) continue;
    out.push([first as number, count as number]);
  }
  return out;
}
