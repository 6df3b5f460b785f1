// One node's memory manager: blocks in a paged virtual address space, cached
// in the core's frames and backed by a store (format in storage/format.ts).
// This file composes the rooms of memory/:
//
//   blocks.ts      the block table (columnar, by GUID) and the address space
//   ranges.ts      the ranges pointers hold (a conflict table, arrival order)
//   cache.ts       the frame cache: staging, destaging, eviction
//   commit.ts      the one commit path (a local release and a partner's)
//   transfer.ts    large reads and writes: many pages per I/O
//   wal.ts         the journal in use and its sequence numbers
//   checkpoint.ts  checkpoints and the background flusher
//   recovery.ts    opening a store: its block table file, replaying its journal
//   metadata.ts    the superblock record
//   damage.ts      the pages this node cannot trust (found at open, by reads, by scrub)
//   scrub.ts       reading every page and its metadata, repairing what it can
//   upgrade.ts     a store of format version 1 rewritten in the current one
//   replica.ts     what the superblock keeps about the partner, with
//   intents.ts     write intents (the activity log) and
//   out-of-sync.ts the pages and blocks the partner may lack
//   link.ts        how a mirror attaches (the memory never imports it)
//   pointer.ts     read and write pointers
//
// Durability: a write pointer's release appends its changed pages to the
// write-ahead journal as one record and, for write-through policies, waits
// for the journal's flush; the page file is brought up to date later, by
// eviction and by checkpoints (flush(), close(), a growing journal). A crash
// at any moment leaves either the old or the new contents of a released
// range, and reopening replays the journal.

import { Core } from '../core/index.js';
import { asyncDispose } from '../disposable.js';
import { TwinpageError } from '../errors.js';
import { intOption } from '../options.js';
import type { PolicyList } from '../policies.js';
import { Scheduler, type SchedulerStats } from '../sched/scheduler.js';
import type { Device, Store } from '../storage/device.js';
import { FORMAT_VERSION, MAX_RECORD_PAGES, saltOf } from '../storage/format.js';
import { PageStore } from '../storage/pagestore.js';
import { resolveStore } from '../storage/resolve.js';
import { BlockTable, type Block } from './blocks.js';
import { FrameCache } from './cache.js';
import { Checkpointer } from './checkpoint.js';
import { Committer, DIRECT_MIN_PAGES } from './commit.js';
import { Transfers } from './transfer.js';
import { DamageLog, type DamageListener, type PageDamage } from './damage.js';
import type { Change, LinkPolicy, MemoryLink, PageWrite } from './link.js';
import { Metadata } from './metadata.js';
import { resolveMemoryOptions, type MemoryOptions } from './options.js';
import { ReadPointer, WritePointer, type PointerHost, type PointerState } from './pointer.js';
import { RangeLocks } from './ranges.js';
import { loadSuperblock, loadTable, readSuperblockSlots, replay } from './recovery.js';
import { ReplicaRecord } from './replica.js';
import { Scrubber, type ScrubOptions, type ScrubReport } from './scrub.js';
import { upgradeFromV1 } from './upgrade.js';
import { Wal } from './wal.js';

export type { Block } from './blocks.js';
export type { MemoryOptions } from './options.js';
export type { PageDamage, DamageListener } from './damage.js';
export type { ScrubOptions, ScrubReport } from './scrub.js';
export type { Change, LinkPolicy, MemoryLink, PageWrite } from './link.js';
export { ReadPointer, WritePointer } from './pointer.js';

const MAX_PAGE = 0xFFFFFFFE;

/** Options of `acquireRead` and `acquireWrite`. */
export interface AcquireOptions {
  /** Gives up waiting for the range (or frames) when aborted: the acquire rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The signal of acquire options, checked. */
function acquireSignal(options: AcquireOptions | undefined): AbortSignal | undefined {
  const signal = options?.signal;
  if (signal === undefined) return undefined;
  if (signal === null || typeof signal !== 'object' || typeof signal.throwIfAborted !== 'function') {
    throw TwinpageError.invalidArgument('signal must be an AbortSignal');
  }
  return signal;
}

/** The checksum `header()` gives for a page this node cannot serve: it matches no page, so verify and resync take it from the partner. */
const UNKNOWN_SUM = 0n;
const RESOLVED = Promise.resolve();
/** A read pointer's undo list: it never has one (frozen, so nothing can add to it). */
const NO_UNDO: Array<Uint8Array | null> = Object.freeze([]) as unknown as Array<Uint8Array | null>;
const POINTER_TABLE_CAPACITY = 4096;

/** `space()`: bytes of address space, storage and cache. */
export interface SpaceReport {
  addressSpace: { total: number; free: number };
  /** The storage under the store (null where the platform cannot tell). */
  storage: { total: number; free: number } | null;
  cache: { total: number; free: number; dirty: number };
}

/** A mirror attached to a memory: its replica record, and how to detach. */
export interface Attachment {
  /** What the superblock keeps about the partner (loaded on attach). */
  readonly replica: ReplicaRecord;
  /** Detaches the link: changes stop going out, repairs stop being asked. */
  detach(): void;
}

/** What the constructor is handed by `open` (subclasses pass it through). */
export interface MemoryInit {
  core: Core;
  store: Store;
  policies: PolicyList;
  pageStore: PageStore;
  metadata: Metadata;
  capacityPages: number;
  checkpointBytes: number;
  tasksPerGroup: number;
  stripePages: number;
  wal: Wal;
  damage: DamageLog;
}

export class Memory implements PointerHost {
  readonly pageSize: number;
  readonly core: Core;
  readonly store: Store;
  readonly policies: PolicyList;
  readonly #pageStore: PageStore;
  /** Every page-store operation goes through the task groups. */
  readonly #sched: Scheduler;
  readonly #metadata: Metadata;
  readonly #blocks: BlockTable;
  readonly #wal: Wal;
  readonly #damage: DamageLog;
  readonly #ranges: RangeLocks;
  readonly #cache: FrameCache;
  readonly #committer: Committer;
  readonly #checkpoints: Checkpointer;
  readonly #transfers: Transfers;
  #link: MemoryLink | null = null;
  /** What this node keeps about its partner (loaded at open; its devices exist once a mirror saved it). */
  #replica!: ReplicaRecord;
  /** One node of a pair (a mirror attached now or before): changed only through its mirror. */
  #paired = false;
  /** The core's data area (frames), for copies without a view per frame. */
  #dataArea: Uint8Array | null = null;
  /** Runs reserved for the partner's allocations (SPACE_REQUEST), by base: pages. */
  readonly #reservations = new Map<number, number>();
  /** Write pointers held or being acquired, and who waits for none to be. */
  #writers = 0;
  #writersIdle: Array<() => void> = [];
  #pointers = 0;
  /** allocate, free, superblock writes and checkpoints take turns on this chain. */
  #serialChain: Promise<unknown> = Promise.resolve();
  /** Allocations whose journal record is appended, waiting for its flush. */
  readonly #pending = new Set<Promise<void>>();
  #closed = false;

  protected constructor(init: MemoryInit) {
    this.core = init.core;
    this.pageSize = init.core.pageSize;
    this.store = init.store;
    this.policies = init.policies;
    this.#pageStore = init.pageStore;
    this.#metadata = init.metadata;
    this.#wal = init.wal;
    this.#damage = init.damage;
    this.#sched = new Scheduler(init.core.conflicts.slice(1), { tasks: init.tasksPerGroup, stripePages: init.stripePages });
    this.#blocks = new BlockTable(init.capacityPages);
    this.#ranges = new RangeLocks(init.core.conflicts[0]);
    this.#cache = new FrameCache(init.core, init.pageStore, this.#sched, this.#wal, () => this.#link?.repair ?? null, init.damage);
    init.damage.useBlocks((page) => this.#blocks.blockAt(page));
    this.#committer = new Committer({
      core: init.core, cache: this.#cache, wal: this.#wal, ranges: this.#ranges, blocks: this.#blocks,
      link: () => (this.#link ? { link: this.#link, intents: this.#replica.intents } : null),
      maxPointerPages: () => this.#maxPointerPages(),
      paired: () => this.#paired,
    });
    this.#transfers = new Transfers({
      core: init.core, cache: this.#cache, ranges: this.#ranges, blocks: this.#blocks, committer: this.#committer,
      pageStore: init.pageStore, sched: this.#sched,
      hold: (exclusive) => { this.#pointers++; if (exclusive) this.#writers++; },
      unhold: (exclusive) => { this.#pointers--; if (exclusive) this.#writerDone(); },
    });
    const hash = (b: Uint8Array) => this.core.checksum(b);
    this.#checkpoints = new Checkpointer({
      store: init.store, pageSize: this.pageSize, hash, cache: this.#cache, sched: this.#sched, pageStore: init.pageStore,
      wal: this.#wal, metadata: init.metadata, ranges: this.#ranges, blocks: this.#blocks,
      serial: <T>(fn: () => Promise<T>) => this.#serial(fn), settleChanges: () => this.#settleChanges(), checkpointBytes: init.checkpointBytes,
    });
  }

  // --- open -------------------------------------------------------------------------

  /** Opens (or creates) a memory. */
  static async open(options: MemoryOptions): Promise<Memory> {
    return Memory.openWith(options, (init) => new Memory(init));
  }

  /** Opens a memory made by `make` (a subclass's constructor). */
  protected static async openWith<M extends Memory>(options: MemoryOptions, make: (init: MemoryInit) => M): Promise<M> {
    const o = resolveMemoryOptions(options);
    const store = await resolveStore(o.store);
    // A missing superblock is not created before the store is known to hold no data.
    let superDevice: Device | null = (await store.exists('super')) ? await store.open('super') : null;
    const opened: Device[] = superDevice ? [superDevice] : [];
    try {
      const read = superDevice ? await readSuperblockSlots(superDevice) : { raws: [], pageSize: null };
      const pageSize = read.pageSize ?? o.pageSize ?? 4096;
      if (o.pageSize !== undefined && o.pageSize !== pageSize) {
        throw TwinpageError.invalidArgument(`pageSize: this store was created with ${pageSize}-byte pages, not ${o.pageSize}`);
      }
      const frames = Math.floor(o.cacheBytes / pageSize);
      if (frames < 1) throw TwinpageError.invalidArgument(`cacheBytes must hold at least one ${pageSize}-byte page`);
      const core = await Core.create({ pageSize, frames, ioBytes: (1 << 20) + (64 << 10), conflictTables: 1 + o.taskGroups, conflictCapacity: POINTER_TABLE_CAPACITY });
      const hash = (b: Uint8Array) => core.checksum(b);
      const loaded = await loadSuperblock(store, superDevice, read, pageSize, hash);
      if (!superDevice) opened.push(superDevice = await store.open('super'));
      let sb = loaded.sb;
      if (sb.version === 1 && o.upgrade) sb = await upgradeFromV1(store, superDevice, sb, hash);
      // Version 2 is version 3 without a table file (its journal holds every
      // block): it is read as it is, and the checkpoint at open writes it in
      // version 3.
      if (sb.version !== FORMAT_VERSION && !(sb.version === 2 && o.upgrade)) {
        throw TwinpageError.unsupportedFormat(`this store has format version ${sb.version}; this twinpage reads version ${FORMAT_VERSION}${sb.version < FORMAT_VERSION ? ' (and upgrades versions 1 and 2 unless upgrade is false)' : ''}`);
      }
      const capacityPages = Math.min(MAX_PAGE + 1, Math.floor((o.capacityBytes ?? (MAX_PAGE + 1) * pageSize) / pageSize));
      const pagesDevice = await store.open('pages');
      opened.push(pagesDevice);
      const sumsDevice = await store.open('sums');
      opened.push(sumsDevice);
      const wal = new Wal();
      const damage = new DamageLog();
      const pageStore = new PageStore(pagesDevice, sumsDevice, pageSize, {
        hash, salt: saltOf(sb.nodeId), zeroSum: core.checksum(new Uint8Array(pageSize)), lsnNow: () => wal.nextLsn - 1, observer: damage,
      });
      // Every sum sector is checked before the journal is replayed over them.
      await pageStore.open(sb.sumsBytes, Math.max(0, sb.checkpointLsn - 1), sb.pagesBytes);
      const memory = make({
        core, store, policies: o.policies, pageStore,
        metadata: new Metadata(superDevice, sb, hash), capacityPages, checkpointBytes: o.checkpointBytes,
        tasksPerGroup: o.tasksPerGroup, stripePages: o.stripePages, wal, damage,
      });
      let torn = false;
      if (!loaded.fresh) {
        await loadTable(store, sb, hash, memory.#blocks);
        ({ torn } = await replay(store, sb, hash, { wal: memory.#wal, blocks: memory.#blocks, cache: memory.#cache }));
      }
      if (memory.#wal.hasJournal) opened.push(memory.#wal.journal.device);
      memory.#replica = await ReplicaRecord.load(store, hash, () => memory.#blocks.list(), sb.meta.mirror);
      memory.#paired = memory.#replica.stored;
      // A new store gets its first journal, an older format is written in
      // this one, and a journal that ended in a torn tail (what is left of it
      // is not written after) is replaced, by a checkpoint. Otherwise the
      // replayed journal goes on (its pages are in the page file already; the
      // next checkpoint, when the journal grows or at flush() and close(),
      // makes them durable there).
      if (!memory.#wal.hasJournal || loaded.sb.version !== FORMAT_VERSION || torn) await memory.#checkpoints.run();
      else memory.#checkpoints.maybe();
      if (o.flushIntervalMs > 0) memory.#checkpoints.startFlusher(o.flushIntervalMs);
      return memory;
    } catch (err) {
      await Promise.all(opened.map((d) => d.close().catch(() => {})));
      throw err;
    }
  }

  // --- the mirror's way in ---------------------------------------------------------------

  /**
   * Attaches a mirror: the changes this memory commits for its callers go
   * out through `link` while it is the primary (a secondary's callers may
   * only read), and pages failing their checksum here are asked of it.
   * Loads the replica record. One link at a time.
   */
  attach(link: MemoryLink): Attachment {
    this.#open();
    if (this.#link) throw TwinpageError.busy('a mirror is attached to this memory already');
    this.#link = link;
    this.#paired = true;
    this.#replica.configureIntents(link.intents);
    this.#replica.resume();
    return {
      replica: this.#replica,
      detach: () => { if (this.#link === link) this.#link = null; },
    };
  }

  /**
   * Applies a change the partner made, through the same block table,
   * journal, cache and commit path as local changes. A release's pages take
   * effect together. Resolves once the change is durable here.
   */
  async apply(change: Change): Promise<void> {
    this.#open();
    switch (change.type) {
      case 'allocate': return this.#applyAllocate(change.block);
      case 'free':
        if (!this.#blocks.has(change.blockId)) return; // freed already (a resync repeats it)
        return this.#free(change.blockId, false);
      case 'release': return this.#applyRelease(change);
    }
  }

  async #applyAllocate(b: Block): Promise<void> {
    const known = this.#blocks.find(b.id);
    if (known) {
      // A resync repeats what may have arrived already: the same block is no change.
      if (known.base === b.base && known.pages === b.pages && known.length === b.length) return;
      throw TwinpageError.alreadyExists(`block ${b.id} exists here already, elsewhere`);
    }
    await this.#serial(async () => {
      const reserved = this.#reservations.get(b.base) === b.pages;
      if (reserved) this.#reservations.delete(b.base);
      else if (!this.#blocks.takeRunAt(b.base, b.pages)) {
        throw TwinpageError.noSpace(`pages [${b.base}, ${b.base + b.pages}) of block ${b.id} are not free here`);
      }
      const block: Block = { ...b, generation: this.#wal.takeLsn() };
      try {
        await this.#wal.logAlloc(block);
      } catch (err) {
        this.#blocks.releaseRun(b.base, b.pages);
        throw err;
      }
      this.#blocks.add(block);
    });
  }

  async #applyRelease(r: Extract<Change, { type: 'release' }>): Promise<void> {
    const block = this.#blocks.get(r.blockId);
    for (const w of r.pages) this.#checkPageWrite(block, w);
    if (r.pages.length === 0) return;
    const writes = [...r.pages].sort((a, b) => a.page - b.page);
    await this.#committer.commitRemote(block, r.offset, r.length, writes);
  }

  /** A partner's page: whole, inside its block, matching its checksum. */
  #checkPageWrite(block: Block, w: PageWrite): void {
    if (!(w.data instanceof Uint8Array) || w.data.length !== this.pageSize) {
      throw TwinpageError.invalidArgument(`a page of block ${block.id} must arrive as ${this.pageSize} bytes`);
    }
    if (w.page < block.base || w.page >= block.base + block.pages) {
      throw TwinpageError.outOfRange(`page ${w.page} is outside block ${block.id}`);
    }
    if (this.core.checksum(w.data) !== w.checksum) throw TwinpageError.corrupt(`page ${w.page} fails its checksum`);
  }

  /**
   * Reserves `[base, base + pages)` for an allocation the partner is about to
   * send (SPACE_REQUEST): false when any of it is taken here. The
   * ALLOCATE_MEMORY for that run takes the reservation.
   */
  reserveRun(base: number, pages: number): boolean {
    this.#open();
    if (this.#reservations.has(base) || !this.#blocks.takeRunAt(base, pages)) return false;
    this.#reservations.set(base, pages);
    return true;
  }

  /** Gives back every reservation not taken (the partner that asked for them is gone). */
  releaseReservations(): void {
    for (const [base, pages] of this.#reservations) this.#blocks.releaseRun(base, pages);
    this.#reservations.clear();
  }

  /**
   * Resolves once no change of this memory's callers is under way: no write
   * pointer held or being acquired, no allocate or free running (a demotion
   * waits for this after refusing new ones).
   */
  async drainWrites(): Promise<void> {
    await this.#serial(async () => {});
    await this.#settleChanges();
    while (this.#writers > 0) await new Promise<void>((resolve) => this.#writersIdle.push(resolve));
  }

  // --- blocks ------------------------------------------------------------------------

  /** Allocates a block of `size` bytes; resolves once its header is durable (ALLOCATE_MEMORY). */
  async allocate(size: number, options: { policy?: string } = {}): Promise<Block> {
    this.#open();
    if (!Number.isSafeInteger(size) || size < 1) throw TwinpageError.invalidArgument(`size must be a positive integer, got ${String(size)}`);
    const policy = this.policies.choose(size, options?.policy);
    const pages = Math.ceil(size / this.pageSize);
    const capacity = this.#blocks.capacityPages;
    if (pages > capacity) throw TwinpageError.noSpace(`${size} bytes exceed the capacity of ${capacity * this.pageSize} bytes`);
    this.#writable('allocate');
    // The run and the journal record are taken in turn with every other
    // allocate, free and checkpoint; the flush is waited for after the turn,
    // so that allocations under way together share one (group commit).
    const { block, durable } = await this.#serial(async () => {
      this.#writable('allocate');
      const base = this.#blocks.takeRun(pages);
      if (base < 0) throw TwinpageError.noSpace(`no free run of ${pages} pages (${this.#blocks.freePages} pages free in all)`);
      // The partner reserves the same run first: if it cannot, nothing changes on either node.
      const link = this.#link;
      let granted = false;
      try {
        granted = link?.primary ? await link.reserve(base, pages) : true;
      } finally {
        if (!granted) this.#blocks.releaseRun(base, pages);
      }
      if (!granted) throw TwinpageError.noSpace(`the partner has no room for ${pages} pages at page ${base}: nothing was allocated on either node`);
      const b: Block = { id: crypto.randomUUID(), base, pages, length: size, policy, generation: this.#wal.takeLsn() };
      const flushed = this.#wal.appendAlloc(b).then(
        () => { this.#blocks.add(b); },
        (err: unknown) => { this.#blocks.releaseRun(base, pages); throw err; },
      );
      return { block: b, durable: this.#pendingChange(flushed) };
    });
    await durable;
    await this.#send({ type: 'allocate', block: { ...block } }, policy);
    return { ...block };
  }

  /** Tracks a block-table change whose record is appended and not yet flushed (a checkpoint waits for it). */
  #pendingChange(p: Promise<void>): Promise<void> {
    this.#pending.add(p);
    const gone = () => { this.#pending.delete(p); };
    p.then(gone, gone);
    return p;
  }

  /** Resolves once every block-table change appended so far is flushed and in the table (or failed). */
  async #settleChanges(): Promise<void> {
    while (this.#pending.size) await Promise.allSettled([...this.#pending]);
  }

  /** Frees a block once no pointer holds any of it (RELEASE_MEMORY). */
  async free(id: string): Promise<void> {
    this.#open();
    this.#writable('free');
    return this.#free(id, true);
  }

  async #free(id: string, send: boolean): Promise<void> {
    const block = this.#blocks.get(id);
    const entry = this.#ranges.insert(block.base, block.base + block.pages - 1, true);
    try {
      await this.#ranges.waitTurn(entry);
      if (!this.#blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${id} was freed meanwhile`);
      await this.#serial(async () => {
        const lsn = await this.#wal.logFree(id);
        this.#blocks.delete(id, lsn);
        await this.#cache.dropBlock(block);
        this.#blocks.releaseRun(block.base, block.pages);
        if (send) await this.#send({ type: 'free', blockId: id }, block.policy);
      });
    } finally {
      this.#ranges.remove(entry);
    }
  }

  /** Hands a block-table change to the mirror's link, if one is attached (a primary's). */
  async #send(change: Change, policy: LinkPolicy): Promise<void> {
    const link = this.#link;
    if (link?.primary) await link.send(change, policy);
  }

  /** Refuses a change from this memory's own caller on a secondary. */
  #writable(what: string): void {
    if (this.#link && !(this.#link.accepting ?? this.#link.primary)) {
      throw TwinpageError.notPrimary(`${what}: this node is a secondary; only its primary changes it (reads are allowed)`);
    }
    if (!this.#link && this.#paired) {
      // Changed behind its mirror's back, the node would differ from its partner unknown to both.
      throw TwinpageError.notPrimary(`${what}: this store is one node of a pair and no mirror is attached: a change made here would ` +
        "neither reach its partner nor be resynced. Open it with its mirror (mirror: { role: 'primary' } with no partner writes degraded " +
        'and remembers what the partner lacks); reads are allowed');
    }
  }

  /**
   * A block's header (READ_HEADER); with `checksums`, the current checksum of
   * each page too: all of them, or `count` from page `first` of the block.
   */
  async header(id: string, options: { checksums?: boolean; first?: number; count?: number } = {}): Promise<Block & { checksums?: bigint[] }> {
    this.#open();
    const block = this.#blocks.get(id);
    if (!options?.checksums) return { ...block };
    const from = intOption('first', options.first, 0, 0, block.pages);
    const count = intOption('count', options.count, block.pages - from, 0, block.pages - from);
    const base = block.base + from;
    // Decoded into typed arrays, not an object per page: verify reads millions.
    const stored = { checksums: new BigUint64Array(count), lsns: new Float64Array(count) };
    if (count > 0) {
      // Each part of the range (a stripe) read while the scheduler holds it shared, into its place.
      await this.#sched.submit({
        first: base, last: base + count - 1, mode: 'shared',
        run: (from, to) => this.#pageStore.readSumsInto(from, to - from + 1, {
          checksums: stored.checksums.subarray(from - base), lsns: stored.lsns.subarray(from - base),
        }),
      });
    }
    const cache = this.#cache;
    const pages = this.core.pages;
    const checksums: bigint[] = new Array(count);
    // The cached frames looked up a batch at a time (one call into the core per batch, not per page).
    for (let at = 0; at < count; at += pages.maxBatch) {
      const n = Math.min(pages.maxBatch, count - at);
      const frames = pages.lookupRun(base + at, n, false);
      for (let i = at; i < at + n; i++) {
        const f = frames[i - at];
        if (f >= 0 && !cache.loading(base + i)) { checksums[i] = cache.sum(f); continue; }
        const unwritten = cache.unwritten(base + i);
        if (unwritten && unwritten.lsn >= block.generation) { checksums[i] = unwritten.checksum; continue; }
        if (this.#damage.any && this.#damage.concerns(base + i, block)) { checksums[i] = UNKNOWN_SUM; continue; }
        // Never written, LOST (-1), or of a block this one replaced: zeros.
        const lsn = stored.lsns[i];
        checksums[i] = lsn <= 0 || lsn < block.generation ? cache.zeroSum : stored.checksums[i];
      }
    }
    return { ...block, checksums };
  }

  /** How many blocks this memory holds. */
  get blockCount(): number {
    return this.#blocks.size;
  }

  /** Every block's header. */
  blocks(): Block[] {
    this.#open();
    return this.#blocks.list();
  }

  /**
   * Address space, storage and cache: total and free bytes (SPACE_REQUEST).
   * Storage is the device the store lives on (null where the platform
   * cannot tell); blocks are thin: a block takes storage as it is written.
   */
  async space(): Promise<SpaceReport> {
    this.#open();
    const ps = this.pageSize;
    const t = this.core.pages.totals();
    const storage = await this.store.space();
    return {
      addressSpace: { total: this.#blocks.capacityPages * ps, free: this.#blocks.freePages * ps },
      storage,
      cache: { total: this.core.frameCount * ps, free: t.free * ps, dirty: t.dirty * ps },
    };
  }

  // --- pointers -------------------------------------------------------------------------

  /**
   * A shared read-only pointer on [offset, offset + length) of a block
   * (ALLOCATE_READ). With `signal`: a wait that is aborted rejects with the
   * signal's reason (an AbortError DOMException unless `abort()` was given
   * another) and leaves nothing behind; an aborted signal rejects at once.
   */
  async acquireRead(id: string, offset: number, length: number, options: AcquireOptions = {}): Promise<ReadPointer> {
    const signal = acquireSignal(options);
    signal?.throwIfAborted();
    return this.tryAcquireRead(id, offset, length) ?? new ReadPointer(this, await this.#acquire(id, offset, length, false, false, signal));
  }

  /**
   * The synchronous fast path of `acquireRead`: a read pointer at once when
   * every page of the range is cached and nothing is in the way (no writer
   * holding or waiting for an overlapping range, frames to spare), else null
   * (then `acquireRead` waits for its turn and stages what is missing).
   */
  tryAcquireRead(id: string, offset: number, length: number): ReadPointer | null {
    const { first, last, count } = this.#pointerSpan(id, offset, length);
    const cache = this.#cache;
    if (!cache.canReserve(count)) return null;
    const frames = cache.cachedRun(first, count);
    if (!frames) return null;
    const entry = this.#ranges.tryShared(first, last);
    if (entry === 0) return null;
    // No exclusive range overlaps, so no frame here holds an exclusive pin.
    const pages = this.core.pages;
    try {
      if (count === 1) pages.pin(frames[0]); else pages.pinAll(frames);
    } catch (err) {
      this.#ranges.remove(entry);
      throw err;
    }
    cache.reserveNow(count);
    this.#pointers++;
    return new ReadPointer(this, { blockId: id, offset, length, exclusive: false, first, frames, entry, undo: NO_UNDO, released: false });
  }

  /**
   * An exclusive write pointer (ALLOCATE_WRITE). With `overwrite`, pages the
   * range covers whole are not read from storage: the caller promises to
   * write every byte. `signal` as for `acquireRead`.
   */
  async acquireWrite(id: string, offset: number, length: number, options: AcquireOptions & { overwrite?: boolean } = {}): Promise<WritePointer> {
    const signal = acquireSignal(options);
    signal?.throwIfAborted();
    this.#open();
    this.#writable('acquireWrite');
    return new WritePointer(this, await this.#acquire(id, offset, length, true, options?.overwrite === true, signal));
  }

  /**
   * Copies of some pages of a block (page numbers, ascending) with their
   * checksums, for a resync: one shared range from the first to the last is
   * taken in arrival order and held until `use` settles, so a write to any
   * of them waits and comes after. Pages not cached are read from the page
   * file in runs, without frames (transfer.ts).
   */
  async copyPages<T>(id: string, pages: number[], use: (copies: PageWrite[]) => Promise<T>): Promise<T> {
    this.#open();
    const block = this.#blocks.get(id);
    const first = pages[0];
    const last = pages[pages.length - 1];
    if (pages.length === 0 || first < block.base || last >= block.base + block.pages || pages.some((p, k) => k > 0 && p <= pages[k - 1])) {
      throw TwinpageError.invalidArgument(`copyPages: pages must be ascending pages of block ${id}`);
    }
    if (pages.length > this.#maxPointerPages()) throw TwinpageError.tooLarge(`copyPages: ${pages.length} pages; at most ${this.#maxPointerPages()} at once`);
    return this.#transfers.copyPages(block, pages, use);
  }

  /** Reads bytes of a block (in cache-sized pieces when larger than the cache). */
  async read(id: string, offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(id, offset, out);
    return out;
  }

  /**
   * Copies bytes `[offset, offset + target.length)` of a block into
   * `target`. When every page is cached and no writer holds or waits for
   * them, it copies at once and allocates nothing; otherwise a read of 16
   * pages or more reads the pages that are not cached straight from the page
   * file into `target`, in runs, each page checked (transfer.ts), and a
   * smaller one reads through read pointers (staging what is missing).
   */
  async readInto(id: string, offset: number, target: Uint8Array): Promise<void> {
    if (this.tryReadInto(id, offset, target)) return;
    if (this.#spans(offset, target.length) >= DIRECT_MIN_PAGES) return this.#transfers.readInto(this.#blocks.get(id), offset, target);
    const chunk = this.#chunkBytes();
    for (let at = 0; at < target.length; at += chunk) {
      const n = Math.min(chunk, target.length - at);
      const p = await this.acquireRead(id, offset + at, n);
      try {
        let pos = at;
        for (const seg of p.segments()) { target.set(seg, pos); pos += seg.length; }
      } finally {
        await p.release();
      }
    }
  }

  /**
   * The synchronous path of `readInto`: copies and returns true when every
   * page of the range is cached and no writer holds or waits for any of
   * them; else false, having copied nothing that counts.
   */
  tryReadInto(id: string, offset: number, target: Uint8Array): boolean {
    this.#open();
    if (!(target instanceof Uint8Array)) throw TwinpageError.invalidArgument('target must be a Uint8Array');
    const block = this.#blocks.get(id);
    const length = target.length;
    this.#checkRange(block, offset, length);
    if (length === 0) return true;
    const ps = this.pageSize;
    const first = block.base + Math.floor(offset / ps);
    const last = block.base + Math.floor((offset + length - 1) / ps);
    if (!this.#ranges.freeForShared(first, last)) return false;
    const pages = this.core.pages;
    const cache = this.#cache;
    // Checked whole before a byte is copied: nothing runs in between (one synchronous step).
    for (let p = first; p <= last; p++) if (pages.lookup(p) < 0 || cache.loading(p)) return false;
    let pos = 0;
    let inPage = offset % ps;
    for (let p = first; p <= last; p++) {
      const n = Math.min(ps - inPage, length - pos);
      const start = this.core.frameOffset(pages.lookup(p)) + inPage;
      target.set(this.#dataView.subarray(start, start + n), pos);
      pos += n;
      inPage = 0;
    }
    return true;
  }

  /**
   * Writes bytes into a block and resolves at the block's durability. A
   * write of a write-through block spanning 16 pages or more commits in
   * pieces of up to 16 MiB (4096 pages), each one journal record and atomic,
   * its uncached whole pages written without going through the cache
   * (transfer.ts); other writes commit in cache-sized pieces, each atomic.
   */
  async write(id: string, offset: number, data: Uint8Array): Promise<void> {
    this.#open();
    this.#writable('write');
    if (!(data instanceof Uint8Array)) throw TwinpageError.invalidArgument('data must be a Uint8Array');
    const block = this.#blocks.get(id);
    this.#checkRange(block, offset, data.length);
    if (block.policy.writeMode === 'write-through' && this.#spans(offset, data.length) >= DIRECT_MIN_PAGES) {
      await this.#transfers.write(block, offset, data);
      this.#checkpoints.maybe();
      return;
    }
    const chunk = this.#chunkBytes();
    for (let at = 0; at < data.length; at += chunk) {
      const n = Math.min(chunk, data.length - at);
      const p = await this.acquireWrite(id, offset + at, n, { overwrite: true });
      try {
        p.write(0, data.subarray(at, at + n));
      } catch (err) {
        await p.abort();
        throw err;
      }
      await p.release();
    }
  }

  frameView(frame: number): Uint8Array {
    return this.core.frameView(frame);
  }

  /** This node's id (a GUID, kept in the superblock). */
  get nodeId(): string {
    return this.#metadata.nodeId;
  }

  /** Metadata the layers above keep in the superblock (the mirror's generations). */
  get meta(): Readonly<Record<string, unknown>> {
    return this.#metadata.meta;
  }

  /** Merges `patch` into the superblock metadata, durably (both slots). */
  setMeta(patch: Record<string, unknown>): Promise<void> {
    this.#open();
    return this.#metadata.write((sb) => ({ meta: { ...sb.meta, ...patch } }));
  }

  /** Checks a pointer's range; its block and pages. */
  #pointerSpan(id: string, offset: number, length: number): { block: Block; first: number; last: number; count: number } {
    this.#open();
    const block = this.#blocks.get(id);
    this.#checkRange(block, offset, length);
    if (length === 0) throw TwinpageError.invalidArgument('length must be at least 1');
    const first = block.base + Math.floor(offset / this.pageSize);
    const last = block.base + Math.floor((offset + length - 1) / this.pageSize);
    const count = last - first + 1;
    if (count > this.#maxPointerPages()) {
      throw TwinpageError.tooLarge(`the range spans ${count} pages; a pointer may hold at most ${this.#maxPointerPages()} (the cache has ${this.core.frameCount} frames)`);
    }
    return { block, first, last, count };
  }

  /**
   * Takes the range (in arrival order), reserves frames, stages and pins the
   * pages. An abort of `signal` ends a wait at once; while staging, it is
   * seen between pages. Either way everything taken is given back.
   */
  async #acquire(id: string, offset: number, length: number, exclusive: boolean, overwrite: boolean, signal?: AbortSignal): Promise<PointerState> {
    const { block, first, last, count } = this.#pointerSpan(id, offset, length);
    const ps = this.pageSize;
    const cache = this.#cache;
    const entry = this.#ranges.insert(first, last, exclusive);
    this.#pointers++;
    if (exclusive) this.#writers++;
    let reserved = false;
    const frames: number[] = new Array<number>(count).fill(-1);
    const undo: Array<Uint8Array | null> = [];
    try {
      await this.#ranges.waitTurn(entry, signal);
      if (!this.#blocks.holds(block)) throw TwinpageError.unknownBlock(`block ${id} was freed while waiting`);
      await cache.reserve(count, signal);
      reserved = true;
      for (let i = 0; i < count; i++) {
        const page = first + i;
        const whole = overwrite && (i > 0 || offset % ps === 0) && (i < count - 1 || (offset + length) % ps === 0);
        signal?.throwIfAborted();
        const { frame, zeroed } = await cache.stage(page, block, exclusive, whole);
        frames[i] = frame;
        if (exclusive) undo.push(zeroed ? null : this.core.frameView(frame).slice());
      }
      signal?.throwIfAborted();
      return { blockId: id, offset, length, exclusive, first, frames, entry, undo, released: false };
    } catch (err) {
      frames.forEach((f, i) => {
        if (f < 0) return;
        cache.unpin(f);
        // Staged for overwrite and never read (zeros): storage has the truth, the frame goes.
        if (exclusive && undo[i] === null) cache.discard(first + i, f);
      });
      if (reserved) cache.unreserve(count);
      this.#ranges.remove(entry);
      this.#pointers--;
      if (exclusive) this.#writerDone();
      throw err;
    }
  }

  #writerDone(): void {
    if (--this.#writers > 0) return;
    const idle = this.#writersIdle;
    this.#writersIdle = [];
    for (const w of idle) w();
  }

  /**
   * PointerHost: ends a pointer, committing a write pointer's pages unless
   * `commit` is false. A read pointer is released before this returns.
   */
  releasePointer(p: PointerState, commit: boolean): Promise<void> {
    if (!p.exclusive) {
      p.released = true;
      this.#endPointer(p);
      return RESOLVED;
    }
    return this.#releaseWrite(p, commit);
  }

  async #releaseWrite(p: PointerState, commit: boolean): Promise<void> {
    p.released = true;
    let failure: unknown = null;
    try {
      if (commit) {
        try {
          await this.#committer.commitPointer(p);
        } catch (err) {
          failure = err;
          this.#cache.undo(p);
        }
      } else {
        this.#cache.undo(p);
      }
    } finally {
      this.#endPointer(p);
    }
    if (failure) throw failure;
    this.#checkpoints.maybe();
  }

  /** Unpins a pointer's frames, gives back its reservation and its range. */
  #endPointer(p: PointerState): void {
    for (const f of p.frames) this.#cache.unpin(f);
    this.#cache.unreserve(p.frames.length);
    this.#ranges.remove(p.entry);
    this.#pointers--;
    if (p.exclusive) this.#writerDone();
  }

  // --- damage and scrub -------------------------------------------------------------------

  /**
   * The pages of live blocks this node cannot serve: their checksum entry
   * was lost to damage (`what: 'checksum'`) or their bytes fail their
   * checksum on every local copy (`'bytes'`). Found at open (every sum
   * sector is checked), by reads and by `scrub()`; a page leaves the list
   * when it is written whole again or repaired. Reads of these pages fail
   * with CORRUPT unless an attached mirror's read repair brings them back.
   */
  damage(): PageDamage[] {
    this.#open();
    return this.#damage.list();
  }

  /** Calls `listener` with each damaged page found from now on; returns a function that stops it. */
  onDamage(listener: DamageListener): () => void {
    this.#open();
    if (typeof listener !== 'function') throw TwinpageError.invalidArgument('listener must be a function');
    return this.#damage.on(listener);
  }

  /**
   * Reads every page of every block and every piece of metadata (superblock
   * slots, the journal, every sum sector) on every copy, like ZFS's scrub:
   * a bad copy is rewritten from a good one (a mirrored set of stores), a
   * page bad on every copy is asked of the partner when a mirror is
   * attached, and what cannot be repaired is reported (and kept in
   * `damage()`). Runs alongside reads and writes; starts with a checkpoint.
   */
  async scrub(options: ScrubOptions = {}): Promise<ScrubReport> {
    this.#open();
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw TwinpageError.invalidArgument('onProgress must be a function');
    return new Scrubber({
      core: this.core, store: this.store, pageStore: this.#pageStore, sched: this.#sched, cache: this.#cache,
      metadata: this.#metadata, wal: this.#wal, damage: this.#damage, blocks: () => this.#blocks.list(),
      checkpoint: () => this.#checkpoints.run(), rewriteTable: () => this.#checkpoints.rewriteTable(),
      serial: <T>(fn: () => Promise<T>) => this.#serial(fn),
    }).run(options);
  }

  // --- flush and close -------------------------------------------------------------------

  /** Makes every write durable and brings the page file up to date (destage). */
  async flush(): Promise<void> {
    this.#open();
    await this.#checkpoints.run();
  }

  /** Flushes, then closes the store. Refused while pointers are held. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#pointers > 0) throw TwinpageError.busy(`${this.#pointers} pointer(s) still held or waiting; release them before close()`);
    await this.#checkpoints.closing();
    await this.#checkpoints.run();
    this.#closed = true;
    await this.#wal.journal.device.close();
    await this.#pageStore.close();
    await this.#metadata.close();
  }

  /** `await using memory = …`: closes it at the end of the scope (as `close()`). */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- helpers ---------------------------------------------------------------------------

  /** Runs `fn` after every allocate, free, superblock write and checkpoint before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serialChain.then(fn, fn);
    this.#serialChain = run.catch(() => {});
    return run;
  }

  /** Pointers held or being acquired (close() is refused while there are any). */
  get pointersHeld(): number {
    return this.#pointers;
  }

  /** The most pages one pointer may hold here (bounded by the cache). */
  get maxPointerPages(): number {
    return this.#maxPointerPages();
  }

  /** Pages read back whole from the partner after failing their checksum here. */
  get repairedFromPartner(): number {
    return this.#cache.repairedFromPartner;
  }

  /** Counters of the task groups that run this memory's storage operations. */
  schedulerStats(): SchedulerStats {
    return this.#sched.stats();
  }

  get #dataView(): Uint8Array {
    return this.#dataArea ??= this.core.dataView();
  }

  #maxPointerPages(): number {
    return Math.min(this.core.frameCount, MAX_RECORD_PAGES);
  }

  /** Pages bytes [offset, offset + length) of a block touch. */
  #spans(offset: number, length: number): number {
    const ps = this.pageSize;
    return length === 0 ? 0 : Math.floor((offset + length - 1) / ps) - Math.floor(offset / ps) + 1;
  }

  #chunkBytes(): number {
    // Leave room for a page of misalignment at each end.
    return Math.max(1, this.#maxPointerPages() - 2) * this.pageSize;
  }

  #checkRange(block: Block, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) throw TwinpageError.invalidArgument(`offset must be a non-negative integer, got ${String(offset)}`);
    if (!Number.isSafeInteger(length) || length < 0) throw TwinpageError.invalidArgument(`length must be a non-negative integer, got ${String(length)}`);
    if (offset + length > block.length) {
      throw TwinpageError.outOfRange(`bytes [${offset}, ${offset + length}) are outside block ${block.id} of ${block.length} bytes`);
    }
  }

  #open(): void {
    if (this.#closed) throw TwinpageError.closed('this memory is closed');
  }
}
