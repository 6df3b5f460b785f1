import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core, TwinpageError, type RangeMode } from '../bindings/index.js';
import { ConflictTableModel, type ConflictTableLike } from './conflict-model.js';
import { outcome, throwsCode } from './helpers.js';

const MAX = 0xFFFFFFFF;
const newCore = (capacity: number, tables = 1) =>
  Core.create({ frames: 1, pageSize: 512, conflictTables: tables, conflictCapacity: capacity });
const wasmTable = async (capacity: number): Promise<ConflictTableLike> => (await newCore(capacity)).conflicts[0];
const modelTable = async (capacity: number): Promise<ConflictTableLike> => new ConflictTableModel(capacity);

// --- one behaviour suite, run against the wasm core and the plain model ----

for (const [name, make] of [['wasm', wasmTable], ['model', modelTable]] as const) {
  const t = suite(`conflict table behaviour (${name})`);
  const table = (capacity = 16) => make(capacity);

  t('ids count up from 1', async () => {
    const c = await table();
    assert.equal([c.insert(0, 0, 'shared', 0), c.insert(0, 0, 'shared', 0), c.insert(5, 9, 'exclusive', 1)], [1, 2, 3]);
    assert.is(c.size, 3);
    assert.is(c.capacity, 16);
  });

  t('shared ranges never conflict with each other', async () => {
    const c = await table();
    const a = c.insert(10, 20, 'shared', 1);
    c.insert(0, MAX, 'shared', 2);
    assert.is(c.query(15, 25, 'shared'), 0);
    assert.is(c.query(0, MAX, 'shared'), 0);
    assert.is(c.query(15, 25, 'exclusive'), a, 'an exclusive range conflicts with the earliest shared one');
    assert.is(c.query(30, 40, 'exclusive'), a + 1, 'and with the shared whole space');
  });

  t('an exclusive range conflicts with every range it overlaps, up to its ends', async () => {
    const c = await table();
    const a = c.insert(10, 20, 'exclusive', 1);
    for (const [f, l, hit] of [[0, 9, 0], [0, 10, a], [20, 30, a], [21, 30, 0], [12, 12, a], [0, MAX, a], [9, 9, 0], [21, 21, 0]] as const) {
      assert.is(c.query(f, l, 'shared'), hit, `shared [${f}, ${l}]`);
      assert.is(c.query(f, l, 'exclusive'), hit, `exclusive [${f}, ${l}]`);
    }
  });

  t('ranges touching 0 and 0xFFFFFFFF', async () => {
    const c = await table();
    const lo = c.insert(0, 0, 'exclusive', 1);
    const hi = c.insert(MAX, MAX, 'exclusive', 1);
    assert.is(c.query(1, MAX - 1, 'exclusive'), 0, 'the pages between are free');
    assert.is(c.query(0, MAX, 'shared'), lo);
    assert.is(c.query(MAX - 1, MAX, 'shared'), hi);
    assert.is(c.query(MAX, MAX, 'exclusive'), hi);
    assert.is(c.query(0, 0, 'shared'), lo);
    c.remove(lo);
    assert.is(c.query(0, MAX, 'shared'), hi);
    const all = c.insert(0, MAX, 'shared', 2);
    assert.is(c.query(0, 0, 'shared'), 0);
    assert.is(c.query(0, 0, 'exclusive'), all);
    assert.is(c.blocker(all), hi);
  });

  t('the whole space [0, 0xFFFFFFFF] past the first vectors', async () => {
    const c = await table(70);
    for (let i = 0; i < 37; i++) c.insert(i * 10, i * 10 + 5, 'shared', 0);
    assert.is(c.query(0, MAX, 'shared'), 0, 'no exclusive entry yet');
    assert.is(c.query(0, MAX, 'exclusive'), 1);
    const sharedAll = c.insert(0, MAX, 'shared', 1);
    assert.is(c.blocker(sharedAll), 0, 'shared among shared');
    const x = c.insert(5000, 5000, 'exclusive', 2);
    assert.is(c.query(0, MAX, 'shared'), x);
    assert.is(c.blocker(x), sharedAll);
    const exclusiveAll = c.insert(0, MAX, 'exclusive', 3);
    assert.is(c.blocker(exclusiveAll), 1);
    const late = c.insert(0, MAX, 'shared', 4);
    assert.is(c.blocker(late), x);
    assert.is(c.removeOwner(0), 37);
    assert.is(c.blocker(exclusiveAll), sharedAll);
    assert.is(c.query(0, MAX, 'exclusive'), sharedAll);
    c.remove(x);
    assert.is(c.blocker(late), exclusiveAll);
    assert.is(c.query(0, MAX, 'shared'), exclusiveAll);
  });

  t('query answers the earliest arrival among several conflicts', async () => {
    const c = await table();
    const ids = [c.insert(50, 60, 'exclusive', 1), c.insert(40, 45, 'exclusive', 2), c.insert(0, 100, 'shared', 3), c.insert(44, 44, 'exclusive', 4)];
    assert.is(c.query(44, 44, 'shared'), ids[1]);
    assert.is(c.query(44, 44, 'exclusive'), ids[1]);
    assert.is(c.query(0, 100, 'shared'), ids[0]);
    c.remove(ids[1]);
    assert.is(c.query(44, 44, 'shared'), ids[3]);
    assert.is(c.query(44, 44, 'exclusive'), ids[2]);
    c.remove(ids[0]);
    assert.is(c.query(0, 100, 'shared'), ids[3]);
  });

  t('blocker: an entry waits only for earlier conflicting entries (FIFO)', async () => {
    const c = await table();
    const w = c.insert(0, 10, 'exclusive', 1);
    const r1 = c.insert(5, 5, 'shared', 2);
    const r2 = c.insert(6, 6, 'shared', 3);
    assert.is(c.blocker(w), 0, 'the first entry runs');
    assert.is(c.blocker(r1), w);
    assert.is(c.blocker(r2), w);
    c.remove(w);
    assert.is(c.blocker(r1), 0, 'readers run together once the writer leaves');
    assert.is(c.blocker(r2), 0);
    const w2 = c.insert(0, 100, 'exclusive', 4);
    const r3 = c.insert(7, 7, 'shared', 5);
    assert.is(c.blocker(w2), r1, 'a writer waits for the earliest reader');
    assert.is(c.blocker(r3), w2, 'a later reader queues behind the waiting writer, not beside the readers');
    assert.is(c.query(7, 7, 'shared'), w2);
    c.remove(r1);
    assert.is(c.blocker(w2), r2);
    c.remove(r2);
    assert.is(c.blocker(w2), 0);
    assert.is(c.blocker(r3), w2);
    const far = c.insert(200, 300, 'exclusive', 6);
    assert.is(c.blocker(far), 0, 'a range that conflicts with nothing never waits');
  });

  t('removeOwner removes every entry of one owner and keeps the order of the rest', async () => {
    const c = await table();
    const ids = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => c.insert(i, i + 10, i % 2 ? 'exclusive' : 'shared', i % 3));
    assert.is(c.removeOwner(1), 3);
    assert.is(c.size, 6);
    assert.is(c.removeOwner(1), 0);
    assert.is(c.removeOwner(99), 0);
    throwsCode(() => c.remove(ids[1]), 'NOT_FOUND');
    assert.is(c.query(0, 100, 'shared'), ids[3], 'earliest exclusive left (owner 0)');
    assert.is(c.blocker(ids[8]), ids[3]);
    assert.is(c.removeOwner(0), 3);
    assert.is(c.query(0, 100, 'exclusive'), ids[2]);
    assert.is(c.removeOwner(2), 3);
    assert.is(c.size, 0);
    assert.is(c.query(0, MAX, 'exclusive'), 0);
  });

  t('a full table refuses inserts until an entry leaves', async () => {
    const c = await table(3);
    const ids = [c.insert(1, 1, 'shared', 0), c.insert(2, 2, 'shared', 0), c.insert(3, 3, 'shared', 0)];
    throwsCode(() => c.insert(4, 4, 'shared', 0), 'FULL');
    assert.is(c.size, 3);
    c.remove(ids[1]);
    const d = c.insert(4, 4, 'exclusive', 0);
    assert.is(d, 4, 'ids are not reused while counting up');
    throwsCode(() => c.insert(5, 5, 'shared', 0), 'FULL');
    assert.is(c.query(0, 10, 'shared'), d);
  });

  t('tryInsert goes in only when nothing conflicts and there is room; else 0, nothing changed', async () => {
    const c = await table(3);
    const w = c.insert(10, 20, 'exclusive', 1);
    assert.is(c.tryInsert(15, 15, 'shared', 2), 0, 'a reader behind a writer');
    assert.is(c.tryInsert(20, 30, 'exclusive', 2), 0, 'a writer overlapping at one end');
    assert.is(c.size, 1);
    const r = c.tryInsert(21, 30, 'shared', 2);
    assert.is(r, w + 1, 'ids as insert gives them');
    assert.is(c.tryInsert(25, 25, 'shared', 3), r + 1, 'readers share');
    assert.is(c.tryInsert(0, 5, 'exclusive', 3), 0, 'full: refused without FULL');
    assert.is(c.size, 3);
    assert.is(c.blocker(r + 1), 0);
    c.remove(w);
    assert.is(c.tryInsert(0, 0, 'exclusive', 3), r + 2);
    assert.is(c.query(0, 0, 'shared'), r + 2);
    throwsCode(() => c.tryInsert(5, 4, 'shared', 0), 'INVALID_ARGUMENT');
    throwsCode(() => c.tryInsert(0, 1, 'read' as RangeMode, 0), 'INVALID_ARGUMENT');
    throwsCode(() => c.tryInsert(0, 1, 'shared', -1), 'INVALID_ARGUMENT');
  });

  t('a table of capacity 1', async () => {
    const c = await table(1);
    const a = c.insert(7, 7, 'exclusive', 0);
    throwsCode(() => c.insert(8, 8, 'shared', 0), 'FULL');
    assert.is(c.query(7, 7, 'shared'), a);
    assert.is(c.blocker(a), 0);
    c.remove(a);
    assert.is(c.insert(7, 7, 'exclusive', 0), a + 1);
  });

  t('clear empties the table; ids given out before stay unknown', async () => {
    const c = await table();
    const a = c.insert(1, 5, 'exclusive', 0);
    c.insert(2, 6, 'exclusive', 0);
    c.clear();
    assert.is(c.size, 0);
    assert.is(c.query(0, MAX, 'exclusive'), 0);
    throwsCode(() => c.remove(a), 'NOT_FOUND');
    throwsCode(() => c.blocker(a), 'NOT_FOUND');
    assert.is(c.insert(1, 5, 'shared', 0), 3);
    c.clear();
    c.clear();
    assert.is(c.size, 0);
  });

  t('bad arguments are refused with INVALID_ARGUMENT, unknown ids with NOT_FOUND', async () => {
    const c = await table(4);
    const a = c.insert(10, 20, 'exclusive', 1);
    const bad = [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 32, -0.5, '3', null, undefined, 10n] as unknown as number[];
    for (const x of bad) {
      throwsCode(() => c.insert(x, 20, 'shared', 0), 'INVALID_ARGUMENT');
      throwsCode(() => c.insert(0, x, 'shared', 0), 'INVALID_ARGUMENT');
      throwsCode(() => c.insert(0, 1, 'shared', x), 'INVALID_ARGUMENT');
      throwsCode(() => c.query(x, 20, 'shared'), 'INVALID_ARGUMENT');
      throwsCode(() => c.query(0, x, 'exclusive'), 'INVALID_ARGUMENT');
      throwsCode(() => c.blocker(x), 'INVALID_ARGUMENT');
      throwsCode(() => c.remove(x), 'INVALID_ARGUMENT');
      throwsCode(() => c.removeOwner(x), 'INVALID_ARGUMENT');
    }
    for (const id of [2 ** 31, 2 ** 31 + a, MAX]) {
      throwsCode(() => c.blocker(id), 'INVALID_ARGUMENT');
      throwsCode(() => c.remove(id), 'INVALID_ARGUMENT');
    }
    for (const mode of ['read', 'EXCLUSIVE', '', 0, 1, true, null, undefined] as unknown as RangeMode[]) {
      throwsCode(() => c.insert(0, 1, mode, 0), 'INVALID_ARGUMENT');
      throwsCode(() => c.query(0, 1, mode), 'INVALID_ARGUMENT');
    }
    throwsCode(() => c.insert(21, 20, 'shared', 0), 'INVALID_ARGUMENT');
    throwsCode(() => c.query(MAX, 0, 'exclusive'), 'INVALID_ARGUMENT');
    for (const id of [0, a + 1, 12345, 0x7FFFFFFF]) {
      throwsCode(() => c.blocker(id), 'NOT_FOUND');
      throwsCode(() => c.remove(id), 'NOT_FOUND');
    }
    // Nothing above changed the table.
    assert.is(c.size, 1);
    assert.is(c.query(0, MAX, 'shared'), a);
    assert.is(c.blocker(a), 0);
    assert.is(c.insert(0, 0, 'shared', MAX), a + 1, 'owner 0xFFFFFFFF is a valid owner');
    assert.is(c.removeOwner(MAX), 1);
  });

  t.run();
}

// --- wasm only: several tables, raw exports --------------------------------

const core = suite('conflict tables in the core');

core('tables are independent', async () => {
  const k = await newCore(8, 3);
  assert.is(k.conflicts.length, 3);
  const [a, b, c] = k.conflicts;
  const x = a.insert(0, 10, 'exclusive', 1);
  assert.is(b.insert(0, 10, 'exclusive', 1), 1, 'each table counts its own ids');
  assert.is(b.query(5, 5, 'shared'), 1);
  assert.is(c.query(5, 5, 'shared'), 0);
  a.clear();
  assert.is(a.size, 0);
  assert.is(b.size, 1);
  assert.is(a.insert(1, 1, 'shared', 0), x + 1);
  b.removeOwner(1);
  assert.is(b.size, 0);
  assert.is(a.size, 1);
});

core('a core without tables', async () => {
  const k = await Core.create({ frames: 1, pageSize: 512, conflictTables: 0 });
  assert.is(k.conflicts.length, 0);
  assert.is(k.exports.conflictQuery(0, 0, 0, 0), -14);
});

core('raw exports answer a status for a bad table handle or argument, and change nothing', async () => {
  const k = await newCore(8, 2);
  const x = k.exports;
  const model = new ConflictTableModel(8);
  const t = k.conflicts[1];
  for (const c of [t, model]) {
    c.insert(3, 9, 'exclusive', 7);
    c.insert(4, 4, 'shared', 8);
  }
  const TABLE_RANGE = -14, INVALID = -2, NOT_FOUND = -5;
  for (const table of [2, 3, 65535, 65536, 0x7FFFFFFF, 0xFFFFFFFF, -1, -(2 ** 31), 2 ** 32 + 5]) {
    assert.is(x.conflictInsert(table, 0, 1, 0, 0), TABLE_RANGE, `insert into ${table}`);
    assert.is(x.conflictQuery(table, 0, 1, 0), TABLE_RANGE);
    assert.is(x.conflictBlocker(table, 1), TABLE_RANGE);
    assert.is(x.conflictRemove(table, 1), TABLE_RANGE);
    assert.is(x.conflictRemoveOwner(table, 7), TABLE_RANGE);
    assert.is(x.conflictCount(table), TABLE_RANGE);
    assert.is(x.conflictClear(table), TABLE_RANGE);
  }
  // -1 reaches the core as 0xFFFFFFFF, 1.5 as 1, NaN as 0.
  assert.is(x.conflictInsert(1, -1, 1.5, 0, 0), INVALID, 'first > last');
  assert.is(x.conflictInsert(1, 0, 1, 2, 0), INVALID, 'mode 2');
  assert.is(x.conflictInsert(1, 0, 1, -1, 0), INVALID, 'mode -1');
  assert.is(x.conflictQuery(1, 5, 4, 0), INVALID);
  assert.is(x.conflictQuery(1, 0, 1, 0xFFFFFFFF), INVALID);
  for (const id of [0, -1, -(2 ** 31), 2 ** 31, 3, 0x7FFFFFFF, NaN]) {
    assert.is(x.conflictBlocker(1, id), NOT_FOUND, `blocker ${id}`);
    assert.is(x.conflictRemove(1, id), NOT_FOUND, `remove ${id}`);
  }
  assert.is(x.conflictRemoveOwner(1, -1), 0);
  assert.is(k.conflicts[0].size, 0);
  assert.is(t.size, model.size);
  for (const [f, l] of [[0, 2], [0, 3], [4, 4], [9, 20], [10, 20]]) {
    for (const m of ['shared', 'exclusive'] as const) assert.is(t.query(f, l, m), model.query(f, l, m));
  }
  assert.is(t.blocker(2), model.blocker(2));
});

core('hundreds of entries across many vectors', async () => {
  const cap = 1000;
  const t = (await newCore(cap)).conflicts[0];
  const m = new ConflictTableModel(cap);
  const both = <T>(f: (c: ConflictTableLike) => T): T => {
    const r = outcome(() => f(t));
    assert.equal(r, outcome(() => f(m)));
    return r as T;
  };
  let seed = 777;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  for (let i = 0; i < 30000; i++) {
    const r = next() % 16;
    const f = next() % 5000;
    const l = f + (next() % 8);
    const mode: RangeMode = next() % 4 ? 'shared' : 'exclusive';
    const owner = next() % 50;
    const id = m.entries[next() % Math.max(1, m.size)]?.id ?? 1;
    if (r < 8) both((c) => c.insert(f, l, mode, owner));
    else if (r < 12) both((c) => c.query(f, l, mode));
    else if (r < 14) both((c) => c.remove(id));
    else if (r < 15) both((c) => c.blocker(id));
    else if (owner === 0) both((c) => c.removeOwner(f % 50));
    assert.is(t.size, m.size);
  }
  for (const e of m.entries) assert.is(t.blocker(e.id), m.blocker(e.id));
});

core.run();

// --- model-based fuzz: fc.commands over the wasm table and the model ------

type Cmd =
  | { op: 'insert' | 'tryInsert'; first: number; last: number; mode: RangeMode; owner: number }
  | { op: 'query'; first: number; last: number; mode: RangeMode }
  | { op: 'blocker' | 'remove'; pick: number; live: boolean }
  | { op: 'removeOwner'; owner: number }
  | { op: 'clear' | 'size' };

const BAD = [-1, 1.5, NaN, 2 ** 32, 2 ** 31, '1', undefined] as unknown as number[];
// Small coordinates so ranges overlap often, the edges of u32, and now and
// then a value the bindings must refuse.
const coord = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: 0, max: 40 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, MAX - 1, MAX) },
  { weight: 1, arbitrary: fc.constantFrom(...BAD) },
);
const span = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 6 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, MAX) });
const mode = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom<RangeMode>('shared', 'exclusive') },
  { weight: 1, arbitrary: fc.constantFrom('read', 1, undefined) as fc.Arbitrary<RangeMode> },
);
const owner = fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(MAX, ...BAD) });
// A range as (first, first + span) so that most are valid; the span may push
// last past 2^32 or below first.
const range = fc.tuple(coord, span).map(([f, s]) => ({ first: f, last: typeof f === 'number' ? f + s : f }));

class Do implements fc.Command<ConflictTableModel, ConflictTableLike> {
  constructor(readonly c: Cmd) {}
  check() { return true; }
  run(m: ConflictTableModel, r: ConflictTableLike) {
    const c = this.c;
    // Ids: mostly a live entry's, sometimes one that is not (or no longer) there.
    const id = c.op === 'blocker' || c.op === 'remove'
      ? (c.live && m.size > 0 ? m.entries[Math.abs(c.pick) % m.size].id : c.pick)
      : 0;
    const apply = (t: ConflictTableLike) => outcome(() => {
      switch (c.op) {
        case 'insert': return t.insert(c.first, c.last, c.mode, c.owner);
        case 'tryInsert': return t.tryInsert(c.first, c.last, c.mode, c.owner);
        case 'query': return t.query(c.first, c.last, c.mode);
        case 'blocker': return t.blocker(id);
        case 'remove': return t.remove(id);
        case 'removeOwner': return t.removeOwner(c.owner);
        case 'clear': return t.clear();
        case 'size': return t.size;
      }
    });
    const expected = apply(m);
    assert.equal(apply(r), expected, `${this.toString()} (id ${id})`);
    assert.is(r.size, m.size, 'size');
  }
  toString() { return JSON.stringify(this.c); }
}

const commands = fc.commands<ConflictTableModel, ConflictTableLike>([
  fc.record({ op: fc.constant('insert' as const), mode, owner }).chain((x) => range.map((g) => new Do({ ...x, ...g }))),
  fc.record({ op: fc.constant('insert' as const), mode, owner }).chain((x) => range.map((g) => new Do({ ...x, ...g }))),
  fc.record({ op: fc.constant('tryInsert' as const), mode, owner }).chain((x) => range.map((g) => new Do({ ...x, ...g }))),
  fc.record({ op: fc.constant('query' as const), mode }).chain((x) => range.map((g) => new Do({ ...x, ...g }))),
  fc.record({ op: fc.constantFrom('blocker' as const, 'remove' as const), pick: fc.integer({ min: -2, max: 80 }), live: fc.boolean() }).map((c) => new Do(c)),
  fc.record({ op: fc.constant('blocker' as const), pick: fc.nat(200), live: fc.constant(true) }).map((c) => new Do(c)),
  fc.record({ op: fc.constant('removeOwner' as const), owner }).map((c) => new Do(c)),
  fc.constantFrom<Cmd>({ op: 'size' }, { op: 'clear' }).map((c) => new Do(c)),
], { maxCommands: 200, size: 'max' });

/** After a run: every live entry's blocker and a grid of queries agree. */
function sameState(m: ConflictTableModel, r: ConflictTableLike) {
  assert.is(r.size, m.size);
  for (const e of m.entries) assert.is(r.blocker(e.id), m.blocker(e.id), `blocker of ${e.id}`);
  for (let f = 0; f <= 44; f += 3) {
    for (const len of [0, 2, 9]) {
      for (const md of ['shared', 'exclusive'] as const) assert.is(r.query(f, f + len, md), m.query(f, f + len, md));
    }
  }
  assert.is(r.query(0, MAX, 'exclusive'), m.query(0, MAX, 'exclusive'));
}

const fuzz = suite('conflict table model-based fuzz');

fuzz('wasm table behaves as the model under random commands', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 70 }), commands, async (capacity, cmds) => {
      const real = (await newCore(capacity)).conflicts[0];
      const model = new ConflictTableModel(capacity);
      fc.modelRun(() => ({ model, real }), cmds);
      sameState(model, real);
    }),
    { numRuns: 2000 },
  );
});

fuzz('tables kept near full: inserts and removes churn at every vector boundary', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 70 }), fc.integer(), async (capacity, seed) => {
      const real = (await newCore(capacity)).conflicts[0];
      const model = new ConflictTableModel(capacity);
      let s = seed >>> 0;
      const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
      for (let i = 0; i < 400; i++) {
        const f = next() % 30;
        const md: RangeMode = next() % 3 ? 'shared' : 'exclusive';
        const r = next() % 16;
        const cmd: Cmd = r < 8 ? { op: r < 6 ? 'insert' : 'tryInsert', first: f, last: f + (next() % 4), mode: md, owner: next() % 3 }
          : r < 12 ? { op: 'remove', pick: next(), live: next() % 8 !== 0 }
          : r < 14 ? { op: 'blocker', pick: next(), live: true }
          : { op: 'query', first: f, last: f + (next() % 4), mode: md };
        new Do(cmd).run(model, real);
      }
      sameState(model, real);
    }),
    { numRuns: 300 },
  );
});

fuzz.run();
