// Power-loss campaign: a memory on a PowerLossStore runs a random workload
// (allocate, write, free, flush; `disk` and `memory` write-through blocks,
// `async` and `disk` write-back blocks; up to three operations at once)
// until the power is cut at a random device operation, dropping, keeping at
// random or tearing at 512-byte sectors whatever was written since each
// flush. Then the store is opened again and every block is checked against a
// model of what was acknowledged, at each policy's promise:
//   - write-through: an acknowledged write is there after the power loss;
//     the write in flight is all old or all new;
//   - write-back: the contents as of the last acknowledged flush() or
//     close(), each page possibly carrying later writes (any prefix of them);
//   - an acknowledged allocation exists, an acknowledged free does not.
// A reopen must never fail: a power loss is not damage.
// POWERLOSS_ROUNDS sets the number of rounds (default 60).
//
// A flush that does not persist (PowerLossStore's test-only flushPersists:
// false, what a file device with a no-op fdatasync would be) must make this
// campaign fail: the second test shows it does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, PowerLossStore, TwinpageError, type Memory, type PowerLossMode } from '../bindings/index.js';
import { pattern, rng } from './data.js';

const ROUNDS = Number(process.env.POWERLOSS_ROUNDS ?? 60);
const PS = 512;
const POLICIES = [
  { name: 'disk', maxSize: 1, durability: 'disk' as const, writeMode: 'write-through' as const },
  { name: 'memory', maxSize: 2, durability: 'memory' as const, writeMode: 'write-through' as const },
  { name: 'async-back', maxSize: 3, durability: 'async' as const, writeMode: 'write-back' as const },
  { name: 'disk-back', maxSize: Infinity, durability: 'disk' as const, writeMode: 'write-back' as const },
];
const BACK = new Set(['async-back', 'disk-back']);

interface Write { at: number; data: Uint8Array }
interface ModelBlock {
  id: string;
  length: number;
  policy: string;
  back: boolean;
  /** Write-through: every acknowledged write. Write-back: the contents at the last acknowledged flush or close. */
  durable: Uint8Array;
  /** Write-back: the writes since (acknowledged or not), in order. */
  since: Write[];
  /** Write-through: the write started and not acknowledged. */
  inFlight: Write | null;
  acked: number;
  busy: boolean;
  freeing: boolean;
}

interface Stats {
  rounds: number;
  losses: Record<PowerLossMode, number>;
  cleanCloses: number;
  ackedChecked: number;
  inFlightLanded: number;
  backWrites: number;
  backPagesNewest: number;
  backPagesOlder: number;
  violations: string[];
}

const apply = (bytes: Uint8Array, w: Write) => { const out = bytes.slice(); out.set(w.data, w.at); return out; };
const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
const codeOf = (err: unknown) => (err instanceof TwinpageError ? err.code : String(err));

async function campaign(seed: number, rounds: number, storeOptions: ConstructorParameters<typeof PowerLossStore>[0] = {}): Promise<Stats> {
  const random = rng(seed);
  const store = new PowerLossStore(storeOptions);
  const model = new Map<string, ModelBlock>();
  const freed = new Set<string>();
  const stats: Stats = {
    rounds: 0, losses: { drop: 0, subset: 0, torn: 0 }, cleanCloses: 0, ackedChecked: 0, inFlightLanded: 0,
    backWrites: 0, backPagesNewest: 0, backPagesOlder: 0, violations: [],
  };
  let allocationsUnsure = 0;
  const fail = (round: number, what: string) => stats.violations.push(`round ${round}: ${what}`);

  for (let round = 0; round < rounds && stats.violations.length === 0; round++) {
    stats.rounds++;
    let memory: Memory;
    try {
      memory = await openMemory({
        store, pageSize: PS, cacheBytes: 24 * PS, policies: POLICIES, checkpointBytes: 24 << 10,
        flushIntervalMs: random() < 0.5 ? 0 : 2,
      });
    } catch (err) {
      fail(round, `the store did not open after the power loss: ${codeOf(err)} ${(err as Error).message}`);
      break;
    }

    // --- check what survived against the model -----------------------------------------
    const present = new Map(memory.blocks().map((b) => [b.id, b]));
    for (const [id, b] of model) {
      if (!present.has(id)) {
        if (!b.freeing) fail(round, `acknowledged block ${id} (${b.policy}) vanished`);
        model.delete(id);
        continue;
      }
      b.freeing = false;
      let got: Uint8Array;
      try {
        got = await memory.read(id, 0, b.length);
      } catch (err) {
        fail(round, `block ${id} (${b.policy}) reads as ${codeOf(err)} after a power loss`);
        model.delete(id);
        continue;
      }
      if (!b.back) {
        stats.ackedChecked += b.acked;
        const landed = b.inFlight && equal(got, apply(b.durable, b.inFlight));
        if (landed) stats.inFlightLanded++;
        else if (!equal(got, b.durable)) {
          const at = got.findIndex((v, i) => v !== b.durable[i]);
          fail(round, `block ${id} (${b.policy}) differs at byte ${at} from its acknowledged writes${b.inFlight ? ' (and from them with the write in flight)' : ''}`);
        }
      } else {
        stats.backWrites += b.since.length;
        // Each page: the contents at the last flush with some prefix of the later writes.
        const states = [b.durable];
        for (const w of b.since) states.push(apply(states[states.length - 1], w));
        for (let p = 0; p * PS < b.length; p++) {
          const page = (x: Uint8Array) => x.subarray(p * PS, Math.min(b.length, (p + 1) * PS));
          const k = states.findIndex((s) => equal(page(s), page(got)));
          if (k < 0) fail(round, `page ${p} of write-back block ${id} (${b.policy}) holds bytes no prefix of its writes since the last flush explains`);
          else if (equal(page(states[0]), page(states[states.length - 1]))) continue; // not changed since the flush
          else if (equal(page(got), page(states[states.length - 1]))) stats.backPagesNewest++;
          else stats.backPagesOlder++;
        }
      }
      Object.assign(b, { durable: got, since: [], inFlight: null, acked: 0, busy: false });
    }
    for (const [id, h] of present) {
      if (model.has(id)) continue;
      if (freed.has(id)) fail(round, `block ${id} was freed (acknowledged) and is back`);
      else if (allocationsUnsure-- <= 0) fail(round, `block ${id} was never allocated`);
      else {
        const got = await memory.read(id, 0, h.length);
        if (got.some((v) => v !== 0)) fail(round, `block ${id}, allocated at the power loss, is not all zeros`);
        model.set(id, { id, length: h.length, policy: h.policy.name, back: BACK.has(h.policy.name), durable: got, since: [], inFlight: null, acked: 0, busy: false, freeing: false });
      }
    }
    allocationsUnsure = 0;
    if (stats.violations.length) { await memory.close().catch(() => {}); break; }

    // --- a workload until the power is cut (or, now and then, a clean close) --------------
    const clean = random() < 0.1;
    let cut = false;
    const lost = clean ? new Promise<PowerLossMode>(() => {}) : store.powerLossAfter(10 + Math.floor(random() * 600), { random });
    void lost.then((mode) => { cut = true; stats.losses[mode]++; });
    const inflight = new Set<Promise<void>>();
    const start = (work: () => Promise<void>) => {
      const p: Promise<void> = work().catch(() => {}).finally(() => inflight.delete(p));
      inflight.add(p);
      return p;
    };
    const idle = () => [...model.values()].filter((b) => !b.busy);
    for (let ops = 0; !cut && !(clean && ops > 60); ops++) {
      if (inflight.size >= 3) { await Promise.race([...inflight, lost]); continue; }
      const r = random();
      const free = idle();
      // About a dozen blocks live at a time (the checkpoint rewrites the block table: it must not grow without end).
      const allocate = model.size < 2 || (r < 0.15 && model.size < 16);
      const release = !allocate && r < (model.size > 12 ? 0.3 : 0.22);
      if (allocate) {
        const policy = POLICIES[Math.floor(random() * POLICIES.length)].name;
        const size = 1 + Math.floor(random() * 10 * PS);
        allocationsUnsure++;
        start(async () => {
          const b = await memory.allocate(size, { policy });
          allocationsUnsure--;
          model.set(b.id, { id: b.id, length: size, policy, back: BACK.has(policy), durable: new Uint8Array(size), since: [], inFlight: null, acked: 0, busy: false, freeing: false });
        });
      } else if (release && free.length) {
        const b = free[Math.floor(random() * free.length)];
        b.busy = true;
        b.freeing = true;
        start(async () => {
          await memory.free(b.id);
          model.delete(b.id);
          freed.add(b.id);
        });
      } else if (r > 0.95) {
        // flush(): alone, so that it covers exactly the writes acknowledged before it.
        await Promise.race([Promise.allSettled([...inflight]), lost]);
        if (cut) break;
        await start(async () => {
          const backs = [...model.values()].filter((b) => b.back);
          const before = new Map(backs.map((b) => [b, b.since.length]));
          await memory.flush();
          for (const [b, n] of before) {
            for (const w of b.since.splice(0, n)) b.durable = apply(b.durable, w);
          }
        });
      } else if (free.length) {
        const b = free[Math.floor(random() * free.length)];
        const len = 1 + Math.floor(random() * Math.min(b.length, 8 * PS));
        const w: Write = { at: Math.floor(random() * (b.length - len + 1)), data: pattern(len, Math.floor(random() * 2 ** 31)) };
        b.busy = true;
        if (b.back) b.since.push(w);
        else b.inFlight = w;
        start(async () => {
          await memory.write(b.id, w.at, w.data);
          if (!b.back) {
            b.durable = apply(b.durable, w);
            b.inFlight = null;
            b.acked++;
          }
          b.busy = false;
        });
      } else {
        await Promise.race([...inflight, lost]);
      }
    }
    await Promise.allSettled([...inflight]);
    if (clean) {
      try {
        await memory.close();
        stats.cleanCloses++;
        for (const b of model.values()) {
          for (const w of b.since) b.durable = apply(b.durable, w);
          b.since = [];
        }
      } catch (err) {
        fail(round, `close failed: ${codeOf(err)}`);
      }
    } else {
      await lost;
      await memory.close().catch(() => {}); // stops its timers; its devices refuse use
    }
  }
  return stats;
}

test(`${ROUNDS} power losses (dropped, partial and torn writes) lose nothing acknowledged`, async () => {
  const s = await campaign(20261129, ROUNDS);
  console.log(`  power-loss campaign: ${s.rounds} rounds, ${s.losses.drop + s.losses.subset + s.losses.torn} power losses `
    + `(${s.losses.drop} dropped, ${s.losses.subset} partial, ${s.losses.torn} torn), ${s.cleanCloses} clean closes; `
    + `${s.ackedChecked} acknowledged write-through writes checked, ${s.inFlightLanded} in-flight writes landed whole; `
    + `${s.backWrites} unflushed write-back writes: of the pages they changed, ${s.backPagesNewest} held the newest bytes, ${s.backPagesOlder} older ones; `
    + `${s.violations.length} violations`);
  assert.equal(s.violations, []);
  assert.ok(s.ackedChecked > ROUNDS, `acknowledged writes were checked (${s.ackedChecked})`);
  assert.ok(s.losses.drop > 0 && s.losses.subset > 0 && s.losses.torn > 0, 'every kind of power loss happened');
});

test('the campaign notices a flush that does not persist', async () => {
  const s = await campaign(7, 20, { flushPersists: false });
  console.log(`  with flush made a no-op: ${s.violations.length ? `caught in round ${s.rounds - 1}: ${s.violations[0]}` : 'NOT caught'}`);
  assert.ok(s.violations.length > 0, 'a flush that keeps nothing must lose acknowledged writes');
});

test.run();
