import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, TwinpageError, type Memory } from '../bindings/index.js';
import { MemoryStore } from '../bindings/storage/memory.js';

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof TwinpageError) return err.code;
    throw err;
  }
  return 'no error';
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24; }
  return out;
}

const small = { pageSize: 512, cacheBytes: 16 * 512, flushIntervalMs: 0 };

// --- API behaviour -------------------------------------------------------------------

const api = suite('memory API');

api('allocate, write, read back across page boundaries; header and blocks', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(3000);
  assert.match(b.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.is(b.length, 3000);
  assert.is(b.pages, 6);
  assert.equal(await m.read(b.id, 0, 3000), new Uint8Array(3000), 'never-written bytes read as zero');
  const data = pattern(1500, 1);
  await m.write(b.id, 700, data);
  assert.equal(await m.read(b.id, 700, 1500), data);
  assert.equal((await m.read(b.id, 0, 700)), new Uint8Array(700));
  assert.equal(m.blocks().map((x) => x.id), [b.id]);
  const h = await m.header(b.id, { checksums: true });
  assert.is(h.checksums?.length, 6);
  assert.is(h.policy.durability, 'disk');
  await m.close();
});

api('freed space is reused and reads as zero', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const a = await m.allocate(2048);
  await m.write(a.id, 0, pattern(2048, 2));
  await m.flush();
  await m.free(a.id);
  const b = await m.allocate(2048);
  assert.is(b.base, a.base, 'the freed run is reused');
  assert.equal(await m.read(b.id, 0, 2048), new Uint8Array(2048));
  assert.is(await code(m.read(a.id, 0, 1)), 'UNKNOWN_BLOCK', 'use after free');
  await m.close();
});

api('readers share, a writer excludes, waiting in arrival order', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(4096);
  const order: string[] = [];
  const w1 = await m.acquireWrite(b.id, 0, 1000);
  order.push('w1');
  const r1 = m.acquireRead(b.id, 500, 10).then((p) => { order.push('r1'); return p; });
  const w2 = m.acquireWrite(b.id, 0, 10).then((p) => { order.push('w2'); return p; });
  const r2 = m.acquireRead(b.id, 0, 10).then((p) => { order.push('r2'); return p; });
  const other = await m.acquireRead(b.id, 2048, 10); // no overlap: not held up
  order.push('other');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(order, ['w1', 'other']);
  w1.write(500, new Uint8Array([9]));
  await w1.release();
  const p1 = await r1;
  assert.is(p1.read(0, 1)[0], 9, 'the reader sees the released write');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(order, ['w1', 'other', 'r1'], 'w2 waits for r1, and r2 waits behind w2 (FIFO)');
  await p1.release();
  const p2 = await w2;
  await p2.release();
  await (await r2).release();
  await other.release();
  assert.equal(order, ['w1', 'other', 'r1', 'w2', 'r2']);
  await m.close();
});

api('tryAcquireRead: at once when cached and free, null otherwise', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(4 * 512);
  await m.write(b.id, 0, pattern(2048, 11));
  const r = m.tryAcquireRead(b.id, 100, 900);
  assert.ok(r, 'cached pages, nobody in the way');
  assert.equal(r!.read(), pattern(2048, 11).subarray(100, 1000));
  const r2 = m.tryAcquireRead(b.id, 0, 10);
  assert.ok(r2, 'readers share');
  const w = m.acquireWrite(b.id, 0, 10); // waits behind the readers
  assert.is(m.tryAcquireRead(b.id, 0, 10), null, 'a waiting writer goes first (FIFO)');
  const apart = m.tryAcquireRead(b.id, 1536, 10);
  assert.ok(apart, 'a range the writer does not touch');
  apart!.release();
  r!.release();
  r2!.release();
  await (await w).release();
  await m.close();
  const m2 = await openMemory({ store: m.store, ...small });
  assert.is(m2.tryAcquireRead(b.id, 0, 10), null, 'not cached after reopening');
  const p = await m2.acquireRead(b.id, 0, 10);
  await p.release();
  const again = m2.tryAcquireRead(b.id, 0, 10);
  assert.ok(again, 'cached once read');
  again!.release();
  await m2.close();
});

api('released pointers refuse use; double release is refused', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(100);
  const p = await m.acquireWrite(b.id, 0, 100);
  p.write(0, new Uint8Array([1, 2, 3]));
  await p.release();
  assert.is(await code(p.release()), 'POINTER_RELEASED');
  assert.is(await code(() => p.read()), 'POINTER_RELEASED');
  assert.is(await code(() => p.write(0, new Uint8Array(1))), 'POINTER_RELEASED');
  assert.is(await code(() => p.segments()), 'POINTER_RELEASED');
  assert.equal(await m.read(b.id, 0, 3), new Uint8Array([1, 2, 3]));
  await m.close();
});

api('an aborted write pointer leaves the old contents', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(1024);
  await m.write(b.id, 0, pattern(1024, 3));
  const p = await m.acquireWrite(b.id, 0, 1024);
  p.segments()[0].fill(0xEE);
  p.write(600, new Uint8Array(100).fill(0xDD));
  await p.abort();
  assert.equal(await m.read(b.id, 0, 1024), pattern(1024, 3));
  await m.close();
});

api('bad ids, offsets and sizes: typed errors, nothing changed', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small, capacityBytes: 64 * 512 });
  const b = await m.allocate(1000);
  await m.write(b.id, 0, pattern(1000, 4));
  assert.is(await code(m.read('not-a-guid', 0, 1)), 'INVALID_ARGUMENT');
  assert.is(await code(m.read(crypto.randomUUID(), 0, 1)), 'UNKNOWN_BLOCK');
  assert.is(await code(m.read(b.id, 999, 2)), 'OUT_OF_RANGE');
  assert.is(await code(m.read(b.id, -1, 2)), 'INVALID_ARGUMENT');
  assert.is(await code(m.read(b.id, 1.5, 2)), 'INVALID_ARGUMENT');
  assert.is(await code(m.write(b.id, 990, new Uint8Array(20))), 'OUT_OF_RANGE');
  assert.is(await code(m.write(b.id, 0, [1, 2] as unknown as Uint8Array)), 'INVALID_ARGUMENT');
  assert.is(await code(m.acquireRead(b.id, 0, 0)), 'INVALID_ARGUMENT');
  assert.is(await code(m.allocate(0)), 'INVALID_ARGUMENT');
  assert.is(await code(m.allocate(-5)), 'INVALID_ARGUMENT');
  assert.is(await code(m.allocate(65 * 512)), 'NO_SPACE', 'beyond capacity');
  assert.is(await code(m.allocate(10, { policy: 'nope' })), 'INVALID_ARGUMENT');
  await m.allocate(62 * 512);
  assert.is(await code(m.allocate(512)), 'NO_SPACE', 'address space exhausted');
  assert.equal(await m.read(b.id, 0, 1000), pattern(1000, 4));
  assert.is(m.blocks().length, 2);
  await m.close();
  assert.is(await code(m.read(b.id, 0, 1)), 'CLOSED');
});

api('blocks larger than the cache; storage work runs through the task groups', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small, taskGroups: 2, stripePages: 8 });
  const size = 200 * 512 + 77; // the cache holds 16 pages
  const b = await m.allocate(size);
  const data = pattern(size, 5);
  await m.write(b.id, 0, data);
  assert.equal(await m.read(b.id, 0, size), data);
  assert.is(await code(m.acquireRead(b.id, 0, size)), 'TOO_LARGE');
  // Large writes move a stripe of pages per operation (transfer.ts), in the background once the journal
  // holds them: after a flush, every one of the 25 whole stripes written ran as a scheduled operation.
  await m.flush();
  const st = m.schedulerStats();
  assert.is(st.groups, 2);
  assert.ok(st.completed >= Math.floor(200 / 8), `stage and destage ran as scheduled operations (${st.completed})`);
  await m.close();
});

api('a full device: the write fails with NO_SPACE and nothing stored changes', async () => {
  const store = new MemoryStore({ deviceCapacity: 48 * 1024 });
  const m = await openMemory({ store, ...small });
  const b = await m.allocate(8 * 512);
  const before = pattern(8 * 512, 6);
  await m.write(b.id, 0, before);
  let failed = 0;
  for (let i = 0; i < 40 && failed === 0; i++) {
    const e = await code(m.write(b.id, 0, pattern(8 * 512, 100 + i)));
    if (e === 'NO_SPACE') failed++;
    else if (e !== 'no error') throw new Error(e);
    else before.set(pattern(8 * 512, 100 + i));
  }
  assert.is(failed, 1, 'the journal filled up');
  assert.equal(await m.read(b.id, 0, 8 * 512), before, 'the failed write left the old contents');
});

api('policies chosen by size; write-back pages are durable after flush', async () => {
  const store = new MemoryStore();
  const policies = [
    { name: 'small', maxSize: 1024, writeMode: 'write-back' as const, cachePriority: 3 },
    { name: 'big', maxSize: Infinity, durability: 'disk' as const },
  ];
  let m: Memory = await openMemory({ store, ...small, policies });
  const a = await m.allocate(1000);
  const b = await m.allocate(5000);
  assert.is(a.policy.name, 'small');
  assert.is(b.policy.name, 'big');
  assert.is((await m.allocate(10, { policy: 'big' })).policy.name, 'big');
  await m.write(a.id, 0, pattern(1000, 7));
  assert.ok((await m.space()).cache.dirty > 0, 'write-back leaves dirty pages');
  await m.flush();
  assert.is((await m.space()).cache.dirty, 0);
  await m.close();
  m = await openMemory({ store, ...small, policies });
  assert.equal(await m.read(a.id, 0, 1000), pattern(1000, 7));
  assert.is((await m.header(a.id)).policy.writeMode, 'write-back', 'the policy travels with the header');
  await m.close();
});

api('a data folder: close, reopen, same contents; page size is kept', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-'));
  try {
    let m = await openMemory({ store: dir, pageSize: 1024, flushIntervalMs: 0 });
    const b = await m.allocate(10000);
    await m.write(b.id, 123, pattern(9000, 8));
    await m.close();
    assert.is(await code(openMemory({ store: dir, pageSize: 4096 })), 'INVALID_ARGUMENT');
    m = await openMemory({ store: dir, flushIntervalMs: 0 });
    assert.is(m.pageSize, 1024);
    assert.equal(await m.read(b.id, 123, 9000), pattern(9000, 8));
    await m.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

api('readInto copies into the caller\'s buffer: at once when cached and no writer is in the way, else through read pointers', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...small });
  const b = await m.allocate(6 * 512);
  const data = pattern(6 * 512, 21);
  await m.write(b.id, 0, data);
  const into = new Uint8Array(1000);
  assert.ok(m.tryReadInto(b.id, 300, into), 'cached: the synchronous path');
  assert.equal(into, data.subarray(300, 1300));
  // A writer holding an overlapping range: the synchronous path steps aside; readInto waits for it.
  const w = await m.acquireWrite(b.id, 1024, 10);
  assert.not.ok(m.tryReadInto(b.id, 1000, new Uint8Array(100)));
  w.write(0, pattern(10, 22));
  const reading = m.readInto(b.id, 1000, new Uint8Array(100));
  await w.release();
  await reading;
  const after = new Uint8Array(100);
  await m.readInto(b.id, 1000, after);
  assert.equal(after.subarray(24, 34), pattern(10, 22));
  // More than the cache holds: staged piece by piece, the same bytes.
  const big = await m.allocate(40 * 512);
  const bigData = pattern(40 * 512, 23);
  await m.write(big.id, 0, bigData);
  const all = new Uint8Array(40 * 512 - 7);
  await m.readInto(big.id, 7, all);
  assert.equal(all, bigData.subarray(7));
  assert.is(await code(() => m.tryReadInto(b.id, 6 * 512 - 1, new Uint8Array(2))), 'OUT_OF_RANGE');
  assert.is(m.pointersHeld, 0);
  await m.close();
});

api.run();




// --- model-based fuzz ---------------------------------------------------------------------

type Op =
  | { op: 'alloc'; size: number }
  | { op: 'free'; pick: number }
  | { op: 'write'; pick: number; at: number; len: number; seed: number }
  | { op: 'read'; pick: number; at: number; len: number }
  | { op: 'flush' }
  | { op: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('alloc' as const), size: fc.integer({ min: 1, max: 6000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('free' as const), pick: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('write' as const), pick: fc.nat(), at: fc.nat(), len: fc.integer({ min: 1, max: 3000 }), seed: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('read' as const), pick: fc.nat(), at: fc.nat(), len: fc.integer({ min: 1, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flush' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
);

const fuzz = suite('memory model-based fuzz');

fuzz('random allocate/free/write/read/flush/reopen equal a plain model', async () => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.boolean(), async (ops, writeBack) => {
    const store = new MemoryStore();
    const options = { store, ...small, policies: [{ name: 'p', writeMode: writeBack ? 'write-back' as const : 'write-through' as const }] };
    let m = await openMemory(options);
    const model = new Map<string, Uint8Array>();
    const ids = () => [...model.keys()];
    for (const o of ops) {
      switch (o.op) {
        case 'alloc': {
          const b = await m.allocate(o.size);
          model.set(b.id, new Uint8Array(o.size));
          break;
        }
        case 'free': {
          if (!model.size) break;
          const id = ids()[o.pick % model.size];
          await m.free(id);
          model.delete(id);
          break;
        }
        case 'write': {
          if (!model.size) break;
          const id = ids()[o.pick % model.size];
          const buf = model.get(id)!;
          const at = o.at % buf.length;
          const data = pattern(Math.min(o.len, buf.length - at), o.seed);
          await m.write(id, at, data);
          buf.set(data, at);
          break;
        }
        case 'read': {
          if (!model.size) break;
          const id = ids()[o.pick % model.size];
          const buf = model.get(id)!;
          const at = o.at % buf.length;
          const len = Math.min(o.len, buf.length - at);
          assert.equal(await m.read(id, at, len), buf.subarray(at, at + len));
          break;
        }
        case 'flush':
          await m.flush();
          break;
        case 'reopen':
          await m.close();
          m = await openMemory(options);
          break;
      }
    }
    await m.close();
    m = await openMemory(options);
    assert.equal(m.blocks().map((b) => b.id).sort(), ids().sort());
    for (const [id, buf] of model) assert.equal(await m.read(id, 0, buf.length), buf);
    await m.close();
  }), { numRuns: 150 });
});

fuzz.run();
