// Resync: sending the partner what it lacks. Block-table changes first
// (blocks gone here are freed there first, so their pages are free for the
// blocks it lacks), then the out-of-sync pages in address order, in releases
// of up to 64 pages read through read pointers, with progress; new writes go
// on meanwhile. It runs in rounds until nothing lags, and says so to the
// partner (a second HELLO) so a secondary stops being inconsistent.
//
// What to resync is decided here too: at handshake, the union of this
// node's record and the partner's, plus the blocks one side lacks; without
// a record on either side, every page's checksum is compared (verify).

import type { Block, Memory } from '../memory/memory.js';
import type { ReplicaRecord } from '../memory/replica.js';
import { runsFrom } from '../memory/out-of-sync.js';
import { pointerPages } from './changes.js';
import type { Change, LinkPolicy } from '../memory/memory.js';
import type { HelloInfo } from './handshake.js';
import type { VerifyReport } from './verify.js';

/** What a resync's changes are sent with. */
export const RESYNC_POLICY: LinkPolicy = { durability: 'disk', copyMethod: 'auto' };

export interface ResyncHooks {
  /** Sends one change to the partner (or records it as lagging without one). */
  route(change: Change, policy: LinkPolicy): Promise<void>;
  /** Whether a resync may go on: a primary, connected and not degraded, not closed. */
  canRun(): boolean;
  /** Compares every page's checksum with the partner's. */
  verify(): Promise<VerifyReport>;
  /** Tells the partner it holds everything now. */
  synced(): void;
  onProgress?: (progress: { done: number; total: number }) => void;
  /** A resync (or saving what it must send) failed: said, and tried again on a later heartbeat. */
  report(err: unknown): void;
}

export class Resync {
  readonly #memory: Memory;
  readonly #replica: ReplicaRecord;
  readonly #hooks: ResyncHooks;
  #running: Promise<void> | null = null;
  /** Pages sent by resyncs since this node opened, and by the last resync. */
  resyncedPages = 0;
  last: { pages: number; ms: number } | null = null;

  constructor(memory: Memory, replica: ReplicaRecord, hooks: ResyncHooks) {
    this.#memory = memory;
    this.#replica = replica;
    this.#hooks = hooks;
  }

  get running(): boolean {
    return this.#running !== null;
  }

  /** Sends the partner what it lacks now; resolves once it holds it all. Calls while one runs share it. */
  run(): Promise<void> {
    this.#running ??= this.#run().finally(() => { this.#running = null; });
    return this.#running;
  }

  async #run(): Promise<void> {
    const start = Date.now();
    const before = this.resyncedPages;
    const oos = this.#replica.outOfSync;
    // Rounds, until nothing lags: more may be found while one runs.
    while (!oos.empty && this.#hooks.canRun()) await this.#round();
    this.last = { pages: this.resyncedPages - before, ms: Date.now() - start };
    this.#replica.saveSoon();
    // The partner holds everything now: it may be promoted again.
    if (this.#hooks.canRun() && oos.empty) this.#hooks.synced();
  }

  async #round(): Promise<void> {
    const m = this.#memory;
    const oos = this.#replica.outOfSync;
    const blocks = new Map(m.blocks().map((b) => [b.id, b]));
    // Blocks gone here are freed there first, so their pages are free for blocks it lacks.
    const ids = oos.takeBlocks().sort((a, b) => Number(blocks.has(a)) - Number(blocks.has(b)));
    for (const id of ids) {
      const b = blocks.get(id);
      await this.#hooks.route(b ? { type: 'allocate', block: b } : { type: 'free', blockId: id }, RESYNC_POLICY);
    }
    const pages = oos.sorted();
    const sorted = [...blocks.values()].sort((a, b) => a.base - b.base);
    const owner = (page: number) => ownerOf(sorted, page);
    let done = 0;
    const ps = m.pageSize;
    for (let i = 0; i < pages.length;) {
      const block = owner(pages[i]);
      if (!block) { oos.delete(pages[i]); i++; done++; continue; }
      // A run of lagging pages of one block, at most 64 (and half what a pointer may hold here).
      const most = Math.max(1, Math.min(64, m.maxPointerPages >> 1));
      let j = i + 1;
      while (j < pages.length && j - i < most && pages[j] === pages[j - 1] + 1 && pages[j] < block.base + block.pages) j++;
      const first = pages[i];
      const count = j - i;
      const offset = (first - block.base) * ps;
      const length = Math.min(count * ps, block.length - offset);
      // The read pointer is held until the pages are on their way: a write to
      // them waits, so its frames follow these (never a stale image after a newer one).
      const ptr = await m.acquireRead(block.id, offset, length);
      try {
        const change: Change = { type: 'release', blockId: block.id, offset, length, lsn: 0, pages: pointerPages(ptr, first, count, (x) => m.core.checksum(x)) };
        for (let k = i; k < j; k++) oos.delete(pages[k]);
        await this.#hooks.route(change, RESYNC_POLICY);
      } finally {
        await ptr.release();
      }
      this.resyncedPages += count;
      done += count;
      this.#hooks.onProgress?.({ done, total: pages.length });
      i = j;
    }
  }

  /**
   * A primary meets its partner: resyncs the union of what this node
   * changed without it and what the partner reports as differing, plus the
   * blocks one side lacks. With no record on either side (a new partner, a
   * node of an older version) it compares every page's checksum instead.
   */
  fromHandshake(peer: HelloInfo, fresh: boolean): void {
    const runs = peer.outOfSync ? runsFrom(peer.outOfSync) : null;
    const peerBlocks = peer.blocks ? new Set(peer.blocks) : null;
    const oos = this.#replica.outOfSync;
    if (fresh || peer.inconsistent || runs === null || peerBlocks === null || !oos.known) {
      this.byChecksums(peerBlocks).catch((err) => this.#hooks.report(err));
      return;
    }
    oos.addRuns(runs, this.#memory.blocks());
    this.#blockDifferences(peerBlocks);
    if (!oos.empty) {
      // Kept first: if this node fails mid-resync, it still knows what to send.
      this.#replica.save().then(() => this.run()).catch((err) => this.#hooks.report(err));
    }
  }

  /** Blocks this node holds and the partner lacks (all their pages), and blocks only the partner holds. */
  #blockDifferences(peerBlocks: Set<string>): void {
    const oos = this.#replica.outOfSync;
    const mine = this.#memory.blocks();
    for (const b of mine) {
      if (peerBlocks.has(b.id)) continue;
      oos.addBlock(b.id);
      oos.addBlockPages(b);
    }
    const ids = new Set(mine.map((b) => b.id));
    for (const id of peerBlocks) if (!ids.has(id)) oos.addBlock(id);
  }

  /**
   * Resyncs a partner that is behind without a record of what it missed:
   * compares every page's checksum (verify) and sends what differs, and
   * whole blocks it lacks.
   */
  async byChecksums(peerBlocks: Set<string> | null = null): Promise<void> {
    const report = await this.#hooks.verify();
    const oos = this.#replica.outOfSync;
    const blocks = new Map(this.#memory.blocks().map((b) => [b.id, b]));
    for (const d of report.differences) {
      if (d.page >= 0) { oos.add(d.page); continue; }
      const b = blocks.get(d.blockId);
      if (!b) continue;
      oos.addBlock(b.id);
      oos.addBlockPages(b);
    }
    if (peerBlocks) this.#blockDifferences(peerBlocks);
    // The partner now matches this node's record; from here on it is kept.
    oos.learn();
    await this.#replica.save();
    await this.run();
  }
}

/** The block holding `page`, in blocks sorted by base. */
function ownerOf(sorted: Block[], page: number): Block | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid].base + sorted[mid].pages <= page) lo = mid + 1; else hi = mid;
  }
  const b = sorted[lo];
  return b && b.base <= page ? b : undefined;
}

