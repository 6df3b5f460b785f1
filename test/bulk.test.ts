// Large reads and writes (issue #16, transfer.ts) and the reopen after a
// crash with a long journal (issue #14, recovery.ts): what was written reads
// back the same before and after a reopen and after a crash, whatever mix
// of cached, uncached, partly written and larger-than-the-cache pages; a
// write's pages are served from memory until the page file holds them, and
// a failed page-file write is retried by the next checkpoint; a pair's
// secondary applies large releases the same way; a page whose bytes are
// damaged is never returned by a large read. Reopening after a crash replays
// the journal as it is (no checkpoint at open) and finds every acknowledged
// write.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, openMemory, TwinpageError, type Device, type Memory, type Store } from '../bindings/index.js';
import { Mirror } from '../bindings/mirror/pair.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { pattern, rng } from './data.js';

const KIB = 1024;
const MIB = 1 << 20;

async function code(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

/** A store whose devices named `name` can be held (writes wait) or made to fail. */
class GatedStore implements Store {
  readonly kind: string;
  readonly #inner: Store;
  readonly #name: string;
  /** Writes to the named device wait for this, when set. */
  gate: Promise<void> | null = null;
  /** Writes to the named device fail while this is above zero (counting down). */
  failures = 0;
  writes = 0;
  constructor(inner: Store, name: string) { this.#inner = inner; this.kind = inner.kind; this.#name = name; }
  async open(name: string): Promise<Device> {
    const d = await this.#inner.open(name);
    const gated = name === this.#name;
    return {
      name: d.name,
      read: (position, into) => d.read(position, into),
      write: async (position, data) => {
        if (gated) {
          this.writes++;
          if (this.gate) await this.gate;
          if (this.failures > 0) { this.failures--; throw TwinpageError.ioError(`${name}: a write failed on purpose`); }
        }
        return d.write(position, data);
      },
      flush: () => d.flush(),
      size: () => d.size(),
      truncate: (size) => d.truncate(size),
      close: () => d.close(),
    };
  }
  exists(name: string) { return this.#inner.exists(name); }
  remove(name: string) { return this.#inner.remove(name); }
  rename(from: string, to: string) { return this.#inner.rename(from, to); }
  list() { return this.#inner.list(); }
  sync() { return this.#inner.sync(); }
  space() { return this.#inner.space(); }
}

/** Random writes over a block, large and small, aligned and not; returns the block's expected bytes. */
async function scribble(m: Memory, id: string, size: number, seed: number, writes: number, model: Uint8Array = new Uint8Array(size)): Promise<Uint8Array> {
  const random = rng(seed);
  for (let i = 0; i < writes; i++) {
    const big = random() < 0.6;
    const len = 1 + Math.floor(random() * (big ? Math.min(size, 3 * MIB) : 20 * KIB));
    const aligned = random() < 0.4;
    let at = Math.floor(random() * (size - len + 1));
    if (aligned) at -= at % m.pageSize;
    const data = pattern(len, seed * 1000 + i);
    await m.write(id, at, data);
    model.set(data, at);
  }
  return model;
}

/** Reads a block back in pieces of assorted sizes (some large, some small, unaligned). */
async function readBack(m: Memory, id: string, size: number, seed: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  const random = rng(seed);
  for (let at = 0; at < size;) {
    const n = Math.min(size - at, 1 + Math.floor(random() * (random() < 0.5 ? 2 * MIB : 9 * KIB)));
    out.set(await m.read(id, at, n), at);
    at += n;
  }
  return out;
}

const t = suite('large reads and writes');
let tmp: string;
t.before.each(async () => { tmp = await mkdtemp(join(tmpdir(), 'twinpage-bulk-')); });
t.after.each(async () => { await rm(tmp, { recursive: true, force: true }); });

t('large and small writes, cached and not, over a block larger than the cache: equal before and after a reopen, and after a crash', async () => {
  const dir = join(tmp, 'store');
  const options = { store: dir, flushIntervalMs: 0, cacheBytes: MIB, checkpointBytes: 24 * MIB };
  const m = await openMemory(options);
  const size = 9 * MIB + 123;
  const b = await m.allocate(size);
  const model = await scribble(m, b.id, size, 1, 40);
  assert.equal(await readBack(m, b.id, size, 2), model, 'before a reopen');
  assert.equal(await m.read(b.id, 0, size), model, 'in one read');
  // What a SIGKILL leaves: the folder copied while the memory is open, every write acknowledged.
  const crashed = join(tmp, 'crashed');
  await cp(dir, crashed, { recursive: true });
  await scribble(m, b.id, size, 3, 10, model);
  await m.close();
  const again = await openMemory(options);
  assert.equal(await readBack(again, b.id, size, 4), model, 'after a reopen');
  await again.close();
  const afterCrash = await openMemory({ ...options, store: crashed });
  const before = await readBack(afterCrash, b.id, size, 5);
  await afterCrash.close();
  const reopened = await openMemory({ ...options, store: crashed });
  assert.equal(await readBack(reopened, b.id, size, 6), before, 'the same after a second reopen');
  await reopened.close();
});

t('after a crash: every acknowledged large write is there, whole (a write is one record per 16 MiB)', async () => {
  const dir = join(tmp, 'store');
  const m = await openMemory({ store: dir, flushIntervalMs: 0, cacheBytes: 2 * MIB });
  const b = await m.allocate(12 * MIB);
  const model = new Uint8Array(12 * MIB);
  for (let i = 0; i < 12; i++) {
    const data = pattern(MIB + 777, i);
    const at = i * MIB - (i ? 333 : 0);
    await m.write(b.id, at, data.subarray(0, Math.min(data.length, 12 * MIB - at)));
    model.set(data.subarray(0, Math.min(data.length, 12 * MIB - at)), at);
  }
  const crashed = join(tmp, 'crashed');
  await cp(dir, crashed, { recursive: true });
  await m.close();
  const again = await openMemory({ store: crashed, flushIntervalMs: 0, cacheBytes: 2 * MIB });
  assert.equal(await again.read(b.id, 0, 12 * MIB), model);
  await again.close();
});

t('a write is served from memory until the page file holds it; a failed page-file write is retried by the next checkpoint', async () => {
  const store = new GatedStore(new MemoryStore(), 'pages');
  const m = await openMemory({ store, pageSize: 4096, cacheBytes: 64 * KIB, flushIntervalMs: 0 });
  const b = await m.allocate(MIB);
  let open!: () => void;
  store.gate = new Promise<void>((r) => { open = r; });
  const first = pattern(MIB, 1);
  await m.write(b.id, 0, first); // durable in the journal; the page file is held
  assert.ok(store.writes > 0, 'the page file write started');
  assert.equal(await m.read(b.id, 0, MIB), first, 'served from memory');
  // Written again while the first write is still held: the newer bytes win, in the page file too.
  const second = pattern(MIB, 2);
  await m.write(b.id, 0, second);
  assert.equal(await m.read(b.id, 0, MIB), second, 'the newer bytes, from memory');
  store.failures = 1000;
  open();
  store.gate = null;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await m.read(b.id, 0, MIB), second, 'the page-file writes failed: still served from memory');
  assert.equal(await m.read(b.id, 4096 * 3 + 5, 100), second.subarray(4096 * 3 + 5, 4096 * 3 + 105), 'a small read too (staged from memory)');
  assert.equal((await m.header(b.id, { checksums: true })).checksums![7], m.core.checksum(second.subarray(7 * 4096, 8 * 4096)), 'header checksums too');
  assert.is(await code(m.flush()), 'IO_ERROR', 'a checkpoint cannot end without the page file');
  store.failures = 0;
  await m.flush();
  await m.close();
  const again = await openMemory({ store, flushIntervalMs: 0 });
  assert.equal(await again.read(b.id, 0, MIB), second);
  await again.close();
});

t('one journal flush per large write, even larger than the cache', async () => {
  const inner = new MemoryStore();
  let walFlushes = 0;
  const store: Store = {
    kind: 'memory',
    open: async (name) => {
      const d = await inner.open(name);
      return { ...d, name: d.name, read: (p, i) => d.read(p, i), write: (p, x) => d.write(p, x), size: () => d.size(), truncate: (s) => d.truncate(s), close: () => d.close(),
        flush: async () => { if (name.startsWith('wal.')) walFlushes++; await d.flush(); } };
    },
    exists: (n) => inner.exists(n), remove: (n) => inner.remove(n), rename: (a, b) => inner.rename(a, b), list: () => inner.list(), sync: () => inner.sync(), space: () => inner.space(),
  };
  const m = await openMemory({ store, cacheBytes: 256 * KIB, flushIntervalMs: 0 });
  const b = await m.allocate(8 * MIB);
  await m.write(b.id, 0, pattern(8 * MIB, 1)); // fill ahead grows first
  walFlushes = 0;
  await m.write(b.id, 0, pattern(4 * MIB, 2));
  assert.ok(walFlushes <= 2, `a 4 MiB write through a 256 KiB cache: ${walFlushes} journal flushes`);
  assert.equal(await m.read(b.id, 0, 4 * MIB), pattern(4 * MIB, 2));
  await m.close();
});

t('copyPages (what a resync sends): every page as a read gives it, with its checksum, cached or not, written lately or never; a freed block\'s old pages are zeros', async () => {
  const dir = join(tmp, 'store');
  const options = { store: dir, flushIntervalMs: 0, cacheBytes: MIB, checkpointBytes: 24 * MIB };
  let m = await openMemory(options);
  const old = await m.allocate(2 * MIB);
  await m.write(old.id, 0, pattern(2 * MIB, 77));
  await m.free(old.id);
  const size = 9 * MIB;
  const b = await m.allocate(size);
  const ps = m.pageSize;
  const pagesOf = size / ps;
  const model = await scribble(m, b.id, size, 11, 30);
  const random = rng(12);
  for (let round = 0; round < 60; round++) {
    if (round === 30) {
      // Cold: nothing cached, every page from the page file.
      await m.close();
      m = await openMemory(options);
    }
    // Ascending pages: a run, or pages scattered over a span, at most 64.
    const start = Math.floor(random() * pagesOf);
    const want = 1 + Math.floor(random() * 64);
    const pages: number[] = [];
    for (let p = start; p < pagesOf && pages.length < want; p += random() < 0.7 ? 1 : 1 + Math.floor(random() * 9)) pages.push(b.base + p);
    const got = await m.copyPages(b.id, pages, async (copies) => copies.map((c) => ({ page: c.page, checksum: c.checksum, data: c.data.slice() })));
    assert.equal(got.map((c) => c.page), pages);
    for (const c of got) {
      const at = (c.page - b.base) * ps;
      assert.equal(c.data, model.subarray(at, at + ps), `round ${round}: page ${c.page}`);
      assert.is(c.checksum, m.core.checksum(c.data), `round ${round}: the checksum of page ${c.page}`);
    }
    if (round % 10 === 5) await scribble(m, b.id, size, 100 + round, 4, model);
  }
  await m.close();
});

t('a large read never returns damaged bytes: CORRUPT alone, repaired from the other copy of a mirrored set', async () => {
  const single = join(tmp, 'single');
  const a = join(tmp, 'a');
  const bdir = join(tmp, 'b');
  for (const store of [single, [a, bdir]]) {
    const m = await openMemory({ store, pageSize: 4096, cacheBytes: 64 * KIB, flushIntervalMs: 0 });
    const b = await m.allocate(MIB);
    await m.write(b.id, 0, pattern(MIB, 9));
    await m.close();
    const dir = Array.isArray(store) ? store[0] : store;
    const fh = await open(join(dir, 'pages'), 'r+');
    await fh.write(Uint8Array.of(0xAB, 0xCD), 0, 2, b.base * 4096 + 40 * 4096 + 17);
    await fh.close();
    const again = await openMemory({ store, cacheBytes: 64 * KIB, flushIntervalMs: 0 });
    if (Array.isArray(store)) {
      assert.equal(await again.read(b.id, 0, MIB), pattern(MIB, 9), 'read from the good copy');
      await again.close();
      const alone = await openMemory({ store: a, cacheBytes: 64 * KIB, flushIntervalMs: 0 });
      assert.equal(await alone.read(b.id, 0, MIB), pattern(MIB, 9), 'the bad copy repaired');
      await alone.close();
    } else {
      assert.is(await code(again.read(b.id, 0, MIB)), 'CORRUPT');
      const around = [38, 39, 40, 41].map((p) => b.base + p);
      assert.is(await code(again.copyPages(b.id, around, async () => assert.unreachable('a damaged page handed to a resync'))), 'CORRUPT');
      assert.equal(await again.read(b.id, 0, 40 * 4096), pattern(MIB, 9).subarray(0, 40 * 4096), 'the pages before it read');
      assert.equal(again.damage().map((d) => d.index), [40]);
      await again.close();
    }
  }
});

t('a pair: large releases are applied on the secondary the same way, and read back equal there', async () => {
  const [ta, tb] = inProcessPair();
  const p = await openMemory({ store: new MemoryStore(), cacheBytes: 128 * KIB, flushIntervalMs: 0 });
  const s = await openMemory({ store: new MemoryStore(), cacheBytes: 128 * KIB, flushIntervalMs: 0 });
  const mp = new Mirror(p, { role: 'primary' });
  const ms = new Mirror(s, { role: 'secondary' });
  mp.attach(ta);
  ms.attach(tb);
  const b = await p.allocate(3 * MIB + 5);
  const model = await scribble(p, b.id, 3 * MIB + 5, 7, 12);
  assert.equal(await s.read(b.id, 0, 3 * MIB + 5), model, 'the secondary, read whole');
  assert.equal(await readBack(s, b.id, 3 * MIB + 5, 8), model, 'the secondary, in pieces');
  assert.equal((await mp.verify()).differences, []);
  mp.close(); ms.close();
  await p.close(); await s.close();
});

// --- reopening after a crash with a long journal ------------------------------------------------

t('a crash with a long journal: the reopen replays it as it is (no checkpoint at open) and every acknowledged write is there', async () => {
  const dir = join(tmp, 'store');
  const options = { store: dir, pageSize: 4096, flushIntervalMs: 0, cacheBytes: 4 * MIB };
  const m = await openMemory(options);
  const small = await m.allocate(512 * 4096 + 1);
  const large = await m.allocate(4 * MIB);
  const smallModel = new Uint8Array(small.length);
  const random = rng(11);
  // Many small writes (a record each, 16 in flight), and large ones, for about 12 MiB of journal.
  for (let round = 0; round < 48; round++) {
    await Promise.all(Array.from({ length: 16 }, (_, k) => {
      const page = Math.floor(random() * 512);
      const data = pattern(4096, round * 100 + k);
      smallModel.set(data, page * 4096);
      return m.write(small.id, page * 4096, data);
    }));
  }
  const largeModel = await scribble(m, large.id, 4 * MIB, 12, 8);
  const crashed = join(tmp, 'crashed');
  await cp(dir, crashed, { recursive: true });
  await m.close();
  const journal = async (d: string) => (await readdir(d)).filter((n) => /^wal\.\d+$/.test(n));
  const [wal] = await journal(crashed);
  const { inspectFolder } = await import('../bindings/cli/inspect.js');
  const before = await inspectFolder(crashed);
  assert.ok(before.journal!.end > 8 * MIB, `the journal holds ${(before.journal!.end / MIB).toFixed(1)} MiB`);
  const again = await openMemory({ ...options, store: crashed });
  assert.equal(await journal(crashed), [wal], 'the same journal goes on: no checkpoint at open');
  assert.equal(await again.read(small.id, 0, small.length), smallModel);
  assert.equal(await again.read(large.id, 0, large.length), largeModel);
  // It goes on from there, and a crash again replays both sessions' writes.
  const more = pattern(3 * 4096, 99);
  await again.write(small.id, 4096 * 10, more);
  smallModel.set(more, 4096 * 10);
  const twice = join(tmp, 'twice');
  await cp(crashed, twice, { recursive: true });
  await again.close();
  const third = await openMemory({ ...options, store: twice });
  assert.equal(await third.read(small.id, 0, small.length), smallModel);
  assert.equal(await third.read(large.id, 0, large.length), largeModel);
  await third.close();
});

t('a journal that ended in a torn tail is replaced at open (nothing is written after what is left of the tail): later crashes reopen cleanly', async () => {
  const dir = join(tmp, 'store');
  const options = { store: dir, pageSize: 512, flushIntervalMs: 0, cacheBytes: 64 * 512 };
  const m = await openMemory(options);
  const b = await m.allocate(64 * 512);
  await m.write(b.id, 0, pattern(64 * 512, 1));
  const { RECORD_HEADER_SIZE, SECTOR, decodeRecordHeader, roundUp } = await import('../bindings/storage/format.js');
  const { readFile } = await import('node:fs/promises');
  const lastRecord = async (d: string) => {
    const file = join(d, (await readdir(d)).find((n) => /^wal\.\d+$/.test(n))!);
    const bytes = new Uint8Array(await readFile(file));
    let last = { at: 0, end: 0 };
    for (let p = 0; ;) {
      const h = decodeRecordHeader(bytes.subarray(p, p + RECORD_HEADER_SIZE));
      if (!h) { if (p % SECTOR === 0) break; p = roundUp(p, SECTOR); continue; }
      last = { at: p, end: p + RECORD_HEADER_SIZE + h.bodyLength + h.pageCount * 512 };
      p = last.end;
    }
    return { file, bytes, last };
  };
  // Writes in one batch, until the last record starts inside a sector (a batch of more than one record).
  for (let attempt = 0; attempt < 50 && (await lastRecord(dir)).last.at % SECTOR === 0; attempt++) {
    await Promise.all([m.write(b.id, 0, pattern(700, 2)), ...Array.from({ length: 6 }, (_, k) => m.write(b.id, 4096 + k * 1024, pattern(600, 3 + k)))]);
  }
  const crashed = join(tmp, 'crashed');
  await cp(dir, crashed, { recursive: true });
  await m.close();
  // Tear the last record: one of its sectors reads as fill (what a crash leaves).
  const { file, bytes, last } = await lastRecord(crashed);
  assert.ok(last.at % SECTOR !== 0, 'the last record starts inside a sector');
  const fillSector = bytes.subarray(bytes.length - SECTOR);
  const fh = await open(file, 'r+');
  await fh.write(fillSector, 0, SECTOR, roundUp(last.at, SECTOR) + SECTOR);
  await fh.close();
  const first = await openMemory({ ...options, store: crashed });
  const expected = pattern(64 * 512, 1);
  expected.set(pattern(700, 2), 0);
  const got = await first.read(b.id, 0, 64 * 512);
  // The torn write is there or not (it stands for a batch a crash kept from the disk, never acknowledged).
  assert.equal(got.subarray(0, 4096), expected.subarray(0, 4096));
  await first.write(b.id, 16384, pattern(2000, 40));
  expected.set(got.subarray(4096, 16384), 4096);
  expected.set(pattern(2000, 40), 16384);
  const again = join(tmp, 'again');
  await cp(crashed, again, { recursive: true });
  await first.close();
  const second = await openMemory({ ...options, store: again });
  assert.equal(await second.read(b.id, 0, 64 * 512), expected, 'no false CORRUPT, every write there');
  await second.close();
});

t.run();
