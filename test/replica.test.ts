// The replica record (memory/replica.ts) saves the out-of-sync bitmap and
// the hot write intents as of one moment: after a crash, every page a write
// recorded as out of sync is either in the bitmap on disk or in an extent the
// record still names as hot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryStore, type Device, type Store } from '../bindings/index.js';
import { ReplicaRecord } from '../bindings/memory/replica.js';
import type { Block } from '../bindings/memory/blocks.js';

/** A 64-bit FNV-1a: any checksum will do for the record's own checks here. */
function fnv(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

/** `store`, whose device `name` waits for `gate()` before each write (when it gives a promise), or fails it (when it gives an Error). */
function gated(store: Store, name: string, gate: () => Promise<void> | Error | null, started: () => void = () => {}): Store {
  const device = (d: Device): Device => ({
    name: d.name,
    read: (at, into) => d.read(at, into),
    write: async (at, data) => {
      const g = d.name === name ? gate() : null;
      if (g instanceof Error) throw g;
      if (g) { started(); await g; }
      return d.write(at, data);
    },
    flush: () => d.flush(),
    size: () => d.size(),
    truncate: (n) => d.truncate(n),
    close: () => d.close(),
  });
  return {
    kind: store.kind,
    open: async (n) => device(await store.open(n)),
    exists: (n) => store.exists(n),
    remove: (n) => store.remove(n),
    rename: (from, to) => store.rename(from, to),
    list: () => store.list(),
    sync: () => store.sync(),
    space: () => store.space(),
  };
}

/** A copy of a store's bytes as they are now: what a crash (SIGKILL) would leave. */
async function snapshot(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const name of await store.list()) {
    const from = await store.open(name);
    const bytes = new Uint8Array(await from.size());
    await from.read(0, bytes);
    await (await copy.open(name)).write(0, bytes);
  }
  return copy;
}

test('an extent retired while a save writes the bitmap stays named by that save: its pages, recorded after the bitmap was taken, are not lost in a crash', async () => {
  const store = new MemoryStore();
  let gate: Promise<void> | null = null;
  let started!: () => void;
  let blocked = new Promise<void>((r) => { started = r; });
  const blocks = () => [{ id: 'b', base: 0, length: 16 * 512, pages: 16, policy: { writeMode: 'write-through' }, generation: 1 }] as unknown as Block[];
  const r = await ReplicaRecord.load(gated(store, 'bitmap', () => gate, () => started()), fnv, blocks, undefined);
  r.configureIntents({ extentPages: 4, maxExtents: 1 });
  // Extent 0 (pages 0-3) hot; page 0 written alone and recorded.
  await r.intents.cover([0]);
  r.outOfSync.add(0);
  r.intents.done([0]);
  await r.save();
  // A save begins (page 1 to record) and waits in its bitmap write.
  r.outOfSync.add(1);
  let open!: () => void;
  gate = new Promise<void>((res) => { open = res; });
  const first = r.save();
  await blocked;
  // Meanwhile a write to page 2, in the hot extent 0: recorded, done; then a write in
  // extent 2 turns it hot, which retires extent 0 (at most one hot) and asks for a save.
  assert.is(r.intents.cover([2]), undefined, 'extent 0 is hot and saved: no wait');
  r.outOfSync.add(2);
  r.intents.done([2]);
  void r.intents.cover([8]);
  // The first save ends; the second is stopped in its bitmap write; the process dies.
  blocked = new Promise<void>((res) => { started = res; });
  gate = new Promise<void>(() => {});
  open();
  await first;
  const crashed = await snapshot(store);
  const again = await ReplicaRecord.load(crashed, fnv, blocks, undefined);
  for (const page of [0, 1, 2]) assert.ok(again.outOfSync.has(page), `page ${page} is on the record after the crash`);
});

const blocks64 = () => [{ id: 'b', base: 0, length: 64 * 512, pages: 64, policy: { writeMode: 'write-through' }, generation: 1 }] as unknown as Block[];

test('a write intent waiting for a save when the record closes fails (CLOSED): nothing is written on a promise the record no longer keeps', async () => {
  const store = new MemoryStore();
  let gate: Promise<void> | null = null;
  let started!: () => void;
  const blocked = new Promise<void>((res) => { started = res; });
  const r = await ReplicaRecord.load(gated(store, 'bitmap', () => gate, () => started()), fnv, blocks64, undefined);
  r.configureIntents({ extentPages: 4, maxExtents: 4 });
  r.outOfSync.add(20);
  let open!: () => void;
  gate = new Promise<void>((res) => { open = res; });
  const first = r.save();
  await blocked;
  const intent = r.intents.cover([8])!; // queued behind the save under way
  const closing = r.close();
  gate = null;
  open();
  await first;
  let code = '';
  await intent.catch((err: { code?: string }) => { code = err.code ?? ''; });
  assert.is(code, 'CLOSED');
  await closing;
});

test('a save under way when a resync learns what the partner lacks stores the bitmap and "known" of one moment', async () => {
  const store = new MemoryStore();
  let gate: Promise<void> | null = null;
  let started!: () => void;
  const blocked = new Promise<void>((res) => { started = res; });
  const r = await ReplicaRecord.load(gated(store, 'bitmap', () => gate, () => started()), fnv, blocks64, undefined);
  r.configureIntents({ extentPages: 4, maxExtents: 4 });
  r.outOfSync.forget();
  r.outOfSync.add(30);
  let open!: () => void;
  gate = new Promise<void>((res) => { open = res; });
  const first = r.save();
  await blocked;
  // A full compare marks what differs, then trusts the record from here on (Resync.#compare).
  r.outOfSync.add(40);
  r.outOfSync.learn();
  gate = new Promise<void>(() => {}); // the next save never ends: the process dies in it
  open();
  await first;
  void r.save();
  const crashed = await ReplicaRecord.load(await snapshot(store), fnv, blocks64, undefined);
  assert.ok(!crashed.outOfSync.known || crashed.outOfSync.has(40), 'a record trusted after the crash names page 40');
});

test.run();
