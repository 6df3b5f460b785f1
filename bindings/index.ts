// twinpage: the public API. This file (and cli.ts) is where a node and its
// mirror are put together; the layers below never import the mirror.
import { Memory, type MemoryInit, type MemoryOptions } from './memory/memory.js';
import { Mirror, type MirrorOptions } from './mirror/pair.js';
import type { Transport } from './mirror/transports/transport.js';

export { TwinpageError } from './errors.js';
export type { TwinpageErrorCode } from './errors.js';
export { Core, PageTable, ConflictTable, PageBitmap } from './core/index.js';
export type { CoreOptions, FrameState, Victim, PageTableCounters, RangeMode, PageBitmapOptions, PageBitmapStats } from './core/index.js';
export { Memory, ReadPointer, WritePointer } from './memory/memory.js';
export type {
  MemoryOptions, Block, SpaceReport, MemoryLink, Change, PageWrite, LinkPolicy, Attachment, AcquireOptions,
  PageDamage, DamageListener, ScrubOptions, ScrubReport,
} from './memory/memory.js';
export { DEFAULT_POLICY } from './policies.js';
export type { Policy, PolicyInput, Durability, WriteMode, CopyMethod } from './policies.js';
export * from './storage/index.js';
export { Scheduler } from './sched/scheduler.js';
export type { SchedulerOptions, Operation, SchedulerStats } from './sched/scheduler.js';
export { MessageType, encodeFrame, decodeFrame, FrameArena, FrameReader } from './messages.js';
export type { Message, Request, Reply, Frame } from './messages.js';
export { Mirror, MirrorEvent, MirrorEvents, MIRROR_EVENTS } from './mirror/pair.js';
export { MemoryArbiter } from './mirror/arbiter.js';
export type { Arbiter, PairRecord, Acquired } from './mirror/arbiter.js';
export type {
  MirrorOptions, MirrorState, MirrorStats, VerifyReport, Role, MirrorEventMap, MirrorEventType, MirrorListenOptions,
} from './mirror/pair.js';
export type { Transport, TransportOptions } from './mirror/transports/transport.js';
export { inProcessPair } from './mirror/transports/transport.js';
export { messagePortTransport } from './mirror/transports/message-port.js';
export { reconnecting } from './mirror/transports/reconnect.js';
export type { ReconnectOptions, ReconnectingLink, Attachable } from './mirror/transports/reconnect.js';
export { withFaults } from './mirror/transports/faulty.js';
export type { FaultPlan, FaultyTransport } from './mirror/transports/faulty.js';

/** Options of `openMemory`: a memory, and optionally its mirror. */
export interface OpenOptions extends MemoryOptions {
  /** Pair this memory with a partner: its role, and the transport to it (or attach one later). */
  mirror?: MirrorOptions & { transport?: Transport };
}

/** A memory paired with a partner through its mirror. */
export class MirroredMemory extends Memory {
  #mirror: Mirror | null = null;

  /** The pair: role, health, resync, verify, failover. */
  get mirror(): Mirror {
    return this.#mirror!;
  }

  /** Opens a memory and pairs it (`options.mirror` is required). */
  static async openPaired(options: OpenOptions & { mirror: NonNullable<OpenOptions['mirror']> }): Promise<MirroredMemory> {
    const memory = await Memory.openWith(options, (init: MemoryInit) => new MirroredMemory(init));
    try {
      memory.#mirror = new Mirror(memory, options.mirror);
    } catch (err) {
      await memory.close().catch(() => {});
      throw err;
    }
    if (options.mirror.transport) memory.#mirror.attach(options.mirror.transport);
    return memory;
  }

  /**
   * Leaves the pair (recording what the partner lacks), then flushes and
   * closes. Refused with BUSY while pointers are held: the mirror stays,
   * and keeps recording.
   */
  override async close(): Promise<void> {
    if (this.pointersHeld > 0) return super.close();
    await this.#mirror?.close();
    await super.close();
  }
}

/**
 * Opens (or creates) a memory; with `mirror`, also pairs it with a partner:
 * a primary sends every change to it, a secondary applies the partner's.
 */
export async function openMemory(options: OpenOptions & { mirror: NonNullable<OpenOptions['mirror']> }): Promise<MirroredMemory>;
export async function openMemory(options: OpenOptions): Promise<Memory>;
export async function openMemory(options: OpenOptions): Promise<Memory | MirroredMemory> {
  if (options?.mirror) return MirroredMemory.openPaired(options as OpenOptions & { mirror: NonNullable<OpenOptions['mirror']> });
  return Memory.open(options);
}
