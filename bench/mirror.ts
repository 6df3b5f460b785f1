// mirror.*: a primary in this process, its secondary a `twinpage serve`
// child process, over TCP on loopback; against the same workload on one node,
// and against the limit pair (limit-pair.ts: a primary in this process, its
// secondary a child process too) and the limit single node (limit-journal.ts).
//
//   mirror.write_<d>             pair / one node, 16 writes of 4 KiB in flight
//   mirror.write_<d>_vs_limit    pair / the limit pair, same workload
//   mirror.write_<d>_ceiling     the limit pair / the limit single node: the
//                                ceiling this machine sets for any pair
//   mirror.latency               one disk write at a time: p50, p99 (and the limit pair's)
//   mirror.bulk_write            1 MiB disk writes, one at a time: pair / one node
//   mirror.resync                a sequential copy of the same bytes (1 MiB
//                                buffers, flushed) over the resync, in time
//   mirror.rejoin_48mib_ms       a secondary SIGKILLed with a 48 MiB journal,
//                                restarted: start to connected
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, type Memory, type MirroredMemory } from '../bindings/index.js';
import { connectTcp } from '../bindings/mirror/transports/tcp.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { NodeProcess } from '../test/pair-process.js';
import { latestImages } from './limit-journal.js';
import { LimitNode } from './limit-journal.js';
import { LimitPair, LimitSecondary } from './limit-pair.js';
import { BENCH_ROUNDS, batches, compare, expectBytes, figure, median, pattern, report } from './util.js';

const PAGE = 4096;
const PAGES = 1024;
const BATCH = 16;
const MIB = 1 << 20;
const SECRET = 'bench secret';
const policies = [
  { name: 'memory', maxSize: PAGES * PAGE, durability: 'memory' as const },
  { name: 'disk', maxSize: Infinity, durability: 'disk' as const },
];
/** Bytes of a block for each policy (the policy goes by size). */
const sizeFor = (d: 'memory' | 'disk', bytes = PAGES * PAGE) => (d === 'memory' ? bytes : bytes + 1);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads bytes of a block from a `twinpage serve` process. */
async function readFrom(node: NodeProcess, block: string, offset: number, length: number): Promise<Buffer> {
  const r = await node.send({ cmd: 'read', block, offset, length });
  if (!r.ok) throw new Error(`read from the secondary process: ${String(r.code)} ${String(r.error)}`);
  return Buffer.from(r.data as string, 'base64');
}

/**
 * Throws unless `probe()` gives `data`: at once when `waitMs` is 0 (what
 * was acknowledged at `disk` must be there), else within `waitMs` (an ack at
 * `memory` says received, not yet applied).
 */
async function eventually(what: string, probe: () => Promise<Uint8Array>, data: Uint8Array, waitMs: number): Promise<void> {
  const until = performance.now() + waitMs;
  for (;;) {
    const got = await probe();
    if (Buffer.compare(got, data) === 0) return;
    if (performance.now() >= until) expectBytes(what, got, data);
    await sleep(10);
  }
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-mirror-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, SECRET + '\n', { mode: 0o600 });
  const limitDir = join(dir, 'limit-secondary');
  await mkdir(limitDir);
  const child = new NodeProcess(['--dir', join(dir, 'secondary'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secret]);
  const limitChild = new LimitSecondary(limitDir);
  try {
    const { port } = await child.event('listening');
    const primary = await openMemory({
      store: join(dir, 'primary'), flushIntervalMs: 0, policies,
      mirror: { role: 'primary', transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret: SECRET, nodeId: 'bench-primary' }) },
    }) as MirroredMemory;
    await child.event('connected');
    const single = await openMemory({ store: join(dir, 'single'), flushIntervalMs: 0, policies });
    const limitPort = await limitChild.port;
    for (const durability of ['memory', 'disk'] as const) await writes(dir, primary, single, child, limitPort, limitDir, durability);
    await latency(dir, primary, child, limitPort, limitDir);
    await bulkWrite(primary, single, child);
    await resync(primary, dir, port as number, child);
    await primary.close();
    await single.close();
  } finally {
    await child.close().catch(() => child.kill());
    await limitChild.close();
    await rm(dir, { recursive: true, force: true });
  }
  await rejoin();
}

// --- 4 KiB writes, 16 in flight --------------------------------------------------------

async function writes(
  dir: string, primary: Memory, single: Memory, child: NodeProcess,
  limitPort: number, limitDir: string, durability: 'memory' | 'disk',
): Promise<void> {
  const a = await primary.allocate(sizeFor(durability), { policy: durability });
  const b = await single.allocate(sizeFor(durability), { policy: durability });
  const limitPair = await LimitPair.connect(limitPort, durability, join(dir, `limit-primary-${durability}.journal`), `limit-${durability}.journal`);
  const limitSingle = await LimitNode.create(join(dir, `limit-single-${durability}.journal`));
  const wait = durability === 'disk' ? 0 : 3000;

  type Writer = { write(page: number, data: Uint8Array): Promise<void> };
  const runner = (w: Writer, seed: number) => {
    const next = batches(seed, PAGES, BATCH, PAGE);
    return async () => {
      const list = next();
      await Promise.all(list.map(({ p, data }) => w.write(p, data)));
      return list;
    };
  };
  const pairRun = runner({ write: (p, d) => primary.write(a.id, p * PAGE, d) }, 7);
  const singleRun = runner({ write: (p, d) => single.write(b.id, p * PAGE, d) }, 7);
  const limitPairRun = runner(limitPair, 7);
  const limitSingleRun = runner(limitSingle, 7);

  const PAIR = `twinpage pair, 2 processes (${durability}) x${BATCH}`;
  const ONE = `twinpage one node (${durability}) x${BATCH}`;
  const LPAIR = `limit pair, 2 processes (${durability}) x${BATCH}`;
  const LONE = `limit single node x${BATCH}`;
  await compare({
    suite: 'mirror', name: `write_${durability}`, opsPerRun: BATCH,
    ours: {
      name: PAIR, run: pairRun,
      check: async () => {
        for (const { p, data } of await pairRun()) {
          expectBytes(`${PAIR}: page ${p} on the primary`, await primary.read(a.id, p * PAGE, PAGE), data);
          await eventually(`${PAIR}: page ${p} on the secondary process`, () => readFrom(child, a.id, p * PAGE, PAGE), data, wait);
        }
      },
    },
    others: [{
      name: ONE, run: singleRun,
      check: async () => {
        for (const { p, data } of await singleRun()) expectBytes(`${ONE}: page ${p}`, await single.read(b.id, p * PAGE, PAGE), data);
      },
    }],
    also: [
      {
        name: LPAIR, run: limitPairRun,
        check: async () => {
          const list = await limitPairRun();
          const local = await latestImages(limitPair.journal.path);
          for (const { p, data } of list) {
            expectBytes(`${LPAIR}: page ${p} in the primary's journal`, local.get(p) ?? new Uint8Array(0), data);
            await eventually(`${LPAIR}: page ${p} in the secondary's journal`,
              async () => (await latestImages(join(limitDir, limitPair.remoteName))).get(p) ?? new Uint8Array(0), data, wait);
          }
        },
      },
      {
        name: LONE, run: limitSingleRun,
        check: async () => {
          const list = await limitSingleRun();
          const onDisk = await latestImages(limitSingle.journal.path);
          for (const { p, data } of list) expectBytes(`${LONE}: page ${p} in its journal`, onDisk.get(p) ?? new Uint8Array(0), data);
        },
      },
    ],
    ratios: [
      { name: `write_${durability}_vs_limit`, of: PAIR, over: LPAIR, goal: '>= 0.9' },
      { name: `write_${durability}_ceiling`, of: LPAIR, over: LONE },
    ],
  });
  await limitPair.close();
  await limitSingle.close();
}

// --- latency: one disk write at a time --------------------------------------------------

async function latency(dir: string, primary: Memory, child: NodeProcess, limitPort: number, limitDir: string): Promise<void> {
  const b = await primary.allocate(sizeFor('disk'), { policy: 'disk' });
  const limit = await LimitPair.connect(limitPort, 'disk', join(dir, 'limit-primary-latency.journal'), 'limit-latency.journal');
  const ours: number[] = [];
  const theirs: number[] = [];
  const buf = Buffer.alloc(PAGE);
  let data: Uint8Array = buf;
  // Interleaved: one write on the pair, one on the limit pair.
  for (let i = 0; i < 300; i++) {
    const page = i % PAGES;
    data = pattern(i + 1, page * PAGE, PAGE, buf);
    let t = performance.now();
    await primary.write(b.id, page * PAGE, data);
    ours.push(performance.now() - t);
    t = performance.now();
    await limit.write(page, data);
    theirs.push(performance.now() - t);
  }
  const last = 299 % PAGES;
  expectBytes('latency: the last write on the secondary process', await readFrom(child, b.id, last * PAGE, PAGE), data);
  expectBytes("latency: the last write in the limit secondary's journal", (await latestImages(join(limitDir, limit.remoteName))).get(last) ?? new Uint8Array(0), data);
  await limit.close();
  const q = (xs: number[], f: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(f * xs.length))];
  const us = (ms: number) => (ms * 1000).toFixed(0);
  figure('mirror.latency', `disk-durable 4 KiB writes, one at a time: p50 ${us(q(ours, 0.5))} µs, p99 ${us(q(ours, 0.99))} µs (limit pair: p50 ${us(q(theirs, 0.5))} µs, p99 ${us(q(theirs, 0.99))} µs)`);
}

// --- bulk: 1 MiB disk writes, one at a time --------------------------------------------------

const BULK_MIB = 32;

async function bulkWrite(primary: Memory, single: Memory, child: NodeProcess): Promise<void> {
  const a = await primary.allocate(BULK_MIB * MIB, { policy: 'disk' });
  const b = await single.allocate(BULK_MIB * MIB, { policy: 'disk' });
  const writer = (m: Memory, id: string) => {
    let n = 0;
    const buf = Buffer.alloc(MIB);
    return async () => {
      const at = (n % BULK_MIB) * MIB;
      const data = pattern(++n, at, MIB, buf);
      await m.write(id, at, data);
      return { at, data };
    };
  };
  const pair = writer(primary, a.id);
  const one = writer(single, b.id);
  await compare({
    suite: 'mirror', name: 'bulk_write', opsPerRun: 1,
    ours: {
      name: 'twinpage pair, write 1 MiB (disk)', run: pair,
      check: async () => {
        const { at, data } = await pair();
        expectBytes('pair bulk write, on the primary', await primary.read(a.id, at, MIB), data);
        expectBytes('pair bulk write, on the secondary process', await readFrom(child, a.id, at, MIB), data);
      },
    },
    others: [{
      name: 'twinpage one node, write 1 MiB (disk)', run: one,
      check: async () => {
        const { at, data } = await one();
        expectBytes('one node bulk write', await single.read(b.id, at, MIB), data);
      },
    }],
  });
}

// --- resync ---------------------------------------------------------------------------

const RESYNC_PAGES = 4096;

/**
 * Resync of pages written while degraded, against a sequential copy of as
 * many bytes (1 MiB reads from one file, 1 MiB writes to another, then
 * fdatasync), in rounds, the order alternating.
 */
async function resync(primary: MirroredMemory, dir: string, port: number, child: NodeProcess): Promise<void> {
  const bytes = RESYNC_PAGES * PAGE;
  const b = await primary.allocate(sizeFor('disk', bytes), { policy: 'disk' });
  const src = join(dir, 'copy-source');
  {
    const fh = await open(src, 'w');
    for (let at = 0; at < bytes; at += MIB) await fh.write(pattern(0xC0, at, Math.min(MIB, bytes - at)), 0, Math.min(MIB, bytes - at), at);
    await fh.datasync();
    await fh.close();
  }
  let seed = 0xD000;
  const resyncOnce = async (): Promise<number> => {
    // Degrade: swap the TCP link for an in-process one whose far end is gone.
    const [near, far] = inProcessPair();
    primary.mirror.attach(near);
    far.close();
    await sleep(10);
    const s = ++seed;
    for (let at = 0; at < bytes; at += MIB) await primary.write(b.id, at, pattern(s, at, MIB));
    const lag = primary.mirror.sense().lagPages;
    if (lag < RESYNC_PAGES) throw new Error(`resync: only ${lag} pages lag behind`);
    const link = await connectTcp({ host: '127.0.0.1', port, secret: SECRET, nodeId: 'bench-primary' });
    const t = performance.now();
    primary.mirror.attach(link);
    await primary.mirror.resync();
    const ms = performance.now() - t;
    // Checked: the secondary process holds every byte.
    const report = await primary.mirror.verify();
    if (report.differences.length) throw new Error(`resync left ${report.differences.length} differences`);
    for (let at = 0; at < bytes; at += MIB) {
      expectBytes(`resync: MiB ${at / MIB} on the secondary process`, await readFrom(child, b.id, at, MIB), pattern(s, at, MIB));
    }
    return ms;
  };
  const copyOnce = async (): Promise<number> => {
    const dst = join(dir, 'copy-target');
    await rm(dst, { force: true });
    const buf = Buffer.allocUnsafe(MIB);
    const t = performance.now();
    const from = await open(src, 'r');
    const to = await open(dst, 'w');
    for (let at = 0; at < bytes;) {
      const { bytesRead } = await from.read(buf, 0, MIB, at);
      if (bytesRead === 0) throw new Error('copy: the source ended early');
      const { bytesWritten } = await to.write(buf, 0, bytesRead, at);
      if (bytesWritten !== bytesRead) throw new Error('copy: short write');
      at += bytesRead;
    }
    await to.datasync();
    const ms = performance.now() - t;
    await from.close();
    await to.close();
    // Checked: the copy holds every byte.
    const check = await open(dst, 'r');
    const got = Buffer.alloc(MIB);
    for (let at = 0; at < bytes; at += MIB) {
      await check.read(got, 0, MIB, at);
      expectBytes(`copy: MiB ${at / MIB}`, got, pattern(0xC0, at, MIB));
    }
    await check.close();
    return ms;
  };
  await resyncOnce(); // warm-up (and the first check)
  await copyOnce();
  const resyncMs: number[] = [];
  const copyMs: number[] = [];
  for (let r = 0; r < BENCH_ROUNDS; r++) {
    if (r % 2 === 0) {
      resyncMs.push(await resyncOnce());
      copyMs.push(await copyOnce());
    } else {
      copyMs.push(await copyOnce());
      resyncMs.push(await resyncOnce());
    }
  }
  const mibs = (ms: number) => (bytes / MIB / (ms / 1000)).toFixed(0);
  console.log(`  mirror.resync ${RESYNC_PAGES} pages (${bytes / MIB} MiB): resync median ${median(resyncMs).toFixed(1)} ms (${mibs(median(resyncMs))} MiB/s) [${Math.min(...resyncMs).toFixed(1)}..${Math.max(...resyncMs).toFixed(1)}], sequential copy median ${median(copyMs).toFixed(1)} ms (${mibs(median(copyMs))} MiB/s) [${Math.min(...copyMs).toFixed(1)}..${Math.max(...copyMs).toFixed(1)}]`);
  report('mirror.resync', copyMs.map((c, i) => c / resyncMs[i]), '>= 0.8');
}

// --- rejoin after a crash with a 48 MiB journal ----------------------------------------------

const REJOIN_JOURNAL = 48 * MIB;

/** Bytes of the journal files (wal.*) in a node's folder. */
async function journalBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) if (f.startsWith('wal.')) n += (await stat(join(dir, f))).size;
  return n;
}

/**
 * A secondary `twinpage serve` process takes 4 KiB disk writes until its
 * journal holds 48 MiB (its default checkpointBytes, 64 MiB, keeps it from
 * checkpointing), is SIGKILLed and started again on the same folder; timed
 * from the start of the new process to its `connected` event (the primary,
 * in this process, connects as soon as the new process listens). Checked:
 * the restarted secondary holds every page as last written.
 */
export async function rejoin(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-rejoin-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, SECRET + '\n', { mode: 0o600 });
  const sdir = join(dir, 'secondary');
  const args = ['--dir', sdir, '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secret];
  let child = new NodeProcess(args);
  let primary: MirroredMemory | null = null;
  try {
    const { port } = await child.event('listening');
    primary = await openMemory({
      store: join(dir, 'primary'), flushIntervalMs: 0, policies, checkpointBytes: 1 << 30,
      mirror: { role: 'primary', transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret: SECRET, nodeId: 'bench-primary' }) },
    }) as MirroredMemory;
    await child.event('connected');
    const block = await primary.allocate(sizeFor('disk'), { policy: 'disk' });
    const last = new Map<number, number>();
    const next = batches(11, PAGES, BATCH, PAGE);
    let journal = 0;
    let writes = 0;
    const fillStart = performance.now();
    // The journal is zeroed up to 2 MiB ahead of its records: go 2 MiB past.
    while ((journal = await journalBytes(sdir)) < REJOIN_JOURNAL + 2 * MIB) {
      // A journal that never gets there was checkpointed on the way (serve's checkpointBytes is below 50 MiB).
      if (writes > 4 * ((REJOIN_JOURNAL + 2 * MIB) / PAGE)) throw new Error(`rejoin: the secondary's journal holds ${(journal / MIB).toFixed(1)} MiB after ${writes} writes: it checkpoints before 48 MiB`);
      for (let i = 0; i < 32; i++) {
        const list = next();
        await Promise.all(list.map(({ p, data }) => primary!.write(block.id, p * PAGE, data)));
        for (const { p, seed } of list) last.set(p, seed);
        writes += list.length;
      }
    }
    const fillMs = performance.now() - fillStart;
    await child.kill();
    const times: Record<string, number> = {};
    const start = performance.now();
    child = new NodeProcess(args);
    child.onEvent((e) => { times[e.event as string] ??= performance.now() - start; });
    const { port: port2 } = await child.event('listening', 60000);
    primary.mirror.attach(await connectTcp({ host: '127.0.0.1', port: port2 as number, secret: SECRET, nodeId: 'bench-primary' }));
    await child.event('connected', 60000);
    await primary.mirror.resync();
    for (let p = 0; p < PAGES; p++) {
      const seed = last.get(p);
      const want = seed === undefined ? new Uint8Array(PAGE) : pattern(seed, p * PAGE, PAGE);
      expectBytes(`rejoin: page ${p} on the restarted secondary`, await readFrom(child, block.id, p * PAGE, PAGE), want);
    }
    const journalAfter = await journalBytes(sdir);
    console.log(`mirror.rejoin_48mib_ms ${times.connected.toFixed(0)}  (goal <= 300)`);
    figure('mirror.rejoin_48mib', `${times.connected.toFixed(0)} ms start to connected: ${times.listening.toFixed(0)} ms to listening (process start, journal replay, open), ${(times.connected - times.listening).toFixed(0)} ms more to connected; journal ${(journal / MIB).toFixed(1)} MiB (${writes} writes in ${(fillMs / 1000).toFixed(1)} s; ${(journalAfter / MIB).toFixed(1)} MiB after the restart's checkpoint); every page checked on the restarted node`);
  } finally {
    await primary?.close().catch(() => {});
    await child.close().catch(() => child.kill());
    await rm(dir, { recursive: true, force: true });
  }
}
