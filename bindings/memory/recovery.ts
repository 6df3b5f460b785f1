// Opening a store: its superblock read (from the best copy of a mirrored
// set, the others repaired), a new one made only for a store that holds no
// data, the block table file it names loaded, and after a crash or a clean
// close alike the active journal (the changes since that table, and page
// images) replayed onto the block table and the page store, every record
// checked.

import { TwinpageError } from '../errors.js';
import { policyFromRecord, type Policy } from '../policies.js';
import type { Device, Store } from '../storage/device.js';
import {
  FORMAT_VERSION, RECORD_HEADER_SIZE, RecordType, SECTOR, SUPERBLOCK_SIZE, decodeBody, decodeRecordHeader, decodeSuperblock,
  fillSector, recordHeadValid, roundUp, saltOf, sniffPageSize, type Hash, type Superblock,
} from '../storage/format.js';
import { Journal, replayJournal } from '../storage/journal.js';
import { copiesOf } from '../storage/mirrored.js';
import type { PageImage } from '../storage/pagestore.js';
import { readTable, tableName, tableRefOf } from '../storage/table.js';
import type { BlockTable } from './blocks.js';
import type { FrameCache } from './cache.js';
import type { Wal } from './wal.js';

/** Bytes of page images a replay holds in memory before it writes them. */
const MAX_HELD = 64 << 20;

/** Policies of replayed ALLOC records, made once per distinct record. */
class PolicyCache {
  readonly #byKey = new Map<string, Policy>();

  of(record: Record<string, unknown>): Policy {
    const key = JSON.stringify(record);
    let p = this.#byKey.get(key);
    if (!p) this.#byKey.set(key, p = policyFromRecord(record));
    return p;
  }
}

/**
 * Loads the block table file the superblock names (format version 3) into
 * `blocks`, every piece checked (a mirrored copy that fails is repaired
 * from one that passes); a table missing, cut short or damaged on every
 * copy refuses the store with CORRUPT.
 */
export async function loadTable(store: Store, sb: Superblock, hash: Hash, blocks: BlockTable): Promise<void> {
  if (sb.tableEpoch === 0) return;
  const name = tableName(sb.tableEpoch);
  if (!(await store.exists(name))) throw TwinpageError.corrupt(`the superblock names the block table ${name}, which is missing`);
  const device = await store.open(name);
  blocks.expect(sb.tableBlocks);
  try {
    let numbers: number[] = [];
    await readTable(device, tableRefOf(sb), saltOf(sb.nodeId), hash, {
      policies: (records) => {
        numbers = records.map((r, i) => {
          let p: Policy;
          try {
            p = policyFromRecord(r as Record<string, unknown>);
          } catch {
            throw TwinpageError.corrupt(`${name}: policy ${i} is not a policy`);
          }
          return blocks.policyNumber(p);
        });
      },
      entries: (view, at, n) => blocks.loadEntries(view, at, n, numbers, name),
    });
    blocks.indexLoaded();
  } finally {
    await device.close();
  }
}

/** The last image of each page a replay found, in one growing arena. */
class LatestImages {
  readonly #pageSize: number;
  readonly #slots = new Map<number, { slot: number; checksum: bigint; lsn: number }>();
  #arena = new Uint8Array(0);

  constructor(pageSize: number) {
    this.#pageSize = pageSize;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#slots.size * this.#pageSize;
  }

  /** Keeps a copy of `image` as the last of `page`. */
  set(page: number, image: Uint8Array, checksum: bigint, lsn: number): void {
    const ps = this.#pageSize;
    let e = this.#slots.get(page);
    if (e) {
      e.checksum = checksum;
      e.lsn = lsn;
    } else {
      e = { slot: this.#slots.size, checksum, lsn };
      this.#slots.set(page, e);
      if ((e.slot + 1) * ps > this.#arena.length) {
        const grown = new Uint8Array(Math.max(64 * ps, 2 * this.#arena.length));
        grown.set(this.#arena);
        this.#arena = grown;
      }
    }
    this.#arena.set(image, e.slot * ps);
  }

  /** Writes every image held through the cache's destaging (coalesced, by stripe), and lets them go. */
  async writeTo(cache: FrameCache): Promise<void> {
    if (this.#slots.size === 0) return;
    const ps = this.#pageSize;
    const arena = this.#arena;
    const images: PageImage[] = [];
    for (const [page, e] of this.#slots) images.push({ page, image: arena.subarray(e.slot * ps, (e.slot + 1) * ps), checksum: e.checksum, lsn: e.lsn });
    this.#slots.clear();
    this.#arena = new Uint8Array(0);
    await cache.writePages(images);
  }
}

/** A store's superblock slots as read, one buffer per copy, and the page size they claim. */
export interface SuperblockRead {
  raws: Uint8Array[];
  /** The page size a slot claims (read before the checksum can be checked), or null. */
  pageSize: number | null;
}

/** Reads both superblock slots of every copy of `superDevice`. */
export async function readSuperblockSlots(superDevice: Device): Promise<SuperblockRead> {
  const raws = await Promise.all(copiesOf(superDevice).map(async (c) => {
    const raw = new Uint8Array(2 * SUPERBLOCK_SIZE);
    try { await c.read(0, raw); } catch { /* an unreadable copy is a blank one */ }
    return raw;
  }));
  return { raws, pageSize: raws.map(sniffPageSize).find((ps) => ps !== null) ?? null };
}

/** A superblock loaded: the best one found, or a new one for a store holding no data. */
export interface LoadedSuperblock {
  sb: Superblock;
  fresh: boolean;
  /** Slots of mirrored copies rewritten from a better copy. */
  repaired: number;
}

/**
 * The superblock of a store: the valid slot with the higher sequence, over
 * every copy (copies whose slots are blank, damaged or older are rewritten
 * from it). A store with no valid superblock is new only when it holds no
 * data (see `looksUnused`); otherwise it is refused with CORRUPT, never taken
 * for an empty store.
 */
export async function loadSuperblock(store: Store, superDevice: Device | null, read: SuperblockRead, pageSize: number, hash: Hash): Promise<LoadedSuperblock> {
  const slots = read.raws.map((raw) => [0, 1].map((i) => {
    const bytes = raw.subarray(i * SUPERBLOCK_SIZE, (i + 1) * SUPERBLOCK_SIZE);
    return { bytes, sb: decodeSuperblock(bytes, hash) };
  }));
  const valid = slots.flat().filter((s) => s.sb !== null).sort((a, b) => b.sb!.sequence - a.sb!.sequence);
  if (valid.length === 0) {
    if (await looksUnused(store, hash)) {
      return {
        sb: {
          version: FORMAT_VERSION, pageSize, sequence: 0, walEpoch: 0, nodeId: crypto.randomUUID(), created: Date.now(),
          walEnd: 0, sumsBytes: 0, pagesBytes: 0, checkpointLsn: 0, tableEpoch: 0, tableBytes: 0, tableBlocks: 0, tableCheck: 0n, meta: {},
        },
        fresh: true,
        repaired: 0,
      };
    }
    throw TwinpageError.corrupt(read.raws.some((r) => r.some((x) => x !== 0))
      ? 'no valid superblock in this store, yet it holds data: it is damaged or not a twinpage store (refused, not taken for a new store)'
      : 'the superblock is missing, yet this store holds data files: refused, not taken for a new store');
  }
  // Mirrored copies: each slot takes the best version any copy holds of it.
  let repaired = 0;
  const copies = superDevice ? copiesOf(superDevice) : [];
  if (copies.length > 1) {
    for (let i = 0; i < 2; i++) {
      const best = slots.map((c) => c[i]).filter((s) => s.sb !== null).sort((a, b) => b.sb!.sequence - a.sb!.sequence)[0];
      if (!best) continue;
      for (let c = 0; c < copies.length; c++) {
        const mine = slots[c][i];
        if (mine.sb && mine.sb.sequence === best.sb!.sequence && mine.bytes.every((x, k) => x === best.bytes[k])) continue;
        try {
          await copies[c].write(i * SUPERBLOCK_SIZE, best.bytes.slice());
          await copies[c].flush();
          repaired++;
        } catch { /* left for the next write of the superblock */ }
      }
    }
  }
  return { sb: valid[0].sb!, fresh: false, repaired };
}

/**
 * Whether a store without a valid superblock holds no data: `pages` and
 * `sums` empty or absent, and no journal but `wal.1` holding at most the
 * epoch record of an empty store (a creation that never wrote its first
 * superblock). Anything else is data, and the store is refused.
 */
export async function looksUnused(store: Store, hash: Hash): Promise<boolean> {
  const names = await store.list();
  for (const name of ['pages', 'sums']) {
    if (!names.includes(name)) continue;
    const d = await store.open(name);
    try { if ((await d.size()) > 0) return false; } finally { await d.close(); }
  }
  if (names.some((n) => /^table\.\d+$/.test(n) || n === 'wal-spare')) return false;
  const journals = names.filter((n) => /^wal\.\d+$/.test(n));
  if (journals.some((n) => n !== 'wal.1')) return false;
  if (!journals.length) return true;
  const d = await store.open('wal.1');
  try {
    const size = await d.size();
    if (size === 0) return true;
    const all = new Uint8Array(Math.min(size, 4 << 20));
    await d.read(0, all);
    // The first record: the epoch record of an empty store.
    const h = decodeRecordHeader(all);
    if (!h || h.type !== RecordType.Epoch || h.batchStart !== 0) return false;
    const head = all.subarray(0, RECORD_HEADER_SIZE + h.bodyLength);
    const epoch = recordHeadValid(head, h, hash) ? decodeBody(h, head.subarray(RECORD_HEADER_SIZE)) : null;
    if (!epoch || epoch.type !== RecordType.Epoch || epoch.blocks !== 0) return false;
    // And no other batch anywhere after it.
    for (let at = SECTOR; at + RECORD_HEADER_SIZE <= all.length; at += SECTOR) {
      if (decodeRecordHeader(all.subarray(at, at + RECORD_HEADER_SIZE))) return false;
    }
    return size <= all.length;
  } finally {
    await d.close();
  }
}

/**
 * Replays the active journal of `sb` onto the block table and the page
 * store, and makes it the WAL's journal. A journal that does not check out
 * (not a torn tail a crash left) refuses the store with CORRUPT. Says
 * whether it ended in a torn tail (the caller then starts a new journal
 * rather than write after it).
 */
export async function replay(
  store: Store, sb: Superblock, hash: Hash,
  into: { wal: Wal; blocks: BlockTable; cache: FrameCache },
): Promise<{ torn: boolean }> {
  const epoch = sb.walEpoch;
  if (epoch === 0) return { torn: false };
  const name = `wal.${epoch}`;
  if (!(await store.exists(name))) throw TwinpageError.corrupt(`the superblock names journal ${name}, which is missing`);
  // It goes on as the journal: written and flushed batch by batch.
  const device = await store.open(name, { durableWrites: true });
  const { wal, blocks, cache } = into;
  const fill = fillSector(saltOf(sb.nodeId), epoch);
  // The last image of each page, copied into one arena (a page written again
  // takes its slot back) and written once, in coalesced runs, when the replay
  // is done (or when the arena grows too large).
  const latest = new LatestImages(sb.pageSize);
  const policies = new PolicyCache();
  try {
    const result = await replayJournal(device, { epoch, pageSize: sb.pageSize, hash, fill, durableEnd: sb.walEnd }, (r) => {
      wal.saw(r.lsn);
      switch (r.type) {
        case RecordType.Alloc: {
          const b = r.block;
          // A block the journal names twice (a table block carried again) keeps its first header.
          if (!blocks.has(b.id)) blocks.add({ id: b.id, base: b.base, pages: b.pages, length: b.length, policy: policies.of(b.policy), generation: r.lsn });
          break;
        }
        case RecordType.Free:
          blocks.delete(r.id, r.lsn);
          break;
        case RecordType.Pages:
          for (let i = 0; i < r.pages.length; i++) latest.set(r.pages[i].page, r.images[i], r.pages[i].checksum, r.lsn);
          if (latest.bytes > MAX_HELD) return latest.writeTo(cache);
          break;
      }
    });
    if (result.problem) throw TwinpageError.corrupt(result.problem);
    await latest.writeTo(cache);
    const end = roundUp(result.end, SECTOR);
    wal.swap(new Journal(device, epoch, end, { pageSize: sb.pageSize, hash, fill, filledTo: end }));
    blocks.rebuildSpace();
    return { torn: result.tail === 'torn' };
  } catch (err) {
    await device.close().catch(() => {});
    throw err;
  }
}
