/**
 * Transports: what carries opaque frames between the two nodes of a pair.
 *
 * One interface, small adapters: in-process (this file), MessagePort
 * (`message-port.ts`, workers and browsers), TCP (`tcp.ts`, Node), and a
 * fault-injecting wrapper (`faulty.ts`). Every adapter delivers frames in
 * order, asynchronously, with bounded memory: frames the receiver has not
 * yet taken count against the sender's high-water mark, and `send()` waits
 * while it is exceeded.
 *
 * ```
 *   node A                                             node B
 *   send(frame) ──▶ [ in flight ≤ highWaterMark ] ──▶ inbox ──▶ onFrame(handler)
 *                   (send() waits while over)          (held until a handler is set)
 * ```
 */
import { TwinpageError } from '../../errors.js';
import { intOption } from '../../options.js';

/** One end of the connection between the two nodes of a pair. */
export interface Transport {
  /**
   * Sends one frame. Resolves once the transport has taken it; waits while its
   * send buffer is over the high-water mark (backpressure). Rejects with a
   * TwinpageError (code 'CLOSED') once closed, 'TOO_LARGE' for a frame over
   * `maxFrame`. The frame is copied (or written out) before `send` returns, so
   * the caller may reuse its buffer at once.
   */
  send(frame: Uint8Array): Promise<void>;
  /**
   * Frames from the peer, in order. One handler; frames that arrive before it
   * is set are held (bounded). The handler owns each frame it is given: the
   * transport never reuses its bytes.
   */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /** Called once when the connection ends; `err` says why when it failed (auth, oversized frame, socket error). */
  onClose(handler: (err?: Error) => void): void;
  /** Ends the connection; the peer's `onClose` is called too. Idempotent. */
  close(reason?: Error): void;
  readonly closed: boolean;
  /** What the transport allows: a SharedArrayBuffer both ends can address (MessagePort between workers), or null. */
  readonly shared: SharedArrayBuffer | null;
  /** The peer's node id once known (TCP: after authentication), else null. */
  readonly peerId: string | null;
}

/** Options every adapter accepts. */
export interface TransportOptions {
  /**
   * Bytes of frames sent but not yet taken by the peer's handler after which
   * `send()` waits. Also bounds what a receiver holds before it has a handler.
   * @default 1048576 (1 MiB)
   */
  highWaterMark?: number;
  /**
   * Largest frame, in bytes. `send()` refuses a larger one with 'TOO_LARGE';
   * a peer that sends one is cut off with 'BAD_FRAME'.
   * @default 4194304 (4 MiB)
   */
  maxFrame?: number;
}

/** @internal */
export const DEFAULT_HIGH_WATER_MARK = 1 << 20;
/** @internal */
export const DEFAULT_MAX_FRAME = 4 << 20;

/** Runs `fn` on a later turn of the event loop (a macrotask, so timers and I/O are not starved). */
export const defer: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => { setImmediate(fn); } : (fn) => { setTimeout(fn, 0); };

type Waiter = { resolve: () => void; reject: (err: Error) => void };

/**
 * The part every adapter shares: the inbox (frames received, not yet handed to
 * the handler), writers waiting on backpressure, and closing exactly once.
 *
 * An adapter implements `write` (hand a frame to the wire; say whether the
 * sender must now wait) and `teardown` (release the wire on a local close), and
 * calls `receive` for each frame from the peer, `writable` when its send buffer
 * drained, and `ended` when the peer went away or the wire failed.
 */
export abstract class TransportBase implements Transport {
  readonly highWaterMark: number;
  readonly maxFrame: number;
  shared: SharedArrayBuffer | null = null;
  peerId: string | null = null;

  #closed = false;
  #localClose = false;
  #peerEnded = false;
  #closeFired = false;
  #closeErr: Error | undefined;
  #closeHandlers: Array<(err?: Error) => void> = [];
  #handler: ((frame: Uint8Array) => void) | null = null;
  #inbox: Uint8Array[] = [];
  #inboxHead = 0;
  #inboxBytes = 0;
  #drainScheduled = false;
  #writers: Waiter[] = [];

  constructor(options: TransportOptions = {}) {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    this.highWaterMark = intOption('highWaterMark', options.highWaterMark, DEFAULT_HIGH_WATER_MARK);
    this.maxFrame = intOption('maxFrame', options.maxFrame, DEFAULT_MAX_FRAME);
  }

  get closed(): boolean { return this.#closed; }

  /** Bytes received and not yet handed to the handler. */
  protected get inboxBytes(): number { return this.#inboxBytes; }

  send(frame: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(TwinpageError.closed('the transport is closed'));
    if (!(frame instanceof Uint8Array)) return Promise.reject(TwinpageError.invalidArgument('frame must be a Uint8Array'));
    if (frame.byteLength > this.maxFrame) {
      return Promise.reject(TwinpageError.tooLarge(`frame of ${frame.byteLength} bytes is over maxFrame (${this.maxFrame})`));
    }
    let wait: boolean;
    try { wait = this.write(frame); } catch (err) { return Promise.reject(err); }
    if (!wait || this.#closed) return this.#closed ? Promise.reject(TwinpageError.closed('the transport is closed')) : Promise.resolve();
    return new Promise<void>((resolve, reject) => { this.#writers.push({ resolve, reject }); });
  }

  onFrame(handler: (frame: Uint8Array) => void): void {
    if (typeof handler !== 'function') throw TwinpageError.invalidArgument('onFrame: handler must be a function');
    this.#handler = handler;
    if (this.#inboxBytes > 0 || this.#inbox.length > this.#inboxHead) this.#scheduleDrain();
  }

  onClose(handler: (err?: Error) => void): void {
    if (typeof handler !== 'function') throw TwinpageError.invalidArgument('onClose: handler must be a function');
    if (this.#closeFired) { const err = this.#closeErr; defer(() => handler(err)); return; }
    this.#closeHandlers.push(handler);
  }

  close(reason?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#localClose = true;
    this.#closeErr = reason;
    this.#dropInbox();
    this.#rejectWriters();
    try { this.teardown(reason); } finally { this.#fireClose(); }
  }

  /** Hands one frame (already the transport's own copy) to the wire. Returns true when the sender must wait for `writable()`. */
  protected abstract write(frame: Uint8Array): boolean;
  /** Releases the wire after a local `close()`; tells the peer when it can. */
  protected abstract teardown(reason?: Error): void;
  /** Called after the handler took `bytes` bytes from the inbox. */
  protected inboxDrained(_bytes: number): void {}

  /** A frame from the peer. Returns true when the inbox is over the high-water mark (stop reading if you can). */
  protected receive(frame: Uint8Array): boolean {
    if (this.#localClose) return false;
    this.#inbox.push(frame);
    this.#inboxBytes += frame.byteLength;
    if (this.#handler !== null) this.#scheduleDrain();
    return this.#inboxBytes > this.highWaterMark;
  }

  /** The send buffer drained under the high-water mark: wake waiting senders. */
  protected writable(): void {
    const writers = this.#writers;
    if (writers.length === 0) return;
    this.#writers = [];
    for (const w of writers) w.resolve();
  }

  /**
   * The connection ended from the other side or failed. Without an error, frames
   * already received are still handed to the handler (when one is set) before
   * `onClose` fires; with one, they are dropped.
   */
  protected ended(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peerEnded = true;
    this.#closeErr = err;
    this.#rejectWriters();
    if (err !== undefined || this.#handler === null) this.#dropInbox();
    if (this.#inbox.length > this.#inboxHead) this.#scheduleDrain();
    else this.#fireClose();
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled) return;
    this.#drainScheduled = true;
    defer(() => this.#drain());
  }

  #drain(): void {
    this.#drainScheduled = false;
    const end = this.#inbox.length; // frames present now; later arrivals go in the next batch
    let taken = 0;
    while (this.#inboxHead < end && !this.#localClose) {
      const handler = this.#handler;
      if (handler === null) break;
      const frame = this.#inbox[this.#inboxHead]!;
      this.#inbox[this.#inboxHead++] = undefined as unknown as Uint8Array;
      this.#inboxBytes -= frame.byteLength;
      taken += frame.byteLength;
      try {
        handler(frame);
      } catch (err) {
        this.close(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    if (this.#inboxHead === this.#inbox.length) { this.#inbox = []; this.#inboxHead = 0; }
    else if (this.#inboxHead > 1024 && this.#inboxHead * 2 > this.#inbox.length) {
      this.#inbox = this.#inbox.slice(this.#inboxHead);
      this.#inboxHead = 0;
    }
    if (this.#localClose) return;
    if (this.#inbox.length > this.#inboxHead && this.#handler !== null) this.#scheduleDrain();
    if (this.#peerEnded) { if (this.#inbox.length === this.#inboxHead) this.#fireClose(); return; }
    if (taken > 0) this.inboxDrained(taken);
  }

  #dropInbox(): void {
    this.#inbox = [];
    this.#inboxHead = 0;
    this.#inboxBytes = 0;
  }

  #rejectWriters(): void {
    const writers = this.#writers;
    this.#writers = [];
    for (const w of writers) w.reject(TwinpageError.closed('the transport closed before the frame was taken'));
  }

  #fireClose(): void {
    if (this.#closeFired) return;
    this.#closeFired = true;
    const handlers = this.#closeHandlers;
    this.#closeHandlers = [];
    const err = this.#closeErr;
    defer(() => { for (const h of handlers) h(err); });
  }
}

/** Options of {@link inProcessPair}. */
export interface InProcessOptions extends TransportOptions {
  /** Memory both ends can address (one process: the same buffer). @default null */
  shared?: SharedArrayBuffer;
  /** Node ids of the two ends, reported as each one's `peerId`. @default none (peerId null) */
  nodeIds?: [string, string];
}

class InProcessTransport extends TransportBase {
  peer!: InProcessTransport;

  protected write(frame: Uint8Array): boolean {
    const peer = this.peer;
    peer.receive(frame.slice());
    return peer.inboxBytes > this.highWaterMark;
  }

  protected inboxDrained(): void {
    if (this.inboxBytes <= this.peer.highWaterMark) this.peer.writable();
  }

  protected teardown(): void { this.peer.ended(); }
}

/**
 * Two connected ends in one process: for tests and single-process pairs.
 * Frames are copied and delivered asynchronously, in order. Closing one end
 * closes the other; both `onClose` handlers are called.
 */
export function inProcessPair(options: InProcessOptions = {}): [Transport, Transport] {
  const a = new InProcessTransport(options);
  const b = new InProcessTransport(options);
  a.peer = b;
  b.peer = a;
  if (options.shared !== undefined) {
    if (!(options.shared instanceof SharedArrayBuffer)) throw TwinpageError.invalidArgument('shared must be a SharedArrayBuffer');
    a.shared = b.shared = options.shared;
  }
  if (options.nodeIds !== undefined) {
    const ids = options.nodeIds;
    if (!Array.isArray(ids) || ids.length !== 2 || typeof ids[0] !== 'string' || typeof ids[1] !== 'string') {
      throw TwinpageError.invalidArgument('nodeIds must be two strings');
    }
    a.peerId = ids[1];
    b.peerId = ids[0];
  }
  return [a, b];
}
