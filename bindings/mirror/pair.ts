// The pair: one memory's changes, as paging synchronization messages, sent to
// the partner, which applies them through the same commit path
// (Memory.apply) and acknowledges cumulatively at the durability reached.
//
//   primary                                          secondary
//   Memory ──link.send──▶ Mirror ══ frames ══▶ Mirror ──apply──▶ Memory
//                           ▲                     │
//                           └─── ACK(seq, level) ─┘   level: 1 memory, 2 disk
//
// A release resolves on the primary once the partner's ACK covers its last
// frame at the block's durability (`disk`: the partner's journal flushed;
// `memory`: received; `async`: sent). Without a partner the primary goes on
// (degraded) and records the pages it changed, for a resync.
//
// This file composes the rooms of mirror/ and dispatches incoming frames:
//   options.ts    the options          handshake.ts  HELLO and the decision
//   stream.ts     sequence, acks,      apply.ts      the secondary's side
//                 requests             resync.ts     what the partner lacks, sent
//   changes.ts    changes as messages  verify.ts     verify and read repair
//   copy.ts       copy methods         failover.ts   heartbeat and failover
//   exchange.ts   the page exchanges   transports/   what carries the frames
// What the node records about its partner (generations, out-of-sync pages,
// write intents) is the memory's metadata (memory/replica.ts).

import { TwinpageError } from '../errors.js';
import type { Attachment, Change, LinkPolicy, Memory } from '../memory/memory.js';
import type { ReplicaRecord } from '../memory/replica.js';
import {
  AckLevel, MessageType, decodeFrame, encodeFrame,
  type Frame, type Message, type MessageOf, type Request,
} from '../messages.js';
import { Applier } from './apply.js';
import { changeMessages } from './changes.js';
import { CopyMethods, type Method } from './copy.js';
import { storageExchange, type PageExchange, type SlotRing } from './exchange.js';
import { Failover } from './failover.js';
import { MAX_HELLO_BLOCKS, NO_GENERATION, decide, newGeneration, readHello, type HelloInfo } from './handshake.js';
import { resolveMirrorOptions, type MirrorOptions, type ResolvedMirrorOptions, type Role } from './options.js';
import { Resync } from './resync.js';
import { LEVEL, Stream } from './stream.js';
import type { Transport } from './transports/transport.js';
import { Verifier, type VerifyReport } from './verify.js';

export type { MirrorOptions, Role } from './options.js';
export type { VerifyReport } from './verify.js';

/** Pages sent and received by copy method, and resync totals. */
export interface MirrorStats {
  /** The method `auto` picks on the current connection. */
  copy: Method;
  /** Pages sent, by how their bytes travelled. */
  pages: Record<Method, number>;
  /** Pages sent by resyncs since this node opened, and by the last resync. */
  resyncedPages: number;
  lastResync: { pages: number; ms: number } | null;
  /** Write-intent extents hot now, and pages per extent. */
  intents: number;
  extentPages: number;
  /** Pages that failed their checksum here and were read back from the partner. */
  readRepairs: number;
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
  /** The last failure of work the mirror does in the background (a resync, saving its record), with when (ms since the epoch). */
  lastError: { code: string; message: string; at: number } | null;
}

type Handler = (m: Message, frame: Frame) => void;

export class Mirror {
  readonly memory: Memory;
  readonly #o: ResolvedMirrorOptions;
  #role: Role;
  readonly #attachment: Attachment;
  readonly #replica: ReplicaRecord;
  readonly #storage: PageExchange | null;
  readonly #verifier: Verifier;
  readonly #resync: Resync;
  readonly #failover: Failover;
  // the connection
  #transport: Transport | null = null;
  #stream: Stream | null = null;
  #applier: Applier | null = null;
  #copy: CopyMethods;
  /** The partner's HELLO on this connection arrived (a second one only reports a finished resync). */
  #helloSeen = false;
  #degraded = false;
  #splitBrain: string | null = null;
  /** The primary closed the link or it failed under us (not dropped by this node): automatic failover may act. */
  #primaryLost = false;
  #closed = false;
  /** The last failure of background work (a resync, a superblock write), for sense(). */
  #lastError: { code: string; message: string; at: number } | null = null;
  readonly #copied: Record<Method, number> = { message: 0, shared: 0, storage: 0 };
  readonly #handlers: Partial<Record<MessageType, Handler>>;

  constructor(memory: Memory, options: MirrorOptions) {
    this.#o = resolveMirrorOptions(options);
    this.memory = memory;
    this.#role = this.#o.role;
    const x = this.#o.exchange;
    this.#storage = x ? storageExchange(x.device, x.bytes) : null;
    this.#copy = new CopyMethods(this.#o.copy, null, this.#storage, memory.pageSize);
    const mirror = this;
    this.#verifier = new Verifier(memory, () => this.#current());
    this.#attachment = memory.attach({
      get sends() { return mirror.#role === 'primary'; },
      send: (change, policy, local) => this.#send(change, policy, local),
      repair: this.#verifier.repair,
      intents: { extentPages: this.#o.extentPages, maxExtents: this.#o.intentExtents },
    });
    const replica = this.#replica = this.#attachment.replica;
    if (!replica.stored) {
      // A node never paired has no generation yet: a primary starts one, a
      // secondary takes its partner's.
      replica.generation = this.#role === 'primary' ? newGeneration() : NO_GENERATION;
      replica.history = [];
    }
    this.#resync = new Resync(memory, replica, {
      route: (change, policy) => this.#route(change, policy),
      canRun: () => !!this.#transport && !this.#transport.closed && !this.#degraded && this.#role === 'primary' && !this.#closed,
      verify: () => this.verify(),
      synced: () => this.#hello({ synced: true }),
      onProgress: this.#o.onResyncProgress,
      report: (err) => this.#report(err),
    });
    this.#failover = new Failover({ heartbeatMs: this.#o.heartbeatMs, timeoutMs: this.#o.timeoutMs, auto: this.#o.failover === 'auto' }, {
      beat: () => {
        this.#post({ type: MessageType.SENSE_REQUEST });
        // Pages out of sync while connected: a resync that failed (or was cut short) goes again.
        if (!this.#replica.outOfSync.empty && !this.#resync.running) this.resync().catch((err) => this.#report(err));
      },
      oldestWait: () => this.#stream?.oldestWait() ?? null,
      drop: (reason) => this.#drop(reason),
      primaryGone: (silent) => {
        if (this.#role !== 'secondary' || this.#closed || this.#replica.inconsistent) return false;
        // Only a primary that went silent or closed the link: not a link this
        // node dropped itself (a bad frame, a failed apply, a split brain).
        const t = this.#transport;
        return t !== null && !t.closed ? silent(0) : t === null && this.#primaryLost;
      },
      promote: () => this.promote(),
      onFailover: this.#o.onFailover,
    });
    this.#handlers = this.#dispatchTable();
    // From now on the superblock says "not closed cleanly" until close().
    replica.save().catch((err) => this.#report(err));
  }

  get role(): Role { return this.#role; }

  // --- the connection -----------------------------------------------------------------------

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
    this.#failover.heard();
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
    const stream = this.#stream = new Stream(transport, (m, seq) => this.#encode(m, seq), this.#o.timeoutMs);
    this.#applier = new Applier(this.memory, {
      post: (m) => stream.post(m),
      fail: (err) => { if (this.#transport === transport) this.#fail(err); },
      taken: (pages) => this.#taken(pages),
    });
    // Exchange slots are this connection's: known free once the partner's HELLO tells its id.
    this.#copy = new CopyMethods(this.#o.copy, transport.shared, this.#storage, this.memory.pageSize);
    const blocks = this.memory.blocks();
    const oos = this.#replica.outOfSync;
    this.#hello({
      // What may differ here from the partner, and the blocks held: the primary resyncs from them.
      outOfSync: oos.known ? oos.runs() : null,
      inconsistent: this.#replica.inconsistent,
      blocks: blocks.length <= MAX_HELLO_BLOCKS ? blocks.map((b) => b.id) : null,
    });
    if (this.#role === 'primary') this.#failover.startHeartbeat();
    else this.#failover.startWatchdog();
  }

  /** The current connection's stream, while it is open. */
  #current(): Stream | null {
    const t = this.#transport;
    return t && !t.closed && this.#stream?.transport === t ? this.#stream : null;
  }

  /** A HELLO with this node's generations and `extra` (the first on a connection; a later one reports a finished resync). */
  #hello(extra: Partial<HelloInfo>): void {
    const r = this.#replica;
    this.#post({
      type: MessageType.HELLO, protocol: 1, pageSize: this.memory.pageSize, nodeId: this.memory.nodeId, nonce: new Uint8Array(32),
      generations: { generation: r.generation, history: r.history, role: this.#role, ...extra },
    });
  }

  /** Drops the connection: the partner is taken for down (a primary goes on degraded). */
  #drop(reason: TwinpageError): void {
    const t = this.#transport;
    this.#transport = null;
    if (this.#role === 'primary') this.#lost();
    t?.close(reason);
  }

  /** The partner is gone: writes go on locally; what it did not acknowledge will need a resync. */
  #lost(): void {
    this.#degraded = true;
    this.#failover.stopHeartbeat();
    this.#replica.outOfSync.lost();
    this.#replica.saveSoon();
    this.#stream?.release();
  }

  /** A frame could not be taken: the connection ends with the error (told to the partner first). */
  #fail(err: unknown): void {
    const e = TwinpageError.from(err);
    this.#post({ type: MessageType.ERROR, replyTo: 0, code: e.code, message: e.message });
    const t = this.#transport;
    this.#transport = null;
    t?.close(e);
    if (this.#role === 'primary') this.#lost();
    else this.#stream?.release();
  }

  // --- operations ------------------------------------------------------------------------------

  /**
   * Sends the partner what it missed while degraded: block-table changes,
   * then the lagging pages in address order, in releases of up to 64 pages.
   * New writes go on meanwhile. Resolves once the partner holds it all.
   */
  resync(): Promise<void> {
    return this.#resync.run();
  }

  /**
   * Resyncs a partner that is behind without a record of what it missed:
   * compares every page's checksum and sends what differs.
   */
  resyncByChecksums(peerBlocks: Set<string> | null = null): Promise<void> {
    return this.#resync.byChecksums(peerBlocks);
  }

  /** Compares every block's page checksums with the partner's and reports the differences. */
  verify(): Promise<VerifyReport> {
    return this.#verifier.verify();
  }

  /**
   * Makes this node the primary (failover): it serves writes from now on,
   * under a new generation (kept durably), so that the old primary, when it
   * comes back, is known to be behind.
   */
  async promote(options: { force?: boolean } = {}): Promise<void> {
    if (this.#role === 'primary') return;
    if (this.#replica.inconsistent && options?.force !== true) {
      throw TwinpageError.inconsistent(`this node is being resynced from its partner and does not hold all of its data yet: ` +
        `promoting it would serve stale pages (promote({ force: true }) to do it anyway)`);
    }
    this.#failover.stop();
    // The partner is taken for failed: its connection ends here, so writes
    // go on degraded at once instead of waiting for acknowledgements that
    // will not come. If it lives, it meets this node's new generation when
    // it reconnects, and is refused (split brain) or rejoins as secondary.
    const t = this.#transport;
    this.#transport = null;
    t?.close(TwinpageError.closed('this node was promoted: the old primary is taken for failed'));
    this.#stream?.release();
    this.#degraded = true;
    this.#replica.inconsistent = false;
    await this.#setGeneration(newGeneration(), [this.#replica.generation!, ...this.#replica.history].slice(0, 32));
    this.#role = 'primary';
  }

  async #setGeneration(generation: string, history: string[]): Promise<void> {
    this.#replica.generation = generation;
    this.#replica.history = history;
    await this.#replica.save();
  }

  sense(): MirrorState {
    const r = this.#replica;
    return {
      role: this.#role,
      health: this.#splitBrain ? 'split-brain' : this.#degraded || !this.#transport ? 'degraded' : 'ok',
      generation: r.generation!,
      history: [...r.history],
      connected: !!this.#transport && !this.#transport.closed,
      inFlight: this.#stream?.inFlight ?? 0,
      lagPages: r.outOfSync.size,
      lastApplied: this.#applier?.applied ?? 0,
      intents: r.intents.size,
      inconsistent: r.inconsistent,
      lastError: this.#lastError && { ...this.#lastError },
    };
  }

  /** Pages sent by copy method, resync totals and write intents. */
  stats(): MirrorStats {
    return {
      copy: this.#copy.choose('auto'),
      pages: { ...this.#copied },
      resyncedPages: this.#resync.resyncedPages,
      lastResync: this.#resync.last && { ...this.#resync.last },
      intents: this.#replica.intents.size,
      extentPages: this.#replica.intents.extentPages,
      readRepairs: this.#verifier.repairs,
    };
  }

  /** Pages changed while the partner could not acknowledge them (a resync must send them). */
  laggingPages(): number[] {
    return this.#replica.outOfSync.sorted();
  }

  /**
   * Leaves the pair: closes the connection, releases writers waiting for
   * acknowledgements, and records in the superblock, as a clean close, the
   * pages the partner may lack. Call before closing the memory.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#failover.stop();
    this.#attachment.detach();
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    if (this.#role === 'primary') this.#lost();
    this.#stream?.release();
    // Queued on the memory's own chain now, so it runs before the memory closes.
    return this.#replica.close().catch(() => {});
  }

  // --- primary: changes out -------------------------------------------------------------------

  /** The memory's changes come in here (resyncs go straight to #route). */
  #send(change: Change, policy: LinkPolicy, local?: Promise<void>): Promise<void> {
    // This node's journal commit of a change sent in parallel with it failed:
    // the change is undone here, and the partner may hold it. Its pages
    // differ now: they are resynced (the partner takes this node's contents back).
    if (local && change.type === 'release') local.catch(() => this.#localFailed(change.pages.map((p) => p.page)));
    return this.#route(change, policy);
  }

  #localFailed(pages: number[]): void {
    if (pages.length === 0 || this.#closed) return;
    this.#replica.outOfSync.addAll(pages);
    this.#replica.saveSoon();
    if (this.#role === 'primary' && this.#transport && !this.#transport.closed && !this.#degraded) this.resync().catch((err) => this.#report(err));
  }

  /** Sends one change by the copy method its policy asks for, or records it as lagging without a partner. */
  #route(change: Change, policy: LinkPolicy): Promise<void> {
    const pages = change.type === 'release' ? change.pages.map((p) => p.page) : [];
    const blockId = change.type === 'allocate' ? change.block.id : change.type === 'free' ? change.blockId : undefined;
    const stream = this.#stream;
    const t = this.#transport;
    if (!t || t.closed || this.#degraded || !stream || stream.transport !== t) {
      const oos = this.#replica.outOfSync;
      oos.addAll(pages);
      if (blockId !== undefined) oos.addBlock(blockId);
      this.#replica.saveSoon();
      return Promise.resolve();
    }
    const messages = changeMessages(change);
    const placed = this.#copy.place(messages, pages.length ? this.#copy.choose(policy.copyMethod) : 'message');
    if (placed.method !== 'storage') return this.#sendBatch(stream, placed.messages, pages, blockId, policy, placed.ring);
    // Storage: the pages are written to the exchange before the frames that point at them go.
    return Promise.all(placed.puts).then(
      () => (this.#transport === t ? this.#sendBatch(stream, placed.messages, pages, blockId, policy, placed.ring) : this.#route(change, policy)),
      (err) => { this.#fail(err); return this.#route(change, policy); },
    );
  }

  /** Sends one change's frames in order; resolves at the durability asked for. */
  #sendBatch(stream: Stream, messages: Request[], pages: number[], blockId: string | undefined, policy: LinkPolicy, ring: SlotRing | null): Promise<void> {
    for (const m of messages) if (m.type === MessageType.WRITE_PAGE) this.#copied[m.copy]++;
    const { last, sent } = stream.sequence(messages);
    ring?.mark(last);
    this.#replica.outOfSync.sent(last, pages, blockId);
    const level = LEVEL[policy.durability];
    if (level < 0 || stream.acked[level] >= last) return sent;
    return stream.waitFor(last, level);
  }

  #onAck(applied: number, level: number): void {
    const stream = this.#stream;
    if (!stream) return;
    stream.acknowledged(applied, level);
    this.#copy.acked(stream.acked);
    if (level >= AckLevel.DISK) this.#replica.outOfSync.acked(applied);
  }

  // --- frames in ------------------------------------------------------------------------------

  #receive(bytes: Uint8Array): void {
    this.#failover.heard();
    let frame: Frame;
    try {
      frame = decodeFrame(bytes, this.#hash, { maxBody: 8 << 20, pageSize: this.memory.pageSize });
    } catch (err) {
      this.#fail(err);
      return;
    }
    const m = frame.message as Message;
    this.#handlers[m.type]?.(m, frame);
  }

  /** What each frame type does here; types not listed change nothing. */
  #dispatchTable(): Partial<Record<MessageType, Handler>> {
    const reply: Handler = (m) => this.#stream?.reply((m as { replyTo: number }).replyTo, m);
    const stream: Handler = (m, f) => this.#takeStream(m as Request, f.sequence);
    return {
      [MessageType.HELLO]: (m) => this.#onHello(m as MessageOf<MessageType.HELLO>),
      [MessageType.ACK]: (m) => { const a = m as MessageOf<MessageType.ACK>; this.#onAck(a.applied, a.level); },
      [MessageType.SENSE_REQUEST]: (_m, f) => this.#onSense(f.sequence),
      [MessageType.READ_HEADER]: (m, f) => { this.#applier?.saw(f.sequence); this.#verifier.answerHeader(f.sequence, m as MessageOf<MessageType.READ_HEADER>); },
      [MessageType.READ_HEADER_REPLY]: reply,
      [MessageType.ALLOCATE_READ]: (m, f) => { this.#applier?.saw(f.sequence); this.#verifier.answerRead(f.sequence, m as MessageOf<MessageType.ALLOCATE_READ>).catch(() => {}); },
      [MessageType.ALLOCATE_READ_REPLY]: reply,
      [MessageType.ERROR]: (m) => {
        const e = m as MessageOf<MessageType.ERROR>;
        if (e.replyTo !== 0 && this.#stream?.awaits(e.replyTo)) { this.#stream.reply(e.replyTo, m); return; }
        this.#transport?.close(TwinpageError.ioError(`the partner reported ${e.code}: ${e.message}`));
      },
      [MessageType.ALLOCATE_MEMORY]: stream,
      [MessageType.RELEASE_MEMORY]: stream,
      [MessageType.WRITE_PAGE]: stream,
      [MessageType.RELEASE_POINTER]: stream,
    };
  }

  #onHello(m: MessageOf<MessageType.HELLO>): void {
    if (m.pageSize !== this.memory.pageSize) {
      this.#fail(TwinpageError.invalidArgument(`the partner uses ${m.pageSize}-byte pages, this node ${this.memory.pageSize}`));
      return;
    }
    const peer = readHello(m.generations);
    const r = this.#replica;
    if (this.#helloSeen) {
      // A second HELLO on a connection only reports a finished resync.
      if (this.#role === 'secondary' && r.inconsistent && peer.synced && peer.generation === r.generation) {
        r.inconsistent = false;
        r.save().catch((err) => this.#report(err));
      }
      return;
    }
    this.#helloSeen = true;
    this.#copy.open(this.memory.nodeId, m.nodeId);
    this.#handshake(m.nodeId, peer);
  }

  /** Acts on the handshake's decision (handshake.ts). */
  #handshake(peerId: string, peer: HelloInfo): void {
    const r = this.#replica;
    const d = decide({ role: this.#role, generation: r.generation!, history: r.history }, peer, this.#o.splitBrain);
    switch (d.kind) {
      case 'same':
        if (this.#role === 'primary') this.#resync.fromHandshake(peer, false);
        return;
      case 'resync-peer':
        this.#resync.fromHandshake(peer, d.fresh);
        return;
      case 'take-peer':
        // Until the primary says its resync is done, this node may not be promoted.
        r.inconsistent = true;
        this.#setGeneration(peer.generation, peer.history).catch((err) => this.#fail(err));
        return;
      case 'discard-local':
        // This node gives up its changes: it takes the partner's generation and is resynced.
        r.outOfSync.forget();
        r.inconsistent = true;
        this.#setGeneration(peer.generation, peer.history).catch((err) => this.#fail(err));
        return;
      case 'split-brain':
        this.#splitBrain = `split brain: ${d.what} (this node ${this.memory.nodeId} generation ${r.generation}, partner ${peerId} generation ${peer.generation}). ` +
          `Nothing was merged and both keep their data. Choose the node whose changes to discard and restart it as secondary ` +
          `with the mirror option splitBrain: 'discard-local'; the other, as primary, then resyncs it.`;
        this.#fail(TwinpageError.splitBrain(this.#splitBrain));
        return;
    }
  }

  #onSense(sequence: number): void {
    // The heartbeat also repeats the acknowledgements, in case one was lost.
    this.#applier?.repeatAck();
    const s = this.sense();
    const r = this.#replica;
    this.#post({
      type: MessageType.SENSE_REPLY, replyTo: sequence, role: this.#role, nodeId: this.memory.nodeId,
      generation: r.generation!, history: r.history.slice(0, 16), lastApplied: s.lastApplied,
      health: s.health === 'ok' ? 'ok' : 'degraded', lagPages: s.lagPages,
    });
  }

  /** A frame of the partner's stream (a change), or a page answering this node's read. */
  #takeStream(m: Request, seq: number): void {
    if (m.type === MessageType.WRITE_PAGE && seq === 0) {
      // Not the stream: a page answering this node's ALLOCATE_READ (read repair).
      this.#verifier.takePage(m);
      return;
    }
    if (this.#role !== 'secondary') {
      this.#fail(TwinpageError.invalidArgument('both nodes act as primary (split brain): refusing the partner\'s changes'));
      return;
    }
    const applier = this.#applier!;
    try {
      // The stream must arrive whole and in order: a duplicate is dropped,
      // a gap ends the connection (the primary resyncs what was unacknowledged).
      if (!applier.next(seq)) return;
      applier.apply(seq, m.type === MessageType.WRITE_PAGE && m.copy !== 'message' ? this.#copy.copyIn(m) : m);
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Pages applied from the partner: this node holds what the partner holds there. */
  #taken(pages: number[]): void {
    const oos = this.#replica.outOfSync;
    if (this.#role !== 'secondary' || oos.size === 0) return;
    let changed = false;
    for (const p of pages) changed = oos.delete(p) || changed;
    if (changed) this.#replica.saveSoon();
  }

  // --- helpers ---------------------------------------------------------------------------------

  /** Background work failed: kept for sense(); what it was doing is tried again (resync) or saved later (the record). */
  #report(err: unknown): void {
    const e = TwinpageError.from(err);
    this.#lastError = { code: e.code, message: e.message, at: Date.now() };
  }

  readonly #hash = (b: Uint8Array) => this.memory.core.checksum(b);

  #encode(m: Message, seq: number): Uint8Array {
    return encodeFrame(m, { sequence: seq, generation: BigInt(`0x${this.#replica.generation}`) }, this.#hash);
  }

  /** Sends a frame outside the stream on the current connection, if any. */
  #post(m: Message): void {
    this.#current()?.post(m);
  }
}
