// The stream of one connection, sending side: frames numbered in order
// (requests take numbers too), acknowledgements counted cumulatively per
// level (received, memory, disk), writers waiting for the level their
// policy asks, and requests waiting for their reply. When the connection
// ends everyone waiting is released: writers go on degraded, requests get
// CLOSED.

import { TwinpageError } from '../errors.js';
import { AckLevel, MessageType, type Message, type Request } from '../messages.js';
import type { Durability } from '../policies.js';
import type { Transport } from './transports/transport.js';

interface AckWaiter { seq: number; level: number; resolve: () => void; reject: (err: Error) => void; at: number }

/** The acknowledgement level a durability waits for (-1: none, resolved once sent). */
export const LEVEL: Record<Durability, number> = { async: -1, memory: AckLevel.MEMORY, disk: AckLevel.DISK };

export class Stream {
  readonly transport: Transport;
  readonly #encode: (m: Message, seq: number) => Uint8Array;
  readonly #timeoutMs: number;
  #sent = 0;
  /** Highest sequence acknowledged at each level. */
  readonly acked = [0, 0, 0];
  #waiters: AckWaiter[] = [];
  /** Requests waiting for their reply (or every part of it), by sequence. */
  readonly #pending = new Map<number, { resolve: (m: Message[]) => void; parts: Message[] | null }>();

  constructor(transport: Transport, encode: (m: Message, seq: number) => Uint8Array, timeoutMs: number) {
    this.transport = transport;
    this.#encode = encode;
    this.#timeoutMs = timeoutMs;
  }

  get open(): boolean {
    return !this.transport.closed;
  }

  /** The last sequence sent. */
  get sent(): number {
    return this.#sent;
  }

  /** Frames sent and not yet acknowledged at disk level. */
  get inFlight(): number {
    return this.#sent - this.acked[AckLevel.DISK];
  }

  /** Sends a frame outside the numbered stream (sequence 0): acks, replies, heartbeats. Lost when the connection is. */
  post(m: Message): void {
    if (this.transport.closed) return;
    this.#sendOn(m, 0).catch(() => {});
  }

  /** Sends `messages` as the next frames of the stream; the last one's sequence, and when all are taken by the transport. */
  sequence(messages: Request[]): { last: number; sent: Promise<void> } {
    let last = 0;
    const sends: Promise<void>[] = [];
    for (const m of messages) {
      last = ++this.#sent;
      sends.push(this.#sendOn(m, last));
    }
    return { last, sent: Promise.all(sends).then(() => undefined, () => undefined) };
  }

  /** Resolves once frames up to `seq` are acknowledged at `level` (or the connection ends). */
  waitFor(seq: number, level: number): Promise<void> {
    if (this.acked[level] >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ seq, level, resolve, reject, at: Date.now() }));
  }

  /** The partner acknowledged frames up to `applied` at `level` (and so at every lower one). */
  acknowledged(applied: number, level: number): void {
    for (let l = 0; l <= level; l++) this.acked[l] = Math.max(this.acked[l], applied);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.acked[w.level] >= w.seq) { w.resolve(); return false; }
      return true;
    });
  }

  /** When the oldest writer still waiting began to wait, or null. */
  oldestWait(): number | null {
    return this.#waiters.length ? Math.min(...this.#waiters.map((w) => w.at)) : null;
  }

  /** Sends a request that expects a reply, and waits for it (an ERROR reply on timeout or disconnect). */
  async request(m: Message): Promise<Message> {
    return (await this.#ask(m, false))[0];
  }

  /**
   * Sends a request answered in parts (BLOCK_LIST: BLOCK_IDS until one has
   * `last`), and waits for all of them; an ERROR (timeout, disconnect) ends them.
   */
  requestParts(m: Message): Promise<Message[]> {
    return this.#ask(m, true);
  }

  #ask(m: Message, parts: boolean): Promise<Message[]> {
    if (this.transport.closed) return Promise.reject(TwinpageError.closed('no partner connected'));
    const seq = ++this.#sent;
    const reply = new Promise<Message[]>((resolve) => {
      // A reply lost on the way (or a partner that never answers) does not hang the caller.
      const timer = setTimeout(() => {
        const p = this.#pending.get(seq);
        if (p && this.#pending.delete(seq)) p.resolve([...(p.parts ?? []), { type: MessageType.ERROR, replyTo: seq, code: 'TIMEOUT', message: `no reply from the partner in ${2 * this.#timeoutMs} ms` }]);
      }, 2 * this.#timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      this.#pending.set(seq, { resolve: (msgs) => { clearTimeout(timer); resolve(msgs); }, parts: parts ? [] : null });
    });
    this.#sendOn(m, seq).catch(() => {});
    return reply;
  }

  /** Whether a request with this sequence waits for its reply. */
  awaits(replyTo: number): boolean {
    return this.#pending.has(replyTo);
  }

  /** A reply arrived: its request's waiter gets it (a request answered in parts, once the last part came). */
  reply(replyTo: number, m: Message): void {
    const p = this.#pending.get(replyTo);
    if (!p) return;
    if (p.parts) {
      p.parts.push(m);
      if (m.type !== MessageType.ERROR && !(m as { last?: boolean }).last) return;
    }
    this.#pending.delete(replyTo);
    p.resolve(p.parts ?? [m]);
  }

  /** The connection is gone: writers and requests waiting on it are released (see releaseWriters, releaseRequests). */
  release(err?: Error): void {
    this.releaseRequests();
    this.releaseWriters(err);
  }

  /** Writers waiting for acknowledgements go on (or, with `err`, fail with it). */
  releaseWriters(err?: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) if (err) w.reject(err); else w.resolve();
  }

  /** Requests waiting for a reply get CLOSED. */
  releaseRequests(): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.resolve([...(p.parts ?? []), { type: MessageType.ERROR, replyTo: 0, code: 'CLOSED', message: 'the partner is gone' }]);
  }

  #sendOn(m: Message, seq: number): Promise<void> {
    return this.transport.send(this.#encode(m, seq));
  }
}
