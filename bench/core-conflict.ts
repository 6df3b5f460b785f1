// core.conflict: a range-conflict query with N ranges in flight (random,
// mostly disjoint, a mix of shared and exclusive), against two interval
// trees doing the same work: find the stored ranges that overlap the query,
// keep those that conflict (either side exclusive) and answer the earliest
// arrival's id, 0 when none. Every contender answers a fixed query set like
// the plain model (test/conflict-model.ts) before it is timed.
//   core.conflict      64 ranges in flight (the design's figure)
//   core.conflict_1    1 range
//   core.conflict_256  256 ranges
import FlattenTree from '@flatten-js/interval-tree';
import nodeIntervalTree from 'node-interval-tree';
import { Core, type ConflictTable, type RangeMode } from '../bindings/index.js';
import { ConflictTableModel } from '../test/conflict-model.js';
import { compare, expectEqual, rng } from './util.js';

// node-interval-tree is CommonJS: Node hands its module.exports as the default.
const NodeIntervalTree = nodeIntervalTree.default;

const QUERIES = 1000;
const SPACE = 1 << 24; // pages
const MAX_LEN = 256;

interface Held { id: number; exclusive: boolean }

async function one(table: ConflictTable, name: string, inFlight: number, seed: number): Promise<number> {
  const random = rng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const model = new ConflictTableModel(table.capacity);
  const flatten = new FlattenTree<Held>();
  const nit = new NodeIntervalTree<Held>();

  const ranges: Array<[number, number, RangeMode]> = [];
  for (let i = 0; i < inFlight; i++) {
    const first = int(SPACE - MAX_LEN);
    const last = first + int(MAX_LEN);
    const mode: RangeMode = random() < 0.3 ? 'exclusive' : 'shared';
    ranges.push([first, last, mode]);
    const id = table.insert(first, last, mode, i % 8);
    expectEqual('model id', model.insert(first, last, mode, i % 8), id);
    const held = { id, exclusive: mode === 'exclusive' };
    flatten.insert([first, last], held);
    nit.insert(first, last, held);
  }

  // Half the queries land on or beside a range in flight, half anywhere.
  const qFirst = new Array<number>(QUERIES);
  const qLast = new Array<number>(QUERIES);
  const qMode = new Array<RangeMode>(QUERIES);
  for (let i = 0; i < QUERIES; i++) {
    let f: number;
    if (i % 2 === 0 && inFlight > 0) {
      const [a, b] = ranges[int(inFlight)];
      f = Math.max(0, a - 64 + int(b - a + 128));
    } else {
      f = int(SPACE - MAX_LEN);
    }
    qFirst[i] = f;
    qLast[i] = f + int(64);
    qMode[i] = random() < 0.5 ? 'exclusive' : 'shared';
  }
  const expected = qFirst.map((f, i) => model.query(f, qLast[i], qMode[i]));
  const hits = expected.filter((x) => x !== 0).length;

  const viaFlatten = (i: number) => {
    const exclusive = qMode[i] === 'exclusive';
    let best = 0;
    for (const h of flatten.search([qFirst[i], qLast[i]])) {
      if ((exclusive || h.exclusive) && (best === 0 || h.id < best)) best = h.id;
    }
    return best;
  };
  const viaNit = (i: number) => {
    const exclusive = qMode[i] === 'exclusive';
    let best = 0;
    for (const h of nit.search(qFirst[i], qLast[i])) {
      if ((exclusive || h.exclusive) && (best === 0 || h.id < best)) best = h.id;
    }
    return best;
  };

  // Each contender gets its own loop (no shared closure call in between),
  // so that the loop, not a megamorphic call, is what is timed.
  let sink = 0;
  const runCore = () => {
    let s = 0;
    for (let i = 0; i < QUERIES; i++) s += table.query(qFirst[i], qLast[i], qMode[i]);
    sink ^= s;
  };
  const runFlatten = () => {
    let s = 0;
    for (let i = 0; i < QUERIES; i++) s += viaFlatten(i);
    sink ^= s;
  };
  const runNit = () => {
    let s = 0;
    for (let i = 0; i < QUERIES; i++) s += viaNit(i);
    sink ^= s;
  };
  // Check the answers, then warm up (wasm tiers up on a background thread).
  const checked = (what: string, q: (i: number) => number, loop: () => void) => async () => {
    for (let i = 0; i < QUERIES; i++) expectEqual(`${what} query ${i}`, q(i), expected[i]);
    for (let k = 0; k < 300; k++) loop();
    await new Promise((resolve) => setTimeout(resolve, 20));
  };
  const viaCore = (i: number) => table.query(qFirst[i], qLast[i], qMode[i]);

  console.log(`  core.${name}: ${inFlight} ranges in flight, ${QUERIES} queries a run, ${hits} conflict`);
  const { ratio } = await compare({
    suite: 'core', name, opsPerRun: QUERIES, goal: name === 'conflict' ? '>= 5' : undefined,
    ours: { name: 'twinpage ConflictTable.query', run: runCore, check: checked('twinpage', viaCore, runCore) },
    others: [
      { name: '@flatten-js/interval-tree search', run: runFlatten, check: checked('flatten-js', viaFlatten, runFlatten) },
      { name: 'node-interval-tree search', run: runNit, check: checked('node-interval-tree', viaNit, runNit) },
    ],
  });
  if (sink === 0.5) console.log(sink); // keep the results alive
  return ratio;
}

export async function run(): Promise<void> {
  // One core with a table per case, as a node has one core with a table per
  // task group (a call site that sees one core's exports stays monomorphic).
  const core = await Core.create({ frames: 1, pageSize: 512, conflictTables: 3, conflictCapacity: 256 });
  await one(core.conflicts[0], 'conflict', 64, 64);
  await one(core.conflicts[1], 'conflict_1', 1, 1);
  await one(core.conflicts[2], 'conflict_256', 256, 256);
}
