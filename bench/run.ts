// npm run bench [-- suite ...]: runs the named suites (all when none is named).
// BENCH_ROUNDS and BENCH_TIME set the rounds and the ms per contender's turn
// (bench/util.ts); BENCH_BLOCKS the blocks of scale.open_blocks.
import { cpus } from 'node:os';
import { BENCH_ROUNDS, BENCH_TIME, BENCH_WARMUP, figureLog, ratioLog } from './util.js';

const SUITES: Record<string, () => Promise<unknown>> = {
  core: async () => {
    await (await import('./core-pagetable.js')).run();
    await (await import('./core-conflict.js')).run();
    await (await import('./core-bytes.js')).run();
  },
  memory: async () => (await import('./memory.js')).run(),
  sched: async () => (await import('./sched.js')).run(),
  mirror: async () => {
    await (await import('./mirror.js')).run();
    await (await import('./seal.js')).run();
  },
  // Failover through a witness and etcd (the demo, timed), and the witness's steady-state cost.
  failover: async () => (await import('./failover.js')).run(),
  scale: async () => {
    await (await import('./core-bitmap.js')).run();
    await (await import('./scale.js')).run();
  },
};

const asked = process.argv.slice(2);
const names = asked.length ? asked : Object.keys(SUITES);
for (const n of names) {
  if (!SUITES[n]) {
    console.error(`unknown suite "${n}"; suites: ${Object.keys(SUITES).join(', ')}`);
    process.exit(2);
  }
}
const started = performance.now();
console.log(`twinpage benchmarks, node ${process.version}, ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);
console.log(`method: contenders interleaved in ${BENCH_ROUNDS} rounds (order rotating), ${BENCH_TIME} ms each per round after ${BENCH_WARMUP} ms of warm-up; figures are medians over the rounds [range]`);
for (const n of names) {
  console.log(`\n# ${n}`);
  await SUITES[n]();
}
console.log(`\n# summary (${((performance.now() - started) / 1000).toFixed(0)} s)`);
for (const r of ratioLog) {
  console.log(`  ${r.name.padEnd(36)} ${r.median.toFixed(2).padStart(7)}  [${r.min.toFixed(2)}..${r.max.toFixed(2)}]${r.goal ? `  goal ${r.goal}` : ''}`);
}
for (const f of figureLog) console.log(`  ${f.name.padEnd(36)} ${f.text}`);
