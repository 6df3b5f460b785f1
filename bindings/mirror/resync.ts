// Resync: sending the partner what it lacks. Block-table changes first
// (blocks gone here are freed there first, so their pages are free for the
// blocks it lacks), then the out-of-sync pages in address order, in releases
// of up to 64 pages (read as a large read reads them: cached pages from their
// frames, the others straight from the page file, without taking frames from
// the cache), with progress; new writes go on meanwhile. It runs in rounds
// until nothing lags, and then says so (the pair retires its bitmap
// generation and tells the partner, which stops being inconsistent).
//
// What to resync is planned here too, from the handshake: the union of this
// node's out-of-sync record and the partner's, plus the blocks one side
// lacks (block lists compared); or, when the records cannot be trusted
// (a node new to the pair, a generation only in a history, a partner
// interrupted mid-resync), every page's checksum compared (verify).

import { TwinpageError } from '../errors.js';
import type { Block, Change, LinkPolicy, Memory } from '../memory/memory.js';
import type { ReplicaRecord } from '../memory/replica.js';
import { runsFrom } from '../memory/out-of-sync.js';
import type { VerifyReport } from './verify.js';

/** What a resync's changes are sent with. */
export const RESYNC_POLICY: LinkPolicy = { durability: 'disk', copyMethod: 'auto' };

export interface ResyncHooks {
  /**
   * Sends one change to the partner (or records it as lagging without one);
   * resolves once acknowledged. `posted` is called once its frames have
   * their places in the stream.
   */
  route(change: Change, policy: LinkPolicy, posted?: () => void): Promise<void>;
  /** Whether a resync may go on: a primary, connected and not degraded, not closed. */
  canRun(): boolean;
  /** Compares every page's checksum with the partner's. */
  verify(): Promise<VerifyReport>;
  /** The partner holds everything this node holds. */
  synced(): void;
  onProgress?: (progress: { done: number; total: number }) => void;
  /** A resync (or saving what it must send) failed: said, and tried again on a later heartbeat. */
  report(err: unknown): void;
}

/** What the partner reported at the handshake. */
export interface PeerRecord {
  /** Its out-of-sync runs (null: it has no record). */
  runs: Array<[number, number]> | null;
  /** Its block ids. */
  ids: string[];
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
    if (oos.empty) {
      if (this.#hooks.canRun()) this.#hooks.synced();
      return;
    }
    // Not done: the caller is told, not left to believe the partner holds it all.
    throw TwinpageError.closed(`the resync could not finish: ${oos.size} pages${oos.blockCount ? ` and ${oos.blockCount} blocks` : ''} still lag, and this node cannot send them now (no partner connected, or it is not the one that sends); the next connection resyncs them`);
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
    const total = oos.size;
    const sorted = [...blocks.values()].sort((a, b) => a.base - b.base);
    // A release of lagging pages of one block, at most 64 (and half what a pointer may hold here).
    const most = Math.max(1, Math.min(64, m.maxPointerPages >> 1));
    const window = new AckWindow(RESYNC_WINDOW_PAGES);
    try {
      await this.#sendRuns(sorted, most, total, window);
    } finally {
      await window.drain();
    }
  }

  /**
   * The out-of-sync runs in address order, as releases of at most `most`
   * pages each (runs of one block near each other together), read by
   * RESYNC_READERS at a time (their reads overlap) and acknowledged
   * in `window`.
   */
  async #sendRuns(sorted: Block[], most: number, total: number, window: AckWindow): Promise<void> {
    const pieces = this.#pieces(sorted, most);
    let done = 0;
    const reader = async () => {
      for (let next = pieces.next(); !next.done; next = pieces.next()) {
        const piece = next.value;
        let sending: { acked: Promise<void> };
        try {
          sending = await this.#sendPiece(piece);
        } catch (err) {
          // Not sent (its pages could not be read): they stay on the record, for the next try.
          this.#replica.outOfSync.addRuns(piece.runs, [piece.block]);
          throw err;
        }
        await window.add(sending, piece.pages);
        this.resyncedPages += piece.pages;
        done += piece.pages;
        this.#hooks.onProgress?.({ done: Math.min(done, total), total });
      }
    };
    await Promise.all(Array.from({ length: RESYNC_READERS }, reader));
  }

  /**
   * Releases to send: runs of lagging pages of one block, at most `most`
   * pages within RESYNC_SPAN pages; taken off the record as they are handed
   * out (a failure records them again). Lagging pages of no block (freed
   * since) are forgotten.
   */
  *#pieces(sorted: Block[], most: number): Generator<Piece> {
    const oos = this.#replica.outOfSync;
    let piece: Piece | null = null;
    // The bitmap's runs in address order (walked in copied batches: clearing as it goes is fine).
    for (const [runFirst, runCount] of oos.runs()) {
      const end = runFirst + runCount;
      for (let first = runFirst; first < end;) {
        const block = ownerOf(sorted, first);
        if (!block) {
          const next = nextBlockStart(sorted, first);
          const count = Math.min(end, next) - first;
          oos.deleteRun(first, count);
          first += count;
          continue;
        }
        if (piece && (piece.block !== block || first - piece.runs[0][0] >= RESYNC_SPAN)) {
          yield piece;
          piece = null;
        }
        piece ??= { block, runs: [], pages: 0 };
        const count = Math.min(most - piece.pages, end - first, block.base + block.pages - first);
        oos.deleteRun(first, count);
        piece.runs.push([first, count]);
        piece.pages += count;
        first += count;
        if (piece.pages === most) {
          yield piece;
          piece = null;
        }
      }
    }
    if (piece) yield piece;
  }

  /**
   * Sends a piece as one release; resolves once its frames have their places
   * in the stream, with its acknowledgement. Its pages' range is held until
   * then: a write to those pages waits, so its frames follow these (never a
   * stale image after a newer one).
   */
  async #sendPiece(piece: Piece): Promise<{ acked: Promise<void> }> {
    const m = this.#memory;
    const { block, runs } = piece;
    const ps = m.pageSize;
    const pages = runs.flatMap(([first, count]) => Array.from({ length: count }, (_, k) => first + k));
    return m.copyPages(block.id, pages, async (copies) => {
      const [lastFirst, lastCount] = runs[runs.length - 1];
      const offset = (runs[0][0] - block.base) * ps;
      const length = Math.min((lastFirst + lastCount - block.base) * ps, block.length) - offset;
      const change: Change = { type: 'release', blockId: block.id, offset, length, lsn: 0, pages: copies };
      let posted!: () => void;
      const placed = new Promise<void>((resolve) => { posted = resolve; });
      const acked = this.#hooks.route(change, RESYNC_POLICY, posted);
      await Promise.race([placed, acked.then(() => {}, () => {})]);
      return { acked };
    });
  }

  /**
   * A primary met its partner and is (or stays) the source: puts what to
   * send on the record (durably), for run() to send. `full`: the records
   * cannot be trusted, every page's checksum is compared; else the union of
   * both records and the blocks one side lacks.
   */
  async plan(peer: PeerRecord, full: boolean): Promise<void> {
    const oos = this.#replica.outOfSync;
    const runs = peer.runs ? runsFrom(peer.runs) : null;
    if (full || runs === null || !oos.known) {
      await this.#compare(new Set(peer.ids));
      return;
    }
    oos.addRuns(runs, this.#memory.blocks());
    this.#blockDifferences(new Set(peer.ids));
    // Kept first: if this node fails mid-resync, it still knows what to send.
    await this.#replica.save();
  }

  /** Blocks this node holds and the partner lacks, and blocks only the partner holds: the block-table changes to send. */
  #blockDifferences(peerBlocks: Set<string>): void {
    const oos = this.#replica.outOfSync;
    const mine = this.#memory.blocks();
    for (const b of mine) if (!peerBlocks.has(b.id)) oos.addBlock(b.id);
    const ids = new Set(mine.map((b) => b.id));
    for (const id of peerBlocks) if (!ids.has(id)) oos.addBlock(id);
  }

  /**
   * Resyncs a partner whose record of what it lacks cannot be trusted:
   * compares every page's checksum (verify) and sends what differs, and the
   * block-table changes it lacks.
   */
  async byChecksums(peerBlocks: Set<string> | null = null): Promise<void> {
    await this.#compare(peerBlocks);
    await this.run();
  }

  /** Puts on the record (durably) what differs from the partner, page by page, and the blocks one side lacks. */
  async #compare(peerBlocks: Set<string> | null): Promise<void> {
    const report = await this.#hooks.verify();
    this.mark(report);
    if (peerBlocks) this.#blockDifferences(peerBlocks);
    // The partner now matches this node's record; from here on it is kept.
    this.#replica.outOfSync.learn();
    await this.#replica.save();
  }

  /** Marks what a verify found as out of sync: differing pages, and blocks one side lacks. */
  mark(report: VerifyReport): void {
    const oos = this.#replica.outOfSync;
    const blocks = new Map(this.#memory.blocks().map((b) => [b.id, b]));
    for (const d of report.differences) {
      if (d.page >= 0) { oos.add(d.page); continue; }
      // A block one side lacks: its allocation (or release) and every page of it here.
      oos.addBlock(d.blockId);
      const b = blocks.get(d.blockId);
      if (b) oos.addBlockPages(b);
    }
  }
}

/** Pages a resync keeps on their way to the partner, unacknowledged. */
export const RESYNC_WINDOW_PAGES = 4096;
/** Releases a resync reads at once (their reads overlap). */
const RESYNC_READERS = 4;
/** Pages one release of a resync may span (runs of one block near each other go together). */
const RESYNC_SPAN = 1024;

/** Lagging pages of one block sent as one release. */
interface Piece { block: Block; runs: Array<[number, number]>; pages: number }

/**
 * Acknowledgements awaited together: `add` waits while `pages` are on their
 * way; the first failure is thrown by the next `add` or by `drain`.
 */
class AckWindow {
  readonly #limit: number;
  #pages = 0;
  #failure: { err: unknown } | null = null;
  readonly #waiting = new Set<Promise<void>>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  async add({ acked }: { acked: Promise<void> }, pages: number): Promise<void> {
    this.#pages += pages;
    const entry: Promise<void> = acked.then(
      () => {},
      (err) => { this.#failure ??= { err }; },
    ).finally(() => { this.#pages -= pages; this.#waiting.delete(entry); });
    this.#waiting.add(entry);
    while (this.#pages > this.#limit && this.#waiting.size > 0) await Promise.race(this.#waiting);
    if (this.#failure) throw this.#failure.err;
  }

  async drain(): Promise<void> {
    await Promise.all(this.#waiting);
    if (this.#failure) throw this.#failure.err;
  }
}

/** Where the first block after `page` starts (2^32 when none does), in blocks sorted by base. */
function nextBlockStart(sorted: Block[], page: number): number {
  for (const b of sorted) if (b.base > page) return b.base;
  return 0x100000000;
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
