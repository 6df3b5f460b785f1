// memory.*: one node's paged memory over a data folder, against lmdb (a
// native, memory-mapped store), the limit programs (limit-journal.ts) and
// plain Node file I/O doing the same work on the same data.
//
//   memory.read_cached        a view of a cached page: tryAcquireRead + segments()
//                             vs lmdb getBinaryFast (both read 2 bytes of it)
//   memory.read_cached_copy   a copy of a cached page: tryAcquireRead + read()
//                             vs lmdb getBinary (both return a fresh 4 KiB copy)
//   memory.write_durable      16 writes of distinct 4 KiB pages in flight, durable
//                             (write-through, `disk`) vs lmdb transactionSync of the
//                             same 16 (synced)
//   memory.write_durable_vs_limit   the same vs the limit journal (group commit)
//   memory.write_back         write-back writes (in cache; journaled by the flusher
//                             within 1 s) vs lmdb noSync commits (in the OS page
//                             cache at commit: they survive a crash of the
//                             process, twinpage's do not until the flusher ran)
//   memory.write_back_vs_limit      the same vs the limit of that promise: page
//                             copies in a Map, journaled by a timer every 1 s
//   memory.bulk_write         1 MiB durable writes, one at a time, vs plain Node
//                             write + fdatasync of each MiB
//   memory.bulk_read          1 MiB reads with a cold cache (reopened before each
//                             turn, smaller than the data) vs plain Node reads of
//                             the same bytes from a file (the OS page cache is warm
//                             for both)
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, type Memory } from '../bindings/index.js';
import { LimitJournal, LimitNode, encodeRecord, latestImages } from './limit-journal.js';
import { batches as batchesOf, compare, expectBytes, expectEqual, pattern, rng } from './util.js';

const PAGE = 4096;
const PAGES = 1024;
const BATCH = 16;
const MIB = 1 << 20;

/** The parts of lmdb used here (loaded at run time: see scripts/bench-deps.mjs). */
interface LmdbDb {
  putSync(key: number, value: Uint8Array): void;
  getBinaryFast(key: number): Uint8Array | undefined;
  getBinary(key: number): Uint8Array | undefined;
  transactionSync(fn: () => void): void;
  close(): Promise<void>;
}
type OpenLmdb = (options: { path: string; encoding: 'binary'; noSync?: boolean }) => LmdbDb;
let openLmdb: OpenLmdb;

export async function run(): Promise<void> {
  const lmdbName = 'lmdb';
  openLmdb = ((await import(lmdbName)) as { open: OpenLmdb }).open;
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-bench-'));
  try {
    await readCached(dir);
    await writeDurable(dir);
    await writeBack(dir);
    await bulkWrite(dir);
    await bulkRead(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Batches of BATCH distinct random pages of a PAGES-page block. */
const batches = (seed: number) => batchesOf(seed, PAGES, BATCH, PAGE);

async function readCached(dir: string): Promise<void> {
  const memory = await openMemory({ store: join(dir, 'tp-read'), cacheBytes: 2 * PAGES * PAGE, flushIntervalMs: 0 });
  const block = await memory.allocate(PAGES * PAGE);
  const db = openLmdb({ path: join(dir, 'lmdb-read'), encoding: 'binary' });
  const seedOf = (p: number) => 0x5EED0000 + p;
  for (let p = 0; p < PAGES; p++) {
    await memory.write(block.id, p * PAGE, pattern(seedOf(p), p * PAGE, PAGE));
    db.putSync(p, pattern(seedOf(p), p * PAGE, PAGE));
  }
  const random = rng(3);
  const order = Array.from({ length: 1024 }, () => Math.floor(random() * PAGES));
  // Byte 0 is the seed's low byte, byte PAGE-4 the page number's.
  const expected = order.reduce((s, p) => s + (seedOf(p) & 0xFF) + (p & 0xFF), 0);

  const viewPointer = () => {
    let s = 0;
    for (const p of order) {
      // Every page is cached: the synchronous path always succeeds here.
      const ptr = memory.tryAcquireRead(block.id, p * PAGE, PAGE)!;
      const view = ptr.segments()[0];
      s += view[0] + view[PAGE - 4];
      ptr.release();
    }
    return s;
  };
  const viewLmdb = () => {
    let s = 0;
    for (const p of order) {
      const v = db.getBinaryFast(p)!;
      s += v[0] + v[PAGE - 4];
    }
    return s;
  };
  const copyPointer = () => {
    let s = 0;
    for (const p of order) {
      const ptr = memory.tryAcquireRead(block.id, p * PAGE, PAGE)!;
      const copy = ptr.read();
      ptr.release();
      s += copy[0] + copy[PAGE - 4];
    }
    return s;
  };
  const copyLmdb = () => {
    let s = 0;
    for (const p of order) {
      const copy = db.getBinary(p)!;
      s += copy[0] + copy[PAGE - 4];
    }
    return s;
  };
  // Each way of reading gives every page whole, and the loop's sum.
  const checkAll = (what: string, get: (p: number) => Uint8Array, loop: () => number) => () => {
    for (let p = 0; p < PAGES; p++) expectBytes(`${what}: page ${p}`, get(p), pattern(seedOf(p), p * PAGE, PAGE));
    expectEqual(`${what}: sum`, loop(), expected);
  };
  const viaPointer = (copy: boolean) => (p: number) => {
    const ptr = memory.tryAcquireRead(block.id, p * PAGE, PAGE);
    if (!ptr) throw new Error(`page ${p} is not cached`);
    try { return copy ? ptr.read() : ptr.segments()[0].slice(); } finally { ptr.release(); }
  };
  const VIEW = 'twinpage tryAcquireRead view';
  const FAST = 'lmdb getBinaryFast';
  const COPY = 'twinpage tryAcquireRead read()';
  const LMDB_COPY = 'lmdb getBinary';
  await compare({
    suite: 'memory', name: 'read_cached', opsPerRun: order.length, goal: '>= 2.5',
    ours: { name: VIEW, run: viewPointer, check: checkAll(VIEW, viaPointer(false), viewPointer) },
    others: [{ name: FAST, run: viewLmdb, check: checkAll(FAST, (p) => db.getBinaryFast(p)!.slice(), viewLmdb) }],
    also: [
      { name: COPY, run: copyPointer, check: checkAll(COPY, viaPointer(true), copyPointer) },
      { name: LMDB_COPY, run: copyLmdb, check: checkAll(LMDB_COPY, (p) => db.getBinary(p)!, copyLmdb) },
    ],
    ratios: [{ name: 'read_cached_copy', of: COPY, over: LMDB_COPY }],
  });
  await memory.close();
  await db.close();
}

/**
 * A twinpage contender writing batches of BATCH pages to one node. Its check
 * writes a batch, reopens the store (durable writes) and reads every page of
 * the batch back whole.
 */
async function twinpageWriter(name: string, path: string, writeMode: 'write-through' | 'write-back', seed: number) {
  const options = {
    store: path, cacheBytes: 2 * PAGES * PAGE, flushIntervalMs: writeMode === 'write-back' ? 1000 : 0,
    policies: [{ name: 'p', writeMode, durability: 'disk' as const }],
  };
  let memory: Memory = await openMemory(options);
  const block = await memory.allocate(PAGES * PAGE);
  const next = batches(seed);
  const run = async () => {
    const batch = next();
    await Promise.all(batch.map(({ p, data }) => memory.write(block.id, p * PAGE, data)));
    return batch;
  };
  const check = async () => {
    const batch = await run();
    if (writeMode === 'write-through') {
      await memory.close();
      memory = await openMemory(options);
    }
    for (const { p, data } of batch) expectBytes(`${name}: page ${p}`, await memory.read(block.id, p * PAGE, PAGE), data);
  };
  return { contender: { name, run, check }, close: () => memory.close() };
}

/** An lmdb contender committing batches of BATCH pages in one transaction; its check reopens and reads back. */
function lmdbWriter(name: string, path: string, noSync: boolean, seed: number) {
  let db = openLmdb({ path, encoding: 'binary', noSync });
  const next = batches(seed);
  const run = () => {
    const batch = next();
    db.transactionSync(() => { for (const { p, data } of batch) db.putSync(p, data); });
    return batch;
  };
  const check = async () => {
    const batch = run();
    await db.close();
    db = openLmdb({ path, encoding: 'binary', noSync });
    for (const { p, data } of batch) expectBytes(`${name}: page ${p}`, db.getBinary(p)!, data);
  };
  return { contender: { name, run, check }, close: () => db.close() };
}

async function writeDurable(dir: string): Promise<void> {
  const tp = await twinpageWriter(`twinpage write (write-through) x${BATCH}`, join(dir, 'tp-durable'), 'write-through', 4);
  const db = lmdbWriter(`lmdb transactionSync (synced) x${BATCH}`, join(dir, 'lmdb-durable'), false, 4);
  const limit = await LimitNode.create(join(dir, 'limit-durable.journal'));
  const next = batches(4);
  const limitRun = async () => {
    const batch = next();
    await Promise.all(batch.map(({ p, data }) => limit.write(p, data)));
    return batch;
  };
  const LIMIT = `limit journal, group commit x${BATCH}`;
  await compare({
    suite: 'memory', name: 'write_durable', opsPerRun: BATCH, goal: '>= 1.3',
    ours: tp.contender,
    others: [db.contender],
    also: [{
      name: LIMIT, run: limitRun,
      check: async () => {
        const batch = await limitRun();
        const onDisk = await latestImages(limit.journal.path);
        for (const { p, data } of batch) {
          expectBytes(`${LIMIT}: page ${p} in the journal file`, onDisk.get(p) ?? new Uint8Array(0), data);
          expectBytes(`${LIMIT}: page ${p} in memory`, limit.read(p)!, data);
        }
      },
    }],
    ratios: [{ name: 'write_durable_vs_limit', of: tp.contender.name, over: LIMIT, goal: '>= 0.9' }],
  });
  await tp.close();
  await db.close();
  await limit.close();
}

/**
 * The limit of the write-back promise: a write copies the page into a Map
 * (the cache); a timer journals what changed every second (one writev, one
 * fdatasync), as twinpage's flusher does.
 */
class LimitWriteBack {
  readonly pages = new Map<number, Uint8Array>();
  readonly #dirty = new Set<number>();
  readonly #journal: LimitJournal;
  readonly #timer: ReturnType<typeof setInterval>;
  #seq = 0;
  constructor(journal: LimitJournal) {
    this.#journal = journal;
    this.#timer = setInterval(() => void this.flush(), 1000);
  }
  write(page: number, data: Uint8Array): Promise<void> {
    this.pages.set(page, data.slice());
    this.#dirty.add(page);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    const done: Promise<void>[] = [];
    for (const p of this.#dirty) done.push(this.#journal.append(encodeRecord(++this.#seq, p, this.pages.get(p)!)));
    this.#dirty.clear();
    return Promise.all(done).then(() => {});
  }
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    await this.#journal.close();
  }
  get path(): string { return this.#journal.path; }
}

async function writeBack(dir: string): Promise<void> {
  const tp = await twinpageWriter(`twinpage write (write-back) x${BATCH}`, join(dir, 'tp-back'), 'write-back', 5);
  const db = lmdbWriter(`lmdb transactionSync (noSync) x${BATCH}`, join(dir, 'lmdb-back'), true, 5);
  const limit = new LimitWriteBack(await LimitJournal.create(join(dir, 'limit-back.journal')));
  const next = batches(5);
  const limitRun = async () => {
    const batch = next();
    await Promise.all(batch.map(({ p, data }) => limit.write(p, data)));
    return batch;
  };
  const LIMIT = `limit write-back (Map, 1 s flush) x${BATCH}`;
  await compare({
    suite: 'memory', name: 'write_back', opsPerRun: BATCH,
    ours: tp.contender,
    others: [db.contender],
    also: [{
      name: LIMIT, run: limitRun,
      check: async () => {
        const batch = await limitRun();
        await limit.flush();
        const onDisk = await latestImages(limit.path);
        for (const { p, data } of batch) {
          expectBytes(`${LIMIT}: page ${p} in the journal file`, onDisk.get(p) ?? new Uint8Array(0), data);
          expectBytes(`${LIMIT}: page ${p} in memory`, limit.pages.get(p)!, data);
        }
      },
    }],
    ratios: [{ name: 'write_back_vs_limit', of: tp.contender.name, over: LIMIT }],
  });
  await tp.close();
  await db.close();
  await limit.close();
}

// --- bulk: 1 MiB at a time -----------------------------------------------------------

const BULK_WRITE_MIB = 128;
const BULK_READ_MIB = 64;

async function bulkWrite(dir: string): Promise<void> {
  const options = { store: join(dir, 'tp-bulk-write'), flushIntervalMs: 0 };
  let memory: Memory = await openMemory(options);
  const block = await memory.allocate(BULK_WRITE_MIB * MIB);
  let n = 0;
  const ourBuf = Buffer.alloc(MIB);
  const ours = async () => {
    const at = (n % BULK_WRITE_MIB) * MIB;
    const data = pattern(++n, at, MIB, ourBuf);
    await memory.write(block.id, at, data);
    return { at, data };
  };
  // The plain file is written whole first, so the timed writes overwrite in
  // place and their fdatasync need not record a new size (twinpage's journal
  // writes zeros ahead of itself for the same reason).
  const fh = await open(join(dir, 'plain-bulk-write'), 'w+');
  for (let i = 0; i < BULK_WRITE_MIB; i++) await fh.write(new Uint8Array(MIB), 0, MIB, i * MIB);
  await fh.datasync();
  let m = 0;
  const plainBuf = Buffer.alloc(MIB);
  const plain = async () => {
    const at = (m % BULK_WRITE_MIB) * MIB;
    const data = pattern(++m, at, MIB, plainBuf);
    const { bytesWritten } = await fh.write(data, 0, MIB, at);
    if (bytesWritten !== MIB) throw new Error('short write');
    await fh.datasync();
    return { at, data };
  };
  await compare({
    suite: 'memory', name: 'bulk_write', opsPerRun: 1,
    ours: {
      name: 'twinpage write 1 MiB (write-through)', run: ours,
      check: async () => {
        const { at, data } = await ours();
        await memory.close();
        memory = await openMemory(options);
        expectBytes('twinpage bulk write, after a reopen', await memory.read(block.id, at, MIB), data);
      },
    },
    others: [{
      name: 'node write 1 MiB + fdatasync', run: plain,
      check: async () => {
        const { at, data } = await plain();
        expectBytes('node bulk write', await readAt(fh, at, MIB), data);
      },
    }],
  });
  await memory.close();
  await fh.close();
}

async function readAt(fh: FileHandle, at: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, at + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

async function bulkRead(dir: string): Promise<void> {
  // A cache of 8 MiB for 64 MiB of data read in order: every read misses.
  const options = { store: join(dir, 'tp-bulk-read'), flushIntervalMs: 0, cacheBytes: 8 * MIB };
  let memory: Memory = await openMemory(options);
  const block = await memory.allocate(BULK_READ_MIB * MIB);
  const fh = await open(join(dir, 'plain-bulk-read'), 'w+');
  for (let i = 0; i < BULK_READ_MIB; i++) {
    const data = pattern(0xB0 + i, i * MIB, MIB);
    await memory.write(block.id, i * MIB, data);
    await fh.write(data, 0, MIB, i * MIB);
  }
  await fh.datasync();
  await memory.close();
  memory = await openMemory(options);
  let n = 0;
  const ours = () => memory.read(block.id, (n++ % BULK_READ_MIB) * MIB, MIB);
  let m = 0;
  const plain = () => readAt(fh, (m++ % BULK_READ_MIB) * MIB, MIB);
  const checkAll = (what: string, read: (i: number) => Promise<Uint8Array>) => async () => {
    for (let i = 0; i < BULK_READ_MIB; i++) expectBytes(`${what}: MiB ${i}`, await read(i), pattern(0xB0 + i, i * MIB, MIB));
  };
  await compare({
    suite: 'memory', name: 'bulk_read', opsPerRun: 1,
    ours: {
      name: 'twinpage read 1 MiB (cold cache)', run: ours,
      // A fresh cache before each turn: the reads start cold, and 64 MiB in
      // order through 8 MiB of cache never hit.
      before: async () => { await memory.close(); memory = await openMemory(options); n = 0; },
      check: checkAll('twinpage bulk read', (i) => memory.read(block.id, i * MIB, MIB)),
    },
    others: [{ name: 'node read 1 MiB', run: plain, before: () => { m = 0; }, check: checkAll('node bulk read', (i) => readAt(fh, i * MIB, MIB)) }],
  });
  await memory.close();
  await fh.close();
}
