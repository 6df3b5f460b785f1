// Damage campaign (issue #12): the files of stopped nodes' data folders are
// damaged at random (bit flips, zeroed ranges, random bytes written over,
// truncations, deletions) across super, the journal, the block table, pages and sums, on
// cleanly closed stores and on stores whose writer was SIGKILLed with writes
// acknowledged, single folders and mirrored sets (one copy damaged). Each is
// opened and read back in a child process (damage-child.ts). Every outcome
// must be the acknowledged bytes, a typed CORRUPT (on open or on read), or,
// for a mirrored set, a repair from the good copy (the damaged folder then
// reads whole on its own). Wrong bytes, a vanished block, a block nobody
// allocated, or any other error fail the test. A model of what was
// acknowledged decides "correct" (the write in flight at a kill: all old or
// all new). DAMAGE_ROUNDS sets the number of damaged stores (default 240).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openMemory } from '../bindings/index.js';
import { pattern, rng } from './data.js';

const ROUNDS = Number(process.env.DAMAGE_ROUNDS ?? 240);
const CHILD = fileURLToPath(new URL('./damage-child.js', import.meta.url));
const WRITER = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const BATCH = 30;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Base {
  name: string;
  dirs: string[];
  /** Each block, and the hashes its contents may have (two when a write was in flight at the kill). */
  blocks: Array<{ id: string; length: number; hashes: string[] }>;
}

/** A store closed cleanly: blocks of both write modes, written, one freed (and `tableBlocks` one-page blocks more: a block table file). */
async function cleanBase(dirs: string[], seed: number, tableBlocks = 0): Promise<Base> {
  const random = rng(seed);
  const m = await openMemory({
    store: dirs.length === 1 ? dirs[0] : dirs, pageSize: 4096, flushIntervalMs: 0,
    policies: [{ name: 'back', maxSize: 12000, writeMode: 'write-back' }, { name: 'through', maxSize: Infinity }],
  });
  const model = new Map<string, Uint8Array>();
  for (let i = 0; i < 6; i++) {
    const size = 1 + Math.floor(random() * 60000);
    const b = await m.allocate(size);
    model.set(b.id, new Uint8Array(size));
  }
  for (let i = 0; i < 20; i++) {
    const [id, bytes] = [...model][Math.floor(random() * model.size)];
    const len = 1 + Math.floor(random() * bytes.length);
    const at = Math.floor(random() * (bytes.length - len + 1));
    const data = pattern(len, Math.floor(random() * 2 ** 31));
    await m.write(id, at, data);
    bytes.set(data, at);
  }
  const gone = [...model.keys()][0];
  await m.free(gone);
  model.delete(gone);
  // Enough blocks for the close to write the block table file (format version 3), some of them written.
  for (let i = 0; i < tableBlocks; i++) {
    const b = await m.allocate(4096);
    const bytes = new Uint8Array(4096);
    if (i % 10 === 0) { bytes.set(pattern(4096, seed * 7919 + i)); await m.write(b.id, 0, bytes); }
    model.set(b.id, bytes);
  }
  await m.close();
  return { name: `clean ${dirs.length > 1 ? 'mirrored' : 'folder'} #${seed}${tableBlocks ? ' with a block table' : ''}`, dirs, blocks: [...model].map(([id, b]) => ({ id, length: b.length, hashes: [sha(b)] })) };
}

/** A store whose writer (crash-child.ts) was SIGKILLed mid-write, with what it acknowledged. */
async function killedBase(dirs: string[], seed: number, killAfterMs: number): Promise<Base> {
  const lines = await new Promise<string[]>((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dirs.join(','), String(seed), '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d) => {
      out += d;
      if (!timer && out.includes('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`writer ended by itself (${code} ${signal}): ${err}`));
      else resolve(out.split('\n').filter(Boolean));
    });
  });
  const model = new Map<string, Uint8Array>();
  let started: { id: string; at: number; data: Uint8Array } | null = null;
  let acked = 0;
  for (const line of lines) {
    const [kind, ...f] = line.split(' ');
    if (kind === 'A') model.set(f[0], new Uint8Array(Number(f[1])));
    if (kind === 'S' && f[0] !== 'alloc') started = { id: f[0], at: Number(f[1]), data: pattern(Number(f[2]), Number(f[3])) };
    if (kind === 'W') {
      model.get(f[0])!.set(pattern(Number(f[2]), Number(f[3])), Number(f[1]));
      started = null;
      acked++;
    }
  }
  if (acked === 0) throw new Error('the writer acknowledged nothing before it was killed');
  return {
    name: `killed ${dirs.length > 1 ? 'mirrored' : 'folder'} #${seed} (${acked} writes acknowledged)`,
    dirs,
    blocks: [...model].map(([id, b]) => {
      const hashes = [sha(b)];
      if (started?.id === id) { const landed = b.slice(); landed.set(started.data, started.at); hashes.push(sha(landed)); }
      return { id, length: b.length, hashes };
    }),
  };
}

// --- damage --------------------------------------------------------------------------

interface Damage { file: string; text: string }

/** Damages one file of `dir` at random (positions lean towards the start, where records and headers are). */
async function damage(dir: string, random: () => number): Promise<Damage> {
  const names = (await readdir(dir)).filter((n) => n === 'super' || n === 'pages' || n === 'sums' || n.startsWith('wal.') || n.startsWith('table.'));
  const weights: Array<[string, number]> = names.map((n) => [n, n === 'super' ? 15 : n.startsWith('wal.') ? 35 : 25]);
  let pick = random() * weights.reduce((s, [, w]) => s + w, 0);
  const file = weights.find(([, w]) => (pick -= w) < 0)?.[0] ?? names[0];
  const path = join(dir, file);
  const size = (await stat(path)).size;
  const at = (limit: number) => Math.floor(limit * random() ** 2);
  const kind = random();
  if (kind < 0.12 || size === 0) {
    await rm(path);
    return { file, text: `${file} deleted` };
  }
  if (kind < 0.3) {
    const to = at(size);
    await truncate(path, to);
    return { file, text: `${file} cut from ${size} to ${to} bytes` };
  }
  const fh = await open(path, 'r+');
  try {
    if (kind < 0.65) {
      const flips: string[] = [];
      for (let i = 1 + Math.floor(random() * 4); i > 0; i--) {
        const p = at(size);
        const b = new Uint8Array(1);
        await fh.read(b, 0, 1, p);
        const bit = 1 << Math.floor(random() * 8);
        b[0] ^= bit;
        await fh.write(b, 0, 1, p);
        flips.push(`bit ${Math.log2(bit)} of byte ${p}`);
      }
      return { file, text: `${file}: flipped ${flips.join(', ')}` };
    }
    const p = at(size);
    const len = Math.min(size - p, random() < 0.5 ? 512 * (1 + Math.floor(random() * 8)) : 1 + Math.floor(random() * 600));
    const zeros = kind < 0.85;
    const bytes = zeros ? new Uint8Array(len) : pattern(len, Math.floor(random() * 2 ** 31));
    await fh.write(bytes, 0, len, p);
    return { file, text: `${file}: ${zeros ? 'zeroed' : 'overwrote with random bytes'} [${p}, ${p + len})` };
  } finally {
    await fh.close();
  }
}

// --- reading back, in child processes --------------------------------------------------

interface Result {
  open: string; message?: string; error?: string; damage?: number;
  blocks?: Record<string, string | { code: string }>; extra?: string[];
  scrub?: { repaired: number; damaged: number };
  alone?: { open?: string; message?: string; blocks?: Record<string, string | { code: string }>; extra?: string[] };
}

function readBack(jobFile: string): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, jobFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`the reader exited with ${code}: ${err}`));
      else resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Result));
    });
  });
}

type Outcome = 'correct' | 'corrupt on open' | 'corrupt on read' | 'repaired';

/** What a read-back shows, or why it is wrong. */
function judge(base: Base, r: Result, mirrored: boolean): { outcome: Outcome; wrong: string[] } {
  const wrong: string[] = [];
  const blocks = (got: Record<string, string | { code: string }> | undefined, extra: string[] | undefined, where: string) => {
    let corrupt = 0;
    for (const b of base.blocks) {
      const g = got?.[b.id];
      if (typeof g === 'string') { if (!b.hashes.includes(g)) wrong.push(`${where}: block ${b.id} read back WRONG bytes`); }
      else if (g?.code === 'CORRUPT') corrupt++;
      else if (g?.code === 'MISSING') wrong.push(`${where}: block ${b.id} VANISHED without an error`);
      else wrong.push(`${where}: block ${b.id} failed with ${g?.code ?? 'nothing'}, not CORRUPT`);
    }
    for (const id of extra ?? []) wrong.push(`${where}: a block nobody allocated appeared: ${id}`);
    return corrupt;
  };
  if (r.open !== 'ok') {
    if (r.open !== 'CORRUPT') wrong.push(`open failed with ${r.open} (${r.message}), not CORRUPT`);
    else if (mirrored) wrong.push(`a mirrored set with one good copy was refused: ${r.message}`);
    return { outcome: 'corrupt on open', wrong };
  }
  if (r.error) wrong.push(`failed after open with ${r.error}: ${r.message}`);
  const corrupt = blocks(r.blocks, r.extra, 'read');
  if (mirrored) {
    if (corrupt) wrong.push(`a mirrored set with one good copy served CORRUPT for ${corrupt} blocks`);
    if (r.alone?.open) wrong.push(`after scrub, the repaired copy alone does not open: ${r.alone.open} ${r.alone.message}`);
    else if (blocks(r.alone?.blocks, r.alone?.extra, 'repaired copy alone')) wrong.push('after scrub, the repaired copy alone still has damage');
    return { outcome: 'repaired', wrong };
  }
  return { outcome: corrupt ? 'corrupt on read' : 'correct', wrong };
}

test(`${ROUNDS} damaged stores (clean and SIGKILLed, folders and mirrored sets): every outcome is correct, CORRUPT or repaired`, async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'twinpage-damage-'));
  const random = rng(20261129 ^ ROUNDS);
  try {
    const bases: Base[] = [];
    const dir = async (name: string) => { const d = join(tmp, 'bases', name); await mkdir(d, { recursive: true }); return d; };
    bases.push(await cleanBase([await dir('c1')], 1));
    bases.push(await cleanBase([await dir('c2')], 2));
    bases.push(await cleanBase([await dir('cm-a'), await dir('cm-b')], 3));
    bases.push(await cleanBase([await dir('ct')], 4, 260));
    bases.push(await cleanBase([await dir('ctm-a'), await dir('ctm-b')], 5, 260));
    bases.push(await killedBase([await dir('k1')], 11, 60));
    bases.push(await killedBase([await dir('k2')], 12, 250));
    bases.push(await killedBase([await dir('k3')], 13, 150));
    bases.push(await killedBase([await dir('km-a'), await dir('km-b')], 14, 120));

    const counts: Record<Outcome, number> = { correct: 0, 'corrupt on open': 0, 'corrupt on read': 0, repaired: 0 };
    const byFile: Record<string, Record<string, number>> = {};
    const failures: string[] = [];
    // One undamaged copy of each base first: the model and the store agree.
    const cases: Array<{ base: Base; control: boolean }> = [
      ...bases.map((base) => ({ base, control: true })),
      ...Array.from({ length: ROUNDS }, () => {
        const mirrored = random() < 0.25;
        const pool = bases.filter((b) => (b.dirs.length > 1) === mirrored);
        return { base: pool[Math.floor(random() * pool.length)], control: false };
      }),
    ];
    for (let start = 0; start < cases.length; start += BATCH) {
      const batch = cases.slice(start, start + BATCH);
      const jobs: Array<{ dirs: string[]; damaged: string; blocks: Array<{ id: string; length: number }> }> = [];
      const damages: Damage[] = [];
      for (const [k, c] of batch.entries()) {
        const dirs = c.base.dirs.map((_, i) => join(tmp, 'cases', String(start + k), String(i)));
        for (const [i, d] of dirs.entries()) await cp(c.base.dirs[i], d, { recursive: true });
        const damaged = dirs[Math.floor(random() * dirs.length)];
        damages.push(c.control ? { file: '-', text: 'no damage (control)' } : await damage(damaged, random));
        jobs.push({ dirs, damaged, blocks: c.base.blocks.map((b) => ({ id: b.id, length: b.length })) });
      }
      const jobFile = join(tmp, `jobs-${start}.json`);
      await writeFile(jobFile, JSON.stringify(jobs));
      const results = await readBack(jobFile);
      assert.is(results.length, batch.length, 'the reader answered every case');
      results.forEach((r, k) => {
        const c = batch[k];
        const { outcome, wrong } = judge(c.base, r, c.base.dirs.length > 1);
        if (c.control && outcome !== 'correct' && outcome !== 'repaired') wrong.push(`the undamaged store read back as ${outcome}`);
        if (!c.control) {
          counts[outcome]++;
          const f = damages[k].file.startsWith('wal.') ? 'wal' : damages[k].file.startsWith('table.') ? 'table' : damages[k].file;
          (byFile[f] ??= {})[outcome] = (byFile[f][outcome] ?? 0) + 1;
        }
        for (const w of wrong) failures.push(`${c.base.name}, ${damages[k].text}: ${w}`);
      });
      await rm(join(tmp, 'cases'), { recursive: true, force: true });
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(`  damage campaign: ${total} damaged stores: ${counts.correct} correct (damage that changed nothing read), `
      + `${counts['corrupt on open']} CORRUPT on open, ${counts['corrupt on read']} CORRUPT on read, ${counts.repaired} repaired from a good copy; `
      + `${failures.length} wrong`);
    console.log(`  by file: ${Object.entries(byFile).map(([f, o]) => `${f} ${Object.entries(o).map(([k, v]) => `${v} ${k}`).join(', ')}`).join('; ')}`);
    assert.equal(failures, [], failures.slice(0, 20).join('\n'));
    assert.is(total, ROUNDS, 'every damaged store was judged');
    // The damage reached what is read back: detected (refused or repaired) in some of the cases, not all harmless.
    const found = counts['corrupt on open'] + counts['corrupt on read'] + counts.repaired;
    if (ROUNDS >= 50) assert.ok(found > ROUNDS / 10, `${found} of ${ROUNDS} damaged stores refused or repaired`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test.run();
