// scale.*: how a node's start grows with what it holds.
//
//   scale.open_blocks   reopen a store holding N blocks (BENCH_BLOCKS, default
//                       20,000; BENCH_BLOCKS=1000000 is the real target): the
//                       time openMemory takes, and then blocks() (every
//                       block's header), as blocks/s and extrapolated
//                       linearly to 1,000,000 blocks.
//   scale.allocate      durable allocations per second on a data folder, one
//                       at a time and 64 in flight (they share flushes).
//
// The store is built through the public API over a folder whose flushes are
// skipped while it is being filled (an fdatasync per allocation would make the
// set-up, not the measurement, take minutes); close() writes it whole, and
// every timed reopen opens the folder as usual, flushes included.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, type Device, type Store } from '../bindings/index.js';
import { openFileStore } from '../bindings/storage/file.js';
import { BENCH_ROUNDS, BENCH_TIME, expectEqual, figure, median } from './util.js';

const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 20000);
const TARGET = 1_000_000;

/** A store whose devices skip flush() and whose sync() does nothing: for building fixtures only. */
class UnflushedStore implements Store {
  readonly kind: string;
  readonly #inner: Store;
  constructor(inner: Store) { this.#inner = inner; this.kind = inner.kind; }
  async open(name: string): Promise<Device> {
    const d = await this.#inner.open(name);
    return {
      name: d.name,
      read: (position, into) => d.read(position, into),
      write: (position, data) => d.write(position, data),
      flush: async () => {},
      size: () => d.size(),
      truncate: (size) => d.truncate(size),
      close: () => d.close(),
    };
  }
  exists(name: string) { return this.#inner.exists(name); }
  remove(name: string) { return this.#inner.remove(name); }
  rename(from: string, to: string) { return this.#inner.rename(from, to); }
  list() { return this.#inner.list(); }
  async sync() {}
  space() { return this.#inner.space(); }
}

export async function run(): Promise<void> {
  if (!Number.isSafeInteger(BLOCKS) || BLOCKS < 1) throw new TypeError(`BENCH_BLOCKS must be a positive integer, got ${process.env.BENCH_BLOCKS}`);
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-scale-'));
  try {
    const path = join(dir, 'store');
    const building = await openMemory({ store: new UnflushedStore(await openFileStore(path)), flushIntervalMs: 0 });
    const t = performance.now();
    const expected = new Map<string, number>();
    for (let i = 0; i < BLOCKS; i++) {
      const b = await building.allocate(4096 * (1 + (i % 4)));
      expected.set(b.id, b.length);
    }
    const buildMs = performance.now() - t;
    await building.close();

    const times: number[] = [];
    const lists: number[] = [];
    for (let r = 0; r < Math.max(1, Math.min(BENCH_ROUNDS, 3)); r++) {
      const start = performance.now();
      const memory = await openMemory({ store: path, flushIntervalMs: 0 });
      times.push(performance.now() - start);
      const listed = performance.now();
      const blocks = memory.blocks();
      lists.push(performance.now() - listed);
      // Checked: every block back, with its length.
      expectEqual('blocks after reopen', blocks.length, BLOCKS);
      for (const b of blocks) expectEqual(`length of block ${b.id}`, b.length, expected.get(b.id));
      await memory.close();
    }
    const ms = median(times);
    const listMs = median(lists);
    const perSec = BLOCKS / (ms / 1000);
    const range = (a: number[]) => `[${Math.min(...a).toFixed(0)}..${Math.max(...a).toFixed(0)}]`;
    console.log(`scale.open_blocks ${BLOCKS} blocks: reopen median ${ms.toFixed(0)} ms ${range(times)}, blocks() ${listMs.toFixed(0)} ms ${range(lists)} over ${times.length} reopens, ${perSec.toFixed(0)} blocks/s`);
    figure('scale.open_blocks', `${BLOCKS} blocks: ${ms.toFixed(0)} ms ${range(times)} to reopen (${perSec.toFixed(0)} blocks/s; ${(TARGET / perSec).toFixed(1)} s for ${TARGET.toLocaleString('en')} blocks, extrapolated linearly), blocks() ${listMs.toFixed(0)} ms ${range(lists)} more (built through allocate() in ${(buildMs / 1000).toFixed(1)} s, flushes skipped; reopened in this process, which holds the model)`);
    await allocations(join(dir, 'allocate'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Durable allocations per second, one at a time and 64 in flight; checked after a reopen. */
async function allocations(path: string): Promise<void> {
  const rates: Record<number, number[]> = { 1: [], 64: [] };
  for (let r = 0; r < Math.max(1, Math.min(BENCH_ROUNDS, 3)); r++) {
    for (const inFlight of [1, 64]) {
      await rm(path, { recursive: true, force: true });
      const memory = await openMemory({ store: path, flushIntervalMs: 0 });
      const ids: string[] = [];
      const until = performance.now() + Math.min(BENCH_TIME, 1000);
      const start = performance.now();
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (performance.now() < until) ids.push((await memory.allocate(4096)).id);
      }));
      rates[inFlight].push(ids.length / ((performance.now() - start) / 1000));
      await memory.close();
      const again = await openMemory({ store: path, flushIntervalMs: 0 });
      expectEqual('allocations after a reopen', again.blockCount, ids.length);
      await again.close();
    }
  }
  const text = (n: number) => `${median(rates[n]).toFixed(0)}/s [${Math.min(...rates[n]).toFixed(0)}..${Math.max(...rates[n]).toFixed(0)}]`;
  console.log(`scale.allocate durable allocations: one at a time ${text(1)}, 64 in flight ${text(64)}`);
  figure('scale.allocate', `durable allocations on a data folder: one at a time ${text(1)}, 64 in flight ${text(64)} (group commit)`);
}
