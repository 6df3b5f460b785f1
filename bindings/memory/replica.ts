// The replica record: what this node keeps in its superblock about its
// partner (meta.mirror), so that a restart knows what may differ without
// comparing everything:
//   - the generations (current, bitmap, history) the mirror's handshake
//     compares, when this node last became primary, whether its current
//     generation is known to the partner, and a pending `discard`;
//   - the out-of-sync record (out-of-sync.ts): runs of pages and block ids
//     the partner may lack, saved when write intents change, every second
//     while it changes, and at close;
//   - the write intents (intents.ts): after a crash (`clean` false) every
//     page of a hot extent counts as out of sync;
//   - `inconsistent`: a secondary being resynced, which may not be promoted.
// Loaded when a mirror attaches; written as one JSON object, in one
// superblock write.

import { intOption } from '../options.js';
import type { Block } from './blocks.js';
import { ActivityLog, type IntentOptions } from './intents.js';
import { OutOfSync, runsFrom } from './out-of-sync.js';

/** The record as stored (meta.mirror). */
export interface StoredReplica {
  /** The current generation. */
  generation: string;
  history: string[];
  /** The generation when this node started recording what the partner lacks (absent: none). */
  bitmapGeneration?: string;
  /** When this node last became primary (ms since the epoch). */
  primarySince?: number;
  /** The partner knows the current generation (a change it lacks must start a new one first). */
  shared?: boolean;
  /** This node gives up its changes at the next split brain (`twinpage discard`). */
  discardLocal?: boolean;
  /** The pair's epoch this node knows (fencing). */
  epoch?: number;
  /** The partner's node id, once a handshake accepted it. */
  partner?: string;
  /** Pages that may differ from the partner, as [first, count] runs; absent: unknown. */
  lag?: unknown[];
  /** Block ids whose allocation or release the partner may lack. */
  blocks?: unknown[];
  /** Hot write-intent extents (extent = page / extentPages). */
  intents?: unknown[];
  extentPages?: number;
  /** True when the mirror was closed cleanly (the intents then need no resync). */
  clean?: boolean;
  /** A secondary being resynced: it may not be promoted until the resync ends. */
  inconsistent?: boolean;
}

export class ReplicaRecord {
  /** Whether the superblock held a record (a node that was paired before). */
  readonly stored: boolean;
  generation: string | null = null;
  bitmapGeneration: string | null = null;
  history: string[] = [];
  inconsistent = false;
  primarySince = 0;
  shared = false;
  discardLocal = false;
  epoch = 0;
  partner: string | null = null;
  /** The mirror did not close cleanly last time (a crash). */
  readonly crashed: boolean;
  readonly outOfSync = new OutOfSync();
  readonly intents: ActivityLog;
  readonly #write: (record: StoredReplica) => Promise<void>;
  #queued: Promise<void> | null = null;
  #chain: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;

  /**
   * Loads the record from `stored` (meta.mirror, or undefined), with the
   * blocks this node holds; `write` persists it (the memory's superblock).
   */
  constructor(stored: unknown, blocks: Block[], intents: IntentOptions, write: (record: StoredReplica) => Promise<void>) {
    this.#write = write;
    this.intents = new ActivityLog(intents, () => this.save());
    const s = stored as StoredReplica | undefined;
    this.stored = !!s && typeof s === 'object' && typeof s.generation === 'string' && Array.isArray(s.history);
    this.crashed = this.stored && s!.clean === false;
    if (this.stored) {
      this.generation = s!.generation;
      this.history = s!.history.filter((h): h is string => typeof h === 'string');
      this.bitmapGeneration = typeof s!.bitmapGeneration === 'string' ? s!.bitmapGeneration : null;
      this.primarySince = Number.isSafeInteger(s!.primarySince) ? s!.primarySince! : 0;
      // A record of an older version was paired: its generation is the partner's too.
      this.shared = s!.shared !== false;
      this.discardLocal = s!.discardLocal === true;
      this.epoch = Number.isSafeInteger(s!.epoch) && s!.epoch! >= 0 ? s!.epoch! : 0;
      this.partner = typeof s!.partner === 'string' ? s!.partner : null;
      this.#restore(s!, blocks);
    }
  }

  /** Takes what the stored record says may differ from the partner. */
  #restore(stored: StoredReplica, blocks: Block[]): void {
    const oos = this.outOfSync;
    this.inconsistent = stored.inconsistent === true;
    if (!Array.isArray(stored.lag)) {
      oos.forget();
      return;
    }
    oos.addRuns(runsFrom(stored.lag), blocks);
    if (Array.isArray(stored.blocks)) for (const id of stored.blocks) if (typeof id === 'string') oos.addBlock(id);
    if (stored.clean === false && blocks.some((b) => b.policy.writeMode === 'write-back')) {
      // Write-back pages the partner acknowledged may never have reached this
      // node's disk: after a crash only a comparison of checksums finds them.
      oos.forget();
      return;
    }
    if (stored.clean === false && Array.isArray(stored.intents)) {
      // A crash: writes to the hot extents may have reached this node and not the partner.
      const per = intOption('stored extentPages', stored.extentPages, 128);
      const hot = new Set(stored.intents.filter((e): e is number => Number.isSafeInteger(e) && (e as number) >= 0));
      for (const b of blocks) {
        for (let p = b.base; p < b.base + b.pages; p++) if (hot.has(Math.floor(p / per))) oos.add(p);
      }
    }
  }

  /** The record to store. */
  record(clean: boolean): StoredReplica {
    const { lag, blocks } = this.outOfSync.record();
    return {
      generation: this.generation ?? '',
      history: this.history,
      bitmapGeneration: this.bitmapGeneration ?? undefined,
      primarySince: this.primarySince,
      shared: this.shared,
      discardLocal: this.discardLocal,
      epoch: this.epoch,
      partner: this.partner ?? undefined,
      lag: lag ?? undefined,
      blocks,
      intents: clean ? [] : this.intents.extents(),
      extentPages: this.intents.extentPages,
      clean,
      inconsistent: this.inconsistent,
    };
  }

  /**
   * Writes the record (as not closed cleanly); resolves once a write that
   * began after this call is durable. Calls while one waits to start share it.
   */
  save(): Promise<void> {
    if (this.#queued) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = null;
      if (this.#closed) return;
      return this.#write(this.record(false));
    });
    this.#queued = run;
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Saves the record within a second (the out-of-sync set changed; nothing waits on it). */
  saveSoon(): void {
    if (this.#timer || this.#closed) return;
    const timer = setTimeout(() => {
      this.#timer = null;
      // A failed write (the superblock's device failing) is tried again a second later.
      this.save().catch(() => this.saveSoon());
    }, 1000);
    // Node: a pending save does not keep the process alive (close() saves anyway).
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  /** Stops saving, and writes the record once more as closed cleanly. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    return this.#write(this.record(true));
  }
}
