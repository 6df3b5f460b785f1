// One node's memory manager: blocks in a paged virtual address space, cached
// in the core's frames and backed by a store (format in storage/format.ts).
//
// Durability: a write pointer's release appends its changed pages to the
// write-ahead journal as one record and, for write-through policies, waits
// for the journal's flush; the page file is brought up to date later, by
// eviction and by checkpoints (flush(), close(), a growing journal). A crash
// at any moment leaves either the old or the new contents of a released
// range, and reopening replays the journal.

import { Core } from './core/index.js';
import { TwinpageError } from './errors.js';
import { PolicyList, policyFromRecord, policyToRecord, type Durability, type Policy, type PolicyInput } from './policies.js';
import { AddressSpace } from './memory/space.js';
import { Scheduler, type SchedulerStats } from './sched/scheduler.js';
import { MessageType, type Request, type WritePage } from './messages.js';
import { ReadPointer, WritePointer, type PointerHost, type PointerState } from './memory/pointer.js';
import type { Device, Store } from './storage/device.js';
import { MemoryStore } from './storage/memory.js';
import { MirroredStore } from './storage/mirrored.js';
import { PageStore, type PageImage } from './storage/pagestore.js';
import { Journal, replayJournal } from './storage/journal.js';
import {
  FORMAT_VERSION, MAX_RECORD_PAGES, RecordType, SUPERBLOCK_SIZE,
  decodeSuperblock, encodeSuperblock, isGuid, type JournalRecord, type Superblock,
} from './storage/format.js';

export { ReadPointer, WritePointer } from './memory/pointer.js';

const MAX_PAGE = 0xFFFFFFFE;
const RESOLVED = Promise.resolve();
const POINTER_TABLE_CAPACITY = 4096;
/** Frame states kept beside the core's dirty flag. */
const CLEAN = 0, UNLOGGED = 1, LOGGED = 2;

/** Options of `openMemory`. */
export interface MemoryOptions {
  /**
   * Where the memory lives: a data folder (Node), a `Store`, or several of
   * either to keep a mirrored set of copies on this node (US 7,107,411 claim 4).
   */
  store: string | Store | Array<string | Store>;
  /**
   * Bytes per page for a new store: a power of two from 512 to 1 MiB. An
   * existing store keeps its own; giving another is an error.
   * @default 4096
   */
  pageSize?: number;
  /**
   * Bytes of page cache (frames), reserved in linear memory at open.
   * @default 64 MiB
   */
  cacheBytes?: number;
  /**
   * Policies chosen by allocation size. @default one policy: `disk`, write-through.
   */
  policies?: PolicyInput[];
  /**
   * Bytes of address space (and storage) blocks may take in all.
   * @default the whole u32 page space
   */
  capacityBytes?: number;
  /**
   * How often the background flusher journals write-back pages, in ms; 0 turns it off.
   * @default 1000
   */
  flushIntervalMs?: number;
  /**
   * Task groups the address space is dealt to (a power of two); each serves
   * its stripes' storage operations (US 7,167,969).
   * @default 4
   */
  taskGroups?: number;
  /**
   * Tasks per group: storage operations one group runs at once.
   * @default 4
   */
  tasksPerGroup?: number;
  /**
   * Pages per stripe of the address space (a power of two).
   * @default 256
   */
  stripePages?: number;
  /**
   * Journal size that triggers a checkpoint (page file brought up to date, journal restarted).
   * @default 64 MiB
   */
  checkpointBytes?: number;
}

/** A block's header (READ_HEADER). */
export interface Block {
  /** The block's GUID. */
  id: string;
  /** First virtual page. */
  base: number;
  /** Bytes asked for at allocation. */
  length: number;
  /** Pages in the block's run. */
  pages: number;
  policy: Policy;
  /** The journal sequence that created the block. */
  generation: number;
}

/** `space()`: bytes of address space, storage and cache. */
export interface SpaceReport {
  addressSpace: { total: number; free: number };
  storage: { total: number; free: number };
  cache: { total: number; free: number; dirty: number };
}

interface Waiter { n: number; resolve: () => void }

/**
 * Where a memory hands the paging synchronization messages of every change
 * it applies, in order; the mirror attaches here (memory.ts never imports
 * the mirror). Resolves once the partner holds the change at `durability`.
 */
/**
 * Where the mirror takes this memory's changes: the messages of one change,
 * with the durability and copy method of the block's policy. Resolves when
 * the partner holds them at that durability. `local`, when given, is this
 * node's own journal commit of the change, running meanwhile (the messages
 * go to the partner in parallel with it): if it fails, the change is undone
 * here and the partner may hold it, so its pages differ.
 */
export type Outbox = (messages: Request[], policy: Pick<Policy, 'durability' | 'copyMethod'>, local?: Promise<void>) => Promise<void>;

/**
 * Called before a release's pages are written here, with the pages it
 * changes (sorted): the mirror records them as a write intent, so that after
 * a crash it knows which pages may differ from the partner's.
 */
export type WriteIntent = (pages: number[]) => Promise<void> | undefined;

/**
 * Asked for a page that fails its checksum on every local copy: the page's
 * bytes from elsewhere (the partner), or null. Used only when they match the
 * checksum this node recorded for the page.
 */
export type PageRepair = (blockId: string, page: number) => Promise<Uint8Array | null>;


export class Memory implements PointerHost {
  readonly pageSize: number;
  readonly core: Core;
  readonly store: Store;
  readonly policies: PolicyList;
  readonly #pageStore: PageStore;
  /** Every page-store operation goes through the task groups. */
  readonly #sched: Scheduler;
  readonly #super: Device;
  #sb: Superblock;
  #journal!: Journal;
  readonly #blocks = new Map<string, Block>();
  #space: AddressSpace;
  readonly #capacityPages: number;
  #nextLsn = 1;

  // per frame, beside the core's flags
  readonly #state: Uint8Array;
  readonly #sum: BigUint64Array;
  readonly #lsn: Float64Array;
  readonly #zeroSum: bigint;

  readonly #loading = new Map<number, Promise<void>>();
  readonly #evictions = new Set<Promise<void>>();
  /** Waiters per conflict-table entry, woken when it leaves. */
  readonly #entryWaiters = new Map<number, Array<() => void>>();
  /** Frames reserved by pointers being acquired or held. */
  #reserved = 0;
  readonly #reserveQueue: Waiter[] = [];
  #frameWaiters: Array<() => void> = [];
  #pointers = 0;
  /** allocate, free and checkpoints take turns on this chain. */
  #metaChain: Promise<unknown> = Promise.resolve();
  #checkpointing: Promise<void> | null = null;
  readonly #checkpointBytes: number;
  #flusher: ReturnType<typeof setInterval> | null = null;
  #closed = false;
  /** Set by the mirror: every change applied here goes out through it. */
  outbox: Outbox | null = null;
  /** Set by the mirror of a primary: awaited before a release's pages are written here. */
  intent: WriteIntent | null = null;
  /** Set by the mirror: fetches a page that fails its checksum here from the partner. */
  repair: PageRepair | null = null;
  /** Pages read back whole from the partner after failing their checksum here. */
  repairedFromPartner = 0;
  /** A partner's WRITE_PAGEs waiting for their RELEASE_POINTER, per block. */
  readonly #incoming = new Map<string, WritePage[]>();

  private constructor(init: {
    core: Core; store: Store; policies: PolicyList; pageStore: PageStore; superDevice: Device;
    sb: Superblock; capacityPages: number; checkpointBytes: number; tasksPerGroup: number; stripePages: number;
  }) {
    this.core = init.core;
    this.pageSize = init.core.pageSize;
    this.store = init.store;
    this.policies = init.policies;
    this.#pageStore = init.pageStore;
    this.#sched = new Scheduler(init.core.conflicts.slice(1), { tasks: init.tasksPerGroup, stripePages: init.stripePages });
    this.#super = init.superDevice;
    this.#sb = init.sb;
    this.#capacityPages = init.capacityPages;
    this.#checkpointBytes = init.checkpointBytes;
    this.#space = new AddressSpace(init.capacityPages);
    const frames = init.core.frameCount;
    this.#state = new Uint8Array(frames);
    this.#sum = new BigUint64Array(frames);
    this.#lsn = new Float64Array(frames);
    this.#zeroSum = init.core.checksum(new Uint8Array(this.pageSize));
  }

  // --- open and recovery ----------------------------------------------------------

  static async open(options: MemoryOptions): Promise<Memory> {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    const store = await resolveStore(options.store);
    const cacheBytes = optionInt(options.cacheBytes, 64 << 20, 'cacheBytes');
    const flushIntervalMs = optionInt(options.flushIntervalMs, 1000, 'flushIntervalMs', 0);
    const checkpointBytes = optionInt(options.checkpointBytes, 64 << 20, 'checkpointBytes');
    const policies = new PolicyList(options.policies ?? undefined);
    const taskGroups = optionInt(options.taskGroups, 4, 'taskGroups');
    if ((taskGroups & (taskGroups - 1)) !== 0 || taskGroups > 1024) throw TwinpageError.invalidArgument(`taskGroups must be a power of two up to 1024, got ${taskGroups}`);
    const tasksPerGroup = optionInt(options.tasksPerGroup, 4, 'tasksPerGroup');
    const stripePages = optionInt(options.stripePages, 256, 'stripePages');
    if (options.pageSize !== undefined) checkPageSize(options.pageSize);

    const superDevice = await store.open('super');
    const opened: Device[] = [superDevice];
    try {
      return await Memory.#openOn(store, superDevice, opened, options, { cacheBytes, flushIntervalMs, checkpointBytes, policies, taskGroups, tasksPerGroup, stripePages });
    } catch (err) {
      await Promise.all(opened.map((d) => d.close().catch(() => {})));
      throw err;
    }
  }

  static async #openOn(
    store: Store, superDevice: Device, opened: Device[], options: MemoryOptions,
    o: {
      cacheBytes: number; flushIntervalMs: number; checkpointBytes: number; policies: PolicyList;
      taskGroups: number; tasksPerGroup: number; stripePages: number;
    },
  ): Promise<Memory> {
    const { cacheBytes, flushIntervalMs, checkpointBytes, policies, taskGroups, tasksPerGroup, stripePages } = o;
    const raw = new Uint8Array(2 * SUPERBLOCK_SIZE);
    const present = await superDevice.read(0, raw);
    const storedPageSize = present > 0 ? sniffPageSize(raw) : null;
    const fresh = present === 0 || (storedPageSize === null && await looksUnused(store));
    if (!fresh && storedPageSize === null) {
      throw TwinpageError.corrupt('no valid superblock in this store: it is damaged or not a twinpage store');
    }
    const pageSize = storedPageSize ?? options.pageSize ?? 4096;
    if (options.pageSize !== undefined && options.pageSize !== pageSize) {
      throw TwinpageError.invalidArgument(`pageSize: this store was created with ${pageSize}-byte pages, not ${options.pageSize}`);
    }
    const frames = Math.floor(cacheBytes / pageSize);
    if (frames < 1) throw TwinpageError.invalidArgument(`cacheBytes must hold at least one ${pageSize}-byte page`);
    const core = await Core.create({ pageSize, frames, ioBytes: (1 << 20) + (64 << 10), conflictTables: 1 + taskGroups, conflictCapacity: POINTER_TABLE_CAPACITY });
    const hash = (b: Uint8Array) => core.checksum(b);

    let sb: Superblock;
    if (fresh) {
      sb = { version: FORMAT_VERSION, pageSize, sequence: 0, walEpoch: 0, nodeId: crypto.randomUUID(), created: Date.now(), meta: {} };
    } else {
      const slots = [0, 1].map((i) => decodeSuperblock(raw.subarray(i * SUPERBLOCK_SIZE, (i + 1) * SUPERBLOCK_SIZE), hash));
      const valid = slots.filter((s): s is Superblock => s !== null).sort((a, b) => b.sequence - a.sequence);
      if (valid.length === 0) throw TwinpageError.corrupt('both superblocks fail their checksums');
      sb = valid[0];
      if (sb.version !== FORMAT_VERSION) {
        throw TwinpageError.unsupportedFormat(`this store has format version ${sb.version}; this twinpage reads version ${FORMAT_VERSION}`);
      }
    }
    const capacityPages = Math.min(MAX_PAGE + 1, Math.floor(optionInt(options.capacityBytes, (MAX_PAGE + 1) * pageSize, 'capacityBytes') / pageSize));
    const pagesDevice = await store.open('pages');
    opened.push(pagesDevice);
    const sumsDevice = await store.open('sums');
    opened.push(sumsDevice);
    const pageStore = new PageStore(pagesDevice, sumsDevice, pageSize);
    const memory = new Memory({ core, store, policies, pageStore, superDevice, sb, capacityPages, checkpointBytes, tasksPerGroup, stripePages });
    if (!fresh) await memory.#recover();
    if (memory.#journal) opened.push(memory.#journal.device);
    await memory.#checkpoint();
    if (flushIntervalMs > 0) memory.#startFlusher(flushIntervalMs);
    return memory;
  }

  /** Replays the active journal onto the block table and the page store. */
  async #recover(): Promise<void> {
    const epoch = this.#sb.walEpoch;
    if (epoch === 0) return;
    const name = `wal.${epoch}`;
    if (!(await this.store.exists(name))) throw TwinpageError.corrupt(`the superblock names journal ${name}, which is missing`);
    const device = await this.store.open(name);
    const hash = (b: Uint8Array) => this.core.checksum(b);
    const result = await replayJournal(device, epoch, this.pageSize, hash, async (r) => {
      this.#nextLsn = Math.max(this.#nextLsn, r.lsn + 1);
      switch (r.type) {
        case RecordType.Alloc: {
          const b = r.block;
          this.#blocks.set(b.id, { id: b.id, base: b.base, pages: b.pages, length: b.length, policy: policyFromRecord(b.policy), generation: r.lsn });
          break;
        }
        case RecordType.Free:
          this.#blocks.delete(r.id);
          break;
        case RecordType.Pages:
          await this.#writePages(r.pages.map((p, i) => ({ page: p.page, image: r.images[i], checksum: p.checksum, lsn: r.lsn })));
          break;
      }
    });
    if (result.records === 0) throw TwinpageError.corrupt(`journal ${name} has no valid epoch record`);
    this.#journal = new Journal(device, epoch, result.end, this.pageSize, hash);
    const used = [...this.#blocks.values()].map((b) => ({ base: b.base, pages: b.pages }));
    for (const r of used) {
      if (r.base + r.pages > this.#capacityPages) throw TwinpageError.invalidArgument('capacityBytes is smaller than the blocks this store holds');
    }
    this.#space = new AddressSpace(this.#capacityPages, used);
  }

  // --- blocks ------------------------------------------------------------------------

  /** Allocates a block of `size` bytes; resolves once its header is durable (ALLOCATE_MEMORY). */
  async allocate(size: number, options: { policy?: string } = {}): Promise<Block> {
    this.#open();
    if (!Number.isSafeInteger(size) || size < 1) throw TwinpageError.invalidArgument(`size must be a positive integer, got ${String(size)}`);
    const policy = this.policies.choose(size, options?.policy);
    const pages = Math.ceil(size / this.pageSize);
    if (pages > this.#capacityPages) throw TwinpageError.noSpace(`${size} bytes exceed the capacity of ${this.#capacityPages * this.pageSize} bytes`);
    return this.#meta(async () => {
      const base = this.#space.allocate(pages);
      if (base < 0) throw TwinpageError.noSpace(`no free run of ${pages} pages (${this.#space.freePages} pages free in all)`);
      const block: Block = { id: crypto.randomUUID(), base, pages, length: size, policy, generation: this.#nextLsn++ };
      try {
        await this.#logAlloc(block);
      } catch (err) {
        this.#space.release(base, pages);
        throw err;
      }
      this.#blocks.set(block.id, block);
      await this.#emit([{ type: MessageType.ALLOCATE_MEMORY, blockId: block.id, base, pages, length: size, generation: block.generation, policy: policyToRecord(policy) }], policy);
      return { ...block };
    });
  }

  /** Frees a block once no pointer holds any of it (RELEASE_MEMORY). */
  async free(id: string): Promise<void> {
    this.#open();
    const block = this.#block(id);
    const entry = this.#insertRange(block.base, block.base + block.pages - 1, true);
    try {
      await this.#waitTurn(entry);
      if (this.#blocks.get(id) !== block) throw TwinpageError.unknownBlock(`block ${id} was freed meanwhile`);
      await this.#meta(async () => {
        await this.#log({ type: RecordType.Free, lsn: this.#nextLsn++, epoch: this.#journal.epoch, id });
        this.#blocks.delete(id);
        // Drop the block's cached pages, so that a block later given this run
        // never finds them. A frame being evicted (I/O in flight) is waited for.
        for (let p = block.base; p < block.base + block.pages; p++) {
          for (let f = this.core.pages.lookup(p); f >= 0; f = this.core.pages.lookup(p)) {
            if (this.core.pages.frame(f).io) { await Promise.all([...this.#evictions]); continue; }
            this.core.pages.remove(p);
            this.#state[f] = CLEAN;
          }
        }
        this.#space.release(block.base, block.pages);
        await this.#emit([{ type: MessageType.RELEASE_MEMORY, blockId: id }], block.policy);
      });
    } finally {
      this.#removeRange(entry);
    }
  }

  /** A block's header (READ_HEADER); with `checksums`, each page's current checksum too. */
  async header(id: string, options: { checksums?: boolean } = {}): Promise<Block & { checksums?: bigint[] }> {
    this.#open();
    const block = this.#block(id);
    if (!options?.checksums) return { ...block };
    let sums: Array<{ checksum: bigint; lsn: number }> = [];
    await this.#sched.submit({
      first: block.base, last: block.base + block.pages - 1, mode: 'shared',
      run: async () => { if (sums.length === 0) sums = await this.#pageStore.readSums(block.base, block.pages); },
    });
    const checksums = sums.map((s, i) => {
      const f = this.core.pages.lookup(block.base + i);
      if (f >= 0 && !this.#loading.has(block.base + i)) return this.#sum[f];
      return s.lsn === 0 || s.lsn < block.generation ? this.#zeroSum : s.checksum;
    });
    return { ...block, checksums };
  }

  /** Every block's header. */
  blocks(): Block[] {
    this.#open();
    return [...this.#blocks.values()].map((b) => ({ ...b }));
  }

  /** Address space, storage and cache: total and free bytes (SPACE_REQUEST). */
  space(): SpaceReport {
    this.#open();
    const ps = this.pageSize;
    const t = this.core.pages.totals();
    const freeAddr = this.#space.freePages * ps;
    return {
      addressSpace: { total: this.#capacityPages * ps, free: freeAddr },
      storage: { total: this.#capacityPages * ps, free: freeAddr },
      cache: { total: this.core.frameCount * ps, free: t.free * ps, dirty: t.dirty * ps },
    };
  }

  // --- pointers -------------------------------------------------------------------------

  /** A shared read-only pointer on [offset, offset + length) of a block (ALLOCATE_READ). */
  async acquireRead(id: string, offset: number, length: number): Promise<ReadPointer> {
    return this.tryAcquireRead(id, offset, length) ?? new ReadPointer(this, await this.#acquire(id, offset, length, false, false));
  }

  /**
   * The synchronous fast path of `acquireRead`: a read pointer at once when
   * every page of the range is cached and nothing is in the way (no writer
   * holding or waiting for an overlapping range, frames to spare), else null
   * (then `acquireRead` waits for its turn and stages what is missing).
   */
  tryAcquireRead(id: string, offset: number, length: number): ReadPointer | null {
    const { first, last, count } = this.#pointerSpan(id, offset, length);
    if (this.#reserveQueue.length > 0 || this.#reserved + count > this.core.frameCount) return null;
    const table = this.core.conflicts[0];
    if (table.size >= table.capacity || table.query(first, last, 'shared') !== 0) return null;
    const pages = this.core.pages;
    const frames = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const f = pages.lookup(first + i);
      if (f < 0 || this.#loading.has(first + i)) return null;
      frames[i] = f;
    }
    // No exclusive range overlaps, so no frame here holds an exclusive pin.
    if (count === 1) pages.pin(frames[0]); else pages.pinAll(frames);
    const entry = table.insert(first, last, 'shared', 0);
    this.#reserved += count;
    this.#pointers++;
    return new ReadPointer(this, { blockId: id, offset, length, exclusive: false, first, frames, entry, undo: [], released: false });
  }

  /**
   * An exclusive write pointer (ALLOCATE_WRITE). With `overwrite`, pages the
   * range covers whole are not read from storage: the caller promises to
   * write every byte.
   */
  async acquireWrite(id: string, offset: number, length: number, options: { overwrite?: boolean } = {}): Promise<WritePointer> {
    return new WritePointer(this, await this.#acquire(id, offset, length, true, options?.overwrite === true));
  }

  /** Reads bytes of a block (in cache-sized pieces when larger than the cache). */
  async read(id: string, offset: number, length: number): Promise<Uint8Array> {
    this.#open();
    this.#checkRange(this.#block(id), offset, length);
    const out = new Uint8Array(length);
    const chunk = this.#chunkBytes();
    for (let at = 0; at < length; at += chunk) {
      const n = Math.min(chunk, length - at);
      const p = await this.acquireRead(id, offset + at, n);
      try { out.set(p.read(), at); } finally { await p.release(); }
    }
    return out;
  }

  /**
   * Writes bytes into a block and resolves at the block's durability. Writes
   * larger than the cache commit in cache-sized pieces, each atomic.
   */
  async write(id: string, offset: number, data: Uint8Array): Promise<void> {
    this.#open();
    if (!(data instanceof Uint8Array)) throw TwinpageError.invalidArgument('data must be a Uint8Array');
    this.#checkRange(this.#block(id), offset, data.length);
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
    return this.#sb.nodeId;
  }

  /** Metadata the layers above keep in the superblock (the mirror's generations). */
  get meta(): Readonly<Record<string, unknown>> {
    return this.#sb.meta;
  }

  /** Merges `patch` into the superblock metadata, durably (both slots). */
  setMeta(patch: Record<string, unknown>): Promise<void> {
    this.#open();
    return this.#meta(() => this.#writeSuperblock({ meta: { ...this.#sb.meta, ...patch } }));
  }

  /**
   * Writes the superblock with `change` to the slot after the current one,
   * then to the other, flushing each: both agree before anything relies on
   * the change, and a slot damaged later leaves a good one.
   */
  async #writeSuperblock(change: Partial<Superblock>): Promise<void> {
    const hash = (b: Uint8Array) => this.core.checksum(b);
    let sb: Superblock = { ...this.#sb, ...change };
    for (let i = 0; i < 2; i++) {
      sb = { ...sb, sequence: sb.sequence + 1 };
      await this.#super.write((sb.sequence % 2) * SUPERBLOCK_SIZE, encodeSuperblock(sb, hash));
      await this.#super.flush();
    }
    this.#sb = sb;
  }

  /** Checks a pointer's range; its block and pages. */
  #pointerSpan(id: string, offset: number, length: number): { block: Block; first: number; last: number; count: number } {
    this.#open();
    const block = this.#block(id);
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

  async #acquire(id: string, offset: number, length: number, exclusive: boolean, overwrite: boolean): Promise<PointerState> {
    const { block, first, last, count } = this.#pointerSpan(id, offset, length);
    const ps = this.pageSize;
    const entry = this.#insertRange(first, last, exclusive);
    this.#pointers++;
    let reserved = false;
    const frames = new Int32Array(count).fill(-1);
    try {
      await this.#waitTurn(entry);
      if (this.#blocks.get(id) !== block) throw TwinpageError.unknownBlock(`block ${id} was freed while waiting`);
      await this.#reserve(count);
      reserved = true;
      const undo: Array<Uint8Array | null> = [];
      for (let i = 0; i < count; i++) {
        const page = first + i;
        const whole = overwrite && (i > 0 || offset % ps === 0) && (i < count - 1 || (offset + length) % ps === 0);
        const { frame, staged } = await this.#stage(page, block, exclusive, whole);
        frames[i] = frame;
        if (exclusive) undo.push(staged && whole ? null : this.core.frameView(frame).slice());
      }
      return { blockId: id, offset, length, exclusive, first, frames, entry, undo, released: false };
    } catch (err) {
      for (const f of frames) if (f >= 0) this.#unpin(f);
      if (reserved) this.#unreserve(count);
      this.#removeRange(entry);
      this.#pointers--;
      throw err;
    }
  }

  /**
   * Brings `page` into a frame and pins it. `whole` pages of a write that
   * overwrites them are not read (they start as zeros). Returns the frame and
   * whether it was staged now (rather than found cached).
   */
  async #stage(page: number, block: Block, exclusive: boolean, whole: boolean): Promise<{ frame: number; staged: boolean }> {
    const pages = this.core.pages;
    for (;;) {
      const found = pages.lookup(page);
      if (found >= 0) {
        const loading = this.#loading.get(page);
        if (loading) { await loading.catch(() => {}); continue; }
        pages.pin(found, exclusive);
        return { frame: found, staged: false };
      }
      // Mapping, pinning and announcing the load happen in one synchronous
      // step, so nobody finds the page mapped but not yet loaded.
      let load: Promise<void> | null = null;
      const frame = await this.#freeFrame(page, block.policy.cachePriority, (f) => {
        pages.pin(f, exclusive);
        this.#state[f] = CLEAN;
        if (whole) {
          this.core.frameView(f).fill(0);
          this.#sum[f] = this.#zeroSum;
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
          this.#wakeFrames();
          throw err;
        } finally {
          this.#loading.delete(page);
        }
      }
      return { frame, staged: true };
    }
  }

  /** Stages a page (through the page's task group). */
  #load(page: number, frame: number, block: Block): Promise<void> {
    return this.#sched.submit({ first: page, last: page, mode: 'shared', run: () => this.#loadNow(page, frame, block) });
  }

  /** Reads a page from the page store into its frame, verifying its checksum. */
  async #loadNow(page: number, frame: number, block: Block): Promise<void> {
    const view = this.core.frameView(frame);
    const sum = await this.#pageStore.readSum(page);
    if (sum.lsn === 0 || sum.lsn < block.generation) {
      view.fill(0);
      this.#sum[frame] = this.#zeroSum;
      this.#lsn[frame] = 0;
      return;
    }
    let ok = await this.#pageStore.readPage(page, view, (bytes) =>
      (bytes === view ? this.core.checksumFrame(frame) : this.core.checksum(bytes)) === sum.checksum);
    if (!ok && this.repair) ok = await this.#repairFromPartner(page, frame, block, sum);
    if (!ok) {
      view.fill(0);
      throw TwinpageError.corrupt(`page ${page - block.base} of block ${block.id} fails its checksum on every copy; it is not returned`);
    }
    this.#sum[frame] = sum.checksum;
    this.#lsn[frame] = sum.lsn;
  }

  /**
   * Read repair: a page failing its checksum on every local copy is asked of
   * the partner; bytes matching the checksum recorded here go into the frame
   * and over the bad copy in the page store.
   */
  async #repairFromPartner(page: number, frame: number, block: Block, sum: { checksum: bigint; lsn: number }): Promise<boolean> {
    let good: Uint8Array | null;
    try {
      good = await this.repair!(block.id, page);
    } catch {
      return false;
    }
    if (!good || good.length !== this.pageSize || this.core.checksum(good) !== sum.checksum) return false;
    this.core.frameView(frame).set(good);
    this.core.checksumFrame(frame);
    await this.#pageStore.writePages([{ page, image: good, checksum: sum.checksum, lsn: sum.lsn }]);
    this.repairedFromPartner++;
    return true;
  }

  /**
   * A frame mapped to `page`: a free one, or a CLOCK victim written back
   * first. Returns -1 when `page` got mapped by someone else meanwhile.
   */
  async #freeFrame(page: number, priority: number, claim: (frame: number) => void): Promise<number> {
    const pages = this.core.pages;
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
        pages.setIo(v.frame, true);
        const done = this.#writeBack([v.frame]).finally(() => {
          pages.setIo(v.frame, false);
          this.#evictions.delete(done);
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
   * Writes dirty frames to the page store (journaling write-back ones
   * first), then marks them clean if nobody changed them meanwhile.
   */
  async #writeBack(frames: number[]): Promise<void> {
    const pages = this.core.pages;
    const unlogged = frames.filter((f) => this.#state[f] === UNLOGGED);
    if (unlogged.length) await this.#logFrames(unlogged);
    const images: PageImage[] = [];
    for (const f of frames) {
      if (this.#state[f] !== LOGGED) continue;
      images.push({ page: pages.frame(f).page, image: this.core.frameView(f).slice(), checksum: this.#sum[f], lsn: this.#lsn[f] });
    }
    await this.#writePages(images);
    for (const img of images) {
      const f = pages.lookup(img.page);
      if (f >= 0 && this.#lsn[f] === img.lsn && this.#state[f] === LOGGED) {
        pages.setDirty(f, false);
        this.#state[f] = CLEAN;
      }
    }
  }

  /**
   * Destages page images through their task groups: each run of adjacent
   * pages is one operation (split per stripe), in page order.
   */
  async #writePages(images: PageImage[]): Promise<void> {
    images.sort((a, b) => a.page - b.page);
    const runs: Promise<void>[] = [];
    for (let i = 0; i < images.length;) {
      let j = i + 1;
      while (j < images.length && images[j].page === images[j - 1].page + 1) j++;
      const run = images.slice(i, j);
      runs.push(this.#sched.submit({
        first: run[0].page, last: run[run.length - 1].page, mode: 'exclusive',
        run: (first, last) => this.#pageStore.writePages(run.filter((p) => p.page >= first && p.page <= last)),
      }));
      i = j;
    }
    await Promise.all(runs);
  }

  /** Counters of the task groups that run this memory's storage operations. */
  schedulerStats(): SchedulerStats {
    return this.#sched.stats();
  }

  /**
   * Journals the current images of write-back frames and waits for the
   * flush. Frames under a write pointer are skipped: their bytes are in flux
   * and their release commits them.
   */
  async #logFrames(candidates: number[]): Promise<void> {
    const pages = this.core.pages;
    for (let i = 0; i < candidates.length; i += MAX_RECORD_PAGES) {
      // Checked and copied (by append) in one synchronous step.
      const part = candidates.slice(i, i + MAX_RECORD_PAGES)
        .filter((f) => this.#state[f] === UNLOGGED && !pages.frame(f).exclusive);
      if (part.length === 0) continue;
      const lsn = this.#nextLsn++;
      const record: JournalRecord = {
        type: RecordType.Pages, lsn, epoch: this.#journal.epoch,
        pages: part.map((f) => ({ page: pages.frame(f).page, checksum: this.#sum[f] })),
        images: part.map((f) => this.core.frameView(f)),
      };
      const was = part.map((f) => this.#lsn[f]);
      await this.#log(record);
      part.forEach((f, k) => {
        if (this.#state[f] === UNLOGGED && this.#lsn[f] === was[k]) {
          this.#state[f] = LOGGED;
          this.#lsn[f] = lsn;
        }
      });
    }
  }

  /**
   * PointerHost: ends a pointer, committing a write pointer's pages unless
   * `commit` is false. A read pointer is released before this returns.
   */
  releasePointer(p: PointerState, commit: boolean): Promise<void> {
    if (!p.exclusive) {
      p.released = true;
      for (const f of p.frames) this.#unpin(f);
      this.#unreserve(p.frames.length);
      this.#removeRange(p.entry);
      this.#pointers--;
      return RESOLVED;
    }
    return this.#releaseWrite(p, commit);
  }

  async #releaseWrite(p: PointerState, commit: boolean): Promise<void> {
    p.released = true;
    let failure: unknown = null;
    try {
      if (p.exclusive) {
        if (commit) {
          try {
            await this.#commit(p);
          } catch (err) {
            failure = err;
            this.#undo(p);
          }
        } else {
          this.#undo(p);
        }
      }
    } finally {
      for (const f of p.frames) this.#unpin(f);
      this.#unreserve(p.frames.length);
      this.#removeRange(p.entry);
      this.#pointers--;
    }
    if (failure) throw failure;
    if (this.#journal.size > this.#checkpointBytes && !this.#checkpointing) {
      this.#checkpoint().catch(() => {});
    }
  }

  /** Commits a write pointer: changed pages get checksums, a sequence, and a journal record (RELEASE_POINTER). */
  async #commit(p: PointerState): Promise<void> {
    const block = this.#blocks.get(p.blockId);
    if (!block) throw TwinpageError.unknownBlock(`block ${p.blockId} is gone`);
    const sums = this.core.checksumFrames(p.frames);
    const changed: number[] = [];
    p.frames.forEach((f, i) => { if (sums[i] !== this.#sum[f] || this.#lsn[f] === 0 && p.undo[i] === null) changed.push(i); });
    if (changed.length === 0) return;
    const lsn = this.#nextLsn++;
    const pages = this.core.pages;
    // The messages of this release, copied now: the frames change after it.
    const outgoing = this.outbox ? this.#releaseMessages(p, changed, sums, lsn) : null;
    // The mirror's write intent is durable before these pages are written here.
    const intent = this.intent?.(changed.map((i) => p.first + i));
    if (intent) await intent;
    // The frames' new images: checksums, sequence, dirty in the given state.
    const settle = (state: number) => {
      for (const i of changed) {
        const f = p.frames[i];
        this.#sum[f] = sums[i];
        this.#lsn[f] = lsn;
        this.#state[f] = state;
        pages.setDirty(f, true);
      }
    };
    if (block.policy.writeMode === 'write-back') {
      settle(UNLOGGED);
      if (outgoing) await this.#emit(outgoing, block.policy);
      return;
    }
    const record: JournalRecord = {
      type: RecordType.Pages, lsn, epoch: this.#journal.epoch,
      pages: changed.map((i) => ({ page: p.first + i, checksum: sums[i] })),
      images: changed.map((i) => this.core.frameView(p.frames[i])),
    };
    const logged = this.#log(record).then(() => settle(LOGGED));
    if (outgoing) {
      // The partner gets the change while this node's journal flushes it (the
      // messages hold their own copies of the pages): the release waits for
      // both, so the flush and the round trip overlap instead of adding up.
      const sent = this.#emit(outgoing, block.policy, logged);
      try {
        await logged;
      } finally {
        await sent;
      }
    } else {
      await logged;
    }
  }

  /** WRITE_PAGE for each changed page, then RELEASE_POINTER: one release as messages. */
  #releaseMessages(p: PointerState, changed: number[], sums: BigUint64Array, lsn: number): Request[] {
    const out: Request[] = changed.map((i) => ({
      type: MessageType.WRITE_PAGE, blockId: p.blockId, page: p.first + i, lsn, checksum: sums[i],
      copy: 'message', data: this.core.frameView(p.frames[i]).slice(),
    }));
    out.push({ type: MessageType.RELEASE_POINTER, blockId: p.blockId, offset: p.offset, length: p.length, lsn, pages: changed.length });
    return out;
  }

  /**
   * Appends one record to the journal and waits for its flush. On failure
   * the journal is cut back to its last durable end (this record and any
   * that shared the flush are gone) and the error is thrown: callers undo
   * their in-memory changes.
   */
  async #log(record: JournalRecord): Promise<void> {
    try {
      this.#journal.append(record);
      await this.#journal.commit();
    } catch (err) {
      await this.#journal.recover();
      throw err;
    }
  }

  /** Journals a block's creation (ALLOCATE_MEMORY applied here). */
  #logAlloc(block: Block): Promise<void> {
    return this.#log({ type: RecordType.Alloc, lsn: block.generation, epoch: this.#journal.epoch, block: { ...block, policy: policyToRecord(block.policy) } });
  }

  /** Hands applied changes to the mirror, if one is attached. */
  async #emit(messages: Request[], policy: Policy, local?: Promise<void>): Promise<void> {
    if (this.outbox) await this.outbox(messages, policy, local);
  }

  // --- a partner's changes -----------------------------------------------------------------

  /**
   * Applies a change the partner made (its messages, in order), through the
   * same journal, page store and task groups as local changes. A release's
   * WRITE_PAGEs wait here until its RELEASE_POINTER, and then take effect
   * together: a partner that dies mid-release leaves the old contents.
   * Resolves once the change is durable here.
   */
  async applyRemote(msg: Request): Promise<void> {
    this.#open();
    switch (msg.type) {
      case MessageType.ALLOCATE_MEMORY: {
        const known = this.#blocks.get(msg.blockId);
        if (known) {
          // A resync repeats what may have arrived already: the same block is no change.
          if (known.base === msg.base && known.pages === msg.pages && known.length === msg.length) return;
          throw TwinpageError.alreadyExists(`block ${msg.blockId} exists here already, elsewhere`);
        }
        const policy = policyFromRecord(msg.policy);
        await this.#meta(async () => {
          if (!this.#space.allocateAt(msg.base, msg.pages)) {
            throw TwinpageError.noSpace(`pages [${msg.base}, ${msg.base + msg.pages}) of block ${msg.blockId} are not free here`);
          }
          const block: Block = { id: msg.blockId, base: msg.base, pages: msg.pages, length: msg.length, policy, generation: this.#nextLsn++ };
          try {
            await this.#logAlloc(block);
          } catch (err) {
            this.#space.release(msg.base, msg.pages);
            throw err;
          }
          this.#blocks.set(block.id, block);
        });
        return;
      }
      case MessageType.RELEASE_MEMORY:
        this.#incoming.delete(msg.blockId);
        if (!this.#blocks.has(msg.blockId)) return; // freed already (a resync repeats it)
        return this.free(msg.blockId);
      case MessageType.WRITE_PAGE: {
        const block = this.#block(msg.blockId);
        if (msg.copy !== 'message' || !msg.data || msg.data.length !== this.pageSize) {
          throw TwinpageError.invalidArgument(`WRITE_PAGE for block ${msg.blockId}: its page must arrive as 'message' data (the mirror copies 'shared' and 'storage' pages in before applying)`);
        }
        if (msg.page < block.base || msg.page >= block.base + block.pages) {
          throw TwinpageError.outOfRange(`WRITE_PAGE: page ${msg.page} is outside block ${msg.blockId}`);
        }
        if (this.core.checksum(msg.data) !== msg.checksum) throw TwinpageError.corrupt(`WRITE_PAGE: page ${msg.page} fails its checksum`);
        const list = this.#incoming.get(msg.blockId);
        if (list) list.push(msg); else this.#incoming.set(msg.blockId, [msg]);
        return;
      }
      case MessageType.RELEASE_POINTER: {
        const writes = this.#incoming.get(msg.blockId) ?? [];
        this.#incoming.delete(msg.blockId);
        if (writes.length !== msg.pages) {
          throw TwinpageError.invalidArgument(`RELEASE_POINTER for block ${msg.blockId} names ${msg.pages} pages; ${writes.length} arrived`);
        }
        if (writes.length) await this.#applyPages(this.#block(msg.blockId), writes);
        return;
      }
      default:
        return; // reads, locks, headers and sense change nothing stored
    }
  }

  /**
   * Drops a partner's WRITE_PAGEs whose RELEASE_POINTER never came (its
   * connection ended mid-release): those pages keep their old contents.
   */
  discardIncoming(): void {
    this.#incoming.clear();
  }

  /** Commits a partner's release: one journal record, then cache and page store. */
  async #applyPages(block: Block, writes: WritePage[]): Promise<void> {
    writes.sort((a, b) => a.page - b.page);
    const first = writes[0].page;
    const last = writes[writes.length - 1].page;
    if (writes.length > this.#maxPointerPages()) {
      throw TwinpageError.tooLarge(`a release of ${writes.length} pages does not fit this node's cache`);
    }
    const entry = this.#insertRange(first, last, true);
    const pages = this.core.pages;
    const held: Array<{ frame: number; fresh: boolean }> = [];
    let reserved = false;
    let committed = false;
    try {
      await this.#waitTurn(entry);
      if (this.#blocks.get(block.id) !== block) throw TwinpageError.unknownBlock(`block ${block.id} was freed meanwhile`);
      // The pages go into cache frames like a local write pointer's (not
      // read: they are overwritten whole), and reach the page file later,
      // by eviction or checkpoint, coalesced.
      await this.#reserve(writes.length);
      reserved = true;
      for (const w of writes) {
        const { frame, staged } = await this.#stage(w.page, block, true, true);
        held.push({ frame, fresh: staged });
      }
      const lsn = this.#nextLsn++;
      await this.#log({
        type: RecordType.Pages, lsn, epoch: this.#journal.epoch,
        pages: writes.map((w) => ({ page: w.page, checksum: w.checksum })),
        images: writes.map((w) => w.data!),
      });
      committed = true;
      writes.forEach((w, i) => {
        const f = held[i].frame;
        this.core.frameView(f).set(w.data!);
        this.#sum[f] = w.checksum;
        this.#lsn[f] = lsn;
        this.#state[f] = LOGGED;
        pages.setDirty(f, true);
      });
    } finally {
      held.forEach(({ frame, fresh }, i) => {
        this.#unpin(frame);
        // Staged for this release and not committed: storage has the truth.
        if (fresh && !committed) { pages.remove(writes[i].page); this.#state[frame] = CLEAN; }
      });
      if (reserved) this.#unreserve(writes.length);
      this.#removeRange(entry);
    }
  }


  /** Puts a write pointer's pages back as they were before it. */
  #undo(p: PointerState): void {
    p.frames.forEach((f, i) => {
      const before = p.undo[i];
      if (before) {
        this.core.frameView(f).set(before);
      } else {
        // Staged for overwrite, never read: drop it, storage has the truth.
        this.core.pages.unpin(f);
        this.core.pages.remove(p.first + i);
        this.#state[f] = CLEAN;
        p.frames[i] = -1;
      }
    });
  }

  // --- flush, checkpoint, close -----------------------------------------------------------

  /** Makes every write durable and brings the page file up to date (destage). */
  async flush(): Promise<void> {
    this.#open();
    await this.#checkpoint();
  }

  /** Flushes, then closes the store. Refused while pointers are held. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#pointers > 0) throw TwinpageError.busy(`${this.#pointers} pointer(s) still held or waiting; release them before close()`);
    if (this.#flusher) clearInterval(this.#flusher);
    await this.#checkpoint();
    this.#closed = true;
    await this.#journal.device.close();
    await this.#pageStore.close();
    await this.#super.close();
  }

  /**
   * Brings the page file up to date and starts a new journal epoch holding
   * only the block table. Write pointers wait while it runs; readers do not.
   */
  #checkpoint(): Promise<void> {
    if (this.#checkpointing) return this.#checkpointing;
    const run = (async () => {
      // The barrier first, then the meta chain: a free() already holding its
      // range finishes before the checkpoint takes the chain.
      const barrier = this.#insertRange(0, MAX_PAGE, false);
      try {
        await this.#waitTurn(barrier);
        await this.#meta(async () => {
          await Promise.all([...this.#evictions]);
          const pages = this.core.pages;
          const dirty = [...pages.dirtyFrames()].filter((f) => !pages.frame(f).io);
          for (const f of dirty) pages.setIo(f, true);
          try {
            if (dirty.length) await this.#writeBack(dirty);
          } finally {
            for (const f of dirty) pages.setIo(f, false);
            this.#wakeFrames();
          }
          // Evictions that were already writing when the dirty frames were
          // listed (those frames were skipped) must land before the flush:
          // once the old journal goes, the page file is their only copy.
          await Promise.all([...this.#evictions]);
          await this.#sched.drain();
          await this.#pageStore.flush();
          await this.#newEpoch();
        });
      } finally {
        this.#removeRange(barrier);
      }
    })().finally(() => { this.#checkpointing = null; });
    this.#checkpointing = run;
    return run;
  }

  async #newEpoch(): Promise<void> {
    const hash = (b: Uint8Array) => this.core.checksum(b);
    const epoch = this.#sb.walEpoch + 1;
    const name = `wal.${epoch}`;
    const device = await this.store.open(name);
    await device.truncate(0);
    const journal = new Journal(device, epoch, 0, this.pageSize, hash);
    journal.append({ type: RecordType.Epoch, lsn: this.#nextLsn, epoch, blocks: this.#blocks.size });
    for (const b of this.#blocks.values()) {
      journal.append({ type: RecordType.Alloc, lsn: b.generation, epoch, block: { ...b, policy: policyToRecord(b.policy) } });
    }
    await journal.commit();
    await this.store.sync();
    // Switch: the slot after the current one names the new journal. Then the
    // other slot too, so that both agree before the old journal goes and a
    // later damaged slot leaves a good one naming a journal that exists.
    await this.#writeSuperblock({ walEpoch: epoch });
    const old = this.#journal as Journal | undefined;
    this.#journal = journal;
    if (old) {
      await old.settle();
      await old.device.close();
    }
    await this.store.remove(`wal.${epoch - 1}`);
    await this.store.sync();
  }

  #startFlusher(ms: number): void {
    this.#flusher = setInterval(() => {
      if (this.#closed || this.#checkpointing) return;
      const pages = this.core.pages;
      const unlogged = [...pages.dirtyFrames()].filter((f) => this.#state[f] === UNLOGGED && pages.frame(f).pins === 0);
      const work = this.#journal.size > this.#checkpointBytes ? this.#checkpoint() : unlogged.length ? this.#meta(() => this.#logFrames(unlogged)) : null;
      work?.catch(() => {}); // a failed background flush leaves the pages dirty; flush() reports errors
    }, ms);
    (this.#flusher as { unref?: () => void }).unref?.();
  }

  // --- conflict table, frame reservations ----------------------------------------------------

  #insertRange(first: number, last: number, exclusive: boolean): number {
    const table = this.core.conflicts[0];
    if (table.size >= table.capacity) throw TwinpageError.busy(`${table.capacity} pointers are already held or waiting`);
    return table.insert(first, last, exclusive ? 'exclusive' : 'shared', 0);
  }

  /** Waits until no entry that arrived before `entry` conflicts with it. */
  async #waitTurn(entry: number): Promise<void> {
    const table = this.core.conflicts[0];
    for (let b = table.blocker(entry); b !== 0; b = table.blocker(entry)) {
      await new Promise<void>((resolve) => {
        const list = this.#entryWaiters.get(b);
        if (list) list.push(resolve); else this.#entryWaiters.set(b, [resolve]);
      });
    }
  }

  #removeRange(entry: number): void {
    this.core.conflicts[0].remove(entry);
    const waiters = this.#entryWaiters.get(entry);
    if (waiters) {
      this.#entryWaiters.delete(entry);
      for (const w of waiters) w();
    }
  }

  async #reserve(n: number): Promise<void> {
    if (this.#reserveQueue.length === 0 && this.#reserved + n <= this.core.frameCount) {
      this.#reserved += n;
      return;
    }
    await new Promise<void>((resolve) => this.#reserveQueue.push({ n, resolve }));
  }

  #unreserve(n: number): void {
    this.#reserved -= n;
    while (this.#reserveQueue.length && this.#reserved + this.#reserveQueue[0].n <= this.core.frameCount) {
      const w = this.#reserveQueue.shift()!;
      this.#reserved += w.n;
      w.resolve();
    }
  }

  #unpin(frame: number): void {
    if (frame < 0) return;
    this.core.pages.unpin(frame);
    this.#wakeFrames();
  }

  #wakeFrames(): void {
    const waiters = this.#frameWaiters;
    this.#frameWaiters = [];
    for (const w of waiters) w();
  }

  // --- helpers ---------------------------------------------------------------------------

  /** Runs `fn` after every allocate, free and checkpoint before it. */
  #meta<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#metaChain.then(fn, fn);
    this.#metaChain = run.catch(() => {});
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

  #maxPointerPages(): number {
    return Math.min(this.core.frameCount, MAX_RECORD_PAGES);
  }

  #chunkBytes(): number {
    // Leave room for a page of misalignment at each end.
    return Math.max(1, this.#maxPointerPages() - 2) * this.pageSize;
  }

  #block(id: string): Block {
    const b = this.#blocks.get(id);
    if (b) return b;
    if (!isGuid(id)) throw TwinpageError.invalidArgument(`block id must be a GUID string, got ${JSON.stringify(id)}`);
    throw TwinpageError.unknownBlock(`no block ${id}`);
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

// --- store resolution ----------------------------------------------------------------------

type FolderStores = (dir: string) => Promise<Store>;
let folderStores: FolderStores | undefined;

/** Node's entry (node.ts) hands over its file stores, so that no bundle has to find storage/file.js. */
export function useFolderStores(open: FolderStores): void {
  folderStores = open;
}

/**
 * index.js imported directly in Node: load the file stores. The specifier is
 * a variable so that bundlers for browsers do not follow it into node:fs.
 */
async function loadFolderStores(): Promise<FolderStores> {
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  if (!node) throw TwinpageError.invalidArgument('store: a folder path needs Node; in a browser give a Store (openOpfsStore, MemoryStore)');
  const file = './storage/file.js';
  const { openFileStore } = await import(/* webpackIgnore: true */ /* @vite-ignore */ file) as typeof import('./storage/file.js');
  return openFileStore;
}

async function resolveStore(spec: MemoryOptions['store']): Promise<Store> {
  if (Array.isArray(spec)) {
    if (spec.length === 0) throw TwinpageError.invalidArgument('store: an empty list');
    if (spec.length === 1) return resolveStore(spec[0]);
    return new MirroredStore(await Promise.all(spec.map((s) => resolveStore(s))));
  }
  if (typeof spec === 'string') {
    if (spec === '') throw TwinpageError.invalidArgument('store: an empty folder name');
    return (folderStores ??= await loadFolderStores())(spec);
  }
  if (spec && typeof spec === 'object' && typeof (spec as Store).open === 'function') return spec as Store;
  throw TwinpageError.invalidArgument('store must be a folder path, a Store, or a list of them');
}

/** The page size a superblock slot claims, if either slot looks like one. */
function sniffPageSize(raw: Uint8Array): number | null {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (const at of [0, SUPERBLOCK_SIZE]) {
    if (v.getUint32(at, true) !== 0x4E495754 || v.getUint32(at + 4, true) !== 0x45474150) continue;
    const ps = v.getUint32(at + 12, true);
    if (ps >= 512 && ps <= 1 << 20 && (ps & (ps - 1)) === 0) return ps;
  }
  return null;
}

/** A store whose first superblock never completed: no page written, no journal past the first. */
async function looksUnused(store: Store): Promise<boolean> {
  const names = await store.list();
  if (names.some((n) => n.startsWith('wal.') && n !== 'wal.1')) return false;
  if (!names.includes('pages')) return true;
  const pages = await store.open('pages');
  try { return (await pages.size()) === 0; } finally { await pages.close(); }
}

function checkPageSize(ps: unknown): void {
  if (typeof ps !== 'number' || !Number.isInteger(ps) || ps < 512 || ps > 1 << 20 || (ps & (ps - 1)) !== 0) {
    throw TwinpageError.invalidArgument(`pageSize must be a power of two from 512 to 1048576, got ${String(ps)}`);
  }
}

function optionInt(value: unknown, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw TwinpageError.invalidArgument(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

export { MemoryStore };
