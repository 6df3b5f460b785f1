// The page store's checksum entries read two ways (storage/pagestore.ts):
// `readSums`, an object per page, and `readSumsInto`, typed arrays for
// verify's millions. Against each other, over random writes, random ranges
// and sum sectors damaged on the device (read again alone, salvaged into
// LOST entries): the same checksum, sequence and LOST verdict for every page.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core } from '../bindings/index.js';
import { SECTOR, SUMS_PER_SECTOR, decodeSumSector, decodeSumSectorInto, encodeSumSector, saltOf, type SumEntry } from '../bindings/storage/format.js';
import { MemoryDevice } from '../bindings/storage/memory.js';
import { PageStore } from '../bindings/storage/pagestore.js';

const PS = 512;
const PAGES = 400;
const core = await Core.create({ frames: 1, ioBytes: 1 << 20 });
const hash = (b: Uint8Array): bigint => core.checksum(b);
const salt = saltOf('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0');
const zeroSum = hash(new Uint8Array(PS));

test('model: readSumsInto gives what readSums gives, page for page (LOST entries included)', async () => {
  let lostSeen = 0;
  let writtenSeen = 0;
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ page: fc.integer({ min: 0, max: PAGES - 1 }), fill: fc.integer({ min: 1, max: 255 }) }), { maxLength: 60 }),
    /** Sum sectors whose bytes are damaged on the device before the reads. */
    fc.array(fc.integer({ min: 0, max: Math.ceil(PAGES / SUMS_PER_SECTOR) - 1 }), { maxLength: 3 }),
    fc.array(fc.record({ first: fc.integer({ min: 0, max: PAGES - 1 }), count: fc.integer({ min: 0, max: PAGES }) }), { minLength: 1, maxLength: 6 }),
    async (writes, damaged, reads) => {
      const pages = new MemoryDevice('pages');
      const sums = new MemoryDevice('sums');
      let lsn = 0;
      const store = new PageStore(pages, sums, PS, { hash, salt, zeroSum, lsnNow: () => lsn });
      for (const w of writes) {
        const image = new Uint8Array(PS).fill(w.fill);
        await store.writePages([{ page: w.page, image, checksum: hash(image), lsn: ++lsn }]);
      }
      const flip = async (s: number) => {
        // A bit flipped in the entries: the sector fails its check, and its pages' bytes decide what is kept.
        const at = s * SECTOR + 20;
        if (at >= (await sums.size())) return;
        const b = new Uint8Array(1);
        await sums.read(at, b);
        await sums.write(at, new Uint8Array([b[0] ^ 0x40]));
      };
      for (const s of damaged.slice(0, 2)) await flip(s);
      // Opened afresh over the same devices: the damaged sectors salvaged (LOST entries written), nothing remembered.
      const fresh = new PageStore(pages, sums, PS, { hash, salt, zeroSum, lsnNow: () => lsn });
      await fresh.open(store.sumsLength, lsn);
      // Damaged once more after the open: read again alone, salvaged while reading.
      for (const s of damaged.slice(2)) await flip(s);
      // The first store remembers the sectors it wrote; the fresh one reads them.
      for (const [which, reader] of [['remembered', store], ['fresh', fresh]] as const) for (const r of reads) {
        const count = Math.min(r.count, PAGES - r.first);
        const objects = await reader.readSums(r.first, count);
        const out = { checksums: new BigUint64Array(count), lsns: new Float64Array(count) };
        await reader.readSumsInto(r.first, count, out);
        assert.is(objects.length, count);
        for (let k = 0; k < count; k++) {
          const e = objects[k];
          const what = `${which}: page ${r.first + k}`;
          if (e.lost !== undefined) {
            lostSeen++;
            assert.is(out.lsns[k], -1, `${what}: LOST`);
            assert.is(out.checksums[k], 0n, `${what}: LOST, checksum 0`);
          } else {
            if (e.lsn > 0) writtenSeen++;
            assert.is(out.lsns[k], e.lsn, `${what}: sequence`);
            assert.is(out.checksums[k], e.checksum, `${what}: checksum`);
          }
        }
      }
    },
  ), { numRuns: 150 });
  // The runs reached both kinds of entry.
  assert.ok(lostSeen > 0 && writtenSeen > 0, `LOST entries seen ${lostSeen}, written ones ${writtenSeen}`);
});

test('one sector decoded both ways, at the edges: sequences of 2^32 and more, LOST entries, a sector index past 2^27', () => {
  for (const index of [0, 5, (1 << 27) + 3, Math.floor(0xFFFFFFFF / SUMS_PER_SECTOR)]) {
    const entries: SumEntry[] = Array.from({ length: SUMS_PER_SECTOR }, (_, i) => {
      if (i % 5 === 0) return { checksum: 0n, lsn: 0, lost: 2 ** 33 + i };
      if (i % 7 === 0) return { checksum: zeroSum, lsn: 0 };
      return { checksum: (0x0123456789ABCDEFn * BigInt(i + 1)) & 0xFFFFFFFFFFFFFFFFn, lsn: i % 2 ? 2 ** 32 + i * 977 : 2 ** 45 - i };
    });
    const sector = encodeSumSector(index, entries, salt.tag, hash);
    const first = index * SUMS_PER_SECTOR + 2;
    const count = SUMS_PER_SECTOR - 4;
    const checksums = new BigUint64Array(count);
    const lsns = new Float64Array(count);
    decodeSumSectorInto(sector, index, salt.tag, first, count, new Uint32Array(checksums.buffer), lsns);
    const objects = decodeSumSector(sector, index, salt.tag);
    for (let k = 0; k < count; k++) {
      const e = objects[k + 2];
      assert.equal(e, entries[k + 2].lost !== undefined ? { checksum: 0n, lsn: 0, lost: entries[k + 2].lost } : entries[k + 2], `sector ${index} entry ${k + 2} round-trips`);
      assert.is(lsns[k], e.lost !== undefined ? -1 : e.lsn, `sector ${index} entry ${k + 2}: sequence`);
      assert.is(checksums[k], e.lost !== undefined ? 0n : e.checksum, `sector ${index} entry ${k + 2}: checksum`);
    }
  }
});

test('readSumsInto refuses a bad range or arrays too small for it (INVALID_ARGUMENT), and writes nothing into them', async () => {
  const store = new PageStore(new MemoryDevice('pages'), new MemoryDevice('sums'), PS, { hash, salt, zeroSum, lsnNow: () => 0 });
  for (const [first, count, room] of [[0, 10, 9], [0, -1, 10], [-1, 1, 10], [0.5, 1, 10]]) {
    const out = { checksums: new BigUint64Array(10).fill(7n), lsns: new Float64Array(10).fill(7) };
    let code = '';
    await store.readSumsInto(first, count, { checksums: out.checksums.subarray(0, room), lsns: out.lsns }).catch((e: { code?: string }) => { code = e.code ?? ''; });
    assert.is(code, 'INVALID_ARGUMENT', `first ${first}, count ${count}, room ${room}`);
    assert.ok(out.checksums.every((x) => x === 7n) && out.lsns.every((x) => x === 7), 'nothing written');
  }
});

test.run();
