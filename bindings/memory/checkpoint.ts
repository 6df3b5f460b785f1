// Checkpoints: the page file brought up to date and a new journal epoch
// started that holds only the block table, so the journal stays short and a
// reopen replays little. Run at open, by flush() and close(), when the
// journal outgrows `checkpointBytes`; and the background flusher, which
// journals write-back pages every `flushIntervalMs`.

import type { Hash } from '../storage/format.js';
import { RecordType, fillSector, saltOf } from '../storage/format.js';
import { Journal } from '../storage/journal.js';
import type { Store } from '../storage/device.js';
import type { PageStore } from '../storage/pagestore.js';
import type { Scheduler } from '../sched/scheduler.js';
import { policyToRecord } from '../policies.js';
import type { BlockTable } from './blocks.js';
import type { FrameCache } from './cache.js';
import type { Metadata } from './metadata.js';
import type { RangeLocks } from './ranges.js';
import type { Wal } from './wal.js';

const MAX_PAGE = 0xFFFFFFFE;

export interface CheckpointDeps {
  store: Store;
  pageSize: number;
  hash: Hash;
  cache: FrameCache;
  sched: Scheduler;
  pageStore: PageStore;
  wal: Wal;
  metadata: Metadata;
  ranges: RangeLocks;
  blocks: BlockTable;
  /** Runs `fn` after every allocate, free and checkpoint before it. */
  serial: <T>(fn: () => Promise<T>) => Promise<T>;
  checkpointBytes: number;
}

export class Checkpointer {
  readonly #d: CheckpointDeps;
  #running: Promise<void> | null = null;
  #flusher: ReturnType<typeof setInterval> | null = null;

  constructor(deps: CheckpointDeps) {
    this.#d = deps;
  }

  get running(): boolean {
    return this.#running !== null;
  }

  /** Starts a checkpoint in the background when the journal outgrew its bound. */
  maybe(): void {
    if (this.#d.wal.size > this.#d.checkpointBytes && !this.#running) this.run().catch(() => {});
  }

  /**
   * Brings the page file up to date and starts a new journal epoch holding
   * only the block table. Write pointers wait while it runs; readers do not.
   */
  run(): Promise<void> {
    if (this.#running) return this.#running;
    const d = this.#d;
    const run = (async () => {
      // The barrier first, then the serial chain: a free() already holding
      // its range finishes before the checkpoint takes the chain.
      const barrier = d.ranges.insert(0, MAX_PAGE, false);
      try {
        await d.ranges.waitTurn(barrier);
        await d.serial(async () => {
          await d.cache.destageAll();
          await d.sched.drain();
          await d.pageStore.flush();
          await this.#newEpoch();
        });
      } finally {
        d.ranges.remove(barrier);
      }
    })().finally(() => { this.#running = null; });
    this.#running = run;
    return run;
  }

  async #newEpoch(): Promise<void> {
    const d = this.#d;
    const epoch = d.metadata.superblock.walEpoch + 1;
    const device = await d.store.open(`wal.${epoch}`);
    await device.truncate(0);
    const fill = fillSector(saltOf(d.metadata.nodeId), epoch);
    const journal = new Journal(device, epoch, 0, { pageSize: d.pageSize, hash: d.hash, fill, filledTo: 0, fresh: true });
    journal.append({ type: RecordType.Epoch, lsn: d.wal.nextLsn, epoch, blocks: d.blocks.size });
    for (const b of d.blocks.values()) {
      journal.append({ type: RecordType.Alloc, lsn: b.generation, epoch, block: { ...b, policy: policyToRecord(b.policy) } });
    }
    await journal.commit();
    await d.store.sync();
    // Switch: the slot after the current one names the new journal, with
    // what this checkpoint made durable (the journal's records, the lengths
    // of the page and checksum files). Then the other slot too, so that both
    // agree before the old journal goes and a later damaged slot leaves a
    // good one naming a journal that exists.
    await d.metadata.write({
      walEpoch: epoch, walEnd: journal.size, sumsBytes: d.pageStore.sumsLength, pagesBytes: d.pageStore.pagesLength,
      checkpointLsn: d.wal.nextLsn,
    });
    const old = d.wal.swap(journal);
    if (old) {
      await old.settle();
      await old.device.close();
    }
    await d.store.remove(`wal.${epoch - 1}`);
    await d.store.sync();
  }

  /** Journals write-back pages every `ms` (and checkpoints a journal grown too long). */
  startFlusher(ms: number): void {
    const d = this.#d;
    this.#flusher = setInterval(() => {
      if (this.#running) return;
      const unlogged = d.cache.unloggedIdle();
      const work = d.wal.size > d.checkpointBytes ? this.run() : unlogged.length ? d.serial(() => d.cache.logFrames(unlogged)) : null;
      work?.catch(() => {}); // a failed background flush leaves the pages dirty; flush() reports errors
    }, ms);
    (this.#flusher as { unref?: () => void }).unref?.();
  }

  stopFlusher(): void {
    if (this.#flusher) clearInterval(this.#flusher);
    this.#flusher = null;
  }
}
