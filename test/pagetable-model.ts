// A plain-TypeScript reference model of the core's frame pool and page table
// (assembly/pagetable.ts as seen through bindings/core/pagetable.ts). It is
// written for clarity, not speed: arrays and a Map, no hashing, no scratch.
// The model-based tests run the same random commands on both and compare.

import { TwinpageError } from '../bindings/errors.js';
import type { FrameState, Victim } from '../bindings/core/pagetable.js';

const MAX_PAGE = 0xFFFFFFFE;

interface Frame { page: number; pins: number; exclusive: boolean; dirty: boolean; io: boolean; priority: number; ref: number }

const freeFrame = (): Frame => ({ page: -1, pins: 0, exclusive: false, dirty: false, io: false, priority: 0, ref: 0 });

/** The public surface both the wasm-backed PageTable and this model offer. */
export interface PageTableLike {
  readonly frameCount: number;
  readonly maxBatch: number;
  lookup(page: number): number;
  insert(page: number, priority?: number): number;
  remap(frame: number, page: number, priority?: number): number;
  remove(page: number): number;
  pin(frame: number, exclusive?: boolean): number;
  unpin(frame: number): number;
  setDirty(frame: number, dirty: boolean): void;
  setIo(frame: number, busy: boolean): void;
  setPriority(frame: number, priority: number): void;
  frame(frame: number): FrameState;
  victim(): Victim | null;
  lookupRun(first: number, count: number): Int32Array;
  pinAll(frames: ArrayLike<number>, exclusive?: boolean): void;
  unpinAll(frames: ArrayLike<number>): void;
  dirtyFrames(): Int32Array;
  totals(): { mapped: number; free: number; dirty: number; pinned: number };
}

export class PageTableModel implements PageTableLike {
  readonly frameCount: number;
  readonly maxBatch: number;
  readonly frames: Frame[];
  readonly map = new Map<number, number>();
  /** Free frames; the last element is taken first. */
  readonly free: number[];
  hand = 0;

  constructor(frameCount: number) {
    this.frameCount = frameCount;
    this.maxBatch = Math.max(frameCount, 1024);
    this.frames = Array.from({ length: frameCount }, freeFrame);
    this.free = Array.from({ length: frameCount }, (_, i) => frameCount - 1 - i);
  }

  lookup(page: number): number {
    this.#page(page);
    return this.map.get(page) ?? -1;
  }

  insert(page: number, priority = 0): number {
    this.#page(page);
    this.#priority(priority);
    if (this.map.has(page)) throw TwinpageError.alreadyExists('exists');
    const frame = this.free.pop();
    if (frame === undefined) throw TwinpageError.full('full');
    this.#map(frame, page, priority);
    return frame;
  }

  remap(frame: number, page: number, priority = 0): number {
    this.#frame(frame);
    this.#page(page);
    this.#priority(priority);
    const f = this.#mapped(frame);
    if (f.pins !== 0 || f.io) throw TwinpageError.busy('busy');
    if (f.page === page || this.map.has(page)) throw TwinpageError.alreadyExists('exists');
    this.map.delete(f.page);
    this.#map(frame, page, priority);
    return frame;
  }

  remove(page: number): number {
    this.#page(page);
    const frame = this.map.get(page);
    if (frame === undefined) throw TwinpageError.notFound('not found');
    const f = this.frames[frame];
    if (f.pins !== 0 || f.io) throw TwinpageError.busy('busy');
    this.map.delete(page);
    this.frames[frame] = freeFrame();
    this.free.push(frame);
    return frame;
  }

  pin(frame: number, exclusive = false): number {
    return this.#pin(this.#frame(frame), exclusive);
  }

  unpin(frame: number): number {
    return this.#unpin(this.#frame(frame));
  }

  setDirty(frame: number, dirty: boolean): void { this.#mapped(this.#frame(frame)).dirty = dirty; }
  setIo(frame: number, busy: boolean): void { this.#mapped(this.#frame(frame)).io = busy; }
  setPriority(frame: number, priority: number): void {
    const p = this.#priority(this.#frame(frame) >= 0 ? priority : 0);
    this.#mapped(frame).priority = p;
  }

  frame(frame: number): FrameState {
    return { ...this.frames[this.#frame(frame)] };
  }

  victim(): Victim | null {
    if (this.map.size === 0) return null;
    for (let s = 0; s < this.frameCount * 5; s++) {
      const i = this.hand;
      this.hand = (this.hand + 1) % this.frameCount;
      const f = this.frames[i];
      if (f.page < 0 || f.io || f.pins !== 0) continue;
      if (f.ref > 0) { f.ref--; continue; }
      return { frame: i, page: f.page, dirty: f.dirty };
    }
    return null;
  }

  lookupRun(first: number, count: number): Int32Array {
    this.#page(first);
    this.#int(count, 1, this.maxBatch);
    if (first + count - 1 > MAX_PAGE) throw TwinpageError.invalidPage('run');
    return Int32Array.from({ length: count }, (_, i) => this.map.get(first + i) ?? -1);
  }

  pinAll(list: ArrayLike<number>, exclusive = false): void {
    const frames = this.#list(list);
    for (let i = 0; i < frames.length; i++) {
      try {
        this.#pin(frames[i], exclusive);
      } catch (err) {
        for (let j = 0; j < i; j++) this.#unpin(frames[j]);
        throw err;
      }
    }
  }

  unpinAll(list: ArrayLike<number>): void {
    const frames = this.#list(list);
    const wasExclusive: boolean[] = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i] < this.frameCount ? this.frames[frames[i]] : undefined;
      wasExclusive.push(f?.exclusive ?? false);
      try {
        this.#unpin(frames[i]);
      } catch (err) {
        for (let j = 0; j < i; j++) this.#pin(frames[j], wasExclusive[j]);
        throw err;
      }
    }
  }

  dirtyFrames(): Int32Array {
    const dirty = [...this.map.values()].filter((f) => this.frames[f].dirty);
    dirty.sort((a, b) => this.frames[a].page - this.frames[b].page);
    return Int32Array.from(dirty);
  }

  totals() {
    const mapped = [...this.map.values()].map((f) => this.frames[f]);
    return {
      mapped: this.map.size,
      free: this.free.length,
      dirty: mapped.filter((f) => f.dirty).length,
      pinned: mapped.filter((f) => f.pins > 0).length,
    };
  }

  // --- the same checks, in the same order, as the wasm path -----------------

  #map(frame: number, page: number, priority: number): void {
    this.frames[frame] = { page, pins: 0, exclusive: false, dirty: false, io: false, priority, ref: 1 + priority };
    this.map.set(page, frame);
  }

  #pin(frame: number, exclusive: boolean): number {
    if (frame >= this.frameCount) throw TwinpageError.frameOutOfRange('range');
    const f = this.#mapped(frame);
    if (f.exclusive || (exclusive && f.pins !== 0)) throw TwinpageError.pinConflict('conflict');
    if (f.pins === 0xFFFF) throw TwinpageError.full('pins');
    f.pins++;
    if (exclusive) f.exclusive = true;
    f.ref = 1 + f.priority;
    return f.pins;
  }

  #unpin(frame: number): number {
    if (frame >= this.frameCount) throw TwinpageError.frameOutOfRange('range');
    const f = this.#mapped(frame);
    if (f.pins === 0) throw TwinpageError.pinUnderflow('underflow');
    f.pins--;
    if (f.pins === 0) f.exclusive = false;
    return f.pins;
  }

  #mapped(frame: number): Frame {
    const f = this.frames[frame];
    if (f.page < 0) throw TwinpageError.frameNotMapped('not mapped');
    return f;
  }

  #list(list: ArrayLike<number>): number[] {
    this.#int(list.length, 1, this.maxBatch);
    const out: number[] = [];
    for (let i = 0; i < list.length; i++) out.push(this.#int(list[i], 0, 0xFFFFFFFF));
    return out;
  }

  #frame(frame: number): number { return this.#int(frame, 0, this.frameCount - 1); }
  #page(page: number): number { return this.#int(page, 0, MAX_PAGE); }
  #priority(p: number): number { return this.#int(p, 0, 3); }
  #int(v: number, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw TwinpageError.invalidArgument('arg');
    return v;
  }
}
