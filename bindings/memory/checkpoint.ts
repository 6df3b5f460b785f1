// Checkpoints: the page file brought up to date and a new journal epoch
// started that holds only the block table's changes since its table file
// (the table file written again when they grow many), so the journal stays
// short and a reopen replays little. Run at open, by flush() and close(), when the
// journal outgrows `checkpointBytes`; and the background flusher, which
// journals write-back pages every `flushIntervalMs`.

import type { Hash } from '../storage/format.js';
import { RecordType, fillInto, fillSector, roundUp, saltOf } from '../storage/format.js';
import { Journal } from '../storage/journal.js';
import { NO_TABLE, tableName, tableRefOf, writeTable } from '../storage/table.js';
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

/** The journal file a checkpoint recycles (an older epoch's, never read again). */
export const SPARE_JOURNAL = 'wal-spare';
/** Fill written ahead of time into the spare: in steps of this much, up to the spare's size (at most PREFILL_MAX). */
const PREFILL_STEP = 4 << 20;
const PREFILL_MAX = 256 << 20;

/**
 * Changes since the block table file (blocks added, table blocks freed)
 * that make a checkpoint write it again: a 64th of the blocks, and at least
 * 256. Below that the new journal carries them (a reopen replays at most
 * that many records on top of the table), above it the table is rewritten
 * (a checkpoint writes 48 bytes per block only once per that many changes).
 */
export function tableThreshold(blocks: number): number {
  return Math.max(256, Math.floor(blocks / 64));
}

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
  /** Resolves once the allocations whose records are appended are flushed and in the block table. */
  settleChanges: () => Promise<void>;
  checkpointBytes: number;
}

export class Checkpointer {
  readonly #d: CheckpointDeps;
  #running: Promise<void> | null = null;
  #tableWanted = false;
  #closing = false;
  /** The fill being written ahead of time into the spare journal, for the epoch after this one. */
  #prefill: { epoch: number; to: number; stop: boolean; done: Promise<void> } | null = null;
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
          await d.settleChanges();
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
    const sb = d.metadata.superblock;
    const epoch = sb.walEpoch + 1;
    const salt = saltOf(d.metadata.nodeId);
    const blocks = d.blocks;
    // The block table file is written again once enough has changed since
    // the last one (or when asked: scrub found it damaged); until then the
    // new journal carries the changes.
    const rewrite = this.#tableWanted || blocks.changesSinceTable >= tableThreshold(blocks.size) || (sb.tableEpoch > 0 && blocks.size === 0);
    let table = tableRefOf(sb);
    if (rewrite && blocks.size > 0) {
      const name = tableName(epoch);
      const device = await d.store.open(name);
      try {
        const order = blocks.sortedRows();
        table = await writeTable(device, epoch, salt, d.hash, {
          blocks: order.length,
          policies: blocks.policies.map(policyToRecord),
          encode: (from, n, view, at) => blocks.encodeEntries(order, from, n, view, at),
        });
      } finally {
        await device.close();
      }
    } else if (rewrite) {
      table = NO_TABLE;
    }
    // The journal of the last epoch but one is recycled: written over in
    // place, its space is already the file's (a flush then records no new
    // space), and the fill goes before any record as in a new file.
    const name = `wal.${epoch}`;
    // Fill written into the spare ahead of time, for this epoch, flushed: records may go there at once.
    const prefilled = await this.#stopPrefill(epoch);
    await d.store.remove(name); // a checkpoint of this epoch cut short before its superblock: never named
    if (await d.store.exists(SPARE_JOURNAL)) await d.store.rename(SPARE_JOURNAL, name);
    const device = await d.store.open(name, { durableWrites: true });
    const fill = fillSector(salt, epoch);
    const journal = new Journal(device, epoch, 0, { pageSize: d.pageSize, hash: d.hash, fill, filledTo: prefilled, fresh: true });
    const added = rewrite ? [] : [...blocks.addedSinceTable()];
    const freed = rewrite ? [] : blocks.freedSinceTable();
    journal.append({ type: RecordType.Epoch, lsn: d.wal.nextLsn, epoch, blocks: added.length + freed.length });
    for (const b of added) {
      journal.append({ type: RecordType.Alloc, lsn: b.generation, epoch, block: { ...b, policy: policyToRecord(b.policy) } });
    }
    for (const f of freed) journal.append({ type: RecordType.Free, lsn: f.lsn, epoch, id: f.id });
    await journal.commit();
    await d.store.sync();
    // Switch: the slot after the current one names the new journal (and
    // table), with what this checkpoint made durable (the journal's records,
    // the lengths of the page and checksum files). Then the other slot too,
    // so that both agree before the old files go and a later damaged slot
    // leaves a good one naming files that exist.
    await d.metadata.write({
      walEpoch: epoch, walEnd: journal.size, sumsBytes: d.pageStore.sumsLength, pagesBytes: d.pageStore.pagesLength,
      checkpointLsn: d.wal.nextLsn, tableEpoch: table.epoch, tableBytes: table.bytes, tableBlocks: table.blocks, tableCheck: table.check,
    });
    if (rewrite) {
      blocks.tableWritten();
      this.#tableWanted = false;
    }
    const old = d.wal.swap(journal);
    if (old) {
      await old.settle();
      await old.device.close();
    }
    // Kept for the next checkpoint to write over (the last epoch's journal is never needed again).
    if (await d.store.exists(`wal.${epoch - 1}`)) {
      await d.store.rename(`wal.${epoch - 1}`, SPARE_JOURNAL);
      if (!this.#closing) this.#startPrefill(epoch + 1);
    }
    if (sb.tableEpoch > 0 && sb.tableEpoch !== table.epoch) await d.store.remove(tableName(sb.tableEpoch));
    await d.store.sync();
  }

  /**
   * Writes the fill of journal epoch `epoch` over the spare journal in the
   * background, a step at a time, and flushes it: the checkpoint that
   * starts that epoch takes the spare as its journal with that much durable
   * fill, so that the records written after it need none first (the fill is
   * written off the write path, while the journal in use is being written).
   * The spare is named by no superblock: whatever is written there is
   * harmless until a checkpoint takes it.
   */
  #startPrefill(epoch: number): void {
    const d = this.#d;
    const state = { epoch, to: 0, stop: false, done: Promise.resolve() };
    state.done = (async () => {
      const device = await d.store.open(SPARE_JOURNAL);
      try {
        const fill = fillSector(saltOf(d.metadata.nodeId), epoch);
        const target = Math.min(PREFILL_MAX, Math.max(PREFILL_STEP, roundUp(await device.size(), PREFILL_STEP)));
        const step = new Uint8Array(PREFILL_STEP);
        fillInto(step, 0, 0, PREFILL_STEP, fill);
        let at = 0;
        for (; at < target && !state.stop; at += PREFILL_STEP) {
          await device.write(at, step);
          // Let the journal in use have the disk between steps.
          await new Promise((r) => setTimeout(r, 0));
        }
        if (state.stop) return;
        await device.flush();
        state.to = at;
      } finally {
        await device.close();
      }
    })().catch(() => { state.to = 0; });
    this.#prefill = state;
  }

  /** Stops the prefill under way; the durable fill it left for `epoch` (0 when none). */
  async #stopPrefill(epoch: number): Promise<number> {
    const p = this.#prefill;
    this.#prefill = null;
    if (!p) return 0;
    p.stop = true;
    await p.done;
    return p.epoch === epoch ? p.to : 0;
  }

  /** The next checkpoint writes the block table file again, whatever changed (scrub found it damaged). */
  rewriteTable(): void {
    this.#tableWanted = true;
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

  /** Before the last checkpoint of a close: no background work starts any more, and what runs stops. */
  async closing(): Promise<void> {
    this.#closing = true;
    this.stopFlusher();
    await this.#stopPrefill(-1);
  }
}
