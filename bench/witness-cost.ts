// failover.witness_cost: what a witness costs a pair in steady state. Two
// pairs side by side, each a primary in this process and its secondary a
// `twinpage serve` child process over TCP on loopback, the same workload
// (16 disk-durable 4 KiB writes in flight, as mirror.write_disk); one pair
// runs with a `twinpage witness` as its arbiter (both nodes), the other
// without. Connected, a primary acknowledges with its partner and does not ask
// the witness, so the goal is no visible cost: >= 0.98x.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemory, type MirroredMemory } from '../bindings/index.js';
import { WitnessArbiter } from '../bindings/mirror/witness.js';
import { connectTcp } from '../bindings/mirror/transports/tcp.js';
import { NodeProcess } from '../test/pair-process.js';
import { WitnessProcess } from '../test/witness-process.js';
import { BENCH_ROUNDS, batches, compare, expectBytes } from './util.js';

const PAGE = 4096;
const PAGES = 1024;
const BATCH = 16;
const SECRET = 'bench secret for the witness cost';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pair { primary: MirroredMemory; child: NodeProcess; block: string }

/** A primary here and its secondary as a serve process; with `witnessPort`, both use that witness. */
async function pair(dir: string, name: string, secretFile: string, witnessPort: number | null): Promise<Pair> {
  const quorum = witnessPort === null ? [] : ['--witness', `127.0.0.1:${witnessPort}`];
  const child = new NodeProcess(['--dir', join(dir, `${name}-secondary`), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secretFile, ...quorum]);
  const { port } = await child.event('listening');
  const arbiter = witnessPort === null ? undefined : new WitnessArbiter({ host: '127.0.0.1', port: witnessPort, secret: SECRET });
  const primary = await openMemory({
    store: join(dir, `${name}-primary`), flushIntervalMs: 0,
    mirror: { role: 'primary', arbiter, transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret: SECRET, nodeId: `bench-${name}` }) },
  }) as MirroredMemory;
  await child.event('connected');
  // The default policy: durability disk, as mirror.write_disk.
  const b = await primary.allocate(PAGES * PAGE);
  return { primary, child, block: b.id };
}

async function readFrom(node: NodeProcess, block: string, offset: number): Promise<Buffer> {
  const r = await node.send({ cmd: 'read', block, offset, length: PAGE });
  if (!r.ok) throw new Error(`read from the secondary process: ${String(r.code)} ${String(r.error)}`);
  return Buffer.from(r.data as string, 'base64');
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-witness-cost-'));
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET + '\n', { mode: 0o600 });
  const witness = await WitnessProcess.start(join(dir, 'witness'), secretFile);
  const pairs: Pair[] = [];
  try {
    const plain = await pair(dir, 'plain', secretFile, null);
    pairs.push(plain);
    const voted = await pair(dir, 'witness', secretFile, witness.port);
    pairs.push(voted);
    const runner = (p: Pair) => {
      const next = batches(11, PAGES, BATCH, PAGE);
      return async () => {
        const list = next();
        await Promise.all(list.map(({ p: page, data }) => p.primary.write(p.block, page * PAGE, data)));
        return list;
      };
    };
    const check = (p: Pair, run: ReturnType<typeof runner>, what: string) => async () => {
      for (const { p: page, data } of await run()) {
        expectBytes(`${what}: page ${page} on the primary`, await p.primary.read(p.block, page * PAGE, PAGE), data);
        expectBytes(`${what}: page ${page} on the secondary process`, await readFrom(p.child, p.block, page * PAGE), data);
      }
      // Connected, the witness was never needed: no lease held.
      if (p.primary.mirror.sense().quorum?.held) throw new Error(`${what}: the primary holds a lease while connected`);
    };
    const withRun = runner(voted);
    const withoutRun = runner(plain);
    const WITH = `pair with a witness (disk) x${BATCH}`;
    const WITHOUT = `pair without an arbiter (disk) x${BATCH}`;
    await compare({
      suite: 'failover', name: 'witness_cost', opsPerRun: BATCH, goal: '>= 0.98',
      // The two should be equal; a round's ratio swings by a third either way with the shared
      // disk's flushes (one run's 5 rounds: 0.56..1.15), so more rounds, to steady the median.
      rounds: Math.max(BENCH_ROUNDS, 12),
      ours: { name: WITH, run: withRun, check: check(voted, withRun, WITH) },
      others: [{ name: WITHOUT, run: withoutRun, check: check(plain, withoutRun, WITHOUT) }],
    });
  } finally {
    for (const p of pairs) {
      await p.primary.close().catch(() => {});
      await p.child.close().catch(() => p.child.kill());
    }
    await witness.kill('SIGTERM');
    await sleep(50);
    await rm(dir, { recursive: true, force: true });
  }
}
