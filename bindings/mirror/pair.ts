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
// (degraded) and records the pages it changed, for a resync; before the
// first change the partner lacks it takes a new generation, durably, so the
// two histories can always be told apart (handshake.ts).
//
// Roles: the primary serves its callers' changes; a secondary's memory
// refuses them (NOT_PRIMARY) and changes only by the stream. `demote()` and
// `promote()` switch roles with both nodes alive (no resync, no new
// generation); `promote()` without a live partner is a failover.
//
// This file composes the rooms of mirror/ and dispatches incoming frames:
//   options.ts    the options          handshake.ts  generations, the decision
//   stream.ts     sequence, acks,      apply.ts      the secondary's side
//                 requests             resync.ts     what the partner lacks, sent
//   changes.ts    changes as messages  verify.ts     verify and read repair
//   copy.ts       copy methods         failover.ts   heartbeat and failover
//   exchange.ts   the page exchanges   transports/   what carries the frames
// What the node records about its partner (generations, out-of-sync pages,
// write intents) is the memory's metadata (memory/replica.ts).

import { TwinpageError } from '../errors.js';
import type { Attachment, Change, LinkPolicy, Memory, PageDamage } from '../memory/memory.js';
import type { ReplicaRecord } from '../memory/replica.js';
import {
  AckLevel, FrameArena, MessageType, decodeFrame, encodeFrame,
  type Frame, type Hello, type HelloFlags, type Message, type MessageOf, type Request,
} from '../messages.js';
import { Applier } from './apply.js';
import { MirrorEvents } from './events.js';
import { changeMessages } from './changes.js';
import { CopyMethods, type Method } from './copy.js';
import { storageExchange, type PageExchange, type SlotRing } from './exchange.js';
import { Failover } from './failover.js';
import { NO_GENERATION, decide, newGeneration, rotated, settled, taken, type Decision, type Generations, type Side } from './handshake.js';
import { resolveMirrorOptions, type MirrorOptions, type ResolvedMirrorOptions, type Role } from './options.js';
import { Quorum, type QuorumState } from './quorum.js';
import { Resync, type PeerRecord } from './resync.js';
import { LEVEL, Stream } from './stream.js';
import type { Transport } from './transports/transport.js';
import { Verifier, blockIdFrames, type VerifyReport } from './verify.js';

export type { MirrorOptions, Role } from './options.js';
export type { VerifyReport } from './verify.js';
export { MirrorEvent, MirrorEvents, MIRROR_EVENTS } from './events.js';
export type { MirrorEventMap, MirrorEventType, MirrorListenOptions } from './events.js';

/** The protocol this build speaks in its HELLO. */
const PROTOCOL = 2;
/** Out-of-sync runs per OUT_OF_SYNC frame (8 bytes each: 512 KiB a frame). */
const RUNS_PER_FRAME = 65536;

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
  /** This node's current generation id, and the ones before it, newest first. */
  generation: string;
  history: string[];
  /** The generation when this node started recording what its partner lacks (all zeros: none). */
  bitmapGeneration: string;
  connected: boolean;
  /** The partner's role, as it last said (null before its first HELLO on this connection). */
  peerRole: Role | null;
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
  /** Why the last handshake was refused (a split brain, unrelated data, a primary behind), or null. */
  refused: string | null;
  /** The pair's epoch this node knows (it grows at every change of primary through the arbiter). */
  epoch: number;
  /** The arbiter's view: lease, outdated partner, writes waiting (null without an arbiter). */
  quorum: QuorumState | null;
  /** The last failure of work the mirror does in the background (a resync, saving its record), with when (ms since the epoch). */
  lastError: { code: string; message: string; at: number } | null;
}

/** What `verify({ repair: true })` adds: the differences are being resynced from this primary. */
export interface VerifyOptions {
  /** Resync what differs, from this node (the primary). @default false */
  repair?: boolean;
}

type Handler = (m: Message, frame: Frame) => void;

/** What the partner said on this connection, and its record as it streams in after its HELLO. */
interface Peer {
  nodeId: string;
  hello: Hello;
  runs: Array<[number, number]>;
  runsDone: boolean;
  ids: string[];
  idsDone: boolean;
  /** Resolved once both its out-of-sync runs and its block ids have arrived; rejected if the connection ends first. */
  record: Promise<PeerRecord>;
  complete: (r: PeerRecord) => void;
  abandon: (err: Error) => void;
}

export class Mirror extends MirrorEvents {
  readonly memory: Memory;
  readonly #o: ResolvedMirrorOptions;
  #role: Role;
  /** A demotion under way: the callers' changes are refused already. */
  #demoting = false;
  readonly #attachment: Attachment;
  readonly #replica: ReplicaRecord;
  readonly #storage: PageExchange | null;
  readonly #verifier: Verifier;
  readonly #resync: Resync;
  readonly #failover: Failover;
  readonly #quorum: Quorum | null;
  // the connection
  #transport: Transport | null = null;
  #stream: Stream | null = null;
  #applier: Applier | null = null;
  /** The current applier's gate opened (the handshake accepted the partner): it may still be applying. */
  #applierOpen = false;
  #copy: CopyMethods;
  #peer: Peer | null = null;
  /** Lets the current connection's applier start (the handshake accepted the partner). */
  #openApplier: () => void = () => {};
  /**
   * The handshake accepted the partner with neither node primary (this node
   * in sync, or the source of a split brain its partner discards): the
   * resync nobody planned then (the union of both records), planned if this
   * node is promoted on the same connection.
   */
  #sourcePlan: { peer: Peer; full: boolean } | null = null;
  /** The partner, on this connection, is inconsistent until this node's resync says it is done (#synced). */
  #owesSynced = false;
  /**
   * The partner whose resync is being planned (its record on the way, or its
   * pages compared): heartbeats start no resync of their own meanwhile, which,
   * finding nothing lagging yet, would tell it that it holds everything.
   */
  #planning: Peer | null = null;
  /** That plan: done (or given up) when it settles. */
  #planned: Promise<void> = Promise.resolve();
  #degraded = false;
  #refused: string | null = null;
  #splitBrain = false;
  /** The primary closed the link or it failed under us (not dropped by this node): automatic failover may act. */
  #primaryLost = false;
  /** When (performance.now()) this secondary may first ask the arbiter to take over from the primary it lost (0: not yet lost). */
  #takeOverAt = 0;
  /** Settles when the current connection is lost (a resync's pieces stop waiting then). */
  #connectionLost: Promise<void> = Promise.resolve();
  #loseConnection: () => void = () => {};
  #closed = false;
  /** A new generation being made durable (shared by every change waiting for it). */
  #rotation: Promise<void> | null = null;
  #lastError: { code: string; message: string; at: number } | null = null;
  /** A `connected` event was dispatched for the current connection (a `disconnected` is owed). */
  #announced = false;
  readonly #copied: Record<Method, number> = { message: 0, shared: 0, storage: 0 };
  readonly #handlers: Partial<Record<MessageType, Handler>>;
  readonly #stopDamage: () => void;
  /** Damaged pages being read back from the partner (close waits for it). */
  #readingBack: Promise<void> = Promise.resolve();

  constructor(memory: Memory, options: MirrorOptions) {
    super();
    this.#o = resolveMirrorOptions(options);
    this.memory = memory;
    this.#role = this.#o.role;
    const x = this.#o.exchange;
    this.#storage = x ? storageExchange(x.device, x.bytes) : null;
    this.#copy = new CopyMethods(this.#o.copy, null, this.#storage, memory.pageSize);
    const mirror = this;
    this.#verifier = new Verifier(memory, () => this.#current());
    this.#attachment = memory.attach({
      // While a demotion drains, changes under way still go out; new ones are refused.
      get primary() { return mirror.#role === 'primary'; },
      get accepting() { return mirror.#role === 'primary' && !mirror.#demoting; },
      send: (change, policy, local) => this.#send(change, policy, local),
      reserve: (base, pages) => this.#reserve(base, pages),
      repair: this.#verifier.repair,
      intents: { extentPages: this.#o.extentPages, maxExtents: this.#o.intentExtents },
    });
    const replica = this.#replica = this.#attachment.replica;
    if (!replica.stored) {
      // A node never paired has no generation yet: a primary starts one, a
      // secondary takes its partner's.
      replica.generation = this.#role === 'primary' ? newGeneration() : NO_GENERATION;
      replica.history = [];
      if (this.#role === 'primary') replica.primarySince = Date.now();
    }
    const arbiter = this.#o.arbiter;
    this.#quorum = arbiter && new Quorum(arbiter, { onNoQuorum: this.#o.onNoQuorum, epoch: replica.epoch }, {
      nodeId: () => memory.nodeId,
      generation: () => replica.generation!,
      changed: (held, reason) => {
        if (held) this.dispatch('quorum-regained', {});
        else this.dispatch('quorum-lost', { reason: reason ?? 'the arbiter did not grant the lease' });
      },
      epochSeen: (epoch, record) => {
        this.#adoptEpoch(epoch);
        // Another node took over through the arbiter: this primary is stale.
        if (record.primary !== null && record.primary !== memory.nodeId && epoch >= this.#replica.epoch && this.#role === 'primary') {
          this.#fenced(`node ${record.primary} is primary in epoch ${epoch} at the arbiter`);
        }
      },
    });
    this.#resync = new Resync(memory, replica, {
      route: (change, policy, posted) => this.#routeResync(change, policy, posted),
      canRun: () => this.#connected() && !this.#degraded && this.#role === 'primary' && !this.#closed,
      verify: () => this.#verifier.verify(),
      synced: () => this.#synced(),
      onProgress: (p) => { this.#o.onResyncProgress?.(p); this.dispatch('resync-progress', p); },
      report: (err) => this.#report(err),
    });
    this.#failover = new Failover({ heartbeatMs: this.#o.heartbeatMs, timeoutMs: this.#o.timeoutMs, auto: this.#o.failover === 'auto' }, {
      beat: () => {
        this.#post({ type: MessageType.SENSE_REQUEST });
        // Pages out of sync while connected: a resync that failed (or was cut short) goes again;
        // one that sent everything but ended before saying so (this node was demoted) says it.
        const peer = this.#peer;
        if ((!this.#replica.outOfSync.empty || this.#owesSynced) && !this.#resync.running && peer && this.#planning !== peer) this.resync().catch((err) => this.#report(err));
      },
      oldestWait: () => this.#stream?.oldestWait() ?? null,
      drop: (reason) => this.#drop(reason),
      primaryGone: (silent) => {
        if (this.#role !== 'secondary' || this.#closed || this.#replica.inconsistent) return false;
        // Only a primary that went silent or closed the link: not a link this
        // node dropped itself (a bad frame, a failed apply, a split brain).
        const t = this.#transport;
        if (t !== null && !t.closed) {
          // A primary silent on a link still open: the watchdog drops the link, and the
          // takeover is asked for again at every tick until the arbiter grants it.
          if (!silent(0)) return false;
          this.#primaryLost = true;
          return true;
        }
        return t === null && this.#primaryLost;
      },
      ping: () => this.#post({ type: MessageType.SENSE_REQUEST }),
      linked: () => this.#role === 'secondary' && !this.#closed && this.#connected(),
      promote: () => this.#takeOver(),
      onFailover: () => { this.#o.onFailover?.(); this.dispatch('failover', { generation: this.#replica.generation! }); },
    });
    this.#handlers = this.#dispatchTable();
    // Damage this node found (at open, by reads, by scrub) is taken from the partner.
    this.#stopDamage = memory.onDamage((found) => this.#damaged(found));
    this.#damaged(memory.damage());
    // A record found damaged at open is not trusted: the next resync compares every page.
    // (Reported once: a mirror attached again later finds it reported.)
    for (const d of replica.damage.splice(0)) this.#report(TwinpageError.corrupt(`the out-of-sync record: ${d.what}; the next resync compares every page`));
    // From now on the record says "not closed cleanly" until close().
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
    this.#refused = null;
    this.#splitBrain = false;
    this.#peer = null;
    this.#sourcePlan = null;
    this.#owesSynced = false;
    this.#failover.heard();
    // Frames still arriving from an earlier connection are not this one's.
    transport.onFrame((bytes) => { if (this.#transport === transport) this.#receive(bytes); });
    transport.onClose((err) => {
      if (this.#transport !== transport) return;
      this.#transport = null;
      if (this.#role === 'secondary') this.#primaryLost = true;
      this.#lost(err);
    });
    this.#primaryLost = false;
    this.#takeOverAt = 0;
    this.#connectionLost = new Promise((resolve) => { this.#loseConnection = resolve; });
    this.#degraded = false;
    // A new connection numbers its frames afresh; applies still running from
    // the old one finish on their own and are not acknowledged on this one.
    const stream = this.#stream = new Stream(transport, (m, seq) => this.#encode(m, seq), this.#o.timeoutMs);
    // ... but before this connection's frames: a page a dead partner sent
    // just before it died, applied late, would otherwise land over the
    // resync's copy of it, and the nodes would differ unknown to both.
    const earlier = this.#applierOpen ? this.#applier : null;
    this.#applierOpen = false;
    this.#applier = new Applier(this.memory, {
      post: (m) => stream.post(m),
      fail: (err) => { if (this.#transport === transport) this.#fail(err); },
      taken: (pages) => this.#taken(pages),
    });
    // Nothing of the partner's stream is applied before the handshake has
    // decided (and made its decision durable): a refused partner changes nothing.
    if (earlier) this.#applier.hold(earlier.drained());
    let open!: () => void;
    this.#applier.hold(new Promise<void>((resolve) => { open = resolve; }));
    this.#openApplier = () => { this.#applierOpen = true; open(); };
    // Exchange slots are this connection's: known free once the partner's HELLO tells its id.
    this.#copy = new CopyMethods(this.#o.copy, transport.shared, this.#storage, this.memory.pageSize);
    this.#hello({});
    this.#sendRecord(stream);
    if (this.#role === 'primary') this.#failover.startHeartbeat();
    else this.#failover.startWatchdog();
  }

  #connected(): boolean {
    return !!this.#transport && !this.#transport.closed;
  }

  /** The current connection's stream, while it is open. */
  #current(): Stream | null {
    const t = this.#transport;
    return t && !t.closed && this.#stream?.transport === t ? this.#stream : null;
  }

  /** This node's side of the handshake. */
  #side(): Side {
    const r = this.#replica;
    return {
      role: this.#role, current: r.generation!, bitmap: r.bitmapGeneration ?? NO_GENERATION, history: r.history,
      inconsistent: r.inconsistent, changes: r.outOfSync.size, primarySince: r.primarySince,
      splitBrain: this.#o.splitBrain, discardLocal: r.discardLocal,
    };
  }

  /** A HELLO with this node's generations, role and flags (the first on a connection, and again when they change). */
  #hello(flags: Partial<HelloFlags>): void {
    const s = this.#side();
    const r = this.#replica;
    this.#post({
      type: MessageType.HELLO, protocol: PROTOCOL, pageSize: this.memory.pageSize, nodeId: this.memory.nodeId,
      role: this.#role === 'primary' && !this.#demoting ? 'primary' : 'secondary',
      flags: {
        inconsistent: r.inconsistent, outOfSyncKnown: r.outOfSync.known, synced: false, crashed: r.crashed,
        discardLocal: r.discardLocal, ...flags,
      },
      splitBrain: this.#o.splitBrain, current: s.current, bitmap: s.bitmap, primarySince: s.primarySince,
      changes: s.changes, blocks: this.memory.blockCount, epoch: this.#replica.epoch, history: s.history,
    });
  }

  /** After the first HELLO: this node's out-of-sync runs and block ids, in parts. */
  #sendRecord(stream: Stream): void {
    const oos = this.#replica.outOfSync;
    // Streamed from the bitmap in parts, however large it is; the last part marked.
    let part: Array<[number, number]> = [];
    if (oos.known) {
      for (const run of oos.runs()) {
        part.push(run);
        if (part.length === RUNS_PER_FRAME) { stream.post({ type: MessageType.OUT_OF_SYNC, last: false, runs: part }); part = []; }
      }
    }
    stream.post({ type: MessageType.OUT_OF_SYNC, last: true, runs: part });
    for (const f of blockIdFrames(this.memory.blocks().map((b) => b.id), 0)) stream.post(f);
  }

  /** Drops the connection: the partner is taken for down (a primary goes on degraded). */
  #drop(reason: TwinpageError): void {
    const t = this.#transport;
    this.#transport = null;
    this.#lost(reason);
    t?.close(reason);
  }

  /**
   * The partner is gone: writes go on locally; what it did not acknowledge
   * is out of sync. A primary with changes the partner may lack takes a new
   * generation before the writers waiting on them go on.
   */
  #lost(reason?: unknown): void {
    this.#loseConnection();
    this.#peer?.abandon(TwinpageError.closed('the connection ended before the partner\'s record arrived'));
    this.#wentDown(reason);
    this.#degraded = true;
    this.#failover.stopHeartbeat();
    this.memory.releaseReservations();
    const oos = this.#replica.outOfSync;
    const unacked = oos.unacked;
    oos.lost();
    const stream = this.#stream;
    stream?.releaseRequests();
    // A primary with an arbiter takes the lease at once (without marking the partner
    // outdated: that waits for a write the partner lacks), so that a secondary cut from
    // it only, asking after its head start, is refused.
    if (this.#role === 'primary' && !this.#closed) this.#quorum?.hold();
    if (this.#role === 'primary' && unacked && !this.#closed) {
      // Writers waiting for the partner's acknowledgement go on alone, under the rules.
      this.#acknowledgeAlone().then(() => stream?.releaseWriters(), (err) => stream?.releaseWriters(TwinpageError.from(err)));
      return;
    }
    this.#replica.saveSoon();
    stream?.release();
  }

  /** A connection announced as connected ended: `disconnected`, and `degraded` unless the mirror is closing. */
  #wentDown(reason?: unknown): void {
    if (!this.#announced) return;
    this.#announced = false;
    this.dispatch('disconnected', { reason: reason instanceof Error ? reason.message : null });
    if (!this.#closed) this.dispatch('degraded', { role: this.#role, lagPages: this.#replica.outOfSync.size });
  }

  /**
   * A frame could not be taken (or the handshake refused the partner): the
   * connection ends with the error, told to the partner first. `orderly`:
   * what was sent still reaches it (a refusal it must be able to read).
   */
  #fail(err: unknown, orderly = false): void {
    const e = TwinpageError.from(err);
    this.#post({ type: MessageType.ERROR, replyTo: 0, code: e.code, message: e.message });
    const t = this.#transport;
    this.#transport = null;
    if (orderly) t?.close(); else t?.close(e);
    this.#lost(e);
  }

  /**
   * Before the first change the partner lacks (degraded, or sent and never
   * acknowledged), while the partner knows this node's current generation:
   * a new current generation, durably (the old one becomes the bitmap
   * generation). Null when none is needed.
   */
  #rotate(): Promise<void> | null {
    if (this.#rotation) return this.#rotation;
    const r = this.#replica;
    if (!r.shared || this.#role !== 'primary') return null;
    const g = rotated(this.#generations());
    this.#setGenerations(g);
    r.shared = false;
    this.#rotation = r.save().finally(() => { this.#rotation = null; });
    return this.#rotation;
  }

  /**
   * Before acknowledging a change the partner lacks: with an arbiter, the
   * lease held and the partner marked outdated (or it holds the change again:
   * it was resynced); then a new generation, durably, if the partner knows
   * the current one; and with an arbiter, the lease checked once more right
   * before the acknowledgement.
   */
  async #acknowledgeAlone(): Promise<void> {
    const q = this.#quorum;
    const partner = this.#replica.partner;
    if (q && (await q.ensure(partner)) === 'released') return;
    // A partner connected while this waited for quorum: it took the current generation
    // (this node's HELLO named it) and is resynced from the out-of-sync record, which
    // holds these changes. A new generation now would leave it behind one it never hears
    // of: it stayed inconsistent, and the stream stuck (seen by the quorum campaign).
    const rotation = this.#connected() ? null : this.#rotate();
    if (rotation) await rotation; else this.#replica.saveSoon();
    if (q) await q.ensure(partner);
  }

  #generations(): Generations {
    const r = this.#replica;
    return { current: r.generation!, bitmap: r.bitmapGeneration ?? NO_GENERATION, history: r.history };
  }

  #setGenerations(g: Generations): void {
    const r = this.#replica;
    r.generation = g.current;
    r.bitmapGeneration = g.bitmap === NO_GENERATION ? null : g.bitmap;
    r.history = g.history;
  }

  // --- operations ------------------------------------------------------------------------------

  /**
   * Sends the partner what it missed while degraded: block-table changes,
   * then the lagging pages in address order, in releases of up to 64 pages.
   * New writes go on meanwhile. Resolves once the partner holds it all;
   * rejects with CLOSED when pages still lag and no partner can take them
   * (none connected, or it went away meanwhile). While the handshake's own
   * resync is planned, it waits for it; before the handshake, it has nothing
   * to send and resolves at once (the handshake plans the resync then).
   */
  resync(): Promise<void> {
    // A resync being planned goes first: before it, nothing says what the partner lacks.
    // (It ran the resync, if it could: one that told the partner it holds everything is this one.)
    if (this.#planning !== null && this.#planning === this.#peer) {
      return this.#planned.then(() => (this.#owesSynced || !this.#replica.outOfSync.empty ? this.#resync.run() : undefined));
    }
    return this.#resync.run();
  }

  /**
   * Resyncs a partner that is behind without a record of what it missed:
   * compares every page's checksum and sends what differs.
   */
  resyncByChecksums(peerBlocks: Set<string> | null = null): Promise<void> {
    return this.#resync.byChecksums(peerBlocks);
  }

  /**
   * Compares the block lists of both nodes and every block's page checksums
   * with the partner's and reports the differences. With `repair` (on the
   * primary), what differs is resynced from here; resolves once it is.
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    if (options?.repair && this.#role !== 'primary') {
      throw TwinpageError.notPrimary('verify with repair resyncs from the primary: run it there');
    }
    const report = await this.#verifier.verify();
    if (options?.repair && report.differences.length) {
      this.#resync.mark(report);
      await this.#replica.save();
      await this.resync();
    }
    return report;
  }

  /**
   * Makes this node the primary. With a live partner that is secondary (it
   * was demoted), a switchover: both stay connected and in sync, no new
   * generation. Otherwise a failover: the partner is taken for failed, its
   * connection ends, writes go on degraded (a new generation is taken before
   * the first). A secondary being resynced refuses with INCONSISTENT unless
   * `force`.
   */
  promote(options: { force?: boolean } = {}): Promise<void> {
    return this.#promote(options, false);
  }

  /** `promote`; `leaseHeld`: the arbiter granted this node the lease just now (automatic failover), not asked again. */
  async #promote(options: { force?: boolean }, leaseHeld: boolean): Promise<void> {
    const r = this.#replica;
    if (this.#role === 'primary') {
      // Already primary (started so after a discard, say): a discard it was given is taken
      // back, as for any node made primary, and the next handshake keeps its data. (A split
      // brain refused because both sides were to discard says "promote the one to keep".)
      if (r.discardLocal) {
        r.discardLocal = false;
        await r.save();
        // A connection refused as a split brain runs its handshake again, with this node keeping its data.
        if (this.#splitBrain) this.#transport?.close(TwinpageError.closed('this node keeps its changes: the handshake runs again'));
      }
      return;
    }
    const consistent = () => {
      if (r.inconsistent && options?.force !== true) {
        throw TwinpageError.inconsistent(`this node is being resynced from its partner and does not hold all of its data yet: ` +
          `promoting it would serve stale pages (promote({ force: true }) to do it anyway)`);
      }
    };
    try {
      consistent();
    } catch (err) {
      if (leaseHeld) await this.#quorum?.release();
      throw err;
    }
    // A node being resynced, forced to primary, is never a switchover: its partner holds data
    // it lacks, and must now be resynced from here (a new generation, and a new handshake). As
    // a switchover both kept one generation, the partner dropped its plan, and nobody resynced
    // (seen by the partition campaign: verify differed). Read when decided (a handshake while
    // the arbiter answers may make this node inconsistent).
    const live = () => !r.inconsistent && this.#connected() && !!this.#peer && this.#peer.hello.role === 'secondary' && !this.#degraded;
    let switchover = live();
    if (this.#quorum) {
      // With an arbiter every change of primary goes through it, a switchover too: the lease
      // taken names this node in a new epoch. A switchover that did not left the record naming
      // the old primary in this node's epoch; asking for the lease later (its partner gone) and
      // refused with that record (the witness restarting, say), this node took it for a
      // takeover and stepped down, and the pair had no primary (seen by the quorum campaign).
      const got = leaseHeld ? { granted: true, reason: '' } : await this.#quorum.takeOver();
      if (!got.granted && options?.force !== true) {
        throw TwinpageError.noQuorum(`the arbiter refused this node the lease: ${got.reason} (promote({ force: true }) to take over anyway)`);
      }
      // While the arbiter answered, a partner may have connected and its handshake run (seen by
      // the quorum campaign: a node restarted as secondary, promoted as its link came up, took
      // the failover path on a link that had become a live one to a secondary, closed it and
      // took a new generation). Decided again on what holds now: promoted meanwhile, nothing
      // to do; made inconsistent by the handshake, refused; a live secondary partner, a
      // switchover (it needs no lease once the record names this node: released).
      if ((this.#role as Role) === 'primary') {
        // Promoted meanwhile (a promote() running beside this one): a lease asked for here
        // is not kept by a primary whose partner is connected (it needs none).
        if (got.granted && !leaseHeld && this.#connected() && !this.#degraded) await this.#quorum.release();
        return;
      }
      try {
        consistent();
      } catch (err) {
        if (got.granted) await this.#quorum.release();
        throw err;
      }
      switchover = live();
      if (switchover && got.granted) await this.#quorum.release();
    }
    this.#failover.stop();
    this.#quorum?.unfence();
    // A node made primary serves its data: a discard it was given is taken back.
    r.discardLocal = false;
    if (switchover) {
      // A switchover: the partner is alive and secondary; the stream turns round.
      r.primarySince = Date.now();
      await r.save();
      this.#role = 'primary';
      this.dispatch('role', { role: 'primary', previous: 'secondary' });
      // The link lost while this node saved (it was secondary then): the lease taken at once,
      // as any primary that loses its partner takes it.
      if (this.#degraded) this.#quorum?.hold();
      this.#hello({});
      this.#failover.startHeartbeat();
      // The handshake made this node the source while it was secondary: the partner waits for that resync.
      const plan = this.#sourcePlan;
      this.#sourcePlan = null;
      if (plan && plan.peer === this.#peer) this.#plan(plan.peer, plan.full);
      return;
    }
    // A failover. If the old primary lives, it meets this node's new
    // generation when it reconnects, and is refused (split brain) or
    // rejoins as secondary.
    const t = this.#transport;
    this.#transport = null;
    const taken = TwinpageError.closed('this node was promoted: the old primary is taken for failed');
    this.#peer?.abandon(taken);
    t?.close(taken);
    this.#wentDown(taken);
    this.#stream?.release();
    this.memory.releaseReservations();
    this.#degraded = true;
    // Forced while being resynced: what differs from the partner is more than either record
    // names (a full resync it was owed, say), so the next resync compares every checksum.
    if (r.inconsistent) r.outOfSync.forget();
    r.inconsistent = false;
    r.primarySince = Date.now();
    this.#role = 'primary';
    this.dispatch('role', { role: 'primary', previous: 'secondary' });
    // A node that never held data of a pair starts its own history; one that
    // did shares its current generation with the old primary: a new one
    // before the first write.
    if (r.generation === NO_GENERATION) r.generation = newGeneration();
    const rotation = this.#rotate();
    await (rotation ?? r.save());
  }

  /** Automatic failover: this secondary takes over only when the arbiter grants it the lease. */
  async #takeOver(): Promise<boolean> {
    if (this.#role !== 'secondary' || this.#closed || this.#replica.inconsistent || !this.#quorum) return false;
    // The primary may live, cut from this node only: it takes the lease as soon as it
    // finds this node gone (after the same timeout), and gets a head start of one more
    // timeout before this node asks. Without it, both asked at once and the arbiter gave
    // the lease to whichever came first: a live primary, acknowledging writes, was
    // fenced by a failover nobody needed (seen by quorum-rules (b)).
    const now = performance.now();
    if (this.#takeOverAt === 0) this.#takeOverAt = now + this.#o.timeoutMs;
    if (now < this.#takeOverAt) return false;
    const got = await this.#quorum.takeOver();
    if (!got.granted) {
      this.#report(TwinpageError.noQuorum(`automatic failover refused by the arbiter: ${got.reason}`));
      return false;
    }
    // The lease is this node's: promote() does not ask for it a second time.
    await this.#promote({}, true);
    return true;
  }

  /**
   * Makes this primary a secondary with both nodes alive: its callers'
   * changes are refused from now on, those under way finish and reach the
   * partner, and the partner can then be promoted with no write lost and no
   * split brain.
   */
  async demote(): Promise<void> {
    if (this.#role === 'secondary') return;
    this.#demoting = true;
    try {
      await this.memory.drainWrites();
      const stream = this.#current();
      if (stream && !this.#degraded) await stream.waitFor(stream.sent, AckLevel.DISK);
      this.#role = 'secondary';
    } finally {
      this.#demoting = false;
    }
    this.dispatch('role', { role: 'secondary', previous: 'primary' });
    // The lease given up; with the partner holding everything, a mark on it left at the
    // arbiter (its clearing failed as the resync ended) is cleared too: the partner's
    // promotion, which asks the arbiter, would otherwise be refused as outdated.
    const oos = this.#replica.outOfSync;
    const whole = this.#connected() && !this.#degraded && this.#peer !== null && this.#planning !== this.#peer && !this.#owesSynced &&
      oos.empty && oos.known && !oos.unacked && !this.#resync.running;
    await (whole ? this.#quorum?.settle() : this.#quorum?.release());
    this.#failover.stopHeartbeat();
    this.#failover.startWatchdog();
    this.#hello({});
  }

  /**
   * Gives up this node's changes at the next split brain: it then takes the
   * partner's data (the resync overwrites what it changed since they
   * parted). Kept durably until used, or until this node is promoted; a
   * running secondary reconnects.
   */
  async discardLocalChanges(): Promise<void> {
    this.#replica.discardLocal = true;
    await this.#replica.save();
    // A refused connection is tried again by whoever dialled it; end a live one so the handshake runs anew.
    if (this.#splitBrain) this.#transport?.close(TwinpageError.closed('this node discards its changes: the handshake runs again'));
  }

  sense(): MirrorState {
    const r = this.#replica;
    return {
      role: this.#role,
      health: this.#splitBrain ? 'split-brain' : this.#degraded || !this.#transport ? 'degraded' : 'ok',
      generation: r.generation!,
      history: [...r.history],
      bitmapGeneration: r.bitmapGeneration ?? NO_GENERATION,
      connected: this.#connected(),
      peerRole: this.#peer?.hello.role ?? null,
      inFlight: this.#stream?.inFlight ?? 0,
      lagPages: r.outOfSync.size,
      lastApplied: this.#applier?.applied ?? 0,
      intents: r.intents.size,
      inconsistent: r.inconsistent,
      refused: this.#refused,
      epoch: r.epoch,
      quorum: this.#quorum?.state() ?? null,
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
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopDamage();
    this.#failover.stop();
    this.#quorum?.stop();
    const t = this.#transport;
    this.#transport = null;
    t?.close();
    this.#lost();
    await this.#rotation?.catch(() => {});
    await this.#readingBack;
    this.#attachment.detach();
    // Queued on the memory's own chain now, so it runs before the memory closes.
    await this.#replica.close().catch(() => {});
  }

  // --- primary: changes out -------------------------------------------------------------------

  /** The memory's changes come in here (resyncs go straight to #route). */
  #send(change: Change, policy: LinkPolicy, local?: Promise<void>): Promise<void> {
    if (change.type !== 'release') return this.#route(change, policy);
    const pages = change.pages.map((p) => p.page);
    // This node's journal commit of a change sent in parallel with it failed:
    // the change is undone here, and the partner may hold it. Its pages
    // differ now: they are resynced (the partner takes this node's contents back).
    if (local) local.catch(() => this.#localFailed(pages));
    // The pages leave their write intents once this node's commit settled and
    // the partner acknowledged them, or they are recorded as out of sync.
    let settled!: () => void;
    const recorded = new Promise<void>((resolve) => { settled = resolve; });
    this.#retire(this.#replica.intents, pages, local, recorded);
    return this.#route(change, policy, settled);
  }

  /** The pages leave their write intents once both have settled. (A method: V8 would compile a closure made per change anew.) */
  async #retire(intents: ReplicaRecord['intents'], pages: number[], local: Promise<void> | undefined, recorded: Promise<void>): Promise<void> {
    if (local) {
      try { await local; } catch { /* its pages are recorded out of sync (#localFailed) */ }
    }
    await recorded;
    intents.done(pages);
  }

  #localFailed(pages: number[]): void {
    if (pages.length === 0 || this.#closed) return;
    this.#replica.outOfSync.addAll(pages);
    this.#replica.saveSoon();
    if (this.#role === 'primary' && this.#connected() && !this.#degraded) this.resync().catch((err) => this.#report(err));
  }

  /** Before an allocation here: the partner reserves the same run (SPACE_REQUEST), or refuses. */
  async #reserve(base: number, pages: number): Promise<boolean> {
    const stream = this.#current();
    if (!stream || this.#degraded) return true; // degraded: allocated alone, the block lists are compared later
    const reply = await stream.request({ type: MessageType.SPACE_REQUEST, reservePages: pages, base });
    if (reply.type === MessageType.SPACE_REPLY) return reply.granted;
    // No answer (the partner went away, or timed out): alone, as degraded.
    return true;
  }

  /**
   * A resync's piece, routed as any change but needing no quorum: its pages are
   * this node's already, so with the link gone they stay out of sync here (the
   * next connection's resync sends them) and the resync ends without waiting. Before,
   * it waited for the arbiter, as a write alone does, and with the arbiter out
   * of reach the next connection's resync waited behind it (seen by review).
   */
  #routeResync(change: Change, policy: LinkPolicy, posted?: () => void): Promise<void> {
    let settled = false;
    const routed = this.#route(change, policy, undefined, posted, false).finally(() => { settled = true; });
    // Not sent yet when the link went (a storage copy still writing its exchange, say): its
    // pages go back on the record, never off both it and the frames in flight (sending it
    // later changes nothing).
    const lost = this.#connectionLost.then(() => { if (!settled) this.#lagging(change); });
    return Promise.race([routed, lost]);
  }

  /** Records `change` as lagging: its pages, or its block, out of sync. */
  #lagging(change: Change): void {
    const oos = this.#replica.outOfSync;
    if (change.type === 'release') oos.addAll(change.pages.map((p) => p.page));
    else oos.addBlock(change.type === 'allocate' ? change.block.id : change.blockId);
  }

  /**
   * Sends one change by the copy method its policy asks for, or records it
   * as lagging without a partner. `settled` is called once the partner
   * acknowledged it at disk level or its pages are recorded as out of sync;
   * `posted` once its frames have their places in the stream (or it is recorded).
   */
  #route(change: Change, policy: LinkPolicy, settled?: () => void, posted?: () => void, alone = true): Promise<void> {
    const pages = change.type === 'release' ? change.pages.map((p) => p.page) : [];
    const blockId = change.type === 'allocate' ? change.block.id : change.type === 'free' ? change.blockId : undefined;
    const stream = this.#stream;
    const t = this.#transport;
    if (!t || t.closed || this.#degraded || !stream || stream.transport !== t) {
      this.#lagging(change);
      settled?.();
      posted?.();
      return alone ? this.#acknowledgeAlone() : Promise.resolve();
    }
    const method = pages.length ? this.#copy.choose(policy.copyMethod) : 'message';
    // The storage method sends after this returns (once the exchange holds the pages): from copies of them.
    const own = method === 'storage' && change.type === 'release' ? { ...change, pages: change.pages.map((p) => ({ ...p, data: p.data.slice() })) } : change;
    const placed = this.#copy.place(changeMessages(own), method);
    if (placed.method !== 'storage') return this.#sendBatch(stream, placed.messages, pages, blockId, policy, placed.ring, settled, posted);
    // Storage: the pages are written to the exchange before the frames that point at them go.
    return Promise.all(placed.puts).then(
      () => (this.#transport === t ? this.#sendBatch(stream, placed.messages, pages, blockId, policy, placed.ring, settled, posted) : this.#route(own, policy, settled, posted, alone)),
      (err) => { this.#fail(err); return this.#route(own, policy, settled, posted, alone); },
    );
  }

  /** Sends one change's frames in order; resolves at the durability asked for. */
  #sendBatch(stream: Stream, messages: Request[], pages: number[], blockId: string | undefined, policy: LinkPolicy, ring: SlotRing | null, settled?: () => void, posted?: () => void): Promise<void> {
    for (const m of messages) if (m.type === MessageType.WRITE_PAGE) this.#copied[m.copy]++;
    const { last, sent } = stream.sequence(messages);
    posted?.();
    ring?.mark(last);
    this.#replica.outOfSync.sent(last, pages, blockId, settled);
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

  /** The partner holds everything now: the bitmap generation retires, and the partner is told (it stops being inconsistent). */
  #synced(): void {
    // Not before the handshake decided, nor while the resync is planned: until then,
    // nothing here says what the partner lacks (the beat asks again).
    if (this.#peer === null || this.#planning === this.#peer) return;
    this.#owesSynced = false;
    const last = this.#resync.last;
    this.dispatch('resync-done', { pages: last?.pages ?? 0, ms: last?.ms ?? 0 });
    this.#quorum?.settle().catch((err) => this.#report(err));
    const g = this.#generations();
    if (g.bitmap !== NO_GENERATION) {
      this.#setGenerations(settled(g));
      this.#replica.save().catch((err) => this.#report(err));
    }
    this.#hello({ synced: true });
  }

  // --- frames in ------------------------------------------------------------------------------

  #receive(bytes: Uint8Array): void {
    this.#failover.heard();
    let frame: Frame;
    try {
      // Adopted: a transport's handler owns the frames it is given, so a page's bytes are not copied here.
      frame = decodeFrame(bytes, this.#hash, { maxBody: 8 << 20, pageSize: this.memory.pageSize }, true);
    } catch (err) {
      this.#fail(err);
      return;
    }
    // Fencing: a frame of an older epoch comes from a node that does not
    // know a newer primary took over; a newer one makes this node learn it.
    // A secondary's frames are the exception: the epoch rose with this
    // node's own lease (a primary's, taken as the link went and granted
    // after it came back; or a switchover's, taken before this node's first
    // frame as primary), and the secondary learns it from this node's next
    // frame. It changes nothing here; only a primary's frames are refused.
    if (frame.epoch < this.#replica.epoch && !this.#behindSecondary(frame.message as Message)) {
      this.#fail(TwinpageError.fenced(`the partner sent a frame of epoch ${frame.epoch}; this node knows epoch ${this.#replica.epoch}: a newer primary took over through the arbiter`));
      return;
    }
    if (frame.epoch > this.#replica.epoch) {
      this.#adoptEpoch(frame.epoch);
      if (this.#role === 'primary') {
        this.#fenced(`the partner knows epoch ${frame.epoch}, newer than this primary's`);
        return;
      }
    }
    const m = frame.message as Message;
    this.#handlers[m.type]?.(m, frame);
  }

  /** Whether `m`, of an older epoch, comes from a secondary (behind, not stale). */
  #behindSecondary(m: Message): boolean {
    const role = m.type === MessageType.HELLO ? m.role : this.#peer?.hello.role;
    return role === 'secondary';
  }

  /** A newer epoch seen (the arbiter, the partner): kept durably. */
  #adoptEpoch(epoch: number): void {
    if (epoch <= this.#replica.epoch) return;
    this.#replica.epoch = epoch;
    this.#quorum?.adopt(epoch);
    this.#replica.save().catch((err) => this.#report(err));
  }

  /**
   * A newer primary took over through the arbiter while this one was cut
   * off: it stops being primary (its writes the partner lacks were never
   * acknowledged: it had no quorum), and rejoins as secondary.
   */
  #fenced(why: string): void {
    if (this.#role !== 'primary') return;
    const err = TwinpageError.fenced(`this node was primary and is fenced: ${why}; it goes on as secondary`);
    this.#report(err);
    this.#role = 'secondary';
    this.dispatch('role', { role: 'secondary', previous: 'primary' });
    // Writes waiting for quorum were never acknowledged: they fail (they stay
    // out of sync here, and the new primary's resync overwrites them).
    this.#quorum?.fence(err);
    this.#failover.stopHeartbeat();
    this.#failover.startWatchdog();
    const t = this.#transport;
    if (t) {
      // The connection was made as primary: a new one (the dialer redials) makes the handshake anew.
      this.#transport = null;
      t.close(TwinpageError.fenced(why));
      this.#lost();
    }
  }

  /** What each frame type does here; types not listed change nothing. */
  #dispatchTable(): Partial<Record<MessageType, Handler>> {
    const reply: Handler = (m) => this.#stream?.reply((m as { replyTo: number }).replyTo, m);
    const stream: Handler = (m, f) => this.#takeStream(m as Request, f.sequence);
    return {
      [MessageType.HELLO]: (m) => this.#onHello(m as MessageOf<MessageType.HELLO>),
      [MessageType.OUT_OF_SYNC]: (m) => this.#onPeerRuns(m as MessageOf<MessageType.OUT_OF_SYNC>),
      [MessageType.BLOCK_IDS]: (m) => {
        const ids = m as MessageOf<MessageType.BLOCK_IDS>;
        if (ids.replyTo !== 0) this.#stream?.reply(ids.replyTo, m); else this.#onPeerIds(ids);
      },
      [MessageType.BLOCK_LIST]: (_m, f) => {
        this.#applier?.saw(f.sequence);
        for (const part of blockIdFrames(this.memory.blocks().map((b) => b.id), f.sequence)) this.#post(part);
      },
      [MessageType.ACK]: (m) => { const a = m as MessageOf<MessageType.ACK>; this.#onAck(a.applied, a.level); },
      [MessageType.SENSE_REQUEST]: (_m, f) => this.#onSense(f.sequence),
      [MessageType.SPACE_REQUEST]: (m, f) => this.#onSpace(f.sequence, m as MessageOf<MessageType.SPACE_REQUEST>),
      [MessageType.SPACE_REPLY]: reply,
      [MessageType.READ_HEADER]: (m, f) => { this.#applier?.saw(f.sequence); this.#verifier.answerHeader(f.sequence, m as MessageOf<MessageType.READ_HEADER>); },
      [MessageType.READ_HEADER_REPLY]: reply,
      [MessageType.ALLOCATE_READ]: (m, f) => { this.#applier?.saw(f.sequence); this.#verifier.answerRead(f.sequence, m as MessageOf<MessageType.ALLOCATE_READ>).catch((err) => this.#report(err)); },
      [MessageType.ALLOCATE_READ_REPLY]: reply,
      [MessageType.ERROR]: (m) => {
        const e = m as MessageOf<MessageType.ERROR>;
        if (e.replyTo !== 0 && this.#stream?.awaits(e.replyTo)) { this.#stream.reply(e.replyTo, m); return; }
        // The partner ends the connection with this error (a refused handshake says why here too).
        if (e.code === 'SPLIT_BRAIN' || e.code === 'REFUSED') {
          if (e.code === 'SPLIT_BRAIN' && !this.#splitBrain) this.dispatch('split-brain', { message: e.message });
          this.#refused = e.message; this.#splitBrain = e.code === 'SPLIT_BRAIN';
        }
        this.#transport?.close(TwinpageError.fromCode(e.code, `the partner reported ${e.code}: ${e.message}`));
      },
      [MessageType.ALLOCATE_MEMORY]: stream,
      [MessageType.RELEASE_MEMORY]: stream,
      [MessageType.WRITE_PAGE]: stream,
      [MessageType.RELEASE_POINTER]: stream,
    };
  }

  #onHello(m: Hello): void {
    if (m.pageSize !== this.memory.pageSize) {
      this.#fail(TwinpageError.invalidArgument(`the partner uses ${m.pageSize}-byte pages, this node ${this.memory.pageSize}`));
      return;
    }
    if (m.protocol !== PROTOCOL) {
      this.#fail(TwinpageError.refused(`the partner speaks pair protocol ${m.protocol}, this node ${PROTOCOL}: run the same twinpage version on both`));
      return;
    }
    const r = this.#replica;
    if (this.#peer) {
      // A later HELLO on a connection: the partner's role or flags changed.
      if (this.#peer.nodeId !== m.nodeId) { this.#fail(TwinpageError.badFrame('the partner changed its node id mid-connection')); return; }
      this.#peer.hello = m;
      if (m.role === 'primary' && this.#role === 'primary') {
        this.#fail(TwinpageError.splitBrain('both nodes act as primary: refusing the partner\'s promotion'));
        return;
      }
      if (m.flags.synced && this.#role === 'secondary' && m.current === r.generation) {
        // The partner's resync is done: this node holds what it holds.
        r.inconsistent = false;
        r.outOfSync.clear();
        r.save().catch((err) => this.#report(err));
      }
      if (m.role === 'primary' && this.#role === 'secondary') {
        // The partner was promoted on this connection: the resync is its to plan.
        this.#sourcePlan = null;
        this.#failover.startWatchdog();
      }
      return;
    }
    let complete!: (rec: PeerRecord) => void;
    let abandon!: (err: Error) => void;
    const record = new Promise<PeerRecord>((resolve, reject) => { complete = resolve; abandon = reject; });
    record.catch(() => {}); // a connection that ended before the record: nobody may be waiting
    this.#peer = { nodeId: m.nodeId, hello: m, runs: [], runsDone: false, ids: [], idsDone: false, record, complete, abandon };
    this.#copy.open(this.memory.nodeId, m.nodeId);
    const peer: Side = {
      role: m.role, current: m.current, bitmap: m.bitmap, history: m.history, inconsistent: m.flags.inconsistent,
      changes: m.changes, primarySince: m.primarySince, splitBrain: m.splitBrain, discardLocal: m.flags.discardLocal,
    };
    this.#act(decide(this.#side(), peer), m);
  }

  /** Does what the handshake decided. */
  #act(d: Decision, m: Hello): void {
    const r = this.#replica;
    const peer = this.#peer!;
    if (d.kind !== 'refuse') {
      this.#announced = true;
      this.dispatch('connected', { peer: m.nodeId, decision: d.kind });
    }
    switch (d.kind) {
      case 'refuse':
        this.#refuse(d, m);
        return;
      case 'target': {
        // This node takes the partner's generation; until the partner says
        // its resync is done it is inconsistent (and may not be promoted).
        // Nothing of the partner's stream is applied before that is durable.
        this.#setGenerations(taken(this.#generations(), { current: m.current, bitmap: m.bitmap, history: m.history }));
        r.inconsistent = true;
        r.shared = true;
        r.partner = m.nodeId;
        r.discardLocal = false;
        r.save().then(() => this.#openApplier(), (err) => this.#fail(err));
        return;
      }
      case 'source':
      case 'in-sync': {
        r.shared = true;
        r.partner = m.nodeId;
        if (r.discardLocal) r.discardLocal = false;
        this.#openApplier();
        // Damage found before the partner was here: a primary reads it back now (read repair).
        if (this.#role === 'primary') this.#damaged(this.memory.damage());
        // A partner interrupted mid-resync, or one without a record, is compared page by page.
        const full = (d.kind === 'source' && d.full) || m.flags.inconsistent || !m.flags.outOfSyncKnown;
        // The partner is (or stays) inconsistent until a resync from here says it is done.
        this.#owesSynced = d.kind === 'source' || m.flags.inconsistent;
        if (this.#role !== 'primary') {
          // Only a primary resyncs. With none at the handshake, whichever is promoted on this
          // connection plans then (promote()); with one, it planned.
          if (m.role === 'secondary') this.#sourcePlan = { peer, full };
          r.save().catch((err) => this.#report(err));
          return;
        }
        this.#plan(peer, full);
        return;
      }
    }
  }

  /** Plans the resync of `peer` from here once its record (streamed after its HELLO) is here. */
  #plan(peer: Peer, full: boolean): void {
    this.#planning = peer;
    this.#planned = peer.record
      .then((rec) => (this.#peer === peer ? this.#resync.plan(rec, full) : undefined))
      .then(
        () => {
          if (this.#planning === peer) this.#planning = null;
          if (this.#peer === peer) return this.#resync.run();
        },
        (err) => {
          if (this.#planning === peer) this.#planning = null;
          // A plan that failed on a link still up did not learn what the partner lacks
          // (whatever this node's role now: a demotion meanwhile, a promotion later):
          // the link goes, and the next connection plans again (the partner stays inconsistent).
          // One given up because its connection ended is no news.
          if (this.#peer === peer && this.#connected()) this.#fail(err);
        },
      )
      .catch((err) => this.#report(err));
  }

  /** Refuses the handshake: nothing merged, both keep their data; the partner is told why. */
  #refuse(d: Extract<Decision, { kind: 'refuse' }>, m: Hello): void {
    const r = this.#replica;
    const who = `this node ${this.memory.nodeId} (${this.#role}, generation ${r.generation}), partner ${m.nodeId} (${m.role}, generation ${m.current})`;
    const what = d.splitBrain
      ? `${d.reason} (${who}). Nothing was merged and both keep their data. Choose the node whose changes to discard ` +
        `and run 'twinpage discard --dir DIR' on its data folder (running or stopped; or {"cmd":"discard"} on its ` +
        `'twinpage serve' standard input; in a program, mirror.discardLocalChanges() or splitBrain: 'discard-local'); ` +
        `with it secondary and the other primary, the other resyncs it when they meet again.`
      : `${d.reason} (${who}). Nothing was changed on either node.`;
    this.#refused = what;
    this.#splitBrain = d.splitBrain;
    if (d.splitBrain) this.dispatch('split-brain', { message: what });
    this.#fail(d.splitBrain ? TwinpageError.splitBrain(what) : TwinpageError.refused(what), true);
  }

  #onPeerRuns(m: MessageOf<MessageType.OUT_OF_SYNC>): void {
    const peer = this.#peer;
    if (!peer) return;
    if (peer.runsDone) {
      // After the handshake: pages the partner reports it lacks (damage it
      // found); the resync source sends them.
      if (this.#role !== 'primary') return;
      this.#replica.outOfSync.addRuns(m.runs, this.memory.blocks());
      this.#replica.save().then(() => this.resync()).catch((err) => this.#report(err));
      return;
    }
    peer.runs.push(...m.runs);
    if (m.last) { peer.runsDone = true; this.#peerComplete(peer); }
  }

  /**
   * Pages this node cannot trust (their checksum lost to damage, or their
   * bytes bad on every local copy): a secondary records them as out of sync
   * and tells its primary, which resyncs them; a primary reads each back,
   * which asks the partner for it (read repair).
   */
  #damaged(found: PageDamage[]): void {
    if (found.length === 0 || this.#closed) return;
    const pages = found.map((d) => d.page).sort((a, b) => a - b);
    if (this.#role === 'secondary') {
      this.#replica.outOfSync.addAll(pages);
      this.#replica.saveSoon();
      const runs: Array<[number, number]> = [];
      for (const p of pages) {
        const last = runs[runs.length - 1];
        if (last && last[0] + last[1] === p) last[1]++; else if (!last || last[0] + last[1] < p) runs.push([p, 1]);
      }
      this.#post({ type: MessageType.OUT_OF_SYNC, last: true, runs });
      return;
    }
    // Without a partner there is nothing to read back from: the handshake tries again.
    if (!this.#connected()) return;
    const ps = this.memory.pageSize;
    const scratch = new Uint8Array(ps);
    const previous = this.#readingBack;
    const task = (async () => {
      await previous;
      for (const d of found) {
        if (this.#closed) return;
        const block = this.memory.blocks().find((b) => b.id === d.blockId);
        if (!block) continue;
        const length = Math.min(ps, block.length - d.index * ps);
        await this.memory.readInto(d.blockId, d.index * ps, length === ps ? scratch : scratch.subarray(0, length)).catch(() => {});
      }
    })().catch((err) => this.#report(err));
    this.#readingBack = task;
  }

  #onPeerIds(m: MessageOf<MessageType.BLOCK_IDS>): void {
    const peer = this.#peer;
    if (!peer || peer.idsDone) return;
    peer.ids.push(...m.ids);
    if (m.last) { peer.idsDone = true; this.#peerComplete(peer); }
  }

  #peerComplete(peer: Peer): void {
    if (!peer.runsDone || !peer.idsDone) return;
    peer.complete({ runs: peer.hello.flags.outOfSyncKnown ? peer.runs : null, ids: peer.ids });
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

  /** The partner asks this node (its secondary) to reserve a run for an allocation, and how much room it has. */
  #onSpace(seq: number, m: MessageOf<MessageType.SPACE_REQUEST>): void {
    this.#applier?.saw(seq);
    const granted = this.#role === 'secondary' && (m.reservePages === 0 || this.memory.reserveRun(m.base, m.reservePages));
    this.memory.space().then((s) => {
      this.#post({
        type: MessageType.SPACE_REPLY, replyTo: seq, granted,
        addressFree: s.addressSpace.free, cacheFree: s.cache.free,
        storageFree: s.storage ? Math.min(Number.MAX_SAFE_INTEGER, s.storage.free) : 0,
      });
    }, (err) => {
      this.#post({ type: MessageType.ERROR, replyTo: seq, code: TwinpageError.from(err).code, message: String((err as Error).message) });
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
      this.#fail(TwinpageError.splitBrain('both nodes act as primary: refusing the partner\'s changes'));
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

  /** Frames are encoded here one after the other (each is sent, and so copied, before the next). */
  readonly #arena = new FrameArena();
  /** The generation id as the u64 frames carry, parsed once per generation. */
  #generation = { text: '', value: 0n };

  #encode(m: Message, seq: number): Uint8Array {
    const text = this.#replica.generation!;
    if (this.#generation.text !== text) this.#generation = { text, value: BigInt(`0x${text}`) };
    return encodeFrame(m, { sequence: seq, generation: this.#generation.value, epoch: this.#replica.epoch }, this.#hash, this.#arena);
  }

  /** Sends a frame outside the stream on the current connection, if any. */
  #post(m: Message): void {
    this.#current()?.post(m);
  }
}
