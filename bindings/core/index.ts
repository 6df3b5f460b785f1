import { TwinpageError } from '../errors.js';
import { u32, intIn, bytes } from './args.js';
import { check } from './status.js';
import { instantiateCore } from './wasm.js';
import { Info, type CoreExports } from './exports.js';
import { PageTable } from './pagetable.js';
import { ConflictTable } from './conflict.js';

export { PageTable } from './pagetable.js';
export type { FrameState, Victim, PageTableCounters, PageTableViews } from './pagetable.js';
export { ConflictTable } from './conflict.js';
export type { RangeMode } from './conflict.js';
export { PageBitmap } from './bitmap.js';
export type { PageBitmapOptions, PageBitmapStats } from './bitmap.js';

/** Options of `Core.create`. */
export interface CoreOptions {
  /**
   * Bytes per page: a power of two from 512 to 1 MiB.
   * @default 4096
   */
  pageSize?: number;
  /** Number of page frames in the pool, fixed for the core's life (1 to 2^24). */
  frames: number;
  /**
   * Bytes of the io buffer, a staging area beside the frames (rounded up to 64).
   * `checksum(bytes)` takes inputs up to this size.
   * @default pageSize
   */
  ioBytes?: number;
  /**
   * Number of range-conflict tables (one per task group).
   * @default 1
   */
  conflictTables?: number;
  /**
   * Entries per conflict table (1 to 65536).
   * @default 256
   */
  conflictCapacity?: number;
}

/**
 * One instance of the WebAssembly core: a frame pool with its page table,
 * range-conflict tables, and copy and checksum routines over one linear
 * memory that is laid out once and never grows, so the views it hands out
 * never detach.
 */
export class Core {
  readonly pageSize: number;
  readonly frameCount: number;
  readonly ioBytes: number;
  readonly pages: PageTable;
  /** One conflict table per task group. */
  readonly conflicts: readonly ConflictTable[];
  /** The raw exports, for batched paths in the bindings. Statuses are < 0. */
  readonly exports: CoreExports;
  /** The io buffer (zero-copy). */
  readonly io: Uint8Array;
  readonly #data: Uint8Array;
  /** Views of frames made so far, by frame. */
  readonly #frameViews: Uint8Array[] = [];
  readonly #result: BigUint64Array;
  readonly #sums: BigUint64Array;

  private constructor(x: CoreExports) {
    const at = (field: Info) => Number(x.info(field));
    const buffer = x.memory.buffer;
    this.exports = x;
    this.pageSize = at(Info.PageSize);
    this.frameCount = at(Info.FrameCount);
    this.ioBytes = at(Info.IoBytes);
    const scratchCount = at(Info.ScratchCount);
    this.#data = new Uint8Array(buffer, at(Info.Data), at(Info.DataBytes));
    this.io = this.#data.subarray(0, this.ioBytes);
    this.#result = new BigUint64Array(buffer, at(Info.Result), 1);
    this.#sums = new BigUint64Array(buffer, at(Info.Scratch64), scratchCount);
    this.pages = new PageTable(x, {
      scratch: new Int32Array(buffer, at(Info.Scratch), scratchCount),
      counters: new BigUint64Array(buffer, at(Info.Counters), 8),
      slots: new Uint32Array(buffer, at(Info.Slots), at(Info.SlotCount) * 2),
      frameCount: this.frameCount,
    });
    const tables: ConflictTable[] = [];
    for (let t = 0; t < at(Info.TableCount); t++) tables.push(new ConflictTable(x, t));
    this.conflicts = tables;
  }

  /** Instantiates a core (the module is compiled once and cached) and lays out its memory. */
  static async create(options: CoreOptions): Promise<Core> {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    const pageSize = intIn(options.pageSize ?? 4096, 512, 1 << 20, 'pageSize');
    if ((pageSize & (pageSize - 1)) !== 0) throw TwinpageError.invalidArgument(`pageSize must be a power of two, got ${pageSize}`);
    const frames = intIn(options.frames, 1, 1 << 24, 'frames');
    const ioBytes = intIn(options.ioBytes ?? pageSize, 0, 1 << 30, 'ioBytes');
    const tables = intIn(options.conflictTables ?? 1, 0, 1 << 16, 'conflictTables');
    const capacity = intIn(options.conflictCapacity ?? 256, 1, 1 << 16, 'conflictCapacity');
    const x = await instantiateCore();
    check(x.init(pageSize, frames, ioBytes, tables, capacity), 'create core');
    return new Core(x);
  }

  /**
   * Zero-copy view of one frame's bytes: one view per frame, made the first
   * time it is asked for (the memory never grows, so a view stays valid).
   */
  frameView(frame: number): Uint8Array {
    const view = this.#frameViews[frame];
    if (view !== undefined && typeof frame === 'number') return view;
    const f = intIn(frame, 0, this.frameCount - 1, 'frame');
    const start = this.ioBytes + f * this.pageSize;
    return (this.#frameViews[f] = this.#data.subarray(start, start + this.pageSize));
  }

  /** The whole data area (the io buffer, then the frames), zero-copy; frame f starts at `frameOffset(f)`. */
  dataView(): Uint8Array {
    return this.#data;
  }

  /** Offset of a frame in the data area (the io buffer is at offset 0). */
  frameOffset(frame: number): number {
    return this.ioBytes + intIn(frame, 0, this.frameCount - 1, 'frame') * this.pageSize;
  }

  /** XXH3-64 of `data` (copied into the io buffer first; at most `ioBytes`). */
  checksum(data: Uint8Array): bigint {
    bytes(data, 'data');
    if (data.length > this.ioBytes) throw TwinpageError.tooLarge(`checksum input is ${data.length} bytes; the io buffer holds ${this.ioBytes}`);
    this.io.set(data);
    return this.checksumAt(0, data.length);
  }

  /**
   * XXH3-64 of each `size`-byte piece of `data` (its length a multiple of
   * `size`, at most `ioBytes`), into `out` from `at`: one copy into the io
   * buffer, then one call per piece.
   */
  checksumPieces(data: Uint8Array, size: number, out: bigint[], at = 0): void {
    bytes(data, 'data');
    if (data.length > this.ioBytes) throw TwinpageError.tooLarge(`checksum input is ${data.length} bytes; the io buffer holds ${this.ioBytes}`);
    this.io.set(data);
    for (let k = 0, off = 0; off < data.length; k++, off += size) out[at + k] = this.checksumAt(off, Math.min(size, data.length - off));
  }

  /** XXH3-64 of data-area bytes [offset, offset + length). */
  checksumAt(offset: number, length: number): bigint {
    check(this.exports.checksum(u32(offset, 'offset'), u32(length, 'length')), 'checksum');
    return this.#result[0];
  }

  /** XXH3-64 of one frame. */
  checksumFrame(frame: number): bigint {
    return this.checksumAt(this.frameOffset(frame), this.pageSize);
  }

  /**
   * XXH3-64 of each frame of `frames` in one call; also stored in each
   * frame's metadata. Returns a copy of the sums, in list order.
   */
  checksumFrames(frames: ArrayLike<number>): BigUint64Array {
    const n = frames?.length;
    if (typeof n !== 'number') throw TwinpageError.invalidArgument('frames must be an array of frame indexes');
    intIn(n, 1, this.pages.maxBatch, 'frames.length');
    const list = this.pages.scratch;
    for (let i = 0; i < n; i++) list[i] = u32(frames[i], `frames[${i}]`);
    check(this.exports.checksumFrames(n), 'checksum frames');
    return this.#sums.slice(0, n);
  }

  /** Copies one frame's bytes onto another. */
  copyFrame(dst: number, src: number): void {
    check(this.exports.copyBytes(this.frameOffset(dst), this.frameOffset(src), this.pageSize), 'copy frame');
  }

  /** Fills one frame with `value` (0..255). */
  fillFrame(frame: number, value: number): void {
    check(this.exports.fillBytes(this.frameOffset(frame), intIn(value, 0, 255, 'value'), this.pageSize), 'fill frame');
  }

  /** Index of the first byte where two frames differ, or -1 when equal. */
  compareFrames(a: number, b: number): number {
    const r = check(this.exports.compareBytes(this.frameOffset(a), this.frameOffset(b), this.pageSize), 'compare frames');
    return r === this.pageSize ? -1 : r;
  }

  /** Copies data-area bytes (overlap allowed). */
  copy(dst: number, src: number, length: number): void {
    check(this.exports.copyBytes(u32(dst, 'dst'), u32(src, 'src'), u32(length, 'length')), 'copy');
  }

  /** Fills data-area bytes with `value`. */
  fill(offset: number, value: number, length: number): void {
    check(this.exports.fillBytes(u32(offset, 'offset'), intIn(value, 0, 255, 'value'), u32(length, 'length')), 'fill');
  }

  /** Index of the first differing byte of two data-area ranges, or -1 when equal. */
  compare(a: number, b: number, length: number): number {
    const len = intIn(length, 0, 0x7FFFFFFF, 'length');
    const r = check(this.exports.compareBytes(u32(a, 'a'), u32(b, 'b'), len), 'compare');
    return r === len ? -1 : r;
  }
}
