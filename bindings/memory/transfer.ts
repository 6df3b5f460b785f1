// Large reads and writes (`Memory.read`, `readInto`, `write`, and the
// copies a resync sends, `copyPages`): many pages per I/O instead of a
// pointer staging them one at a time.
//
// A write of a write-through block takes its range exclusive and commits
// one journal record per piece (up to PIECE_BYTES): pages that are cached,
// or only partly written, are changed in their frames as a write pointer
// would; whole pages that are not cached get no frame at all. Their bytes go
// into the journal's record (one copy), and once it is flushed from that
// copy to the page file, in coalesced runs through the task groups (the
// cache serves them meanwhile: `FrameCache.writeDirect`). No undo copy, no
// staging, no eviction for them.
//
// A read takes its range shared and copies cached pages from their frames;
// runs of pages that are not cached are read from the page file straight
// into the caller's buffer, a stripe per operation of the task groups (one
// read each; in parallel where the groups differ), with their checksum sectors
// read in one piece, every page checked against its entry. A page that
// does not check out (or whose entry is lost) is staged the usual way,
// which tries the other copies and the partner and reports damage.

import type { Core } from '../core/index.js';
import { TwinpageError } from '../errors.js';
import type { Scheduler } from '../sched/scheduler.js';
import { MAX_RECORD_PAGES } from '../storage/format.js';
import type { PageStore } from '../storage/pagestore.js';
import type { Block, BlockTable } from './blocks.js';
import type { FrameCache } from './cache.js';
import type { Committer } from './commit.js';
import type { PageWrite } from './link.js';
import type { RangeLocks } from './ranges.js';

/** Bytes of one piece of a large write (one journal record) or read (one range held). */
const PIECE_BYTES = 16 << 20;
/** Pages one read operation covers at most (the scheduler splits it by stripe, each a part its group runs). */
const RUN_PAGES = 4096;

export interface TransferDeps {
  core: Core;
  cache: FrameCache;
  ranges: RangeLocks;
  blocks: BlockTable;
  committer: Committer;
  pageStore: PageStore;
  sched: Scheduler;
  /** A pointer-like holder starts (close() waits for none) or ends; `exclusive` for writers. */
  hold(exclusive: boolean): void;
  unhold(exclusive: boolean): void;
}

export class Transfers {
  readonly #d: TransferDeps;
  readonly pageSize: number;

  constructor(deps: TransferDeps) {
    this.#d = deps;
    this.pageSize = deps.core.pageSize;
  }

  /** Pages per piece: at most a record's, and PIECE_BYTES. */
  get #piecePages(): number {
    return Math.max(1, Math.min(MAX_RECORD_PAGES, Math.floor(PIECE_BYTES / this.pageSize)));
  }

  // --- writes -------------------------------------------------------------------------------

  /** Writes `data` at `offset` of a write-through block, a piece (one atomic record) at a time. */
  async write(block: Block, offset: number, data: Uint8Array): Promise<void> {
    const ps = this.pageSize;
    const piece = this.#piecePages * ps;
    // Held from the first piece to the last: a demotion waits for the whole write.
    this.#d.hold(true);
    try {
      for (let at = 0; at < data.length;) {
        const pos = offset + at;
        const end = Math.min(offset + data.length, Math.floor(pos / ps) * ps + piece);
        await this.#writePiece(block, pos, data.subarray(at, at + end - pos));
        at += end - pos;
      }
    } finally {
      this.#d.unhold(true);
    }
  }

  async #writePiece(block: Block, offset: number, data: Uint8Array): Promise<void> {
    const d = this.#d;
    const ps = this.pageSize;
    const length = data.length;
    const first = block.base + Math.floor(offset / ps);
    const last = block.base + Math.floor((offset + length - 1) / ps);
    const count = last - first + 1;
    const cache = d.cache;
    const pages = d.core.pages;
    const entry = d.ranges.insert(first, last, true);
    d.hold(true);
    const frames = new Int32Array(count).fill(-1);
    const undo: Array<Uint8Array | null> = new Array(count).fill(null);
    const zeroed: number[] = [];
    let reserved = 0;
    let committed = false;
    try {
      await d.ranges.waitTurn(entry);
      if (!d.blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${block.id} was freed while waiting`);
      const inPage = offset % ps;
      const whole = (i: number) => (i > 0 || inPage === 0) && (i < count - 1 || (offset + length) % ps === 0);
      // Nobody maps a page of this range while it is held: what is cached now is all there is.
      const framed: number[] = [];
      for (let i = 0; i < count; i++) if (!whole(i) || pages.lookup(first + i) >= 0) framed.push(i);
      if (framed.length) {
        await cache.reserve(framed.length);
        reserved = framed.length;
        for (const i of framed) {
          const st = await cache.stage(first + i, block, true, whole(i));
          frames[i] = st.frame;
          if (st.zeroed) zeroed.push(i);
          else undo[i] = d.core.frameView(st.frame).slice();
        }
      }
      // The new bytes: into the frames, or the caller's whole pages as they are.
      const images = new Array<Uint8Array>(count);
      for (let i = 0; i < count; i++) {
        const into = i === 0 ? inPage : 0;
        const from = i === 0 ? 0 : i * ps - inPage;
        const n = Math.min(ps - into, length - from);
        if (frames[i] >= 0) d.core.frameView(frames[i]).set(data.subarray(from, from + n), into);
        else images[i] = data.subarray(from, from + ps);
      }
      await d.committer.commitWrite(block, offset, length, first, frames, images);
      committed = true;
    } finally {
      if (!committed) for (let i = 0; i < count; i++) if (undo[i]) d.core.frameView(frames[i]).set(undo[i]!);
      for (const f of frames) if (f >= 0) cache.unpin(f);
      // Frames staged as zeros and not committed: storage has the truth.
      if (!committed) for (const i of zeroed) cache.discard(first + i, frames[i]);
      if (reserved) cache.unreserve(reserved);
      d.ranges.remove(entry);
      d.unhold(true);
    }
  }

  // --- reads ----------------------------------------------------------------------------------

  /** Copies bytes [offset, offset + target.length) of a block into `target`, a piece at a time. */
  async readInto(block: Block, offset: number, target: Uint8Array): Promise<void> {
    const ps = this.pageSize;
    const piece = this.#piecePages * ps;
    for (let at = 0; at < target.length;) {
      const pos = offset + at;
      const end = Math.min(offset + target.length, Math.floor(pos / ps) * ps + piece);
      await this.#readPiece(block, pos, target.subarray(at, at + end - pos));
      at += end - pos;
    }
  }

  async #readPiece(block: Block, offset: number, target: Uint8Array): Promise<void> {
    const ps = this.pageSize;
    const length = target.length;
    const first = block.base + Math.floor(offset / ps);
    const last = block.base + Math.floor((offset + length - 1) / ps);
    const pages = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    /** Where page i's bytes go: [at, at + n) of target, from byte `into` of the page. */
    const place = (i: number) => {
      const into = i === 0 ? offset % ps : 0;
      const at = i === 0 ? 0 : i * ps - (offset % ps);
      return { into, at, n: Math.min(ps - into, length - at) };
    };
    await this.#holding(block, first, last, () => this.#gather(block, pages, target, place, null));
  }

  /**
   * Copies of some pages of a block (ascending) with their checksums, for a
   * resync: the range from the first to the last is held shared until `use`
   * settles, so a write to any of them waits and comes after. They are read
   * as a large read reads (no frame for a page that is not cached), into one
   * buffer.
   */
  async copyPages<T>(block: Block, pages: number[], use: (copies: PageWrite[]) => Promise<T>): Promise<T> {
    const ps = this.pageSize;
    return this.#holding(block, pages[0], pages[pages.length - 1], async () => {
      const data = new Uint8Array(pages.length * ps);
      const sums: bigint[] = new Array<bigint>(pages.length);
      await this.#gather(block, pages, data, (k) => ({ into: 0, at: k * ps, n: ps }), sums);
      return use(pages.map((page, k) => ({ page, checksum: sums[k], data: data.subarray(k * ps, (k + 1) * ps) })));
    });
  }

  /** Runs `fn` holding pages [first, last] of `block` shared (in arrival order), the block still there. */
  async #holding<T>(block: Block, first: number, last: number, fn: () => Promise<T>): Promise<T> {
    const d = this.#d;
    const entry = d.ranges.insert(first, last, false);
    d.hold(false);
    try {
      await d.ranges.waitTurn(entry);
      if (!d.blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${block.id} was freed while waiting`);
      return await fn();
    } finally {
      d.ranges.remove(entry);
      d.unhold(false);
    }
  }

  /**
   * Copies `pages` (ascending pages of `block`, held shared by the caller)
   * into `target`, page k as `place(k)` says; with `sums`, sums[k] is page
   * k's checksum. Cached pages come from their frames; runs of the others
   * straight from the page file, a stripe a task-group operation, checked
   * against their entries; what the file cannot vouch for is staged the
   * usual way (other copies, the partner, damage reported).
   */
  async #gather(block: Block, pages: number[], target: Uint8Array, place: Place, sums: bigint[] | null): Promise<void> {
    const d = this.#d;
    const cache = d.cache;
    const table = d.core.pages;
    const missing: number[] = [];
    for (let k = 0; k < pages.length; k++) {
      const page = pages[k];
      for (let loading = cache.whenLoaded(page); loading; loading = cache.whenLoaded(page)) await loading.catch(() => {});
      const { into, at, n } = place(k);
      const f = table.lookup(page);
      if (f >= 0 && !cache.loading(page)) {
        target.set(d.core.frameView(f).subarray(into, into + n), at);
        if (sums) sums[k] = cache.sum(f);
        continue;
      }
      const u = cache.unwritten(page);
      if (u) {
        const current = u.lsn >= block.generation;
        if (current) target.set(u.image.subarray(into, into + n), at);
        else target.fill(0, at, at + n);
        if (sums) sums[k] = current ? u.checksum : cache.zeroSum;
        continue;
      }
      missing.push(k);
    }
    // Runs of pages not cached (consecutive pages): straight from the page file.
    const doubtful: number[] = [];
    const ops: Promise<void>[] = [];
    for (let j = 0; j < missing.length;) {
      const k0 = missing[j];
      let e = j + 1;
      while (e < missing.length && pages[missing[e]] === pages[missing[e - 1]] + 1 && e - j < RUN_PAGES) e++;
      const from = pages[k0];
      ops.push(d.sched.submit({
        first: from, last: from + (e - j) - 1, mode: 'shared',
        run: (a, b) => this.#readRun(block, k0 + (a - from), a, b, target, place, sums, doubtful),
      }));
      j = e;
    }
    await Promise.all(ops);
    for (const k of doubtful.sort((a, b) => a - b)) {
      await cache.reserve(1);
      try {
        const { frame } = await cache.stage(pages[k], block, false, false);
        const { into, at, n } = place(k);
        target.set(d.core.frameView(frame).subarray(into, into + n), at);
        if (sums) sums[k] = cache.sum(frame);
        cache.unpin(frame);
      } finally {
        cache.unreserve(1);
      }
    }
  }

  /** Pages [a, b] (page a is page k0 of the gather) from the page file into `target`, checked; those that fail go to `doubtful`. */
  async #readRun(
    block: Block, k0: number, a: number, b: number, target: Uint8Array,
    place: Place, sums: bigint[] | null, doubtful: number[],
  ): Promise<void> {
    const d = this.#d;
    const ps = this.pageSize;
    const count = b - a + 1;
    const [entries, bytes] = await Promise.all([
      d.pageStore.readSums(a, count),
      (async () => {
        // Whole pages land in place; a run with a part page at either end is read into a buffer of its own.
        const p0 = place(k0);
        const pn = place(k0 + count - 1);
        if (p0.into === 0 && pn.n === ps) {
          const view = target.subarray(p0.at, p0.at + count * ps);
          await d.pageStore.pages.read(a * ps, view);
          return view;
        }
        const buf = new Uint8Array(count * ps);
        await d.pageStore.pages.read(a * ps, buf);
        return buf;
      })(),
    ]);
    const inPlace = bytes.buffer === target.buffer;
    for (let i = 0; i < count; i++) {
      const k = k0 + i;
      const e = entries[i];
      const { into, at, n } = place(k);
      if (e.lost !== undefined && block.generation <= e.lost) { doubtful.push(k); continue; }
      if (e.lost !== undefined || e.lsn === 0 || e.lsn < block.generation) {
        target.fill(0, at, at + n);
        if (sums) sums[k] = d.cache.zeroSum;
        continue;
      }
      const page = bytes.subarray(i * ps, (i + 1) * ps);
      const sum = d.core.checksum(page);
      if (sum !== e.checksum) { doubtful.push(k); continue; }
      if (sums) sums[k] = sum;
      if (!inPlace) target.set(page.subarray(into, into + n), at);
    }
  }
}

/** Where page k of a gather goes: bytes [into, into + n) of the page, to [at, at + n) of the target. */
type Place = (k: number) => { into: number; at: number; n: number };
