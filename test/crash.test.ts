// Crash campaign: a child process writes with the `disk` policy and reports
// every acknowledged write; the parent SIGKILLs it at a random moment,
// reopens the folder (recovery) and checks every acknowledged byte. The write
// in flight at the kill must be all old or all new, never a mix.
// CRASH_ROUNDS sets the number of rounds (default 50).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openMemory } from '../bindings/index.js';
import { pattern, rng } from './data.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 50);
const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

interface Started { id: string; at: number; len: number; seed: number }

/** Runs the writer until `killAfterMs` after it is ready; returns its stdout lines. */
function runWriter(dir: string, seed: number, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(seed), '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d) => {
      out += d;
      if (!timer && out.includes('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (codeNum, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer ended by itself (${codeNum} ${signal}): ${err}`));
      else resolve(out.split('\n').filter(Boolean));
    });
  });
}

test(`${ROUNDS} SIGKILLs mid-write lose no acknowledged byte`, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-crash-'));
  const random = rng(20261121);
  const model = new Map<string, Uint8Array>();
  let acked = 0;
  let inFlightLanded = 0;
  /** Rounds killed while a write was started and not yet acknowledged. */
  let inFlight = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const lines = await runWriter(dir, round + 1, 20 + Math.floor(random() * 250));
      let started: Started | null = null;
      for (const line of lines) {
        const [kind, ...f] = line.split(' ');
        if (kind === 'A') model.set(f[0], new Uint8Array(Number(f[1])));
        if (kind === 'S' && f[0] !== 'alloc') started = { id: f[0], at: Number(f[1]), len: Number(f[2]), seed: Number(f[3]) };
        if (kind === 'W') {
          const [id, at, len, seed] = [f[0], Number(f[1]), Number(f[2]), Number(f[3])];
          model.get(id)!.set(pattern(len, seed), at);
          acked++;
          started = null;
        }
      }
      if (started) inFlight++;
      const m = await openMemory({ store: dir, cacheBytes: 64 * 4096, flushIntervalMs: 0 });
      try {
        const ids = new Set(m.blocks().map((b) => b.id));
        for (const [id, expected] of model) {
          assert.ok(ids.has(id), `round ${round}: acknowledged block ${id} exists`);
          const got = await m.read(id, 0, expected.length);
          if (started && started.id === id) {
            // The write in flight: all old or all new.
            const { at, len, seed } = started;
            const fresh = pattern(len, seed);
            const slice = got.subarray(at, at + len);
            const isNew = slice.every((v, i) => v === fresh[i]);
            const isOld = slice.every((v, i) => v === expected[at + i]);
            assert.ok(isNew || isOld, `round ${round}: the write in flight is all old or all new`);
            if (isNew && !isOld) { expected.set(fresh, at); inFlightLanded++; }
          }
          const diff = got.findIndex((v, i) => v !== expected[i]);
          assert.is(diff, -1, `round ${round}: block ${id} differs at byte ${diff}`);
        }
      } finally {
        await m.close();
      }
    }
    console.log(`  crash campaign: ${ROUNDS} kills, ${acked} acknowledged writes checked, ${inFlight} kills mid-write, ${inFlightLanded} in-flight writes landed whole`);
    assert.ok(acked > ROUNDS, `the writers acknowledged ${acked} writes`);
    // The in-flight check above ran: some kills came while a write was under way.
    if (ROUNDS >= 10) assert.ok(inFlight > 0, 'no kill came while a write was under way');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
