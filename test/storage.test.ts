// Storage devices and stores (bindings/storage/).
//
// One behaviour suite takes a store factory and runs against the file store
// (a temp folder), the memory store and a mirrored store of two memory
// stores. Then what is particular to each: memory capacity, the mirrored
// set's health and repair, the fs error mapping.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TwinpageError } from '../bindings/errors.js';
import type { Device, Store } from '../bindings/storage/device.js';
import { MemoryDevice, MemoryStore } from '../bindings/storage/memory.js';
import { MirroredDevice, MirroredStore } from '../bindings/storage/mirrored.js';
import { FileStore, mapFsError, openFileStore } from '../bindings/storage/file.js';

/** The code a promise (or a function that may throw at once) fails with, or 'no error'. */
async function code(work: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof work === 'function' ? work() : work);
    return 'no error';
  } catch (err) {
    if (!(err instanceof TwinpageError)) throw err;
    return err.code;
  }
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);

/** How the shared suite gets a store, and the same store again as after a restart. */
interface StoreFactory {
  make(): Promise<Store>;
  reopen(store: Store): Promise<Store>;
  cleanup(): Promise<void>;
}

// --- one behaviour suite, run against every store ---------------------------

function storeBehaviour(name: string, factory: StoreFactory) {
  const t = suite(`store behaviour (${name})`);
  let store: Store;
  t.before.each(async () => { store = await factory.make(); });
  t.after.each(() => factory.cleanup());

  t('write and read at offsets; the count says what was stored, the rest reads as zero', async () => {
    const d = await store.open('pages');
    assert.is(await d.size(), 0);
    await d.write(0, bytes(100, 1));
    await d.write(60, bytes(70, 2));
    assert.is(await d.size(), 130);

    const whole = new Uint8Array(130);
    assert.is(await d.read(0, whole), 130);
    const expected = bytes(100, 1);
    const merged = new Uint8Array(130);
    merged.set(expected);
    merged.set(bytes(70, 2), 60);
    assert.equal(whole, merged);

    const tail = new Uint8Array(50).fill(0xee);
    assert.is(await d.read(100, tail), 30, 'only 30 bytes are stored from 100');
    assert.equal(tail.subarray(0, 30), merged.subarray(100));
    assert.equal(tail.subarray(30), new Uint8Array(20), 'past the end reads as zero');

    const beyond = new Uint8Array(8).fill(0xee);
    assert.is(await d.read(1000, beyond), 0);
    assert.equal(beyond, new Uint8Array(8));
    assert.is(await d.read(5, new Uint8Array(0)), 0);
    await d.close();
  });

  t('a sparse write far out: the hole reads as zeros and counts as stored', async () => {
    const d = await store.open('sparse');
    const far = 8 * 1024 * 1024;
    await d.write(far, bytes(16, 3));
    assert.is(await d.size(), far + 16);
    const hole = new Uint8Array(4096).fill(1);
    assert.is(await d.read(far / 2, hole), 4096);
    assert.equal(hole, new Uint8Array(4096));
    const end = new Uint8Array(32);
    assert.is(await d.read(far, end), 16);
    assert.equal(end.subarray(0, 16), bytes(16, 3));
    await d.close();
  });

  t('an empty write extends nothing', async () => {
    const d = await store.open('empty');
    await d.write(4096, new Uint8Array(0));
    assert.is(await d.size(), 0);
    await d.close();
  });

  t('truncate shrinks and grows; what was cut reads as zero', async () => {
    const d = await store.open('t');
    await d.write(0, bytes(200, 4));
    await d.truncate(50);
    assert.is(await d.size(), 50);
    await d.truncate(300);
    assert.is(await d.size(), 300);
    const all = new Uint8Array(300);
    assert.is(await d.read(0, all), 300);
    assert.equal(all.subarray(0, 50), bytes(200, 4).subarray(0, 50));
    assert.equal(all.subarray(50), new Uint8Array(250));
    await d.truncate(0);
    assert.is(await d.size(), 0);
    await d.close();
  });

  t('bytes survive close, reopening the store, and open never truncates', async () => {
    const d = await store.open('keep');
    await d.write(10, bytes(90, 5));
    await d.flush();
    await d.close();
    await store.sync();
    const again = await factory.reopen(store);
    assert.ok(await again.exists('keep'));
    const d2 = await again.open('keep');
    assert.is(await d2.size(), 100);
    const got = new Uint8Array(90);
    assert.is(await d2.read(10, got), 90);
    assert.equal(got, bytes(90, 5));
    await d2.close();
  });

  t('two handles on one device see the same bytes; closing one leaves the other open', async () => {
    const a = await store.open('shared');
    const b = await store.open('shared');
    await a.write(0, bytes(10, 6));
    const got = new Uint8Array(10);
    assert.is(await b.read(0, got), 10);
    assert.equal(got, bytes(10, 6));
    await a.close();
    assert.is(await b.size(), 10);
    await b.close();
  });

  t('list, exists, remove, rename', async () => {
    assert.equal(await store.list(), []);
    assert.is(await store.exists('a'), false);
    for (const [n, seed] of [['b', 1], ['a', 2], ['c', 3]] as const) {
      const d = await store.open(n);
      await d.write(0, bytes(8, seed));
      await d.close();
    }
    assert.equal(await store.list(), ['a', 'b', 'c']);
    assert.is(await store.exists('a'), true);

    await store.remove('b');
    await store.remove('b'); // missing is fine
    assert.equal(await store.list(), ['a', 'c']);

    await store.rename('a', 'c'); // replaces c
    await store.sync();
    assert.equal(await store.list(), ['c']);
    const d = await store.open('c');
    const got = new Uint8Array(8);
    await d.read(0, got);
    assert.equal(got, bytes(8, 2), 'c now holds what a held');
    await d.close();

    await store.rename('c', 'd');
    assert.equal(await store.list(), ['d']);
    assert.is(await code(store.rename('nothing', 'e')), 'NOT_FOUND');
    assert.equal(await store.list(), ['d']);
  });

  t('names are plain file names', async () => {
    for (const bad of ['', '.', '..', 'a/b', '../x', 'a\\b', 'a\0b', 42, null]) {
      const n = bad as string;
      assert.is(await code(store.open(n)), 'INVALID_ARGUMENT', `open ${JSON.stringify(bad)}`);
      assert.is(await code(store.exists(n)), 'INVALID_ARGUMENT', `exists ${JSON.stringify(bad)}`);
      assert.is(await code(store.remove(n)), 'INVALID_ARGUMENT', `remove ${JSON.stringify(bad)}`);
    }
    const d = await store.open('ok');
    await d.close();
    assert.is(await code(store.rename('ok', '../escaped')), 'INVALID_ARGUMENT');
    assert.is(await code(store.rename('..', 'x')), 'INVALID_ARGUMENT');
    assert.equal(await store.list(), ['ok']);
  });

  t('bad positions, sizes and buffers are INVALID_ARGUMENT and change nothing', async () => {
    const d = await store.open('args');
    await d.write(0, bytes(4, 7));
    for (const p of [-1, 1.5, NaN, Infinity, 2 ** 53, '3', null]) {
      const pos = p as number;
      assert.is(await code(d.read(pos, new Uint8Array(1))), 'INVALID_ARGUMENT', `read at ${String(p)}`);
      assert.is(await code(d.write(pos, new Uint8Array(1))), 'INVALID_ARGUMENT', `write at ${String(p)}`);
      assert.is(await code(d.truncate(pos)), 'INVALID_ARGUMENT', `truncate to ${String(p)}`);
    }
    const end = Number.MAX_SAFE_INTEGER;
    assert.is(await code(d.write(end, new Uint8Array(2))), 'INVALID_ARGUMENT', 'the end passes the safe integers');
    assert.is(await code(d.read(end, new Uint8Array(2))), 'INVALID_ARGUMENT');
    for (const buf of [[1, 2], new ArrayBuffer(2), new Uint16Array(2), 'ab', undefined]) {
      const b = buf as unknown as Uint8Array;
      assert.is(await code(d.read(0, b)), 'INVALID_ARGUMENT');
      assert.is(await code(d.write(0, b)), 'INVALID_ARGUMENT');
    }
    assert.is(await d.size(), 4);
    const got = new Uint8Array(4);
    await d.read(0, got);
    assert.equal(got, bytes(4, 7));
    await d.close();
  });

  t('use after close is CLOSED; closing twice is fine', async () => {
    const d = await store.open('closed');
    await d.write(0, bytes(4, 8));
    await d.close();
    await d.close();
    assert.is(await code(d.read(0, new Uint8Array(1))), 'CLOSED');
    assert.is(await code(d.write(0, new Uint8Array(1))), 'CLOSED');
    assert.is(await code(d.flush()), 'CLOSED');
    assert.is(await code(d.size()), 'CLOSED');
    assert.is(await code(d.truncate(0)), 'CLOSED');
    const again = await store.open('closed');
    assert.is(await again.size(), 4, 'the bytes are still there');
    await again.close();
  });

  t.run();
}

// File store: a fresh temp folder per test, removed afterwards.
let tempDir = '';
storeBehaviour('file', {
  async make() {
    tempDir = await mkdtemp(join(tmpdir(), 'twinpage-storage-'));
    return openFileStore(join(tempDir, 'data', 'nested'));
  },
  reopen: (store) => openFileStore((store as FileStore).dir),
  cleanup: () => rm(tempDir, { recursive: true, force: true }),
});

storeBehaviour('memory', {
  make: async () => new MemoryStore(),
  reopen: async (store) => store, // the bytes live as long as the store object
  cleanup: async () => {},
});

storeBehaviour('mirrored', {
  make: async () => new MirroredStore([new MemoryStore(), new MemoryStore()]),
  reopen: async (store) => store,
  cleanup: async () => {},
});

// --- memory devices ------------------------------------------------------------

const mem = suite('memory device');

mem('capacity: a write past it is NO_SPACE and stores nothing of it', async () => {
  const d = new MemoryDevice('small', { capacity: 100 });
  await d.write(0, bytes(60, 1));
  assert.is(await code(d.write(50, bytes(51, 2))), 'NO_SPACE');
  assert.is(await d.size(), 60, 'the size did not move');
  const got = new Uint8Array(100);
  assert.is(await d.read(0, got), 60);
  assert.equal(got.subarray(0, 60), bytes(60, 1), 'the stored bytes did not change');
  assert.equal(got.subarray(60), new Uint8Array(40));
  await d.write(40, bytes(60, 3)); // exactly up to the capacity is fine
  assert.is(await d.size(), 100);
  assert.is(await code(d.truncate(101)), 'NO_SPACE');
  assert.is(await d.size(), 100);
});

mem('a store passes its deviceCapacity to every device', async () => {
  const s = new MemoryStore({ deviceCapacity: 10 });
  const d = await s.open('x');
  assert.is(await code(d.write(8, new Uint8Array(3))), 'NO_SPACE');
  await d.write(8, new Uint8Array(2));
});

mem('options are checked, naming the option', async () => {
  for (const bad of [-1, 1.5, NaN, '10', null]) {
    try {
      new MemoryDevice('x', { capacity: bad as number });
      assert.unreachable(`capacity ${String(bad)} was accepted`);
    } catch (err) {
      assert.instance(err, TwinpageError);
      assert.is((err as TwinpageError).code, 'INVALID_ARGUMENT');
      assert.match((err as Error).message, 'capacity');
    }
    assert.is(await code(() => new MemoryStore({ deviceCapacity: bad as number })), 'INVALID_ARGUMENT');
  }
  assert.is(await code(() => new MemoryDevice('a/b')), 'INVALID_ARGUMENT');
  assert.is(new MemoryDevice().capacity, Infinity);
});

mem('grows by doubling through many small writes', async () => {
  const d = new MemoryDevice();
  for (let i = 0; i < 3000; i++) await d.write(i * 7, bytes(7, i));
  assert.is(await d.size(), 21000);
  const got = new Uint8Array(7);
  await d.read(7 * 2999, got);
  assert.equal(got, bytes(7, 2999));
});

mem('reopen gives a fresh handle onto the same bytes', async () => {
  const d = new MemoryDevice('x');
  await d.write(0, bytes(5, 1));
  await d.close();
  const again = d.reopen();
  assert.is(await again.size(), 5);
  await again.write(5, bytes(5, 2));
  assert.is(await d.reopen().size(), 10);
});

mem.run();

// --- mirrored devices --------------------------------------------------------

/** A device that throws IO_ERROR while `broken` is set. */
class FailingDevice implements Device {
  broken = false;
  calls = 0;
  constructor(readonly inner: Device) {}
  get name() { return this.inner.name; }
  #gate() {
    this.calls++;
    if (this.broken) throw TwinpageError.ioError(`${this.name}: injected failure`);
  }
  async read(p: number, into: Uint8Array) { this.#gate(); return this.inner.read(p, into); }
  async write(p: number, data: Uint8Array) { this.#gate(); return this.inner.write(p, data); }
  async flush() { this.#gate(); return this.inner.flush(); }
  async size() { this.#gate(); return this.inner.size(); }
  async truncate(n: number) { this.#gate(); return this.inner.truncate(n); }
  async close() { return this.inner.close(); }
}

const copyBytes = async (d: Device, position: number, n: number) => {
  const got = new Uint8Array(n);
  await d.read(position, got);
  return got;
};

const mirror = suite('mirrored device');

mirror('writes, truncates and flushes reach every copy; reads come from the first', async () => {
  const copies = [new MemoryDevice('p'), new MemoryDevice('p'), new MemoryDevice('p')];
  const m = new MirroredDevice(copies);
  await m.write(100, bytes(50, 1));
  await m.flush();
  for (const c of copies) assert.equal(await copyBytes(c, 100, 50), bytes(50, 1));
  await m.truncate(120);
  for (const c of copies) assert.is(await c.size(), 120);
  assert.is(await m.size(), 120);
  assert.equal(await copyBytes(m, 100, 20), bytes(50, 1).subarray(0, 20));
  assert.equal(m.health().map((h) => h.healthy), [true, true, true]);
});

mirror('readVerified finds a corrupted copy and repairs it from a good one', async () => {
  const copies = [new MemoryDevice('p'), new MemoryDevice('p')];
  const m = new MirroredDevice(copies);
  const good = bytes(64, 2);
  await m.write(0, good);
  await copies[0].write(10, Uint8Array.of(0xde, 0xad)); // rot on the first copy
  const into = new Uint8Array(64);
  const same = (b: Uint8Array) => b.every((x, i) => x === good[i]);
  assert.equal(await m.readVerified(0, into, same), { copy: 1, repaired: [0] });
  assert.equal(into, good);
  assert.equal(await copyBytes(copies[0], 0, 64), good, 'the bad copy was rewritten');
  assert.equal(await m.readVerified(0, into, same), { copy: 0, repaired: [] });
});

mirror('no copy verifies: CORRUPT, and nothing is rewritten', async () => {
  const copies = [new MemoryDevice('p'), new MemoryDevice('p')];
  const m = new MirroredDevice(copies);
  await m.write(0, bytes(16, 3));
  assert.is(await code(m.readVerified(0, new Uint8Array(16), () => false)), 'CORRUPT');
  for (const c of copies) assert.equal(await copyBytes(c, 0, 16), bytes(16, 3));
  assert.equal(m.health().map((h) => h.healthy), [true, true]);
});

mirror('a copy that throws is marked unhealthy and skipped; operations go on', async () => {
  const a = new FailingDevice(new MemoryDevice('a'));
  const b = new FailingDevice(new MemoryDevice('b'));
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(8, 1));
  b.broken = true;
  await m.write(0, bytes(8, 2)); // succeeds on a
  const health = m.health();
  assert.equal(health.map((h) => h.healthy), [true, false]);
  assert.equal(health[0], { name: 'a', healthy: true });
  assert.match(health[1].error ?? '', 'injected failure');

  b.broken = false; // a copy once marked stays out: its bytes lag
  const callsBefore = b.calls;
  await m.write(8, bytes(8, 3));
  await m.flush();
  assert.is(b.calls, callsBefore, 'the unhealthy copy is skipped');
  assert.equal(await copyBytes(b.inner, 0, 8), bytes(8, 1), 'b missed the writes');
  assert.equal(await copyBytes(m, 0, 8), bytes(8, 2));
});

mirror('a read that throws moves on to the next copy', async () => {
  const a = new FailingDevice(new MemoryDevice('a'));
  const b = new FailingDevice(new MemoryDevice('b'));
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(8, 4));
  a.broken = true;
  assert.equal(await copyBytes(m, 0, 8), bytes(8, 4));
  assert.equal(m.health().map((h) => h.healthy), [false, true]);
  const into = new Uint8Array(8);
  assert.equal(await m.readVerified(0, into, () => true), { copy: 1, repaired: [] });
});

mirror('every copy failing: the operation throws; the copies keep what they held', async () => {
  const a = new FailingDevice(new MemoryDevice('a'));
  const b = new FailingDevice(new MemoryDevice('b'));
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(8, 5));
  a.broken = b.broken = true;
  assert.is(await code(m.write(0, bytes(8, 6))), 'IO_ERROR');
  assert.is(await code(m.flush()), 'IO_ERROR');
  assert.is(await code(m.read(0, new Uint8Array(8))), 'IO_ERROR');
  assert.is(await code(m.readVerified(0, new Uint8Array(8), () => true)), 'IO_ERROR');
  a.broken = b.broken = false;
  assert.equal(await copyBytes(m, 0, 8), bytes(8, 5), 'the last copies standing are still read');
});

mirror('the last healthy copy failing throws, and is still read afterwards', async () => {
  const a = new FailingDevice(new MemoryDevice('a'));
  const b = new FailingDevice(new MemoryDevice('b'));
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(8, 7));
  a.broken = true;
  await m.write(0, bytes(8, 8));
  b.broken = true;
  assert.is(await code(m.write(0, bytes(8, 9))), 'IO_ERROR');
  b.broken = false;
  assert.equal(await copyBytes(m, 0, 8), bytes(8, 8));
  assert.equal(m.health().map((h) => h.healthy), [false, true]);
});

mirror('bad arguments and use after close mark no copy', async () => {
  const m = new MirroredDevice([new MemoryDevice('a'), new MemoryDevice('b')]);
  assert.is(await code(m.write(-1, new Uint8Array(1))), 'INVALID_ARGUMENT');
  assert.is(await code(m.read(0, [] as unknown as Uint8Array)), 'INVALID_ARGUMENT');
  assert.is(await code(m.truncate(0.5)), 'INVALID_ARGUMENT');
  assert.is(await code(m.readVerified(0, new Uint8Array(1), 'yes' as unknown as () => boolean)), 'INVALID_ARGUMENT');
  assert.equal(m.health().map((h) => h.healthy), [true, true]);
  await m.close();
  await m.close();
  assert.is(await code(m.write(0, new Uint8Array(1))), 'CLOSED');
  assert.is(await code(m.readVerified(0, new Uint8Array(1), () => true)), 'CLOSED');
  assert.equal(m.health().map((h) => h.healthy), [true, true]);
  assert.is(await code(() => new MirroredDevice([])), 'INVALID_ARGUMENT');
  assert.is(await code(() => new MirroredStore([])), 'INVALID_ARGUMENT');
});

mirror('a mirrored store: each store holds a copy; rename follows where a store lacks the name', async () => {
  const s1 = new MemoryStore();
  const s2 = new MemoryStore();
  const ms = new MirroredStore([s1, s2]);
  const d = await ms.open('pages');
  await d.write(0, bytes(32, 1));
  await d.close();
  for (const s of [s1, s2]) assert.equal(await copyBytes(await s.open('pages'), 0, 32), bytes(32, 1));

  // s2 lost 'j' but holds a stale 'k': the rename leaves no stale 'k' behind.
  await (await s1.open('j')).write(0, bytes(4, 2));
  await (await s2.open('k')).write(0, bytes(4, 3));
  await ms.rename('j', 'k');
  assert.equal(await s1.list(), ['k', 'pages']);
  assert.equal(await s2.list(), ['pages']);
  assert.ok(await ms.exists('k'));
});

mirror('a mirrored store whose open fails on one store throws and leaves no handle open', async () => {
  const good = new MemoryStore();
  let opened: Device | undefined;
  const spy: Store = {
    kind: 'spy',
    open: async (n) => (opened = await good.open(n)),
    exists: (n) => good.exists(n), remove: (n) => good.remove(n), rename: (a, b) => good.rename(a, b),
    list: () => good.list(), sync: () => good.sync(), space: () => good.space(),
  };
  const failing: Store = { ...spy, open: async () => { throw TwinpageError.ioError('no disk'); } };
  assert.is(await code(new MirroredStore([spy, failing]).open('x')), 'IO_ERROR');
  assert.ok(opened);
  assert.is(await code(opened!.size()), 'CLOSED');
});

mirror.run();

// --- file specifics ------------------------------------------------------------

const file = suite('file store');

file('fs errors map to typed errors, keeping the original as cause', () => {
  for (const [fsCode, expected] of [['ENOSPC', 'NO_SPACE'], ['EDQUOT', 'NO_SPACE'], ['EIO', 'IO_ERROR'], ['EACCES', 'IO_ERROR'], ['ENOENT', 'NOT_FOUND']]) {
    const original = Object.assign(new Error(`fake ${fsCode}`), { code: fsCode });
    const err = mapFsError(original, 'write pages');
    assert.instance(err, TwinpageError);
    assert.is(err.code, expected, fsCode);
    assert.is(err.cause, original);
    assert.match(err.message, 'write pages');
  }
  assert.is(mapFsError({ code: 'ENOSPC' }, 'w').code, 'NO_SPACE');
  assert.is(mapFsError({ code: 'EIO' }, 'w').code, 'IO_ERROR');
  assert.is(mapFsError('weird', 'w').code, 'IO_ERROR');
  const typed = TwinpageError.closed('x');
  assert.is(mapFsError(typed, 'w'), typed, 'a TwinpageError passes through');
});

file('the folder is created; list shows only files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-storage-'));
  try {
    const store = await openFileStore(join(dir, 'a', 'b'));
    await (await store.open('pages')).close();
    await mkdir(join(dir, 'a', 'b', 'sub'));
    assert.equal(await store.list(), ['pages']);
    assert.is(await code(openFileStore('')), 'INVALID_ARGUMENT');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

file.run();
