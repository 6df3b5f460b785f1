// The pair: one memory's changes, as paging synchronization messages, sent to
// the partner, which applies them through the same code (Memory.applyRemote)
// and acknowledges cumulatively at the durability reached.
//
//   primary                                        secondary
//   Memory ──outbox──▶ Mirror ══ frames ══▶ Mirror ──applyRemote──▶ Memory
//     │ intent           ▲                    │
//     ▼                  └──── ACK(seq, level) ┘   level: 1 memory, 2 disk
//   superblock: generation, history, out-of-sync pages, write-intent extents
//
// A release resolves on the primary once the partner's ACK covers its last
// frame at the block's durability (`disk`: the partner's journal flushed;
// `memory`: received; `async`: sent). Without a partner the primary goes on
// (degraded) and remembers the pages it changed, for a resync.
//
// What each node keeps in its superblock (meta.mirror), so that a restart
// knows what may differ from the partner without comparing everything:
//   - `lag`: runs of pages that may differ (changed while the partner could
//     not acknowledge them; or, on a node that rejoins, pages it must take
//     from the partner), saved on changes of the write intents, every
//     second while it changes, and at close;
//   - `intents`: the write-intent extents (DRBD's activity log): before a
//     primary writes a page here, its extent is recorded as hot. After a
//     crash (`clean` false) every page of a hot extent counts as differing:
//     the crash may have left writes here the partner never saw.
// On reconnection each node sends these (and its block ids) in its HELLO; the
// primary resyncs their union, in address order. Only a node that has no
// such record falls back to comparing every page's checksum.

import { TwinpageError } from '../errors.js';
import type { Memory, ReadPointer } from '../memory.js';
import { policyToRecord } from '../policies.js';
import type { CopyMethod, Durability, Policy } from '../policies.js';
import type { Device } from '../storage/device.js';
import {
  AckLevel, MessageType, decodeFrame, encodeFrame,
  type Frame, type Message, type Request,
} from '../messages.js';
import type { Transport } from './transports/transport.js';
import { SlotRing, checkLocation, sharedExchange, storageExchange, type PageExchange } from './exchange.js';

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
  /**
   * How pages travel to the partner, for blocks whose policy says `auto`:
   * `message` (in the frame), `shared` (through the transport's
   * SharedArrayBuffer: the frame carries its location), `storage` (through
   * `exchange`, a device both nodes open), or `auto`: `shared` when the
   * transport has a SharedArrayBuffer, else `storage` when an exchange is
   * given, else `message`. A method the connection lacks, or a full
   * exchange, falls back to `message`; `stats()` counts pages by method.
   * @default 'auto'
   */
  copy?: CopyMethod;
  /** For the `storage` copy method: a device the partner opens too, and how many bytes of it to use (both halves). */
  exchange?: { device: Device; bytes: number };
  /**
   * `auto`: a secondary that loses its primary (silent for `timeoutMs`, or
   * the connection gone) promotes itself. Only safe where the link cannot
   * fail while both nodes live (else both serve writes: a split brain, which
   * is detected and refused when they meet again). @default 'manual'
   */
  failover?: 'manual' | 'auto';
  /** Called when this node promoted itself (automatic failover). */
  onFailover?: () => void;
  /**
   * Pages per write-intent extent, and how many extents may be hot before
   * the least recently used one is retired. @default 128, 64
   */
  extentPages?: number;
  intentExtents?: number;
}

/** Pages sent and received by copy method, and resync totals. */
export interface MirrorStats {
  /** The method `auto` picks on the current connection. */
  copy: 'message' | 'shared' | 'storage';
  /** Pages sent, by how their bytes travelled. */
  pages: Record<'message' | 'shared' | 'storage', number>;
  /** Pages sent by resyncs since this node opened, and by the last resync. */
  resyncedPages: number;
  lastResync: { pages: number; ms: number } | null;
  /** Write-intent extents hot now, and pages per extent. */
  intents: number;
  extentPages: number;
  /** Pages that failed their checksum here and were read back from the partner. */
  readRepairs: number;
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
  /** Write-intent extents hot now (a primary's). */
  intents: number;
  /** Being resynced from the partner: does not hold all of its data yet, and may not be promoted. */
  inconsistent: boolean;
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
  /** Pages of a partner's release under way, per block, leaving `#lagging` once it is applied. */
  readonly #staged = new Map<string, number[]>();
  // copy methods
  readonly #copy: CopyMethod;
  readonly #storage: PageExchange | null;
  #shared: PageExchange | null = null;
  /** This node's half of each exchange (known once the partner's HELLO came), and its rings. */
  #half: 0 | 1 | null = null;
  #sharedRing: SlotRing | null = null;
  #storageRing: SlotRing | null = null;
  readonly #copied = { message: 0, shared: 0, storage: 0 };
  #resyncedPages = 0;
  #lastResync: { pages: number; ms: number } | null = null;
  // failover
  readonly #failover: 'manual' | 'auto';
  readonly #onFailover: MirrorOptions['onFailover'];
  #watchdog: ReturnType<typeof setInterval> | null = null;
  // what is kept in the superblock
  readonly #extentPages: number;
  readonly #maxIntents: number;
  /** Hot write-intent extents, least recently used first; with writes under way that are not yet in the outbox. */
  readonly #intents = new Map<number, number>();
  /** Extents recorded in memory whose superblock write is under way. */
  readonly #intentsSaving = new Map<number, Promise<void>>();
  /** False when the superblock had no out-of-sync record (a node of an older version): a resync compares checksums. */
  #lagKnown = true;
  #saveQueued: Promise<void> | null = null;
  #saveChain: Promise<void> = Promise.resolve();
  #saveTimer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  /** The primary closed the link or it failed under us (not dropped by this node): automatic failover may act. */
  #primaryLost = false;
  /** A secondary that took its partner's generation and is not yet wholly resynced (kept in the superblock). */
  #inconsistent = false;
  /** The partner's HELLO on this connection arrived (a second one only reports a finished resync). */
  #helloSeen = false;
  // read repair
  /** Pages a partner sent in answer to this node's ALLOCATE_READs, by "block:page", until the reply comes. */
  readonly #readPages = new Map<string, Uint8Array>();
  #readsPending = 0;
  #answering = 0;
  #repairs = 0;

  constructor(memory: Memory, options: MirrorOptions) {
    if (options?.role !== 'primary' && options?.role !== 'secondary') throw TwinpageError.invalidArgument(`mirror.role must be 'primary' or 'secondary'`);
    this.memory = memory;
    this.#role = options.role;
    this.#heartbeatMs = positive(options.heartbeatMs, 1000, 'mirror.heartbeatMs');
    this.#timeoutMs = positive(options.timeoutMs, 5000, 'mirror.timeoutMs');
    this.#onProgress = options.onResyncProgress;
    this.#splitPolicy = options.splitBrain ?? 'refuse';
    if (this.#splitPolicy !== 'refuse' && this.#splitPolicy !== 'discard-local') throw TwinpageError.invalidArgument(`mirror.splitBrain must be 'refuse' or 'discard-local'`);
    this.#copy = options.copy ?? 'auto';
    if (!['auto', 'message', 'shared', 'storage'].includes(this.#copy)) throw TwinpageError.invalidArgument(`mirror.copy must be 'auto', 'message', 'shared' or 'storage'`);
    if (options.exchange !== undefined) {
      const x = options.exchange;
      if (x === null || typeof x !== 'object' || typeof x.device?.write !== 'function') throw TwinpageError.invalidArgument('mirror.exchange must be { device, bytes }');
      this.#storage = storageExchange(x.device, positive(x.bytes, 0, 'mirror.exchange.bytes'));
    } else {
      this.#storage = null;
    }
    this.#failover = options.failover ?? 'manual';
    if (this.#failover !== 'manual' && this.#failover !== 'auto') throw TwinpageError.invalidArgument(`mirror.failover must be 'manual' or 'auto'`);
    this.#onFailover = options.onFailover;
    this.#extentPages = positive(options.extentPages, 128, 'mirror.extentPages');
    this.#maxIntents = positive(options.intentExtents, 64, 'mirror.intentExtents');
    const stored = memory.meta.mirror as StoredMirror | undefined;
    if (stored && typeof stored.generation === 'string' && Array.isArray(stored.history)) {
      this.#generation = stored.generation;
      this.#history = stored.history.filter((h): h is string => typeof h === 'string');
      this.#restore(stored);
    } else {
      // A node never paired has no generation yet: a primary starts one, a
      // secondary takes its partner's.
      this.#generation = this.#role === 'primary' ? newGeneration() : NO_GENERATION;
      this.#history = [];
    }
    // From now on the superblock says "not closed cleanly" until close().
    this.#save().catch(() => {});
    memory.repair = this.#repair;
    if (this.#role === 'primary') this.#attachOutbox();
  }

  /** Takes what the superblock says may differ from the partner. */
  #restore(stored: StoredMirror): void {
    this.#inconsistent = stored.inconsistent === true;
    if (!Array.isArray(stored.lag)) {
      this.#lagKnown = false;
      return;
    }
    this.#addRuns(runsFrom(stored.lag));
    if (Array.isArray(stored.blocks)) for (const id of stored.blocks) if (typeof id === 'string') this.#laggingBlocks.add(id);
    if (stored.clean === false && this.memory.blocks().some((b) => b.policy.writeMode === 'write-back')) {
      // Write-back pages the partner acknowledged may never have reached this
      // node's disk: after a crash only a comparison of checksums finds them.
      this.#lagKnown = false;
      return;
    }
    if (stored.clean === false && Array.isArray(stored.intents)) {
      // A crash: writes to the hot extents may have reached this node and not the partner.
      const per = positive(stored.extentPages, 128, 'stored extentPages');
      const hot = new Set(stored.intents.filter((e): e is number => Number.isSafeInteger(e) && (e as number) >= 0));
      for (const b of this.memory.blocks()) {
        for (let p = b.base; p < b.base + b.pages; p++) if (hot.has(Math.floor(p / per))) this.#lagging.add(p);
      }
    }
  }

  get role(): Role { return this.#role; }

  /** Connects to the partner over `transport` (replacing any earlier one). */
  attach(transport: Transport): void {
    if (this.#closed) throw TwinpageError.closed('this mirror is closed');
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
    this.#staged.clear();
    this.#heardAt = Date.now();
    // Frames still arriving from an earlier connection are not this one's.
    transport.onFrame((bytes) => { if (this.#transport === transport) this.#receive(bytes); });
    transport.onClose(() => {
      if (this.#transport !== transport) return;
      this.#transport = null;
      if (this.#role === 'secondary') this.#primaryLost = true;
      this.#lost();
    });
    this.#primaryLost = false;
    this.#helloSeen = false;
    this.#degraded = false;
    // A new connection numbers its frames afresh; applies still running from
    // the old one finish on their own and are not acknowledged on this one.
    this.#received = 0;
    this.#applied = 0;
    this.#inflight.length = 0;
    this.#sent = 0;
    this.#acked = [0, 0, 0];
    // Exchange slots are this connection's: known free once the partner's HELLO tells its id.
    this.#shared = transport.shared ? sharedExchange(transport.shared) : null;
    this.#half = null;
    this.#sharedRing = this.#storageRing = null;
    const blocks = this.memory.blocks();
    this.#hello({
      // What may differ here from the partner, and the blocks held: the primary resyncs from them.
      outOfSync: this.#lagKnown ? toRuns(this.#lagging) : null,
      inconsistent: this.#inconsistent,
      blocks: blocks.length <= MAX_HELLO_BLOCKS ? blocks.map((b) => b.id) : null,
    });
    if (this.#role === 'primary') this.#startHeartbeat();
    else this.#startWatchdog();
  }

  /** A HELLO with this node's generations and `extra` (the first on a connection; a later one reports a finished resync). */
  #hello(extra: Record<string, unknown>): void {
    this.#send({
      type: MessageType.HELLO, protocol: 1, pageSize: this.memory.pageSize, nodeId: this.#nodeId(), nonce: new Uint8Array(32),
      generations: { generation: this.#generation, history: this.#history, role: this.#role, ...extra },
    });
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
    const start = Date.now();
    const before = this.#resyncedPages;
    // Rounds, until nothing lags: more may be found while one runs.
    while ((this.#lagging.size || this.#laggingBlocks.size) && this.#transport && !this.#transport.closed && !this.#degraded && this.#role === 'primary' && !this.#closed) {
      await this.#resyncRound();
    }
    this.#lastResync = { pages: this.#resyncedPages - before, ms: Date.now() - start };
    this.#saveSoon();
    const t = this.#transport;
    if (t && !t.closed && !this.#degraded && this.#role === 'primary' && !this.#lagging.size && !this.#laggingBlocks.size) {
      // The partner holds everything now: it may be promoted again.
      this.#hello({ synced: true });
    }
  }

  async #resyncRound(): Promise<void> {
    const m = this.memory;
    const blocks = new Map(m.blocks().map((b) => [b.id, b]));
    // Blocks gone here are freed there first, so their pages are free for blocks it lacks.
    const ids = [...this.#laggingBlocks].sort((a, b) => Number(blocks.has(a)) - Number(blocks.has(b)));
    this.#laggingBlocks.clear();
    for (const id of ids) {
      const b = blocks.get(id);
      await this.#route([b
        ? { type: MessageType.ALLOCATE_MEMORY, blockId: b.id, base: b.base, pages: b.pages, length: b.length, generation: b.generation, policy: policyToRecord(b.policy) }
        : { type: MessageType.RELEASE_MEMORY, blockId: id }], [], RESYNC_POLICY);
    }
    const pages = [...this.#lagging].sort((a, b) => a - b);
    const owner = (page: number) => [...blocks.values()].find((b) => page >= b.base && page < b.base + b.pages);
    let done = 0;
    const ps = m.pageSize;
    for (let i = 0; i < pages.length;) {
      const block = owner(pages[i]);
      if (!block) { this.#lagging.delete(pages[i]); i++; done++; continue; }
      // A run of lagging pages of one block, at most 64 (and half what a pointer may hold here).
      const most = Math.max(1, Math.min(64, m.maxPointerPages >> 1));
      let j = i + 1;
      while (j < pages.length && j - i < most && pages[j] === pages[j - 1] + 1 && pages[j] < block.base + block.pages) j++;
      const first = pages[i];
      const count = j - i;
      const offset = (first - block.base) * ps;
      const length = Math.min(count * ps, block.length - offset);
      // The read pointer is held until the pages are on their way: a write to
      // them waits, so its frames follow these (never a stale image after a newer one).
      const ptr = await m.acquireRead(block.id, offset, length);
      try {
        const messages = this.#pageImages(ptr, block.id, first, count);
        messages.push({ type: MessageType.RELEASE_POINTER, blockId: block.id, offset, length, lsn: 0, pages: count });
        for (let k = i; k < j; k++) this.#lagging.delete(pages[k]);
        await this.#route(messages, pages.slice(i, j), RESYNC_POLICY);
      } finally {
        await ptr.release();
      }
      this.#resyncedPages += count;
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
    if (!this.#transport || this.#transport.closed) throw TwinpageError.closed('no partner connected: nothing to verify against');
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
    const reply = new Promise<Message>((resolve) => {
      // A reply lost on the way (or a partner that never answers) does not hang the caller.
      const timer = setTimeout(() => {
        if (this.#pending.delete(seq)) resolve({ type: MessageType.ERROR, replyTo: seq, code: 'TIMEOUT', message: `no reply from the partner in ${2 * this.#timeoutMs} ms` });
      }, 2 * this.#timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      this.#pending.set(seq, (msg) => { clearTimeout(timer); resolve(msg); });
    });
    this.#sendOn(t, m, seq).catch(() => {});
    return reply;
  }

  /** Requests waiting for a reply get CLOSED: the connection they went on is gone. */
  #settlePending(): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const resolve of pending) resolve({ type: MessageType.ERROR, replyTo: 0, code: 'CLOSED', message: 'the partner is gone' });
  }

  /**
   * Makes this node the primary (failover): it serves writes from now on,
   * under a new generation (kept durably), so that the old primary, when it
   * comes back, is known to be behind.
   */
  async promote(options: { force?: boolean } = {}): Promise<void> {
    if (this.#role === 'primary') return;
    if (this.#inconsistent && options?.force !== true) {
      throw TwinpageError.inconsistent(`this node is being resynced from its partner and does not hold all of its data yet: ` +
        `promoting it would serve stale pages (promote({ force: true }) to do it anyway)`);
    }
    this.#stopTimers();
    // The partner is taken for failed: its connection ends here, so writes
    // go on degraded at once instead of waiting for acknowledgements that
    // will not come. If it lives, it meets this node's new generation when
    // it reconnects, and is refused (split brain) or rejoins as secondary.
    const t = this.#transport;
    this.#transport = null;
    t?.close(TwinpageError.closed('this node was promoted: the old primary is taken for failed'));
    this.#settlePending();
    this.#degraded = true;
    this.#inconsistent = false;
    await this.#setGeneration(newGeneration(), [this.#generation, ...this.#history].slice(0, 32));
    this.#role = 'primary';
    this.#attachOutbox();
    if (this.#transport) this.#startHeartbeat();
  }

  async #setGeneration(generation: string, history: string[]): Promise<void> {
    this.#generation = generation;
    this.#history = history;
    await this.#save();
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
      intents: this.#intents.size,
      inconsistent: this.#inconsistent,
    };
  }

  /** Pages sent by copy method, resync totals and write intents. */
  stats(): MirrorStats {
    return {
      copy: this.#choose('auto'),
      pages: { ...this.#copied },
      resyncedPages: this.#resyncedPages,
      lastResync: this.#lastResync && { ...this.#lastResync },
      intents: this.#intents.size,
      extentPages: this.#extentPages,
      readRepairs: this.#repairs,
    };
  }

  /** Pages changed while the partner could not acknowledge them (a resync must send them). */
  laggingPages(): number[] {
    return [...this.#lagging].sort((a, b) => a - b);
  }

  /**
   * Leaves the pair: closes the connection, releases writers waiting for
   * acknowledgements, and records in the superblock, as a clean close, the
   * pages the partner may lack. Call before closing the memory.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#stopTimers();
    if (this.memory.outbox === this.#outbox) this.memory.outbox = null;
    if (this.memory.intent === this.#intent) this.memory.intent = null;
    if (this.memory.repair === this.#repair) this.memory.repair = null;
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    if (this.#role === 'primary') this.#lost();
    this.#releaseWaiters();
    this.#settlePending();
    // Queued on the memory's own chain now, so it runs before the memory closes.
    return this.memory.setMeta({ mirror: this.#record(true) }).catch(() => {});
  }

  #stopTimers(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#watchdog) clearInterval(this.#watchdog);
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#heartbeat = this.#watchdog = this.#saveTimer = null;
  }

  // --- primary: send and wait for acks ----------------------------------------------------

  /** The memory's changes come in here (resyncs go straight to #route). */
  readonly #outbox = (messages: Request[], policy: OutboxPolicy, local?: Promise<void>): Promise<void> => {
    const pages: number[] = [];
    for (const m of messages) if (m.type === MessageType.WRITE_PAGE) pages.push(m.page);
    // A release's pages leave the window between their write intent and the
    // record once this node's own commit is done (they are then in the
    // unacknowledged or lagging sets, or durable on both nodes).
    if (local) local.then(() => this.#writesDone(pages), () => { this.#writesDone(pages); this.#localFailed(pages); });
    else this.#writesDone(pages);
    return this.#route(messages, pages, policy);
  };

  /** Sends one change by the copy method its policy asks for, or records it as lagging without a partner. */
  #route(messages: Request[], pages: number[], policy: OutboxPolicy): Promise<void> {
    const t = this.#transport;
    const block = messages.find((m) => m.type === MessageType.ALLOCATE_MEMORY || m.type === MessageType.RELEASE_MEMORY) as { blockId: string } | undefined;
    if (!t || t.closed || this.#degraded) {
      for (const p of pages) this.#lagging.add(p);
      if (block) this.#laggingBlocks.add(block.blockId);
      this.#saveSoon();
      return Promise.resolve();
    }
    const method = pages.length ? this.#choose(policy.copyMethod) : 'message';
    if (method === 'message') return this.#sendBatch(t, messages, pages, block, policy.durability, null);
    const ring = method === 'shared' ? this.#sharedRing! : this.#storageRing!;
    const exchange = method === 'shared' ? this.#shared! : this.#storage!;
    const puts: Array<void | Promise<void>> = [];
    const placed = messages.map((m): Request => {
      if (m.type !== MessageType.WRITE_PAGE || !m.data) return m;
      const offset = ring.take();
      if (offset < 0) return m; // the exchange is full: this page rides in the frame
      puts.push(exchange.put(offset, m.data));
      return { ...m, copy: method, data: undefined, location: { offset, length: m.data.length } };
    });
    if (method === 'shared') return this.#sendBatch(t, placed, pages, block, policy.durability, ring);
    // Storage: the pages are written to the exchange before the frames that point at them go.
    return Promise.all(puts).then(
      () => (this.#transport === t ? this.#sendBatch(t, placed, pages, block, policy.durability, ring) : this.#route(messages, pages, policy)),
      (err) => { this.#fail(err); return this.#route(messages, pages, policy); },
    );
  }

  /**
   * This node's journal commit of a change sent in parallel with it failed:
   * the change is undone here, and the partner may hold it. Its pages differ
   * now: they are resynced (the partner takes this node's contents back).
   */
  #localFailed(pages: number[]): void {
    if (pages.length === 0 || this.#closed) return;
    for (const p of pages) this.#lagging.add(p);
    this.#saveSoon();
    if (this.#role === 'primary' && this.#transport && !this.#transport.closed && !this.#degraded) this.resync().catch(() => {});
  }

  /** Sends one change's frames in order; resolves at the durability asked for. */
  #sendBatch(t: Transport, messages: Request[], pages: number[], block: { blockId: string } | undefined, durability: Durability, ring: SlotRing | null): Promise<void> {
    let last = 0;
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      last = ++this.#sent;
      if (m.type === MessageType.WRITE_PAGE) this.#copied[m.copy]++;
      sends.push(this.#sendOn(t, m, last));
    }
    ring?.mark(last);
    if (pages.length) this.#unacked.set(last, pages);
    if (block) this.#unackedBlocks.set(last, block.blockId);
    const level = LEVEL[durability];
    const sent = Promise.all(sends).then(() => undefined, () => undefined);
    if (level < 0 || this.#acked[level] >= last) return sent;
    return new Promise((resolve) => this.#waiters.push({ seq: last, level, resolve, at: Date.now() }));
  }

  /** The copy method for a block whose policy asks for `wanted`, on this connection. */
  #choose(wanted: CopyMethod): 'message' | 'shared' | 'storage' {
    const want = wanted === 'auto' ? this.#copy : wanted;
    const shared = this.#sharedRing !== null && this.#sharedRing.slots > 0;
    const storage = this.#storageRing !== null && this.#storageRing.slots > 0;
    if (want === 'shared') return shared ? 'shared' : 'message';
    if (want === 'storage') return storage ? 'storage' : 'message';
    if (want === 'auto') return shared ? 'shared' : storage ? 'storage' : 'message';
    return 'message';
  }

  #attachOutbox(): void {
    this.memory.outbox = this.#outbox;
    this.memory.intent = this.#intent;
  }

  // --- write intents and the superblock record ------------------------------------------------

  /**
   * Before a release's pages are written here: makes sure their extents are
   * recorded as hot in the superblock (one superblock write for any that
   * were not), retiring the least recently used extents beyond the limit.
   */
  readonly #intent = (pages: number[]): Promise<void> | undefined => {
    let added = false;
    const waits = new Set<Promise<void>>();
    for (const p of pages) {
      const e = Math.floor(p / this.#extentPages);
      const writing = this.#intents.get(e);
      if (writing === undefined) added = true;
      // Most recently used last.
      this.#intents.delete(e);
      this.#intents.set(e, (writing ?? 0) + 1);
      const saving = this.#intentsSaving.get(e);
      if (saving) waits.add(saving);
    }
    if (added) {
      for (const [e, writing] of this.#intents) {
        if (this.#intents.size <= this.#maxIntents) break;
        // An extent with a write between its intent and the outbox stays.
        if (writing === 0) this.#intents.delete(e);
      }
      const save = this.#save();
      for (const p of pages) {
        const e = Math.floor(p / this.#extentPages);
        if (!this.#intentsSaving.has(e)) {
          this.#intentsSaving.set(e, save);
          save.finally(() => { if (this.#intentsSaving.get(e) === save) this.#intentsSaving.delete(e); }).catch(() => {});
        }
      }
      waits.add(save);
    }
    if (waits.size === 0) return undefined;
    return Promise.all(waits).then(() => undefined);
  };

  /** The pages of a release reached the outbox: they are in the unacknowledged or lagging sets now. */
  #writesDone(pages: number[]): void {
    for (const p of pages) {
      const e = Math.floor(p / this.#extentPages);
      const writing = this.#intents.get(e);
      if (writing) this.#intents.set(e, writing - 1);
    }
  }

  /** What the superblock keeps for the mirror. */
  #record(clean: boolean): StoredMirror {
    const lag = new Set(this.#lagging);
    for (const pages of this.#unacked.values()) for (const p of pages) lag.add(p);
    return {
      generation: this.#generation,
      history: this.#history,
      lag: this.#lagKnown ? toRuns(lag) : undefined,
      blocks: [...new Set([...this.#laggingBlocks, ...this.#unackedBlocks.values()])],
      intents: clean ? [] : [...this.#intents.keys()],
      extentPages: this.#extentPages,
      clean,
      inconsistent: this.#inconsistent,
    };
  }

  /**
   * Writes the record to the superblock; resolves once a write that began
   * after this call is durable. Calls while one waits to start share it.
   */
  #save(): Promise<void> {
    if (this.#saveQueued) return this.#saveQueued;
    const run = this.#saveChain.then(() => {
      this.#saveQueued = null;
      if (this.#closed) return;
      return this.memory.setMeta({ mirror: this.#record(false) });
    });
    this.#saveQueued = run;
    this.#saveChain = run.catch(() => {});
    return run;
  }

  /** Saves the record within a second (the out-of-sync set changed; nothing waits on it). */
  #saveSoon(): void {
    if (this.#saveTimer || this.#closed) return;
    const timer = setTimeout(() => {
      this.#saveTimer = null;
      this.#save().catch(() => {});
    }, 1000);
    // Node: a pending save does not keep the process alive (close() saves anyway).
    (timer as { unref?: () => void }).unref?.();
    this.#saveTimer = timer;
  }

  #onAck(applied: number, level: number): void {
    for (let l = 0; l <= level; l++) this.#acked[l] = Math.max(this.#acked[l], applied);
    // Shared pages were copied out on arrival; storage pages once applied.
    this.#sharedRing?.acked(this.#acked[AckLevel.MEMORY]);
    this.#storageRing?.acked(this.#acked[AckLevel.DISK]);
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
    this.#saveSoon();
    this.#releaseWaiters();
    this.#settlePending();
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

  /**
   * A secondary with automatic failover watches its primary: silent for
   * `timeoutMs` (its heartbeats stopped) or the connection gone, it promotes
   * itself.
   */
  #startWatchdog(): void {
    if (this.#failover !== 'auto' || this.#watchdog) return;
    const timer = setInterval(() => {
      if (this.#role !== 'secondary' || this.#closed || this.#inconsistent) return;
      // Only a primary that went silent or closed the link: not a link this
      // node dropped itself (a bad frame, a failed apply, a split brain).
      const t = this.#transport;
      const silent = t !== null && !t.closed && Date.now() - this.#heardAt > this.#timeoutMs;
      if (!silent && !(t === null && this.#primaryLost)) return;
      clearInterval(timer);
      this.#watchdog = null;
      this.#transport = null;
      t?.close(TwinpageError.closed(`the primary was silent for ${this.#timeoutMs} ms: this node takes over`));
      this.promote().then(() => this.#onFailover?.(), () => {});
    }, Math.min(this.#heartbeatMs, this.#timeoutMs));
    this.#watchdog = timer;
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
        if (this.#helloSeen) {
          // A second HELLO on a connection only reports a finished resync.
          if (this.#role === 'secondary' && this.#inconsistent && m.generations.synced === true && m.generations.generation === this.#generation) {
            this.#inconsistent = false;
            this.#save().catch(() => {});
          }
          return;
        }
        this.#helloSeen = true;
        this.#openExchanges(m.nodeId);
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
      case MessageType.ALLOCATE_READ: {
        const seq = frame.sequence;
        this.#received = Math.max(this.#received, seq);
        this.#answerRead(seq, m).catch(() => {});
        return;
      }
      case MessageType.ALLOCATE_READ_REPLY:
        break;
      case MessageType.ALLOCATE_MEMORY:
      case MessageType.RELEASE_MEMORY:
      case MessageType.WRITE_PAGE:
      case MessageType.RELEASE_POINTER:
        if (m.type === MessageType.WRITE_PAGE && frame.sequence === 0) {
          // Not the stream: a page answering this node's ALLOCATE_READ (read repair).
          this.#takeReadPage(m);
          return;
        }
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
        if (m.type === MessageType.WRITE_PAGE && m.copy !== 'message') {
          let page: Request | Promise<Request>;
          try {
            page = this.#copyIn(m);
          } catch (err) {
            this.#fail(err);
            return;
          }
          this.#apply(frame.sequence, page);
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

  // --- read repair -----------------------------------------------------------------------------

  /**
   * The memory's read repair: asks the partner for one page of a block
   * (ALLOCATE_READ); it answers with the page as a WRITE_PAGE outside the
   * stream (sequence 0), then ALLOCATE_READ_REPLY. Null when there is no
   * partner or it cannot read the page either.
   */
  readonly #repair = async (blockId: string, page: number): Promise<Uint8Array | null> => {
    // A page this node reads to answer the partner's own repair is not asked back (both bad: CORRUPT, not a deadlock).
    if (this.#answering > 0) return null;
    const b = this.memory.blocks().find((x) => x.id === blockId);
    const t = this.#transport;
    if (!b || !t || t.closed || page < b.base || page >= b.base + b.pages) return null;
    const ps = this.memory.pageSize;
    const key = `${blockId}:${page}`;
    this.#readsPending++;
    try {
      const reply = await this.#request({ type: MessageType.ALLOCATE_READ, blockId, offset: (page - b.base) * ps, length: ps });
      const data = this.#readPages.get(key) ?? null;
      if (reply.type !== MessageType.ALLOCATE_READ_REPLY || reply.status !== 'ok' || !data) return null;
      this.#repairs++;
      return data;
    } finally {
      this.#readPages.delete(key);
      if (--this.#readsPending === 0) this.#readPages.clear();
    }
  };

  /** A page answering a read of this node's: kept (checked) while a read waits, else dropped. */
  #takeReadPage(m: Request & { type: MessageType.WRITE_PAGE }): void {
    if (this.#readsPending === 0 || m.copy !== 'message' || !m.data) return;
    if (this.memory.core.checksum(m.data) !== m.checksum) return;
    if (this.#readPages.size >= 64) return;
    this.#readPages.set(`${m.blockId}:${m.page}`, m.data.slice());
  }

  /** Answers a partner's ALLOCATE_READ: the range's whole pages, then the reply. */
  async #answerRead(seq: number, m: Request & { type: MessageType.ALLOCATE_READ }): Promise<void> {
    const ps = this.memory.pageSize;
    this.#answering++;
    try {
      const b = this.memory.blocks().find((x) => x.id === m.blockId);
      if (!b) throw TwinpageError.unknownBlock(`block ${m.blockId} is not here`);
      if (m.offset % ps !== 0 || m.length % ps !== 0 || m.length === 0 || m.length > 64 * ps) {
        throw TwinpageError.invalidArgument('a read of the partner must be whole pages, at most 64');
      }
      const length = Math.min(m.length, b.length - m.offset);
      if (length <= 0) throw TwinpageError.outOfRange(`offset ${m.offset} is past the end of block ${m.blockId}`);
      const ptr = await this.memory.acquireRead(m.blockId, m.offset, length);
      let pages: Request[];
      try {
        pages = this.#pageImages(ptr, m.blockId, b.base + m.offset / ps, Math.ceil(length / ps));
      } finally {
        await ptr.release();
      }
      for (const p of pages) this.#send(p);
      this.#send({ type: MessageType.ALLOCATE_READ_REPLY, replyTo: seq, status: 'ok' });
    } catch (err) {
      const e = err as TwinpageError;
      this.#send({ type: MessageType.ALLOCATE_READ_REPLY, replyTo: seq, status: 'failed', error: { code: e.code ?? 'IO_ERROR', message: String(e.message) } });
    } finally {
      this.#answering--;
    }
  }

  // --- secondary: apply in order, ack as it goes ----------------------------------------------

  /**
   * Starts applying `msg`. Block-table changes wait for everything before
   * them; page releases start in order and overlap (their ranges keep
   * conflicting ones in order), so their journal flushes are shared.
   */
  #apply(seq: number, arriving: Request | Promise<Request>): void {
    this.#received = seq;
    this.#queue = this.#queue.then(async () => {
      let msg: Request;
      try {
        msg = await arriving;
      } catch (err) {
        this.#fail(err);
        return;
      }
      const barrier = msg.type === MessageType.ALLOCATE_MEMORY || msg.type === MessageType.RELEASE_MEMORY;
      if (barrier) await Promise.all(this.#inflight.map((f) => f.done));
      const entry = { seq, done: this.memory.applyRemote(msg), finished: false };
      this.#inflight.push(entry);
      const staged = this.#stage(msg);
      entry.done.then(() => {
        entry.finished = true;
        if (staged) this.#taken(staged);
        this.#settle();
      }, (err) => this.#fail(err));
      if (barrier) await entry.done.catch(() => {});
    });
    this.#scheduleAck(AckLevel.MEMORY);
  }

  /**
   * Tracks the pages of a partner's release: returns them once its
   * RELEASE_POINTER is being applied (they then no longer differ here).
   */
  #stage(msg: Request): number[] | null {
    if (msg.type === MessageType.WRITE_PAGE) {
      const list = this.#staged.get(msg.blockId);
      if (list) list.push(msg.page); else this.#staged.set(msg.blockId, [msg.page]);
      return null;
    }
    if (msg.type !== MessageType.RELEASE_POINTER) return null;
    const pages = this.#staged.get(msg.blockId) ?? [];
    this.#staged.delete(msg.blockId);
    return pages;
  }

  /** Pages applied from the partner: this node holds what the partner holds there. */
  #taken(pages: number[]): void {
    if (this.#role !== 'secondary' || this.#lagging.size === 0) return;
    let changed = false;
    for (const p of pages) changed = this.#lagging.delete(p) || changed;
    if (changed) this.#saveSoon();
  }

  /** The page of a WRITE_PAGE that carries a location, copied out of the exchange. */
  #copyIn(m: Request & { type: MessageType.WRITE_PAGE }): Request | Promise<Request> {
    const exchange = m.copy === 'shared' ? this.#shared : this.#storage;
    if (!exchange || this.#half === null || !m.location) {
      throw TwinpageError.badFrame(`a '${m.copy}' page arrived, and this node has no ${m.copy} exchange with the partner`);
    }
    checkLocation(exchange, (1 - this.#half) as 0 | 1, m.location, this.memory.pageSize);
    const data = new Uint8Array(m.location.length);
    const done = exchange.get(m.location.offset, data);
    const page: Request = { type: MessageType.WRITE_PAGE, blockId: m.blockId, page: m.page, lsn: m.lsn, checksum: m.checksum, copy: 'message', data };
    return done ? done.then(() => page) : page;
  }

  /** The partner's id is known: each node takes its half of each exchange. */
  #openExchanges(peerId: string): void {
    const self = this.#nodeId();
    if (peerId === self) return;
    this.#half = self < peerId ? 0 : 1;
    const ps = this.memory.pageSize;
    this.#sharedRing = this.#shared ? new SlotRing(this.#shared.bytes, this.#half, ps) : null;
    this.#storageRing = this.#storage ? new SlotRing(this.#storage.bytes, this.#half, ps) : null;
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
    if (peerGen === this.#generation) {
      if (this.#role === 'primary') this.#resyncFrom(g, false);
      return;
    }
    const peerBehind = peerGen === NO_GENERATION || this.#history.includes(peerGen);
    const selfBehind = this.#generation === NO_GENERATION || peerHistory.includes(this.#generation);
    if (selfBehind && this.#role === 'secondary') {
      // Until the primary says its resync is done, this node may not be promoted.
      this.#inconsistent = true;
      this.#setGeneration(peerGen, peerHistory).catch((err) => this.#fail(err));
      return;
    }
    if (peerBehind && this.#role === 'primary') {
      this.#resyncFrom(g, peerGen === NO_GENERATION);
      return;
    }
    if (!peerBehind && !selfBehind && this.#role === 'secondary' && this.#splitPolicy === 'discard-local') {
      // This node gives up its changes: it takes the partner's generation and is resynced.
      this.#lagKnown = false;
      this.#inconsistent = true;
      this.#setGeneration(peerGen, peerHistory).catch((err) => this.#fail(err));
      return;
    }
    const what = peerBehind || selfBehind
      ? `the ${selfBehind ? 'primary' : 'secondary'} is behind its partner`
      : 'both nodes changed since they parted';
    this.#refuseSplitBrain(peerId, peerGen, what);
  }

  /**
   * A primary meets its partner: resyncs the union of what this node
   * changed without it and what the partner reports as differing, plus the
   * blocks one side lacks. With no record on either side (a new partner, a
   * node of an older version) it compares every page's checksum instead.
   */
  #resyncFrom(g: Record<string, unknown>, fresh: boolean): void {
    const runs = Array.isArray(g.outOfSync) ? runsFrom(g.outOfSync) : null;
    const peerBlocks = Array.isArray(g.blocks) ? new Set(g.blocks.filter((id): id is string => typeof id === 'string')) : null;
    if (fresh || g.inconsistent === true || runs === null || peerBlocks === null || !this.#lagKnown) {
      this.resyncByChecksums(peerBlocks).catch(() => {});
      return;
    }
    this.#addRuns(runs);
    this.#blockDifferences(peerBlocks);
    if (this.#lagging.size || this.#laggingBlocks.size) {
      // Kept first: if this node fails mid-resync, it still knows what to send.
      this.#save().then(() => this.resync()).catch(() => {});
    }
  }

  /** Adds runs of pages to the out-of-sync set, only where blocks are (a run may name anything). */
  #addRuns(runs: Array<[number, number]>): void {
    const blocks = this.memory.blocks().sort((a, b) => a.base - b.base);
    for (const [first, count] of runs.slice(0, MAX_RUNS)) {
      // The first block ending after `first` (blocks do not overlap), then on while they start before the run ends.
      let lo = 0;
      let hi = blocks.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (blocks[mid].base + blocks[mid].pages <= first) lo = mid + 1; else hi = mid;
      }
      for (let k = lo; k < blocks.length && blocks[k].base < first + count; k++) {
        const b = blocks[k];
        for (let p = Math.max(first, b.base); p < Math.min(first + count, b.base + b.pages); p++) this.#lagging.add(p);
      }
    }
  }

  /** Blocks this node holds and the partner lacks (all their pages), and blocks only the partner holds. */
  #blockDifferences(peerBlocks: Set<string>): void {
    const mine = this.memory.blocks();
    for (const b of mine) {
      if (peerBlocks.has(b.id)) continue;
      this.#laggingBlocks.add(b.id);
      for (let p = b.base; p < b.base + b.pages; p++) this.#lagging.add(p);
    }
    const ids = new Set(mine.map((b) => b.id));
    for (const id of peerBlocks) if (!ids.has(id)) this.#laggingBlocks.add(id);
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
  async resyncByChecksums(peerBlocks: Set<string> | null = null): Promise<void> {
    const report = await this.verify();
    const blocks = new Map(this.memory.blocks().map((b) => [b.id, b]));
    for (const d of report.differences) {
      if (d.page >= 0) { this.#lagging.add(d.page); continue; }
      const b = blocks.get(d.blockId);
      if (!b) continue;
      this.#laggingBlocks.add(b.id);
      for (let p = b.base; p < b.base + b.pages; p++) this.#lagging.add(p);
    }
    if (peerBlocks) this.#blockDifferences(peerBlocks);
    // The partner now matches this node's record; from here on it is kept.
    this.#lagKnown = true;
    await this.#save();
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
    else this.#settlePending();
  }

  #nodeId(): string {
    return this.memory.nodeId;
  }
}

/** What the superblock keeps for the mirror (meta.mirror). */
interface StoredMirror {
  generation: string;
  history: string[];
  /** Pages that may differ from the partner, as [first, count] runs; absent: unknown. */
  lag?: unknown[];
  /** Block ids whose allocation or release the partner may lack. */
  blocks?: unknown[];
  /** Hot write-intent extents (extent = page / extentPages). */
  intents?: unknown[];
  extentPages?: number;
  /** True when the mirror was closed cleanly (the intents then need no resync). */
  clean?: boolean;
  /** A secondary being resynced: it may not be promoted until the resync ends. */
  inconsistent?: boolean;
}

/** What a resync's releases are sent with. */
type OutboxPolicy = Pick<Policy, 'durability' | 'copyMethod'>;
const RESYNC_POLICY: OutboxPolicy = { durability: 'disk', copyMethod: 'auto' };

/** Blocks whose ids go in a HELLO (more: the primary compares checksums). */
const MAX_HELLO_BLOCKS = 65536;
/** Out-of-sync runs kept or sent (more: the tail is merged into one run). */
const MAX_RUNS = 65536;

/** Sorted pages as [first, count] runs. */
function toRuns(pages: Iterable<number>): Array<[number, number]> {
  const sorted = [...pages].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const p of sorted) {
    const last = runs[runs.length - 1];
    if (last && p === last[0] + last[1]) last[1]++;
    else runs.push([p, 1]);
  }
  if (runs.length > MAX_RUNS) {
    // Too fragmented: one run covers the rest (more is resynced, nothing is missed).
    const tail = runs.splice(MAX_RUNS - 1);
    const end = tail[tail.length - 1][0] + tail[tail.length - 1][1];
    runs.push([tail[0][0], end - tail[0][0]]);
  }
  return runs;
}

/** Runs from a record or a partner, checked: pairs of non-negative integers, skipping anything else. */
function runsFrom(value: unknown[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of value) {
    if (!Array.isArray(r) || r.length !== 2) continue;
    const [first, count] = r as unknown[];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || (first as number) < 0 || (count as number) < 1) continue;
    out.push([first as number, count as number]);
  }
  return out;
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
