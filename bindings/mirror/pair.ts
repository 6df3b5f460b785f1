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
import type { Memory, ReadPointer } from '../memory.js';
import { policyToRecord } from '../policies.js';
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
  /** Called as a resync goes, with pages sent and pages to send. */
  onResyncProgress?: (progress: { done: number; total: number }) => void;
  /**
   * What to do when both nodes changed since they parted (split brain):
   * `refuse` keeps both as they are and reports it; `discard-local` makes
   * this node give up its changes and take the partner's.
   * @default 'refuse'
   */
  splitBrain?: 'refuse' | 'discard-local';
}

/** What `verify()` found. */
export interface VerifyReport {
  blocks: number;
  pages: number;
  /** Pages whose checksums differ, and blocks one side lacks (page -1). */
  differences: Array<{ blockId: string; page: number }>;
}

/** What `sense()` reports. */
export interface MirrorState {
  role: Role;
  health: 'ok' | 'degraded' | 'split-brain';
  /** This node's generation id, and the ones before it, newest first. */
  generation: string;
  history: string[];
  connected: boolean;
  /** Frames sent and not yet acknowledged at disk level. */
  inFlight: number;
  /** Pages changed while the partner could not acknowledge them. */
  lagPages: number;
  /** Highest sequence applied here from the partner. */
  lastApplied: number;
}

interface AckWaiter { seq: number; level: number; resolve: () => void; at: number }

const LEVEL: Record<Durability, number> = { async: -1, memory: AckLevel.MEMORY, disk: AckLevel.DISK };

export class Mirror {
  readonly memory: Memory;
  #role: Role;
  #transport: Transport | null = null;
  readonly #heartbeatMs: number;
  readonly #timeoutMs: number;
  /** The generation id (16 hex digits): a new one at every promotion. */
  #generation: string;
  #history: string[];
  #splitBrain: string | null = null;
  readonly #splitPolicy: 'refuse' | 'discard-local';
  // sending (primary)
  #sent = 0;
  #acked = [0, 0, 0];
  #waiters: AckWaiter[] = [];
  /** Pages of frames sent and not yet acknowledged at disk level, by sequence. */
  readonly #unacked = new Map<number, number[]>();
  /** Pages the partner may lack (degraded mode). */
  readonly #lagging = new Set<number>();
  /** Blocks allocated or freed while the partner could not acknowledge it. */
  readonly #laggingBlocks = new Set<string>();
  /** Block-table changes in frames not yet acknowledged at disk level, by sequence. */
  readonly #unackedBlocks = new Map<number, string>();
  #resyncing: Promise<void> | null = null;
  readonly #onProgress: MirrorOptions['onResyncProgress'];
  /** Requests waiting for their reply, by sequence. */
  readonly #pending = new Map<number, (m: Message) => void>();
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
    this.#onProgress = options.onResyncProgress;
    this.#splitPolicy = options.splitBrain ?? 'refuse';
    if (this.#splitPolicy !== 'refuse' && this.#splitPolicy !== 'discard-local') throw TwinpageError.invalidArgument(`mirror.splitBrain must be 'refuse' or 'discard-local'`);
    const stored = memory.meta.mirror as { generation?: unknown; history?: unknown } | undefined;
    if (stored && typeof stored.generation === 'string' && Array.isArray(stored.history)) {
      this.#generation = stored.generation;
      this.#history = stored.history.filter((h): h is string => typeof h === 'string');
    } else {
      // A node never paired has no generation yet: a primary starts one, a
      // secondary takes its partner's.
      this.#generation = this.#role === 'primary' ? newGeneration() : NO_GENERATION;
      this.#history = [];
      memory.setMeta({ mirror: { generation: this.#generation, history: this.#history } }).catch(() => {});
    }
    if (this.#role === 'primary') this.#attachOutbox();
  }

  get role(): Role { return this.#role; }

  /** Connects to the partner over `transport` (replacing any earlier one). */
  attach(transport: Transport): void {
    const old = this.#transport;
    if (old) {
      // What the old connection did not acknowledge is resynced on this one.
      this.#transport = null;
      old.close();
      this.#lost();
    }
    this.#transport = transport;
    this.#splitBrain = null;
    this.memory.discardIncoming();
    this.#heardAt = Date.now();
    // Frames still arriving from an earlier connection are not this one's.
    transport.onFrame((bytes) => { if (this.#transport === transport) this.#receive(bytes); });
    transport.onClose(() => { if (this.#transport === transport) this.#lost(); });
    this.#degraded = false;
    // A new connection numbers its frames afresh; applies still running from
    // the old one finish on their own and are not acknowledged on this one.
    this.#received = 0;
    this.#applied = 0;
    this.#inflight.length = 0;
    this.#sent = 0;
    this.#acked = [0, 0, 0];
    this.#send({ type: MessageType.HELLO, protocol: 1, pageSize: this.memory.pageSize, nodeId: this.#nodeId(), nonce: new Uint8Array(32), generations: { generation: this.#generation, history: this.#history, role: this.#role } });
    if (this.#role === 'primary') {
      this.#startHeartbeat();
      if (this.#lagging.size || this.#laggingBlocks.size) this.resync().catch(() => {});
    }
  }

  /**
   * Sends the partner what it missed while degraded: block-table changes,
   * then the lagging pages in address order, in releases of up to 64 pages.
   * New writes go on meanwhile. Resolves once the partner holds it all.
   */
  resync(): Promise<void> {
    this.#resyncing ??= this.#resync().finally(() => { this.#resyncing = null; });
    return this.#resyncing;
  }

  async #resync(): Promise<void> {
    // Rounds, until nothing lags: more may be found while one runs.
    while ((this.#lagging.size || this.#laggingBlocks.size) && this.#transport && !this.#degraded) await this.#resyncRound();
  }

  async #resyncRound(): Promise<void> {
    const m = this.memory;
    const blocks = new Map(m.blocks().map((b) => [b.id, b]));
    const ids = [...this.#laggingBlocks];
    this.#laggingBlocks.clear();
    for (const id of ids) {
      const b = blocks.get(id);
      await this.#outbox([b
        ? { type: MessageType.ALLOCATE_MEMORY, blockId: b.id, base: b.base, pages: b.pages, length: b.length, generation: b.generation, policy: policyToRecord(b.policy) }
        : { type: MessageType.RELEASE_MEMORY, blockId: id }], 'disk');
    }
    const pages = [...this.#lagging].sort((a, b) => a - b);
    const owner = (page: number) => [...blocks.values()].find((b) => page >= b.base && page < b.base + b.pages);
    let done = 0;
    const ps = m.pageSize;
    for (let i = 0; i < pages.length;) {
      const block = owner(pages[i]);
      if (!block) { this.#lagging.delete(pages[i]); i++; done++; continue; }
      // A run of lagging pages of one block, at most 64.
      let j = i + 1;
      while (j < pages.length && j - i < 64 && pages[j] === pages[j - 1] + 1 && pages[j] < block.base + block.pages) j++;
      const first = pages[i];
      const count = j - i;
      const offset = (first - block.base) * ps;
      const length = Math.min(count * ps, block.length - offset);
      const ptr = await m.acquireRead(block.id, offset, length);
      let messages: Request[];
      try {
        messages = this.#pageImages(ptr, block.id, first, count);
      } finally {
        await ptr.release();
      }
      messages.push({ type: MessageType.RELEASE_POINTER, blockId: block.id, offset, length, lsn: 0, pages: count });
      for (let k = i; k < j; k++) this.#lagging.delete(pages[k]);
      await this.#outbox(messages, 'disk');
      done += count;
      this.#onProgress?.({ done, total: pages.length });
      i = j;
    }
  }

  /** Whole-page images of a read pointer's pages, as WRITE_PAGEs. */
  #pageImages(ptr: ReadPointer, blockId: string, first: number, count: number): Request[] {
    const m = this.memory;
    const out: Request[] = [];
    for (let k = 0; k < count; k++) {
      const data = ptr.page(k).slice();
      out.push({ type: MessageType.WRITE_PAGE, blockId, page: first + k, lsn: 0, checksum: m.core.checksum(data), copy: 'message', data });
    }
    return out;
  }

  /**
   * Compares every block's page checksums with the partner's (READ_HEADER
   * with checksums) and reports the differences.
   */
  async verify(): Promise<VerifyReport> {
    const report: VerifyReport = { blocks: 0, pages: 0, differences: [] };
    for (const b of this.memory.blocks()) {
      const mine = (await this.memory.header(b.id, { checksums: true })).checksums!;
      const reply = await this.#request({ type: MessageType.READ_HEADER, blockId: b.id, checksums: true });
      report.blocks++;
      if (reply.type !== MessageType.READ_HEADER_REPLY || !reply.checksums) {
        report.differences.push({ blockId: b.id, page: -1 });
        continue;
      }
      mine.forEach((sum, i) => {
        report.pages++;
        if (reply.checksums![i] !== sum) report.differences.push({ blockId: b.id, page: b.base + i });
      });
    }
    return report;
  }

  /** Sends a request that expects a reply, and waits for it. */
  #request(m: Request): Promise<Message> {
    const t = this.#transport;
    if (!t || t.closed) return Promise.reject(TwinpageError.closed('no partner connected'));
    const seq = ++this.#sent;
    const reply = new Promise<Message>((resolve) => this.#pending.set(seq, resolve));
    this.#sendOn(t, m, seq).catch(() => {});
    // A request is acknowledged like any frame; count it as applied at once.
    return reply;
  }

  /**
   * Makes this node the primary (failover): it serves writes from now on,
   * under a new generation (kept durably), so that the old primary, when it
   * comes back, is known to be behind.
   */
  async promote(): Promise<void> {
    if (this.#role === 'primary') return;
    await this.#setGeneration(newGeneration(), [this.#generation, ...this.#history].slice(0, 32));
    this.#role = 'primary';
    this.#attachOutbox();
    if (this.#transport) this.#startHeartbeat();
  }

  async #setGeneration(generation: string, history: string[]): Promise<void> {
    await this.memory.setMeta({ mirror: { generation, history } });
    this.#generation = generation;
    this.#history = history;
  }

  sense(): MirrorState {
    return {
      role: this.#role,
      health: this.#splitBrain ? 'split-brain' : this.#degraded || !this.#transport ? 'degraded' : 'ok',
      generation: this.#generation,
      history: [...this.#history],
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
    const block = messages.find((m) => m.type === MessageType.ALLOCATE_MEMORY || m.type === MessageType.RELEASE_MEMORY) as { blockId: string } | undefined;
    if (!t || t.closed || this.#degraded) {
      for (const p of pages) this.#lagging.add(p);
      if (block) this.#laggingBlocks.add(block.blockId);
      return Promise.resolve();
    }
    let last = 0;
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      last = ++this.#sent;
      sends.push(this.#sendOn(t, m, last));
    }
    if (pages.length) this.#unacked.set(last, pages);
    if (block) this.#unackedBlocks.set(last, block.blockId);
    const level = LEVEL[durability];
    const sent = Promise.all(sends).then(() => undefined, () => undefined);
    if (level < 0 || this.#acked[level] >= last) return sent;
    return new Promise((resolve) => this.#waiters.push({ seq: last, level, resolve, at: Date.now() }));
  };

  #attachOutbox(): void {
    this.memory.outbox = this.#outbox;
  }

  #onAck(applied: number, level: number): void {
    for (let l = 0; l <= level; l++) this.#acked[l] = Math.max(this.#acked[l], applied);
    if (level >= AckLevel.DISK) {
      for (const seq of this.#unacked.keys()) if (seq <= applied) this.#unacked.delete(seq);
      for (const seq of this.#unackedBlocks.keys()) if (seq <= applied) this.#unackedBlocks.delete(seq);
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
    for (const id of this.#unackedBlocks.values()) this.#laggingBlocks.add(id);
    this.#unacked.clear();
    this.#unackedBlocks.clear();
    this.#releaseWaiters();
    for (const resolve of this.#pending.values()) resolve({ type: MessageType.ERROR, replyTo: 0, code: 'CLOSED', message: 'the partner is gone' });
    this.#pending.clear();
  }

  #releaseWaiters(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
  }

  #startHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      const silent = now - this.#heardAt > this.#timeoutMs;
      // Frames lost on the way leave acknowledgements that never come.
      const stalled = this.#waiters.length > 0 && now - Math.min(...this.#waiters.map((w) => w.at)) > this.#timeoutMs;
      if (silent || stalled) {
        const t = this.#transport;
        this.#transport = null;
        this.#lost();
        t?.close(TwinpageError.closed(silent ? `the partner was silent for ${this.#timeoutMs} ms` : `no acknowledgement for ${this.#timeoutMs} ms`));
        return;
      }
      this.#send({ type: MessageType.SENSE_REQUEST });
    }, this.#heartbeatMs);
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
        if (m.pageSize !== this.memory.pageSize) {
          this.#fail(TwinpageError.invalidArgument(`the partner uses ${m.pageSize}-byte pages, this node ${this.memory.pageSize}`));
          return;
        }
        this.#compareGenerations(m.nodeId, m.generations);
        return;
      case MessageType.ACK:
        this.#onAck(m.applied, m.level);
        return;
      case MessageType.SENSE_REQUEST: {
        // The heartbeat also repeats the acknowledgements, in case one was lost.
        if (this.#received > 0) this.#scheduleAck(this.#applied === this.#received ? AckLevel.DISK : AckLevel.MEMORY);
        const s = this.sense();
        this.#send({
          type: MessageType.SENSE_REPLY, replyTo: frame.sequence, role: this.#role, nodeId: this.#nodeId(),
          generation: this.#generation, history: this.#history.slice(0, 16), lastApplied: this.#applied,
          health: s.health === 'ok' ? 'ok' : 'degraded', lagPages: s.lagPages,
        });
        return;
      }
      case MessageType.SENSE_REPLY:
        return;
      case MessageType.READ_HEADER_REPLY:
        break;
      case MessageType.READ_HEADER: {
        const seq = frame.sequence;
        this.#received = Math.max(this.#received, seq);
        this.memory.header(m.blockId, { checksums: m.checksums }).then(
          (h) => this.#send({ type: MessageType.READ_HEADER_REPLY, replyTo: seq, blockId: h.id, base: h.base, pages: h.pages, length: h.length, generation: h.generation, policy: policyToRecord(h.policy), checksums: h.checksums }),
          (err) => this.#send({ type: MessageType.ERROR, replyTo: seq, code: (err as TwinpageError).code ?? 'IO_ERROR', message: String((err as Error).message) }),
        );
        return;
      }
      case MessageType.ERROR:
        if (m.replyTo !== 0 && this.#pending.has(m.replyTo)) break;
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
        // The stream must arrive whole and in order: a duplicate is dropped,
        // a gap ends the connection (the primary resyncs what was unacknowledged).
        if (frame.sequence <= this.#received) return;
        if (frame.sequence !== this.#received + 1) {
          this.#fail(TwinpageError.badFrame(`frame ${frame.sequence} arrived after ${this.#received}: frames were lost`));
          return;
        }
        this.#apply(frame.sequence, m);
        return;
      default:
        return; // requests that change nothing
    }
    // A reply (or an error answering a request).
    const replyTo = (m as { replyTo: number }).replyTo;
    const resolve = this.#pending.get(replyTo);
    if (resolve) {
      this.#pending.delete(replyTo);
      resolve(m);
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

  // --- generations: who is behind, or split brain ----------------------------------------------

  /**
   * Decides at handshake: same generation, in sync; the partner's current
   * generation in this node's history, the partner is behind (a primary
   * resyncs it by comparing checksums); this node's in the partner's, this
   * node is behind (a secondary takes the partner's generation and is
   * resynced); neither, both changed since they parted: split brain,
   * refused unless `splitBrain: 'discard-local'`. Nothing is merged.
   */
  #compareGenerations(peerId: string, g: Record<string, unknown>): void {
    const peerGen = typeof g.generation === 'string' ? g.generation : '';
    const peerHistory = Array.isArray(g.history) ? g.history.filter((h): h is string => typeof h === 'string') : [];
    if (g.role === 'primary' && this.#role === 'primary') {
      this.#refuseSplitBrain(peerId, peerGen, 'both nodes act as primary');
      return;
    }
    if (peerGen === this.#generation) return;
    const peerBehind = peerGen === NO_GENERATION || this.#history.includes(peerGen);
    const selfBehind = this.#generation === NO_GENERATION || peerHistory.includes(this.#generation);
    if (selfBehind && this.#role === 'secondary') {
      void this.#setGeneration(peerGen, peerHistory);
      return;
    }
    if (peerBehind && this.#role === 'primary') {
      this.resyncByChecksums().catch(() => {});
      return;
    }
    if (!peerBehind && !selfBehind && this.#role === 'secondary' && this.#splitPolicy === 'discard-local') {
      // This node gives up its changes: it takes the partner's generation and is resynced.
      void this.#setGeneration(peerGen, peerHistory);
      return;
    }
    const what = peerBehind || selfBehind
      ? `the ${selfBehind ? 'primary' : 'secondary'} is behind its partner`
      : 'both nodes changed since they parted';
    this.#refuseSplitBrain(peerId, peerGen, what);
  }

  #refuseSplitBrain(peerId: string, peerGen: string, what: string): void {
    this.#splitBrain = `split brain: ${what} (this node ${this.memory.nodeId} generation ${this.#generation}, partner ${peerId} generation ${peerGen}). ` +
      `Nothing was merged and both keep their data. Choose the node whose changes to discard and restart it as secondary ` +
      `with the mirror option splitBrain: 'discard-local'; the other, as primary, then resyncs it.`;
    this.#fail(TwinpageError.splitBrain(this.#splitBrain));
  }

  /**
   * Resyncs a partner that is behind without a record of what it missed:
   * compares every page's checksum (verify) and sends what differs, and
   * whole blocks it lacks.
   */
  async resyncByChecksums(): Promise<void> {
    const report = await this.verify();
    const blocks = new Map(this.memory.blocks().map((b) => [b.id, b]));
    for (const d of report.differences) {
      if (d.page >= 0) { this.#lagging.add(d.page); continue; }
      const b = blocks.get(d.blockId);
      if (!b) continue;
      this.#laggingBlocks.add(b.id);
      for (let p = b.base; p < b.base + b.pages; p++) this.#lagging.add(p);
    }
    await this.resync();
  }

  // --- helpers ---------------------------------------------------------------------------------

  readonly #hash = (b: Uint8Array) => this.memory.core.checksum(b);

  #send(m: Message): void {
    const t = this.#transport;
    if (!t || t.closed) return;
    this.#sendOn(t, m, 0).catch(() => {});
  }

  #sendOn(t: Transport, m: Message, seq: number): Promise<void> {
    return t.send(encodeFrame(m, { sequence: seq, generation: BigInt(`0x${this.#generation}`) }, this.#hash));
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

/** The generation of a node that never held data of a pair. */
const NO_GENERATION = '0000000000000000';

/** A random generation id: 16 hex digits, never all zero. */
function newGeneration(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  b[0] |= 1;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

function positive(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw TwinpageError.invalidArgument(`${name} must be a positive integer`);
  return value;
}
