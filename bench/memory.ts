// memory.*: one node's paged memory over a data folder against lmdb (a
// native, memory-mapped store) doing the same work on the same data.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory } from '../bindings/index.js';
import { compare, expectEqual, rng } from './util.js';

const PAGE = 4096;
const PAGES = 1024;
const BATCH = 16;

function page(seed: number): Uint8Array {
  const b = new Uint8Array(PAGE);
  b.fill(seed & 0xFF);
  b[0] = seed >>> 8;
  return b;
}

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
    await writes(dir, 'write_durable', 'write-through', false);
    await writes(dir, 'write_back', 'write-back', true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readCached(dir: string): Promise<void> {
  const memory = await openMemory({ store: join(dir, 'tp-read'), cacheBytes: 2 * PAGES * PAGE, flushIntervalMs: 0 });
  const block = await memory.allocate(PAGES * PAGE);
  const db = openLmdb({ path: join(dir, 'lmdb-read'), encoding: 'binary' });
  for (let p = 0; p < PAGES; p++) {
    await memory.write(block.id, p * PAGE, page(p));
    db.putSync(p, page(p));
  }
  const random = rng(3);
  const order = Array.from({ length: 1024 }, () => Math.floor(random() * PAGES));
  const expected = order.reduce((s, p) => s + (p >>> 8) + (p & 0xFF), 0);

  const viaPointers = () => {
    let s = 0;
    for (const p of order) {
      // Every page is cached: the synchronous path always succeeds here.
      const ptr = memory.tryAcquireRead(block.id, p * PAGE, PAGE)!;
      const view = ptr.segments()[0];
      s += view[0] + view[PAGE - 1];
      ptr.release();
    }
    return s;
  };
  const viaLmdb = () => {
    let s = 0;
    for (const p of order) {
      const v = db.getBinaryFast(p)!;
      s += v[0] + v[PAGE - 1];
    }
    return s;
  };
  await compare({
    suite: 'memory', name: 'read_cached', opsPerRun: order.length,
    ours: { name: 'twinpage tryAcquireRead+release', run: viaPointers, check: async () => expectEqual('sum', await viaPointers(), expected) },
    others: [{ name: 'lmdb getBinaryFast', run: viaLmdb, check: () => expectEqual('sum', viaLmdb(), expected) }],
  });
  await memory.close();
  await db.close();
}

async function writes(dir: string, name: string, writeMode: 'write-through' | 'write-back', noSync: boolean): Promise<void> {
  const memory = await openMemory({
    store: join(dir, `tp-${name}`), cacheBytes: 2 * PAGES * PAGE, flushIntervalMs: noSync ? 1000 : 0,
    policies: [{ name: 'p', writeMode, durability: 'disk' }],
  });
  const block = await memory.allocate(PAGES * PAGE);
  const db = openLmdb({ path: join(dir, `lmdb-${name}`), encoding: 'binary', noSync });
  const random = rng(4);
  let n = 0;
  // Each run commits one batch of BATCH writes to distinct random pages.
  const nextBatch = () => {
    const pages = new Set<number>();
    while (pages.size < BATCH) pages.add(Math.floor(random() * PAGES));
    return [...pages].map((p) => ({ p, data: page(++n) }));
  };
  const viaMemory = async () => {
    const batch = nextBatch();
    await Promise.all(batch.map(({ p, data }) => memory.write(block.id, p * PAGE, data)));
    return batch;
  };
  const viaLmdb = () => {
    const batch = nextBatch();
    db.transactionSync(() => { for (const { p, data } of batch) db.putSync(p, data); });
    return batch;
  };
  const mode = noSync ? 'no sync' : 'durable';
  await compare({
    suite: 'memory', name, opsPerRun: BATCH,
    ours: {
      name: `twinpage write (${writeMode}) x${BATCH}`, run: viaMemory,
      check: async () => {
        for (const { p, data } of await viaMemory()) expectEqual(`page ${p}`, (await memory.read(block.id, p * PAGE, PAGE))[0], data[0]);
      },
    },
    others: [{
      name: `lmdb transactionSync (${mode}) x${BATCH}`, run: viaLmdb,
      check: () => { for (const { p, data } of viaLmdb()) expectEqual(`page ${p}`, db.getBinary(p)![0], data[0]); },
    }],
  });
  await memory.close();
  await db.close();
}
