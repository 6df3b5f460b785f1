/**
 * A link that comes back: dials the partner, attaches each new transport to
 * the mirror (or anything with `attach`), and when the connection ends dials
 * again, with exponential backoff and jitter, until closed.
 *
 * ```ts
 * const link = reconnecting(memory.mirror, () => connectTcp({ host, port, secret, nodeId }));
 * // …
 * await link.close();     // stops dialling, ends the connection
 * ```
 *
 * Any dialler works (TCP, a WebSocket wrapped as a Transport, a MessagePort
 * handed over again): it is called with an AbortSignal that aborts when the
 * link is closed. The delay starts at `minDelayMs`, doubles after each failed
 * dial up to `maxDelayMs`, and starts again from `minDelayMs` only after a
 * connection stayed up for `maxDelayMs`: a partner that accepts and refuses
 * at once (a split brain) is not dialled in a tight loop.
 */
import { asyncDispose } from '../../disposable.js';
import { TwinpageError } from '../../errors.js';
import { functionOption, intOption } from '../../options.js';
import type { Transport } from './transport.js';

/** What a reconnecting link attaches to: a Mirror. */
export interface Attachable {
  attach(transport: Transport): void;
}

export interface ReconnectOptions {
  /** Delay before the first redial, in ms. @default 200 */
  minDelayMs?: number;
  /** Longest delay between dials, in ms. @default 5000 */
  maxDelayMs?: number;
  /** Called with each transport once it is attached. */
  onConnect?: (transport: Transport) => void;
  /** Called when a connection ends (with why, when it failed). */
  onDisconnect?: (err?: Error) => void;
  /** Called when a dial fails (the next one is scheduled). */
  onError?: (err: Error) => void;
  /** Closes the link when aborted. */
  signal?: AbortSignal;
}

/** A link that redials; see {@link reconnecting}. */
export interface ReconnectingLink {
  /** The current connection while it is open, else null. */
  readonly transport: Transport | null;
  /** Connections made so far. */
  readonly connections: number;
  /** Whether `close()` was called (or the signal aborted). */
  readonly closed: boolean;
  /** Stops dialling and ends the current connection. */
  close(): Promise<void>;
  [asyncDispose](): Promise<void>;
}

/** Dials now and after every disconnect, attaching each new transport to `target`. */
export function reconnecting(
  target: Attachable,
  dial: (signal: AbortSignal) => Promise<Transport>,
  options: ReconnectOptions = {},
): ReconnectingLink {
  if (target === null || typeof target !== 'object' || typeof target.attach !== 'function') {
    throw TwinpageError.invalidArgument('reconnecting: the target must have attach(transport) (a Mirror)');
  }
  if (typeof dial !== 'function') throw TwinpageError.invalidArgument('reconnecting: dial must be a function returning a Promise of a Transport');
  const o = options ?? {};
  const minDelayMs = intOption('minDelayMs', o.minDelayMs, 200);
  const maxDelayMs = Math.max(minDelayMs, intOption('maxDelayMs', o.maxDelayMs, 5000));
  const onConnect = functionOption<NonNullable<ReconnectOptions['onConnect']>>('onConnect', o.onConnect);
  const onDisconnect = functionOption<NonNullable<ReconnectOptions['onDisconnect']>>('onDisconnect', o.onDisconnect);
  const onError = functionOption<NonNullable<ReconnectOptions['onError']>>('onError', o.onError);

  const stop = new AbortController();
  let current: Transport | null = null;
  let connections = 0;
  let delay = minDelayMs;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let wake: (() => void) | null = null;
  let closed = false;

  const sleep = (ms: number) => new Promise<void>((resolve) => {
    wake = resolve;
    timer = setTimeout(resolve, ms);
  });
  const next = () => {
    // ±20% so two nodes (or many clients) do not dial in step.
    const ms = Math.round(delay * (0.8 + Math.random() * 0.4));
    delay = Math.min(maxDelayMs, delay * 2);
    return ms;
  };

  /** Dials until a transport is attached (or the link is closed); resolves when that connection ends. */
  const connectOnce = async (): Promise<void> => {
    let t: Transport;
    try {
      t = await dial(stop.signal);
    } catch (err) {
      if (!closed) onError?.(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (closed) { t.close(); return; }
    const ended = new Promise<Error | undefined>((resolve) => t.onClose(resolve));
    try {
      target.attach(t);
    } catch (err) {
      // The mirror is closed: nothing more to attach to.
      t.close();
      void link.close();
      onError?.(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    current = t;
    connections++;
    const since = Date.now();
    onConnect?.(t);
    const err = await ended;
    if (current === t) current = null;
    if (Date.now() - since >= maxDelayMs) delay = minDelayMs;
    if (!closed) onDisconnect?.(err);
  };

  const loop = async () => {
    while (!closed) {
      await connectOnce();
      if (!closed) await sleep(next());
    }
  };

  const link: ReconnectingLink = {
    get transport() { return current && !current.closed ? current : null; },
    get connections() { return connections; },
    get closed() { return closed; },
    async close() {
      if (closed) return;
      closed = true;
      stop.abort(TwinpageError.closed('the reconnecting link was closed'));
      if (timer) clearTimeout(timer);
      wake?.();
      const t = current;
      current = null;
      t?.close();
      await running.catch(() => {});
    },
    [asyncDispose]() { return this.close(); },
  };

  const signal = o.signal;
  if (signal?.aborted) closed = true;
  else signal?.addEventListener('abort', () => { void link.close(); }, { once: true });
  const running = closed ? Promise.resolve() : loop();
  return link;
}
