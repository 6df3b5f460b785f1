// `npm run mutate` stays usable: every mutation of scripts/mutations.mjs still
// applies to the code as built (its find strings occur once) and names test
// files that exist. A change to the code a mutation names must update it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MUTATE = fileURLToPath(new URL('../../scripts/mutate.mjs', import.meta.url));

test('every mutation applies to this build (npm run mutate -- --check)', () => {
  const r = spawnSync(process.execPath, [MUTATE, '--check'], { encoding: 'utf8' });
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^\d+ mutations apply to this build/);
});

test.run();
