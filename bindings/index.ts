// twinpage: the public API.
export { TwinpageError } from './errors.js';
export type { TwinpageErrorCode } from './errors.js';
export { Core, PageTable, ConflictTable } from './core/index.js';
export type { CoreOptions, FrameState, Victim, PageTableCounters, RangeMode } from './core/index.js';
