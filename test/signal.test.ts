// Giving up a wait (acquireRead / acquireWrite with an AbortSignal) and
// `await using` (Symbol.asyncDispose) on memories, pointers and the
// reconnecting link.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, MemoryStore, type Device, type Memory } from '../bindings/index.js';
import { pattern } from './data.js';

const PS = 512;
const opts = { pageSize: PS, flushIntervalMs: 0 };

/** Rejects with the error `promise` rejects with, or fails when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void promise.then(() => { done = true; }, () => { done = true; });
  await new Promise((r) => setTimeout(r, ms));
  return done;
}

function isAbortError(err: Error): void {
  assert.ok(err instanceof DOMException, `a DOMException, got ${String(err)}`);
  assert.is(err.name, 'AbortError');
}

test('an aborted wait for a range rejects with AbortError and leaves the range free: a reader queued behind it goes at once', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...opts, cacheBytes: 16 * PS });
  const b = await m.allocate(4 * PS);
  await m.write(b.id, 0, pattern(2 * PS, 1));
  const r1 = await m.acquireRead(b.id, 0, 2 * PS);
  // A writer waits for the reader; a second reader, arriving after it, waits behind the writer (arrival order).
  const ac = new AbortController();
  const writer = m.acquireWrite(b.id, PS, PS, { signal: ac.signal });
  const r2 = m.acquireRead(b.id, PS, PS);
  assert.not.ok(await settlesWithin(r2, 30), 'the second reader waits behind the writer');
  assert.is(m.pointersHeld, 3);
  ac.abort();
  isAbortError(await rejection(writer));
  assert.is(m.core.conflicts[0].size, 2, 'the writer\'s conflict-table entry is gone: the two readers\' remain');
  assert.ok(await settlesWithin(r2, 30), 'the second reader goes once the writer gave up');
  const p2 = await r2;
  assert.equal(p2.read(), pattern(2 * PS, 1).subarray(PS));
  assert.is(m.pointersHeld, 2);
  await p2.release();
  await r1.release();
  assert.is(m.pointersHeld, 0);
  assert.is(m.core.conflicts[0].size, 0);
  assert.is(m.core.pages.totals().pinned, 0, 'no frame stays pinned');
  // The range is free: a writer takes it at once, and its write lands.
  const w = m.tryAcquireRead(b.id, PS, PS);
  assert.ok(w, 'nothing in the way');
  await w!.release();
  await m.write(b.id, PS, pattern(PS, 2));
  assert.equal(await m.read(b.id, PS, PS), pattern(PS, 2));
  await m.close();
});

test('an already-aborted signal rejects at once, even with the pages cached and the range free; a custom reason is the rejection', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...opts, cacheBytes: 16 * PS });
  const b = await m.allocate(PS);
  await m.write(b.id, 0, pattern(PS, 3));
  isAbortError(await rejection(m.acquireRead(b.id, 0, PS, { signal: AbortSignal.abort() })));
  isAbortError(await rejection(m.acquireWrite(b.id, 0, PS, { signal: AbortSignal.abort() })));
  const why = new Error('shutting down');
  assert.is(await rejection(m.acquireRead(b.id, 0, PS, { signal: AbortSignal.abort(why) })), why);
  assert.is(m.pointersHeld, 0);
  const code = (await rejection(m.acquireRead(b.id, 0, PS, { signal: 'soon' as unknown as AbortSignal })) as { code?: string }).code;
  assert.is(code, 'INVALID_ARGUMENT');
  // A signal that never aborts changes nothing.
  const p = await m.acquireRead(b.id, 0, PS, { signal: new AbortController().signal });
  assert.equal(p.read(), pattern(PS, 3));
  await p.release();
  await m.close();
});

test('an aborted wait for cache frames gives up its place: a smaller acquire behind it goes at once', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...opts, cacheBytes: 4 * PS });
  const a = await m.allocate(3 * PS);
  const b = await m.allocate(2 * PS);
  const c = await m.allocate(PS);
  const held = await m.acquireRead(a.id, 0, 3 * PS); // 3 of the 4 frames
  const ac = new AbortController();
  const big = m.acquireRead(b.id, 0, 2 * PS, { signal: ac.signal }); // needs 2: waits
  const small = m.acquireRead(c.id, 0, PS); // needs 1, but waits behind the first in line
  assert.not.ok(await settlesWithin(small, 30), 'frames are handed out in arrival order');
  ac.abort();
  isAbortError(await rejection(big));
  assert.ok(await settlesWithin(small, 30), 'the waiter behind goes once the first gave up');
  await (await small).release();
  await held.release();
  assert.is(m.pointersHeld, 0);
  assert.is(m.core.pages.totals().pinned, 0);
  // Every frame can be had again.
  const all = await m.acquireRead(a.id, 0, 3 * PS);
  await all.release();
  await m.close();
});

/** A MemoryStore whose page reads take `delayMs` while `slow` is set. */
class SlowStore extends MemoryStore {
  slow = false;
  override async open(name: string): Promise<Device> {
    const d = await super.open(name);
    const store = this;
    if (name !== 'pages') return d;
    return new Proxy(d, {
      get(target, key, receiver) {
        if (key === 'read') {
          return async (position: number, into: Uint8Array) => {
            if (store.slow) await new Promise((r) => setTimeout(r, 80));
            return target.read(position, into);
          };
        }
        const v = Reflect.get(target, key, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
}

test('aborted while staging an overwrite: the pages staged as zeros are dropped, the stored bytes read back', async () => {
  const store = new SlowStore();
  let m: Memory = await openMemory({ store, ...opts, cacheBytes: 16 * PS });
  const b = await m.allocate(3 * PS);
  await m.write(b.id, 0, pattern(3 * PS, 4));
  await m.close();
  m = await openMemory({ store, ...opts, cacheBytes: 16 * PS });
  store.slow = true;
  // Pages 0 and 1 are covered whole (staged as zeros, not read); page 2 is read: slowly.
  const ac = new AbortController();
  const w = m.acquireWrite(b.id, 0, 2 * PS + 100, { overwrite: true, signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  isAbortError(await rejection(w));
  assert.is(m.pointersHeld, 0);
  assert.is(m.core.conflicts[0].size, 0);
  assert.is(m.core.pages.totals().pinned, 0, 'the frames it staged are unpinned');
  store.slow = false;
  assert.equal(await m.read(b.id, 0, 3 * PS), pattern(3 * PS, 4), 'nothing of the aborted pointer shows');
  await m.close();
});

test('await using: a read pointer is released, a write pointer not released is aborted, the memory closed', async () => {
  const store = new MemoryStore();
  let id = '';
  let memory: Memory;
  {
    await using m = await openMemory({ store, ...opts, cacheBytes: 16 * PS });
    memory = m;
    const b = await m.allocate(2 * PS);
    id = b.id;
    await m.write(b.id, 0, pattern(2 * PS, 5));
    {
      await using r = await m.acquireRead(b.id, 0, PS);
      assert.equal(r.read(0, 4), pattern(2 * PS, 5).subarray(0, 4));
      assert.is(m.pointersHeld, 1);
    }
    assert.is(m.pointersHeld, 0, 'the read pointer was released at the end of its scope');
    try {
      await using w = await m.acquireWrite(b.id, 0, PS);
      w.write(0, pattern(PS, 6));
      throw new Error('something failed mid-write');
    } catch (err) {
      assert.is((err as Error).message, 'something failed mid-write');
    }
    assert.is(m.pointersHeld, 0);
    assert.equal(await m.read(b.id, 0, PS), pattern(2 * PS, 5).subarray(0, PS), 'the write pointer was aborted, not committed');
    {
      await using w = await m.acquireWrite(b.id, PS, PS);
      w.write(0, pattern(PS, 7));
      await w.release(); // released: the disposal does nothing more
    }
  }
  let code = '';
  try { memory.blocks(); } catch (err) { code = (err as { code: string }).code; }
  assert.is(code, 'CLOSED', 'the memory was closed at the end of its scope');
  const again = await openMemory({ store, ...opts, cacheBytes: 16 * PS });
  assert.equal(await again.read(id, PS, PS), pattern(PS, 7));
  await again.close();
});

test('Symbol.asyncDispose is the key where the runtime has it', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...opts, cacheBytes: 16 * PS });
  assert.type((m as unknown as Record<symbol, unknown>)[Symbol.asyncDispose], 'function');
  await m[Symbol.asyncDispose]();
  await m[Symbol.asyncDispose](); // twice is fine, as close()
});

test.run();
