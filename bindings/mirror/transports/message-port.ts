/**
 * A transport over a MessagePort: between worker threads in Node, between a
 * page and its workers in browsers. No Node imports: the port is typed by
 * what is used of it, so both Node's `worker_threads` ports and the DOM's fit.
 *
 * Messages on the port:
 *
 * ```
 *   Uint8Array                       one frame (a copy, its buffer transferred)
 *   { twinpage: 'ack', bytes: n }    the receiver's handler took n more bytes
 *   { twinpage: 'close' }            the sender closed; nothing follows
 * ```
 *
 * postMessage has no backpressure of its own, so the sender counts the bytes
 * it posted that the peer has not acknowledged, and `send()` waits while that
 * is over the high-water mark. The receiver acknowledges once per batch its
 * handler took, so a receiver without a handler holds at most about a
 * high-water mark of frames.
 */
import { TwinpageError } from '../../errors.js';
import { TransportBase, type Transport, type TransportOptions } from './transport.js';

/** What this transport uses of a MessagePort (Node's `worker_threads` or the browser's). */
export interface MessagePortLike {
  postMessage(message: any, transfer?: any): void;
  close(): void;
  /** Browser ports need it before 'message' events flow through addEventListener. */
  start?(): void;
  /** Node: `on('message', data => ...)`, `on('close', () => ...)`. Preferred when present. */
  on?(event: string, listener: (...args: any[]) => void): unknown;
  /** Browser: `addEventListener('message', event => event.data)`. */
  addEventListener?(type: string, listener: (event: any) => void): void;
}

/** Options of {@link messagePortTransport}. */
export interface MessagePortTransportOptions extends TransportOptions {
  /** A SharedArrayBuffer the other end was also given, reported as `shared`. @default null */
  shared?: SharedArrayBuffer;
  /** The peer's node id, when the caller knows it, reported as `peerId`. @default null */
  peerId?: string;
  /** Close the port when the transport closes. @default true */
  closePort?: boolean;
}

type Control = { twinpage: 'ack'; bytes: number } | { twinpage: 'close' };

function isControl(data: unknown): data is Control {
  if (data === null || typeof data !== 'object') return false;
  const t = (data as { twinpage?: unknown }).twinpage;
  if (t === 'close') return true;
  if (t === 'ack') {
    const n = (data as { bytes?: unknown }).bytes;
    return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  }
  return false;
}

class MessagePortTransport extends TransportBase {
  readonly #port: MessagePortLike;
  readonly #closePort: boolean;
  /** Bytes posted that the peer has not acknowledged. */
  #inFlight = 0;

  constructor(port: MessagePortLike, options: MessagePortTransportOptions) {
    super(options);
    if (port === null || typeof port !== 'object' || typeof port.postMessage !== 'function' || typeof port.close !== 'function') {
      throw TwinpageError.invalidArgument('port must be a MessagePort');
    }
    if (options.shared !== undefined) {
      if (!(options.shared instanceof SharedArrayBuffer)) throw TwinpageError.invalidArgument('shared must be a SharedArrayBuffer');
      this.shared = options.shared;
    }
    if (options.peerId !== undefined) {
      if (typeof options.peerId !== 'string') throw TwinpageError.invalidArgument('peerId must be a string');
      this.peerId = options.peerId;
    }
    this.#closePort = options.closePort ?? true;
    this.#port = port;
    const onMessage = (data: unknown) => this.#message(data);
    const onGone = () => this.ended(TwinpageError.closed('the port closed without a close message'));
    if (typeof port.on === 'function') {
      port.on('message', onMessage);
      port.on('messageerror', (err: unknown) => this.close(TwinpageError.badFrame('a message could not be deserialized', err)));
      port.on('close', onGone);
    } else if (typeof port.addEventListener === 'function') {
      port.addEventListener('message', (event: { data: unknown }) => onMessage(event.data));
      port.addEventListener('messageerror', () => this.close(TwinpageError.badFrame('a message could not be deserialized')));
      port.addEventListener('close', onGone);
    } else {
      throw TwinpageError.invalidArgument('port must offer on() or addEventListener()');
    }
    if (typeof port.start === 'function') port.start();
  }

  #message(data: unknown): void {
    if (this.closed) return;
    if (data instanceof Uint8Array) {
      if (data.byteLength > this.maxFrame) {
        this.close(TwinpageError.badFrame(`frame of ${data.byteLength} bytes is over maxFrame (${this.maxFrame})`));
        return;
      }
      this.receive(data);
      return;
    }
    if (!isControl(data)) {
      this.close(TwinpageError.badFrame('a message that is neither a frame nor a control message'));
      return;
    }
    if (data.twinpage === 'ack') {
      this.#inFlight = Math.max(0, this.#inFlight - data.bytes);
      if (this.#inFlight <= this.highWaterMark) this.writable();
    } else {
      this.ended();
      if (this.#closePort) this.#port.close();
    }
  }

  protected write(frame: Uint8Array): boolean {
    const copy = frame.slice();
    this.#inFlight += copy.byteLength; // counted before the transfer detaches it
    this.#port.postMessage(copy, [copy.buffer]);
    return this.#inFlight > this.highWaterMark;
  }

  protected inboxDrained(bytes: number): void {
    this.#port.postMessage({ twinpage: 'ack', bytes } satisfies Control);
  }

  protected teardown(): void {
    try { this.#port.postMessage({ twinpage: 'close' } satisfies Control); } catch { /* the port is already gone */ }
    if (this.#closePort) this.#port.close();
  }
}

/**
 * A transport over `port`, one end of a MessageChannel whose other end is
 * given to `messagePortTransport` in the other thread.
 */
export function messagePortTransport(port: MessagePortLike, options: MessagePortTransportOptions = {}): Transport {
  return new MessagePortTransport(port, options);
}
