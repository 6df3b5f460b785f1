/**
 * Fault injection for tests of the mirroring layer: wraps a transport and
 * drops, duplicates, reorders and delays the frames it sends and receives, and
 * cuts both directions while partitioned. Deterministic for a given seed
 * (mulberry32): each direction has its own generator and every frame draws the
 * same four numbers (drop, duplicate, reorder, delay), so one direction's
 * traffic never shifts the other's faults.
 *
 * ```
 *   send(frame) ─▶ [ send lane ] ─▶ inner.send        inner.onFrame ─▶ [ receive lane ] ─▶ handler
 *                  partition? drop? duplicate? reorder (hold until the next frame)? delay (order kept)?
 * ```
 */
import { TwinpageError } from '../../errors.js';
import type { Transport } from './transport.js';

/** What goes wrong, as probabilities per frame (0 to 1). */
export interface FaultPlan {
  /** Probability a frame is lost. @default 0 */
  drop?: number;
  /** Probability a frame arrives twice. @default 0 */
  duplicate?: number;
  /** Probability a frame is held back and overtaken by the next one (or released after `reorderWindowMs`). @default 0 */
  reorder?: number;
  /** Each frame is delayed by a uniform random [min, max] ms; order is kept (reordering is `reorder`'s job). @default no delay */
  delayMs?: [number, number];
  /** Seed of the generators; the same seed and traffic give the same faults. @default a random seed, see `FaultyTransport.seed` */
  seed?: number;
  /** Which frames suffer: those this end sends, those it receives, or both. Partitions always cut both. @default 'both' */
  direction?: 'send' | 'receive' | 'both';
  /** How long a frame held for reordering waits for one to overtake it. @default 20 */
  reorderWindowMs?: number;
}

/** What one direction did to its frames. */
export interface FaultCounts {
  /** Frames that entered the lane. */
  frames: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
  /** Frames dropped because of a partition. */
  partitioned: number;
}

/** A transport with faults; see {@link withFaults}. */
export interface FaultyTransport extends Transport {
  /** While on, frames in both directions are dropped. */
  partition(on: boolean): void;
  readonly partitioned: boolean;
  /** Changes the rates from now on (the generators go on; `seed` is ignored). */
  setPlan(plan: FaultPlan): void;
  /** The seed in use (print it when a randomized test fails). */
  readonly seed: number;
  readonly stats: { readonly send: Readonly<FaultCounts>; readonly receive: Readonly<FaultCounts> };
  /** The wrapped transport. */
  readonly inner: Transport;
}

/** mulberry32: a tiny, fast, seedable generator of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkPlan(plan: FaultPlan): Required<Omit<FaultPlan, 'seed' | 'delayMs'>> & { delayMs: [number, number] } {
  if (plan === null || typeof plan !== 'object') throw TwinpageError.invalidArgument('plan must be an object');
  const rate = (name: 'drop' | 'duplicate' | 'reorder') => {
    const v = plan[name] ?? 0;
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw TwinpageError.invalidArgument(`${name} must be a probability from 0 to 1, got ${String(v)}`);
    return v;
  };
  const delay = plan.delayMs ?? [0, 0];
  if (!Array.isArray(delay) || delay.length !== 2 || !(delay[0] >= 0) || !(delay[1] >= delay[0])) {
    throw TwinpageError.invalidArgument('delayMs must be [min, max] with 0 <= min <= max');
  }
  const direction = plan.direction ?? 'both';
  if (direction !== 'send' && direction !== 'receive' && direction !== 'both') throw TwinpageError.invalidArgument(`direction must be 'send', 'receive' or 'both'`);
  const reorderWindowMs = plan.reorderWindowMs ?? 20;
  if (typeof reorderWindowMs !== 'number' || !(reorderWindowMs >= 0)) throw TwinpageError.invalidArgument('reorderWindowMs must be a non-negative number');
  return { drop: rate('drop'), duplicate: rate('duplicate'), reorder: rate('reorder'), delayMs: [delay[0], delay[1]], direction, reorderWindowMs };
}

type Plan = ReturnType<typeof checkPlan>;

/** One direction: decides each frame's fate and releases the survivors in their (possibly perturbed) order. */
class Lane {
  readonly counts: FaultCounts = { frames: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, partitioned: 0 };
  plan!: Plan;
  #held: Uint8Array | null = null;
  #heldTimer: ReturnType<typeof setTimeout> | null = null;
  #queue: Array<{ at: number; frame: Uint8Array }> = [];
  #queueHead = 0;
  #lastAt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(
    readonly active: (plan: Plan) => boolean,
    readonly rng: () => number,
    readonly emit: (frame: Uint8Array) => Promise<void> | void,
    readonly copy: boolean,
  ) {}

  /** Returns the inner send's promise when the frame went straight through, else nothing. */
  push(frame: Uint8Array, partitioned: boolean): Promise<void> | void {
    this.counts.frames++;
    if (partitioned) { this.counts.partitioned++; return; }
    const plan = this.plan;
    if (!this.active(plan)) return this.#out(frame, 0);
    const rDrop = this.rng(), rDuplicate = this.rng(), rReorder = this.rng(), rDelay = this.rng();
    if (rDrop < plan.drop) { this.counts.dropped++; return; }
    if (rDuplicate < plan.duplicate) {
      this.counts.duplicated++;
      this.#stage(frame.slice(), false, rDelay);
      this.#stage(frame, rReorder < plan.reorder, rDelay);
      return;
    }
    return this.#stage(frame, rReorder < plan.reorder, rDelay);
  }

  #stage(frame: Uint8Array, reorder: boolean, rDelay: number): Promise<void> | void {
    const held = this.#held;
    if (held !== null) {
      // This frame overtakes the held one.
      this.#held = null;
      if (this.#heldTimer !== null) { clearTimeout(this.#heldTimer); this.#heldTimer = null; }
      this.#out(frame, rDelay);
      this.#out(held, rDelay);
      return;
    }
    if (reorder) {
      this.counts.reordered++;
      this.#held = this.copy ? frame.slice() : frame;
      this.#heldTimer = setTimeout(() => {
        this.#heldTimer = null;
        const h = this.#held;
        this.#held = null;
        if (h !== null) this.#out(h, 0);
      }, this.plan.reorderWindowMs);
      return;
    }
    return this.#out(frame, rDelay);
  }

  #out(frame: Uint8Array, rDelay: number): Promise<void> | void {
    if (this.#stopped) return;
    const [min, max] = this.plan.delayMs;
    const delay = min + (max - min) * rDelay;
    if (delay <= 0 && this.#queueHead === this.#queue.length) return this.#emit(frame);
    if (delay > 0) this.counts.delayed++;
    const at = Math.max(Date.now() + delay, this.#lastAt);
    this.#lastAt = at;
    this.#queue.push({ at, frame: this.copy ? frame.slice() : frame });
    this.#schedule();
  }

  #emit(frame: Uint8Array): Promise<void> | void {
    return this.emit(frame);
  }

  #schedule(): void {
    if (this.#timer !== null || this.#queueHead === this.#queue.length) return;
    const wait = Math.max(0, this.#queue[this.#queueHead]!.at - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = Date.now();
      while (this.#queueHead < this.#queue.length && this.#queue[this.#queueHead]!.at <= now && !this.#stopped) {
        const { frame } = this.#queue[this.#queueHead]!;
        this.#queue[this.#queueHead++] = undefined as unknown as { at: number; frame: Uint8Array };
        this.#emit(frame);
      }
      if (this.#queueHead === this.#queue.length) { this.#queue = []; this.#queueHead = 0; }
      this.#schedule();
    }, wait);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#heldTimer !== null) clearTimeout(this.#heldTimer);
    this.#timer = this.#heldTimer = null;
    this.#held = null;
    this.#queue = [];
    this.#queueHead = 0;
  }
}

class Faulty implements FaultyTransport {
  readonly inner: Transport;
  readonly seed: number;
  readonly #send: Lane;
  readonly #receive: Lane;
  #partitioned = false;
  #handler: ((frame: Uint8Array) => void) | null = null;

  constructor(inner: Transport, plan: FaultPlan) {
    if (inner === null || typeof inner !== 'object' || typeof inner.send !== 'function') throw TwinpageError.invalidArgument('transport must be a Transport');
    const checked = checkPlan(plan);
    this.inner = inner;
    this.seed = plan.seed === undefined ? (Math.random() * 0x100000000) >>> 0 : plan.seed >>> 0;
    this.#send = new Lane(
      (p) => p.direction !== 'receive',
      mulberry32(this.seed),
      (frame) => {
        const sent = inner.send(frame);
        sent.catch(() => { /* a frame lost to a close is lost like any other */ });
        return sent;
      },
      true,
    );
    this.#receive = new Lane(
      (p) => p.direction !== 'send',
      mulberry32(this.seed ^ 0x9e3779b9),
      (frame) => {
        const handler = this.#handler;
        if (handler === null) return;
        try { handler(frame); } catch (err) { this.close(err instanceof Error ? err : new Error(String(err))); }
      },
      false,
    );
    this.#send.plan = this.#receive.plan = checked;
    inner.onClose(() => { this.#send.stop(); this.#receive.stop(); });
  }

  get closed(): boolean { return this.inner.closed; }
  get shared(): SharedArrayBuffer | null { return this.inner.shared; }
  get peerId(): string | null { return this.inner.peerId; }
  get partitioned(): boolean { return this.#partitioned; }
  get stats() { return { send: this.#send.counts, receive: this.#receive.counts }; }

  send(frame: Uint8Array): Promise<void> {
    if (this.inner.closed) return Promise.reject(TwinpageError.closed('the transport is closed'));
    if (!(frame instanceof Uint8Array)) return Promise.reject(TwinpageError.invalidArgument('frame must be a Uint8Array'));
    return this.#send.push(frame, this.#partitioned) ?? Promise.resolve();
  }

  onFrame(handler: (frame: Uint8Array) => void): void {
    if (typeof handler !== 'function') throw TwinpageError.invalidArgument('onFrame: handler must be a function');
    const first = this.#handler === null;
    this.#handler = handler;
    if (first) this.inner.onFrame((frame) => { this.#receive.push(frame, this.#partitioned); });
  }

  onClose(handler: (err?: Error) => void): void { this.inner.onClose(handler); }

  close(reason?: Error): void {
    this.#send.stop();
    this.#receive.stop();
    this.inner.close(reason);
  }

  partition(on: boolean): void { this.#partitioned = Boolean(on); }

  setPlan(plan: FaultPlan): void {
    const checked = checkPlan(plan);
    this.#send.plan = this.#receive.plan = checked;
  }
}

/**
 * Wraps `transport` so that the frames it sends and receives suffer the faults
 * of `plan`. With an empty plan it passes everything through unchanged (and
 * keeps the inner transport's backpressure).
 */
export function withFaults(transport: Transport, plan: FaultPlan = {}): FaultyTransport {
  return new Faulty(transport, plan);
}
