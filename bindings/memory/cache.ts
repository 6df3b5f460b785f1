// The frame cache: pages of blocks held in the core's frames. Staging reads a
// page from the page store into a frame (verified against its checksum, read
// back from the partner when every local copy is bad); destaging writes dirty
// frames back, adjacent pages coalesced, in address order, through the task
// groups; eviction picks a CLOCK victim, writing it back first when dirty.
// Frames are reserved by pointers before they stage, so a pointer never waits
// for frames another pointer holds forever.
//
// Beside the core's flags, each frame has a state (clean, dirty and not yet
// journaled, dirty and journaled), the checksum of its image and the journal
// sequence (LSN) that wrote it.

import type { Core } from '../core/index.js';
import { TwinpageError } from '../errors.js';
import type { Scheduler } from '../sched/scheduler.js';
import { MAX_RECORD_PAGES, RecordType, SUMS_PER_SECTOR, type JournalRecord } from '../storage/format.js';
import type { PageImage, PageStore } from '../storage/pagestore.js';
import type { Block } from './blocks.js';
import type { DamageLog } from './damage.js';
import type { PointerState } from './pointer.js';
import type { Wal } from './wal.js';

/** Frame states kept beside the core's dirty flag. */
export const CLEAN = 0, UNLOGGED = 1, LOGGED = 2;

/** Most frames one eviction writes back at once. */
const EVICT_BATCH = 256;

/**
 * Asked for a page that fails its checksum on every local copy, or whose
 * checksum was lost here: the page's bytes from elsewhere (the partner), or
 * null. Used only when they match the checksum this node recorded for the
 * page; when that checksum is lost, the partner's bytes are taken as they
 * come (the transport checked them against the partner's checksum).
 */
export type PageRepair = (blockId: string, page: number) => Promise<Uint8Array | null>;

interface Waiter { n: number; resolve: () => void }

export class FrameCache {
  readonly #core: Core;
  readonly #pageStore: PageStore;
  readonly #sched: Scheduler;
  readonly #wal: Wal;
  readonly #repair: () => PageRepair | null;
  readonly #damage: DamageLog;
  readonly pageSize: number;
  /** Checksum of an all-zero page (never-written pages read as zeros). */
  readonly zeroSum: bigint;
  readonly #state: Uint8Array;
  readonly #sum: BigUint64Array;
  readonly #lsn: Float64Array;
  readonly #loading = new Map<number, Promise<void>>();
  /**
   * Pages a commit wrote without a frame (writeDirect): their newest image,
   * durable in the journal, on its way to the page file. Served from here
   * until it is there (or taken by a frame); a checkpoint writes what is
   * left before the journal goes.
   */
  readonly #unwritten = new Map<number, PageImage>();
  readonly #directWrites = new Set<Promise<unknown>>();
  readonly #evictions = new Set<Promise<void>>();
  /** Frames reserved by pointers being acquired or held. */
  #reserved = 0;
  readonly #reserveQueue: Waiter[] = [];
  #frameWaiters: Array<() => void> = [];
  /** Pages read back whole from the partner after failing their checksum here. */
  repairedFromPartner = 0;

  constructor(core: Core, pageStore: PageStore, sched: Scheduler, wal: Wal, repair: () => PageRepair | null, damage: DamageLog) {
    this.#core = core;
    this.#pageStore = pageStore;
    this.#sched = sched;
    this.#wal = wal;
    this.#repair = repair;
    this.#damage = damage;
    this.pageSize = core.pageSize;
    const frames = core.frameCount;
    this.#state = new Uint8Array(frames);
    this.#sum = new BigUint64Array(frames);
    this.#lsn = new Float64Array(frames);
    this.zeroSum = core.checksum(new Uint8Array(this.pageSize));
  }

  // --- what frames hold ---------------------------------------------------------------

  /** The checksum of frame `f`'s image (as last committed or staged). */
  sum(f: number): bigint { return this.#sum[f]; }
  /** The journal sequence that wrote frame `f`'s image (0: never written). */
  lsn(f: number): number { return this.#lsn[f]; }
  /** Whether `page` is being staged (its frame's bytes are not there yet). */
  loading(page: number): boolean { return this.#loading.has(page); }
  /** The staging of `page` under way, or null. */
  whenLoaded(page: number): Promise<void> | null { return this.#loading.get(page) ?? null; }

  /**
   * The frames of a commit take their new images: checksums, sequence,
   * dirty in `state` (UNLOGGED: write-back, not yet journaled; LOGGED).
   */
  settle(frames: ArrayLike<number>, sums: ArrayLike<bigint>, lsn: number, state: number): void {
    const pages = this.#core.pages;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      this.#sum[f] = sums[i];
      this.#lsn[f] = lsn;
      this.#state[f] = state;
      pages.setDirty(f, true);
      // Its bytes are known again (a crash before they reach the page file brings the damage back at open).
      if (this.#damage.any) this.#damage.healed(pages.frame(f).page);
    }
  }

  /** Drops `page` from its frame (pinned by the caller, who unpins it): storage has the truth. */
  discard(page: number, frame: number): void {
    this.#core.pages.remove(page);
    this.#state[frame] = CLEAN;
  }

  /** Puts a write pointer's pages back as they were before it. */
  undo(p: PointerState): void {
    p.frames.forEach((f, i) => {
      const before = p.undo[i];
      if (before) {
        this.#core.frameView(f).set(before);
      } else {
        // Staged for overwrite, never read: drop it, storage has the truth.
        this.#core.pages.unpin(f);
        this.discard(p.first + i, f);
        p.frames[i] = -1;
      }
    });
  }

  /** Drops every cached page of a freed block, so a block later given its run never finds them. */
  async dropBlock(block: Pick<Block, 'base' | 'pages'>): Promise<void> {
    const pages = this.#core.pages;
    if (this.#unwritten.size) for (let p = block.base; p < block.base + block.pages; p++) this.#unwritten.delete(p);
    for (let p = block.base; p < block.base + block.pages; p++) {
      for (let f = pages.lookup(p); f >= 0; f = pages.lookup(p)) {
        // A frame being evicted (I/O in flight) is waited for.
        if (pages.frame(f).io) { await Promise.all([...this.#evictions]); continue; }
        this.discard(p, f);
      }
    }
  }

  /**
   * The frames of `[first, first + count)` when every page is cached and
   * loaded, else null; used by the synchronous read path.
   */
  cachedRun(first: number, count: number): number[] | null {
    const pages = this.#core.pages;
    // A plain array: a pointer keeps it, and a small typed array costs more to make.
    const frames: number[] = [];
    const loading = this.#loading.size > 0;
    for (let i = 0; i < count; i++) {
      const f = pages.lookup(first + i);
      if (f < 0 || (loading && this.#loading.has(first + i))) return null;
      frames.push(f);
    }
    return frames;
  }

  // --- reservations ---------------------------------------------------------------------

  /** Whether `n` frames can be reserved at once (nobody waits before). */
  canReserve(n: number): boolean {
    return this.#reserveQueue.length === 0 && this.#reserved + n <= this.#core.frameCount;
  }

  /**
   * Reserves `n` frames, waiting in arrival order. Once `signal` aborts, a
   * waiter leaves the queue and rejects with its reason (nothing reserved).
   */
  async reserve(n: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.canReserve(n)) {
      this.#reserved += n;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      if (!signal) { this.#reserveQueue.push({ n, resolve }); return; }
      const onAbort = () => {
        const i = this.#reserveQueue.indexOf(waiter);
        if (i < 0) return; // granted already: the caller gives the frames back
        this.#reserveQueue.splice(i, 1);
        // Those behind it may fit now.
        this.unreserve(0);
        reject(signal.reason);
      };
      const waiter: Waiter = { n, resolve: () => { signal.removeEventListener('abort', onAbort); resolve(); } };
      this.#reserveQueue.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Reserves `n` frames now (the caller checked `canReserve`). */
  reserveNow(n: number): void {
    this.#reserved += n;
  }

  unreserve(n: number): void {
    this.#reserved -= n;
    while (this.#reserveQueue.length && this.#reserved + this.#reserveQueue[0].n <= this.#core.frameCount) {
      const w = this.#reserveQueue.shift()!;
      this.#reserved += w.n;
      w.resolve();
    }
  }

  unpin(frame: number): void {
    if (frame < 0) return;
    this.#core.pages.unpin(frame);
    this.wakeFrames();
  }

  wakeFrames(): void {
    if (this.#frameWaiters.length === 0) return;
    const waiters = this.#frameWaiters;
    this.#frameWaiters = [];
    for (const w of waiters) w();
  }

  // --- staging ----------------------------------------------------------------------------

  /**
   * Brings `page` into a frame and pins it. `whole` pages of a write that
   * overwrites them are not read (they start as zeros). Returns the frame,
   * whether it was staged now (rather than found cached), and whether it
   * starts as zeros unread (storage has the truth: drop it if unused).
   */
  async stage(page: number, block: Block, exclusive: boolean, whole: boolean): Promise<{ frame: number; staged: boolean; zeroed: boolean }> {
    const pages = this.#core.pages;
    // A page whose newest image is not in the page file yet is loaded from memory, never dropped for zeros.
    if (whole && this.#unwritten.has(page)) whole = false;
    for (;;) {
      const found = pages.lookup(page);
      if (found >= 0) {
        const loading = this.#loading.get(page);
        if (loading) { await loading.catch(() => {}); continue; }
        pages.pin(found, exclusive);
        return { frame: found, staged: false, zeroed: false };
      }
      // Mapping, pinning and announcing the load happen in one synchronous
      // step, so nobody finds the page mapped but not yet loaded.
      let load: Promise<void> | null = null;
      const frame = await this.#freeFrame(page, block.policy.cachePriority, (f) => {
        pages.pin(f, exclusive);
        this.#state[f] = CLEAN;
        if (whole) {
          this.#core.frameView(f).fill(0);
          this.#sum[f] = this.zeroSum;
          this.#lsn[f] = 0;
        } else {
          load = this.#load(page, f, block);
          this.#loading.set(page, load);
        }
      });
      if (frame < 0) continue; // someone else mapped the page meanwhile
      if (load) {
        try {
          await load;
        } catch (err) {
          pages.unpin(frame);
          pages.remove(page);
          this.wakeFrames();
          throw err;
        } finally {
          this.#loading.delete(page);
        }
      }
      return { frame, staged: true, zeroed: load === null };
    }
  }

  /** Stages a page (through the page's task group). */
  #load(page: number, frame: number, block: Block): Promise<void> {
    return this.#sched.submit({ first: page, last: page, mode: 'shared', run: () => this.#loadNow(page, frame, block) });
  }

  /** Reads a page from the page store into its frame, verifying its checksum. */
  async #loadNow(page: number, frame: number, block: Block): Promise<void> {
    const view = this.#core.frameView(frame);
    const unwritten = this.#unwritten.get(page);
    if (unwritten) {
      // Not in the page file yet: the frame takes it over, dirty, to write it there in its turn.
      this.#unwritten.delete(page);
      if (unwritten.lsn >= block.generation) {
        view.set(unwritten.image);
        this.#sum[frame] = unwritten.checksum;
        this.#lsn[frame] = unwritten.lsn;
        this.#state[frame] = LOGGED;
        this.#core.pages.setDirty(frame, true);
        return;
      }
    }
    const sum = await this.#pageStore.readSum(page);
    if (sum.lost !== undefined && block.generation <= sum.lost) {
      // Its checksum was destroyed here: only a copy elsewhere can tell what it holds.
      if (await this.#repairFromPartner(page, frame, block, null)) return;
      view.fill(0);
      throw TwinpageError.corrupt(`page ${page - block.base} of block ${block.id}: its checksum entry was lost to damage here, so its bytes are not returned`);
    }
    if (sum.lost !== undefined || sum.lsn === 0 || sum.lsn < block.generation) {
      view.fill(0);
      this.#sum[frame] = this.zeroSum;
      this.#lsn[frame] = 0;
      return;
    }
    let ok = await this.#pageStore.readPage(page, view, (bytes) =>
      (bytes === view ? this.#core.checksumFrame(frame) : this.#core.checksum(bytes)) === sum.checksum);
    if (!ok) ok = await this.#repairFromPartner(page, frame, block, sum);
    if (!ok) {
      view.fill(0);
      this.#damage.badBytes(page, sum.lsn);
      throw TwinpageError.corrupt(`page ${page - block.base} of block ${block.id} fails its checksum on every copy; it is not returned`);
    }
    this.#sum[frame] = sum.checksum;
    this.#lsn[frame] = sum.lsn;
  }

  /**
   * Read repair: a page failing its checksum on every local copy (or whose
   * checksum is lost, `sum` null) is asked of the partner; bytes matching
   * the checksum recorded here (any bytes, when it is lost) go into the
   * frame and over the bad copy in the page store.
   */
  async #repairFromPartner(page: number, frame: number, block: Block, sum: { checksum: bigint; lsn: number } | null): Promise<boolean> {
    const good = await this.repairBytes(block, page, sum?.checksum ?? null);
    if (!good) return false;
    const checksum = sum?.checksum ?? this.#core.checksum(good);
    const lsn = sum?.lsn ?? Math.max(block.generation, this.#wal.nextLsn - 1);
    this.#core.frameView(frame).set(good);
    this.#core.checksumFrame(frame);
    await this.#pageStore.writePages([{ page, image: good, checksum, lsn }]);
    this.#sum[frame] = checksum;
    this.#lsn[frame] = lsn;
    return true;
  }

  /**
   * A page's bytes from the partner (through the link's read repair),
   * matching `checksum` unless it is null (lost here); null when there is no
   * partner or it has no such bytes.
   */
  async repairBytes(block: Block, page: number, checksum: bigint | null): Promise<Uint8Array | null> {
    const repair = this.#repair();
    if (!repair) return null;
    let good: Uint8Array | null;
    try {
      good = await repair(block.id, page);
    } catch {
      return null;
    }
    if (!good || good.length !== this.pageSize || (checksum !== null && this.#core.checksum(good) !== checksum)) return null;
    this.repairedFromPartner++;
    return good;
  }

  // --- eviction and destaging ---------------------------------------------------------------

  /**
   * A frame mapped to `page`: a free one, or a CLOCK victim written back
   * first. Returns -1 when `page` got mapped by someone else meanwhile.
   */
  async #freeFrame(page: number, priority: number, claim: (frame: number) => void): Promise<number> {
    const pages = this.#core.pages;
    for (;;) {
      if (pages.lookup(page) >= 0) return -1;
      if (pages.totals().free > 0) {
        const f = pages.insert(page, priority);
        claim(f);
        return f;
      }
      const v = pages.victim();
      if (!v) {
        await new Promise<void>((resolve) => this.#frameWaiters.push(resolve));
        continue;
      }
      if (v.dirty) {
        // Written back with other idle journaled frames (coalesced, in page
        // order): the next victims are then clean, and the page file gets
        // runs instead of single pages.
        const batch = this.#evictionBatch(v.frame);
        for (const f of batch) pages.setIo(f, true);
        const done = this.writeBack(batch).finally(() => {
          for (const f of batch) pages.setIo(f, false);
          this.#evictions.delete(done);
          // Frames that were busy are victims again: whoever found none looks again.
          this.wakeFrames();
        });
        this.#evictions.add(done);
        await done;
        continue; // the frame may have been re-dirtied or pinned: choose again
      }
      if (pages.lookup(page) >= 0) return -1;
      this.#state[v.frame] = CLEAN;
      pages.remap(v.frame, page, priority);
      claim(v.frame);
      return v.frame;
    }
  }

  /**
   * The victim and up to EVICT_BATCH - 1 other dirty frames written back
   * with it: journaled ones nobody pins or writes already, from the
   * victim's page on (dirty frames come in page order).
   */
  #evictionBatch(victim: number): number[] {
    const pages = this.#core.pages;
    const dirty = pages.dirtyFrames();
    const batch = [victim];
    let start = dirty.indexOf(victim);
    if (start < 0) start = 0;
    for (let k = 1; k < dirty.length && batch.length < EVICT_BATCH; k++) {
      const f = dirty[(start + k) % dirty.length];
      if (this.#state[f] !== LOGGED) continue;
      const st = pages.frame(f);
      if (st.pins > 0 || st.io) continue;
      batch.push(f);
    }
    return batch;
  }

  /** Evictions writing back right now. */
  settleEvictions(): Promise<unknown> {
    return Promise.all([...this.#evictions]);
  }

  /**
   * Writes every dirty frame not already being written back (a checkpoint),
   * then waits for evictions that were writing meanwhile: once the journal
   * they were logged in goes, the page file is their only copy.
   */
  async destageAll(): Promise<void> {
    await this.settleDirect();
    await this.settleEvictions();
    const pages = this.#core.pages;
    const dirty = [...pages.dirtyFrames()].filter((f) => !pages.frame(f).io);
    for (const f of dirty) pages.setIo(f, true);
    try {
      if (dirty.length) await this.writeBack(dirty);
    } finally {
      for (const f of dirty) pages.setIo(f, false);
      this.wakeFrames();
    }
    await this.settleEvictions();
  }

  /**
   * Writes dirty frames to the page store (journaling write-back ones
   * first), then marks them clean if nobody changed them meanwhile.
   */
  async writeBack(frames: number[]): Promise<void> {
    const pages = this.#core.pages;
    const unlogged = frames.filter((f) => this.#state[f] === UNLOGGED);
    if (unlogged.length) await this.logFrames(unlogged);
    const images: PageImage[] = [];
    const logged = frames.filter((f) => this.#state[f] === LOGGED);
    // Their images as they are now, in one buffer (the frames may change while it is written).
    const ps = this.pageSize;
    const copies = new Uint8Array(logged.length * ps);
    logged.forEach((f, k) => {
      const image = copies.subarray(k * ps, (k + 1) * ps);
      image.set(this.#core.frameView(f));
      images.push({ page: pages.frame(f).page, image, checksum: this.#sum[f], lsn: this.#lsn[f] });
    });
    await this.writePages(images);
    for (const img of images) {
      const f = pages.lookup(img.page);
      if (f >= 0 && this.#lsn[f] === img.lsn && this.#state[f] === LOGGED) {
        pages.setDirty(f, false);
        this.#state[f] = CLEAN;
      }
    }
  }

  /**
   * Destages page images through their task groups: the images of each
   * stripe are one operation (runs of adjacent pages one write each, their
   * checksum sectors written once), the stripes in parallel.
   */
  async writePages(images: PageImage[]): Promise<void> {
    images.sort((a, b) => a.page - b.page);
    const stripe = this.#sched.stripePages;
    const parts: Promise<void>[] = [];
    for (let i = 0; i < images.length;) {
      const s = Math.floor(images[i].page / stripe);
      let j = i + 1;
      while (j < images.length && Math.floor(images[j].page / stripe) === s) j++;
      const part = images.slice(i, j);
      parts.push(this.#sched.submit({
        first: part[0].page, last: part[part.length - 1].page, mode: 'exclusive',
        run: () => this.#pageStore.writePages(part),
      }));
      i = j;
    }
    await Promise.all(parts);
  }

  // --- pages written without frames ----------------------------------------------------------

  /** The newest image of `page` when a commit wrote it without a frame and the page file does not hold it yet. */
  unwritten(page: number): PageImage | undefined {
    return this.#unwritten.get(page);
  }

  /**
   * After a commit's flush, its pages that have no frame (`images`, the
   * journal's copies): written to the page file through the task groups,
   * and served from memory until they are there. Resolves when written;
   * a failure leaves them in memory for the next checkpoint to write.
   */
  writeDirect(images: PageImage[]): Promise<void> {
    for (const img of images) this.#unwritten.set(img.page, img);
    const done = this.writePages(images.slice()).then(() => {
      for (const img of images) if (this.#unwritten.get(img.page) === img) this.#unwritten.delete(img.page);
    });
    const tracked: Promise<unknown> = done.catch(() => {}).finally(() => { this.#directWrites.delete(tracked); });
    this.#directWrites.add(tracked);
    return done;
  }

  /** Waits for the direct writes under way, then writes what is still not in the page file (a failed one); throws if it cannot. */
  async settleDirect(): Promise<void> {
    while (this.#directWrites.size) await Promise.all([...this.#directWrites]);
    if (this.#unwritten.size === 0) return;
    const left = [...this.#unwritten.values()];
    await this.writePages(left.slice());
    for (const img of left) if (this.#unwritten.get(img.page) === img) this.#unwritten.delete(img.page);
  }

  /** Dirty write-back frames nobody holds: what the flusher journals. */
  unloggedIdle(): number[] {
    const pages = this.#core.pages;
    return [...pages.dirtyFrames()].filter((f) => this.#state[f] === UNLOGGED && pages.frame(f).pins === 0);
  }

  /**
   * Journals the current images of write-back frames and waits for the
   * flush. Frames under a write pointer are skipped: their bytes are in flux
   * and their release commits them.
   */
  async logFrames(candidates: number[]): Promise<void> {
    const pages = this.#core.pages;
    for (let i = 0; i < candidates.length; i += MAX_RECORD_PAGES) {
      // Checked and copied (by append) in one synchronous step.
      const part = candidates.slice(i, i + MAX_RECORD_PAGES)
        .filter((f) => this.#state[f] === UNLOGGED && !pages.frame(f).exclusive);
      if (part.length === 0) continue;
      const lsn = this.#wal.takeLsn();
      const record: JournalRecord = {
        type: RecordType.Pages, lsn, epoch: this.#wal.epoch,
        pages: part.map((f) => ({ page: pages.frame(f).page, checksum: this.#sum[f] })),
        images: part.map((f) => this.#core.frameView(f)),
      };
      const was = part.map((f) => this.#lsn[f]);
      await this.#wal.log(record);
      part.forEach((f, k) => {
        if (this.#state[f] === UNLOGGED && this.#lsn[f] === was[k]) {
          this.#state[f] = LOGGED;
          this.#lsn[f] = lsn;
        }
      });
    }
  }
}
