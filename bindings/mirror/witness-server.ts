/**
 * The witness (Node): the third vote of a pair, holding no pages, only the
 * pair's record (durably, `witness-record.ts`) and the lease (in memory,
 * timed with this process's monotonic clock). `twinpage witness` runs one;
 * nodes reach it with `WitnessArbiter` (witness.ts) over the TCP transport,
 * authenticated and sealed like the pair's own link, speaking the protocol of
 * `witness-protocol.ts`.
 *
 * The rules are the arbiter's (arbiter.ts): an acquire is decided by
 * `decideAcquire`; outdate and clear take effect only for the node holding a
 * live lease of the epoch named; release ends that node's lease at once.
 * Requests from every connection are taken one at a time, in arrival order,
 * and a change of the record is durable before its reply is sent.
 *
 * A restarted witness does not know when the leases it granted before end
 * (its clock started again), so for one lease length (the longest it may
 * have granted) it grants no lease at all. A record write that fails stops
 * the witness (`failed`): what reached the disk is unknown, and a restart
 * reads what did.
 */
import { TwinpageError } from '../errors.js';
import { decideAcquire, type PairRecord } from './arbiter.js';
import { listenTcp, type TcpListener } from './transports/tcp.js';
import type { Transport } from './transports/transport.js';
import {
  ERROR_OP, MAX_WITNESS_FRAME, Op, WITNESS_NODE_ID, decodeRequest, encodeReply, requestIdOf,
  type WitnessReply, type WitnessRequest,
} from './witness-protocol.js';
import { WitnessRecordFile, type KeptRecord } from './witness-record.js';

/** The lease's length when none is given: see docs/quorum.md. */
export const DEFAULT_WITNESS_TTL_MS = 10_000;
/** Shortest and longest lease a witness grants. */
export const MIN_WITNESS_TTL_MS = 100;
export const MAX_WITNESS_TTL_MS = 3_600_000;
/** Requests one connection may have waiting for their turn; more are refused with BUSY. */
const MAX_IN_FLIGHT = 16;

/** What a witness reports as it runs (the CLI prints each as a JSON line). */
export type WitnessEvent =
  | { event: 'listening'; host: string; port: number; ttlMs: number; record: PairRecord; created: boolean; noLeaseForMs: number }
  | { event: 'record-slot-damaged'; slot: number; path: string }
  | { event: 'connected'; peer: string }
  | { event: 'disconnected'; peer: string; reason: string | null }
  | { event: 'auth-failed'; reason: string }
  | { event: 'connection-refused'; peer: string; reason: string }
  | { event: 'bad-frame'; peer: string; reason: string }
  | { event: 'bad-request'; peer: string; code: string; reason: string }
  | { event: 'record'; op: 'acquire' | 'outdate' | 'clear'; by: string; record: PairRecord }
  | { event: 'record-write-failed'; reason: string };

/** Options of {@link startWitness}. */
export interface WitnessOptions {
  /** The folder of the record (created when missing). Required. */
  dir: string;
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
  /** The secret the pair's nodes share with the witness. Required, non-empty. */
  secret: string | Uint8Array;
  /** The lease's length in ms. @default 10000 */
  ttlMs?: number;
  /** Most connections at once; more are closed at once. @default 64 */
  maxConnections?: number;
  /** Called with every event. @default none */
  onEvent?: (event: WitnessEvent) => void;
}

/** A running witness. */
export interface Witness {
  /** The port it listens on. */
  readonly port: number;
  /** The lease's length, in ms. */
  readonly ttlMs: number;
  /** The record as it is now. */
  record(): PairRecord;
  /** Settles with the error that stopped the witness (a record write that failed); never when closed normally. */
  readonly failed: Promise<Error>;
  /** Stops listening, closes every connection and the record. */
  close(): Promise<void>;
}

/** Starts a witness: opens (or creates) its record and listens. */
export async function startWitness(options: WitnessOptions): Promise<Witness> {
  if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
  const { dir, host = '127.0.0.1', port = 0, secret } = options;
  if (typeof dir !== 'string' || dir === '') throw TwinpageError.invalidArgument('dir must be a non-empty string');
  const ttlMs = options.ttlMs ?? DEFAULT_WITNESS_TTL_MS;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < MIN_WITNESS_TTL_MS || ttlMs > MAX_WITNESS_TTL_MS) {
    throw TwinpageError.invalidArgument(`ttlMs must be an integer from ${MIN_WITNESS_TTL_MS} to ${MAX_WITNESS_TTL_MS}, got ${String(ttlMs)}`);
  }
  const maxConnections = options.maxConnections ?? 64;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) throw TwinpageError.invalidArgument(`maxConnections must be an integer >= 1, got ${String(maxConnections)}`);
  const onEvent = options.onEvent ?? (() => {});
  if (typeof onEvent !== 'function') throw TwinpageError.invalidArgument('onEvent must be a function');

  const file = await WitnessRecordFile.open(dir, { record: { epoch: 0, primary: null, outdated: null, generation: '' }, ttlMs });
  try {
    const keeper = new RecordKeeper(file, ttlMs, onEvent);
    await keeper.start();
    const connections = new Set<Transport>();
    /**
     * Each node's newest connection: it replaces the node's older ones, whose requests are
     * no longer taken. A node reconnects after a call timed out, and that call may still
     * arrive on the old connection: a late CLEAR taken after the node marked its partner
     * again on the new one would wipe that mark (seen by review). A node's calls are made
     * one at a time, so only its newest connection carries what it means now.
     */
    const newest = new Map<string, Transport>();
    let closing = false;
    let listener: TcpListener;
    try {
      listener = await listenTcp({
        host, port, secret, nodeId: WITNESS_NODE_ID, maxFrame: MAX_WITNESS_FRAME, highWaterMark: 64 << 10,
        onConnectionError: (err) => onEvent({ event: 'auth-failed', reason: err.message }),
      }, (t) => {
        const peer = t.peerId ?? '?';
        if (closing) { t.close(); return; }
        if (connections.size >= maxConnections) {
          onEvent({ event: 'connection-refused', peer, reason: `${maxConnections} connections already` });
          t.close(TwinpageError.busy('the witness has too many connections'));
          return;
        }
        connections.add(t);
        onEvent({ event: 'connected', peer });
        const older = newest.get(peer);
        newest.set(peer, t);
        t.onClose((err) => {
          connections.delete(t);
          if (newest.get(peer) === t) newest.delete(peer);
          onEvent({ event: 'disconnected', peer, reason: err?.message ?? null });
        });
        older?.close(TwinpageError.closed(`node ${peer} connected again: this older connection is replaced`));
        serveConnection(t, peer, keeper, onEvent, () => newest.get(peer) === t);
      });
    } catch (err) {
      await file.close();
      throw err;
    }
    if (file.damagedSlot !== null) onEvent({ event: 'record-slot-damaged', slot: file.damagedSlot, path: file.path });
    onEvent({ event: 'listening', host, port: listener.port, ttlMs, record: keeper.record(), created: file.created, noLeaseForMs: keeper.noLeaseForMs() });
    let closed: Promise<void> | null = null;
    return {
      port: listener.port,
      ttlMs,
      record: () => keeper.record(),
      failed: keeper.failed,
      close() {
        closed ??= (async () => {
          closing = true;
          await listener.close();
          await keeper.idle();
          await file.close();
        })();
        return closed;
      },
    };
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** One connection's frames: each request decoded, queued with the others, answered. */
function serveConnection(t: Transport, peer: string, keeper: RecordKeeper, onEvent: (e: WitnessEvent) => void, current: () => boolean): void {
  let inFlight = 0;
  const reply = (r: WitnessReply) => { if (!t.closed) t.send(encodeReply(r)).catch(() => {}); };
  const refuse = (id: number, err: TwinpageError) => {
    onEvent({ event: 'bad-request', peer, code: err.code, reason: err.message });
    reply({ op: ERROR_OP, id, code: err.code, message: err.message });
  };
  t.onFrame((frame) => {
    let req: WitnessRequest;
    try {
      req = decodeRequest(frame);
    } catch (err) {
      const id = requestIdOf(err);
      if (id === undefined) {
        // Not a frame of this protocol: nothing in it can be trusted, not even its id.
        onEvent({ event: 'bad-frame', peer, reason: (err as Error).message });
        t.close(TwinpageError.from(err));
      } else {
        refuse(id, TwinpageError.from(err));
      }
      return;
    }
    if (req.op !== Op.READ && req.node !== peer) {
      refuse(req.id, TwinpageError.refused(`this connection is node ${JSON.stringify(peer)}'s: it cannot act for ${JSON.stringify(req.node)}`));
      return;
    }
    if (req.op !== Op.READ && !current()) {
      refuse(req.id, TwinpageError.closed(`node ${JSON.stringify(peer)} connected again: a request on its older connection is not taken`));
      return;
    }
    if (inFlight >= MAX_IN_FLIGHT) {
      refuse(req.id, TwinpageError.busy(`more than ${MAX_IN_FLIGHT} requests waiting on this connection`));
      return;
    }
    inFlight++;
    void keeper.handle(req).then(reply, (err: unknown) => {
      const e = TwinpageError.from(err);
      reply({ op: ERROR_OP, id: req.id, code: e.code, message: e.message });
    }).finally(() => { inFlight--; });
  });
}

/** The record and the lease, changed one request at a time, durably. */
class RecordKeeper {
  readonly #file: WitnessRecordFile;
  readonly #ttlMs: number;
  readonly #onEvent: (e: WitnessEvent) => void;
  #state: { record: PairRecord; leaseUntil: number };
  /** Before this (monotonic ms) no lease is granted: leases granted before a restart may be live. */
  #noLeaseUntil = 0;
  /** The longest lease granted before this process started (kept in the record while it may be live). */
  #earlierTtlMs: number;
  #queue: Promise<unknown> = Promise.resolve();
  #broken: Error | null = null;
  #fail!: (err: Error) => void;
  readonly failed: Promise<Error>;

  constructor(file: WitnessRecordFile, ttlMs: number, onEvent: (e: WitnessEvent) => void) {
    this.#file = file;
    this.#ttlMs = ttlMs;
    this.#onEvent = onEvent;
    this.#state = { record: file.kept.record, leaseUntil: 0 };
    this.#earlierTtlMs = file.created ? 0 : file.kept.ttlMs;
    this.failed = new Promise((resolve) => { this.#fail = resolve; });
  }

  /** Starts the pause after a restart, and records this process's lease length when it is the longer. */
  async start(): Promise<void> {
    if (this.#file.created || this.#state.record.primary === null) return; // no lease was ever granted
    this.#noLeaseUntil = performance.now() + Math.max(this.#earlierTtlMs, this.#ttlMs);
    // Renewals are not written: the record must say how long a lease of this process may last before one is granted.
    if (this.#file.kept.ttlMs < this.#ttlMs) await this.#file.write({ record: this.#state.record, ttlMs: this.#ttlMs });
  }

  record(): PairRecord { return { ...this.#state.record }; }

  noLeaseForMs(): number { return Math.max(0, Math.ceil(this.#noLeaseUntil - performance.now())); }

  /** Resolves once every request taken so far is answered. */
  async idle(): Promise<void> { await this.#queue.catch(() => {}); }

  /** Decides one request in its turn; a change is durable before the reply. */
  handle(req: WitnessRequest): Promise<WitnessReply> {
    const run = this.#queue.then(() => this.#decide(req));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #decide(req: WitnessRequest): Promise<WitnessReply> {
    if (this.#broken !== null) throw TwinpageError.ioError(`the witness stopped after a failed record write: ${this.#broken.message}`);
    const now = performance.now();
    switch (req.op) {
      case Op.READ:
        return { op: Op.READ, id: req.id, ttlMs: this.#ttlMs, record: this.record() };
      case Op.ACQUIRE: {
        if (now < this.#noLeaseUntil) {
          return {
            op: Op.ACQUIRE, id: req.id, granted: false, ttlMs: this.#ttlMs, record: this.record(),
            reason: `the witness restarted: it grants no lease for ${Math.ceil(this.#noLeaseUntil - now)} ms more (one it granted before may still be held)`,
          };
        }
        const { state, result } = decideAcquire(this.#state, req.node, req.generation, now, this.#ttlMs);
        if (state.record !== this.#state.record) await this.#write(state.record, 'acquire', req.node);
        this.#state = state;
        return result.granted
          ? { op: Op.ACQUIRE, id: req.id, granted: true, ttlMs: result.ttlMs, record: { ...result.record }, reason: '' }
          : { op: Op.ACQUIRE, id: req.id, granted: false, ttlMs: this.#ttlMs, record: { ...result.record }, reason: result.reason };
      }
      case Op.OUTDATE: case Op.CLEAR: {
        if (!this.#holds(req.node, req.epoch, now)) return { op: req.op, id: req.id, done: false };
        const outdated = req.op === Op.OUTDATE ? req.partner : null;
        const record = this.#state.record;
        if (record.outdated !== outdated || record.generation !== req.generation) {
          const next: PairRecord = { ...record, outdated, generation: req.generation };
          await this.#write(next, req.op === Op.OUTDATE ? 'outdate' : 'clear', req.node);
          this.#state = { ...this.#state, record: next };
        }
        return { op: req.op, id: req.id, done: true };
      }
      case Op.RELEASE: {
        const { record } = this.#state;
        if (record.primary === req.node && record.epoch === req.epoch) this.#state = { ...this.#state, leaseUntil: 0 };
        return { op: Op.RELEASE, id: req.id };
      }
    }
  }

  #holds(node: string, epoch: number, now: number): boolean {
    const { record, leaseUntil } = this.#state;
    return record.primary === node && record.epoch === epoch && now < leaseUntil;
  }

  /** Writes `record` durably; on failure the witness stops answering and `failed` settles. */
  async #write(record: PairRecord, op: 'acquire' | 'outdate' | 'clear', by: string): Promise<void> {
    // While leases of before the restart may be live, the record keeps their length.
    const ttlMs = performance.now() < this.#noLeaseUntil ? Math.max(this.#earlierTtlMs, this.#ttlMs) : this.#ttlMs;
    try {
      await this.#file.write({ record, ttlMs } satisfies KeptRecord);
    } catch (err) {
      const e = TwinpageError.from(err);
      this.#broken = e;
      this.#onEvent({ event: 'record-write-failed', reason: e.message });
      this.#fail(e);
      throw e;
    }
    this.#onEvent({ event: 'record', op, by, record: { ...record } });
  }
}
