// The one commit path. A release, whoever sent it (a local write pointer, or
// the partner's RELEASE_POINTER), becomes one journal record of its changed
// pages, and its frames take the new images once the record is durable
// (write-back: at once, journaled later by the flusher). A local release is
// also handed to the mirror's link, which sends it to the partner while this
// node's journal flushes it: the release waits for both, so the flush and the
// round trip overlap instead of adding up. Before a primary writes pages
// here, their write intents are durable (intents.ts).

import type { Core } from '../core/index.js';
import { TwinpageError } from '../errors.js';
import { RecordType, type JournalRecord } from '../storage/format.js';
import type { Block, BlockTable } from './blocks.js';
import { LOGGED, UNLOGGED, type FrameCache } from './cache.js';
import type { ActivityLog } from './intents.js';
import type { Change, MemoryLink, PageWrite } from './link.js';
import type { PointerState } from './pointer.js';
import type { RangeLocks } from './ranges.js';
import type { Wal } from './wal.js';

/** What one commit writes: pages of one block, each with its frame (pinned exclusive), checksum and image. */
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

  constructor(deps: {
    core: Core; cache: FrameCache; wal: Wal; ranges: RangeLocks; blocks: BlockTable;
    link: () => { link: MemoryLink; intents: ActivityLog } | null; maxPointerPages: () => number;
  }) {
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
   * A partner's release: its pages go into cache frames like a local write
   * pointer's (not read: they are overwritten whole), one journal record,
   * and reach the page file later, by eviction or checkpoint, coalesced.
   * `writes` are checked already and sorted by page.
   */
  async commitRemote(block: Block, offset: number, length: number, writes: PageWrite[]): Promise<void> {
    const first = writes[0].page;
    const last = writes[writes.length - 1].page;
    if (writes.length > this.#maxPages()) {
      throw TwinpageError.tooLarge(`a release of ${writes.length} pages does not fit this node's cache`);
    }
    const cache = this.#cache;
    const entry = this.#ranges.insert(first, last, true);
    const held: Array<{ frame: number; fresh: boolean }> = [];
    let reserved = false;
    let committed = false;
    try {
      await this.#ranges.waitTurn(entry);
      if (!this.#blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${block.id} was freed meanwhile`);
      await cache.reserve(writes.length);
      reserved = true;
      for (const w of writes) {
        const { frame, staged } = await cache.stage(w.page, block, true, true);
        held.push({ frame, fresh: staged });
      }
      await this.#commit({
        block, offset, length,
        pages: writes.map((w) => w.page),
        frames: held.map((h) => h.frame),
        sums: writes.map((w) => w.checksum),
        images: writes.map((w) => w.data),
        copyIn: true, send: false,
      });
      committed = true;
    } finally {
      held.forEach(({ frame, fresh }, i) => {
        cache.unpin(frame);
        // Staged for this release and not committed: storage has the truth.
        if (fresh && !committed) cache.discard(writes[i].page, frame);
      });
      if (reserved) cache.unreserve(writes.length);
      this.#ranges.remove(entry);
    }
  }

  /** The one commit: write intents, journal record (or write-back), frames settled, the partner told. */
  async #commit(r: Release): Promise<void> {
    const { block, pages, frames, sums, images } = r;
    const lsn = this.#wal.takeLsn();
    const attached = r.send ? this.#link() : null;
    const sending = attached?.link.primary ? attached : null;
    // The change as it goes to the partner, copied now: the frames change after it.
    const outgoing: Change | null = sending && {
      type: 'release', blockId: block.id, offset: r.offset, length: r.length, lsn,
      pages: pages.map((page, k) => ({ page, checksum: sums[k], data: images[k].slice() })),
    };
    // The write intents are durable before these pages are written here.
    const intent = sending?.intents.cover(pages);
    if (intent) await intent;
    const settle = (state: number) => {
      if (r.copyIn) frames.forEach((f, k) => this.#core.frameView(f).set(images[k]));
      this.#cache.settle(frames, sums, lsn, state);
    };
    const policy = block.policy;
    if (!r.copyIn && policy.writeMode === 'write-back') {
      settle(UNLOGGED);
      if (sending) {
        const sent = sending.link.send(outgoing!, policy);
        sending.intents.done(pages);
        await sent;
      }
      return;
    }
    const record: JournalRecord = {
      type: RecordType.Pages, lsn, epoch: this.#wal.epoch,
      pages: pages.map((page, k) => ({ page, checksum: sums[k] })),
      images,
    };
    const logged = this.#wal.log(record).then(() => settle(LOGGED));
    if (!sending) {
      await logged;
      return;
    }
    // The partner gets the change while this node's journal flushes it.
    const sent = sending.link.send(outgoing!, policy, logged);
    // Its failure (no quorum, say) is thrown below, once the local commit settled: not unhandled meanwhile.
    sent.catch(() => {});
    // The pages leave their write intents once this node's own commit is
    // done: they are then unacknowledged or out of sync, or on both nodes.
    logged.then(() => sending.intents.done(pages), () => sending.intents.done(pages));
    try {
      await logged;
    } finally {
      await sent;
    }
  }
}
