// The out-of-sync record: the pages and blocks this node's partner may lack
// (or, on a node being resynced, may hold differently). Pages in frames sent
// and not yet acknowledged at disk level are kept by frame sequence: they
// count as out of sync in the persisted record, and join the lagging set if
// the connection is lost before their acknowledgement.
//
// Kept in the superblock's replica record (replica.ts) as runs of pages.

import type { Block } from './blocks.js';

/** Out-of-sync runs kept or sent (more: the tail is merged into one run). */
export const MAX_RUNS = 65536;

export class OutOfSync {
  readonly #pages = new Set<number>();
  readonly #blocks = new Set<string>();
  /** Pages of frames sent and not yet acknowledged at disk level, by sequence. */
  readonly #sentPages = new Map<number, number[]>();
  /** Block-table changes in frames not yet acknowledged at disk level, by sequence. */
  readonly #sentBlocks = new Map<number, string>();
  #known = true;

  /** False when there is no record (a node of an older version, a crash with write-back pages): a resync compares checksums. */
  get known(): boolean { return this.#known; }
  forget(): void { this.#known = false; }
  learn(): void { this.#known = true; }

  /** Lagging pages (sent and unacknowledged ones not counted). */
  get size(): number { return this.#pages.size; }
  /** Lagging blocks. */
  get blockCount(): number { return this.#blocks.size; }
  get empty(): boolean { return this.#pages.size === 0 && this.#blocks.size === 0; }
  /** Frames sent with changes and not yet acknowledged at disk level. */
  get unacked(): boolean { return this.#sentPages.size > 0 || this.#sentBlocks.size > 0; }

  has(page: number): boolean { return this.#pages.has(page); }
  add(page: number): void { this.#pages.add(page); }
  addAll(pages: Iterable<number>): void { for (const p of pages) this.#pages.add(p); }
  /** Removes `page`; true when it was there. */
  delete(page: number): boolean { return this.#pages.delete(page); }

  /** Every page of `block` (a block the partner lacks whole). */
  addBlockPages(block: Pick<Block, 'base' | 'pages'>): void {
    for (let p = block.base; p < block.base + block.pages; p++) this.#pages.add(p);
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
        for (let p = Math.max(first, b.base); p < Math.min(first + count, b.base + b.pages); p++) this.#pages.add(p);
      }
    }
  }

  /** Lagging pages, in address order. */
  sorted(): number[] {
    return [...this.#pages].sort((a, b) => a - b);
  }

  /** Lagging pages as [first, count] runs. */
  runs(): Array<[number, number]> {
    return toRuns(this.#pages);
  }

  addBlock(id: string): void { this.#blocks.add(id); }
  /** Forgets every lagging page and block (this node holds what the partner holds). */
  clear(): void { this.#pages.clear(); this.#blocks.clear(); this.#known = true; }
  /** Takes the lagging block ids, leaving none. */
  takeBlocks(): string[] {
    const ids = [...this.#blocks];
    this.#blocks.clear();
    return ids;
  }

  /** A frame with `pages` (and a block-table change of `blockId`) went out as `seq`. */
  sent(seq: number, pages: number[], blockId: string | undefined): void {
    if (pages.length) this.#sentPages.set(seq, pages);
    if (blockId !== undefined) this.#sentBlocks.set(seq, blockId);
  }

  /** The partner holds every frame up to `seq` at disk level. */
  acked(seq: number): void {
    for (const s of this.#sentPages.keys()) if (s <= seq) this.#sentPages.delete(s);
    for (const s of this.#sentBlocks.keys()) if (s <= seq) this.#sentBlocks.delete(s);
  }

  /** The connection is gone: what it did not acknowledge lags. */
  lost(): void {
    for (const pages of this.#sentPages.values()) for (const p of pages) this.#pages.add(p);
    for (const id of this.#sentBlocks.values()) this.#blocks.add(id);
    this.#sentPages.clear();
    this.#sentBlocks.clear();
  }

  /** What the superblock keeps: lagging and unacknowledged pages as runs (null: unknown), and blocks. */
  record(): { lag: Array<[number, number]> | null; blocks: string[] } {
    const lag = new Set(this.#pages);
    for (const pages of this.#sentPages.values()) for (const p of pages) lag.add(p);
    return {
      lag: this.#known ? toRuns(lag) : null,
      blocks: [...new Set([...this.#blocks, ...this.#sentBlocks.values()])],
    };
  }
}

/** Pages as sorted [first, count] runs, at most MAX_RUNS (the tail merged into one). */
export function toRuns(pages: Iterable<number>): Array<[number, number]> {
  const sorted = [...pages].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const p of sorted) {
    const last = runs[runs.length - 1];
    if (last && p === last[0] + last[1]) last[1]++;
    else runs.push([p, 1]);
  }
  if (runs.length > MAX_RUNS) {
    // Too fragmented: one run covers the rest (more is resynced, nothing is missed).
    const tail = runs.splice(MAX_RUNS - 1);
    const end = tail[tail.length - 1][0] + tail[tail.length - 1][1];
    runs.push([tail[0][0], end - tail[0][0]]);
  }
  return runs;
}

/** Runs from a record or a partner, checked: pairs of non-negative integers, skipping anything else. */
export function runsFrom(value: unknown[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of value) {
    if (!Array.isArray(r) || r.length !== 2) continue;
    const [first, count] = r as unknown[];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || (first as number) < 0 || (count as number) < 1) continue;
    out.push([first as number, count as number]);
  }
  return out;
}
