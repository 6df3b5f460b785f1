// A store of format version 1, upgraded in place when it is opened (unless
// the `upgrade` option is false): written as version 2 was, with a version-3
// superblock (no block table file yet: the checkpoint at open writes one when
// the store is large enough). Version 1 had no checksum
// of its checksums, no fill in its journal and no record of what its last
// checkpoint made durable; what it holds is taken as it is (there is nothing
// to check it against) and rewritten with all of that:
//
//   1. the version-1 journal is read (as version 1 read it), and the page
//      images it holds are written into `pages`;
//   2. the version-1 checksum entries, with the journal's, are written as
//      version-2 sum sectors into `sums.v2`, which is flushed and renamed
//      over `sums`;
//   3. a journal of the next epoch holds the block table, and a version-3
//      superblock names it (both slots); the old journal goes.
//
// Each step can be cut by a crash: until the superblock is written the store
// is still version 1 and the upgrade runs again (a `sums` already checked
// is kept: its pages were written before it).

import { TwinpageError } from '../errors.js';
import type { Device, Store } from '../storage/device.js';
import {
  FORMAT_VERSION, RecordType, SECTOR, decodeSumV1, fillSector, saltOf, sumSectorValid, type BlockRecord, type Hash, type Superblock, type SumEntry,
} from '../storage/format.js';
import { Journal, replayJournalV1 } from '../storage/journal.js';
import { PageStore } from '../storage/pagestore.js';
import { Metadata } from './metadata.js';

export async function upgradeFromV1(store: Store, superDevice: Device, sb: Superblock, hash: Hash): Promise<Superblock> {
  const ps = sb.pageSize;
  const salt = saltOf(sb.nodeId);
  const zeroSum = hash(new Uint8Array(ps));

  // 1. The version-1 journal: its block table and its latest page images.
  const blocks = new Map<string, BlockRecord & { generation: number }>();
  const images = new Map<number, { image: Uint8Array; checksum: bigint; lsn: number }>();
  let nextLsn = 1;
  if (sb.walEpoch > 0) {
    const name = `wal.${sb.walEpoch}`;
    if (!(await store.exists(name))) throw TwinpageError.corrupt(`the superblock names journal ${name}, which is missing`);
    const device = await store.open(name);
    try {
      const r = await replayJournalV1(device, sb.walEpoch, ps, hash, (rec) => {
        nextLsn = Math.max(nextLsn, rec.lsn + 1);
        if (rec.type === RecordType.Alloc) blocks.set(rec.block.id, { ...rec.block, generation: rec.lsn });
        else if (rec.type === RecordType.Free) blocks.delete(rec.id);
        else if (rec.type === RecordType.Pages) {
          rec.pages.forEach((p, i) => images.set(p.page, { image: rec.images[i].slice(), checksum: p.checksum, lsn: rec.lsn }));
        }
      });
      if (r.records === 0) throw TwinpageError.corrupt(`journal ${name} has no valid epoch record`);
    } finally {
      await device.close();
    }
  }

  // 2. Pages and checksums.
  const pages = await store.open('pages');
  let sumsBytes = 0;
  try {
    let sums = await store.open('sums');
    const first = new Uint8Array(SECTOR);
    const size = await sums.size();
    await sums.read(0, first);
    const converted = size >= SECTOR && sumSectorValid(first, 0, salt.tag, hash);
    if (!converted) {
      const order = [...images.keys()].sort((a, b) => a - b);
      for (const page of order) await pages.write(page * ps, images.get(page)!.image);
      await pages.flush();
      const v1 = new Uint8Array(size);
      await sums.read(0, v1);
      await sums.close();
      const entries = new Map<number, SumEntry>();
      for (let p = 0; (p + 1) * 16 <= size; p++) {
        const e = decodeSumV1(v1, p * 16);
        if (e.lsn > 0) entries.set(p, e);
      }
      for (const [page, img] of images) entries.set(page, { checksum: img.checksum, lsn: img.lsn });
      await store.remove('sums.v2');
      const next = await store.open('sums.v2');
      try {
        const writer = new PageStore(pages, next, ps, { hash, salt, zeroSum, lsnNow: () => nextLsn - 1 });
        await writer.writeSums([...entries].sort((a, b) => a[0] - b[0]).map(([page, entry]) => ({ page, entry })));
        await next.flush();
      } finally {
        await next.close();
      }
      await store.sync();
      await store.rename('sums.v2', 'sums');
      await store.sync();
      sums = await store.open('sums');
    }
    sumsBytes = await sums.size();
    await sums.close();
  } finally {
    await pages.close().catch(() => {});
  }
  const pagesDevice = await store.open('pages');
  const pagesBytes = await pagesDevice.size();
  await pagesDevice.close();

  // 3. A version-2 journal of the block table, named by a version-2 superblock.
  const epoch = sb.walEpoch + 1;
  const device = await store.open(`wal.${epoch}`);
  try {
    await device.truncate(0);
    const journal = new Journal(device, epoch, 0, { pageSize: ps, hash, fill: fillSector(salt, epoch), filledTo: 0, fresh: true });
    journal.append({ type: RecordType.Epoch, lsn: nextLsn, epoch, blocks: blocks.size });
    for (const b of blocks.values()) {
      journal.append({ type: RecordType.Alloc, lsn: b.generation, epoch, block: { id: b.id, base: b.base, pages: b.pages, length: b.length, policy: b.policy } });
    }
    await journal.commit();
    await store.sync();
    const metadata = new Metadata(superDevice, sb, hash);
    await metadata.write({ version: FORMAT_VERSION, walEpoch: epoch, walEnd: journal.size, sumsBytes, pagesBytes, checkpointLsn: nextLsn });
    if (sb.walEpoch > 0) await store.remove(`wal.${sb.walEpoch}`);
    await store.sync();
    return { ...metadata.superblock };
  } finally {
    await device.close();
  }
}
