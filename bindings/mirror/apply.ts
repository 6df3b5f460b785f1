// The secondary's side of one connection: the partner's stream applied in
// order, through the memory's own commit path (Memory.apply), and
// acknowledged cumulatively: at memory level as frames arrive, at disk level
// as their applies finish in order. A release's WRITE_PAGEs wait here until
// its RELEASE_POINTER, and take effect with it: a primary that dies
// mid-release leaves the old contents. Block-table changes wait for every
// apply before them; page releases start in order and overlap (their ranges
// keep conflicting ones in order), so their journal flushes are shared.

import { TwinpageError } from '../errors.js';
import type { Change, Memory, PageWrite } from '../memory/memory.js';
import { AckLevel, MessageType, type Message, type Request } from '../messages.js';
import { blockOf, pageOf } from './changes.js';

export interface ApplierHooks {
  /** Sends a frame outside the stream (an ACK). */
  post(m: Message): void;
  /** Ends the connection: a frame could not be applied. */
  fail(err: unknown): void;
  /** Pages of a release applied: this node holds what the partner holds there. */
  taken(pages: number[]): void;
}

export class Applier {
  readonly #memory: Memory;
  readonly #hooks: ApplierHooks;
  /** Highest sequence received, and applied (with everything before it). */
  #received = 0;
  #applied = 0;
  #queue: Promise<void> = Promise.resolve();
  /** Tasks on the queue not yet finished: none, and a frame that is here starts at once. */
  #busy = 0;
  /** An apply failed: the connection ends, and nothing after it is applied. */
  #failed = false;
  readonly #inflight: Array<{ seq: number; done: Promise<void>; finished: boolean }> = [];
  readonly #incoming = new IncomingChanges();
  #ackScheduled = -1;

  constructor(memory: Memory, hooks: ApplierHooks) {
    this.#memory = memory;
    this.#hooks = hooks;
  }

  get received(): number { return this.#received; }
  get applied(): number { return this.#applied; }

  /**
   * Resolves once every frame taken so far is applied (or failed): what an
   * earlier connection's applier still does must land before a later
   * connection's frames (a resync's older contents of the same page) do.
   * Only for an applier whose gate opened: otherwise it applies nothing.
   */
  drained(): Promise<void> {
    return this.#queue
      .then(() => Promise.all(this.#inflight.map((f) => f.done.catch(() => {}))))
      .then(() => undefined, () => undefined);
  }

  /** Applies nothing more until `gate` settles (this node's new generation is durable first). */
  hold(gate: Promise<unknown>): void {
    this.#busy++;
    this.#queue = this.#queue.then(() => gate.then(() => { this.#busy--; }, () => { this.#busy--; }));
  }

  /**
   * A request took sequence `seq` in the partner's numbering. It changes
   * nothing here: once every frame before it is applied, it counts as
   * applied (acknowledged at disk level), or the partner would wait for it.
   */
  saw(seq: number): void {
    this.#received = Math.max(this.#received, seq);
    if (this.#busy === 0) {
      this.#inflight.push({ seq, done: RESOLVED, finished: true });
      this.#settle();
      return;
    }
    this.#busy++;
    this.#queue = this.#queue.then(() => {
      this.#busy--;
      this.#inflight.push({ seq, done: RESOLVED, finished: true });
      this.#settle();
    });
  }

  /**
   * Takes frame `seq` of the stream: a duplicate is dropped (false), a gap is
   * BAD_FRAME (the connection ends; the primary resyncs what was not
   * acknowledged). True when `seq` is the next frame, to apply.
   */
  next(seq: number): boolean {
    if (seq <= this.#received) return false;
    if (seq !== this.#received + 1) throw TwinpageError.badFrame(`frame ${seq} arrived after ${this.#received}: frames were lost`);
    return true;
  }

  /**
   * Starts applying the next frame's message (its page may still be on its
   * way from an exchange). With nothing queued before it, a message that is
   * here and waits for nothing else starts at once: a page joins its
   * release, a release starts its apply.
   */
  apply(seq: number, arriving: Request | Promise<Request>): void {
    this.#received = seq;
    if (this.#failed) return;
    if (this.#busy === 0 && !(arriving instanceof Promise) && !isBarrier(arriving)) {
      this.#start(seq, arriving);
    } else {
      this.#busy++;
      this.#queue = this.#queue.then(async () => {
        let msg: Request;
        try {
          msg = await arriving;
        } catch (err) {
          this.#fail(err);
        }
        if (this.#failed) return; // and the queue stays busy: nothing after applies
        if (isBarrier(msg!)) {
          // A block-table change waits for every apply before it, and holds the queue until it is done.
          await Promise.all(this.#inflight.map((f) => f.done)).catch(() => {});
          if (this.#failed) return;
          await this.#start(seq, msg!).catch(() => {});
        } else {
          this.#start(seq, msg!);
        }
        this.#busy--;
      });
    }
    this.#scheduleAck(AckLevel.MEMORY);
  }

  /** Starts the change `msg` completes (if any) as frame `seq`; its entry settles in order. */
  #start(seq: number, msg: Request): Promise<void> {
    let pages: number[] | null = null;
    let done: Promise<void>;
    try {
      const change = this.#incoming.take(msg);
      if (change?.type === 'release') pages = change.pages.map((p) => p.page);
      done = change ? this.#memory.apply(change) : RESOLVED;
    } catch (err) {
      done = Promise.reject(err);
    }
    if (done === RESOLVED) {
      // A page of a release to come: nothing to wait for.
      this.#inflight.push({ seq, done, finished: true });
      this.#settle();
      return done;
    }
    const entry = { seq, done, finished: false };
    this.#inflight.push(entry);
    done.then(() => {
      entry.finished = true;
      if (pages) this.#hooks.taken(pages);
      this.#settle();
    }, (err) => this.#fail(err));
    return done;
  }

  #fail(err: unknown): void {
    this.#failed = true;
    this.#hooks.fail(err);
  }

  /** A heartbeat repeats the acknowledgements, in case one was lost. */
  repeatAck(): void {
    if (this.#received > 0) this.#scheduleAck(this.#applied === this.#received ? AckLevel.DISK : AckLevel.MEMORY);
  }

  /** Acknowledges at disk level every frame whose apply (and all before it) finished. */
  #settle(): void {
    let advanced = false;
    while (this.#inflight.length && this.#inflight[0].finished) {
      this.#applied = this.#inflight.shift()!.seq;
      advanced = true;
    }
    if (advanced) this.#scheduleAck(AckLevel.DISK);
  }

  #scheduleAck(level: number): void {
    if (this.#ackScheduled >= level) return;
    const first = this.#ackScheduled < 0;
    this.#ackScheduled = Math.max(this.#ackScheduled, level);
    if (!first) return;
    queueMicrotask(() => {
      const lvl = this.#ackScheduled;
      this.#ackScheduled = -1;
      const applied = lvl >= AckLevel.DISK ? this.#applied : this.#received;
      this.#hooks.post({ type: MessageType.ACK, applied, level: lvl as 0 | 1 | 2 });
      if (lvl >= AckLevel.DISK && this.#received > this.#applied) this.#hooks.post({ type: MessageType.ACK, applied: this.#received, level: AckLevel.MEMORY });
    });
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

/** A block-table change: applied after every apply before it, and before any after it starts. */
function isBarrier(msg: Request): boolean {
  return msg.type === MessageType.ALLOCATE_MEMORY || msg.type === MessageType.RELEASE_MEMORY;
}

/**
 * Messages of the partner's stream turned back into changes: a release's
 * WRITE_PAGEs are held, per block, until its RELEASE_POINTER completes it.
 */
export class IncomingChanges {
  /** A release's pages waiting for its RELEASE_POINTER, per block. */
  readonly #incoming = new Map<string, PageWrite[]>();

  /** The change a message completes, if any (WRITE_PAGEs wait for their RELEASE_POINTER). */
  take(msg: Request): Change | null {
    switch (msg.type) {
      case MessageType.ALLOCATE_MEMORY:
        return { type: 'allocate', block: blockOf(msg) };
      case MessageType.RELEASE_MEMORY:
        this.#incoming.delete(msg.blockId);
        return { type: 'free', blockId: msg.blockId };
      case MessageType.WRITE_PAGE: {
        const list = this.#incoming.get(msg.blockId);
        const page = pageOf(msg);
        if (list) list.push(page); else this.#incoming.set(msg.blockId, [page]);
        return null;
      }
      case MessageType.RELEASE_POINTER: {
        const writes = this.#incoming.get(msg.blockId) ?? [];
        this.#incoming.delete(msg.blockId);
        if (writes.length !== msg.pages) {
          throw TwinpageError.invalidArgument(`RELEASE_POINTER for block ${msg.blockId} names ${msg.pages} pages; ${writes.length} arrived`);
        }
        return { type: 'release', blockId: msg.blockId, offset: msg.offset, length: msg.length, lsn: msg.lsn, pages: writes };
      }
      default:
        return null; // reads, locks, headers and sense change nothing stored
    }
  }

}
