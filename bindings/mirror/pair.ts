// The pair: one memory's changes, as paging synchronization messages, sent to
// the partner, which applies them through the same code (Memory.applyRemote)
// and acknowledges cumulatively at the durability reached.
//
//   primary                                        secondary
//   Memory ──outbox──▶ Mirror ══ frames ══▶ Mirror ──applyRemote──▶ Memory
//                        ▲                    │
//                        └──── ACK(seq, level) ┘   level: 1 memory, 2 disk
//
// A release resolves on the primary once the partner's ACK covers its last
// frame at the block's durability (`disk`: the partner's journal flushed;
// `memory`: received; `async`: sent). Without a partner the primary goes on
// (degraded) and remembers the pages it changed, for a resync.
//
// This is the first cut of the pair: in-order streaming, acks, heartbeats,
// degraded mode with an in-memory page set, and promotion. Persisted
// bitmaps, write-intent extents, generations deciding sync direction, resync
// and verify come next.

import { TwinpageError } from '../errors.js';
import type { Memory } from '../memory.js';
import type { Durability } from '../policies.js';
import {
  AckLevel, MessageType, decodeFrame, encodeFrame,
  type Frame, type Message, type Request,
} from '../messages.js';
import type { Transport } from './transport.js';

export type Role = 'primary' | 'secondary';

/** Options of a Mirror. */
export interface MirrorOptions {
  role: Role;
  /**
   * How often the primary senses the partner (SENSE_REQUEST, the heartbeat), in ms.
   * @default 1000
   */
  heartbeatMs?: number;
  /**
   * A partner silent this long is down: the primary goes on degraded.
   * @default 5000
   */
  timeoutMs?: number;
}

/** What `sense()` reports. */
export interface MirrorState {
  role: Role;
  health: 'ok' | 'degraded';
  connected: boolean;
  /** Frames sent and not yet acknowledged at disk level. */
  inFlight: number;
  /** Pages changed while the partner could not acknowledge them. */
  lagPages: number;
  /** Highest sequence applied here from the partner. */
  lastApplied: number;
}

interface AckWaiter { seq: number; level: number; resolve: () => void }

const LEVEL: Record<Durability, number> = { async: -1, memory: AckLevel.MEMORY, disk: AckLevel.DISK };

export class Mirror {
  readonly memory: Memory;
  #role: Role;
  #transport: Transport | null = null;
  readonly #heartbeatMs: number;
  readonly #timeoutMs: number;
  #generation = 1n;
  // sending (primary)
  #sent = 0;
  #acked = [0, 0, 0];
  #waiters: AckWaiter[] = [];
  /** Pages of frames sent and not yet acknowledged at disk level, by sequence. */
  readonly #unacked = new Map<number, number[]>();
  /** Pages the partner may lack (degraded mode). */
  readonly #lagging = new Set<number>();
  #degraded = false;
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #heardAt = 0;
  // receiving (secondary)
  #received = 0;
  #applied = 0;
  #queue: Promise<void> = Promise.resolve();
  readonly #inflight: Array<{ seq: number; done: Promise<void>; finished: boolean }> = [];

  constructor(memory: Memory, options: MirrorOptions) {
    if (options?.role !== 'primary' && options?.role !== 'secondary') throw TwinpageError.invalidArgument(`mirror.role must be 'primary' or 'secondary'`);
    this.memory = memory;
    this.#role = options.role;
    this.#heartbeatMs = positive(options.heartbeatMs, 1000, 'mirror.heartbeatMs');
    this.#timeoutMs = positive(options.timeoutMs, 5000, 'mirror.timeoutMs');
    if (this.#role === 'primary') this.#attachOutbox();
  }

  get role(): Role { return this.#role; }

  /** Connects to the partner over `transport` (replacing any earlier one). */
  attach(transport: Transport): void {
    this.#transport?.close();
    this.#transport = transport;
    this.#heardAt = Date.now();
    transport.onFrame((bytes) => this.#receive(bytes));
    transport.onClose(() => { if (this.#transport === transport) this.#lost(); });
    this.#degraded = false;
    this.#send({ type: MessageType.HELLO, protocol: 1, pageSize: this.memory.pageSize, nodeId: this.#nodeId(), nonce: new Uint8Array(32), generations: { generation: this.#generation.toString(16) } });
    if (this.#role === 'primary') this.#startHeartbeat();
  }

  /** Makes this node the primary (failover): it serves writes from now on. */
  promote(): void {
    if (this.#role === 'primary') return;
    this.#role = 'primary';
    this.#generation += 1n;
    this.#attachOutbox();
    if (this.#transport) this.#startHeartbeat();
  }

  sense(): MirrorState {
    return {
      role: this.#role,
      health: this.#degraded || !this.#transport ? 'degraded' : 'ok',
      connected: !!this.#transport && !this.#transport.closed,
      inFlight: this.#sent - this.#acked[AckLevel.DISK],
      lagPages: this.#lagging.size,
      lastApplied: this.#applied,
    };
  }

  /** Pages changed while the partner could not acknowledge them (a resync must send them). */
  laggingPages(): number[] {
    return [...this.#lagging].sort((a, b) => a - b);
  }

  close(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    if (this.memory.outbox === this.#outbox) this.memory.outbox = null;
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    this.#releaseWaiters();
  }

  // --- primary: send and wait for acks ----------------------------------------------------

  readonly #outbox = (messages: Request[], durability: Durability): Promise<void> => {
    const t = this.#transport;
    const pages = messages.flatMap((m) => (m.type === MessageType.WRITE_PAGE ? [m.page] : []));
    if (!t || t.closed || this.#degraded) {
      for (const p of pages) this.#lagging.add(p);
      return Promise.resolve();
    }
    let last = 0;
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      last = ++this.#sent;
      sends.push(this.#sendOn(t, m, last));
    }
    if (pages.length) this.#unacked.set(last, pages);
    const level = LEVEL[durability];
    const sent = Promise.all(sends).then(() => undefined, () => undefined);
    if (level < 0 || this.#acked[level] >= last) return sent;
    return new Promise((resolve) => this.#waiters.push({ seq: last, level, resolve }));
  };

  #attachOutbox(): void {
    this.memory.outbox = this.#outbox;
  }

  #onAck(applied: number, level: number): void {
    for (let l = 0; l <= level; l++) this.#acked[l] = Math.max(this.#acked[l], applied);
    if (level >= AckLevel.DISK) {
      for (const seq of this.#unacked.keys()) if (seq <= applied) this.#unacked.delete(seq);
    }
    this.#waiters = this.#waiters.filter((w) => {
      if (this.#acked[w.level] >= w.seq) { w.resolve(); return false; }
      return true;
    });
  }

  /** The partner is gone: writes go on locally; what it did not acknowledge will need a resync. */
  #lost(): void {
    this.#degraded = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    for (const pages of this.#unacked.values()) for (const p of pages) this.#lagging.add(p);
    this.#unacked.clear();
    this.#releaseWaiters();
  }

  #releaseWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
  }

  #startHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#heardAt > this.#timeoutMs) {
        const t = this.#transport;
        this.#lost();
        t?.close(TwinpageError.closed(`the partner was silent for ${this.#timeoutMs} ms`));
        return;
      }
      this.#send({ type: MessageType.SENSE_REQUEST });
    }, this.#heartbeatMs);
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  // --- both: frames in --------------------------------------------------------------------------

  #receive(bytes: Uint8Array): void {
    this.#heardAt = Date.now();
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.#hash, { maxBody: 8 << 20, pageSize: this.memory.pageSize });
    } catch (err) {
      this.#fail(err);
      return;
    }
    const m = frame.message as Message;
    switch (m.type) {
      case MessageType.HELLO:
        if (m.pageSize !== this.memory.pageSize) this.#fail(TwinpageError.invalidArgument(`the partner uses ${m.pageSize}-byte pages, this node ${this.memory.pageSize}`));
        return;
      case MessageType.ACK:
        this.#onAck(m.applied, m.level);
        return;
      case MessageType.SENSE_REQUEST: {
        const s = this.sense();
        this.#send({
          type: MessageType.SENSE_REPLY, replyTo: frame.sequence, role: this.#role, nodeId: this.#nodeId(),
          generation: this.#generation.toString(16).padStart(16, '0'), history: [], lastApplied: this.#applied,
          health: s.health, lagPages: s.lagPages,
        });
        return;
      }
      case MessageType.SENSE_REPLY:
        return;
      case MessageType.ERROR:
        this.#transport?.close(new TwinpageError('IO_ERROR', `the partner reported ${m.code}: ${m.message}`));
        return;
      case MessageType.ALLOCATE_MEMORY:
      case MessageType.RELEASE_MEMORY:
      case MessageType.WRITE_PAGE:
      case MessageType.RELEASE_POINTER:
        if (this.#role !== 'secondary') {
          this.#fail(TwinpageError.invalidArgument('both nodes act as primary (split brain): refusing the partner\'s changes'));
          return;
        }
        this.#apply(frame.sequence, m);
        return;
      default:
        return; // replies and requests that change nothing
    }
  }

  // --- secondary: apply in order, ack as it goes ----------------------------------------------

  /**
   * Starts applying `msg`. Block-table changes wait for everything before
   * them; page releases start in order and overlap (their ranges keep
   * conflicting ones in order), so their journal flushes are shared.
   */
  #apply(seq: number, msg: Request): void {
    this.#received = seq;
    this.#queue = this.#queue.then(async () => {
      const barrier = msg.type === MessageType.ALLOCATE_MEMORY || msg.type === MessageType.RELEASE_MEMORY;
      if (barrier) await Promise.all(this.#inflight.map((f) => f.done));
      const entry = { seq, done: this.memory.applyRemote(msg), finished: false };
      this.#inflight.push(entry);
      entry.done.then(() => { entry.finished = true; this.#settle(); }, (err) => this.#fail(err));
      if (barrier) await entry.done.catch(() => {});
    });
    this.#scheduleAck(AckLevel.MEMORY);
  }

  /** Acknowledges at disk level every frame whose apply (and all before it) finished. */
  #settle(): void {
    let advanced = false;
    while (this.#inflight.length && this.#inflight[0].finished) {
      this.#applied = this.#inflight.shift()!.seq;
      advanced = true;
    }
    if (advanced) this.#scheduleAck(AckLevel.DISK);
  }

  #ackScheduled = -1;
  #scheduleAck(level: number): void {
    if (this.#ackScheduled >= level) return;
    const first = this.#ackScheduled < 0;
    this.#ackScheduled = Math.max(this.#ackScheduled, level);
    if (!first) return;
    queueMicrotask(() => {
      const lvl = this.#ackScheduled;
      this.#ackScheduled = -1;
      const applied = lvl >= AckLevel.DISK ? this.#applied : this.#received;
      this.#send({ type: MessageType.ACK, applied, level: lvl as 0 | 1 | 2 });
      if (lvl >= AckLevel.DISK && this.#received > this.#applied) this.#send({ type: MessageType.ACK, applied: this.#received, level: AckLevel.MEMORY });
    });
  }

  // --- helpers ---------------------------------------------------------------------------------

  readonly #hash = (b: Uint8Array) => this.memory.core.checksum(b);

  #send(m: Message): void {
    const t = this.#transport;
    if (!t || t.closed) return;
    this.#sendOn(t, m, 0).catch(() => {});
  }

  #sendOn(t: Transport, m: Message, seq: number): Promise<void> {
    return t.send(encodeFrame(m, { sequence: seq, generation: this.#generation }, this.#hash));
  }

  #fail(err: unknown): void {
    const e = err instanceof TwinpageError ? err : new TwinpageError('IO_ERROR', String((err as Error)?.message ?? err));
    this.#send({ type: MessageType.ERROR, replyTo: 0, code: e.code, message: e.message });
    const t = this.#transport;
    this.#transport = null;
    t?.close(e);
    if (this.#role === 'primary') this.#lost();
  }

  #nodeId(): string {
    return this.memory.nodeId;
  }
}

function positive(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw TwinpageError.invalidArgument(`${name} must be a positive integer`);
  return value;
}
