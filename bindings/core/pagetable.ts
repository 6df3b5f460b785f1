import { TwinpageError } from '../errors.js';
import { u32, intIn } from './args.js';
import { check } from './status.js';
import type { CoreExports } from './exports.js';

/** Frame flags, as in assembly/pagetable.ts. */
const F_MAPPED = 1, F_EXCLUSIVE = 2, F_DIRTY = 4, F_IO = 8;
const MAX_PAGE = 0xFFFFFFFE;

/** The state of one frame, as `PageTable.frame()` reports it. */
export interface FrameState {
  /** Virtual page number cached in the frame, or -1 when the frame is free. */
  page: number;
  pins: number;
  exclusive: boolean;
  dirty: boolean;
  io: boolean;
  /** Cache priority 0..3. */
  priority: number;
  /** CLOCK counter: 0 means next in line for eviction. */
  ref: number;
}

/** A frame chosen for eviction: write it back first when `dirty`. */
export interface Victim { frame: number; page: number; dirty: boolean }

/** Views of the core's memory a PageTable works on. */
export interface PageTableViews {
  /** u32 scratch: frame lists in and out of batched calls. */
  scratch: Int32Array;
  counters: BigUint64Array;
  /** The page-table slots: [page, frame] pairs. */
  slots: Uint32Array;
  frameCount: number;
}

/** Counters kept since init. */
export interface PageTableCounters {
  lookups: number; hits: number; inserts: number; removes: number;
  victims: number; clockSteps: number; pinConflicts: number;
}

/**
 * The frame pool and page table of one core: which virtual page each frame
 * caches, and each frame's pins, dirty and I/O flags and CLOCK state.
 *
 * Batched forms take and return frame lists through `scratch`, a view of
 * the core's u32 scratch area; they copy results out unless told not to.
 */
export class PageTable {
  readonly frameCount: number;
  /** Largest run a batched call takes. */
  readonly maxBatch: number;
  /** The core's u32 scratch area (zero-copy; overwritten by the next batched call). */
  readonly scratch: Int32Array;
  readonly #x: CoreExports;
  readonly #counters: BigUint64Array;
  readonly #slots: Uint32Array;
  readonly #slotMask: number;
  readonly #rowShift: number;
  #lookups = 0;
  #hits = 0;

  constructor(exports: CoreExports, views: PageTableViews) {
    this.#x = exports;
    this.scratch = views.scratch;
    this.#counters = views.counters;
    this.#slots = views.slots;
    this.frameCount = views.frameCount;
    this.maxBatch = views.scratch.length;
    const slotCount = views.slots.length / 2;
    this.#slotMask = slotCount - 1;
    this.#rowShift = 32 - (Math.log2(slotCount) - 4);
  }

  /**
   * The frame caching `page`, or -1 when it is not cached.
   *
   * This probes the core's table in linear memory from JS, the same probe as
   * assembly/pagetable.ts: one JS-to-wasm call costs more than the probe.
   */
  lookup(page: number): number {
    if ((page >>> 0) !== page || page > MAX_PAGE) intIn(page, 0, MAX_PAGE, 'page'); // throws
    const slots = this.#slots;
    const mask = this.#slotMask;
    const h = Math.imul(page >>> 4, 0x9E3779B1);
    let i = ((h >>> this.#rowShift) << 4) | ((page ^ (h >>> 16)) & 15);
    this.#lookups++;
    for (;;) {
      const k = slots[i << 1];
      if (k === page) { this.#hits++; return slots[(i << 1) + 1]; }
      if (k === 0xFFFFFFFF) return -1;
      i = (i + 16) & mask;
    }
  }

  /** Maps `page` into a free frame (FULL when none is free); returns the frame. */
  insert(page: number, priority = 0): number {
    const r = this.#x.pageInsert(intIn(page, 0, MAX_PAGE, 'page'), intIn(priority, 0, 3, 'priority'));
    return r >= 0 ? r : check(r, `insert page ${page}`);
  }

  /** Moves an idle frame to `page` (after eviction); returns the frame. */
  remap(frame: number, page: number, priority = 0): number {
    const r = this.#x.pageRemap(this.#frame(frame), intIn(page, 0, MAX_PAGE, 'page'), intIn(priority, 0, 3, 'priority'));
    return r >= 0 ? r : check(r, `remap frame ${frame}`);
  }

  /** Unmaps `page` and frees its frame; returns the frame. */
  remove(page: number): number {
    const r = this.#x.pageRemove(intIn(page, 0, MAX_PAGE, 'page'));
    return r >= 0 ? r : check(r, `remove page ${page}`);
  }

  /** Pins a frame, shared or exclusive; returns its pin count. */
  pin(frame: number, exclusive = false): number {
    const r = this.#x.framePin(this.#frame(frame), exclusive ? 1 : 0);
    return r >= 0 ? r : check(r, `pin frame ${frame}`);
  }

  /** Drops one pin; returns the pins left. */
  unpin(frame: number): number {
    const r = this.#x.frameUnpin(this.#frame(frame));
    return r >= 0 ? r : check(r, `unpin frame ${frame}`);
  }

  setDirty(frame: number, dirty: boolean): void {
    const r = this.#x.frameSetDirty(this.#frame(frame), dirty ? 1 : 0);
    if (r < 0) check(r, `mark frame ${frame}`);
  }

  setIo(frame: number, busy: boolean): void {
    const r = this.#x.frameSetIo(this.#frame(frame), busy ? 1 : 0);
    if (r < 0) check(r, `set I/O on frame ${frame}`);
  }

  setPriority(frame: number, priority: number): void {
    const r = this.#x.frameSetPriority(this.#frame(frame), intIn(priority, 0, 3, 'priority'));
    if (r < 0) check(r, `prioritise frame ${frame}`);
  }

  /** Everything the core knows of one frame. */
  frame(frame: number): FrameState {
    const r = this.#x.frameState(this.#frame(frame));
    const s = r >= 0 ? r : check(r, `frame ${frame}`);
    const flags = (s >>> 16) & 0xFF;
    const page = flags & F_MAPPED ? Number(this.#x.framePage(frame)) : -1;
    return {
      page,
      pins: s & 0xFFFF,
      exclusive: (flags & F_EXCLUSIVE) !== 0,
      dirty: (flags & F_DIRTY) !== 0,
      io: (flags & F_IO) !== 0,
      priority: (flags >>> 4) & 3,
      ref: s >>> 24,
    };
  }

  /** A frame to evict by CLOCK, or null when every mapped frame is pinned or busy. */
  victim(): Victim | null {
    const f = this.#x.frameVictim();
    if (f === -11) return null;
    check(f, 'victim');
    const s = this.#x.frameState(f);
    return { frame: f, page: Number(this.#x.framePage(f)), dirty: ((s >>> 16) & F_DIRTY) !== 0 };
  }

  /**
   * Looks up `count` pages from `first`; returns the frames (-1 where not
   * cached) as a copy of length `count`, or, when `copy` is false, the
   * zero-copy scratch view whose first `count` entries hold them (valid
   * until the next batched call).
   */
  lookupRun(first: number, count: number, copy = true): Int32Array {
    if ((first >>> 0) !== first || first > MAX_PAGE) intIn(first, 0, MAX_PAGE, 'first');
    if ((count >>> 0) !== count || count === 0 || count > this.maxBatch) intIn(count, 1, this.maxBatch, 'count');
    const r = this.#x.pageLookupRun(first, count);
    if (r < 0) check(r, `lookup pages ${first}+${count}`);
    return copy ? this.scratch.slice(0, count) : this.scratch;
  }

  /** Pins every frame of `frames`, all or none. */
  pinAll(frames: ArrayLike<number>, exclusive = false): void {
    const n = this.#load(frames);
    check(this.#x.framePinList(n, exclusive ? 1 : 0), 'pin frames');
  }

  /** Unpins every frame of `frames`, all or none. */
  unpinAll(frames: ArrayLike<number>): void {
    const n = this.#load(frames);
    check(this.#x.frameUnpinList(n), 'unpin frames');
  }

  /** Dirty frames in ascending page order (a copy). */
  dirtyFrames(): Int32Array {
    const n = check(this.#x.frameDirtyList(), 'dirty list');
    return this.scratch.slice(0, n);
  }

  /** Frame totals. */
  totals(): { mapped: number; free: number; dirty: number; pinned: number } {
    const x = this.#x;
    return { mapped: x.frameTotals(0), free: x.frameTotals(1), dirty: x.frameTotals(2), pinned: x.frameTotals(3) };
  }

  counters(): PageTableCounters {
    const c = this.#counters;
    return {
      lookups: Number(c[0]) + this.#lookups, hits: Number(c[1]) + this.#hits, inserts: Number(c[2]), removes: Number(c[3]),
      victims: Number(c[4]), clockSteps: Number(c[5]), pinConflicts: Number(c[6]),
    };
  }

  #frame(frame: number): number {
    if (typeof frame === 'number' && (frame >>> 0) === frame && frame < this.frameCount) return frame;
    return intIn(frame, 0, this.frameCount - 1, 'frame');
  }

  #load(frames: ArrayLike<number>): number {
    const n = frames?.length;
    if (typeof n !== 'number') throw TwinpageError.invalidArgument('frames must be an array of frame indexes');
    intIn(n, 1, this.maxBatch, 'frames.length');
    for (let i = 0; i < n; i++) this.scratch[i] = u32(frames[i], `frames[${i}]`);
    return n;
  }
}
