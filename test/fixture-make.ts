// Writes test/fixtures/format-v1: a small closed store of on-disk format
// version 1, kept in git so that later versions must still read it
// (format.test.ts). Run once per format version:
//   node build/test/fixture-make.js test/fixtures/format-v1
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openMemory } from '../bindings/index.js';
import { pattern } from './data.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: fixture-make <dir>');
const memory = await openMemory({
  store: dir, pageSize: 512, flushIntervalMs: 0,
  policies: [{ name: 'small', maxSize: 2048, writeMode: 'write-back' }, { name: 'large', maxSize: Infinity }],
});
const expected = [];
for (const [size, seed] of [[1000, 1], [5000, 2], [512, 3], [3333, 4]]) {
  const b = await memory.allocate(size);
  await memory.write(b.id, 0, pattern(size, seed));
  expected.push({ id: b.id, length: size, seed, policy: b.policy.name });
}
// A freed block leaves a hole that the next allocation fills.
await memory.free(expected[2].id);
expected.splice(2, 1);
await memory.close();
await writeFile(join(dir, 'expected.json'), JSON.stringify({ pageSize: 512, blocks: expected }, null, 2) + '\n');
console.log(`wrote ${dir}`);
