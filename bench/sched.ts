// sched.*: applying a stream of page writes through task groups against the
// same stream applied one by one.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Core, MemoryDevice, Scheduler, type Device } from '../bindings/index.js';
import { FileDevice } from '../bindings/storage/file.js';
import { compare, expectEqual } from './util.js';

const PAGE = 4096;
const STREAM = 64;

function image(seed: number): Uint8Array {
  return new Uint8Array(PAGE).fill(seed & 0xFF);
}

/** One write of the stream, applied with the `disk` durability: written and flushed. */
async function apply(device: Device, page: number, seed: number, durable: boolean): Promise<void> {
  await device.write(page * PAGE, image(seed));
  if (durable) await device.flush();
}

async function stream(name: string, device: Device, pageOf: (i: number) => number, durable: boolean, tasks: number) {
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
  // Both must leave each page with the stream's last write to it.
  const checkLast = async (run: () => Promise<void>) => {
    const before = seed;
    await run();
    const last = new Map<number, number>();
    for (let i = 0; i < STREAM; i++) last.set(pageOf(i), before + i);
    const buf = new Uint8Array(PAGE);
    for (const [page, s] of last) {
      await device.read(page * PAGE, buf);
      expectEqual(`page ${page}`, buf[PAGE - 1], s & 0xFF);
    }
  };
  return compare({
    suite: 'sched', name, opsPerRun: STREAM,
    ours: { name: `scheduler, ${tasks} tasks`, run: scheduled, check: () => checkLast(scheduled) },
    others: [{ name: 'serial apply', run: serial, check: () => checkLast(serial) }],
  });
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-sched-'));
  try {
    const file = await FileDevice.open('pages', join(dir, 'pages'));
    await stream('apply_disjoint', file, (i) => i * 7, true, 8);
    await stream('apply_conflicting', file, () => 3, true, 8);
    await file.close();
    const mem = new MemoryDevice('pages');
    const { measured } = await stream('overhead', mem, (i) => i, false, 8);
    const overheadUs = (measured[0].nsPerOp - measured[1].nsPerOp) / 1000;
    console.log(`  sched.overhead per operation: ${overheadUs.toFixed(2)} µs`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
