// core.lookup and core.lookup_batch: the page table against a JS Map doing
// the same work (page number -> frame index, -1 when not cached).
import { Core } from '../bindings/index.js';
import { compare, expectEqual, rng } from './util.js';

const FRAMES = Number(process.env.BENCH_FRAMES ?? 16384);
const LOOKUPS = 4096;
const RUN = 64;

export async function run(): Promise<void> {
  const core = await Core.create({ frames: FRAMES, pageSize: 512 });
  const pages = core.pages;
  const map = new Map<number, number>();
  const random = rng(1);
  // A sparse working set: runs of 64 pages scattered over 2^26 pages (256 GiB
  // of address space at 4 KiB pages).
  const SPAN = 1 << 26;
  for (let run = 0; run < FRAMES / RUN; run++) {
    const base = Math.floor(random() * SPAN);
    for (let i = 0; i < RUN; i++) {
      if (pages.lookup(base + i) >= 0) continue;
      map.set(base + i, pages.insert(base + i));
    }
  }
  const known = [...map.keys()];
  // 90% hits, 10% misses.
  const probes = Int32Array.from({ length: LOOKUPS }, () => random() < 0.9 ? known[Math.floor(random() * known.length)] : Math.floor(random() * SPAN));
  const probeList = Array.from(probes, (p) => p >>> 0);

  const viaCore = () => { let s = 0; for (let i = 0; i < LOOKUPS; i++) s += pages.lookup(probeList[i]); return s; };
  const viaMap = () => { let s = 0; for (let i = 0; i < LOOKUPS; i++) s += map.get(probeList[i]) ?? -1; return s; };
  const expected = viaMap();

  await compare({
    suite: 'core', name: 'lookup', opsPerRun: LOOKUPS,
    ours: { name: 'twinpage PageTable.lookup', run: viaCore, check: () => expectEqual('lookup sum', viaCore(), expected) },
    others: [{ name: 'JS Map.get', run: viaMap, check: () => expectEqual('Map sum', viaMap(), expected) }],
  });

  // Batched: runs of RUN consecutive pages, starting at run bases (hits) and
  // at shifted bases (partly missing).
  const starts = Array.from({ length: 64 }, (_, i) => {
    const k = known[Math.floor(random() * (known.length / RUN)) * RUN];
    return i % 4 === 3 ? k + 17 : k;
  });
  const out = new Int32Array(RUN);
  const batchCore = () => {
    let s = 0;
    for (const start of starts) { const r = pages.lookupRun(start, RUN, false); s += r[0] + r[RUN - 1]; }
    return s;
  };
  const batchMap = () => {
    let s = 0;
    for (const start of starts) {
      for (let i = 0; i < RUN; i++) out[i] = map.get(start + i) ?? -1;
      s += out[0] + out[RUN - 1];
    }
    return s;
  };
  const sameRuns = () => {
    for (const start of starts) {
      const a = [...pages.lookupRun(start, RUN)];
      for (let i = 0; i < RUN; i++) expectEqual(`run ${start}+${i}`, a[i], map.get(start + i) ?? -1);
    }
  };
  await compare({
    suite: 'core', name: 'lookup_batch', opsPerRun: starts.length * RUN,
    ours: { name: 'twinpage PageTable.lookupRun', run: batchCore, check: () => { sameRuns(); expectEqual('batch sum', batchCore(), batchMap()); } },
    others: [{ name: 'JS Map.get loop', run: batchMap, check: () => expectEqual('batch sum', batchMap(), batchCore()) }],
  });
}
