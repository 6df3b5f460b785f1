// Torn writes and bit flips injected into the files of a closed store: every
// one is detected on read (CORRUPT, bad bytes never returned), and a mirrored
// set of folders repairs the bad copy from the good one.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, TwinpageError } from '../bindings/index.js';
import { pattern, rng } from './data.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 8 * PS, flushIntervalMs: 0 };

async function errorCode(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

async function poke(file: string, position: number, bytes: Uint8Array | ((old: Uint8Array) => Uint8Array), length = 1): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const old = new Uint8Array(typeof bytes === 'function' ? length : bytes.length);
    await fh.read(old, 0, old.length, position);
    const next = typeof bytes === 'function' ? bytes(old) : bytes;
    await fh.write(next, 0, next.length, position);
  } finally {
    await fh.close();
  }
}

/** Where page p's checksum entry lives in `sums` (format version 2: 31 entries after a 16-byte header per 512-byte sector). */
const sumEntryAt = (p: number) => Math.floor(p / 31) * 512 + 16 + (p % 31) * 16;

/** A closed store holding one block of `pages` written pages. */
async function prepared(dirs: string[], pages = 16) {
  const m = await openMemory({ store: dirs.length === 1 ? dirs[0] : dirs, ...opts });
  const b = await m.allocate(pages * PS);
  const data = pattern(pages * PS, 42);
  await m.write(b.id, 0, data);
  await m.close();
  return { block: b, data };
}

const t = suite('corruption');
let tmp: string;
t.before.each(async () => { tmp = await mkdtemp(join(tmpdir(), 'twinpage-corrupt-')); });
t.after.each(async () => { await rm(tmp, { recursive: true, force: true }); });

t('every injected bit flip in the page file is detected', async () => {
  const { block, data } = await prepared([tmp]);
  const random = rng(7);
  for (let i = 0; i < 40; i++) {
    const page = Math.floor(random() * block.pages);
    const byte = Math.floor(random() * PS);
    const bit = 1 << Math.floor(random() * 8);
    const at = (block.base + page) * PS + byte;
    await poke(join(tmp, 'pages'), at, (old) => Uint8Array.of(old[0] ^ bit));
    const m = await openMemory({ store: tmp, ...opts });
    assert.is(await errorCode(m.read(block.id, page * PS, PS)), 'CORRUPT', `flip ${i} at page ${page} byte ${byte}`);
    // Other pages are untouched and still readable.
    const other = (page + 1) % block.pages;
    assert.equal(await m.read(block.id, other * PS, PS), data.subarray(other * PS, (other + 1) * PS));
    await m.close();
    await poke(join(tmp, 'pages'), at, (old) => Uint8Array.of(old[0] ^ bit)); // undo
  }
});

t('a torn page (half old, half new) and a damaged checksum entry are detected', async () => {
  const { block } = await prepared([tmp]);
  await poke(join(tmp, 'pages'), (block.base + 3) * PS + PS / 2, new Uint8Array(PS / 2).fill(0x5A));
  await poke(join(tmp, 'sums'), sumEntryAt(block.base + 5), Uint8Array.of(1, 2, 3));
  const m = await openMemory({ store: tmp, ...opts });
  assert.is(await errorCode(m.read(block.id, 3 * PS, 10)), 'CORRUPT');
  assert.is(await errorCode(m.read(block.id, 5 * PS, 10)), 'CORRUPT');
  assert.is(await errorCode(m.read(block.id, 4 * PS, 10)), 'no error');
  await m.close();
});

t('a mirrored set of folders reads a good copy and repairs the bad one', async () => {
  const a = join(tmp, 'a');
  const b = join(tmp, 'b');
  const { block, data } = await prepared([a, b]);
  const at = (block.base + 2) * PS + 17;
  await poke(join(a, 'pages'), at, (old) => Uint8Array.of(old[0] ^ 0x10));
  const m = await openMemory({ store: [a, b], ...opts });
  assert.equal(await m.read(block.id, 0, data.length), data);
  await m.close();
  assert.equal(await readFile(join(a, 'pages')), await readFile(join(b, 'pages')), 'copy a was repaired');
});

t('one damaged superblock slot is survived; two are refused', async () => {
  const { block, data } = await prepared([tmp]);
  await poke(join(tmp, 'super'), 100, (old) => Uint8Array.of(old[0] ^ 1));
  let m = await openMemory({ store: tmp, ...opts });
  assert.equal(await m.read(block.id, 0, data.length), data);
  await m.close();
  await poke(join(tmp, 'super'), 100, (old) => Uint8Array.of(old[0] ^ 1));
  await poke(join(tmp, 'super'), 4096 + 100, (old) => Uint8Array.of(old[0] ^ 1));
  assert.is(await errorCode(openMemory({ store: tmp, ...opts })), 'CORRUPT');
});

t('garbage after the journal tail is ignored', async () => {
  const { block, data } = await prepared([tmp]);
  const names = (await import('node:fs/promises')).readdir(tmp);
  const wal = (await names).find((n) => n.startsWith('wal.'))!;
  const fh = await open(join(tmp, wal), 'a');
  await fh.write(pattern(3000, 9));
  await fh.close();
  const m = await openMemory({ store: tmp, ...opts });
  assert.equal(await m.read(block.id, 0, data.length), data);
  await m.close();
});

t.run();
