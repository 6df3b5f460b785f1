// mirror.sealed_*: what sealing every frame (AES-256-GCM, the default) costs
// mirrored 4 KiB writes over TCP loopback, against the same link with
// insecurePlaintext. Two `twinpage serve` secondaries (one sealed, one
// plaintext), each with its primary in this process; the same workload on
// both, at `disk` and `memory` durability.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openMemory, type Memory, type MirroredMemory } from '../bindings/index.js';
import { connectTcp } from '../bindings/mirror/transports/tcp.js';
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

interface Pair { primary: MirroredMemory; child: NodeProcess }

async function startPair(dir: string, name: string, secretFile: string, secret: string, insecurePlaintext: boolean): Promise<Pair> {
  const child = new NodeProcess([
    '--dir', join(dir, `${name}-secondary`), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secretFile,
    ...(insecurePlaintext ? ['--insecure-plaintext'] : []),
  ]);
  try {
    const { port } = await child.event('listening');
    const primary = await openMemory({
      store: join(dir, `${name}-primary`), flushIntervalMs: 0, policies,
      mirror: { role: 'primary', transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret, nodeId: `bench-${name}`, insecurePlaintext }) },
    }) as MirroredMemory;
    await child.event('connected');
    return { primary, child };
  } catch (err) {
    await child.close().catch(() => child.kill());
    throw err;
  }
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-bench-'));
  const secret = randomBytes(32).toString('base64');
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, secret + '\n', { mode: 0o600 });
  const pairs: Pair[] = [];
  try {
    pairs.push(await startPair(dir, 'sealed', secretFile, secret, false));
    pairs.push(await startPair(dir, 'plaintext', secretFile, secret, true));
    const [sealed, plaintext] = pairs as [Pair, Pair];
    for (const durability of ['disk', 'memory'] as const) await writes(sealed.primary, plaintext.primary, durability);
  } finally {
    for (const p of pairs) {
      await p.primary.close().catch(() => {});
      await p.child.close().catch(() => p.child.kill());
    }
    await rm(dir, { recursive: true, force: true });
  }
}

async function writes(sealed: Memory, plaintext: Memory, durability: 'memory' | 'disk'): Promise<void> {
  const size = durability === 'memory' ? PAGES * PAGE : PAGES * PAGE + 1;
  const a = await sealed.allocate(size, { policy: durability });
  const b = await plaintext.allocate(size, { policy: durability });
  // Every page written once on both first: what is timed is the link, not the files growing
  // (tinybench times its contenders one after the other, so first writes would land on one).
  for (const [m, id] of [[sealed, a.id], [plaintext, b.id]] as const) {
    for (let p = 0; p < PAGES; p += BATCH) await Promise.all(Array.from({ length: BATCH }, (_, k) => m.write(id, (p + k) * PAGE, page(p + k))));
  }
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
    suite: 'mirror', name: `sealed_${durability}`, opsPerRun: BATCH,
    ours: { name: `sealed pair over TCP (${durability}) x${BATCH}`, run: run(sealed, a.id), check: check(sealed, a.id) },
    others: [{ name: `insecurePlaintext pair (${durability}) x${BATCH}`, run: run(plaintext, b.id), check: check(plaintext, b.id) }],
  });
}
