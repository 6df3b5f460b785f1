// One behaviour suite for every store (a data folder, memory), and the
// mirrored set's failover and repair.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { constants } from 'node:fs';
import { mkdtemp, open, readdir, readFile, readlink, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryDevice, MemoryStore, MirroredDevice, TwinpageError, type Device, type Store } from '../bindings/index.js';
import { mapFsError, openFileStore } from '../bindings/storage/file.js';

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

const bytes = (...v: number[]) => Uint8Array.from(v);

function storeSuite(name: string, make: () => Promise<{ store: Store; done: () => Promise<void> }>) {
  const t = suite(`store behaviour (${name})`);

  t('read and write at offsets; past the end reads zero and says how much was there', async () => {
    const { store, done } = await make();
    const d = await store.open('a');
    await d.write(10, bytes(1, 2, 3));
    assert.is(await d.size(), 13);
    const buf = new Uint8Array(8).fill(9);
    assert.is(await d.read(8, buf), 5);
    assert.equal(buf, bytes(0, 0, 1, 2, 3, 0, 0, 0));
    await d.write(1 << 20, bytes(7));
    assert.is(await d.size(), (1 << 20) + 1);
    await d.truncate(11);
    assert.is(await d.size(), 11);
    assert.is(await d.read(10, buf), 1);
    assert.is(buf[0], 1);
    await d.flush();
    await d.close();
    await done();
  });

  t('bytes survive close and reopen; list, exists, rename, remove', async () => {
    const { store, done } = await make();
    const d = await store.open('x');
    await d.write(0, bytes(5, 6));
    await d.close();
    const again = await store.open('x');
    const buf = new Uint8Array(2);
    await again.read(0, buf);
    assert.equal(buf, bytes(5, 6), 'reopening never truncates');
    await again.close();
    assert.ok(await store.exists('x'));
    await store.rename('x', 'y');
    assert.not.ok(await store.exists('x'));
    assert.ok((await store.list()).includes('y'));
    await store.remove('y');
    await store.remove('y'); // missing is fine
    assert.not.ok(await store.exists('y'));
    await store.sync();
    await done();
  });

  t('bad names, positions and buffers; use after close', async () => {
    const { store, done } = await make();
    for (const bad of ['', '..', 'a/b', 'a\\b', 'nul\0']) assert.is(await code(store.open(bad)), 'INVALID_ARGUMENT', JSON.stringify(bad));
    const d = await store.open('z');
    assert.is(await code(d.read(-1, new Uint8Array(1))), 'INVALID_ARGUMENT');
    assert.is(await code(d.write(1.5, new Uint8Array(1))), 'INVALID_ARGUMENT');
    assert.is(await code(d.write(0, [1] as unknown as Uint8Array)), 'INVALID_ARGUMENT');
    assert.is(await code(d.truncate(Number.MAX_SAFE_INTEGER + 2)), 'INVALID_ARGUMENT');
    await d.close();
    assert.is(await code(d.read(0, new Uint8Array(1))), 'CLOSED');
    assert.is(await code(d.write(0, new Uint8Array(1))), 'CLOSED');
    await done();
  });

  t.run();
}

storeSuite('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-dev-'));
  return { store: await openFileStore(join(dir, 'nested', 'store')), done: () => rm(dir, { recursive: true, force: true }) };
});
storeSuite('memory', async () => ({ store: new MemoryStore(), done: async () => {} }));

const file = suite('file device');

file("flush() is an fdatasync of the device's file, and resolves only once it is done", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-dev-'));
  const store = await openFileStore(join(dir, 'store'));
  const d = await store.open('a');
  await d.write(0, bytes(1, 2, 3));
  // Every FileHandle's datasync, watched: a flush must call it and wait for it.
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: (this: FileHandle) => Promise<void> };
  await probe.close();
  const real = proto.datasync;
  const done: number[] = [];
  proto.datasync = async function (this: FileHandle) {
    await new Promise((r) => setTimeout(r, 20));
    await real.call(this);
    done.push(this.fd);
  };
  try {
    await d.flush();
    assert.is(done.length, 1, 'one fdatasync, finished before flush() resolved');
    await d.write(3, bytes(4));
    await d.flush();
    assert.is(done.length, 2, 'and again for the next flush');
  } finally {
    proto.datasync = real;
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

file('a device opened for durable writes is opened O_DSYNC: its flush needs no fdatasync, but after a truncate it does one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-dev-'));
  const store = await openFileStore(join(dir, 'store'));
  const plain = await store.open('plain');
  /** The open flags of the descriptor open on `path` (Linux: /proc/self/fdinfo). */
  const flagsOf = async (path: string): Promise<number[]> => {
    const out: number[] = [];
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (target !== path) continue;
      const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
      out.push(parseInt(/^flags:\s*([0-7]+)/m.exec(info)![1], 8));
    }
    return out;
  };
  const linux = process.platform === 'linux';
  const journalPath = join(dir, 'store', 'journal');
  const dsyncOf = async (path: string) => (await flagsOf(path)).map((f) => (f & constants.O_DSYNC) !== 0);
  const fresh = await store.open('journal', { durableWrites: true }); // created
  if (linux) assert.equal(await dsyncOf(journalPath), [true], 'the journal file, created, is open once, O_DSYNC');
  await fresh.close();
  const d = await store.open('journal', { durableWrites: true }); // opened again
  // Where the platform has no O_DSYNC (Windows), the hint changes nothing and flush does the work.
  const dsync = typeof constants.O_DSYNC === 'number';
  assert.is(d.durableWrites, dsync);
  const calls: number[] = [];
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: (this: FileHandle) => Promise<void> };
  await probe.close();
  const real = proto.datasync;
  proto.datasync = async function (this: FileHandle) {
    calls.push(this.fd);
    return real.call(this);
  };
  try {
    if (linux) {
      assert.equal(await dsyncOf(journalPath), [true], 'the journal file, opened again, is open once, O_DSYNC');
      assert.equal(await dsyncOf(join(dir, 'store', 'plain')), [false], 'other devices are not');
    }
    await d.write(0, bytes(1, 2, 3));
    await d.flush();
    assert.is(calls.length, dsync ? 0 : 1, 'each write was durable already: no fdatasync');
    const before = calls.length;
    await d.truncate(8192);
    await d.flush();
    assert.is(calls.length, before + 1, 'a truncate is not covered by O_DSYNC: the next flush is an fdatasync');
    await d.flush();
    assert.is(calls.length, before + (dsync ? 1 : 2), 'and only that one');
    const plainBefore = calls.length;
    await plain.write(0, bytes(9));
    await plain.flush();
    assert.is(calls.length, plainBefore + 1, "a plain device's flush is an fdatasync");
    const back = new Uint8Array(3);
    await d.read(0, back);
    assert.equal([...back], [1, 2, 3]);
  } finally {
    proto.datasync = real;
    await d.close();
    await plain.close();
    await rm(dir, { recursive: true, force: true });
  }
});

file.run();

const mirror = suite('mirrored set and errors');

/** A device that fails every operation once `broken` is set. */
class Breakable implements Device {
  broken = false;
  constructor(readonly inner: Device) {}
  get name() { return this.inner.name; }
  #go<T>(f: () => Promise<T>): Promise<T> { return this.broken ? Promise.reject(TwinpageError.ioError('broken')) : f(); }
  read(p: number, b: Uint8Array) { return this.#go(() => this.inner.read(p, b)); }
  write(p: number, b: Uint8Array) { return this.#go(() => this.inner.write(p, b)); }
  flush() { return this.#go(() => this.inner.flush()); }
  size() { return this.#go(() => this.inner.size()); }
  truncate(n: number) { return this.#go(() => this.inner.truncate(n)); }
  close() { return this.inner.close(); }
}

mirror('writes reach every copy; a bad copy is found by verification and repaired', async () => {
  const a = new MemoryDevice('a');
  const b = new MemoryDevice('b');
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(1, 2, 3, 4));
  await a.write(1, bytes(99));
  const buf = new Uint8Array(4);
  const r = await m.readVerified(0, buf, (x) => x[1] === 2);
  assert.equal(buf, bytes(1, 2, 3, 4));
  assert.equal(r, { copy: 1, repaired: [0] });
  const check = new Uint8Array(4);
  await a.read(0, check);
  assert.equal(check, bytes(1, 2, 3, 4), 'copy a repaired');
  assert.is(await code(m.readVerified(0, buf, () => false)), 'CORRUPT');
});

mirror('a failing copy is dropped and the set goes on; all failing fails', async () => {
  const a = new Breakable(new MemoryDevice('a'));
  const b = new Breakable(new MemoryDevice('b'));
  const m = new MirroredDevice([a, b]);
  await m.write(0, bytes(1));
  a.broken = true;
  await m.write(1, bytes(2));
  await m.flush();
  const buf = new Uint8Array(2);
  await m.read(0, buf);
  assert.equal(buf, bytes(1, 2));
  assert.equal(m.health().map((h) => h.healthy), [false, true]);
  b.broken = true;
  assert.is(await code(m.write(0, bytes(3))), 'IO_ERROR');
});

mirror('a full memory device refuses with NO_SPACE and keeps what it had', async () => {
  const store = new MemoryStore({ deviceCapacity: 8 });
  const d = await store.open('d');
  await d.write(0, bytes(1, 2, 3, 4, 5, 6, 7, 8));
  assert.is(await code(d.write(4, bytes(9, 9, 9, 9, 9))), 'NO_SPACE');
  const buf = new Uint8Array(8);
  await d.read(0, buf);
  assert.equal(buf, bytes(1, 2, 3, 4, 5, 6, 7, 8));
});

mirror('fs errors map to stable codes', () => {
  assert.is(mapFsError(Object.assign(new Error('x'), { code: 'ENOSPC' }), 'w').code, 'NO_SPACE');
  assert.is(mapFsError(Object.assign(new Error('x'), { code: 'EDQUOT' }), 'w').code, 'NO_SPACE');
  assert.is(mapFsError(Object.assign(new Error('x'), { code: 'EIO' }), 'w').code, 'IO_ERROR');
  assert.is(mapFsError(Object.assign(new Error('x'), { code: 'ENOENT' }), 'w').code, 'NOT_FOUND');
});

mirror.run();
