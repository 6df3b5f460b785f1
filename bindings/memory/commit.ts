// The one commit path. A release, whoever sent it (a local write pointer, or
// the partner's RELEASE_POINTER), becomes one journal record of its changed
// pages, and its frames take the new images once the record is durable
// (write-back: at once, journaled later by the flusher). A local release is
// also handed to the mirror's link, which sends it to the partner while this
// node's journal flushes it: the release waits for both, so the flush and the
// round trip overlap instead of adding up. Before a primary writes pages
// here, their write intents are durable (intents.ts); the mirror retires
// them once the pages are on both nodes or recorded as out of sync.

import type { Core } from '../core/index.js';
import { TwinpageError } from '../errors.js';
import { MAX_RECORD_PAGES, RecordType, type JournalRecord } from '../storage/format.js';
import type { PageImage } from '../storage/pagestore.js';
import type { Block, BlockTable } from './blocks.js';
import { LOGGED, UNLOGGED, type FrameCache } from './cache.js';
import type { ActivityLog } from './intents.js';
import type { Change, MemoryLink, PageWrite } from './link.js';
import type { PointerState } from './pointer.js';
import type { RangeLocks } from './ranges.js';
import type { Wal } from './wal.js';

/**
 * Pages from which a release (a partner's, or a local `write` of a
 * write-through block) writes the pages it finds uncached without frames:
 * below it every page is staged into the cache, as a write pointer's.
 */
export const DIRECT_MIN_PAGES = 16;

/** What one commit writes: pages of one block, each with its frame (pinned exclusive; -1: none, written to the page file from the journal's copy), checksum and image. */
interface Release {
  block: Block;
  /** The pointer's range, as it goes to the partner. */
  offset: number;
  length: number;
  pages: number[];
  frames: number[];
  sums: bigint[];
  /** The new images: the frames themselves (a local pointer) or the partner's bytes, copied in once durable. */
  images: Uint8Array[];
  copyIn: boolean;
  /** Send to the partner (a local change of a primary). */
  send: boolean;
}

export class Committer {
  readonly #core: Core;
  readonly #cache: FrameCache;
  readonly #wal: Wal;
  readonly #ranges: RangeLocks;
  readonly #blocks: BlockTable;
  readonly #link: () => { link: MemoryLink; intents: ActivityLog } | null;
  readonly #maxPages: () => number;
  /** Whether the store is one node of a pair (then a change needs its mirror attached). */
  readonly #paired: () => boolean;

  constructor(deps: {
    core: Core; cache: FrameCache; wal: Wal; ranges: RangeLocks; blocks: BlockTable;
    link: () => { link: MemoryLink; intents: ActivityLog } | null; maxPointerPages: () => number; paired: () => boolean;
  }) {
    this.#paired = deps.paired;
    this.#core = deps.core;
    this.#cache = deps.cache;
    this.#wal = deps.wal;
    this.#ranges = deps.ranges;
    this.#blocks = deps.blocks;
    this.#link = deps.link;
    this.#maxPages = deps.maxPointerPages;
  }

  /** A local write pointer's release: its changed pages (checksums tell) are committed (RELEASE_POINTER). */
  async commitPointer(p: PointerState): Promise<void> {
    const block = this.#blocks.find(p.blockId);
    if (!block) throw TwinpageError.unknownBlock(`block ${p.blockId} is gone`);
    const sums = this.#core.checksumFrames(p.frames);
    const cache = this.#cache;
    const changed: number[] = [];
    p.frames.forEach((f, i) => { if (sums[i] !== cache.sum(f) || cache.lsn(f) === 0 && p.undo[i] === null) changed.push(i); });
    if (changed.length === 0) return;
    await this.#commit({
      block, offset: p.offset, length: p.length,
      pages: changed.map((i) => p.first + i),
      frames: changed.map((i) => p.frames[i]),
      sums: changed.map((i) => sums[i]),
      images: changed.map((i) => this.#core.frameView(p.frames[i])),
      copyIn: false, send: true,
    });
  }

  /**
   * A partner's release: its pages are written like a local write's (one
   * journal record): pages cached here take the new images in their frames;
   * in a release of DIRECT_MIN_PAGES or more the others go to the page file
   * straight from the journal's copy, without a frame (served from memory
   * until they are there), and in a smaller one they are staged (not read:
   * they are overwritten whole) and reach the page file later, by eviction
   * or checkpoint, coalesced. `writes` are checked already and sorted by page.
   */
  async commitRemote(block: Block, offset: number, length: number, writes: PageWrite[]): Promise<void> {
    const first = writes[0].page;
    const last = writes[writes.length - 1].page;
    // A large release writes the pages it finds uncached without frames; a small one stages them all.
    const direct = writes.length >= DIRECT_MIN_PAGES;
    if (writes.length > (direct ? MAX_RECORD_PAGES : this.#maxPages())) {
      throw TwinpageError.tooLarge(`a release of ${writes.length} pages does not fit this node's cache`);
    }
    const cache = this.#cache;
    const pages = this.#core.pages;
    const entry = this.#ranges.insert(first, last, true);
    const frames = new Array<number>(writes.length).fill(-1);
    const zeroed: number[] = [];
    let reserved = 0;
    let committed = false;
    try {
      await this.#ranges.waitTurn(entry);
      if (!this.#blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${block.id} was freed meanwhile`);
      // Nobody maps a page of this range while it is held: what is cached now is all there is.
      const cached = writes.flatMap((w, k) => (!direct || pages.lookup(w.page) >= 0 ? [k] : []));
      if (cached.length) {
        await cache.reserve(cached.length);
        reserved = cached.length;
        for (const k of cached) {
          const st = await cache.stage(writes[k].page, block, true, true);
          frames[k] = st.frame;
          if (st.zeroed) zeroed.push(k);
        }
      }
      await this.#commit({
        block, offset, length,
        pages: writes.map((w) => w.page),
        frames,
        sums: writes.map((w) => w.checksum),
        images: writes.map((w) => w.data),
        copyIn: true, send: false,
      });
      committed = true;
    } finally {
      for (const f of frames) if (f >= 0) cache.unpin(f);
      // A frame staged as zeros (its page evicted meanwhile) and not committed: storage has the truth.
      if (!committed) for (const k of zeroed) cache.discard(writes[k].page, frames[k]);
      if (reserved) cache.unreserve(reserved);
      this.#ranges.remove(entry);
    }
  }

  /**
   * A local write of whole pages and parts of pages (`Memory.write`, write
   * through): its range is held exclusive by the caller, `frames` hold the
   * pages that are cached (pinned exclusive, their new bytes in them) and -1
   * for those written without a frame, whose new bytes are `images`.
   */
  async commitWrite(block: Block, offset: number, length: number, first: number, frames: ArrayLike<number>, images: Uint8Array[]): Promise<void> {
    const n = frames.length;
    const framed: number[] = [];
    for (let k = 0; k < n; k++) if (frames[k] >= 0) framed.push(frames[k]);
    const frameSums = framed.length ? this.#core.checksumFrames(framed) : null;
    const sums = new Array<bigint>(n);
    const views = new Array<Uint8Array>(n);
    const core = this.#core;
    const ps = core.pageSize;
    const most = Math.max(1, Math.floor(core.ioBytes / ps));
    for (let k = 0, j = 0; k < n;) {
      if (frames[k] >= 0) {
        sums[k] = frameSums![j++];
        views[k] = core.frameView(frames[k]);
        k++;
        continue;
      }
      // A run of pages without frames, adjacent in the caller's buffer: checksummed in one pass through the io buffer.
      let e = k + 1;
      while (e < n && e - k < most && frames[e] < 0 && images[e].buffer === images[k].buffer
        && images[e].byteOffset === images[e - 1].byteOffset + ps) e++;
      const run = new Uint8Array(images[k].buffer, images[k].byteOffset, (e - k) * ps);
      core.checksumPieces(run, ps, sums, k);
      for (let i = k; i < e; i++) views[i] = images[i];
      k = e;
    }
    await this.#commit({
      block, offset, length,
      pages: Array.from({ length: n }, (_, k) => first + k),
      frames: Array.from(frames),
      sums, images: views, copyIn: false, send: true,
    });
  }

  /**
   * The one commit: write intents, journal record (or write-back), frames
   * settled, pages without a frame sent to the page file, the partner told.
   */
  async #commit(r: Release): Promise<void> {
    const { block, pages, frames, sums, images } = r;
    const attached = r.send ? this.#link() : null;
    if (r.send && !attached && this.#paired()) {
      // The mirror was closed while this change was under way: committed here alone, it
      // would reach neither the partner nor the out-of-sync record.
      throw TwinpageError.notPrimary('the mirror was closed while this change was under way: nothing of it was committed');
    }
    if (attached && !attached.link.primary) {
      // The node stopped being primary (a demotion, fencing) while this change was under way:
      // committed here alone, it would reach neither the partner nor the out-of-sync record.
      throw TwinpageError.notPrimary('this node stopped being primary while the change was under way: nothing of it was committed');
    }
    const lsn = this.#wal.takeLsn();
    const sending = attached?.link.primary ? attached : null;
    // The change as it goes to the partner: its pages view the frames (pinned, and written by
    // no one else until this commit ends), which the link reads before its send returns.
    const outgoing: Change | null = sending && {
      type: 'release', blockId: block.id, offset: r.offset, length: r.length, lsn,
      pages: pages.map((page, k) => ({ page, checksum: sums[k], data: images[k] })),
    };
    // The write intents are durable before these pages are written here.
    const intent = sending?.intents.cover(pages);
    if (intent) await intent;
    const direct = frames.some((f) => f < 0);
    const policy = block.policy;
    if (!r.copyIn && policy.writeMode === 'write-back') {
      if (direct) throw new Error('twinpage: a write-back commit holds every page in a frame');
      this.#settle(r, lsn, UNLOGGED, null);
      if (sending) await sending.link.send(outgoing!, policy);
      return;
    }
    const record: Extract<JournalRecord, { type: RecordType.Pages }> = {
      type: RecordType.Pages, lsn, epoch: this.#wal.epoch,
      pages: pages.map((page, k) => ({ page, checksum: sums[k] })),
      images,
    };
    const logged = this.#log(record, direct, r, lsn);
    if (!sending) {
      await logged;
      return;
    }
    // The partner gets the change while this node's journal flushes it.
    const sent = sending.link.send(outgoing!, policy, logged);
    // Its failure (no quorum, say) is thrown below, once the local commit settled: not unhandled meanwhile.
    sent.catch(() => {});
    try {
      await logged;
    } finally {
      await sent;
    }
  }

  /**
   * Journals a release's record and settles it once durable. (A method, not
   * a closure made per commit: V8 would compile each such closure anew.)
   */
  async #log(record: Extract<JournalRecord, { type: RecordType.Pages }>, direct: boolean, r: Release, lsn: number): Promise<void> {
    // Pages without a frame are written to the page file later from the journal's copies: kept.
    const copies = await this.#wal.logPages(record, direct);
    this.#settle(r, lsn, LOGGED, copies);
  }

  /** A release's frames take its images, in `state`; its pages without a frame go to the page file from `copies`. */
  #settle(r: Release, lsn: number, state: number, copies: Uint8Array[] | null): void {
    const { pages, frames, sums, images } = r;
    const framed: number[] = [];
    const framedSums: bigint[] = [];
    const unframed: PageImage[] = [];
    for (let k = 0; k < frames.length; k++) {
      const f = frames[k];
      if (f < 0) {
        unframed.push({ page: pages[k], image: copies![k], checksum: sums[k], lsn });
        continue;
      }
      if (r.copyIn) this.#core.frameView(f).set(images[k]);
      framed.push(f);
      framedSums.push(sums[k]);
    }
    if (framed.length) this.#cache.settle(framed, framedSums, lsn, state);
    // Written in the background: served from memory until the page file holds them.
    if (unframed.length) this.#cache.writeDirect(unframed).catch(() => {});
  }
}
