/**
 * `WitnessArbiter` (Node): the arbiter of a pair kept by a `twinpage witness`
 * process, reached over the TCP transport (authenticated with the shared
 * secret, every frame sealed) with the requests of `witness-protocol.ts`.
 *
 * One connection, opened at the first call and opened again by the first
 * call after it closed. Every call has a deadline (`timeoutMs`, connecting
 * included): past it the call rejects with TIMEOUT and the connection is
 * dropped (a witness that stopped answering is not waited on by the next
 * call). A witness out of reach rejects with IO_ERROR (no connection),
 * CLOSED (the connection ended under the call) or TIMEOUT; the pair takes any
 * rejection as "no quorum right now". A call that timed out may still have
 * taken effect at the witness: an acquire granted there then holds the lease
 * until it ends, which only delays the partner.
 */
import { TwinpageError } from '../errors.js';
import { intOption } from '../options.js';
import type { Acquired, Arbiter, PairRecord } from './arbiter.js';
import { connectTcp } from './transports/tcp.js';
import type { Transport } from './transports/transport.js';
import {
  ERROR_OP, MAX_WITNESS_FRAME, Op, WITNESS_NODE_ID, decodeReply, encodeRequest,
  type WitnessReply, type WitnessRequest,
} from './witness-protocol.js';

/** Options of {@link WitnessArbiter}. */
export interface WitnessArbiterOptions {
  /** The witness's address. @default '127.0.0.1' */
  host?: string;
  /** The witness's port. Required. */
  port: number;
  /** The secret shared with the witness (`twinpage witness --secret-file`). Required, non-empty. */
  secret: string | Uint8Array;
  /**
   * This node's id: the connection's, and the only node this arbiter acts
   * for (the witness refuses a request for another node with REFUSED), 1 to
   * 256 UTF-8 bytes. A pair's node learns its id when its store opens, after
   * the arbiter is made: left out, it is the `node` of the first call that
   * names one (acquire, outdate, clear, release), and fixed from then on.
   * @default the node of the first call that names one
   */
  nodeId?: string;
  /** Milliseconds each call may take, connecting included, before it rejects with TIMEOUT. @default 2000 */
  timeoutMs?: number;
  /**
   * The lease's length until the witness has said its own (every reply
   * carries it). Give the witness's `--ttl-ms` when it is not the default: a
   * pair sizes its safety margin from `ttlMs` before the first reply.
   * @default 10000 (the witness's default)
   */
  ttlMs?: number;
}

type Pending = { op: number; t: Transport; resolve: (r: WitnessReply) => void; reject: (e: Error) => void };

/** An arbiter kept by a `twinpage witness` process. */
export class WitnessArbiter implements Arbiter {
  readonly name: string;
  readonly #host: string;
  readonly #port: number;
  readonly #secret: string | Uint8Array;
  #nodeId: string | null;
  /** The id the open connection authenticated with. */
  #connectedAs: string | null = null;
  readonly #timeoutMs: number;
  #ttlMs: number;
  #transport: Transport | null = null;
  #connecting: Promise<Transport> | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(options: WitnessArbiterOptions) {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    const { host = '127.0.0.1', port, secret, nodeId } = options;
    if (typeof host !== 'string' || host === '') throw TwinpageError.invalidArgument('host must be a non-empty string');
    if (port === undefined) throw TwinpageError.invalidArgument('port is required (the witness\'s --listen port)');
    this.#port = intOption('port', port, 0, 1, 65535);
    if (!(typeof secret === 'string' || secret instanceof Uint8Array) || secret.length === 0) {
      throw TwinpageError.invalidArgument('secret must be a non-empty string or Uint8Array (the witness\'s --secret-file)');
    }
    if (nodeId !== undefined) checkNodeId(nodeId);
    this.#host = host;
    this.#secret = secret;
    this.#nodeId = nodeId ?? null;
    this.#timeoutMs = intOption('timeoutMs', options.timeoutMs, 2000, 1);
    this.#ttlMs = intOption('ttlMs', options.ttlMs, 10_000, 1);
    this.name = `witness ${host.includes(':') ? `[${host}]` : host}:${this.#port}`;
  }

  /** The lease's length, in ms: the witness's, once it answered a call. */
  get ttlMs(): number { return this.#ttlMs; }

  async read(): Promise<PairRecord> {
    const r = await this.#call({ op: Op.READ, id: 0 });
    return (r as Extract<WitnessReply, { op: typeof Op.READ }>).record;
  }

  async acquire(node: string, generation: string): Promise<Acquired> {
    this.#mine(node);
    const r = await this.#call({ op: Op.ACQUIRE, id: 0, node, generation }) as Extract<WitnessReply, { op: typeof Op.ACQUIRE }>;
    return r.granted ? { granted: true, record: r.record, ttlMs: r.ttlMs } : { granted: false, record: r.record, reason: r.reason };
  }

  async outdate(node: string, epoch: number, partner: string, generation: string): Promise<boolean> {
    this.#mine(node);
    const r = await this.#call({ op: Op.OUTDATE, id: 0, node, epoch, partner, generation });
    return (r as Extract<WitnessReply, { op: typeof Op.OUTDATE }>).done;
  }

  async clear(node: string, epoch: number, generation: string): Promise<boolean> {
    this.#mine(node);
    const r = await this.#call({ op: Op.CLEAR, id: 0, node, epoch, generation });
    return (r as Extract<WitnessReply, { op: typeof Op.CLEAR }>).done;
  }

  async release(node: string, epoch: number): Promise<void> {
    this.#mine(node);
    await this.#call({ op: Op.RELEASE, id: 0, node, epoch });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const closed = TwinpageError.closed(`${this.name}: the arbiter was closed`);
    for (const p of [...this.#pending.values()]) this.#drop(p.t, closed);
    if (this.#transport !== null) this.#drop(this.#transport, closed);
    const connecting = this.#connecting;
    if (connecting) await connecting.then((t) => t.close(), () => {});
  }

  /** Checks that `node` is this arbiter's (the first node named becomes it, when none was given). */
  #mine(node: string): void {
    if (this.#closed) throw TwinpageError.closed(`${this.name}: the arbiter was closed`);
    if (this.#nodeId === null) {
      checkNodeId(node);
      this.#nodeId = node;
    }
    if (node !== this.#nodeId) throw TwinpageError.invalidArgument(`this arbiter acts for node ${JSON.stringify(this.#nodeId)}, not ${JSON.stringify(node)}`);
  }

  /** Sends one request and waits for its reply, within the call's deadline. */
  async #call(req: WitnessRequest): Promise<WitnessReply> {
    if (this.#closed) throw TwinpageError.closed(`${this.name}: the arbiter was closed`);
    const id = this.#nextId;
    this.#nextId = this.#nextId === 0xffffffff ? 1 : this.#nextId + 1;
    const frame = encodeRequest({ ...req, id }); // INVALID_ARGUMENT for a field out of bounds, before anything is sent
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(TwinpageError.timeout(`${this.name} did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    let t: Transport | null = null;
    try {
      t = await Promise.race([this.#connection(), deadline]);
      const on = t;
      const reply = new Promise<WitnessReply>((resolve, reject) => { this.#pending.set(id, { op: req.op, t: on, resolve, reject }); });
      t.send(frame).catch((err: Error) => this.#settle(id, null, TwinpageError.closed(`${this.name}: the connection closed: ${err.message}`)));
      const r = await Promise.race([reply, deadline]);
      if (r.op === ERROR_OP) throw TwinpageError.fromCode(r.code, `${this.name}: ${r.message}`);
      return r;
    } catch (err) {
      this.#pending.delete(id);
      // A witness that does not answer in time is not waited on again over the same connection.
      if ((err as TwinpageError).code === 'TIMEOUT' && t !== null) this.#drop(t, TwinpageError.closed(`${this.name}: dropped after a call timed out`));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  #settle(id: number, reply: WitnessReply | null, err?: Error): void {
    const p = this.#pending.get(id);
    if (p === undefined) return; // a reply after its call timed out
    this.#pending.delete(id);
    if (reply !== null) p.resolve(reply);
    else p.reject(err!);
  }

  /** The open connection, or a new one (as this arbiter's node, once it knows it). */
  async #connection(): Promise<Transport> {
    for (;;) {
      const t = this.#transport;
      if (t !== null && !t.closed) {
        if (this.#nodeId === null || this.#connectedAs === this.#nodeId) return t;
        // Opened by a read before this arbiter knew its node: a new one as that node; the
        // reader's calls finish on it (answered or timed out), then it closes.
        this.#transport = null;
        setTimeout(() => this.#drop(t, TwinpageError.closed(`${this.name}: reconnected as node ${this.#nodeId}`)), this.#timeoutMs).unref?.();
      }
      await (this.#connecting ??= this.#connect().finally(() => { this.#connecting = null; }));
    }
  }

  async #connect(): Promise<Transport> {
    // A read before any node is known connects as a reader, which the witness lets read only.
    const as = this.#nodeId ?? `reader-${Math.random().toString(36).slice(2, 10)}`;
    const t = await connectTcp({
      host: this.#host, port: this.#port, secret: this.#secret, nodeId: as,
      authTimeoutMs: Math.max(this.#timeoutMs, 1000), maxFrame: MAX_WITNESS_FRAME, highWaterMark: 64 << 10,
    });
    if (this.#closed) { t.close(); throw TwinpageError.closed(`${this.name}: the arbiter was closed`); }
    if (t.peerId !== WITNESS_NODE_ID) {
      t.close();
      throw TwinpageError.refused(`${this.name} is not a twinpage witness (it is node ${JSON.stringify(t.peerId)}): point the arbiter at the witness's --listen address`);
    }
    this.#transport = t;
    this.#connectedAs = as;
    t.onFrame((frame) => {
      let reply: WitnessReply;
      try {
        reply = decodeReply(frame);
        const p = this.#pending.get(reply.id);
        if (p !== undefined && reply.op !== ERROR_OP && reply.op !== p.op) throw TwinpageError.badFrame(`a reply of op ${reply.op} to a request of op ${p.op}`);
      } catch (err) {
        // A witness that sends what it should not is not trusted further on this connection.
        t.close(TwinpageError.from(err));
        return;
      }
      if (reply.op === Op.READ || reply.op === Op.ACQUIRE) { if (reply.ttlMs > 0) this.#ttlMs = reply.ttlMs; }
      this.#settle(reply.id, reply);
    });
    t.onClose((err) => {
      const why = err?.message ?? 'the witness closed the connection';
      const code = (err as TwinpageError | undefined)?.code;
      this.#drop(t, code === 'BAD_FRAME' ? TwinpageError.badFrame(`${this.name}: ${why}`) : TwinpageError.closed(`${this.name}: ${why}`));
    });
    return t;
  }

  /** Closes the connection `t` and rejects every call waiting on it. */
  #drop(t: Transport, err: Error): void {
    if (this.#transport === t) this.#transport = null;
    for (const [id, p] of [...this.#pending]) {
      if (p.t !== t) continue;
      this.#pending.delete(id);
      p.reject(err);
    }
    t.close();
  }
}

function checkNodeId(nodeId: unknown): void {
  if (typeof nodeId !== 'string' || nodeId === '') throw TwinpageError.invalidArgument('nodeId must be a non-empty string');
  if (new TextEncoder().encode(nodeId).byteLength > 256) throw TwinpageError.invalidArgument('nodeId must be at most 256 UTF-8 bytes');
  if (nodeId === WITNESS_NODE_ID) throw TwinpageError.invalidArgument(`nodeId ${JSON.stringify(nodeId)} is the witness's own`);
}
