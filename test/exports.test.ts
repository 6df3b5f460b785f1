// Imports the built package by its name, as a user would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

test('the package resolves by name and exposes the core API', async () => {
  const pkg = await import('twinpage');
  for (const name of ['Core', 'PageTable', 'ConflictTable', 'PageBitmap', 'TwinpageError']) {
    assert.type((pkg as Record<string, unknown>)[name], 'function', `${name} is exported`);
  }
  const core = await pkg.Core.create({ frames: 4 });
  assert.is(core.pageSize, 4096);
  const f = core.pages.insert(1);
  core.frameView(f).fill(7);
  assert.is(core.frameView(f)[4095], 7);
});

test('errors carry a stable code', async () => {
  const { Core, TwinpageError } = await import('twinpage');
  try {
    await Core.create({ frames: 0 });
    assert.unreachable('frames: 0 was accepted');
  } catch (err) {
    assert.instance(err, TwinpageError);
    assert.is((err as InstanceType<typeof TwinpageError>).code, 'INVALID_ARGUMENT');
  }
});

test('the module is compiled once and each core has its own memory', async () => {
  const { Core } = await import('twinpage');
  const a = await Core.create({ frames: 2 });
  const b = await Core.create({ frames: 2 });
  a.frameView(0).fill(1);
  assert.is(b.frameView(0)[0], 0);
  assert.is.not(a.exports.memory, b.exports.memory);
});

test.run();
