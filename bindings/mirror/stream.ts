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

interface AckWaiter { seq: number; level: number; resolve: () => void; at: number }

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
  /** Requests waiting for their reply, by sequence. */
  readonly #pending = new Map<number, (m: Message) => void>();

  constructor(transport: Transport, encode: (m: Message, seq: number) => Uint8Array, timeoutMs: number) {
    this.transport = transport;
    this.#encode = encode;
    this.#timeoutMs = timeoutMs;
  }

  get open(): boolean {
    return !this.transport.closed;
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
    return new Promise((resolve) => this.#waiters.push({ seq, level, resolve, at: Date.now() }));
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
  request(m: Request): Promise<Message> {
    if (this.transport.closed) return Promise.reject(TwinpageError.closed('no partner connected'));
    const seq = ++this.#sent;
    const reply = new Promise<Message>((resolve) => {
      // A reply lost on the way (or a partner that never answers) does not hang the caller.
      const timer = setTimeout(() => {
        if (this.#pending.delete(seq)) resolve({ type: MessageType.ERROR, replyTo: seq, code: 'TIMEOUT', message: `no reply from the partner in ${2 * this.#timeoutMs} ms` });
      }, 2 * this.#timeoutMs);
      (timer as { unref?: () => void }).unref?.();
      this.#pending.set(seq, (msg) => { clearTimeout(timer); resolve(msg); });
    });
    this.#sendOn(m, seq).catch(() => {});
    return reply;
  }

  /** Whether a request with this sequence waits for its reply. */
  awaits(replyTo: number): boolean {
    return this.#pending.has(replyTo);
  }

  /** A reply arrived: its request's waiter gets it. */
  reply(replyTo: number, m: Message): void {
    const resolve = this.#pending.get(replyTo);
    if (resolve) {
      this.#pending.delete(replyTo);
      resolve(m);
    }
  }

  /** The connection is gone: writers waiting for acknowledgements go on, requests get CLOSED. */
  release(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const resolve of pending) resolve({ type: MessageType.ERROR, replyTo: 0, code: 'CLOSED', message: 'the partner is gone' });
  }

  #sendOn(m: Message, seq: number): Promise<void> {
    return this.transport.send(this.#encode(m, seq));
  }
}
