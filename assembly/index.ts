// twinpage core: the exports of the WebAssembly module.
//
// Three structures live in one linear memory, laid out once by init() (see
// layout.ts) and never grown afterwards:
//   pagetable.ts  frame pool + page table (CLOCK eviction, pins, dirty list)
//   conflict.ts   range-conflict tables, one per task group
//   checksum.ts   XXH3-64 page checksums; copy.ts: copy, fill, compare
//
// An instance set up by bitmapInit() instead holds one out-of-sync bitmap
// (bitmap.ts) in a memory that grows; each mode refuses the other's exports.
//
// Every export returns a status (assembly/status.ts) instead of trapping.

import { OK, E_NOT_READY, E_INVALID_ARG, E_TOO_LARGE, E_ALREADY_INIT } from './status';
import {
  layoutBegin, reserve, layoutCommit, setDataArea, setReady, ready,
  dataBase, dataBytes, ioBytes, pageSize,
} from './layout';
import {
  pageTableSetup, pageTableReset, metaBase, scratchBase, scratchCount,
  frameCount, countersBase, slotBase, slotMask,
} from './pagetable';
import { checksumSetup, scratch64Base, resultBase } from './checksum';
import { conflictSetup, conflictReset, tableCount, tableCapacity } from './conflict';
import { bitmapReady } from './bitmap';

export {
  pageLookup, pageInsert, pageRemap, pageRemove, framePage,
  framePin, frameUnpin, frameSetDirty, frameSetIo, frameSetPriority, frameState,
  frameVictim, pageLookupRun, framePinList, frameUnpinList, frameDirtyList, frameTotals,
} from './pagetable';
export {
  conflictInsert, conflictTryInsert, conflictQuery, conflictBlocker, conflictRemove,
  conflictRemoveOwner, conflictCount, conflictClear,
} from './conflict';
export { checksum, checksumFrames } from './checksum';
export { copyBytes, fillBytes, compareBytes } from './copy';
export {
  bitmapInit, bitmapSet, bitmapClear, bitmapTest, bitmapNext, bitmapCount, bitmapWeight,
  bitmapRuns, bitmapAddRuns, bitmapClearAll, bitmapDirty, bitmapChunkRead, bitmapChunkLoad,
  bitmapMarkClean, bitmapMarkDirty, bitmapChunkSpan, bitmapInfo,
} from './bitmap';

@inline const MIN_PAGE: u32 = 512;
@inline const MAX_PAGE: u32 = 1 << 20;
@inline const MAX_FRAMES: u32 = 1 << 24;
@inline const MAX_IO: u32 = 1 << 30;
@inline const MAX_TABLES: u32 = 1 << 16;
@inline const MAX_TABLE_CAPACITY: u32 = 1 << 16;
@inline const MIN_SCRATCH: u32 = 1024;

/**
 * Lays out linear memory: `frames` frames of `pageSize` bytes, an io buffer
 * of `io` bytes (rounded up to 64), and `tables` conflict tables of
 * `capacity` entries each. Once per instance.
 */
export function init(page: u32, frames: u32, io: u32, tables: u32, capacity: u32): i32 {
  if (ready || bitmapReady) return E_ALREADY_INIT;
  if (page < MIN_PAGE || page > MAX_PAGE || popcnt(page) != 1) return E_INVALID_ARG;
  if (frames == 0 || frames > MAX_FRAMES) return E_INVALID_ARG;
  if (io > MAX_IO) return E_INVALID_ARG;
  if (tables > MAX_TABLES || capacity == 0 || capacity > MAX_TABLE_CAPACITY) return E_INVALID_ARG;
  let ioRounded = (<u64>io + 63) & ~<u64>63;
  let scratch = frames > MIN_SCRATCH ? frames : MIN_SCRATCH;
  layoutBegin();
  if (!pageTableSetup(frames, scratch)) return E_TOO_LARGE;
  if (!checksumSetup(scratch)) return E_TOO_LARGE;
  if (!conflictSetup(tables, capacity)) return E_TOO_LARGE;
  let data = reserve(ioRounded + <u64>frames * <u64>page, 64);
  if (data == 0) return E_TOO_LARGE;
  if (!layoutCommit()) return E_TOO_LARGE;
  setDataArea(data, <usize>ioRounded, page, frames);
  pageTableReset();
  conflictReset();
  setReady();
  return OK;
}

/**
 * Where things are, for the bindings' views:
 *   0 frame meta   1 scratch (u32)  2 scratch count   3 data area
 *   4 data bytes   5 io bytes       6 page size       7 frame count
 *   8 counters     9 scratch (u64)  10 checksum result
 *   11 table count 12 table capacity
 *   13 page-table slots  14 slot count
 */
export function info(field: u32): i64 {
  if (!ready) return E_NOT_READY;
  switch (field) {
    case 0: return <i64>metaBase;
    case 1: return <i64>scratchBase;
    case 2: return <i64>scratchCount;
    case 3: return <i64>dataBase;
    case 4: return <i64>dataBytes;
    case 5: return <i64>ioBytes;
    case 6: return <i64>pageSize;
    case 7: return <i64>frameCount;
    case 8: return <i64>countersBase;
    case 9: return <i64>scratch64Base;
    case 10: return <i64>resultBase;
    case 11: return <i64>tableCount;
    case 12: return <i64>tableCapacity;
    case 13: return <i64>slotBase;
    case 14: return <i64>slotMask + 1;
  }
  return E_INVALID_ARG;
}
