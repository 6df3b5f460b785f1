// The mirror's events: what a program listens to instead of polling sense().
// A Mirror is an EventTarget (the standard one, in browsers and in Node), so
// `mirror.addEventListener('degraded', …)` works as anywhere on the web
// platform; `on` and `once` add typed details and an unsubscribe.
//
//   connected        the handshake accepted the partner
//   disconnected     the connection to it ended (after a connected)
//   degraded         health went from ok to degraded (alone, recording what the partner lacks)
//   split-brain      both nodes changed since they parted: the handshake refused, nothing merged
//   resync-progress  { done, total } pages of a resync sent
//   resync-done      the partner holds everything this primary holds
//   role             this node's role changed (promote, demote, failover)
//   failover         this node promoted itself (automatic failover)
//   quorum-lost, quorum-regained   the arbiter's vote (declared for the quorum work)
//
// Events are dispatched synchronously, from inside the pair's own work: a
// listener should be quick and must not throw (as with any EventTarget, an
// exception in a listener is reported, in Node as an uncaught exception).

import type { Role } from './options.js';

/** Each event's `detail`. */
export interface MirrorEventMap {
  /** The handshake accepted the partner: its node id, and what it decided for this node. */
  connected: { peer: string; decision: 'in-sync' | 'source' | 'target' };
  /** The connection to the partner ended (why, when it failed), after it was connected. */
  disconnected: { reason: string | null };
  /** Health went from ok to degraded: a primary goes on alone and records what the partner lacks; a secondary has no primary. */
  degraded: { role: Role; lagPages: number };
  /** The handshake found a split brain and refused it: the message says which node to discard. */
  'split-brain': { message: string };
  /** Pages of a resync sent (`done`) of those to send in this round (`total`). */
  'resync-progress': { done: number; total: number };
  /** The partner holds everything this primary holds: after each connection's resync, even one that found nothing to send. */
  'resync-done': { pages: number; ms: number };
  /** This node's role changed. */
  role: { role: Role; previous: Role };
  /** This node promoted itself (automatic failover), under a new generation. */
  failover: { generation: string };
  /** The arbiter's lease or vote was lost: writes the partner lacks are no longer acknowledged. */
  'quorum-lost': { reason: string };
  /** The arbiter's lease or vote is held again. */
  'quorum-regained': Record<string, never>;
}

export type MirrorEventType = keyof MirrorEventMap;

/** Every event type, in the order of the table above. */
export const MIRROR_EVENTS: readonly MirrorEventType[] = Object.freeze([
  'connected', 'disconnected', 'degraded', 'split-brain', 'resync-progress', 'resync-done',
  'role', 'failover', 'quorum-lost', 'quorum-regained',
] as const);

/** An event of a mirror: a standard Event with a typed `detail`. */
export class MirrorEvent<K extends MirrorEventType = MirrorEventType> extends Event {
  readonly detail: MirrorEventMap[K];

  constructor(type: K, detail: MirrorEventMap[K]) {
    super(type);
    this.detail = detail;
  }
}

/** Options of `on`: an AbortSignal that removes the listener, and `once`. */
export interface MirrorListenOptions {
  signal?: AbortSignal;
  once?: boolean;
}

/** An EventTarget with typed helpers for the mirror's events. */
export class MirrorEvents extends EventTarget {
  /**
   * Calls `listener` with each `type` event's detail (and the event).
   * Returns a function that removes it; so does aborting `options.signal`.
   */
  on<K extends MirrorEventType>(
    type: K,
    listener: (detail: MirrorEventMap[K], event: MirrorEvent<K>) => void,
    options: MirrorListenOptions = {},
  ): () => void {
    const handler = (e: Event) => listener((e as MirrorEvent<K>).detail, e as MirrorEvent<K>);
    this.addEventListener(type, handler, { once: options?.once === true, signal: options?.signal });
    return () => this.removeEventListener(type, handler);
  }

  /** Resolves with the next `type` event's detail; rejects with the signal's reason if it is aborted first. */
  once<K extends MirrorEventType>(type: K, options: { signal?: AbortSignal } = {}): Promise<MirrorEventMap[K]> {
    const signal = options?.signal;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) { reject(signal.reason); return; }
      const onAbort = () => { off(); reject(signal!.reason); };
      const off = this.on(type, (detail) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(detail);
      }, { once: true });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Dispatches a `type` event with `detail`. */
  protected dispatch<K extends MirrorEventType>(type: K, detail: MirrorEventMap[K]): void {
    this.dispatchEvent(new MirrorEvent(type, detail));
  }
}
