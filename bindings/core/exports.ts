/**
 * The part of the core's `WebAssembly.Memory` the bindings use. Named by its
 * shape so that the published declarations need neither the DOM nor a
 * WebAssembly lib (a Node project with `lib: ["ES2022"]` has neither).
 */
export interface CoreMemory {
  readonly buffer: ArrayBuffer;
}

/** The raw exports of the core module (assembly/index.ts). Statuses are < 0. */
export interface CoreExports {
  readonly memory: CoreMemory;
  init(pageSize: number, frames: number, ioBytes: number, tables: number, capacity: number): number;
  info(field: number): bigint;

  // frame pool and page table (assembly/pagetable.ts)
  pageLookup(page: number): number;
  pageInsert(page: number, prio: number): number;
  pageRemap(frame: number, page: number, prio: number): number;
  pageRemove(page: number): number;
  framePage(frame: number): bigint;
  framePin(frame: number, exclusive: number): number;
  frameUnpin(frame: number): number;
  frameSetDirty(frame: number, dirty: number): number;
  frameSetIo(frame: number, busy: number): number;
  frameSetPriority(frame: number, prio: number): number;
  frameState(frame: number): number;
  frameVictim(): number;
  pageLookupRun(first: number, count: number): number;
  framePinList(count: number, exclusive: number): number;
  frameUnpinList(count: number): number;
  frameDirtyList(): number;
  frameTotals(which: number): number;

  // range-conflict tables (assembly/conflict.ts)
  conflictInsert(table: number, first: number, last: number, mode: number, owner: number): number;
  conflictTryInsert(table: number, first: number, last: number, mode: number, owner: number): number;
  conflictQuery(table: number, first: number, last: number, mode: number): number;
  conflictBlocker(table: number, id: number): number;
  conflictRemove(table: number, id: number): number;
  conflictRemoveOwner(table: number, owner: number): number;
  conflictCount(table: number): number;
  conflictClear(table: number): number;

  // checksum, copy, fill, compare over the data area (assembly/checksum.ts, copy.ts)
  checksum(offset: number, length: number): number;
  checksumFrames(count: number): number;
  copyBytes(dst: number, src: number, length: number): number;
  fillBytes(offset: number, value: number, length: number): number;
  compareBytes(a: number, b: number, length: number): number;
}

/** Fields of `info()`. */
export const enum Info {
  Meta = 0, Scratch = 1, ScratchCount = 2, Data = 3, DataBytes = 4, IoBytes = 5,
  PageSize = 6, FrameCount = 7, Counters = 8, Scratch64 = 9, Result = 10,
  TableCount = 11, TableCapacity = 12, Slots = 13, SlotCount = 14,
}

/**
 * The out-of-sync bitmap's exports (assembly/bitmap.ts), answered only by an
 * instance set up with bitmapInit() (the same module as the core, another
 * instance). Counts and pages come back as numbers (f64); statuses are < 0.
 */
export interface BitmapExports {
  readonly memory: CoreMemory;
  bitmapInit(runs: number, limitPages: number): number;
  bitmapSet(first: number, count: number): number;
  bitmapClear(first: number, count: number): number;
  bitmapTest(page: number): number;
  bitmapNext(from: number): number;
  bitmapCount(first: number, count: number): number;
  bitmapWeight(): number;
  bitmapRuns(from: number, max: number): number;
  bitmapAddRuns(n: number): number;
  bitmapClearAll(): number;
  bitmapDirty(from: number, max: number): number;
  bitmapChunkRead(chunk: number): number;
  bitmapChunkLoad(chunk: number): number;
  bitmapMarkClean(chunk: number): number;
  bitmapMarkDirty(chunk: number): number;
  bitmapChunkSpan(): number;
  bitmapInfo(field: number): number;
}

/** Fields of `bitmapInfo()`. */
export const enum BitmapInfo {
  Io = 0, IoBytes = 1, RunBatch = 2, OwnChunks = 3, FullChunks = 4, Directories = 5,
  Carved = 6, Free = 7, MaxBlocks = 8, Top = 9, Pool = 10, Weight = 11,
}
