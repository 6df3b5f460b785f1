// Large reads and writes (`Memory.read`, `readInto`, `write`): many pages
// per I/O instead of a pointer staging them one at a time.
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
    const d = this.#d;
    const ps = this.pageSize;
    const length = target.length;
    const first = block.base + Math.floor(offset / ps);
    const last = block.base + Math.floor((offset + length - 1) / ps);
    const count = last - first + 1;
    const cache = d.cache;
    const pages = d.core.pages;
    const entry = d.ranges.insert(first, last, false);
    d.hold(false);
    /** Where page i's bytes go: [at, at + n) of target, from byte `into` of the page. */
    const part = (i: number) => {
      const into = i === 0 ? offset % ps : 0;
      const at = i === 0 ? 0 : i * ps - (offset % ps);
      return { into, at, n: Math.min(ps - into, length - at) };
    };
    try {
      await d.ranges.waitTurn(entry);
      if (!d.blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${block.id} was freed while waiting`);
      const missing: number[] = [];
      for (let i = 0; i < count; i++) {
        const page = first + i;
        const loading = cache.whenLoaded(page);
        if (loading) await loading.catch(() => {});
        const { into, at, n } = part(i);
        const f = pages.lookup(page);
        if (f >= 0 && !cache.loading(page)) {
          target.set(d.core.frameView(f).subarray(into, into + n), at);
          continue;
        }
        const u = cache.unwritten(page);
        if (u) {
          if (u.lsn >= block.generation) target.set(u.image.subarray(into, into + n), at);
          else target.fill(0, at, at + n);
          continue;
        }
        missing.push(i);
      }
      // Runs of pages not cached: straight from the page file, a stripe a task-group operation.
      const doubtful: number[] = [];
      const ops: Promise<void>[] = [];
      for (let k = 0; k < missing.length;) {
        let j = k + 1;
        while (j < missing.length && missing[j] === missing[j - 1] + 1 && j - k < RUN_PAGES) j++;
        const from = missing[k];
        const n = j - k;
        ops.push(d.sched.submit({
          first: first + from, last: first + from + n - 1, mode: 'shared',
          run: (a, b) => this.#readRun(block, first, a, b, target, part, doubtful),
        }));
        k = j;
      }
      await Promise.all(ops);
      // What the page file could not vouch for: staged the usual way (other copies, the partner, damage reported).
      for (const i of doubtful.sort((a, b) => a - b)) {
        await cache.reserve(1);
        try {
          const { frame } = await cache.stage(first + i, block, false, false);
          const { into, at, n } = part(i);
          target.set(d.core.frameView(frame).subarray(into, into + n), at);
          cache.unpin(frame);
        } finally {
          cache.unreserve(1);
        }
      }
    } finally {
      d.ranges.remove(entry);
      d.unhold(false);
    }
  }

  /** Pages [a, b] (of the piece starting at page `first`) from the page file into `target`, checked; those that fail go to `doubtful`. */
  async #readRun(
    block: Block, first: number, a: number, b: number, target: Uint8Array,
    part: (i: number) => { into: number; at: number; n: number }, doubtful: number[],
  ): Promise<void> {
    const d = this.#d;
    const ps = this.pageSize;
    const count = b - a + 1;
    const [entries, bytes] = await Promise.all([
      d.pageStore.readSums(a, count),
      (async () => {
        // Whole pages land in place; a run with a part page at either end is read into a buffer of its own.
        const i0 = a - first;
        const p0 = part(i0);
        const pn = part(b - first);
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
    for (let k = 0; k < count; k++) {
      const i = a - first + k;
      const e = entries[k];
      const { into, at, n } = part(i);
      if (e.lost !== undefined && block.generation <= e.lost) { doubtful.push(i); continue; }
      if (e.lost !== undefined || e.lsn === 0 || e.lsn < block.generation) {
        target.fill(0, at, at + n);
        continue;
      }
      const page = bytes.subarray(k * ps, (k + 1) * ps);
      if (d.core.checksum(page) !== e.checksum) { doubtful.push(i); continue; }
      if (!inPlace) target.set(page.subarray(into, into + n), at);
    }
  }
}
