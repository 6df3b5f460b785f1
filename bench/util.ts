// Side-by-side comparisons, measured as DESIGN.md ("Performance, as ratios
// measured side by side in one run") asks:
//
//   1. every contender's result is checked before anything is timed;
//   2. each contender warms up (untimed);
//   3. rounds: every contender runs for BENCH_TIME ms in turn, the order
//      rotating each round (A B C, then B C A, then C A B, ...), so load on a
//      shared machine hits every contender alike;
//   4. a contender's figure for a round is its operations over its time in
//      that round (not a mean of per-call rates, which is biased low);
//   5. printed: each contender's median over the rounds with the range, and
//        ratio <suite>.<name> <median of per-round ratios>  range <lo>..<hi>
//      where a round's ratio is twinpage's figure over the best other's in
//      that round. Extra ratio lines (a pair against its limit program, ...)
//      come from the same rounds.
//
// tinybench is no longer used: it times contenders one after the other and
// reports the mean of per-iteration throughput; neither is what the design asks.

export interface Contender {
  name: string;
  /** One call: performs `opsPerRun` operations. May be async. */
  run: () => unknown;
  /** Throws when the contender computes a wrong result. Runs before timing. */
  check: () => void | Promise<void>;
  /** Operations one `run()` performs, when not the comparison's `opsPerRun`. */
  opsPerRun?: number;
  /** Untimed, before each of this contender's turns (e.g. a reopen for a cold cache). */
  before?: () => unknown;
}

/** A ratio between two contenders of one comparison, from the same rounds. */
export interface ExtraRatio {
  /** Printed as `ratio <suite>.<name>`. */
  name: string;
  /** Contender names: `of`'s figure over `over`'s, per round. */
  of: string;
  over: string;
  /** Printed beside the figure, e.g. ">= 0.9". */
  goal?: string;
}

export interface Comparison {
  suite: string;
  name: string;
  /** Operations one `run()` performs, to report per-operation throughput. */
  opsPerRun: number;
  /** twinpage's contender first, then the others: `ratio <suite>.<name>` is ours over the best other. */
  ours: Contender;
  others: Contender[];
  /** Contenders timed in the same rounds but left out of the main ratio (limit programs, references). */
  also?: Contender[];
  /** Further ratio lines computed from the same rounds. */
  ratios?: ExtraRatio[];
  /** The goal of the main ratio, printed beside it (e.g. ">= 1.3"). */
  goal?: string;
  /** Rounds and ms per turn for this comparison, when not BENCH_ROUNDS / BENCH_TIME. */
  rounds?: number;
  timeMs?: number;
}

export interface Measured {
  name: string;
  /** Median over the rounds of operations per second. */
  opsPerSec: number;
  nsPerOp: number;
  /** Each round's operations per second, in round order. */
  perRound: number[];
  min: number;
  max: number;
}

export interface RatioResult { name: string; median: number; min: number; max: number; perRound: number[]; goal?: string }

/** Milliseconds each contender is timed for, per round (BENCH_TIME). */
export const BENCH_TIME = positiveEnv('BENCH_TIME', 1000);
/** Rounds per comparison (BENCH_ROUNDS). */
export const BENCH_ROUNDS = positiveEnv('BENCH_ROUNDS', 5);
/** Untimed warm-up of each contender before the rounds, ms (BENCH_WARMUP). */
export const BENCH_WARMUP = positiveEnv('BENCH_WARMUP', Math.min(300, BENCH_TIME));

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new TypeError(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** Every ratio printed in this process, for the summary at the end. */
export const ratioLog: RatioResult[] = [];

/** Every `label value` line printed for a measured figure without a ratio (latencies, times). */
export const figureLog: Array<{ name: string; text: string }> = [];

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const isThenable = (x: unknown): x is PromiseLike<unknown> =>
  x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';

/**
 * Runs `k` for `ms` (at least one call) and returns operations and elapsed
 * ms: the operations of every call over the time from the first call's start
 * to the last call's end.
 */
async function timed(k: Contender, ops: number, ms: number): Promise<{ ops: number; ms: number }> {
  let calls = 0;
  const start = performance.now();
  const end = start + ms;
  let now = start;
  // The first call tells whether the contender is async; each loop then stays monomorphic.
  const first = k.run();
  if (isThenable(first)) {
    await first;
    calls++;
    now = performance.now();
    while (now < end) {
      await k.run();
      calls++;
      now = performance.now();
    }
  } else {
    calls++;
    now = performance.now();
    while (now < end) {
      k.run();
      calls++;
      now = performance.now();
    }
  }
  return { ops: calls * ops, ms: now - start };
}

/** Checks, warms up and times every contender in rotating rounds; prints the figures and ratio lines. */
export async function compare(c: Comparison): Promise<{ ratio: number; range: [number, number]; measured: Measured[]; ratios: Record<string, RatioResult> }> {
  const main = [c.ours, ...c.others];
  const all = [...main, ...(c.also ?? [])];
  const names = new Set<string>();
  for (const k of all) {
    if (names.has(k.name)) throw new Error(`${c.suite}.${c.name}: two contenders are named "${k.name}"`);
    names.add(k.name);
  }
  for (const r of c.ratios ?? []) {
    if (!names.has(r.of) || !names.has(r.over)) throw new Error(`${c.suite}.${r.name}: no contender "${names.has(r.of) ? r.over : r.of}"`);
  }
  const rounds = c.rounds ?? BENCH_ROUNDS;
  const time = c.timeMs ?? BENCH_TIME;
  const opsOf = (k: Contender) => k.opsPerRun ?? c.opsPerRun;

  for (const k of all) {
    try {
      await k.check();
    } catch (err) {
      throw new Error(`${c.suite}.${c.name}: the check of "${k.name}" failed: ${(err as Error).message}`, { cause: err });
    }
  }
  for (const k of all) {
    if (k.before) await k.before();
    await timed(k, opsOf(k), Math.min(BENCH_WARMUP, time));
  }

  const perRound: number[][] = all.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < all.length; i++) {
      const at = (i + r) % all.length;
      const k = all[at];
      if (k.before) await k.before();
      const t = await timed(k, opsOf(k), time);
      perRound[at].push((t.ops / t.ms) * 1000);
    }
  }

  const measured: Measured[] = all.map((k, i) => {
    const opsPerSec = median(perRound[i]);
    return { name: k.name, opsPerSec, nsPerOp: 1e9 / opsPerSec, perRound: perRound[i], min: Math.min(...perRound[i]), max: Math.max(...perRound[i]) };
  });
  const width = Math.max(34, ...all.map((k) => k.name.length));
  for (const m of measured) {
    const extra = main.some((k) => k.name === m.name) ? '' : '  (ratio lines only)';
    console.log(`  ${c.suite}.${c.name}  ${m.name.padEnd(width)} ${fmt(m.opsPerSec).padStart(9)} ops/s  [${fmt(m.min)}..${fmt(m.max)}]  ${fmtNs(m.nsPerOp).padStart(9)}/op${extra}`);
  }

  const perRoundRatio = (of: number, over: number[]) =>
    perRound[of].map((v, r) => v / Math.max(...over.map((o) => perRound[o][r])));
  const mainRatio = report(`${c.suite}.${c.name}`, perRoundRatio(0, main.slice(1).map((_, i) => i + 1)), c.goal);
  const ratios: Record<string, RatioResult> = {};
  const index = (name: string) => all.findIndex((k) => k.name === name);
  for (const x of c.ratios ?? []) {
    ratios[x.name] = report(`${c.suite}.${x.name}`, perRoundRatio(index(x.of), [index(x.over)]), x.goal);
  }
  return { ratio: mainRatio.median, range: [mainRatio.min, mainRatio.max], measured, ratios };
}

/** Prints `ratio <name> <median>  range <lo>..<hi>` for per-round ratios, and logs it for the summary. */
export function report(name: string, perRound: number[], goal?: string): RatioResult {
  const r: RatioResult = { name, median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound, goal };
  console.log(`ratio ${name} ${r.median.toFixed(2)}  range ${r.min.toFixed(2)}..${r.max.toFixed(2)} over ${perRound.length} rounds${goal ? `  (goal ${goal})` : ''}`);
  ratioLog.push(r);
  return r;
}

/** Prints a figure line (`  <name> <text>`) and logs it for the summary. */
export function figure(name: string, text: string): void {
  console.log(`  ${name} ${text}`);
  figureLog.push({ name, text });
}

export function fmt(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(2) + 'k';
  return n.toFixed(1);
}

export function fmtNs(ns: number): string {
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + ' ms';
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + ' µs';
  return ns.toFixed(1) + ' ns';
}

/** Throws when `actual` differs from `expected`. */
export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`${what}: got ${String(actual)}, expected ${String(expected)}`);
}

/** The unit of `pattern`: the benchmarks' page size. */
export const PATTERN_UNIT = 4096;
const patternWord = Buffer.alloc(8);

/**
 * Distinctive content for `length` bytes at byte `at` of a block: every 8
 * bytes of each 4 KiB page hold the writer's seed (u32 LE) and the page's
 * number in the block (u32 LE). A page left stale (another seed), zero, or
 * written to the wrong place (another number) differs in every 8 bytes from
 * what was meant. Filled natively (Buffer.fill), so making the data costs
 * each contender little next to what is timed. `at` and `length` are
 * multiples of 4 KiB; `into` is reused when given.
 */
export function pattern(seed: number, at: number, length: number, into?: Uint8Array): Buffer {
  if (at % PATTERN_UNIT !== 0 || length % PATTERN_UNIT !== 0) throw new RangeError('pattern: at and length must be multiples of 4096');
  const out = into ? Buffer.from(into.buffer, into.byteOffset, length) : Buffer.allocUnsafe(length);
  patternWord.writeUInt32LE(seed >>> 0, 0);
  for (let u = 0; u < length; u += PATTERN_UNIT) {
    patternWord.writeUInt32LE((at + u) / PATTERN_UNIT, 4);
    out.fill(patternWord, u, u + PATTERN_UNIT);
  }
  return out;
}

/**
 * Batches of `size` writes to distinct random pages among `pages`, each
 * page's data a `pattern` with the next seed (1, 2, ...). The buffers are
 * reused from one batch to the next: every contender copies what it writes
 * before its write resolves, and a check keeps what it compares against.
 */
export function batches(seed: number, pages: number, size: number, pageSize = PATTERN_UNIT): () => Array<{ p: number; data: Buffer; seed: number }> {
  const random = rng(seed);
  const bufs = Array.from({ length: size }, () => Buffer.alloc(pageSize));
  const chosen = new Set<number>();
  let n = 0;
  return () => {
    chosen.clear();
    while (chosen.size < size) chosen.add(Math.floor(random() * pages));
    let i = 0;
    const out: Array<{ p: number; data: Buffer; seed: number }> = [];
    for (const p of chosen) {
      const s = ++n;
      out.push({ p, data: pattern(s, p * pageSize, pageSize, bufs[i++]), seed: s });
    }
    return out;
  };
}

/** Throws unless `actual` holds exactly `expected`, naming the first differing byte. */
export function expectBytes(what: string, actual: Uint8Array, expected: Uint8Array): void {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} bytes, expected ${expected.length}`);
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  throw new Error(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]} (a stale, zero or misplaced page)`);
}

/** A deterministic PRNG (mulberry32) so every run benchmarks the same data. */
import { mulberry32 as rng } from '../bindings/mirror/transports/faulty.js';
export { rng };
