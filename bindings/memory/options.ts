// The options of a memory: what `openMemory` and `Memory.open` take, checked
// once, with their defaults.

import { TwinpageError } from '../errors.js';
import { intOption } from '../options.js';
import { PolicyList, type PolicyInput } from '../policies.js';
import type { StoreSpec } from '../storage/resolve.js';

/** Options of `openMemory`. */
export interface MemoryOptions {
  /**
   * Where the memory lives: a data folder (Node), a `Store`, or several of
   * either to keep a mirrored set of copies on this node (US 7,107,411 claim 4).
   * A new store is made only where no twinpage data is (a missing or empty
   * folder, or one whose creation never wrote its first superblock); a
   * folder holding data files without a valid superblock is refused with
   * CORRUPT, never taken for a new store.
   */
  store: StoreSpec;
  /**
   * Bytes per page for a new store: a power of two from 512 to 1 MiB. An
   * existing store keeps its own; giving another is an error.
   * @default 4096
   */
  pageSize?: number;
  /**
   * Bytes of page cache (frames), reserved in linear memory at open.
   * @default 64 MiB
   */
  cacheBytes?: number;
  /**
   * Policies chosen by allocation size. @default one policy: `disk`, write-through.
   */
  policies?: PolicyInput[];
  /**
   * Bytes of address space (and storage) blocks may take in all.
   * @default the whole u32 page space
   */
  capacityBytes?: number;
  /**
   * How often the background flusher journals write-back pages, in ms; 0 turns it off.
   * @default 1000
   */
  flushIntervalMs?: number;
  /**
   * Task groups the address space is dealt to (a power of two); each serves
   * its stripes' storage operations (US 7,167,969).
   * @default 4
   */
  taskGroups?: number;
  /**
   * Tasks per group: storage operations one group runs at once.
   * @default 4
   */
  tasksPerGroup?: number;
  /**
   * Pages per stripe of the address space (a power of two).
   * @default 256
   */
  stripePages?: number;
  /**
   * Journal size that triggers a checkpoint (page file brought up to date, journal restarted).
   * @default 64 MiB
   */
  checkpointBytes?: number;
  /**
   * Upgrade a store of an older format version in place when it is opened
   * (docs/storage.md: the old journal replayed, the checksums rewritten in
   * the current format, a checkpoint). With false such a store is refused
   * with UNSUPPORTED_FORMAT and left as it is.
   * @default true
   */
  upgrade?: boolean;
}

/** The options, checked, with defaults filled in (the store still to resolve). */
export interface ResolvedMemoryOptions {
  store: StoreSpec;
  pageSize: number | undefined;
  cacheBytes: number;
  policies: PolicyList;
  capacityBytes: number | undefined;
  flushIntervalMs: number;
  taskGroups: number;
  tasksPerGroup: number;
  stripePages: number;
  checkpointBytes: number;
  upgrade: boolean;
}

export function resolveMemoryOptions(options: MemoryOptions): ResolvedMemoryOptions {
  if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
  const taskGroups = intOption('taskGroups', options.taskGroups, 4);
  if ((taskGroups & (taskGroups - 1)) !== 0 || taskGroups > 1024) throw TwinpageError.invalidArgument(`taskGroups must be a power of two up to 1024, got ${taskGroups}`);
  if (options.pageSize !== undefined) checkPageSize(options.pageSize);
  if (options.capacityBytes !== undefined) intOption('capacityBytes', options.capacityBytes, 1);
  return {
    store: options.store,
    pageSize: options.pageSize,
    cacheBytes: intOption('cacheBytes', options.cacheBytes, 64 << 20),
    flushIntervalMs: intOption('flushIntervalMs', options.flushIntervalMs, 1000, 0),
    checkpointBytes: intOption('checkpointBytes', options.checkpointBytes, 64 << 20),
    policies: new PolicyList(options.policies ?? undefined),
    capacityBytes: options.capacityBytes,
    taskGroups,
    tasksPerGroup: intOption('tasksPerGroup', options.tasksPerGroup, 4),
    stripePages: intOption('stripePages', options.stripePages, 256),
    upgrade: booleanOption('upgrade', options.upgrade, true),
  };
}

function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw TwinpageError.invalidArgument(`${name} must be a boolean, got ${String(value)}`);
  return value;
}

export function checkPageSize(ps: unknown): void {
  if (typeof ps !== 'number' || !Number.isInteger(ps) || ps < 512 || ps > 1 << 20 || (ps & (ps - 1)) !== 0) {
    throw TwinpageError.invalidArgument(`pageSize must be a power of two from 512 to 1048576, got ${String(ps)}`);
  }
}
