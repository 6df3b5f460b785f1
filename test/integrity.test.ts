// Issue #12's cases, one test each: damage to a store's files is detected
// (CORRUPT, on open or on read) or repaired from a good copy, never served as
// good data and never a vanished block. Then the journal checked byte by
// byte, the mirrored set's repairs, inspect --check, scrub.
//
// "After a crash" copies a folder while its memory is still open with every
// write acknowledged: the files are then what a SIGKILL leaves (the writes
// are in them; nothing was closed).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, open, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Core, MemoryStore, openMemory, TwinpageError, type Memory, type MemoryLink, type Store,
} from '../bindings/index.js';
import { RECORD_HEADER_SIZE, SECTOR, decodeRecordHeader, roundUp } from '../bindings/storage/format.js';
import { CLI, NodeProcess } from './pair-process.js';
import { pattern } from './data.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 32 * PS, flushIntervalMs: 0 };
const core = await Core.create({ pageSize: 4096, frames: 1, ioBytes: 1 << 20 });
const hash = (b: Uint8Array) => core.checksum(b);

async function code(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

/** Changes bytes of a file in place: `fn` gets the old bytes and returns the new ones. */
async function poke(file: string, position: number, length: number, fn: (old: Uint8Array) => Uint8Array): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const old = new Uint8Array(length);
    await fh.read(old, 0, length, position);
    const next = fn(old);
    await fh.write(next, 0, next.length, position);
  } finally {
    await fh.close();
  }
}
const flip = (file: string, position: number, bit = 1) => poke(file, position, 1, (b) => Uint8Array.of(b[0] ^ bit));

/** Where page p's checksum entry lives in `sums`. */
const sumEntryAt = (p: number) => Math.floor(p / 31) * 512 + 16 + (p % 31) * 16;

/** The records of a journal: where each starts, where its head (header + body) ends, where it ends. */
function records(bytes: Uint8Array, pageSize: number): Array<{ at: number; headEnd: number; end: number; type: number }> {
  const out = [];
  let p = 0;
  for (;;) {
    const h = decodeRecordHeader(bytes.subarray(p, p + RECORD_HEADER_SIZE));
    if (!h) {
      if (p % SECTOR === 0) break;
      p = roundUp(p, SECTOR);
      continue;
    }
    const headEnd = p + RECORD_HEADER_SIZE + h.bodyLength;
    const end = headEnd + h.pageCount * pageSize;
    out.push({ at: p, headEnd, end, type: h.type });
    p = end;
  }
  return out;
}

async function journalOf(dir: string): Promise<string> {
  const name = (await readdir(dir)).find((n) => n.startsWith('wal.'));
  if (!name) throw new Error(`no journal in ${dir}`);
  return join(dir, name);
}

/** Every file's name, SHA-256 and modification time. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    out[name] = `${createHash('sha256').update(await readFile(join(dir, name))).digest('hex')} ${(await stat(join(dir, name))).mtimeMs}`;
  }
  return out;
}

interface Prepared { blocks: Array<{ id: string; data: Uint8Array }> }

/** Blocks of `sizes` bytes, written with patterns. */
async function fill(m: Memory, sizes: number[], seed = 1): Promise<Prepared> {
  const blocks = [];
  for (const [i, size] of sizes.entries()) {
    const b = await m.allocate(size);
    const data = pattern(size, seed + i);
    await m.write(b.id, 0, data);
    blocks.push({ id: b.id, data });
  }
  return { blocks };
}

/** A closed store in `dir` holding written blocks. */
async function closedStore(dir: string, sizes = [16 * PS, 5 * PS]): Promise<Prepared> {
  const m = await openMemory({ store: dir, ...opts });
  const p = await fill(m, sizes);
  await m.close();
  return p;
}

/** A copy in `copy` of a store in `dir` as a SIGKILL would leave it, after `sizes` blocks were written (acknowledged). */
async function crashedStore(dir: string, copy: string, sizes = [3 * PS, 2 * PS], pageSize = PS): Promise<Prepared> {
  const m = await openMemory({ store: dir, ...opts, pageSize });
  const p = await fill(m, sizes);
  await cp(dir, copy, { recursive: true });
  await m.close();
  return p;
}

/** Reads every block: its bytes are right, or the read is CORRUPT; never other bytes, never a vanished block. */
async function detectedOrRight(dir: string | string[], p: Prepared): Promise<{ open: string; corrupt: number; right: number }> {
  let m: Memory;
  try {
    m = await openMemory({ store: dir, cacheBytes: opts.cacheBytes * 8, flushIntervalMs: 0 });
  } catch (err) {
    if (err instanceof TwinpageError && err.code === 'CORRUPT') return { open: 'CORRUPT', corrupt: 0, right: 0 };
    throw err;
  }
  let corrupt = 0;
  let right = 0;
  try {
    const ids = new Set(m.blocks().map((b) => b.id));
    for (const b of p.blocks) {
      assert.ok(ids.has(b.id), `block ${b.id} vanished`);
      for (let at = 0; at < b.data.length; at += PS) {
        const n = Math.min(PS, b.data.length - at);
        const c = await code(async () => { assert.equal(await m.read(b.id, at, n), b.data.subarray(at, at + n), `wrong bytes at ${at} of ${b.id}`); });
        if (c === 'CORRUPT') corrupt++;
        else if (c === 'no error') right++;
        else assert.unreachable(`read failed with ${c}`);
      }
    }
  } finally {
    await m.close();
  }
  return { open: 'ok', corrupt, right };
}

const t = suite('damage is detected, never served');
let tmp: string;
t.before.each(async () => { tmp = await mkdtemp(join(tmpdir(), 'twinpage-integrity-')); });
t.after.each(async () => { await rm(tmp, { recursive: true, force: true }); });

t('sums cut to 0 on a cleanly closed store: every page of every block is CORRUPT (none reads as zeros), and damage() lists them', async () => {
  const p = await closedStore(tmp);
  const unwritten = await (async () => {
    const m = await openMemory({ store: tmp, ...opts });
    const b = await m.allocate(3 * PS);
    await m.close();
    return b;
  })();
  await truncate(join(tmp, 'sums'), 0);
  const m = await openMemory({ store: tmp, ...opts });
  const damage = m.damage();
  assert.is(damage.length, 16 + 5 + 3, 'every page of every live block');
  assert.ok(damage.every((d) => d.what === 'checksum'));
  for (const b of p.blocks) assert.is(await code(m.read(b.id, 0, PS)), 'CORRUPT');
  assert.is(await code(m.read(unwritten.id, 0, PS)), 'CORRUPT', 'never written cannot be told from damaged: not served as zeros');
  // Written whole again, a page is known again; a block made after the damage is unconcerned.
  await m.write(p.blocks[0].id, 0, pattern(PS, 99));
  assert.equal(await m.read(p.blocks[0].id, 0, PS), pattern(PS, 99));
  assert.is(m.damage().length, damage.length - 1);
  const fresh = await m.allocate(2 * PS);
  assert.equal(await m.read(fresh.id, 0, 2 * PS), new Uint8Array(2 * PS));
  await m.close();
  // The damage is remembered (LOST entries) across a reopen.
  const again = await openMemory({ store: tmp, ...opts });
  assert.is(again.damage().length, damage.length - 1);
  await again.close();
});

t('one 16-byte sums entry zeroed: that page is CORRUPT; the other pages of its sector are salvaged and read', async () => {
  const p = await closedStore(tmp);
  await poke(join(tmp, 'sums'), sumEntryAt(3), 16, () => new Uint8Array(16));
  const r = await detectedOrRight(tmp, p);
  assert.equal(r, { open: 'ok', corrupt: 1, right: 20 });
  const m = await openMemory({ store: tmp, ...opts });
  assert.equal(m.damage().map((d) => [d.blockId, d.index, d.what]), [[p.blocks[0].id, 3, 'checksum']]);
  await m.close();
});

t('pages cut short on a cleanly closed store: the pages cut off are CORRUPT and listed by damage() at open', async () => {
  const p = await closedStore(tmp);
  await truncate(join(tmp, 'pages'), 10 * PS);
  const m = await openMemory({ store: tmp, ...opts });
  assert.equal(m.damage().map((d) => [d.blockId, d.index, d.what]), [
    ...Array.from({ length: 6 }, (_, i) => [p.blocks[0].id, 10 + i, 'bytes']),
    ...Array.from({ length: 5 }, (_, i) => [p.blocks[1].id, i, 'bytes']),
  ]);
  await m.close();
  assert.equal(await detectedOrRight(tmp, p), { open: 'ok', corrupt: 11, right: 10 });
  const again = await openMemory({ store: tmp, ...opts });
  assert.is(again.damage().length, 11, 'still known at the next open');
  await again.close();
});

t('super deleted or cut to 0: the folder is refused with CORRUPT, never taken for a new store, and nothing is created', async () => {
  await closedStore(tmp);
  await cp(tmp, join(tmp, '..', `${tmp.split('/').pop()}-cut`), { recursive: true });
  const cut = join(tmp, '..', `${tmp.split('/').pop()}-cut`);
  try {
    await unlink(join(tmp, 'super'));
    const before = await snapshot(tmp);
    const e = await openMemory({ store: tmp, ...opts }).then(() => null, (err: TwinpageError) => err);
    assert.is(e?.code, 'CORRUPT');
    assert.match(e!.message, /not taken for a new store/);
    assert.equal(await snapshot(tmp), before, 'nothing created or changed');
    await truncate(join(cut, 'super'), 0);
    assert.is(await code(openMemory({ store: cut, ...opts })), 'CORRUPT');
  } finally {
    await rm(cut, { recursive: true, force: true });
  }
  // A folder with no twinpage data (other files are fine) makes a new store.
  const other = join(tmp, 'other');
  await cp(join(tmp, 'pages'), join(tmp, 'keep'));
  await rm(join(tmp, 'keep'));
  const { mkdir } = await import('node:fs/promises');
  await mkdir(other);
  await writeFile(join(other, 'notes.txt'), 'not a store file\n');
  const fresh = await openMemory({ store: other, ...opts });
  assert.equal(fresh.blocks(), []);
  await fresh.close();
});

t('one byte flipped in the journal of a cleanly closed store: CORRUPT on open, wherever it is in its records', async () => {
  const p = await closedStore(tmp);
  const wal = await journalOf(tmp);
  const recs = records(await readFile(wal), PS);
  assert.is(recs.length, 3, 'the checkpoint: epoch and two blocks');
  const end = recs[recs.length - 1].end;
  for (const at of [0, 30, 60, 100, recs[1].headEnd - 1, end - 1]) {
    await flip(wal, at, 4);
    assert.equal(await detectedOrRight(tmp, p), { open: 'CORRUPT', corrupt: 0, right: 0 }, `byte ${at}`);
    await flip(wal, at, 4);
  }
  assert.equal((await detectedOrRight(tmp, p)).open, 'ok', 'undamaged again');
});

t('after a crash with writes acknowledged, a byte flipped at 60 or at 2000 of the journal: CORRUPT, no block lost or read as zeros', async () => {
  const src = join(tmp, 'src');
  for (const at of [60, 2000]) {
    const copy = join(tmp, `crashed-${at}`);
    const p = await crashedStore(src, copy, [4096, 4096], 4096);
    const wal = await journalOf(copy);
    assert.ok((await stat(wal)).size > 2000);
    await flip(wal, at, 1);
    assert.equal(await detectedOrRight(copy, p), { open: 'CORRUPT', corrupt: 0, right: 0 }, `byte ${at}`);
    await rm(src, { recursive: true, force: true });
  }
});

t("after a crash, the journal's tail cut, overwritten or zeroed: CORRUPT, never older bytes", async () => {
  const src = join(tmp, 'src');
  const base = join(tmp, 'base');
  const p = await crashedStore(src, base, [3 * PS, 2 * PS, PS]);
  const recs = records(await readFile(await journalOf(base)), PS);
  const last = recs[recs.length - 1];
  assert.is(last.type, 4, 'the last record holds the last write');
  const variants: Array<[string, (wal: string) => Promise<void>]> = [
    ['cut inside the last record', (wal) => truncate(wal, last.at + 70)],
    ['cut right after the last record', (wal) => truncate(wal, last.end)],
    ['cut inside its page image', (wal) => truncate(wal, last.end - 100)],
    ['last record overwritten with random bytes', (wal) => poke(wal, last.at, last.end - last.at, () => pattern(last.end - last.at, 5))],
    ['last record zeroed', (wal) => poke(wal, last.at, last.end - last.at, () => new Uint8Array(last.end - last.at))],
    ['one sector of it zeroed', (wal) => poke(wal, roundUp(last.at + 1, SECTOR), SECTOR, () => new Uint8Array(SECTOR))],
    ['the whole tail from it zeroed', async (wal) => { const n = (await stat(wal)).size - last.at; await poke(wal, last.at, n, () => new Uint8Array(n)); }],
  ];
  for (const [what, harm] of variants) {
    const copy = join(tmp, 'case');
    await cp(base, copy, { recursive: true });
    await harm(await journalOf(copy));
    assert.equal(await detectedOrRight(copy, p), { open: 'CORRUPT', corrupt: 0, right: 0 }, what);
    await rm(copy, { recursive: true });
  }
});

t('a tail a crash tore (sectors that never reached the disk read as fill) is dropped without error; what came before stays', async () => {
  const src = join(tmp, 'src');
  const copy = join(tmp, 'copy');
  const p = await crashedStore(src, copy, [3 * PS, 2 * PS, PS]);
  const wal = await journalOf(copy);
  const bytes = await readFile(wal);
  const last = records(bytes, PS).at(-1)!;
  // The journal's fill is the same in every sector: copy the file's last sector over the last batch's.
  const fillSector = bytes.subarray(bytes.length - SECTOR);
  const from = Math.floor(last.at / SECTOR) * SECTOR;
  await poke(wal, from + SECTOR, SECTOR, () => fillSector);
  const m = await openMemory({ store: copy, ...opts });
  assert.equal(await m.read(p.blocks[0].id, 0, 3 * PS), p.blocks[0].data);
  assert.equal(await m.read(p.blocks[1].id, 0, 2 * PS), p.blocks[1].data);
  assert.equal(await m.read(p.blocks[2].id, 0, PS), new Uint8Array(PS), 'the torn write is not there; its block is');
  await m.close();
});

t('what stays undetectable, as docs/storage.md says: the journal cut exactly at the start of its last batch', async () => {
  const src = join(tmp, 'src');
  const copy = join(tmp, 'copy');
  const p = await crashedStore(src, copy, [3 * PS, 2 * PS, PS]);
  const wal = await journalOf(copy);
  const last = records(await readFile(wal), PS).at(-1)!;
  assert.is(last.at % SECTOR, 0, 'the last write was a batch of its own, on a sector boundary');
  await truncate(wal, last.at);
  const m = await openMemory({ store: copy, ...opts });
  assert.equal(await m.read(p.blocks[2].id, 0, PS), new Uint8Array(PS), 'the last batch is gone without an error');
  await m.close();
});

// --- the journal, byte by byte (a MemoryStore, for speed) -----------------------------------------------

async function cloneStore(s: Store): Promise<MemoryStore> {
  const out = new MemoryStore();
  for (const name of await s.list()) {
    const d = await s.open(name);
    const bytes = new Uint8Array(await d.size());
    await d.read(0, bytes);
    const e = await out.open(name);
    await e.write(0, bytes);
  }
  return out;
}

t("every byte of a crashed journal's record heads, and a sample of its page images, flipped alone: CORRUPT on open", async () => {
  const store = new MemoryStore();
  const m = await openMemory({ store, ...opts });
  const p = await fill(m, [2 * PS, PS]);
  const crashed = await cloneStore(store); // what a crash leaves: m is not closed
  await m.close();
  const name = (await crashed.list()).find((n) => n.startsWith('wal.'))!;
  const wal = await crashed.open(name);
  const bytes = new Uint8Array(await wal.size());
  await wal.read(0, bytes);
  const recs = records(bytes, PS);
  assert.is(recs.filter((r) => r.type === 4).length, 2, 'two page records');
  const positions: Array<[number, string]> = [];
  for (const r of recs) {
    for (let at = r.at; at < r.headEnd; at++) positions.push([at, 'head']);
    for (let at = r.headEnd; at < r.end; at += 13) positions.push([at, 'page image']);
  }
  const outcomes = { corrupt: 0 };
  for (const [at, what] of positions) {
    const s = await cloneStore(crashed);
    const d = await s.open(name);
    const b = new Uint8Array(1);
    await d.read(at, b);
    await d.write(at, Uint8Array.of(b[0] ^ (1 << (at % 8))));
    // The journal refuses it when it is replayed (a record that fails its checks is never applied).
    const opened = await openMemory({ store: s, ...opts }).then((mm) => mm, (err: unknown) => err);
    if (!(opened instanceof TwinpageError)) {
      const mm = opened as Memory;
      try { for (const blk of p.blocks) assert.equal(await mm.read(blk.id, 0, blk.data.length), blk.data, `byte ${at}: wrong bytes`); } finally { await mm.close(); }
    }
    const c = opened instanceof TwinpageError ? opened.code : 'no error on open';
    assert.is(c, 'CORRUPT', `a flip of byte ${at} (${what}) is ${c}`);
    outcomes.corrupt++;
  }
  assert.ok(outcomes.corrupt > 600, `${outcomes.corrupt} flips checked`);
});

// --- a mirrored set of folders: a damaged copy is repaired from the good one ---------------------------

t("a mirrored set repairs one copy's superblock, journal, sums and pages from the other", async () => {
  const a = join(tmp, 'a');
  const b = join(tmp, 'b');
  const damages: Array<[string, (dir: string) => Promise<void>]> = [
    ['super deleted', (d) => unlink(join(d, 'super'))],
    ['both superblock slots flipped', async (d) => { await flip(join(d, 'super'), 200); await flip(join(d, 'super'), 4096 + 200); }],
    ['sums cut to 0', (d) => truncate(join(d, 'sums'), 0)],
    ['a sums entry zeroed', (d) => poke(join(d, 'sums'), sumEntryAt(2), 16, () => new Uint8Array(16))],
    ['a journal byte flipped', async (d) => flip(await journalOf(d), 100)],
    ['the journal deleted', async (d) => unlink(await journalOf(d))],
    ['pages cut to a page', (d) => truncate(join(d, 'pages'), PS)],
    ['a page zeroed', (d) => poke(join(d, 'pages'), 7 * PS, PS, () => new Uint8Array(PS))],
  ];
  for (const [what, harm] of damages) {
    const p = await (async () => {
      const m = await openMemory({ store: [a, b], ...opts });
      const r = await fill(m, [16 * PS, 5 * PS]);
      await m.close();
      return r;
    })();
    await harm(a);
    const m = await openMemory({ store: [a, b], ...opts });
    for (const blk of p.blocks) assert.equal(await m.read(blk.id, 0, blk.data.length), blk.data, `${what}: read through the set`);
    assert.equal(m.damage(), [], what);
    const s = await m.scrub();
    assert.equal(s.damaged, [], what);
    await m.close();
    // Copy a alone is whole again.
    const alone = await openMemory({ store: a, ...opts });
    for (const blk of p.blocks) assert.equal(await alone.read(blk.id, 0, blk.data.length), blk.data, `${what}: copy a alone`);
    await alone.close();
    await rm(a, { recursive: true });
    await rm(b, { recursive: true });
  }
});

// --- scrub ----------------------------------------------------------------------------------------

t('scrub: reads every page and its metadata; repairs from a clean cached frame, from the read-repair link; reports the rest', async () => {
  const p = await closedStore(tmp, [40 * PS, 5 * PS]);
  const [big, small] = p.blocks;
  // A page's bytes and another page's checksum entry (in another sum sector) damaged on disk.
  await poke(join(tmp, 'pages'), 2 * PS + 10, 4, () => Uint8Array.of(1, 2, 3, 4));
  await poke(join(tmp, 'sums'), sumEntryAt(40 + 1), 16, () => new Uint8Array(16));
  const m = await openMemory({ store: tmp, ...opts });
  assert.equal(m.damage().map((d) => [d.blockId, d.index, d.what]), [[small.id, 1, 'checksum']], 'the lost checksum is known at open');
  const progress: number[] = [];
  const s1 = await m.scrub({ onProgress: ({ done, total }) => { progress.push(done); assert.is(total, 45); } });
  assert.is(progress.at(-1), 45);
  assert.is(s1.pages, 45);
  assert.ok(s1.bytes >= 45 * PS);
  assert.equal(s1.damaged.map((d) => [d.blockId, d.index, d.what]).sort(), [[big.id, 2, 'bytes'], [small.id, 1, 'checksum']].sort());
  assert.is(await code(m.read(big.id, 2 * PS, 10)), 'CORRUPT');

  // A read-repair link (what a mirror attaches): the partner's copy of each page.
  const partner = new Map([[big.id, big.data], [small.id, small.data]]);
  const link: MemoryLink = {
    primary: false,
    send: async () => {},
    reserve: async () => true,
    repair: async (blockId, page) => {
      const blk = m.blocks().find((x) => x.id === blockId)!;
      const data = partner.get(blockId)!;
      const out = new Uint8Array(PS);
      out.set(data.subarray((page - blk.base) * PS, (page - blk.base + 1) * PS));
      return out;
    },
    intents: { extentPages: 128, maxExtents: 64 },
  };
  const attached = m.attach(link);
  const s2 = await m.scrub();
  assert.is(s2.repaired, 2);
  assert.equal(s2.damaged, []);
  assert.equal(m.damage(), []);
  assert.equal(await m.read(big.id, 0, big.data.length), big.data);
  assert.equal(await m.read(small.id, 0, small.data.length), small.data);
  attached.detach();

  // A page damaged on disk while its clean frame is cached: rewritten from the frame.
  assert.equal(await m.read(big.id, 3 * PS, PS), big.data.subarray(3 * PS, 4 * PS));
  await poke(join(tmp, 'pages'), 3 * PS, 1, (b) => Uint8Array.of(b[0] ^ 0xFF));
  const s3 = await m.scrub();
  assert.is(s3.repaired, 1);
  assert.match(s3.found.join('\n'), /rewritten from its cached frame/);
  await m.close();
  assert.equal((await detectedOrRight(tmp, p)).right, 45, 'all whole on disk');
});

t('a read of a page whose checksum was lost goes to the read-repair link, and the page is whole again', async () => {
  const p = await closedStore(tmp);
  await poke(join(tmp, 'sums'), sumEntryAt(4), 16, () => new Uint8Array(16));
  const m = await openMemory({ store: tmp, ...opts });
  const blk = p.blocks[0];
  let asked = 0;
  m.attach({
    primary: false, send: async () => {}, reserve: async () => true, intents: { extentPages: 128, maxExtents: 64 },
    repair: async (_id, page) => { asked++; return blk.data.slice(page * PS, (page + 1) * PS); },
  });
  assert.equal(await m.read(blk.id, 4 * PS, PS), blk.data.subarray(4 * PS, 5 * PS));
  assert.is(asked, 1);
  assert.equal(m.damage(), []);
  await m.close();
});

// --- inspect --check ----------------------------------------------------------------------------------

function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
    child.stdin!.end();
  });
}

t('inspect --check: a clean folder is exit 0; each damage is listed, exit 1; not a byte (nor a time) changes', async () => {
  const p = await closedStore(tmp, [40 * PS, 5 * PS]);
  let before = await snapshot(tmp);
  const clean = await cli('inspect', '--dir', tmp, '--check', '--json');
  assert.is(clean.status, 0, clean.stderr);
  assert.equal(JSON.parse(clean.stdout).check.damage, []);
  assert.equal(await snapshot(tmp), before);

  await poke(join(tmp, 'pages'), 2 * PS + 10, 1, (b) => Uint8Array.of(b[0] ^ 1));
  await poke(join(tmp, 'sums'), sumEntryAt(40 + 3), 16, () => new Uint8Array(16));
  await flip(join(tmp, 'super'), 4096 + 300);
  before = await snapshot(tmp);
  const r = await cli('inspect', '--dir', tmp, '--check', '--json');
  const human = await cli('inspect', '--dir', tmp, '--check');
  assert.equal(await snapshot(tmp), before, 'inspect --check changed nothing');
  assert.is(r.status, 1);
  assert.is(human.status, 1);
  const damage: string[] = JSON.parse(r.stdout).check.damage;
  assert.is(damage.length, 4, damage.join('\n'));
  assert.ok(damage.some((d) => /superblock slot 1/.test(d)));
  assert.ok(damage.some((d) => /sum sector 1 /.test(d)));
  assert.ok(damage.some((d) => d.includes(`page 3 of block ${p.blocks[1].id}`) && /checksum entry is lost/.test(d)));
  assert.ok(damage.some((d) => d.includes(`page 2 of block ${p.blocks[0].id}`) && /fails its checksum/.test(d)));
  assert.match(human.stdout, /4 damages found/);

  // A damaged journal: listed too.
  await flip(await journalOf(tmp), 100);
  const j = await cli('inspect', '--dir', tmp, '--check', '--json');
  assert.is(j.status, 1);
  assert.ok(JSON.parse(j.stdout).check.damage.some((d: string) => /journal wal\.\d+/.test(d)));
});

// --- scrub through twinpage serve -----------------------------------------------------------------------

t('twinpage scrub --dir asks a running node (serve) to scrub, and reports what it repaired', async () => {
  const dir = join(tmp, 'node');
  const secret = join(tmp, 'secret');
  await writeFile(secret, 'scrub test secret\n', { mode: 0o600 });
  const node = new NodeProcess(['--dir', dir, '--role', 'primary', '--listen', '127.0.0.1:0', '--secret-file', secret, '--no-stdin']);
  try {
    await node.event('listening');
    await node.event('control');
    const { askNode } = await import('../bindings/cli/args.js');
    const alloc = await askNode(dir, { cmd: 'allocate', size: 8 * 4096 }, 10000);
    const id = (alloc.block as { id: string }).id;
    await askNode(dir, { cmd: 'write', block: id, offset: 0, data: Buffer.from(pattern(8 * 4096, 3)).toString('base64') }, 10000);
    const first = await cli('scrub', '--dir', dir, '--json');
    assert.is(first.status, 0, first.stderr);
    assert.is(JSON.parse(first.stdout).pages, 8);
    // Damage on disk under the running node: its clean cached frame repairs it.
    await poke(join(dir, 'pages'), 5 * 4096 + 1, 1, (b) => Uint8Array.of(b[0] ^ 0x80));
    const second = await cli('scrub', '--dir', dir);
    assert.is(second.status, 0, second.stderr);
    assert.match(second.stdout, /scrubbed 8 pages .*: 1 repaired, nothing left damaged/);
    const r = await askNode(dir, { cmd: 'read', block: id, offset: 0, length: 8 * 4096 }, 10000);
    assert.equal(new Uint8Array(Buffer.from(r.data as string, 'base64')), pattern(8 * 4096, 3));
    await askNode(dir, { cmd: 'close' }, 10000);
    assert.is(await node.exited, 0, node.stderr);
  } finally {
    if (!node.gone) node.proc.kill('SIGKILL');
  }
});

t.run();
