// Damage found on one node of a pair is taken from the other: a secondary's
// damaged pages are resynced from its primary, a primary's are read back
// from its secondary (read repair). Nothing damaged is served meanwhile.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, MemoryStore, type MirroredMemory } from '../bindings/index.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { pattern } from './data.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 64 * PS, flushIntervalMs: 0 };

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Flips the checksum entry of `page` in a store's sums (format version 2: 31 entries per 512-byte sector after a 16-byte head). */
async function flipChecksum(store: MemoryStore, page: number): Promise<void> {
  const sums = await store.open('sums');
  const at = Math.floor(page / 31) * 512 + 16 + (page % 31) * 16;
  const b = new Uint8Array(1);
  await sums.read(at, b);
  b[0] ^= 0xFF;
  await sums.write(at, b);
  await sums.close();
}

async function pair(pStore: MemoryStore, sStore: MemoryStore) {
  const [ta, tb] = inProcessPair();
  const p = await openMemory({ store: pStore, ...opts, mirror: { role: 'primary', transport: ta } }) as MirroredMemory;
  const s = await openMemory({ store: sStore, ...opts, mirror: { role: 'secondary', transport: tb } }) as MirroredMemory;
  return { p, s };
}

const t = suite('damage across the pair');

t("a secondary's damaged page is resynced from its primary; verify is clean again", async () => {
  const pStore = new MemoryStore();
  const sStore = new MemoryStore();
  let { p, s } = await pair(pStore, sStore);
  const b = await p.allocate(8 * PS);
  await p.write(b.id, 0, pattern(8 * PS, 1));
  await until(() => !s.mirror.sense().inconsistent, 'the first sync');
  await s.close();
  await flipChecksum(sStore, b.base + 3);
  const [ta, tb] = inProcessPair();
  s = await openMemory({ store: sStore, ...opts, mirror: { role: 'secondary' } }) as MirroredMemory;
  assert.equal(s.damage().map((d) => d.page), [b.base + 3], 'found at open');
  let code = '';
  try { await s.read(b.id, 3 * PS, PS); } catch (err) { code = (err as { code: string }).code; }
  assert.is(code, 'CORRUPT', 'never served while damaged');
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  await until(() => s.damage().length === 0, 'the page resynced from the primary');
  assert.equal(await s.read(b.id, 0, 8 * PS), pattern(8 * PS, 1));
  assert.equal((await p.mirror.verify()).differences, []);
  await p.close(); await s.close();
});

t("a primary's damaged page is read back from its secondary", async () => {
  const pStore = new MemoryStore();
  const sStore = new MemoryStore();
  let { p, s } = await pair(pStore, sStore);
  const b = await p.allocate(8 * PS);
  await p.write(b.id, 0, pattern(8 * PS, 2));
  await until(() => !s.mirror.sense().inconsistent, 'the first sync');
  await p.close();
  await flipChecksum(pStore, b.base + 5);
  const [ta, tb] = inProcessPair();
  p = await openMemory({ store: pStore, ...opts, mirror: { role: 'primary' } }) as MirroredMemory;
  assert.equal(p.damage().map((d) => d.page), [b.base + 5]);
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  await until(() => p.damage().length === 0, 'the page read back from the secondary');
  assert.equal(await p.read(b.id, 0, 8 * PS), pattern(8 * PS, 2));
  assert.ok(p.mirror.stats().readRepairs >= 1);
  await p.close(); await s.close();
});

t.run();
