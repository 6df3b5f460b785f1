// Multi-process crash campaign over TCP on loopback: two `twinpage serve`
// processes form a pair; the parent writes through the primary and SIGKILLs
// a node at a random moment. Killed primary: the secondary is promoted and
// must hold every acknowledged byte, the write in flight all old or all new;
// the old primary restarts as secondary, is resynced, and verify is clean.
// Killed secondary: the primary goes on, the restarted secondary rejoins,
// is resynced, and verify() finds no difference. A rejoining old primary is
// resynced from its write-intent extents, not by a full copy: the pages sent
// are bounded by what its superblock names (small extents here, so the
// bound is below the block's size).
// PAIR_ROUNDS sets the number of rounds (default 20).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeProcess } from './pair-process.js';
import { inspectFolder } from '../bindings/cli/inspect.js';
import { pattern, rng } from './data.js';

const ROUNDS = Number(process.env.PAIR_ROUNDS ?? 20);
const SIZE = 256 * 1024;
const PAGE = 4096;
/** Write intents of 8 pages, at most 2 hot: a crashed primary names at most about 3 of the block's 8 extents. */
const INTENTS = ['--extent-pages', '8', '--intent-extents', '2'];

async function startPair(dir: string, port = 0) {
  const secret = join(dir, 'secret');
  await writeFile(secret, 'a shared secret for this test\n', { mode: 0o600 });
  const secondary = new NodeProcess(['--dir', join(dir, 'b'), '--role', 'secondary', '--listen', `127.0.0.1:${port}`, '--secret-file', secret, '--cache-mb', '4', ...INTENTS]);
  const listening = await secondary.event('listening');
  const primary = new NodeProcess(['--dir', join(dir, 'a'), '--role', 'primary', '--peer', `127.0.0.1:${listening.port}`, '--secret-file', secret, '--cache-mb', '4', ...INTENTS]);
  await primary.event('connected');
  await secondary.event('connected');
  // A new secondary is inconsistent until its primary has planned from its record and told it
  // it holds everything; killed before that, the primary leaves one that refuses promote.
  await until(async () => !(await sense(secondary)).inconsistent, 'the new secondary to be told it is in sync');
  return { primary, secondary, port: listening.port as number, secret };
}

interface Write { at: number; len: number; seed: number }

/** Waits until `check` holds, or fails saying what it waited for. */
async function until(check: () => Promise<boolean>, what: string, ms = 15000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Sense { lagPages: number; connected: boolean; inFlight: number; inconsistent: boolean; generation: string }
const sense = async (n: NodeProcess) => (await n.send({ cmd: 'sense' })).sense as Sense;

test(`${ROUNDS} rounds: a node SIGKILLed mid-write loses no acknowledged byte`, async () => {
  const random = rng(424242);
  let acked = 0;
  /** Rounds that killed the primary while a write was on its way (sent before the kill, not yet answered). */
  let inFlightAtKill = 0;
  let resynced = 0;
  let bound = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const dir = await mkdtemp(join(tmpdir(), 'twinpage-pair-'));
    const { primary, secondary, port, secret } = await startPair(dir);
    const alloc = await primary.send({ cmd: 'allocate', size: SIZE });
    assert.ok(alloc.ok, `allocate: ${JSON.stringify(alloc)}`);
    const id = (alloc.block as { id: string }).id;
    const model = new Uint8Array(SIZE);
    const killPrimary = round % 3 !== 2;
    const victim = killPrimary ? primary : secondary;
    let inFlight: Write | null = null;
    let sentBeforeKill = false;
    let killed = false;
    const killAt = 30 + Math.floor(random() * 300);
    setTimeout(() => { killed = true; void victim.kill(); }, killAt);
    // A killed primary: write until one is refused (the write in flight). A killed secondary: 300 ms more alone.
    const deadline = Date.now() + killAt + 300;
    while (killPrimary || Date.now() < deadline) {
      const len = 1 + Math.floor(random() * 20000);
      const w: Write = { at: Math.floor(random() * (SIZE - len)), len, seed: Math.floor(random() * 2 ** 31) };
      inFlight = w;
      sentBeforeKill = !killed;
      const r = await primary.send({ cmd: 'write', block: id, offset: w.at, data: Buffer.from(pattern(w.len, w.seed)).toString('base64') });
      if (!r.ok) { assert.ok(killed && killPrimary, `write refused: ${JSON.stringify(r)}`); break; }
      model.set(pattern(w.len, w.seed), w.at);
      acked++;
      inFlight = null;
    }
    if (killPrimary) {
      await primary.exited;
      const promoted = await secondary.send({ cmd: 'promote' });
      assert.ok(promoted.ok, `round ${round}: promote: ${JSON.stringify(promoted)}`);
      const read = await secondary.send({ cmd: 'read', block: id, offset: 0, length: SIZE });
      assert.ok(read.ok, `read on the promoted node: ${JSON.stringify(read)}`);
      const got = new Uint8Array(Buffer.from(read.data as string, 'base64'));
      // The writes went on until one was refused: that one was in flight (sent before the kill, or just after it).
      const w = inFlight as Write | null;
      assert.ok(w !== null, `round ${round}: the primary was killed, yet no write was refused`);
      if (sentBeforeKill) inFlightAtKill++;
      const fresh = pattern(w!.len, w!.seed);
      const slice = got.subarray(w!.at, w!.at + w!.len);
      const isNew = slice.every((v, i) => v === fresh[i]);
      const isOld = slice.every((v, i) => v === model[w!.at + i]);
      assert.ok(isNew || isOld, `round ${round}: the write in flight is all old or all new`);
      if (isNew) model.set(fresh, w!.at);
      const diff = got.findIndex((v, i) => v !== model[i]);
      assert.is(diff, -1, `round ${round}: the promoted secondary differs at byte ${diff}`);
      // The old primary comes back as secondary: its generation is behind,
      // and its superblock names what may differ (its hot write-intent
      // extents, as it crashed); the new primary resends those pages.
      const a = await inspectFolder(join(dir, 'a'));
      assert.is(a.generations?.clean, false, 'the killed primary did not close cleanly');
      const base = (alloc.block as { base: number }).base;
      const mayDiffer = new Set<number>();
      const per = a.outOfSync.extentPages!;
      for (const e of a.outOfSync.intents) for (let q = e * per; q < (e + 1) * per; q++) if (q >= base && q < base + SIZE / PAGE) mayDiffer.add(q);
      for (const [first, count] of a.outOfSync.lag ?? []) for (let q = first; q < first + count; q++) mayDiffer.add(q);
      assert.ok(mayDiffer.size < SIZE / PAGE, `round ${round}: the write intents name ${mayDiffer.size} of ${SIZE / PAGE} pages`);
      const rejoined = new NodeProcess(['--dir', join(dir, 'a'), '--role', 'secondary', '--peer', `127.0.0.1:${port}`, '--secret-file', secret, '--cache-mb', '4', ...INTENTS]);
      await rejoined.event('connected');
      // It is behind (the promotion took a new generation): it takes the new
      // primary's and is inconsistent until the resync that follows the handshake is done.
      const target = (await sense(secondary)).generation;
      await until(async () => {
        const r = await sense(rejoined);
        const s = await sense(secondary);
        return r.generation === target && !r.inconsistent && s.connected && s.lagPages === 0 && s.inFlight === 0;
      }, `round ${round}: the rejoined old primary to be resynced by the new one`);
      const v = await secondary.send({ cmd: 'verify' });
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal((v.verify as { differences: unknown[] }).differences, [], `round ${round}: the rejoined old primary matches after its resync`);
      // The new primary wrote nothing alone, so what it resent is bounded by the old primary's record.
      const st = (await secondary.send({ cmd: 'status' })).status as { stats: { resyncedPages: number } };
      assert.ok(st.stats.resyncedPages <= mayDiffer.size, `round ${round}: ${st.stats.resyncedPages} pages resynced, the write intents name ${mayDiffer.size}`);
      resynced += st.stats.resyncedPages;
      bound += mayDiffer.size;
      const back = await rejoined.send({ cmd: 'read', block: id, offset: 0, length: SIZE });
      assert.is(new Uint8Array(Buffer.from(back.data as string, 'base64')).findIndex((v, i) => v !== model[i]), -1, `round ${round}: the rejoined node holds the new primary's data`);
      await rejoined.close();
      await secondary.close();
    } else {
      await secondary.exited;
      // The primary went on alone; a restarted secondary rejoins and is resynced.
      const again = new NodeProcess(['--dir', join(dir, 'b'), '--role', 'secondary', '--listen', `127.0.0.1:${port}`, '--secret-file', secret, '--cache-mb', '4']);
      await again.event('connected');
      await until(async () => {
        const s = await sense(primary);
        return s.connected && s.lagPages === 0 && s.inFlight === 0 && !(await sense(again)).inconsistent;
      }, `round ${round}: the restarted secondary to be resynced`);
      const v = await primary.send({ cmd: 'verify' });
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal((v.verify as { differences: unknown[] }).differences, [], `round ${round}: verify after resync`);
      const read = await primary.send({ cmd: 'read', block: id, offset: 0, length: SIZE });
      const got = new Uint8Array(Buffer.from(read.data as string, 'base64'));
      assert.is(got.findIndex((v, i) => v !== model[i]), -1, `round ${round}: the primary holds every acknowledged write`);
      await primary.close();
      await again.close();
    }
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`  pair campaign: ${ROUNDS} kills, ${acked} acknowledged writes checked, ${inFlightAtKill} primaries killed with a write in flight; rejoins resynced ${resynced} pages, write intents named ${bound}`);
  // The checks above checked something: writes were acknowledged before the kills, and some primaries died mid-write.
  assert.ok(acked >= ROUNDS, `${acked} writes acknowledged in ${ROUNDS} rounds`);
  if (ROUNDS >= 3) assert.ok(inFlightAtKill > 0, 'no primary was killed while a write was on its way');
});

test.run();
