// twinpage: the public API.
export { TwinpageError } from './errors.js';
export type { TwinpageErrorCode } from './errors.js';
export { Core, PageTable, ConflictTable } from './core/index.js';
export type { CoreOptions, FrameState, Victim, PageTableCounters, RangeMode } from './core/index.js';
export { openMemory, Memory, ReadPointer, WritePointer } from './memory.js';
export type { MemoryOptions, Block, SpaceReport } from './memory.js';
export { DEFAULT_POLICY } from './policies.js';
export type { Policy, PolicyInput, Durability, WriteMode, CopyMethod } from './policies.js';
export * from './storage/index.js';
export { Scheduler } from './sched/scheduler.js';
export type { SchedulerOptions, Operation, SchedulerStats } from './sched/scheduler.js';
