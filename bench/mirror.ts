// mirror.*: a primary in this process, its secondary a `twinpage serve`
// child process, over TCP on loopback; against the same workload on one node.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, type Memory, type MirroredMemory } from '../bindings/index.js';
import { connectTcp } from '../bindings/mirror/transports/tcp.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { FileDevice } from '../bindings/storage/file.js';
import { NodeProcess } from '../test/pair-process.js';
import { compare, expectEqual, rng } from './util.js';

const PAGE = 4096;
const PAGES = 1024;
const BATCH = 16;
const policies = [
  { name: 'memory', maxSize: PAGES * PAGE, durability: 'memory' as const },
  { name: 'disk', maxSize: Infinity, durability: 'disk' as const },
];

function page(seed: number): Uint8Array {
  const b = new Uint8Array(PAGE).fill(seed & 0xFF);
  b[0] = seed >>> 8;
  return b;
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-mirror-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'bench secret\n', { mode: 0o600 });
  const child = new NodeProcess(['--dir', join(dir, 'secondary'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secret]);
  try {
    const { port } = await child.event('listening');
    const primary = await openMemory({
      store: join(dir, 'primary'), flushIntervalMs: 0, policies,
      mirror: { role: 'primary', transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret: 'bench secret', nodeId: 'bench-primary' }) },
    }) as MirroredMemory;
    await child.event('connected');
    const single = await openMemory({ store: join(dir, 'single'), flushIntervalMs: 0, policies });
    for (const durability of ['memory', 'disk'] as const) await writes(primary, single, durability);
    await latency(primary);
    await resync(primary, dir, port as number);
    await primary.close();
    await single.close();
  } finally {
    await child.close().catch(() => child.kill());
    await rm(dir, { recursive: true, force: true });
  }
}

async function writes(primary: Memory, single: Memory, durability: 'memory' | 'disk'): Promise<void> {
  const size = durability === 'memory' ? PAGES * PAGE : PAGES * PAGE + 1;
  const a = await primary.allocate(size, { policy: durability });
  const b = await single.allocate(size, { policy: durability });
  const random = rng(7);
  let n = 0;
  const batch = () => {
    const pages = new Set<number>();
    while (pages.size < BATCH) pages.add(Math.floor(random() * PAGES));
    return [...pages].map((p) => ({ p, data: page(++n) }));
  };
  const run = (m: Memory, id: string) => async () => {
    const list = batch();
    await Promise.all(list.map(({ p, data }) => m.write(id, p * PAGE, data)));
    return list;
  };
  const check = (m: Memory, id: string) => async () => {
    for (const { p, data } of await run(m, id)()) expectEqual(`page ${p}`, (await m.read(id, p * PAGE, PAGE))[0], data[0]);
  };
  await compare({
    suite: 'mirror', name: `write_${durability}`, opsPerRun: BATCH,
    ours: { name: `mirrored pair over TCP (${durability}) x${BATCH}`, run: run(primary, a.id), check: check(primary, a.id) },
    others: [{ name: `one node (${durability}) x${BATCH}`, run: run(single, b.id), check: check(single, b.id) }],
  });
}

async function latency(primary: MirroredMemory): Promise<void> {
  const b = await primary.allocate(PAGES * PAGE + 1, { policy: 'disk' });
  const times: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await primary.write(b.id, (i % PAGES) * PAGE, page(i));
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const q = (f: number) => times[Math.min(times.length - 1, Math.floor(f * times.length))];
  console.log(`  mirror.latency disk-durable 4 KiB writes, one at a time: p50 ${(q(0.5) * 1000).toFixed(0)} µs, p99 ${(q(0.99) * 1000).toFixed(0)} µs`);
}

/** Resync of pages written while degraded, against a raw device-to-device copy of as many pages. */
async function resync(primary: MirroredMemory, dir: string, port: number): Promise<void> {
  const b = await primary.allocate(PAGES * PAGE + 1, { policy: 'disk' });
  // Degrade: swap the TCP link for an in-process one whose far end is gone.
  const [near, far] = inProcessPair();
  primary.mirror.attach(near);
  far.close();
  await new Promise((r) => setTimeout(r, 10));
  for (let p = 0; p < PAGES; p++) await primary.write(b.id, p * PAGE, page(p));
  const lag = primary.mirror.sense().lagPages;
  // Reconnect to the secondary process and time the resync.
  const link = await connectTcp({ host: '127.0.0.1', port, secret: 'bench secret', nodeId: 'bench-primary' });
  let t = performance.now();
  primary.mirror.attach(link);
  await primary.mirror.resync();
  const resyncMs = performance.now() - t;
  const report = await primary.mirror.verify();
  if (report.differences.length) throw new Error(`resync left ${report.differences.length} differences`);
  // Raw copy: read each page from one file and write it to another, then flush.
  const src = await FileDevice.open('src', join(dir, 'primary', 'pages'));
  const dst = await FileDevice.open('dst', join(dir, 'raw-copy'));
  const buf = new Uint8Array(PAGE);
  t = performance.now();
  for (let p = 0; p < lag; p++) {
    await src.read((b.base + p) * PAGE, buf);
    await dst.write(p * PAGE, buf);
  }
  await dst.flush();
  const rawMs = performance.now() - t;
  await src.close();
  await dst.close();
  console.log(`  mirror.resync ${lag} pages: resync ${resyncMs.toFixed(1)} ms (${(lag / resyncMs * 1000).toFixed(0)} pages/s), raw copy ${rawMs.toFixed(1)} ms`);
  console.log(`ratio mirror.resync ${(rawMs / resyncMs).toFixed(2)}`);
}
