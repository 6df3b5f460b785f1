// Scrub (as ZFS scrubs a pool): every piece of a running node's store read
// back and checked, on every copy of a mirrored set: both superblock slots,
// the journal's records, the block table file, every sum sector, every page
// of every block. A copy
// that fails is rewritten from one that passes; a page bad on every copy is
// rewritten from its cached frame when that is clean, else asked of the
// partner (the link's read repair); what stays bad is in `memory.damage()`.
// It starts with a checkpoint, so that the page file is up to date and the
// journal holds only what the superblock vouches for.

import type { Core } from '../core/index.js';
import type { Scheduler } from '../sched/scheduler.js';
import type { Device, Store } from '../storage/device.js';
import { SUPERBLOCK_SIZE, decodeSuperblock, fillSector, saltOf, type SumEntry } from '../storage/format.js';
import { replayJournal } from '../storage/journal.js';
import { checkTable, tableName, tableRefOf } from '../storage/table.js';
import { copiesOf, scrubRange } from '../storage/mirrored.js';
import type { PageStore } from '../storage/pagestore.js';
import type { Block } from './blocks.js';
import type { FrameCache } from './cache.js';
import type { DamageLog, PageDamage } from './damage.js';
import type { Metadata } from './metadata.js';
import type { Wal } from './wal.js';

export interface ScrubOptions {
  /** Called after each run of pages checked, with the pages done and the pages in all. */
  onProgress?: (progress: { done: number; total: number }) => void;
}

/** What `scrub()` did. */
export interface ScrubReport {
  /** Pages of live blocks checked. */
  pages: number;
  /** Bytes read, every copy counted. */
  bytes: number;
  /** Bad copies rewritten (superblock slots, journal, sum sectors, pages) and pages brought back from the partner. */
  repaired: number;
  /** The pages this node still cannot serve (what `memory.damage()` lists). */
  damaged: PageDamage[];
  /** Everything found, repaired or not, in words. */
  found: string[];
}

export interface ScrubDeps {
  core: Core;
  store: Store;
  pageStore: PageStore;
  sched: Scheduler;
  cache: FrameCache;
  metadata: Metadata;
  wal: Wal;
  damage: DamageLog;
  blocks: () => Block[];
  checkpoint: () => Promise<void>;
  /** The next checkpoint writes the block table file again. */
  rewriteTable: () => void;
  serial: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** Pages checked per scheduled operation. */
const RUN_PAGES = 64;

export class Scrubber {
  readonly #d: ScrubDeps;
  readonly #report: ScrubReport = { pages: 0, bytes: 0, repaired: 0, damaged: [], found: [] };

  constructor(deps: ScrubDeps) {
    this.#d = deps;
  }

  async run(options: ScrubOptions): Promise<ScrubReport> {
    const d = this.#d;
    await d.checkpoint();
    await this.#superblock();
    await this.#journal();
    await this.#table();
    await this.#sums();
    await this.#pages(options.onProgress);
    this.#report.damaged = d.damage.list();
    return this.#report;
  }

  async #superblock(): Promise<void> {
    const d = this.#d;
    const hash = (b: Uint8Array) => d.core.checksum(b);
    const copies = copiesOf(d.metadata.device);
    let bad = 0;
    for (const [c, copy] of copies.entries()) {
      const raw = new Uint8Array(2 * SUPERBLOCK_SIZE);
      await copy.read(0, raw);
      this.#report.bytes += raw.length;
      for (let i = 0; i < 2; i++) {
        if (decodeSuperblock(raw.subarray(i * SUPERBLOCK_SIZE, (i + 1) * SUPERBLOCK_SIZE), hash)) continue;
        bad++;
        this.#report.found.push(`superblock slot ${i}${copies.length > 1 ? ` of copy ${c}` : ''} is blank, torn or corrupt`);
      }
    }
    if (bad === 0) return;
    // Rewriting the superblock rewrites both slots on every copy.
    await d.serial(() => d.metadata.write({}));
    this.#report.repaired += bad;
  }

  async #journal(): Promise<void> {
    const d = this.#d;
    const sb = d.metadata.superblock;
    const hash = (b: Uint8Array) => d.core.checksum(b);
    const journal = d.wal.journal;
    const copies = copiesOf(journal.device);
    const fill = fillSector(saltOf(sb.nodeId), sb.walEpoch);
    // What the superblock vouches for; records appended since are the next scrub's.
    const results = await Promise.all(copies.map((c) => replayJournal(bounded(c, sb.walEnd), {
      epoch: sb.walEpoch, pageSize: d.pageStore.pageSize, hash, fill, durableEnd: sb.walEnd,
    }, () => {})));
    this.#report.bytes += sb.walEnd * copies.length;
    const good = results.findIndex((r) => r.problem === null);
    const badCopies = results.flatMap((r, c) => (r.problem ? [c] : []));
    if (badCopies.length === 0) return;
    for (const c of badCopies) this.#report.found.push(`${results[c].problem}${copies.length > 1 ? ` (copy ${c})` : ''}`);
    if (good >= 0) {
      const bytes = new Uint8Array(sb.walEnd);
      await copies[good].read(0, bytes);
      for (const c of badCopies) {
        await copies[c].write(0, bytes);
        await copies[c].flush();
        this.#report.repaired++;
      }
      return;
    }
    // Bad on every copy: a checkpoint writes a new journal from what this node holds.
    await d.checkpoint();
    this.#report.repaired++;
    this.#report.found.push(`journal wal.${sb.walEpoch} replaced by a checkpoint`);
  }

  /** The block table file, every chunk on every copy; bad on every copy, it is written again from the blocks this node holds. */
  async #table(): Promise<void> {
    const d = this.#d;
    const sb = d.metadata.superblock;
    if (sb.tableEpoch === 0) return;
    const hash = (b: Uint8Array) => d.core.checksum(b);
    const name = tableName(sb.tableEpoch);
    let bad: string[];
    if (!(await d.store.exists(name))) {
      bad = [`the block table ${name} is missing`];
    } else {
      const device = await d.store.open(name);
      try {
        const r = await checkTable(device, tableRefOf(sb), saltOf(sb.nodeId), hash, true);
        this.#report.bytes += r.bytes * copiesOf(device).length;
        this.#report.repaired += r.repaired;
        if (r.repaired) this.#report.found.push(`${r.repaired} pieces of the block table ${name} failed their checks on one copy and were rewritten from a good copy`);
        bad = r.bad;
      } finally {
        await device.close();
      }
    }
    if (bad.length === 0) return;
    this.#report.found.push(...bad);
    d.rewriteTable();
    await d.checkpoint();
    this.#report.repaired++;
    this.#report.found.push(`the block table written again from the blocks this node holds (table.${d.metadata.superblock.tableEpoch})`);
  }

  async #sums(): Promise<void> {
    const d = this.#d;
    const copies = copiesOf(d.pageStore.sums).length;
    const r = await d.pageStore.checkSums({ vouched: d.pageStore.sumsLength, lostAt: d.wal.nextLsn - 1, rewrite: true });
    this.#report.bytes += r.sectors * 512 * copies;
    this.#report.repaired += r.repaired + r.salvaged;
    if (r.repaired) this.#report.found.push(`${r.repaired} sum sector copies failed their check and were rewritten from a good copy`);
    if (r.salvaged) this.#report.found.push(`${r.salvaged} sum sectors failed their check on every copy and were rebuilt from what their pages vouch for`);
  }

  async #pages(onProgress: ScrubOptions['onProgress']): Promise<void> {
    const d = this.#d;
    const blocks = d.blocks().sort((a, b) => a.base - b.base);
    const total = blocks.reduce((n, b) => n + b.pages, 0);
    let done = 0;
    for (const block of blocks) {
      for (let first = block.base; first < block.base + block.pages; first += RUN_PAGES) {
        const last = Math.min(block.base + block.pages, first + RUN_PAGES) - 1;
        await d.sched.submit({ first, last, mode: 'shared', run: (f, l) => this.#run(block, f, l) });
        done += last - first + 1;
        this.#report.pages += last - first + 1;
        onProgress?.({ done, total });
      }
    }
  }

  /** Checks pages [first, last] of `block` on every copy (their task group holds the range shared). */
  async #run(block: Block, first: number, last: number): Promise<void> {
    const d = this.#d;
    const ps = d.pageStore.pageSize;
    const entries = await d.pageStore.readSums(first, last - first + 1);
    const entry = (p: number): SumEntry => entries[p - first];
    const written = (e: SumEntry) => e.lost === undefined && e.lsn !== 0 && e.lsn >= block.generation;
    const r = await scrubRange(d.pageStore.pages, first * ps, (last - first + 1) * ps, ps, (bytes, at) => {
      const e = entry(at / ps);
      return !written(e) || d.core.checksum(bytes) === e.checksum;
    });
    this.#report.bytes += (last - first + 1) * ps * copiesOf(d.pageStore.pages).length;
    this.#report.repaired += r.repaired;
    if (r.repaired) this.#report.found.push(`${r.repaired} page copies of block ${block.id} failed their checksum and were rewritten from a good copy`);
    const lost = entries.flatMap((e, i) => (e.lost !== undefined && block.generation <= e.lost ? [first + i] : []));
    for (const page of [...r.bad.map((at) => at / ps), ...lost]) await this.#repairPage(block, page, entry(page));
  }

  /** A page bad on every copy, or whose checksum is lost: from its clean cached frame, else from the partner. */
  async #repairPage(block: Block, page: number, e: SumEntry): Promise<void> {
    const d = this.#d;
    const known = e.lost === undefined;
    const what = `page ${page - block.base} of block ${block.id}`;
    const f = d.core.pages.lookup(page);
    if (f >= 0 && !d.cache.loading(page)) {
      const state = d.core.pages.frame(f);
      if (state.dirty) return; // a newer image is on its way to the page file
      if (!known || d.cache.sum(f) === e.checksum) {
        await d.pageStore.writePages([{ page, image: d.core.frameView(f).slice(), checksum: d.cache.sum(f), lsn: Math.max(d.cache.lsn(f), block.generation) }]);
        this.#report.repaired++;
        this.#report.found.push(`${what}: ${known ? 'bad on every copy' : 'checksum lost'}, rewritten from its cached frame`);
        return;
      }
    }
    const good = await d.cache.repairBytes(block, page, known ? e.checksum : null);
    if (good) {
      const checksum = known ? e.checksum : d.core.checksum(good);
      await d.pageStore.writePages([{ page, image: good, checksum, lsn: known ? e.lsn : Math.max(block.generation, d.wal.nextLsn - 1) }]);
      this.#report.repaired++;
      this.#report.found.push(`${what}: ${known ? 'bad on every copy' : 'checksum lost'}, repaired from the partner`);
      return;
    }
    if (known) d.damage.badBytes(page, e.lsn);
    this.#report.found.push(`${what}: ${known ? 'fails its checksum on every copy' : 'its checksum is lost'}, not repaired`);
  }
}

/** `device` seen only up to `limit` bytes. */
function bounded(device: Device, limit: number): Device {
  return {
    name: device.name,
    read: (position, into) => device.read(position, into),
    write: () => Promise.reject(new Error('read only')),
    flush: async () => {},
    size: async () => Math.min(limit, await device.size()),
    truncate: () => Promise.reject(new Error('read only')),
    close: async () => {},
  };
}
