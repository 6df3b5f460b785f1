// `twinpage bench`: a quick benchmark that runs from the installed package.
// 4 KiB page writes, 16 in flight, to one node, and to a primary in this
// process whose secondary is a `twinpage serve` child process over TCP on
// loopback; at `memory` and at `disk` durability. Prints writes per second
// and, like `npm run bench`, `ratio mirror.write_<durability> <pair / one node>`,
// measured the same way: the two cases interleaved in rounds (the order
// alternating), the ratio the median of the rounds' ratios. Every round is
// checked: its last batch read back from the node, and for the pair from the
// secondary process too; the pair is verified at the end.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openMemory, TwinpageError, type Memory, type MirroredMemory } from '../index.js';
import { connectTcp } from '../mirror/transports/tcp.js';
import { mapFsError } from '../storage/file.js';
import { NodeProcess } from './node-process.js';
import { flag, out, parseOptions, positive, str, type Command } from './args.js';

const ROUNDS = 3;

const synopsis = 'usage: twinpage bench [--seconds S] [--dir DIR] [--json] [--verbose]';

const help = `A quick benchmark: 4 KiB page writes, 16 in flight, to random pages of a
4 MiB block, on one node and on a mirrored pair (a primary in this process, its
secondary a 'twinpage serve' child process, over TCP on loopback), at memory
and at disk durability. The one node and the pair run interleaved in ${ROUNDS}
rounds, so that load from elsewhere hits both alike. Prints writes per second
for each and a line 'ratio mirror.write_<durability> <pair / one node>', the
median of the rounds' ratios. Written pages are read back (from the secondary
too), and the pair is verified at the end (exit 1 on any difference).
Numbers depend on the machine and its disk; run it more than once.

  --seconds  seconds each of the four cases runs in all, over ${ROUNDS} rounds
             (default 1, at most 60)
  --dir      where the temporary data folders go (default: the system's temp
             folder); they are removed afterwards
  --json     print the results as JSON
  --verbose  print stack traces of errors`;

const PAGE = 4096;
const PAGES = 1024;
const IN_FLIGHT = 16;
const SECRET = 'twinpage bench secret';

interface CaseResult { name: string; node: 'one' | 'pair'; durability: 'memory' | 'disk'; writes: number; seconds: number; writesPerSec: number; usPerWrite: number }

function page(seed: number): Uint8Array {
  const b = new Uint8Array(PAGE).fill(seed & 0xFF);
  new DataView(b.buffer).setUint32(0, seed, true);
  return b;
}

/** Seeds of the pages written, so that every write is distinct. */
let nextSeed = 1;

/**
 * Writes batches of IN_FLIGHT distinct random pages for `seconds`; checks the
 * last batch by reading it back through `readBack` (the node, and for the pair
 * its secondary too).
 */
async function writeFor(memory: Memory, id: string, seconds: number, readBack: (p: number) => Promise<Array<Uint8Array | (() => Promise<Uint8Array>)>>): Promise<{ writes: number; seconds: number }> {
  let n = 0;
  let last: Array<{ p: number; data: Uint8Array }> = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const pages = new Set<number>();
    while (pages.size < IN_FLIGHT) pages.add(Math.floor(Math.random() * PAGES));
    last = [...pages].map((p) => ({ p, data: page(nextSeed++) }));
    await Promise.all(last.map(({ p, data }) => memory.write(id, p * PAGE, data)));
    n += last.length;
  }
  const elapsed = (performance.now() - start) / 1000;
  for (const { p, data } of last) {
    for (const got of await readBack(p)) {
      if (got instanceof Uint8Array) {
        if (Buffer.compare(got, data) !== 0) throw TwinpageError.corrupt(`bench: page ${p} did not read back as written`);
        continue;
      }
      // The secondary at memory durability: acknowledged on receipt, applied soon after.
      const until = performance.now() + 3000;
      for (;;) {
        if (Buffer.compare(await got(), data) === 0) break;
        if (performance.now() > until) throw TwinpageError.corrupt(`bench: page ${p} did not read back as written from the secondary process`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
  return { writes: n, seconds: elapsed };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function bench(seconds: number, base: string, print: (line: string) => void): Promise<{ cases: CaseResult[]; ratios: Record<string, number>; rounds: Record<string, number[]>; verify: { pages: number; differences: number } }> {
  let dir: string;
  try { dir = await mkdtemp(join(base, 'twinpage-bench-')); } catch (err) { throw mapFsError(err, `create a folder in ${base}`); }
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET + '\n', { mode: 0o600 });
  const policies = [
    { name: 'memory', maxSize: PAGES * PAGE, durability: 'memory' as const },
    { name: 'disk', maxSize: Infinity, durability: 'disk' as const },
  ];
  const secondary = new NodeProcess(['--dir', join(dir, 'secondary'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secretFile]);
  let primary: MirroredMemory | null = null;
  let single: Memory | null = null;
  try {
    const { port } = await secondary.event('listening', 15000);
    primary = await openMemory({
      store: join(dir, 'primary'), flushIntervalMs: 0, policies,
      mirror: { role: 'primary', transport: await connectTcp({ host: '127.0.0.1', port: port as number, secret: SECRET, nodeId: 'bench-primary' }) },
    }) as MirroredMemory;
    await secondary.event('connected', 15000);
    single = await openMemory({ store: join(dir, 'single'), flushIntervalMs: 0, policies });
    print(`twinpage bench: 4 KiB writes, ${IN_FLIGHT} in flight, ${seconds} s per case in ${ROUNDS} interleaved rounds (Node ${process.version}, data in ${dir})`);
    const cases: CaseResult[] = [];
    const ratios: Record<string, number> = {};
    const rounds: Record<string, number[]> = {};
    for (const durability of ['memory', 'disk'] as const) {
      const size = durability === 'memory' ? PAGES * PAGE : PAGES * PAGE + 1; // the policy goes by size
      const nodes = [['one', single], ['pair', primary]] as const;
      const blocks = [await single.allocate(size, { policy: durability }), await primary.allocate(size, { policy: durability })];
      const totals = [{ writes: 0, seconds: 0 }, { writes: 0, seconds: 0 }];
      const roundRatios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const rates = [0, 0];
        for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
          const memory = nodes[i][1];
          const id = blocks[i].id;
          const readBack = async (p: number): Promise<Array<Uint8Array | (() => Promise<Uint8Array>)>> => {
            const local = await memory.read(id, p * PAGE, PAGE);
            if (i === 0) return [local];
            const remote = async () => {
              const reply = await secondary.send({ cmd: 'read', block: id, offset: p * PAGE, length: PAGE });
              if (!reply.ok) throw TwinpageError.ioError(`bench: the secondary process could not read page ${p}: ${String(reply.error)}`);
              return Buffer.from(reply.data as string, 'base64');
            };
            return [local, durability === 'disk' ? await remote() : remote];
          };
          const w = await writeFor(memory, id, seconds / ROUNDS, readBack);
          totals[i].writes += w.writes;
          totals[i].seconds += w.seconds;
          rates[i] = w.writes / w.seconds;
        }
        roundRatios.push(rates[1] / rates[0]);
      }
      nodes.forEach(([node], i) => {
        const t = totals[i];
        const res: CaseResult = {
          name: `mirror.write_${durability}`, node, durability, writes: t.writes, seconds: t.seconds,
          writesPerSec: t.writes / t.seconds, usPerWrite: (t.seconds * 1e6) / t.writes,
        };
        cases.push(res);
        const label = node === 'one' ? `one node (${durability})` : `pair over TCP, 2 processes (${durability})`;
        print(`  ${`write_${durability}`.padEnd(12)}  ${label.padEnd(38)} ${res.writesPerSec.toFixed(0).padStart(8)} writes/s ${res.usPerWrite.toFixed(1).padStart(9)} µs/write`);
      });
      const ratio = median(roundRatios);
      ratios[`mirror.write_${durability}`] = ratio;
      rounds[`mirror.write_${durability}`] = roundRatios;
      print(`  rounds: ${roundRatios.map((x) => x.toFixed(2)).join(' ')}`);
      print(`ratio mirror.write_${durability} ${ratio.toFixed(2)}`);
    }
    const report = await primary.mirror.verify();
    print(`  verify: ${report.pages} pages compared with the secondary, ${report.differences.length ? `${report.differences.length} DIFFER` : 'no differences'}`);
    return { cases, ratios, rounds, verify: { pages: report.pages, differences: report.differences.length } };
  } finally {
    await primary?.close().catch(() => {});
    await single?.close().catch(() => {});
    const killer = setTimeout(() => void secondary.kill(), 10000);
    await secondary.close().catch(() => secondary.kill());
    clearTimeout(killer);
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'a quick benchmark: 4 KiB writes on one node and on a pair over loopback',
  synopsis,
  help,
  async run(argv) {
    const o = parseOptions(argv, { '--seconds': 'value', '--dir': 'value', '--json': 'flag' });
    const seconds = positive(o, '--seconds', 60) ?? 1;
    const json = flag(o, '--json');
    const result = await bench(seconds, resolve(str(o, '--dir') ?? tmpdir()), json ? () => {} : out);
    if (json) out(JSON.stringify({ node: process.version, pageBytes: PAGE, inFlight: IN_FLIGHT, secondsPerCase: seconds, ...result }, null, 2));
    return result.verify.differences ? 1 : 0;
  },
};
