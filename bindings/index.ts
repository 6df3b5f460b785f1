// twinpage: the public API. This file (and cli.ts) is where a node and its
// mirror are put together; the layers below never import the mirror.
import { Memory, type MemoryOptions } from './memory.js';
import { Mirror, type MirrorOptions } from './mirror/pair.js';
import type { Transport } from './mirror/transports/transport.js';

export { TwinpageError } from './errors.js';
export type { TwinpageErrorCode } from './errors.js';
export { Core, PageTable, ConflictTable } from './core/index.js';
export type { CoreOptions, FrameState, Victim, PageTableCounters, RangeMode } from './core/index.js';
export { Memory, ReadPointer, WritePointer } from './memory.js';
export type { MemoryOptions, Block, SpaceReport, Outbox } from './memory.js';
export { DEFAULT_POLICY } from './policies.js';
export type { Policy, PolicyInput, Durability, WriteMode, CopyMethod } from './policies.js';
export * from './storage/index.js';
export { Scheduler } from './sched/scheduler.js';
export type { SchedulerOptions, Operation, SchedulerStats } from './sched/scheduler.js';
export { MessageType, encodeFrame, decodeFrame, FrameReader } from './messages.js';
export type { Message, Request, Reply, Frame } from './messages.js';
export { Mirror } from './mirror/pair.js';
export type { MirrorOptions, MirrorState, MirrorStats, VerifyReport, Role } from './mirror/pair.js';
export type { Transport, TransportOptions } from './mirror/transports/transport.js';
export { inProcessPair } from './mirror/transports/transport.js';
export { messagePortTransport } from './mirror/transports/message-port.js';
export { withFaults } from './mirror/transports/faulty.js';
export type { FaultPlan, FaultyTransport } from './mirror/transports/faulty.js';

/** Options of `openMemory`: a memory, and optionally its mirror. */
export interface OpenOptions extends MemoryOptions {
  /** Pair this memory with a partner: its role, and the transport to it (or attach one later). */
  mirror?: MirrorOptions & { transport?: Transport };
}

/** A memory with its mirror. */
export interface MirroredMemory extends Memory {
  readonly mirror: Mirror;
}

/**
 * Opens (or creates) a memory; with `mirror`, also pairs it with a partner:
 * a primary sends every change to it, a secondary applies the partner's.
 */
export async function openMemory(options: OpenOptions & { mirror: NonNullable<OpenOptions['mirror']> }): Promise<MirroredMemory>;
export async function openMemory(options: OpenOptions): Promise<Memory>;
export async function openMemory(options: OpenOptions): Promise<Memory | MirroredMemory> {
  const memory = await Memory.open(options);
  if (!options.mirror) return memory;
  const mirror = new Mirror(memory, options.mirror);
  const close = memory.close.bind(memory);
  Object.defineProperty(memory, 'mirror', { value: mirror, enumerable: true });
  Object.defineProperty(memory, 'close', {
    value: async () => {
      // Refused while pointers are held: the mirror stays, and keeps recording.
      if (memory.pointersHeld > 0) return close();
      await mirror.close();
      await close();
    },
  });
  if (options.mirror.transport) mirror.attach(options.mirror.transport);
  return memory as MirroredMemory;
}
