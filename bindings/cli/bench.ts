// `twinpage bench`: a quick benchmark that runs from the installed package.
// 4 KiB page writes, 16 in flight, to one node, and to a primary in this
// process whose secondary is a `twinpage serve` child process over TCP on
// loopback; at `memory` and at `disk` durability. Prints writes per second
// and, like `npm run bench`, `ratio mirror.write_<durability> <pair / one node>`.
// Every case is checked: pages read back, and the pair verified at the end.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openMemory, TwinpageError, type Memory, type MirroredMemory } from '../index.js';
import { connectTcp } from '../mirror/transports/tcp.js';
import { mapFsError } from '../storage/file.js';
import { NodeProcess } from './node-process.js';
import { flag, out, parseOptions, positive, str, type Command } from './args.js';

const synopsis = 'usage: twinpage bench [--seconds S] [--dir DIR] [--json] [--verbose]';

const help = `A quick benchmark: 4 KiB page writes, 16 in flight, to random pages of a
4 MiB block, on one node and on a mirrored pair (a primary in this process, its
secondary a 'twinpage serve' child process, over TCP on loopback), at memory
and at disk durability. Prints writes per second for each and a line
'ratio mirror.write_<durability> <pair / one node>'. Every written page is
read back, and the pair is verified at the end (exit 1 on any difference).
Numbers depend on the machine and its disk; run it more than once.

  --seconds  seconds each of the four cases runs (default 1, at most 60)
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

/** Writes batches of IN_FLIGHT distinct random pages for `seconds`; checks the last batch. */
async function writeFor(memory: Memory, id: string, seconds: number): Promise<{ writes: number; seconds: number }> {
  let seed = 1;
  let n = 0;
  let last: Array<{ p: number; data: Uint8Array }> = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const pages = new Set<number>();
    while (pages.size < IN_FLIGHT) pages.add(Math.floor(Math.random() * PAGES));
    last = [...pages].map((p) => ({ p, data: page(seed++) }));
    await Promise.all(last.map(({ p, data }) => memory.write(id, p * PAGE, data)));
    n += last.length;
  }
  const elapsed = (performance.now() - start) / 1000;
  for (const { p, data } of last) {
    const got = await memory.read(id, p * PAGE, PAGE);
    if (Buffer.compare(got, data) !== 0) throw TwinpageError.corrupt(`bench: page ${p} did not read back as written`);
  }
  return { writes: n, seconds: elapsed };
}

async function bench(seconds: number, base: string, print: (line: string) => void): Promise<{ cases: CaseResult[]; ratios: Record<string, number>; verify: { pages: number; differences: number } }> {
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
    print(`twinpage bench: 4 KiB writes, ${IN_FLIGHT} in flight, ${seconds} s per case (Node ${process.version}, data in ${dir})`);
    const cases: CaseResult[] = [];
    const ratios: Record<string, number> = {};
    for (const durability of ['memory', 'disk'] as const) {
      const size = durability === 'memory' ? PAGES * PAGE : PAGES * PAGE + 1; // the policy goes by size
      const results: CaseResult[] = [];
      for (const [node, memory] of [['one', single], ['pair', primary]] as const) {
        const block = await memory.allocate(size, { policy: durability });
        const r = await writeFor(memory, block.id, seconds);
        const res: CaseResult = {
          name: `mirror.write_${durability}`, node, durability, writes: r.writes, seconds: r.seconds,
          writesPerSec: r.writes / r.seconds, usPerWrite: (r.seconds * 1e6) / r.writes,
        };
        results.push(res);
        const label = node === 'one' ? `one node (${durability})` : `pair over TCP, 2 processes (${durability})`;
        print(`  ${`write_${durability}`.padEnd(12)}  ${label.padEnd(38)} ${res.writesPerSec.toFixed(0).padStart(8)} writes/s ${res.usPerWrite.toFixed(1).padStart(9)} µs/write`);
      }
      cases.push(...results);
      const ratio = results[1].writesPerSec / results[0].writesPerSec;
      ratios[`mirror.write_${durability}`] = ratio;
      print(`ratio mirror.write_${durability} ${ratio.toFixed(2)}`);
    }
    const report = await primary.mirror.verify();
    print(`  verify: ${report.pages} pages compared with the secondary, ${report.differences.length ? `${report.differences.length} DIFFER` : 'no differences'}`);
    return { cases, ratios, verify: { pages: report.pages, differences: report.differences.length } };
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
