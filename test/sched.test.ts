import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core, TwinpageError, Scheduler } from '../bindings/index.js';

async function scheduler(groups: number, tasks: number, stripePages: number, capacity = 256) {
  const core = await Core.create({ frames: 1, pageSize: 512, conflictTables: groups, conflictCapacity: capacity });
  return new Scheduler(core.conflicts, { tasks, stripePages });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejects(p: Promise<unknown>, test: RegExp | ((e: unknown) => boolean)): Promise<void> {
  try {
    await p;
  } catch (err) {
    const ok = typeof test === 'function' ? test(err) : test.test(String((err as Error)?.message));
    assert.ok(ok, `rejected with an unexpected error: ${String(err)}`);
    return;
  }
  assert.unreachable('the promise resolved');
}

interface Op { first: number; last: number; mode: 'shared' | 'exclusive'; ms: number }
interface Part { op: number; first: number; last: number; start: number; end: number }

const opArb = fc.record({
  first: fc.integer({ min: 0, max: 40 }),
  len: fc.integer({ min: 1, max: 12 }),
  mode: fc.constantFrom('shared' as const, 'exclusive' as const),
  ms: fc.integer({ min: 0, max: 2 }),
}).map(({ first, len, mode, ms }) => ({ first, last: first + len - 1, mode, ms }));

const overlap = (a: { first: number; last: number }, b: { first: number; last: number }) => a.first <= b.last && b.first <= a.last;

const prop = suite('scheduler properties');

prop('conflicting operations never overlap and keep arrival order; contents equal a serial run; parallel when allowed', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(opArb, { minLength: 2, maxLength: 24 }),
    fc.constantFrom(1, 2, 4), fc.integer({ min: 2, max: 4 }), fc.constantFrom(4, 8, 64),
    async (ops, groups, tasks, stripe) => {
      const s = await scheduler(groups, tasks, stripe);
      const pages = new Map<number, number>();
      const reads: Array<Map<number, number>> = ops.map(() => new Map());
      const parts: Part[] = [];
      let clock = 0;
      let running = 0;
      let maxRunning = 0;
      await Promise.all(ops.map((op, i) => s.submit({
        first: op.first, last: op.last, mode: op.mode,
        run: async (first, last) => {
          const part: Part = { op: i, first, last, start: ++clock, end: 0 };
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(op.ms);
          for (let p = first; p <= last; p++) {
            if (op.mode === 'exclusive') pages.set(p, ((pages.get(p) ?? 0) * 31 + i + 1) % 1000003);
            else reads[i].set(p, pages.get(p) ?? 0);
          }
          running--;
          part.end = ++clock;
          parts.push(part);
        },
      })));
      // Every page of every operation was handled exactly once.
      for (const [i, op] of ops.entries()) {
        const covered = parts.filter((p) => p.op === i).reduce((n, p) => n + p.last - p.first + 1, 0);
        assert.is(covered, op.last - op.first + 1, `op ${i} covered`);
      }
      // Conflicting parts: the earlier operation's part ends before the later one's starts.
      for (const p of parts) {
        for (const q of parts) {
          if (p.op >= q.op || !overlap(p, q)) continue;
          if (ops[p.op].mode === 'shared' && ops[q.op].mode === 'shared') continue;
          assert.ok(p.end < q.start, `op ${p.op} [${p.first},${p.last}] ends before op ${q.op} [${q.first},${q.last}] starts`);
        }
      }
      // The same contents and the same reads as running the stream serially.
      const serial = new Map<number, number>();
      for (const [i, op] of ops.entries()) {
        for (let p = op.first; p <= op.last; p++) {
          if (op.mode === 'exclusive') serial.set(p, ((serial.get(p) ?? 0) * 31 + i + 1) % 1000003);
          else assert.is(reads[i].get(p), serial.get(p) ?? 0, `op ${i} read page ${p}`);
        }
      }
      assert.equal(pages, serial);
      const [a, b] = ops;
      if (!(overlap(a, b) && (a.mode === 'exclusive' || b.mode === 'exclusive'))) {
        assert.ok(maxRunning > 1, 'the first two operations do not conflict: they ran at once');
      }
      const st = s.stats();
      assert.is(st.completed, parts.length);
      assert.is(st.queued + st.running + st.waiting, 0);
    },
  ), { numRuns: 150 });
});

prop.run();

const unit = suite('scheduler');

unit('an operation spanning stripes is split per stripe and completes when all parts do', async () => {
  const s = await scheduler(4, 2, 8);
  const seen: Array<[number, number]> = [];
  await s.submit({ first: 5, last: 30, run: async (a, b) => { seen.push([a, b]); } });
  assert.equal(seen.sort((x, y) => x[0] - y[0]), [[5, 7], [8, 15], [16, 23], [24, 30]]);
});

unit('a failing operation fails alone', async () => {
  const s = await scheduler(1, 2, 64);
  const order: string[] = [];
  const bad = s.submit({ first: 0, last: 3, run: async () => { order.push('bad'); throw new Error('boom'); } });
  const after = s.submit({ first: 2, last: 2, run: async () => { order.push('after'); } });
  const apart = s.submit({ first: 10, last: 12, run: async () => { order.push('apart'); } });
  await rejects(bad, /boom/);
  await after;
  await apart;
  assert.equal(order.indexOf('bad') < order.indexOf('after'), true);
  assert.is(s.stats().failed, 1);
  assert.is(s.stats().completed, 2);
});

unit('backpressure: a full group makes later submissions wait, in order', async () => {
  const s = await scheduler(1, 2, 64, 4);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const started: number[] = [];
  const all = Array.from({ length: 10 }, (_, i) => s.submit({ first: i, last: i, run: async () => { started.push(i); await gate; } }));
  assert.is(s.stats().waiting, 6, 'the table holds 4; 6 wait');
  let roomy = false;
  const room = s.room().then(() => { roomy = true; });
  await sleep(5);
  assert.not.ok(roomy, 'room() waits while parts wait');
  assert.equal(started, [0, 1]);
  release();
  await Promise.all(all);
  await room;
  assert.equal(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await s.drain();
});

unit('conflicting operations are handed to the task that holds the conflict', async () => {
  const s = await scheduler(1, 4, 64);
  const log: string[] = [];
  const op = (name: string, first: number, last: number, ms: number, mode: 'shared' | 'exclusive' = 'exclusive') =>
    s.submit({ first, last, mode, run: async () => { log.push(`+${name}`); await sleep(ms); log.push(`-${name}`); } });
  await Promise.all([op('a', 0, 4, 10), op('b', 4, 8, 1), op('c', 8, 9, 1), op('d', 20, 21, 1), op('r1', 30, 31, 5, 'shared'), op('r2', 30, 31, 5, 'shared')]);
  // b waits for a, c for b; d, r1 and r2 run at once with a.
  assert.ok(log.indexOf('-a') < log.indexOf('+b') && log.indexOf('-b') < log.indexOf('+c'));
  assert.ok(log.indexOf('+d') < log.indexOf('-a') && log.indexOf('+r2') < log.indexOf('-r1'));
  assert.ok(s.stats().handoffs >= 2);
  assert.ok(s.stats().maxParallel >= 3);
});

unit('bad operations are refused with INVALID_ARGUMENT', async () => {
  const s = await scheduler(2, 2, 8);
  for (const [first, last] of [[-1, 2], [3, 2], [0, 2 ** 32], [0.5, 1]]) {
    await rejects(s.submit({ first, last, run: async () => {} }), (e: unknown) => e instanceof TwinpageError && e.code === 'INVALID_ARGUMENT');
  }
  const core = await Core.create({ frames: 1, conflictTables: 3 });
  assert.throws(() => new Scheduler(core.conflicts), (e: unknown) => e instanceof TwinpageError && e.code === 'INVALID_ARGUMENT');
});

unit.run();
