// A node's scale (issue #16): a store of many blocks keeps its block table in
// a table file (format version 3), opens without replaying its history, and
// lists every block; the journal carries the changes since the table until
// they are many; allocations in flight together share a flush; a damaged
// table is CORRUPT or repaired from a good copy, never a vanished block; the
// older formats are upgraded.
//
// SCALE_BLOCKS sets the blocks of the first test (default 20,000, a few
// seconds); SCALE_BLOCKS=1000000 is the million-block store of the issue
// (built in about a minute, flushes skipped while it is built).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, open, readdir, readFile, rm, stat, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openMemory, TwinpageError, type Device, type Memory, type Store } from '../bindings/index.js';
import { openFileStore } from '../bindings/storage/file.js';
import { TABLE_CHUNK_BYTES, TABLE_HEADER_BYTES } from '../bindings/storage/table.js';
import { CLI } from './pair-process.js';
import { pattern } from './data.js';

const BLOCKS = Number(process.env.SCALE_BLOCKS ?? 20000);
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

async function code(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

/** A store over `inner` whose devices count their flushes by name, and (with `skipFlush`) skip them. */
class CountingStore implements Store {
  readonly kind: string;
  readonly flushes = new Map<string, number>();
  readonly #inner: Store;
  readonly #skip: boolean;
  constructor(inner: Store, skipFlush = false) { this.#inner = inner; this.kind = inner.kind; this.#skip = skipFlush; }
  async open(name: string): Promise<Device> {
    const d = await this.#inner.open(name);
    return {
      name: d.name,
      read: (position, into) => d.read(position, into),
      write: (position, data) => d.write(position, data),
      flush: async () => {
        const key = name.startsWith('wal.') ? 'wal' : name;
        this.flushes.set(key, (this.flushes.get(key) ?? 0) + 1);
        if (!this.#skip) await d.flush();
      },
      size: () => d.size(),
      truncate: (size) => d.truncate(size),
      close: () => d.close(),
    };
  }
  exists(name: string) { return this.#inner.exists(name); }
  remove(name: string) { return this.#inner.remove(name); }
  rename(from: string, to: string) { return this.#inner.rename(from, to); }
  list() { return this.#inner.list(); }
  async sync() { if (!this.#skip) await this.#inner.sync(); }
  space() { return this.#inner.space(); }
}

type Model = Map<string, { base: number; pages: number; length: number }>;

/** Allocates `n` blocks of 1 to 4 pages, `inFlight` at a time; returns them. */
async function allocateMany(m: Memory, n: number, inFlight = 64): Promise<Model> {
  const model: Model = new Map();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) {
      const i = next++;
      const b = await m.allocate(m.pageSize * (1 + (i % 4)) - (i % 3));
      model.set(b.id, { base: b.base, pages: b.pages, length: b.length });
    }
  }));
  return model;
}

/** Every block of `m` matches `model`, none more, none less. */
function sameBlocks(m: Memory, model: Model, what: string): void {
  const blocks = m.blocks();
  assert.is(blocks.length, model.size, `${what}: the number of blocks`);
  for (const b of blocks) {
    const e = model.get(b.id);
    if (!e) assert.unreachable(`${what}: block ${b.id} was never allocated`);
    else if (e.base !== b.base || e.pages !== b.pages || e.length !== b.length) assert.unreachable(`${what}: block ${b.id} changed: ${JSON.stringify(b)} != ${JSON.stringify(e)}`);
  }
}

const tableFile = async (dir: string) => (await readdir(dir)).find((n) => /^table\.\d+$/.test(n));

async function flip(file: string, position: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = new Uint8Array(1);
    await fh.read(b, 0, 1, position);
    b[0] ^= 0x10;
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}

/** Opens the store in `dir` in a new Node process and lists its blocks: the times, and how many. */
function timedOpen(dir: string): Promise<{ openMs: number; listMs: number; blocks: number }> {
  const index = fileURLToPath(new URL('../bindings/index.js', import.meta.url));
  const script = `const { openMemory } = await import(${JSON.stringify(index)});
    const t = performance.now(); const m = await openMemory({ store: ${JSON.stringify(dir)}, flushIntervalMs: 0 }); const o = performance.now();
    const n = m.blocks().length; const l = performance.now(); await m.close();
    console.log(JSON.stringify({ openMs: o - t, listMs: l - t, blocks: n }));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}: ${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

// --- many blocks ----------------------------------------------------------------------------

const t = suite('a store of many blocks');
let tmp: string;
t.before.each(async () => { tmp = await mkdtemp(join(tmpdir(), 'twinpage-scale-')); });
t.after.each(async () => { await rm(tmp, { recursive: true, force: true }); });

t(`${BLOCKS.toLocaleString('en')} blocks (SCALE_BLOCKS): the store opens from its block table and lists every block`, async () => {
  const dir = join(tmp, 'store');
  // Built with flushes skipped (the data reaches the OS page cache; a flush per group commit would make the set-up the test).
  const building = await openMemory({ store: new CountingStore(await openFileStore(dir), true), flushIntervalMs: 0 });
  const built = performance.now();
  const model = await allocateMany(building, BLOCKS, 256);
  const some = [...model.keys()].filter((_, i) => i % 997 === 0);
  for (const [k, id] of some.entries()) await building.write(id, 0, pattern(100, k));
  await building.close();
  const buildMs = performance.now() - built;
  assert.ok(await tableFile(dir), 'the checkpoint wrote a block table file');

  // Timed in a process of its own, as a node starts (this one holds the model and what built the store).
  const timed = await timedOpen(dir);
  assert.is(timed.blocks, model.size);
  console.log(`  ${BLOCKS.toLocaleString('en')} blocks: open ${timed.openMs.toFixed(0)} ms, open and list ${timed.listMs.toFixed(0)} ms in a new process (built in ${(buildMs / 1000).toFixed(1)} s)`);
  const m = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(m, model, 'after a reopen');
  for (const [k, id] of some.entries()) assert.equal(await m.read(id, 0, 100), pattern(100, k));
  // Still a store like any other: frees, allocations, a reopen.
  const gone = [...model.keys()].filter((_, i) => i % 5 === 0).slice(0, 300);
  for (const id of gone) { await m.free(id); model.delete(id); }
  for (const [id, b] of await allocateMany(m, 50)) model.set(id, b);
  await m.close();
  const again = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(again, model, 'after frees, allocations and a reopen');
  await again.close();
  if (BLOCKS >= 1_000_000) assert.ok(timed.listMs < 10000, `a million blocks open and list in ${timed.listMs.toFixed(0)} ms`);
});

t('the journal carries the changes since the table until they reach the threshold; then the table is written again', async () => {
  const dir = join(tmp, 'store');
  let m = await openMemory({ store: dir, flushIntervalMs: 0 });
  const model = await allocateMany(m, 600);
  await m.close();
  const first = await tableFile(dir);
  assert.ok(first, 'a table after 600 allocations');
  // A few changes: carried by the journal, the table file stays.
  m = await openMemory({ store: dir, flushIntervalMs: 0 });
  const freed = [...model.keys()].slice(0, 10);
  for (const id of freed) { await m.free(id); model.delete(id); }
  for (const [id, b] of await allocateMany(m, 20)) model.set(id, b);
  await m.close();
  assert.is(await tableFile(dir), first, 'the same table file');
  const { inspectFolder } = await import('../bindings/cli/inspect.js');
  const r = await inspectFolder(dir, { check: true });
  assert.is(r.superblock.version, 3);
  assert.is(r.table?.blocks, 600);
  assert.is(r.blocks.length, model.size, 'inspect sees the table and the changes since');
  assert.equal(r.check!.damage, []);
  m = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(m, model, 'table and journal together');
  // Many changes: a new table file, the old one gone.
  for (const [id, b] of await allocateMany(m, 300)) model.set(id, b);
  await m.close();
  const second = await tableFile(dir);
  assert.ok(second && second !== first, `a new table file (${second})`);
  assert.is((await readdir(dir)).filter((n) => n.startsWith('table.')).length, 1, 'one table file');
  m = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(m, model, 'the new table');
  // Every block freed: no table at all.
  for (const id of model.keys()) await m.free(id);
  await m.close();
  assert.is(await tableFile(dir), undefined);
  m = await openMemory({ store: dir, flushIntervalMs: 0 });
  assert.equal(m.blocks(), []);
  await m.close();
});

t('allocations in flight together share a flush (group commit); every acknowledged one is there after a crash', async () => {
  const dir = join(tmp, 'store');
  const store = new CountingStore(await openFileStore(dir));
  const m = await openMemory({ store, flushIntervalMs: 0 });
  const before = store.flushes.get('wal') ?? 0;
  const model = await allocateMany(m, 400, 100);
  const flushes = (store.flushes.get('wal') ?? 0) - before;
  assert.ok(flushes < 200, `400 allocations, 100 in flight: ${flushes} journal flushes`);
  // What a SIGKILL leaves: the folder as it is, every allocation acknowledged.
  const copy = join(tmp, 'crashed');
  await cp(dir, copy, { recursive: true });
  await m.close();
  const again = await openMemory({ store: copy, flushIntervalMs: 0 });
  sameBlocks(again, model, 'after a crash');
  // The run of each is taken: a new allocation overlaps none.
  const fresh = await again.allocate(4096);
  for (const b of model.values()) assert.ok(fresh.base >= b.base + b.pages || fresh.base + fresh.pages <= b.base, 'no overlap');
  await again.close();
});

t('an allocation racing a checkpoint is in the table or in the new journal, never lost', async () => {
  const dir = join(tmp, 'store');
  const m = await openMemory({ store: dir, flushIntervalMs: 0 });
  const model: Model = new Map();
  await Promise.all([
    (async () => { for (const [id, b] of await allocateMany(m, 700, 32)) model.set(id, b); })(),
    (async () => { for (let i = 0; i < 6; i++) { await m.flush(); await new Promise((r) => setTimeout(r, 5)); } })(),
  ]);
  const copy = join(tmp, 'crashed');
  await cp(dir, copy, { recursive: true });
  await m.close();
  const again = await openMemory({ store: copy, flushIntervalMs: 0 });
  sameBlocks(again, model, 'after checkpoints raced the allocations, and a crash');
  await again.close();
});

// --- a damaged table ----------------------------------------------------------------------------

/** A closed store in `dir` with a table file of `n` blocks, some written. */
async function tableStore(dir: string | string[], n = 2000): Promise<Model> {
  const m = await openMemory({ store: dir, flushIntervalMs: 0 });
  const model = await allocateMany(m, n);
  await m.close();
  return model;
}

t('a table file damaged anywhere (header, policies, any chunk), cut short or missing: CORRUPT on open, never a vanished block', async () => {
  const dir = join(tmp, 'store');
  const model = await tableStore(dir);
  const name = (await tableFile(dir))!;
  const file = join(dir, name);
  const size = (await stat(file)).size;
  const chunksAt = size - Math.ceil(2000 / 1364) * TABLE_CHUNK_BYTES;
  const spots: Array<[string, number]> = [
    ['its magic', 0], ['its block count', 33], ['its header checksum', TABLE_HEADER_BYTES - 1], ['its policy list', TABLE_HEADER_BYTES + 3],
    ['a chunk checksum', chunksAt + 2], ['a chunk index', chunksAt + 8], ['an entry id', chunksAt + 40], ['an entry base', chunksAt + 32 + 48 * 7 + 16],
    ['the last chunk', size - TABLE_CHUNK_BYTES + 500], ['the zeros after the last entry', size - 1],
  ];
  for (const [what, at] of spots) {
    await flip(file, at);
    assert.is(await code(openMemory({ store: dir, flushIntervalMs: 0 })), 'CORRUPT', what);
    await flip(file, at);
  }
  const bytes = await readFile(file);
  for (const cut of [0, TABLE_HEADER_BYTES, size - TABLE_CHUNK_BYTES, size - 1]) {
    await truncate(file, cut);
    assert.is(await code(openMemory({ store: dir, flushIntervalMs: 0 })), 'CORRUPT', `cut to ${cut} bytes`);
    const fh = await open(file, 'r+');
    await fh.write(bytes, 0, bytes.length, 0);
    await fh.close();
  }
  await unlink(file);
  assert.is(await code(openMemory({ store: dir, flushIntervalMs: 0 })), 'CORRUPT', 'missing');
  const fh = await open(file, 'w');
  await fh.write(bytes, 0, bytes.length, 0);
  await fh.close();
  const m = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(m, model, 'whole again');
  await m.close();
});

t('a mirrored set: a table damaged on one copy is read from the other and repaired; scrub rewrites what is bad on every copy', async () => {
  const a = join(tmp, 'a');
  const b = join(tmp, 'b');
  const model = await tableStore([a, b]);
  const name = (await tableFile(a))!;
  const size = (await stat(join(a, name))).size;
  await flip(join(a, name), size - TABLE_CHUNK_BYTES + 100);
  await flip(join(a, name), 5);
  let m = await openMemory({ store: [a, b], flushIntervalMs: 0 });
  sameBlocks(m, model, 'read through the set');
  await m.close();
  m = await openMemory({ store: a, flushIntervalMs: 0 });
  sameBlocks(m, model, 'copy a alone, repaired at open');
  await m.close();
  // Damaged on one copy while the set runs: scrub finds and rewrites it.
  m = await openMemory({ store: [a, b], flushIntervalMs: 0 });
  const tname = (await tableFile(b))!;
  await flip(join(b, tname), TABLE_HEADER_BYTES + TABLE_HEADER_BYTES + 64);
  const s1 = await m.scrub();
  assert.ok(s1.repaired >= 1, s1.found.join('\n'));
  assert.match(s1.found.join('\n'), /block table/);
  await m.close();
  m = await openMemory({ store: b, flushIntervalMs: 0 });
  sameBlocks(m, model, 'copy b alone after scrub');
  await m.close();
  // One folder, the table bad while it runs: scrub writes it again from the blocks in memory.
  m = await openMemory({ store: a, flushIntervalMs: 0 });
  const t1 = (await tableFile(a))!;
  await flip(join(a, t1), (await stat(join(a, t1))).size - 10);
  const s2 = await m.scrub();
  assert.match(s2.found.join('\n'), /written again from the blocks this node holds/);
  await m.close();
  m = await openMemory({ store: a, flushIntervalMs: 0 });
  sameBlocks(m, model, 'the table rewritten by scrub');
  await m.close();
});

t('a mirrored set: a table copy cut short in the zeros that pad its last chunk (it reads back whole) is made whole by scrub, and opens alone', async () => {
  const a = join(tmp, 'pad-a');
  const b = join(tmp, 'pad-b');
  const model = await tableStore([a, b]);
  const name = (await tableFile(a))!;
  const size = (await stat(join(a, name))).size;
  await truncate(join(a, name), size - 100); // the last chunk's padding: zeros either way
  let m = await openMemory({ store: [a, b], flushIntervalMs: 0 });
  sameBlocks(m, model, 'read through the set');
  const s = await m.scrub();
  assert.ok(s.repaired >= 1, `scrub mended the short copy: ${s.found.join('; ')}`);
  await m.close();
  assert.is((await stat(join(a, name))).size, size);
  m = await openMemory({ store: a, flushIntervalMs: 0 });
  sameBlocks(m, model, 'copy a alone after scrub');
  await m.close();
});

t('inspect --check lists a damaged table and exits 1, changing nothing', async () => {
  const dir = join(tmp, 'store');
  await tableStore(dir);
  const name = (await tableFile(dir))!;
  await flip(join(dir, name), (await stat(join(dir, name))).size - 100);
  const sha = async () => createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
  const before = await sha();
  const r = await new Promise<{ status: number; stdout: string }>((resolve) => {
    execFile(process.execPath, [CLI, 'inspect', '--dir', dir, '--check', '--json'], { encoding: 'utf8' }, (err, stdout) => {
      resolve({ status: err ? Number((err as { code?: number }).code) : 0, stdout });
    });
  });
  assert.is(r.status, 1);
  assert.ok(JSON.parse(r.stdout).check.damage.some((d: string) => d.includes(name)), r.stdout);
  assert.is(await sha(), before);
});

// --- the older formats ---------------------------------------------------------------------------

t('format version 2 is written as version 3 by the checkpoint at open; upgrade: false refuses it and changes nothing', async () => {
  const dir = join(tmp, 'v2');
  await cp(join(FIXTURES, 'format-v2'), dir, { recursive: true });
  const files = async () => Object.fromEntries(await Promise.all((await readdir(dir)).sort().map(async (n) => [n, createHash('sha256').update(await readFile(join(dir, n))).digest('hex')])));
  const before = await files();
  assert.is(await code(openMemory({ store: dir, flushIntervalMs: 0, upgrade: false })), 'UNSUPPORTED_FORMAT');
  assert.equal(await files(), before, 'refused: not a byte changed');
  const expected = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8'));
  const m = await openMemory({ store: dir, flushIntervalMs: 0 });
  for (const blk of expected.blocks) assert.equal(await m.read(blk.id, 0, blk.length), pattern(blk.length, blk.seed));
  await m.close();
  const { inspectFolder } = await import('../bindings/cli/inspect.js');
  const r = await inspectFolder(dir, { check: true });
  assert.is(r.superblock.version, 3);
  assert.equal(r.check!.damage, []);
  const again = await openMemory({ store: dir, flushIntervalMs: 0, upgrade: false });
  assert.is(again.blocks().length, expected.blocks.length);
  await again.close();
});

t('a version-2 store of many blocks gets its table at the upgrade', async () => {
  // The v2 fixture's journal holds 3 blocks; 300 more (in a v3 session) go through the same
  // path a large version-2 journal does: carried changes past the threshold make the table.
  const dir = join(tmp, 'v2');
  await cp(join(FIXTURES, 'format-v2'), dir, { recursive: true });
  let m = await openMemory({ store: dir, flushIntervalMs: 0 });
  const model = await allocateMany(m, 300);
  for (const b of m.blocks()) if (!model.has(b.id)) model.set(b.id, { base: b.base, pages: b.pages, length: b.length });
  await m.close();
  assert.ok(await tableFile(dir));
  m = await openMemory({ store: dir, flushIntervalMs: 0 });
  sameBlocks(m, model, 'upgraded, with a table');
  await m.close();
});

t.run();
