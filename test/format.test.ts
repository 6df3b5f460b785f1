// The format fixtures in test/fixtures (the folders named format-v*; others
// there, like tls/, hold other tests' material) are stores written by earlier
// versions; this version must open and read every one of them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { openMemory, type TwinpageError } from '../bindings/index.js';
import { pattern } from './data.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

const formats = (await readdir(FIXTURES)).filter((name) => /^format-v\d+$/.test(name));

test('the format fixtures are there', () => {
  assert.ok(formats.includes('format-v1'), `format fixtures found: ${formats.join(', ')}`);
});

for (const name of formats) {
  test(`fixture ${name} opens and reads back`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twinpage-fixture-'));
    try {
      await cp(join(FIXTURES, name), dir, { recursive: true });
      const expected = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8'));
      const m = await openMemory({ store: dir, flushIntervalMs: 0 });
      assert.is(m.pageSize, expected.pageSize);
      assert.equal(m.blocks().map((b) => b.id).sort(), expected.blocks.map((b: { id: string }) => b.id).sort());
      for (const b of expected.blocks) {
        assert.is((await m.header(b.id)).policy.name, b.policy);
        assert.equal(await m.read(b.id, 0, b.length), pattern(b.length, b.seed), `block ${b.id}`);
      }
      const fresh = await m.allocate(100);
      assert.equal(await m.read(fresh.id, 0, 100), new Uint8Array(100));
      await m.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('format version 1 is upgraded in place on open (a checkpoint in version 3); upgrade: false refuses it and changes nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-fixture-'));
  try {
    await cp(join(FIXTURES, 'format-v1'), dir, { recursive: true });
    const before = await snapshot(dir);
    const refused = await openMemory({ store: dir, flushIntervalMs: 0, upgrade: false }).then(() => null, (err: TwinpageError) => err);
    assert.is(refused?.code, 'UNSUPPORTED_FORMAT');
    assert.equal(await snapshot(dir), before, 'refused, the store is as it was');
    const m = await openMemory({ store: dir, flushIntervalMs: 0 });
    await m.close();
    const { inspectFolder } = await import('../bindings/cli/inspect.js');
    const r = await inspectFolder(dir, { check: true });
    assert.is(r.superblock.version, 3);
    assert.equal(r.check!.damage, []);
    assert.not.ok(r.files.some((f) => f.name === 'sums.v2'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Every file's name and SHA-256. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
  return out;
}

test.run();
