// The out-of-sync bitmap (PageBitmap) at scale, against the plain JS a
// caller would otherwise write:
//   scale.bitmap          1,000,000 scattered pages set one call each, then
//                         every run walked in address order (what a primary
//                         cut off from its partner records, then its resync
//                         reads); vs a JS Set of page numbers: add each, then
//                         sort and cut into runs. Pages spread over 2^28
//                         pages (1 TiB at 4 KiB pages).
//   scale.bitmap_64gib    the same over 2^24 pages (64 GiB)
//   scale.bitmap_4tib     the same over 2^30 pages (4 TiB): a chunk block
//                         for every 32768 pages spanned, as DRBD's bitmap.
//                         The wider the span, the more each set is a cache
//                         miss, for the bitmap as for the Set's hash table.
//   scale.bitmap_runs     64 runs of up to 1M pages set, counted, cleared;
//                         vs a dense JS Uint32Array bitmap (fill and popcount)
//   scale.bitmap_count    count() (the weight, kept) vs Set.size
// Each run starts from an empty bitmap (clearAll, new Set), and every
// contender's runs or counts are checked against the others' first.
import { PageBitmap } from '../bindings/index.js';
import { compare, expectEqual, rng } from './util.js';

const PAGES = Number(process.env.BENCH_BITMAP_PAGES ?? 1_000_000);

/** FNV-style hash of a run list, so that contenders compare in one number. */
const mix = (h: number, first: number, count: number) => Math.imul(Math.imul(h ^ first, 16777619) ^ count, 16777619);

/** Bitmap: set each page, walk the runs. Returns [runs, hash]. */
function viaBitmap(b: PageBitmap, pages: Uint32Array): [number, number] {
  b.clearAll();
  for (let i = 0; i < pages.length; i++) b.set(pages[i]);
  let runs = 0;
  let h = 0;
  let from = 0;
  for (;;) {
    const r = b.runs(from);
    for (let i = 0; i < r.length; i += 2) h = mix(h, r[i], r[i + 1]);
    runs += r.length >>> 1;
    if (r.length < 2 * b.runBatch) return [runs, h];
    from = r[r.length - 2] + r[r.length - 1];
  }
}

/** JS Set: add each page, sort, cut into runs. Returns [runs, hash]. */
function viaSet(pages: Uint32Array): [number, number] {
  const set = new Set<number>();
  for (let i = 0; i < pages.length; i++) set.add(pages[i]);
  const sorted = Uint32Array.from(set).sort();
  let runs = 0;
  let h = 0;
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i];
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[j - 1] + 1) j++;
    h = mix(h, first, j - i);
    runs++;
    i = j;
  }
  return [runs, h];
}

async function scattered(b: PageBitmap, name: string, span: number, seed: number): Promise<void> {
  const random = rng(seed);
  const pages = new Uint32Array(PAGES);
  // Mostly single pages, one write in eight a few pages long (so runs form).
  for (let i = 0; i < PAGES;) {
    const base = Math.floor(random() * (span - 8));
    const len = random() < 0.125 ? 1 + Math.floor(random() * 8) : 1;
    for (let k = 0; k < len && i < PAGES; k++) pages[i++] = base + k;
  }
  const want = viaSet(pages);
  let sink = 0;
  console.log(`  scale.${name}: ${PAGES} pages over ${span} pages, ${want[0]} runs`);
  await compare({
    suite: 'scale', name, opsPerRun: PAGES,
    ours: {
      name: 'twinpage PageBitmap set + runs',
      run: () => { sink ^= viaBitmap(b, pages)[1]; },
      check: () => {
        const got = viaBitmap(b, pages);
        expectEqual('runs', got[0], want[0]);
        expectEqual('run hash', got[1], want[1]);
        expectEqual('weight', b.count(), new Set(pages).size);
      },
    },
    others: [{
      name: 'JS Set add + sort + runs',
      run: () => { sink ^= viaSet(pages)[1]; },
      check: () => expectEqual('run hash', viaSet(pages)[1], want[1]),
    }],
  });
  const st = b.stats();
  console.log(`  scale.${name}: the bitmap holds ${st.chunks} chunk blocks, ${st.directories} directories, ${(st.memoryBytes / 2 ** 20).toFixed(1)} MiB of memory`);
  if (sink === 0.5) console.log(sink);
}

/** Popcount of a u32. */
function pop32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0F0F0F0F, 0x01010101) >>> 24);
}

/** The plain JS bitmap: one Uint32Array over the span. set/clear return how many bits changed. */
class DenseBitmap {
  readonly words: Uint32Array;
  weight = 0;
  constructor(pages: number) { this.words = new Uint32Array(Math.ceil(pages / 32)); }

  #apply(first: number, count: number, on: boolean): number {
    const w = this.words;
    const end = first + count;
    let changed = 0;
    let i = first >>> 5;
    const last = (end - 1) >>> 5;
    for (; i <= last; i++) {
      const lo = i === first >>> 5 ? first & 31 : 0;
      const hi = i === last ? ((end - 1) & 31) + 1 : 32;
      const mask = hi - lo === 32 ? 0xFFFFFFFF : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      const v = w[i];
      changed += pop32(on ? mask & ~v : mask & v);
      w[i] = on ? v | mask : v & ~mask;
    }
    this.weight += on ? changed : -changed;
    return changed;
  }

  set(first: number, count: number): number { return this.#apply(first, count, true); }
  clear(first: number, count: number): number { return this.#apply(first, count, false); }
  countRange(first: number, count: number): number {
    const w = this.words;
    const end = first + count;
    let n = 0;
    for (let i = first >>> 5; i <= (end - 1) >>> 5; i++) {
      const lo = i === first >>> 5 ? first & 31 : 0;
      const hi = i === (end - 1) >>> 5 ? ((end - 1) & 31) + 1 : 32;
      const mask = hi - lo === 32 ? 0xFFFFFFFF : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      n += pop32(w[i] & mask);
    }
    return n;
  }
}

async function longRuns(b: PageBitmap): Promise<void> {
  const SPAN = 1 << 28;
  const RUNS = 64;
  const random = rng(64);
  const firsts: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const count = 1 + Math.floor(random() * 1_000_000);
    firsts.push(Math.floor(random() * (SPAN - count)));
    counts.push(count);
  }
  const dense = new DenseBitmap(SPAN);
  // One round: set every run, count each, clear every run; the sum of what
  // each step reports, so that contenders check against each other.
  const roundBitmap = () => {
    let s = 0;
    for (let i = 0; i < RUNS; i++) s += b.set(firsts[i], counts[i]);
    for (let i = 0; i < RUNS; i++) s += b.countRange(firsts[i], counts[i]);
    for (let i = 0; i < RUNS; i++) s += b.clear(firsts[i], counts[i]);
    return s + b.count();
  };
  const roundDense = () => {
    let s = 0;
    for (let i = 0; i < RUNS; i++) s += dense.set(firsts[i], counts[i]);
    for (let i = 0; i < RUNS; i++) s += dense.countRange(firsts[i], counts[i]);
    for (let i = 0; i < RUNS; i++) s += dense.clear(firsts[i], counts[i]);
    return s + dense.weight;
  };
  b.clearAll();
  const want = roundDense();
  const pages = counts.reduce((s, c) => s + c, 0);
  console.log(`  scale.bitmap_runs: ${RUNS} runs, ${pages} pages (with overlaps) over ${SPAN} pages; a run = set, count and clear of each`);
  let sink = 0;
  await compare({
    suite: 'scale', name: 'bitmap_runs', opsPerRun: 3 * RUNS,
    ours: { name: 'twinpage PageBitmap set/countRange/clear', run: () => { sink ^= roundBitmap(); }, check: () => expectEqual('sum', roundBitmap(), want) },
    others: [{ name: 'JS Uint32Array bitmap (fill + popcount)', run: () => { sink ^= roundDense(); }, check: () => expectEqual('sum', roundDense(), want) }],
  });
  if (sink === 0.5) console.log(sink);
}

async function weight(b: PageBitmap): Promise<void> {
  const N = 1000;
  const set = new Set<number>();
  b.clearAll();
  const random = rng(5);
  for (let i = 0; i < 100_000; i++) {
    const p = Math.floor(random() * (1 << 28));
    b.set(p);
    set.add(p);
  }
  let sink = 0;
  await compare({
    suite: 'scale', name: 'bitmap_count', opsPerRun: N,
    ours: { name: 'twinpage PageBitmap.count()', run: () => { let s = 0; for (let i = 0; i < N; i++) s += b.count(); sink ^= s; }, check: () => expectEqual('count', b.count(), set.size) },
    others: [{ name: 'JS Set.size', run: () => { let s = 0; for (let i = 0; i < N; i++) s += set.size; sink ^= s; }, check: () => expectEqual('size', set.size, b.count()) }],
  });
  if (sink === 0.5) console.log(sink);
}

export async function run(): Promise<void> {
  // A bitmap per case: its memory (which never shrinks) is that case's.
  await scattered(await PageBitmap.create(), 'bitmap', 1 << 28, 1);
  await scattered(await PageBitmap.create(), 'bitmap_64gib', 1 << 24, 3);
  await scattered(await PageBitmap.create(), 'bitmap_4tib', 1 << 30, 2);
  await longRuns(await PageBitmap.create());
  await weight(await PageBitmap.create());
}
