// sched.*: applying a stream of page writes through task groups against the
// same stream applied one by one (serial: the goal's peer, DESIGN.md
// "secondary apply ... the same stream applied serially").
//   sched.apply_disjoint                 64 writes to distinct pages, each written
//                                        and flushed: scheduler (8 tasks) / serial
//   sched.apply_disjoint_vs_promise_all  the same / plain Promise.all over the same
//                                        operations (no ordering, no bound: only
//                                        correct because no two conflict)
//   sched.apply_conflicting              64 writes to one page: scheduler / serial
//   sched.overhead                       the same stream on a memory device, not
//                                        flushed: what the scheduler costs
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core, MemoryDevice, Scheduler, type Device } from '../bindings/index.js';
import { FileDevice } from '../bindings/storage/file.js';
import { compare, expectBytes, figure, pattern } from './util.js';

const PAGE = 4096;
const STREAM = 64;

/** One write of the stream, applied with the `disk` durability: written and flushed. */
async function apply(device: Device, page: number, seed: number, durable: boolean): Promise<void> {
  await device.write(page * PAGE, pattern(seed, page * PAGE, PAGE));
  if (durable) await device.flush();
}

async function stream(name: string, device: Device, pageOf: (i: number) => number, durable: boolean, tasks: number, opts: { promiseAll?: boolean; goal?: string } = {}) {
  const core = await Core.create({ frames: 1, conflictTables: 1, conflictCapacity: 1024 });
  const sched = new Scheduler(core.conflicts, { tasks });
  let seed = 0;
  const serial = async () => {
    const base = seed;
    seed += STREAM;
    for (let i = 0; i < STREAM; i++) await apply(device, pageOf(i), base + i, durable);
  };
  const scheduled = async () => {
    const base = seed;
    seed += STREAM;
    await Promise.all(Array.from({ length: STREAM }, (_, i) =>
      sched.submit({ first: pageOf(i), last: pageOf(i), run: () => apply(device, pageOf(i), base + i, durable) })));
  };
  const promiseAll = async () => {
    const base = seed;
    seed += STREAM;
    await Promise.all(Array.from({ length: STREAM }, (_, i) => apply(device, pageOf(i), base + i, durable)));
  };
  // Each must leave each page with the stream's last write to it, whole.
  const checkLast = async (run: () => Promise<void>) => {
    const before = seed;
    await run();
    const last = new Map<number, number>();
    for (let i = 0; i < STREAM; i++) last.set(pageOf(i), before + i);
    const buf = new Uint8Array(PAGE);
    for (const [page, s] of last) {
      await device.read(page * PAGE, buf);
      expectBytes(`${name}: page ${page}`, buf, pattern(s, page * PAGE, PAGE));
    }
  };
  const SCHED = `scheduler, ${tasks} tasks`;
  const ALL = 'Promise.all, unordered';
  return compare({
    suite: 'sched', name, opsPerRun: STREAM, goal: opts.goal,
    ours: { name: SCHED, run: scheduled, check: () => checkLast(scheduled) },
    others: [{ name: 'serial apply', run: serial, check: () => checkLast(serial) }],
    also: opts.promiseAll ? [{ name: ALL, run: promiseAll, check: () => checkLast(promiseAll) }] : [],
    ratios: opts.promiseAll ? [{ name: `${name}_vs_promise_all`, of: SCHED, over: ALL }] : [],
  });
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-sched-'));
  try {
    const file = await FileDevice.open('pages', join(dir, 'pages'));
    await stream('apply_disjoint', file, (i) => i * 7, true, 8, { promiseAll: true, goal: '>= 3' });
    await stream('apply_conflicting', file, () => 3, true, 8, { goal: '>= 0.95' });
    await file.close();
    const mem = new MemoryDevice('pages');
    const { measured } = await stream('overhead', mem, (i) => i, false, 8);
    const overheadUs = (measured[0].nsPerOp - measured[1].nsPerOp) / 1000;
    figure('sched.overhead', `per operation: ${overheadUs.toFixed(2)} µs (median figures)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
