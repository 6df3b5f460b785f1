// The replica record (memory/replica.ts) saves the out-of-sync bitmap and
// the hot write intents as of one moment: after a crash, every page a write
// recorded as out of sync is either in the bitmap on disk or in an extent the
// record still names as hot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryStore, type Device, type Store } from '../bindings/index.js';
import { snapshot, storeWith } from './helpers.js';
import { ReplicaRecord, inspectReplica } from '../bindings/memory/replica.js';
import type { Block } from '../bindings/memory/blocks.js';

/** A 64-bit FNV-1a: any checksum will do for the record's own checks here. */
function fnv(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

/**
 * The bitmap writes of a record (to the device `device`: the chunks, or
 * their checksums), held at will: `hold()` stops the next one until
 * `release()` (`stopped` resolves once one waits), `hang()` stops every
 * later one for good (the process dies in that save).
 */
class BitmapGate {
  readonly #device: string;
  constructor(device: 'bitmap' | 'bitmap.sums' = 'bitmap') { this.#device = device; }
  #gate: Promise<void> | null = null;
  #release: () => void = () => {};
  #started: () => void = () => {};
  stopped: Promise<void> = Promise.resolve();

  /** `store`, its `bitmap` device's writes going through this gate. */
  store(store: Store): Store {
    return storeWith(store, (d: Device): Device => ({
      name: d.name,
      read: (at, into) => d.read(at, into),
      write: async (at, data) => {
        const g = d.name === this.#device ? this.#gate : null;
        if (g) { this.#started(); await g; }
        return d.write(at, data);
      },
      flush: () => d.flush(),
      size: () => d.size(),
      truncate: (n) => d.truncate(n),
      close: () => d.close(),
    }));
  }

  hold(): void {
    this.stopped = new Promise<void>((res) => { this.#started = res; });
    this.#gate = new Promise<void>((res) => { this.#release = res; });
  }

  /** Lets the held write go; later ones go too, unless `hang()` came first. */
  release(then: 'open' | 'hang' = 'open'): void {
    const release = this.#release;
    this.#gate = then === 'hang' ? new Promise<void>(() => {}) : null;
    release();
  }
}

const blocksOf = (pages: number) => () => [{ id: 'b', base: 0, length: pages * 512, pages, policy: { writeMode: 'write-through' }, generation: 1 }] as unknown as Block[];

/** A record on `store` through `gate`, with intents of 4 pages, at most `maxExtents` hot. */
async function record(store: MemoryStore, gate: BitmapGate, blocks: () => Block[], maxExtents: number): Promise<ReplicaRecord> {
  const r = await ReplicaRecord.load(gate.store(store), fnv, blocks, undefined);
  r.configureIntents({ extentPages: 4, maxExtents });
  return r;
}

/** Starts a save of `r`; resolves once it is stopped in its bitmap write, with the save (`gate.release` lets it go on). */
async function saveHeld(r: ReplicaRecord, gate: BitmapGate): Promise<{ save: Promise<void> }> {
  gate.hold();
  const save = r.save();
  await gate.stopped;
  return { save };
}

test('an extent retired while a save writes the bitmap stays named by that save: its pages, recorded after the bitmap was taken, are not lost in a crash', async () => {
  const store = new MemoryStore();
  const gate = new BitmapGate();
  const blocks = blocksOf(16);
  const r = await record(store, gate, blocks, 1);
  // Extent 0 (pages 0-3) hot; page 0 written alone and recorded.
  await r.intents.cover([0]);
  r.outOfSync.add(0);
  r.intents.done([0]);
  await r.save();
  // A save begins (page 1 to record) and waits in its bitmap write.
  r.outOfSync.add(1);
  const { save: first } = await saveHeld(r, gate);
  // Meanwhile a write to page 2, in the hot extent 0: recorded, done; then a write in
  // extent 2 turns it hot, which retires extent 0 (at most one hot) and asks for a save.
  assert.is(r.intents.cover([2]), undefined, 'extent 0 is hot and saved: no wait');
  r.outOfSync.add(2);
  r.intents.done([2]);
  void r.intents.cover([8]);
  // The first save ends; the second is stopped in its bitmap write; the process dies.
  gate.release('hang');
  await first;
  const again = await ReplicaRecord.load(await snapshot(store), fnv, blocks, undefined);
  for (const page of [0, 1, 2]) assert.ok(again.outOfSync.has(page), `page ${page} is on the record after the crash`);
});

test('a write intent waiting for a save when the record closes fails (CLOSED): nothing is written on a promise the record no longer keeps', async () => {
  const gate = new BitmapGate();
  const r = await record(new MemoryStore(), gate, blocksOf(64), 4);
  r.outOfSync.add(20);
  const { save: first } = await saveHeld(r, gate);
  const intent = r.intents.cover([8])!; // queued behind the save under way
  const closing = r.close();
  gate.release();
  await first;
  let code = '';
  await intent.catch((err: { code?: string }) => { code = err.code ?? ''; });
  assert.is(code, 'CLOSED');
  await closing;
});

test('a save under way when a resync learns what the partner lacks stores the bitmap and "known" of one moment', async () => {
  const store = new MemoryStore();
  const gate = new BitmapGate();
  const blocks = blocksOf(64);
  const r = await record(store, gate, blocks, 4);
  r.outOfSync.forget();
  r.outOfSync.add(30);
  const { save: first } = await saveHeld(r, gate);
  // A full compare marks what differs, then trusts the record from here on (Resync.#compare).
  r.outOfSync.add(40);
  r.outOfSync.learn();
  gate.release('hang'); // the next save never ends: the process dies in it
  await first;
  void r.save();
  const crashed = await ReplicaRecord.load(await snapshot(store), fnv, blocks, undefined);
  assert.ok(!crashed.outOfSync.known || crashed.outOfSync.has(40), 'a record trusted after the crash names page 40');
});

test('a chunk a crash cut short between its bytes and its checksum counts whole as out of sync (its pages in blocks): the rest of the record is still trusted, and the next save mends it', async () => {
  const CHUNK = 32768;
  // A block over chunk 0 and half of chunk 1; chunk 2 is outside every block.
  const blocks = blocksOf(CHUNK + CHUNK / 2);
  for (const torn of [1, 2]) {
    const store = new MemoryStore();
    const gate = new BitmapGate('bitmap.sums');
    const r = await record(store, gate, blocks, 4);
    // Pages in chunks 0, 1 and 2, saved whole.
    r.outOfSync.add(5);
    r.outOfSync.add(CHUNK + 7);
    r.outOfSync.add(2 * CHUNK + 3);
    await r.save();
    // Chunk `torn` changes; its save writes the chunk's bytes, and the process dies before their checksum.
    r.outOfSync.add(torn * CHUNK + 9);
    await saveHeld(r, gate); // never let go: the process died there
    const crashed = await snapshot(store);
    const again = await ReplicaRecord.load(crashed, fnv, blocks, undefined);
    assert.equal(again.damage, [], 'a crash, not damage');
    assert.ok(again.outOfSync.known, 'the record is still trusted');
    if (torn === 1) {
      assert.is(again.outOfSync.size, 1 + CHUNK / 2 + 1, 'page 5, the pages of chunk 1 in the block, and page 2 * CHUNK + 3 as saved');
      for (const page of [5, CHUNK, CHUNK + 7, CHUNK + 9, CHUNK + CHUNK / 2 - 1]) assert.ok(again.outOfSync.has(page), `page ${page} is on the record`);
      assert.not.ok(again.outOfSync.has(CHUNK + CHUNK / 2), 'no page of chunk 1 outside the block');
    } else {
      assert.equal(again.outOfSync.sorted(), [5, CHUNK + 7], 'chunks 0 and 1 as saved; nothing of chunk 2, outside every block');
    }
    // `twinpage inspect` (which knows no blocks) counts the whole chunk, as the load does in blocks.
    const seen = (await inspectReplica(crashed, fnv, undefined))!;
    assert.ok(seen.problems.some((p) => p.startsWith(`bitmap chunk ${torn} fails its checksum (cut short by the crash`)), JSON.stringify(seen.problems));
    assert.ok(seen.runs!.some(([first, count]) => first <= torn * CHUNK && first + count >= (torn + 1) * CHUNK), JSON.stringify(seen.runs));
    // The next save writes the torn chunk again: closed cleanly and opened, it checks out.
    await again.close();
    const mended = await ReplicaRecord.load(crashed, fnv, blocks, undefined);
    assert.equal(mended.damage, [], `chunk ${torn} was written again`);
    assert.equal(mended.outOfSync.sorted(), again.outOfSync.sorted());
  }
});

test('after a clean close, a chunk that fails its checksum is damage: the record is not trusted', async () => {
  const CHUNK = 32768;
  const blocks = blocksOf(2 * CHUNK);
  const store = new MemoryStore();
  const r = await record(store, new BitmapGate(), blocks, 4);
  r.outOfSync.add(CHUNK + 7);
  await r.close();
  const bits = await store.open('bitmap');
  await bits.write(CHUNK / 8 + 100, new Uint8Array([0x10]));
  await bits.flush();
  const damaged = await ReplicaRecord.load(store, fnv, blocks, undefined);
  assert.ok(damaged.damage.some((d) => d.what === 'bitmap chunk 1 fails its checksum'), JSON.stringify(damaged.damage));
  assert.not.ok(damaged.outOfSync.known);
});

test.run();
