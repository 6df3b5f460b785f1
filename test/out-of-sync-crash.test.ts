// The out-of-sync bitmap after a crash (a property test, fast-check): a
// primary whose partner is away writes a random workload (writes of any size
// at any offset of a block, a few at once, flushes now and then) on a
// PowerLossStore until the power is cut at a random device operation. Opened
// again, its out-of-sync record must name every page an acknowledged write
// changed: the partner lacks them all, and a page left off would never be
// resynced. Then the partner comes back, the resync runs and verify() finds
// no difference. OOS_CRASH_RUNS sets the number of workloads (default 40),
// OOS_CRASH_SEED replays fast-check's seed of a failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { inProcessPair, openMemory, MemoryStore, PowerLossStore, type MirroredMemory, type Transport } from '../bindings/index.js';
import { pattern } from './data.js';

const RUNS = Number(process.env.OOS_CRASH_RUNS ?? 40);
const PS = 512;
const POLICY = { name: 'disk', maxSize: Infinity, durability: 'disk' as const, writeMode: 'write-through' as const };

const open = (store: PowerLossStore | MemoryStore, role: 'primary' | 'secondary', transport?: Transport) =>
  openMemory({ store, pageSize: PS, cacheBytes: 64 * PS, policies: [POLICY], flushIntervalMs: 0, mirror: { role, transport } }) as Promise<MirroredMemory>;

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    if (i > 1000) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const write = fc.record({
  page: fc.nat(),
  offsetInPage: fc.nat({ max: PS - 1 }),
  // Mostly small, now and then many pages (a bulk write of 16 pages or more takes its own path).
  length: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 3 * PS }), weight: 4 }, { arbitrary: fc.integer({ min: 16 * PS, max: 40 * PS }), weight: 1 }),
  flushAfter: fc.boolean(),
});

const workload = fc.record({
  blockPages: fc.integer({ min: 64, max: 2048 }),
  writes: fc.array(write, { minLength: 1, maxLength: 40 }),
  inFlight: fc.integer({ min: 1, max: 3 }),
  cutAfter: fc.integer({ min: 1, max: 120 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

test(`after a power loss, the out-of-sync bitmap names every page an acknowledged write changed (${RUNS} random workloads)`, async () => {
  let checkedPages = 0;
  let cuts = 0;
  await fc.assert(
    fc.asyncProperty(workload, async (w) => {
      const primaryStore = new PowerLossStore();
      const secondaryStore = new MemoryStore();
      // The pair, in sync, with one block.
      let [ta, tb] = inProcessPair();
      let p = await open(primaryStore, 'primary', ta);
      let s = await open(secondaryStore, 'secondary', tb);
      const block = await p.allocate(w.blockPages * PS, { policy: POLICY.name });
      await until('the secondary to hold the block', () => s.blocks().length === 1);
      await s.close();
      await p.close();

      // Alone, until the power is cut.
      p = await open(primaryStore, 'primary');
      let cut = false;
      let midWorkload = true;
      void primaryStore.powerLossAfter(w.cutAfter).then(() => { cut = true; if (midWorkload) cuts++; });
      const acked = new Set<number>();
      const pending = new Set<Promise<void>>();
      for (let k = 0; k < w.writes.length && !cut; k++) {
        const one = w.writes[k];
        const at = (one.page % w.blockPages) * PS + one.offsetInPage;
        const length = Math.min(one.length, w.blockPages * PS - at);
        const data = pattern(length, w.seed + k);
        // The pages it changes: the partner holds zeros there, so a page the
        // write leaves all zeros (a byte of zero written) is no change.
        const changes: number[] = [];
        for (let q = Math.floor(at / PS); q <= Math.floor((at + length - 1) / PS); q++) {
          const from = Math.max(at, q * PS) - at;
          const to = Math.min(at + length, (q + 1) * PS) - at;
          if (data.subarray(from, to).some((b) => b !== 0)) changes.push(block.base + q);
        }
        const done: Promise<void> = p.write(block.id, at, data).then(
          () => { for (const q of changes) acked.add(q); },
          () => {}, // cut mid-write: not acknowledged
        ).finally(() => { pending.delete(done); });
        pending.add(done);
        if (pending.size >= w.inFlight) await Promise.race(pending);
        if (one.flushAfter) await p.flush().catch(() => {});
      }
      await Promise.all(pending);
      midWorkload = false;
      if (!cut) primaryStore.powerLoss({ mode: 'drop' });
      await p.close().catch(() => {});

      // Opened again: every acknowledged page is on the record.
      [ta, tb] = inProcessPair();
      p = await open(primaryStore, 'primary', ta);
      const lagging = new Set(p.mirror.laggingPages());
      for (const q of acked) {
        if (!lagging.has(q)) assert.unreachable(`page ${q - block.base} of the block was changed by a write acknowledged while the partner was away but is not on the out-of-sync record after the power loss`);
      }
      checkedPages += acked.size;

      // The partner back: resynced, and no difference.
      s = await open(secondaryStore, 'secondary', tb);
      await until('the pair to connect', () => p.mirror.sense().connected);
      await p.mirror.resync();
      const report = await p.mirror.verify();
      assert.equal(report.differences, [], 'verify after the resync');
      await s.close();
      await p.close();
    }),
    { numRuns: RUNS, ...(process.env.OOS_CRASH_SEED ? { seed: Number(process.env.OOS_CRASH_SEED) } : {}) },
  );
  process.stderr.write(`  out-of-sync after a power loss: ${RUNS} workloads, ${cuts} cut mid-workload, ${checkedPages} acknowledged pages found on the record\n`);
  assert.ok(cuts > RUNS / 4, `the power was cut mid-workload in only ${cuts} of ${RUNS} workloads`);
});

test.run();
