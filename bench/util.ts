// Side-by-side comparisons on tinybench. Each contender's result is checked
// before anything is timed; each comparison ends with
//   ratio <suite>.<name> <twinpage throughput / the best other's>
import { Bench } from 'tinybench';

export interface Contender {
  name: string;
  /** One timed run: performs `opsPerRun` operations. May be async. */
  run: () => unknown;
  /** Throws when the contender computes a wrong result. Runs before timing. */
  check: () => void | Promise<void>;
}

export interface Comparison {
  suite: string;
  name: string;
  /** Operations one `run()` performs, to report per-operation throughput. */
  opsPerRun: number;
  /** twinpage's contender first, then the others. */
  ours: Contender;
  others: Contender[];
}

export interface Measured { name: string; opsPerSec: number; nsPerOp: number }

/** Milliseconds each contender is timed for (BENCH_TIME overrides). */
export const BENCH_TIME = Number(process.env.BENCH_TIME ?? 700);

export async function compare(c: Comparison): Promise<{ ratio: number; measured: Measured[] }> {
  const all = [c.ours, ...c.others];
  for (const k of all) await k.check();
  const bench = new Bench({ time: BENCH_TIME, warmupTime: Math.min(200, BENCH_TIME / 3) });
  for (const k of all) bench.add(k.name, k.run as () => void);
  await bench.run();
  const measured: Measured[] = bench.tasks.map((t) => {
    const r = t.result as { state?: string; throughput?: { mean: number }; error?: unknown };
    if (!r.throughput) throw new Error(`${c.suite}.${c.name}: ${t.name} did not complete: ${String(r.error ?? r.state)}`);
    const opsPerSec = r.throughput.mean * c.opsPerRun;
    return { name: t.name, opsPerSec, nsPerOp: 1e9 / opsPerSec };
  });
  for (const m of measured) {
    console.log(`  ${c.suite}.${c.name}  ${m.name.padEnd(34)} ${fmt(m.opsPerSec).padStart(12)} ops/s  ${m.nsPerOp.toFixed(1).padStart(10)} ns/op`);
  }
  const best = Math.max(...measured.slice(1).map((m) => m.opsPerSec));
  const ratio = measured[0].opsPerSec / best;
  console.log(`ratio ${c.suite}.${c.name} ${ratio.toFixed(2)}`);
  return { ratio, measured };
}

export function fmt(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(2) + 'k';
  return n.toFixed(1);
}

/** Throws when `actual` differs from `expected`. */
export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`${what}: got ${String(actual)}, expected ${String(expected)}`);
}

/** A deterministic PRNG (mulberry32) so every run benchmarks the same data. */
export { mulberry32 as rng } from '../bindings/mirror/transports/faulty.js';
