// A silent difference, for tests of verify: a page of a closed store
// rewritten together with a checksum entry that vouches for the new bytes
// (its sector sealed again), so the node serves them as its own and finds
// nothing wrong. Only comparing with the partner (verify) can tell. A node's
// own writes never do this: they go through its mirror, and a store of a
// pair refuses changes without one.
import { Core } from '../bindings/index.js';
import type { Store } from '../bindings/storage/device.js';
import { SECTOR, SUMS_PER_SECTOR, decodeSumSector, encodeSumSector, saltOf, sumSectorValid } from '../bindings/storage/format.js';

/** Rewrites `page` (a store page number) of the closed store of node `nodeId` with `bytes` (a whole page) and a matching checksum entry. */
export async function forgePage(store: Store, nodeId: string, page: number, bytes: Uint8Array): Promise<void> {
  const core = await Core.create({ frames: 2, pageSize: bytes.length });
  const hash = (b: Uint8Array) => core.checksum(b);
  const { tag } = saltOf(nodeId);
  const index = Math.floor(page / SUMS_PER_SECTOR);
  const sums = await store.open('sums');
  const pages = await store.open('pages');
  try {
    const sector = new Uint8Array(SECTOR);
    await sums.read(index * SECTOR, sector);
    if (!sumSectorValid(sector, index, tag, hash)) throw new Error(`forgePage: sum sector ${index} does not check out (wrong node id?)`);
    const entries = decodeSumSector(sector, index, tag);
    const entry = entries[page % SUMS_PER_SECTOR];
    if (entry.lsn === 0) throw new Error(`forgePage: page ${page} was never written: its entry has no sequence number to keep`);
    entries[page % SUMS_PER_SECTOR] = { checksum: hash(bytes), lsn: entry.lsn };
    await pages.write(page * bytes.length, bytes);
    await sums.write(index * SECTOR, encodeSumSector(index, entries, tag, hash));
    await pages.flush();
    await sums.flush();
  } finally {
    await sums.close();
    await pages.close();
  }
}
