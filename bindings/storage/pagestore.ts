// The page file and the checksum file of a store: page p lives at byte
// p * pageSize of `pages`; its checksum entry in sum sector p / 31 of `sums`
// (format.ts), apart from the page, so a torn or flipped page never vouches
// for itself. Sum sectors carry their own checksum and are written whole
// (read, changed, written back under a per-sector lock): a sector that fails
// its check is read from another copy (a mirrored store), else salvaged
// entry by entry (an entry whose page bytes match it is kept) and the rest
// marked LOST, so that "never written" is never what damage leaves behind.

import { TwinpageError } from '../errors.js';
import type { Device } from './device.js';
import {
  SECTOR, SUMS_PER_SECTOR, decodeSumEntry, decodeSumSector, decodeSumSectorInto, emptyEntries, encodeSumSector, roundUp, sumSectorOf,
  sumSectorValid, type Hash, type Salt, type SumEntry,
} from './format.js';
import { readChecked, scrubRange, type MirroredDevice } from './mirrored.js';

export type { SumEntry } from './format.js';

/** One page to write: its image, its checksum and the sequence that wrote it. */
export interface PageImage { page: number; image: Uint8Array; checksum: bigint; lsn: number }

/** Told what damage the page store finds and what it heals (the memory keeps the list). */
export interface DamageObserver {
  /** `page`'s checksum entry is LOST: its checksum was destroyed when the sequence number was `lostAt`. */
  lost(page: number, lostAt: number): void;
  /** `page`'s bytes (written at sequence `lsn`) are on no copy: they fail their checksum, or the file is too short. */
  badBytes(page: number, lsn: number): void;
  /** `page` has a checksum entry again (written, or repaired). */
  healed(page: number): void;
}

export interface PageStoreOptions {
  hash: Hash;
  salt: Salt;
  /** Checksum of a zero page. */
  zeroSum: bigint;
  /** The last sequence number handed out (LOST entries found while running record it). */
  lsnNow: () => number;
  observer?: DamageObserver;
}

/** What a check of the sum sectors found. */
export interface SumsReport {
  /** Sectors checked. */
  sectors: number;
  /** Bad sectors (on one copy) rewritten from a good copy. */
  repaired: number;
  /** Sectors bad on every copy, rebuilt from what their pages vouch for. */
  salvaged: number;
  /** Sectors bad on every copy past what the last checkpoint vouched for: reset (the journal rewrites them). */
  reset: number;
  /** Pages whose entries are LOST (found LOST, or lost now), with the sequence number they were lost at. */
  lost: Array<{ page: number; lostAt: number }>;
}

/** Sum sectors read at once when many pages' entries are asked for (4,096 pages' worth). */
const READ_CHUNK_SECTORS = 128;
/** Sum sectors a page store remembers (31 pages' entries each). */
const SECTORS_CACHED = 1024;
/** Sum sectors apart that a write of checksum entries still covers in one write (the sectors between read and written back). */
const SUMS_GAP = 4;

/** Bytes of `sums` read at a time when checking it whole. */
const CHECK_CHUNK = 256 * SECTOR;

export class PageStore {
  readonly pages: Device;
  readonly sums: Device;
  readonly pageSize: number;
  readonly #o: PageStoreOptions;
  /** Bytes of `sums` holding sectors (every sector below is written or found). */
  #sumsLength = 0;
  #pagesLength = 0;
  readonly #locks = new Map<number, Promise<void>>();
  /** Writes past the end of `sums` take turns (they fill the gap before them). */
  #growing: Promise<void> = Promise.resolve();
  /**
   * Sum sectors as last read or written here, checked (at most
   * SECTORS_CACHED, the oldest dropped first): pages near each other share
   * a sector, and staging them one by one need not read it each time.
   */
  readonly #sectors = new Map<number, SumEntry[]>();
  /** The entries of a sector past the end of `sums`, shared (never changed): a sparse block's verify reads millions. */
  readonly #empty: SumEntry[];

  constructor(pages: Device, sums: Device, pageSize: number, options: PageStoreOptions) {
    this.pages = pages;
    this.sums = sums;
    this.pageSize = pageSize;
    this.#o = options;
    this.#empty = Object.freeze(emptyEntries(options.zeroSum).map((e) => Object.freeze(e))) as SumEntry[];
  }

  /** Bytes of `sums` in use (sectors written or found). */
  get sumsLength(): number { return this.#sumsLength; }
  /** Bytes of `pages` in use. */
  get pagesLength(): number { return this.#pagesLength; }

  /**
   * At open, before the journal is replayed: every sum sector checked. A bad
   * sector is rewritten from a good copy; else, below `vouched` (the sums
   * length the last checkpoint made durable), salvaged with LOST entries
   * since `lostAt`; past it, reset to empty (only pages written since the
   * checkpoint can be there, and the journal's replay rewrites them).
   */
  async open(vouched: number, lostAt: number, pagesVouched = 0): Promise<SumsReport> {
    this.#pagesLength = await this.pages.size();
    const report = await this.checkSums({ vouched, lostAt, rewrite: true });
    // A page file shorter than the checkpoint left it: the pages cut off are gone (unless zeros).
    const first = Math.ceil(this.#pagesLength / this.pageSize);
    const last = Math.floor(pagesVouched / this.pageSize) - 1;
    // The next checkpoint still vouches for the length it had: the loss stays known until the pages are written.
    this.#pagesLength = Math.max(this.#pagesLength, pagesVouched);
    for (let p = first; p <= last; p += SUMS_PER_SECTOR) {
      const entries = await this.readSums(p, Math.min(SUMS_PER_SECTOR, last - p + 1));
      entries.forEach((e, i) => {
        if (e.lost === undefined && e.lsn !== 0 && e.checksum !== this.#o.zeroSum) this.#o.observer?.badBytes(p + i, e.lsn);
      });
    }
    return report;
  }

  /**
   * Checks every sum sector on every copy, repairs bad copies from good
   * ones, and (with `rewrite`) rebuilds sectors bad on every copy; reports
   * the LOST entries of sectors that check out. Without `rewrite` nothing is
   * written (inspect).
   */
  async checkSums(o: { vouched: number; lostAt: number; rewrite: boolean }): Promise<SumsReport> {
    const { hash, salt } = this.#o;
    // Read from storage again, every copy: what this store remembers is not what is checked.
    this.#sectors.clear();
    const end = roundUp(Math.max(await this.sums.size(), o.vouched, this.#sumsLength), SECTOR);
    const report: SumsReport = { sectors: 0, repaired: 0, salvaged: 0, reset: 0, lost: [] };
    for (let at = 0; at < end; at += CHECK_CHUNK) {
      const length = Math.min(CHECK_CHUNK, end - at);
      const first = at / SECTOR;
      await this.#withSectors(first, first + length / SECTOR - 1, async () => {
        const r = await scrubRange(this.sums, at, length, SECTOR, (b, pos) => sumSectorValid(b, pos / SECTOR, salt.tag, hash), (b, pos) => {
          const entries = decodeSumSector(b, pos / SECTOR, salt.tag);
          entries.forEach((e, i) => { if (e.lost !== undefined) report.lost.push({ page: pos / SECTOR * SUMS_PER_SECTOR + i, lostAt: e.lost }); });
        }, o.rewrite);
        report.sectors += length / SECTOR;
        report.repaired += r.repaired;
        for (const pos of r.bad) {
          const index = pos / SECTOR;
          if (pos >= o.vouched) {
            report.reset++;
            if (o.rewrite) await this.sums.write(pos, encodeSumSector(index, emptyEntries(this.#o.zeroSum), salt.tag, hash));
            continue;
          }
          report.salvaged++;
          const raw = new Uint8Array(SECTOR);
          await this.sums.read(pos, raw);
          const entries = await this.#salvage(index, raw, o.lostAt, o.rewrite);
          entries.forEach((e, i) => { if (e.lost !== undefined) report.lost.push({ page: index * SUMS_PER_SECTOR + i, lostAt: e.lost }); });
          if (o.rewrite) await this.sums.write(pos, encodeSumSector(index, entries, salt.tag, hash));
        }
      });
    }
    if (o.rewrite) this.#sumsLength = Math.max(this.#sumsLength, end);
    if (o.rewrite) for (const { page, lostAt } of report.lost) this.#o.observer?.lost(page, lostAt);
    return report;
  }

  /**
   * The entries of a sector bad on every copy: each entry whose page bytes
   * match it (checksum and seal: its sequence number and place) is kept; the
   * others become LOST since `lostAt`.
   */
  async #salvage(index: number, raw: Uint8Array, lostAt: number, repairPages: boolean): Promise<SumEntry[]> {
    const { hash, salt } = this.#o;
    const out: SumEntry[] = [];
    const page = new Uint8Array(this.pageSize);
    for (let i = 0; i < SUMS_PER_SECTOR; i++) {
      const p = index * SUMS_PER_SECTOR + i;
      const at = 16 + i * 16;
      const zeroed = raw.subarray(at, at + 16).every((x) => x === 0);
      const e = decodeSumEntry(raw, at, p, salt.tag);
      let kept = false;
      if (!zeroed && e.lost === undefined) {
        const verify = (b: Uint8Array) => hash(b) === e.checksum;
        kept = repairPages
          ? (await readChecked(this.pages, p * this.pageSize, page, verify)).ok
          : (await this.pages.read(p * this.pageSize, page), verify(page));
      }
      out.push(kept ? e : { checksum: 0n, lsn: 0, lost: lostAt });
    }
    return out;
  }

  /** The checksum entry of `page`. */
  async readSum(page: number): Promise<SumEntry> {
    const index = sumSectorOf(page);
    const entries = await this.#withSectors(index, index, () => this.#readSector(index));
    return entries[page - index * SUMS_PER_SECTOR];
  }

  /**
   * The checksum entries of pages [first, first + count), their sectors read
   * READ_CHUNK_SECTORS at a time (a sector that fails its check is read
   * again alone: from another copy, else salvaged).
   */
  async readSums(first: number, count: number): Promise<SumEntry[]> {
    const out: SumEntry[] = [];
    const take = (s: number, entries: SumEntry[]) => {
      for (let i = 0; i < SUMS_PER_SECTOR; i++) {
        const p = s * SUMS_PER_SECTOR + i;
        if (p >= first && p < first + count) out.push(entries[i]);
      }
    };
    await this.#eachSector(first, count, (s, bytes) => take(s, decodeSumSector(bytes, s, this.#o.salt.tag)), take);
    return out;
  }

  /**
   * The checksums and write sequences of pages [first, first + count) into
   * `out` (page first + k at k), as `readSums` reads them but without an
   * object per page (verify reads millions): `lsns[k]` is -1 for a LOST
   * entry (its checksum then 0; when it was lost is not kept here).
   */
  async readSumsInto(first: number, count: number, out: { checksums: BigUint64Array; lsns: Float64Array }): Promise<void> {
    if (!Number.isSafeInteger(first) || first < 0 || !Number.isSafeInteger(count) || count < 0) {
      throw TwinpageError.invalidArgument(`readSumsInto: first and count must be non-negative integers, got ${first} and ${count}`);
    }
    if (out.checksums.length < count || out.lsns.length < count) throw TwinpageError.invalidArgument(`readSumsInto: room for ${count} entries needed`);
    const fromEntries = (s: number, entries: SumEntry[]) => {
      for (let i = 0; i < SUMS_PER_SECTOR; i++) {
        const k = s * SUMS_PER_SECTOR + i - first;
        if (k < 0 || k >= count) continue;
        const e = entries[i];
        out.checksums[k] = e.lost !== undefined ? 0n : e.checksum;
        out.lsns[k] = e.lost !== undefined ? -1 : e.lsn;
      }
    };
    const words = new Uint32Array(out.checksums.buffer, out.checksums.byteOffset, count * 2);
    await this.#eachSector(first, count, (s, bytes) => decodeSumSectorInto(bytes, s, this.#o.salt.tag, first, count, words, out.lsns), fromEntries);
  }

  /**
   * Walks the sum sectors of pages [first, first + count) in order, read
   * READ_CHUNK_SECTORS at a time: a sector read whole and checking out goes
   * to `fromBytes`; one this store remembers, or that must be read again
   * alone (from another copy, else salvaged), goes to `fromEntries`.
   */
  async #eachSector(first: number, count: number, fromBytes: (s: number, bytes: Uint8Array) => void, fromEntries: (s: number, entries: SumEntry[]) => void): Promise<void> {
    if (count === 0) return;
    const { hash, salt } = this.#o;
    const s0 = sumSectorOf(first);
    const s1 = sumSectorOf(first + count - 1);
    for (let c0 = s0; c0 <= s1; c0 += READ_CHUNK_SECTORS) {
      const c1 = Math.min(s1, c0 + READ_CHUNK_SECTORS - 1);
      await this.#withSectors(c0, c1, async () => {
        // The sectors of this chunk that storage holds and this store does not remember: one read.
        const stored = Math.min(c1 + 1, this.#sumsLength / SECTOR) - c0;
        let raw: Uint8Array | null = null;
        if (stored > 1) {
          let unknown = 0;
          for (let s = c0; s < c0 + stored; s++) if (!this.#sectors.has(s)) unknown++;
          if (unknown > 1) {
            raw = new Uint8Array(stored * SECTOR);
            await this.sums.read(c0 * SECTOR, raw);
          }
        }
        for (let s = c0; s <= c1; s++) {
          const k = s - c0;
          const bytes = raw && k < stored ? raw.subarray(k * SECTOR, (k + 1) * SECTOR) : null;
          if (bytes && !this.#sectors.has(s) && sumSectorValid(bytes, s, salt.tag, hash)) fromBytes(s, bytes);
          else fromEntries(s, await this.#readSector(s));
        }
      });
    }
  }

  /** A sector's entries (its lock held): checked, from a good copy, else salvaged and rewritten. */
  async #readSector(index: number): Promise<SumEntry[]> {
    const { hash, salt } = this.#o;
    const at = index * SECTOR;
    if (at >= this.#sumsLength) return this.#empty;
    const known = this.#sectors.get(index);
    if (known) return known;
    const buf = new Uint8Array(SECTOR);
    if ((await readChecked(this.sums, at, buf, (b) => sumSectorValid(b, index, salt.tag, hash))).ok) {
      return this.#keep(index, decodeSumSector(buf, index, salt.tag));
    }
    const lostAt = this.#o.lsnNow();
    const entries = await this.#salvage(index, buf, lostAt, true);
    await this.sums.write(at, encodeSumSector(index, entries, salt.tag, hash));
    entries.forEach((e, i) => { if (e.lost !== undefined) this.#o.observer?.lost(index * SUMS_PER_SECTOR + i, e.lost); });
    return this.#keep(index, entries);
  }

  /** Remembers a sector's entries as they are on storage now. */
  #keep(index: number, entries: SumEntry[]): SumEntry[] {
    this.#sectors.delete(index);
    if (this.#sectors.size >= SECTORS_CACHED) this.#sectors.delete(this.#sectors.keys().next().value!);
    this.#sectors.set(index, entries);
    return entries;
  }

  /**
   * Reads `page` into `into`. With a mirrored page device, `verify` picks a
   * copy that checks out and repairs the others; returns false when no copy
   * (or the single device) passes `verify`.
   */
  async readPage(page: number, into: Uint8Array, verify: (bytes: Uint8Array) => boolean): Promise<boolean> {
    const mirrored = this.pages as Partial<MirroredDevice>;
    if (typeof mirrored.readVerified === 'function') {
      try {
        await mirrored.readVerified(page * this.pageSize, into, verify);
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === 'CORRUPT') return false;
        throw err;
      }
    }
    await this.pages.read(page * this.pageSize, into);
    return verify(into);
  }

  /**
   * Writes pages, coalescing runs of consecutive pages into one write to
   * each device (the runs in parallel), then their checksum entries (each
   * sum sector touched read, changed and written back whole, once).
   * `images` must be sorted by page.
   */
  async writePages(images: PageImage[]): Promise<void> {
    if (images.length === 0) return;
    const ps = this.pageSize;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < images.length;) {
      let j = i + 1;
      while (j < images.length && images[j].page === images[j - 1].page + 1) j++;
      let data: Uint8Array;
      let adjacent = true;
      for (let k = i + 1; adjacent && k < j; k++) {
        adjacent = images[k].image.buffer === images[i].image.buffer && images[k].image.byteOffset === images[k - 1].image.byteOffset + ps;
      }
      if (adjacent) {
        // One view over the images as they lie (a journal record's copy, say): no copy.
        data = new Uint8Array(images[i].image.buffer, images[i].image.byteOffset, (j - i) * ps);
      } else {
        data = new Uint8Array((j - i) * ps);
        for (let k = i; k < j; k++) data.set(images[k].image, (k - i) * ps);
      }
      writes.push(this.pages.write(images[i].page * ps, data));
      i = j;
    }
    await Promise.all(writes);
    this.#pagesLength = Math.max(this.#pagesLength, (images[images.length - 1].page + 1) * ps);
    const entries = new Array<{ page: number; entry: SumEntry }>(images.length);
    for (let i = 0; i < images.length; i++) entries[i] = { page: images[i].page, entry: { checksum: images[i].checksum, lsn: images[i].lsn } };
    await this.writeSums(entries);
  }

  /**
   * Writes checksum entries (sorted by page) into their sectors: sectors
   * near each other in one write, sectors far apart in writes of their own.
   */
  async writeSums(entries: Array<{ page: number; entry: SumEntry }>): Promise<void> {
    for (let i = 0; i < entries.length;) {
      let j = i + 1;
      while (j < entries.length && sumSectorOf(entries[j].page) - sumSectorOf(entries[j - 1].page) <= SUMS_GAP) j++;
      await this.#writeSumsNear(i === 0 && j === entries.length ? entries : entries.slice(i, j));
      i = j;
    }
  }

  /** Writes checksum entries (sorted by page, their sectors near each other) into their sectors. */
  async #writeSumsNear(entries: Array<{ page: number; entry: SumEntry }>): Promise<void> {
    const { hash, salt } = this.#o;
    if (entries.length === 0) return;
    const s0 = sumSectorOf(entries[0].page);
    const s1 = sumSectorOf(entries[entries.length - 1].page);
    await this.#withSectors(s0, s1, async () => {
      // Sectors between the end of `sums` and this write are written empty first (never left as holes).
      const from = Math.min(s0, this.#sumsLength / SECTOR);
      const out = new Uint8Array((s1 - from + 1) * SECTOR);
      const byPage = new Map(entries.map((e) => [e.page, e.entry]));
      const written: SumEntry[][] = [];
      for (let s = from; s <= s1; s++) {
        let covered = s >= s0;
        for (let i = 0; covered && i < SUMS_PER_SECTOR; i++) covered = byPage.has(s * SUMS_PER_SECTOR + i);
        // A sector whose every entry is rewritten need not be read.
        const current = s < s0 || covered ? this.#empty : await this.#readSector(s);
        const next = current.map((e, i) => byPage.get(s * SUMS_PER_SECTOR + i) ?? e);
        encodeSumSector(s, next, salt.tag, hash, out, (s - from) * SECTOR);
        written.push(next);
      }
      // Forgotten while the write is under way: a failed write leaves storage to say what is there.
      for (let s = from; s <= s1; s++) this.#sectors.delete(s);
      await this.sums.write(from * SECTOR, out);
      written.forEach((entries, k) => this.#keep(from + k, entries));
      this.#sumsLength = Math.max(this.#sumsLength, (s1 + 1) * SECTOR);
    });
    for (const e of entries) this.#o.observer?.healed(e.page);
  }

  /** Makes every completed page and checksum write durable. */
  async flush(): Promise<void> {
    await Promise.all([this.pages.flush(), this.sums.flush()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.pages.close(), this.sums.close()]);
  }

  /**
   * Runs `fn` holding the locks of sum sectors [first, last] (taken in one
   * step, so two holders never wait for each other); a range past the end of
   * `sums` also takes the turn of writes that grow it.
   */
  async #withSectors<T>(first: number, last: number, fn: () => Promise<T>): Promise<T> {
    let grown: (() => void) | null = null;
    if ((last + 1) * SECTOR > this.#sumsLength) {
      const before = this.#growing;
      this.#growing = new Promise<void>((resolve) => { grown = resolve; });
      await before;
    }
    const waits: Promise<void>[] = [];
    const mine: Array<[number, Promise<void>]> = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    for (let s = first; s <= last; s++) {
      const before = this.#locks.get(s);
      if (before) waits.push(before);
      this.#locks.set(s, held);
      mine.push([s, held]);
    }
    try {
      if (waits.length) await Promise.all(waits);
      return await fn();
    } finally {
      release();
      for (const [s, p] of mine) if (this.#locks.get(s) === p) this.#locks.delete(s);
      (grown as (() => void) | null)?.();
    }
  }
}
