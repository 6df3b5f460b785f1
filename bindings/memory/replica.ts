// The replica record: what this node keeps about its partner, so that a
// restart knows what may differ without comparing everything:
//   - the generations (current, bitmap, history) the mirror's handshake
//     compares, the pair's epoch, the partner's id, when this node last
//     became primary, whether its current generation is known to the
//     partner, a pending `discard`, and `inconsistent` (a secondary being
//     resynced, which may not be promoted);
//   - the out-of-sync bitmap (out-of-sync.ts), one bit per page;
//   - the write intents (intents.ts): after a crash (`clean` false) every
//     page of a hot extent counts as out of sync.
// On disk (storage/replica-format.ts): the device `replica` holds the
// record in two fixed-size slots written alternately; `bitmap` and
// `bitmap.sums` hold the bitmap's chunks and their checksums. A save writes
// the bitmap's changed chunks first, then the slot, each flushed: a write
// intent is never retired before the pages it covered are in the bitmap on
// disk. Chunks are rewritten in place: one a crash cut short fails its
// check, and all its pages then count as out of sync. The devices are
// created at the first save, so a memory never paired has none. Nothing of
// it grows inside the superblock.

import { PageBitmap } from '../core/bitmap.js';
import { TwinpageError } from '../errors.js';
import type { Device, Store } from '../storage/device.js';
import type { Hash } from '../storage/format.js';
import {
  BITMAP_CHUNK_BYTES, BITMAP_SUM_BYTES, MAX_INTENTS, SLOT_BYTES,
  checkBitmapChunk, decodeReplicaSlot, encodeBitmapSum, encodeReplicaSlot, type ReplicaSlot,
} from '../storage/replica-format.js';
import type { Block } from './blocks.js';
import { ActivityLog, type IntentOptions } from './intents.js';
import { OutOfSync, runsFrom } from './out-of-sync.js';

/** The record as a store of an older version kept it (the superblock's meta.mirror): read once, then moved. */
interface LegacyRecord {
  generation: string;
  history: string[];
  lag?: unknown[];
  blocks?: unknown[];
  intents?: unknown[];
  extentPages?: number;
  clean?: boolean;
  inconsistent?: boolean;
}

/** What a load found wrong (the record still loads, trusting less). */
export interface ReplicaDamage { what: string }

export class ReplicaRecord {
  /** Whether the store held a record (a node that was paired before). */
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
  readonly outOfSync: OutOfSync;
  /** What the load found damaged (the bitmap then is not trusted: a resync compares checksums). */
  readonly damage: ReplicaDamage[] = [];
  #intents: ActivityLog | null = null;
  /** Extents hot at the last save, as stored (until intents are configured). */
  #storedExtentPages = 128;
  readonly #store: Store;
  readonly #hash: Hash;
  #devices: { slots: Device; bits: Device; sums: Device } | null = null;
  #sequence = 0;
  #queued: Promise<void> | null = null;
  #chain: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;

  private constructor(store: Store, hash: Hash, bitmap: PageBitmap, stored: boolean, crashed: boolean) {
    this.#store = store;
    this.#hash = hash;
    this.outOfSync = new OutOfSync(bitmap);
    this.stored = stored;
    this.crashed = crashed;
  }

  /**
   * Loads the record of `store` (or of an older version's superblock meta,
   * `legacy`), with the blocks this node holds. A record whose both slots
   * are damaged is refused with CORRUPT: without its generations this node
   * cannot tell whether its data is newer than its partner's.
   */
  static async load(store: Store, hash: Hash, blocks: () => Block[], legacy: unknown): Promise<ReplicaRecord> {
    const bitmap = await PageBitmap.create();
    if (await store.exists('replica')) {
      const slots = await store.open('replica');
      try {
        const raw = new Uint8Array(2 * SLOT_BYTES);
        const present = await slots.read(0, raw);
        const valid = [0, 1].map((i) => decodeReplicaSlot(raw.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES), hash))
          .filter((s): s is ReplicaSlot => s !== null).sort((a, b) => b.sequence - a.sequence);
        if (valid.length === 0 && present > 0) {
          throw TwinpageError.corrupt("both slots of the replica record fail their checksums: this node's generations are unknown. " +
            "If its partner holds the newest data, remove the files replica, bitmap and bitmap.sums from its folder and restart it as secondary: it is then resynced whole");
        }
        if (valid.length > 0) {
          const r = new ReplicaRecord(store, hash, bitmap, true, !valid[0].clean);
          await r.#fromSlot(valid[0], blocks);
          return r;
        }
      } finally {
        await slots.close();
      }
    }
    const l = legacy as LegacyRecord | undefined;
    if (l && typeof l === 'object' && typeof l.generation === 'string' && Array.isArray(l.history)) {
      const r = new ReplicaRecord(store, hash, bitmap, true, l.clean === false);
      r.#fromLegacy(l, blocks);
      return r;
    }
    return new ReplicaRecord(store, hash, bitmap, false, false);
  }

  async #fromSlot(s: ReplicaSlot, blocks: () => Block[]): Promise<void> {
    this.#sequence = s.sequence;
    this.generation = s.current;
    this.bitmapGeneration = s.bitmap === '0000000000000000' ? null : s.bitmap;
    this.history = s.history;
    this.inconsistent = s.inconsistent;
    this.primarySince = s.primarySince;
    this.shared = s.shared;
    this.discardLocal = s.discardLocal;
    this.epoch = s.epoch;
    this.partner = s.partner;
    this.#storedExtentPages = s.extentPages || 128;
    const oos = this.outOfSync;
    if (!s.known) oos.forget();
    await this.#loadBitmap(s, blocks);
    this.#afterCrash(s.clean, s.intents, s.extentPages, blocks);
  }

  /**
   * The bitmap from its devices, each chunk checked. After a crash, a chunk
   * that fails its check was being rewritten when the process died (a save
   * writes a chunk, then its checksum): every page of it counts as out of
   * sync, and the rest is trusted. Anything else wrong, and it is not trusted.
   */
  async #loadBitmap(s: ReplicaSlot, blocks: () => Block[]): Promise<void> {
    const oos = this.outOfSync;
    const hasBits = await this.#store.exists('bitmap');
    if (!hasBits) {
      if (s.weight > 0 || s.chunks > 0) this.#damaged(`the bitmap files are missing; the record says ${s.weight} pages out of sync`);
      return;
    }
    const bits = await this.#store.open('bitmap');
    const sums = await this.#store.open('bitmap.sums');
    try {
      const entryCount = Math.floor((await sums.size()) / BITMAP_SUM_BYTES);
      if (entryCount < s.chunks) this.#damaged(`the bitmap's checksums cover ${entryCount} chunks; the record says ${s.chunks}`);
      const entries = new Uint8Array(entryCount * BITMAP_SUM_BYTES);
      await sums.read(0, entries);
      // Read in slabs of 256 chunks (1 MiB), each chunk checked against its entry.
      const SLAB = 256;
      const slab = new Uint8Array(SLAB * BITMAP_CHUNK_BYTES);
      let weight = 0;
      for (let at = 0; at < entryCount; at += SLAB) {
        const n = Math.min(SLAB, entryCount - at);
        await bits.read(at * BITMAP_CHUNK_BYTES, slab.subarray(0, n * BITMAP_CHUNK_BYTES));
        for (let k = 0; k < n; k++) {
          const i = at + k;
          const chunk = slab.subarray(k * BITMAP_CHUNK_BYTES, (k + 1) * BITMAP_CHUNK_BYTES);
          const c = checkBitmapChunk(i, chunk, entries.subarray(i * BITMAP_SUM_BYTES, (i + 1) * BITMAP_SUM_BYTES), this.#hash);
          if (c.state === 'bad') {
            if (s.clean) this.#damaged(`bitmap chunk ${i} fails its checksum`);
            else this.#setRange(i * BITMAP_CHUNK_BYTES * 8, BITMAP_CHUNK_BYTES * 8, blocks());
            // Written again by the next save (as it is here now), so that it checks out from then on.
            oos.bitmap.markDirty(i);
            continue;
          }
          if (c.state === 'ok') { oos.bitmap.loadChunk(i, chunk); weight += c.weight; }
        }
      }
      // A clean close saved everything: the weights must add up.
      if (s.clean && weight !== s.weight) this.#damaged(`the bitmap holds ${weight} pages; the record, closed cleanly, says ${s.weight}`);
    } finally {
      await bits.close();
      await sums.close();
    }
  }

  #damaged(what: string): void {
    this.damage.push({ what });
    this.outOfSync.forget();
  }

  #fromLegacy(l: LegacyRecord, blocks: () => Block[]): void {
    this.generation = l.generation;
    this.history = l.history.filter((h): h is string => typeof h === 'string');
    this.inconsistent = l.inconsistent === true;
    // A record of an older version was paired: its generation is the partner's too.
    this.shared = true;
    const oos = this.outOfSync;
    if (!Array.isArray(l.lag)) {
      oos.forget();
      return;
    }
    oos.addRuns(runsFrom(l.lag), blocks());
    if (Array.isArray(l.blocks)) for (const id of l.blocks) if (typeof id === 'string') oos.addBlock(id);
    const hot = Array.isArray(l.intents) ? l.intents.filter((e): e is number => Number.isSafeInteger(e) && (e as number) >= 0) : [];
    const per = Number.isSafeInteger(l.extentPages) && l.extentPages! > 0 ? l.extentPages! : 128;
    this.#storedExtentPages = per;
    this.#afterCrash(l.clean !== false, hot, per, blocks);
  }

  /** After a crash, writes to the hot extents may have reached this node and not the partner. */
  #afterCrash(clean: boolean, intents: number[], extentPages: number, blockList: () => Block[]): void {
    if (clean) return;
    const blocks = blockList();
    const oos = this.outOfSync;
    if (blocks.some((b) => b.policy.writeMode === 'write-back')) {
      // Write-back pages the partner acknowledged may never have reached this
      // node's disk: after a crash only a comparison of checksums finds them.
      oos.forget();
      return;
    }
    for (const e of intents) this.#setRange(e * extentPages, extentPages, blocks);
  }

  /** Marks out of sync every page of [first, first + count) that is in one of `blocks`. */
  #setRange(first: number, count: number, blocks: Block[]): void {
    for (const b of blocks) {
      const from = Math.max(first, b.base);
      const to = Math.min(first + count, b.base + b.pages);
      if (to > from) this.outOfSync.bitmap.set(from, to - from);
    }
  }

  /** The write intents (the activity log), configured by the mirror that attaches. */
  get intents(): ActivityLog {
    this.#intents ??= new ActivityLog({ extentPages: this.#storedExtentPages, maxExtents: 64 }, () => this.save());
    return this.#intents;
  }

  /** Configures the write intents (once, when a mirror attaches). */
  configureIntents(options: IntentOptions): void {
    if (options.maxExtents > MAX_INTENTS) throw TwinpageError.invalidArgument(`intentExtents must be at most ${MAX_INTENTS}`);
    if (this.#intents && this.#intents.size > 0) return;
    this.#intents = new ActivityLog(options, () => this.save());
  }

  /**
   * Writes the record (as not closed cleanly); resolves once a write that
   * began after this call is durable. Calls while one waits to start share it.
   */
  save(): Promise<void> {
    if (this.#queued) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = null;
      // Closed meanwhile: nothing is written, and a write intent waiting for this is not durable.
      if (this.#closed) throw TwinpageError.closed('the mirror was closed before this record could be saved');
      return this.#persist(false);
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
      // A failed write (the device failing) is tried again a second later.
      this.save().catch(() => this.saveSoon());
    }, 1000);
    // Node: a pending save does not keep the process alive (close() saves anyway).
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  /** A mirror attaches (again): saves go on, and the record says "not closed cleanly" until the next close. */
  resume(): void {
    this.#closed = false;
  }

  /** Stops saving, and writes the record once more as closed cleanly. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const last = this.#chain.then(() => this.#persist(true));
    this.#chain = last.catch(() => {});
    return last.finally(() => this.#closeDevices());
  }

  /** The bitmap's changed chunks, then the slot: each flushed. */
  async #persist(clean: boolean): Promise<void> {
    const d = this.#devices ??= {
      slots: await this.#store.open('replica'),
      bits: await this.#store.open('bitmap'),
      sums: await this.#store.open('bitmap.sums'),
    };
    const bitmap = this.outOfSync.bitmap;
    const dirty = bitmap.dirtyChunks();
    // The bitmap and the hot extents as of one moment: an extent retired while the chunks
    // are written had its pages added after this snapshot, so the slot must still name it
    // (the next save records them, then leaves it out).
    const intents = clean ? [] : this.intents.extents();
    const weight = bitmap.count();
    const chunkCount = bitmap.chunkCount;
    const known = this.outOfSync.known;
    if (dirty.length) {
      // Taken and marked clean in one step: a change made while they are written marks them dirty again.
      const chunks = dirty.map((i) => ({ i, bytes: bitmap.chunkBytes(i) }));
      for (const c of chunks) bitmap.markClean(c.i);
      try {
        for (const c of chunks) {
          const entry = new Uint8Array(BITMAP_SUM_BYTES);
          encodeBitmapSum(c.i, c.bytes, weightOf(c.bytes), this.#hash, entry);
          await d.bits.write(c.i * BITMAP_CHUNK_BYTES, c.bytes);
          await d.sums.write(c.i * BITMAP_SUM_BYTES, entry);
        }
        await Promise.all([d.bits.flush(), d.sums.flush()]);
      } catch (err) {
        for (const c of chunks) bitmap.markDirty(c.i);
        throw err;
      }
    }
    const slot: ReplicaSlot = {
      sequence: this.#sequence + 1,
      clean,
      inconsistent: this.inconsistent,
      shared: this.shared,
      discardLocal: this.discardLocal,
      known,
      extentPages: this.intents.extentPages,
      current: this.generation ?? '0000000000000000',
      bitmap: this.bitmapGeneration ?? '0000000000000000',
      history: this.history,
      epoch: this.epoch,
      primarySince: this.primarySince,
      partner: this.partner,
      weight,
      chunks: chunkCount,
      intents,
    };
    await d.slots.write((slot.sequence % 2) * SLOT_BYTES, encodeReplicaSlot(slot, this.#hash));
    await d.slots.flush();
    this.#sequence = slot.sequence;
  }

  async #closeDevices(): Promise<void> {
    const d = this.#devices;
    this.#devices = null;
    if (d) await Promise.all([d.slots.close(), d.bits.close(), d.sums.close()]);
  }
}

/** Pages set in a chunk's bytes (as saved: the chunk may have changed since). */
function weightOf(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) n += BITS[bytes[i]];
  return n;
}

const BITS = Uint8Array.from({ length: 256 }, (_, b) => { let n = 0; for (let x = b; x; x >>= 1) n += x & 1; return n; });

/** Appends pages [first, first + count) to `runs` (ascending), joining the last run when they follow it. */
function addRun(runs: Array<[number, number]>, first: number, count: number): void {
  const last = runs[runs.length - 1];
  if (last && last[0] + last[1] === first) last[1] += count; else runs.push([first, count]);
}

/** What `inspectReplica` reads, as stored (no crash or damage adjustment). */
export interface StoredReplicaView {
  /** 'slots': the replica record's devices; 'legacy': an older version's superblock meta. */
  source: 'slots' | 'legacy';
  current: string;
  bitmap: string | null;
  history: string[];
  clean: boolean | null;
  inconsistent: boolean;
  discardLocal: boolean;
  epoch: number;
  partner: string | null;
  known: boolean;
  /** The bitmap's set pages as runs (null: no record). */
  runs: Array<[number, number]> | null;
  /** Block ids an older version recorded as lacking. */
  blocks: string[];
  intents: number[];
  extentPages: number | null;
  /** What does not check out. */
  problems: string[];
}

/**
 * Reads a store's replica record as it is stored, for `twinpage inspect`:
 * never writes. Null when the store holds none.
 */
export async function inspectReplica(store: Pick<Store, 'exists' | 'open'>, hash: Hash, legacy: unknown): Promise<StoredReplicaView | null> {
  if (await store.exists('replica')) {
    const problems: string[] = [];
    const slots = await store.open('replica');
    let slot: ReplicaSlot | null = null;
    try {
      const raw = new Uint8Array(2 * SLOT_BYTES);
      await slots.read(0, raw);
      const decoded = [0, 1].map((i) => decodeReplicaSlot(raw.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES), hash));
      decoded.forEach((d, i) => { if (!d) problems.push(`replica slot ${i} is blank, torn or corrupt`); });
      slot = decoded.filter((d): d is ReplicaSlot => d !== null).sort((a, b) => b.sequence - a.sequence)[0] ?? null;
    } finally {
      await slots.close();
    }
    if (!slot) return { source: 'slots', current: '', bitmap: null, history: [], clean: null, inconsistent: false, discardLocal: false, epoch: 0, partner: null, known: false, runs: null, blocks: [], intents: [], extentPages: null, problems };
    const runs: Array<[number, number]> = [];
    if (await store.exists('bitmap')) {
      const bits = await store.open('bitmap');
      const sums = await store.open('bitmap.sums');
      try {
        const n = Math.floor((await sums.size()) / BITMAP_SUM_BYTES);
        const entries = new Uint8Array(n * BITMAP_SUM_BYTES);
        await sums.read(0, entries);
        const chunk = new Uint8Array(BITMAP_CHUNK_BYTES);
        for (let i = 0; i < n; i++) {
          await bits.read(i * BITMAP_CHUNK_BYTES, chunk);
          const c = checkBitmapChunk(i, chunk, entries.subarray(i * BITMAP_SUM_BYTES, (i + 1) * BITMAP_SUM_BYTES), hash);
          if (c.state === 'bad') {
            problems.push(`bitmap chunk ${i} fails its checksum${slot.clean ? '' : ' (cut short by the crash, it seems: all its pages count as out of sync)'}`);
            if (!slot.clean) {
              // As a load counts it: every page of the chunk (those of a block, there).
              addRun(runs, i * BITMAP_CHUNK_BYTES * 8, BITMAP_CHUNK_BYTES * 8);
            }
            continue;
          }
          if (c.state === 'empty') continue;
          for (let byte = 0; byte < BITMAP_CHUNK_BYTES; byte++) {
            const v = chunk[byte];
            if (!v) continue;
            for (let bit = 0; bit < 8; bit++) {
              if (!(v & (1 << bit))) continue;
              addRun(runs, i * BITMAP_CHUNK_BYTES * 8 + byte * 8 + bit, 1);
            }
          }
        }
      } finally {
        await bits.close();
        await sums.close();
      }
    }
    return {
      source: 'slots', current: slot.current, bitmap: slot.bitmap === '0000000000000000' ? null : slot.bitmap, history: slot.history,
      clean: slot.clean, inconsistent: slot.inconsistent, discardLocal: slot.discardLocal, epoch: slot.epoch, partner: slot.partner, known: slot.known,
      runs: slot.known ? runs : null, blocks: [], intents: slot.intents, extentPages: slot.extentPages, problems,
    };
  }
  const l = legacy as LegacyRecord | undefined;
  if (!l || typeof l !== 'object' || typeof l.generation !== 'string') return null;
  const runs = Array.isArray(l.lag) ? runsFrom(l.lag) : null;
  return {
    source: 'legacy', current: l.generation, bitmap: null,
    history: Array.isArray(l.history) ? l.history.filter((h): h is string => typeof h === 'string') : [],
    clean: typeof l.clean === 'boolean' ? l.clean : null, inconsistent: l.inconsistent === true, discardLocal: false, epoch: 0, partner: null,
    known: runs !== null, runs,
    blocks: Array.isArray(l.blocks) ? l.blocks.filter((b): b is string => typeof b === 'string') : [],
    intents: Array.isArray(l.intents) ? l.intents.filter((e): e is number => Number.isSafeInteger(e) && (e as number) >= 0) : [],
    extentPages: Number.isSafeInteger(l.extentPages) ? l.extentPages! : null,
    problems: [],
  };
}
