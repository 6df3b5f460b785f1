// Opening a store: its superblock read (or a new one made for an unused
// store), and after a crash or a clean close alike the active journal
// replayed onto the block table and the page store.

import { TwinpageError } from '../errors.js';
import { policyFromRecord } from '../policies.js';
import type { Device, Store } from '../storage/device.js';
import {
  FORMAT_VERSION, RecordType, SUPERBLOCK_SIZE, decodeSuperblock, sniffPageSize, type Hash, type Superblock,
} from '../storage/format.js';
import { Journal, replayJournal } from '../storage/journal.js';
import type { BlockTable } from './blocks.js';
import type { FrameCache } from './cache.js';
import type { Wal } from './wal.js';

/** A store's superblock slots as read: the page size they claim, or a new store. */
export interface SuperblockRead {
  raw: Uint8Array;
  /** No superblock: a new store (or one whose first superblock never completed). */
  fresh: boolean;
  /** The page size the superblock claims (null for a new store). */
  pageSize: number | null;
}

/** Reads the superblock slots of `store` and tells a new store from a damaged one. */
export async function readSuperblockSlots(store: Store, superDevice: Device): Promise<SuperblockRead> {
  const raw = new Uint8Array(2 * SUPERBLOCK_SIZE);
  const present = await superDevice.read(0, raw);
  const pageSize = present > 0 ? sniffPageSize(raw) : null;
  const fresh = present === 0 || (pageSize === null && await looksUnused(store));
  if (!fresh && pageSize === null) {
    throw TwinpageError.corrupt('no valid superblock in this store: it is damaged or not a twinpage store');
  }
  return { raw, fresh, pageSize };
}

/** The superblock of a store: the valid slot with the higher sequence, or a new one. */
export function loadSuperblock(read: SuperblockRead, pageSize: number, hash: Hash): Superblock {
  if (read.fresh) {
    return { version: FORMAT_VERSION, pageSize, sequence: 0, walEpoch: 0, nodeId: crypto.randomUUID(), created: Date.now(), meta: {} };
  }
  const slots = [0, 1].map((i) => decodeSuperblock(read.raw.subarray(i * SUPERBLOCK_SIZE, (i + 1) * SUPERBLOCK_SIZE), hash));
  const valid = slots.filter((s): s is Superblock => s !== null).sort((a, b) => b.sequence - a.sequence);
  if (valid.length === 0) throw TwinpageError.corrupt('both superblocks fail their checksums');
  const sb = valid[0];
  if (sb.version !== FORMAT_VERSION) {
    throw TwinpageError.unsupportedFormat(`this store has format version ${sb.version}; this twinpage reads version ${FORMAT_VERSION}`);
  }
  return sb;
}

/** A store whose first superblock never completed: no page written, no journal past the first. */
async function looksUnused(store: Store): Promise<boolean> {
  const names = await store.list();
  if (names.some((n) => n.startsWith('wal.') && n !== 'wal.1')) return false;
  if (!names.includes('pages')) return true;
  const pages = await store.open('pages');
  try { return (await pages.size()) === 0; } finally { await pages.close(); }
}

/**
 * Replays the journal of `epoch` onto the block table and the page store,
 * and makes it the WAL's journal (appends go on after its last valid record).
 */
export async function replay(
  store: Store, epoch: number, pageSize: number, hash: Hash,
  into: { wal: Wal; blocks: BlockTable; cache: FrameCache },
): Promise<void> {
  if (epoch === 0) return;
  const name = `wal.${epoch}`;
  if (!(await store.exists(name))) throw TwinpageError.corrupt(`the superblock names journal ${name}, which is missing`);
  const device = await store.open(name);
  const { wal, blocks, cache } = into;
  const result = await replayJournal(device, epoch, pageSize, hash, async (r) => {
    wal.saw(r.lsn);
    switch (r.type) {
      case RecordType.Alloc: {
        const b = r.block;
        blocks.add({ id: b.id, base: b.base, pages: b.pages, length: b.length, policy: policyFromRecord(b.policy), generation: r.lsn });
        break;
      }
      case RecordType.Free:
        blocks.delete(r.id);
        break;
      case RecordType.Pages:
        await cache.writePages(r.pages.map((p, i) => ({ page: p.page, image: r.images[i], checksum: p.checksum, lsn: r.lsn })));
        break;
    }
  });
  if (result.records === 0) {
    await device.close();
    throw TwinpageError.corrupt(`journal ${name} has no valid epoch record`);
  }
  wal.swap(new Journal(device, epoch, result.end, pageSize, hash));
  blocks.rebuildSpace();
}
