// The format fixtures in test/fixtures (the folders named format-v*; others
// there, like tls/, hold other tests' material) are stores written by earlier
// versions; this version must open and read every one of them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cp, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openMemory } from '../bindings/index.js';
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

test.run();
