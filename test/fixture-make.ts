// Writes a format fixture: a small store of the current on-disk format,
// kept in git so that later versions must still read it (format.test.ts).
// Run once per format version:
//   node build/test/fixture-make.js test/fixtures/format-v2
//
// format-v1 was written by version 1 of this script: blocks written, one
// freed, the store closed. From format-v2 on the store is left as a crash
// leaves it, so that the fixture holds journal records to replay: after the
// close, a second session overwrites the write-through blocks and the folder
// is copied while that session is still open (every write acknowledged).
// The journal's fill past its last batch is cut off (a journal ending at a
// batch boundary is valid) to keep the fixture small. From format-v3 on the
// first session also makes 300 one-page blocks, so that the close writes a
// block table file, and the second session allocates and frees blocks, so
// that the journal carries changes since that table.
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory } from '../bindings/index.js';
import { RECORD_HEADER_SIZE, SECTOR, decodeRecordHeader, roundUp } from '../bindings/storage/format.js';
import { pattern } from './data.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: fixture-make <dir>');
const work = await mkdtemp(join(tmpdir(), 'twinpage-fixture-'));
const options = {
  store: work, pageSize: 512, flushIntervalMs: 0,
  policies: [{ name: 'small', maxSize: 2048, writeMode: 'write-back' as const }, { name: 'large', maxSize: Infinity }],
};
let memory = await openMemory(options);
const expected = [];
for (const [size, seed] of [[1000, 1], [5000, 2], [512, 3], [3333, 4]]) {
  const b = await memory.allocate(size);
  await memory.write(b.id, 0, pattern(size, seed));
  expected.push({ id: b.id, length: size, seed, policy: b.policy.name });
}
// A freed block leaves a hole that the next allocation fills.
await memory.free(expected[2].id);
expected.splice(2, 1);
// Enough blocks for the close to write a block table file.
for (let i = 0; i < 300; i++) {
  const b = await memory.allocate(512);
  await memory.write(b.id, 0, pattern(512, 1000 + i));
  expected.push({ id: b.id, length: 512, seed: 1000 + i, policy: b.policy.name });
}
await memory.close();

memory = await openMemory(options);
for (const b of expected) {
  if (b.policy !== 'large') continue;
  b.seed += 10;
  await memory.write(b.id, 0, pattern(b.length, b.seed));
}
// Changes since the table: blocks freed and made, in the journal.
for (const gone of expected.splice(10, 3)) await memory.free(gone.id);
for (const [size, seed] of [[3000, 5], [7000, 6]]) { // write-through ("large"): durable before the copy
  const b = await memory.allocate(size);
  await memory.write(b.id, 0, pattern(size, seed));
  expected.push({ id: b.id, length: size, seed, policy: b.policy.name });
}
await cp(work, dir, { recursive: true });
await memory.close();
await rm(work, { recursive: true, force: true });
await rm(join(dir, 'wal-spare'), { force: true }); // an older journal kept to be written over: not part of the store

// Cut the journal's fill after its last batch.
const walName = (await readdir(dir)).find((n) => /^wal\.\d+$/.test(n))!;
const wal = join(dir, walName);
const epoch = Number(walName.slice(4));
const bytes = new Uint8Array(await readFile(wal));
let p = 0;
for (;;) {
  const h = decodeRecordHeader(bytes.subarray(p, p + RECORD_HEADER_SIZE));
  if (h && h.epoch !== epoch) break; // never reached: a sector of fill follows the last batch
  if (h) { p += RECORD_HEADER_SIZE + h.bodyLength + h.pageCount * 512; continue; }
  if (p % SECTOR === 0) break;
  p = roundUp(p, SECTOR);
}
await truncate(wal, p);
await writeFile(join(dir, 'expected.json'), JSON.stringify({ pageSize: 512, blocks: expected }, null, 2) + '\n');
console.log(`wrote ${dir} (journal ${p} bytes)`);
