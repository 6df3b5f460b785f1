import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core, TwinpageError } from '../bindings/index.js';
import { PageTableModel, type PageTableLike } from './pagetable-model.js';
import { outcome, throwsCode } from './helpers.js';

const wasmTable = async (frames: number) => (await Core.create({ frames, pageSize: 512 })).pages;
const modelTable = async (frames: number) => new PageTableModel(frames);

// --- one behaviour suite, run against the wasm core and the plain model ----

for (const [name, make] of [['wasm', wasmTable], ['model', modelTable]] as const) {
  const t = suite(`pagetable behaviour (${name})`);
  const table = (frames = 4): Promise<PageTableLike> => make(frames);

  t('insert, lookup, remove', async () => {
    const p = await table();
    assert.is(p.lookup(7), -1);
    const f = p.insert(7);
    assert.is(p.lookup(7), f);
    assert.equal(p.frame(f).page, 7);
    assert.is(p.remove(7), f);
    assert.is(p.lookup(7), -1);
    assert.is(p.frame(f).page, -1);
    throwsCode(() => p.remove(7), 'NOT_FOUND');
  });

  t('frames fill in index order and freed frames are reused', async () => {
    const p = await table(3);
    assert.equal([p.insert(10), p.insert(11), p.insert(12)], [0, 1, 2]);
    throwsCode(() => p.insert(13), 'FULL');
    throwsCode(() => p.insert(11), 'ALREADY_EXISTS');
    p.remove(11);
    assert.is(p.insert(13), 1);
    assert.equal(p.totals(), { mapped: 3, free: 0, dirty: 0, pinned: 0 });
  });

  t('shared pins stack, exclusive pins exclude', async () => {
    const p = await table();
    const f = p.insert(1);
    assert.is(p.pin(f), 1);
    assert.is(p.pin(f), 2);
    throwsCode(() => p.pin(f, true), 'PIN_CONFLICT');
    assert.is(p.unpin(f), 1);
    assert.is(p.unpin(f), 0);
    throwsCode(() => p.unpin(f), 'PIN_UNDERFLOW');
    assert.is(p.pin(f, true), 1);
    throwsCode(() => p.pin(f), 'PIN_CONFLICT');
    throwsCode(() => p.pin(f, true), 'PIN_CONFLICT');
    assert.ok(p.frame(f).exclusive);
    assert.is(p.unpin(f), 0);
    assert.not.ok(p.frame(f).exclusive);
  });

  t('pinned or in-flight frames are not removed, remapped or chosen', async () => {
    const p = await table(2);
    const a = p.insert(1);
    const b = p.insert(2);
    p.pin(a);
    p.setIo(b, true);
    throwsCode(() => p.remove(1), 'BUSY');
    throwsCode(() => p.remap(b, 9), 'BUSY');
    assert.is(p.victim(), null);
    p.setIo(b, false);
    assert.equal(p.victim(), { frame: b, page: 2, dirty: false });
  });

  t('CLOCK gives second chances and honours priority', async () => {
    const p = await table(3);
    p.insert(1, 0);
    p.insert(2, 3);
    p.insert(3, 0);
    // Every frame starts with ref = 1 + priority; the hand passes frame 0 and
    // 2 once, then takes frame 0.
    assert.equal(p.victim()?.frame, 0);
    p.remap(0, 4);
    p.pin(2);
    p.unpin(2);
    // frame 0 was just remapped (ref 1), frame 1 has priority 3, frame 2 was touched.
    const v = p.victim();
    assert.ok(v && v.frame !== 1, 'the high-priority frame outlives the others');
  });

  t('victim reports dirty frames; remap makes them clean', async () => {
    const p = await table(1);
    const f = p.insert(5);
    p.setDirty(f, true);
    assert.equal(p.victim(), { frame: f, page: 5, dirty: true });
    assert.is(p.remap(f, 6), f);
    assert.is(p.lookup(5), -1);
    assert.is(p.lookup(6), f);
    assert.not.ok(p.frame(f).dirty);
    throwsCode(() => p.remap(f, 6), 'ALREADY_EXISTS');
  });

  t('dirty frames come out in page order', async () => {
    const p = await table(64);
    const pages = [900, 3, 77, 0xFFFFFFFE, 12, 500, 4, 65536, 65535, 256];
    for (const pg of pages) p.setDirty(p.insert(pg), true);
    for (let i = 0; i < 40; i++) p.setDirty(p.insert(10000 + ((i * 7919) % 997)), true);
    const order = [...p.dirtyFrames()].map((f) => p.frame(f).page);
    assert.is(order.length, 50);
    assert.equal(order, [...order].sort((a, b) => a - b));
  });

  t('batched lookup, pin and unpin are all or nothing', async () => {
    const p = await table(4);
    const a = p.insert(100);
    const b = p.insert(101);
    const c = p.insert(103);
    assert.equal([...p.lookupRun(100, 4)], [a, b, -1, c]);
    p.pin(b, true);
    throwsCode(() => p.pinAll([a, b, c]), 'PIN_CONFLICT');
    assert.is(p.frame(a).pins, 0, 'the pin on a was rolled back');
    p.unpin(b);
    p.pinAll([a, b, c], true);
    assert.equal([a, b, c].map((f) => p.frame(f).pins), [1, 1, 1]);
    throwsCode(() => p.unpinAll([a, b, a]), 'PIN_UNDERFLOW');
    assert.ok(p.frame(a).exclusive && p.frame(b).exclusive, 'exclusive pins restored');
    p.unpinAll([a, b, c]);
    assert.is(p.totals().pinned, 0);
    throwsCode(() => p.pinAll([a, 99]), 'FRAME_OUT_OF_RANGE');
    throwsCode(() => p.pinAll([]), 'INVALID_ARGUMENT');
  });

  t('bad arguments are refused with INVALID_ARGUMENT', async () => {
    const p = await table(2);
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 32, 0xFFFFFFFF, '3' as unknown as number]) {
      throwsCode(() => p.lookup(bad), 'INVALID_ARGUMENT');
      throwsCode(() => p.insert(bad), 'INVALID_ARGUMENT');
      throwsCode(() => p.remove(bad), 'INVALID_ARGUMENT');
      throwsCode(() => p.pin(bad), 'INVALID_ARGUMENT');
    }
    throwsCode(() => p.pin(2), 'INVALID_ARGUMENT');
    throwsCode(() => p.insert(1, 4), 'INVALID_ARGUMENT');
    throwsCode(() => p.lookupRun(0, 0), 'INVALID_ARGUMENT');
    throwsCode(() => p.lookupRun(0xFFFFFFFE, 2), 'INVALID_PAGE');
    throwsCode(() => p.pin(0), 'FRAME_NOT_MAPPED');
    assert.equal(p.totals(), { mapped: 0, free: 2, dirty: 0, pinned: 0 });
  });

  t.run();
}

// --- model-based fuzz: random command sequences, wasm against the model -----

type Cmd =
  | { op: 'lookup' | 'remove'; page: number }
  | { op: 'insert'; page: number; prio: number }
  | { op: 'remap'; frame: number; page: number; prio: number }
  | { op: 'pin'; frame: number; exclusive: boolean }
  | { op: 'unpin'; frame: number }
  | { op: 'dirty' | 'io'; frame: number; on: boolean }
  | { op: 'prio'; frame: number; prio: number }
  | { op: 'victim' | 'dirtyList' | 'totals' }
  | { op: 'lookupRun'; page: number; count: number }
  | { op: 'pinAll'; frames: number[]; exclusive: boolean }
  | { op: 'unpinAll'; frames: number[] };

// Pages from a small set so that inserts collide, plus the edges of the u32 range.
const page = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 48 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF, -1, 2 ** 32) },
);
const frame = fc.integer({ min: -1, max: 17 });
const prio = fc.integer({ min: 0, max: 4 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('lookup' as const), page }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('insert' as const), page, prio }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), page }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remap' as const), frame, page, prio }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pin' as const), frame, exclusive: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('unpin' as const), frame }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('dirty' as const, 'io' as const), frame, on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('prio' as const), frame, prio }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('victim' as const, 'dirtyList' as const, 'totals' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('lookupRun' as const), page, count: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pinAll' as const), frames: fc.array(fc.integer({ min: 0, max: 17 }), { maxLength: 5 }), exclusive: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unpinAll' as const), frames: fc.array(fc.integer({ min: 0, max: 17 }), { maxLength: 5 }) }) },
);

function apply(p: PageTableLike, c: Cmd): unknown {
  return outcome(() => {
    switch (c.op) {
      case 'lookup': return p.lookup(c.page);
      case 'insert': return p.insert(c.page, c.prio);
      case 'remove': return p.remove(c.page);
      case 'remap': return p.remap(c.frame, c.page, c.prio);
      case 'pin': return p.pin(c.frame, c.exclusive);
      case 'unpin': return p.unpin(c.frame);
      case 'dirty': return p.setDirty(c.frame, c.on);
      case 'io': return p.setIo(c.frame, c.on);
      case 'prio': return p.setPriority(c.frame, c.prio);
      case 'victim': return p.victim();
      case 'dirtyList': return [...p.dirtyFrames()];
      case 'totals': return p.totals();
      case 'lookupRun': return [...p.lookupRun(c.page, c.count)];
      case 'pinAll': return p.pinAll(c.frames, c.exclusive);
      case 'unpinAll': return p.unpinAll(c.frames);
    }
  });
}

const fuzz = suite('pagetable model-based fuzz');

fuzz('wasm page table behaves as the model under random commands', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 16 }), fc.array(cmd, { minLength: 1, maxLength: 120 }), async (frames, cmds) => {
      const real = await wasmTable(frames);
      const model = new PageTableModel(frames);
      for (const [i, c] of cmds.entries()) {
        assert.equal(apply(real, c), apply(model, c), `command ${i}: ${JSON.stringify(c)}`);
      }
      for (let f = 0; f < frames; f++) assert.equal(real.frame(f), model.frame(f), `frame ${f}`);
      for (const [pg, f] of model.map) assert.is(real.lookup(pg), f);
      assert.equal(real.totals(), model.totals());
    }),
    { numRuns: 2000 },
  );
});

fuzz('a full table survives long insert/remove churn (backward-shift deletion)', async () => {
  const frames = 256;
  const real = await wasmTable(frames);
  const model = new PageTableModel(frames);
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < 50000; i++) {
    const pg = next() % 1024;
    const c: Cmd = next() % 2 ? { op: 'insert', page: pg, prio: 0 } : { op: 'remove', page: pg };
    assert.equal(apply(real, c), apply(model, c));
  }
  for (let pg = 0; pg < 1024; pg++) assert.is(real.lookup(pg), model.lookup(pg));
});

fuzz('batched lookups of dense runs agree with single lookups (the 16-page group path)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ base: fc.integer({ min: 0, max: 4000 }), len: fc.integer({ min: 1, max: 48 }) }), { minLength: 1, maxLength: 12 }),
      fc.array(fc.integer({ min: 0, max: 4100 }), { maxLength: 30 }),
      fc.array(fc.record({ first: fc.integer({ min: 0, max: 4100 }), count: fc.integer({ min: 1, max: 70 }) }), { minLength: 1, maxLength: 10 }),
      async (runs, removals, queries) => {
        const p = await wasmTable(512);
        for (const r of runs) for (let pg = r.base; pg < r.base + r.len; pg++) if (p.lookup(pg) < 0 && p.totals().free > 0) p.insert(pg);
        for (const pg of removals) if (p.lookup(pg) >= 0) p.remove(pg);
        for (const q of [...queries, ...runs.map((r) => ({ first: r.base & ~15, count: 64 }))]) {
          const got = [...p.lookupRun(q.first, q.count)];
          const want = Array.from({ length: q.count }, (_, i) => p.lookup(q.first + i));
          assert.equal(got, want, `run ${q.first}+${q.count}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

fuzz.run();

// --- bad input to every raw export: a status, never a trap -----------------

const raw = suite('core exports never trap');

const EXPORTS_AND_ARITY: Array<[string, number]> = [
  ['pageLookup', 1], ['pageInsert', 2], ['pageRemap', 3], ['pageRemove', 1], ['framePage', 1],
  ['framePin', 2], ['frameUnpin', 1], ['frameSetDirty', 2], ['frameSetIo', 2], ['frameSetPriority', 2],
  ['frameState', 1], ['frameVictim', 0], ['pageLookupRun', 2], ['framePinList', 2], ['frameUnpinList', 1],
  ['frameDirtyList', 0], ['frameTotals', 1],
  ['conflictInsert', 5], ['conflictQuery', 4], ['conflictBlocker', 2], ['conflictRemove', 2],
  ['conflictRemoveOwner', 2], ['conflictCount', 1], ['conflictClear', 1],
  ['checksum', 2], ['checksumFrames', 1], ['copyBytes', 3], ['fillBytes', 3], ['compareBytes', 3],
  ['info', 1],
];

const anyArg = fc.oneof(
  fc.integer({ min: -3, max: 40 }),
  fc.constantFrom(0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, -1, 2 ** 31, 65536, 1 << 24),
  fc.integer(),
);

raw('before init every export answers CORE_NOT_READY', async () => {
  const { instantiateCore } = await import('../bindings/core/wasm.js');
  const x = (await instantiateCore()) as unknown as Record<string, (...a: number[]) => number | bigint>;
  for (const [name, arity] of EXPORTS_AND_ARITY) {
    const r = x[name](...Array<number>(arity).fill(0));
    assert.is(Number(r), -1, `${name} before init`);
  }
  assert.is(x.init(4096, 0, 0, 0, 1), -2, 'zero frames refused');
  assert.is(x.init(1000, 4, 0, 0, 1), -2, 'page size not a power of two refused');
  assert.is(x.init(4096, 1 << 24, 0, 0, 1), -15, 'a pool past 4 GiB is refused');
  assert.is(x.init(4096, 4, 0, 1, 4), 0);
  assert.is(x.init(4096, 4, 0, 1, 4), -16, 'init twice refused');
});

raw('random arguments to every export: a status or a result, and the structures stay whole', async () => {
  const core = await Core.create({ frames: 8, pageSize: 512, conflictTables: 2, conflictCapacity: 8 });
  const x = core.exports as unknown as Record<string, (...a: number[]) => number | bigint>;
  fc.assert(
    fc.property(fc.constantFrom(...EXPORTS_AND_ARITY), fc.array(anyArg, { minLength: 5, maxLength: 5 }), ([name, arity], args) => {
      const r = x[name](...args.slice(0, arity));
      assert.ok(typeof r === 'number' || typeof r === 'bigint', `${name} returned ${String(r)}`);
    }),
    { numRuns: 20000 },
  );
  // Whatever the calls did, the page table is consistent with itself.
  const p = core.pages;
  const t = p.totals();
  assert.is(t.mapped + t.free, p.frameCount);
  let mapped = 0;
  for (let f = 0; f < p.frameCount; f++) {
    const s = p.frame(f);
    if (s.page >= 0) {
      mapped++;
      assert.is(p.lookup(s.page), f, `frame ${f} is found by its page`);
    }
  }
  assert.is(mapped, t.mapped);
});

raw('pages that all probe the same column: lookups and inserts still end', async () => {
  // Each of the 16 interleaved columns must have more slots than there are
  // frames: with fewer, a column full of mapped pages made a lookup of a
  // missing page that probes it loop forever (found by the fuzz test above).
  const core = await Core.create({ frames: 8, pageSize: 512 });
  const column = (page: number) => {
    const h = Math.imul(page >>> 4, 0x9E3779B1);
    return (page ^ (h >>> 16)) & 15;
  };
  const same: number[] = [];
  for (let page = 0; same.length < 9; page += 16) if (column(page) === 3) same.push(page);
  for (const page of same.slice(0, 8)) core.pages.insert(page);
  assert.is(core.pages.lookup(same[8]), -1, 'a missing page of the full column is not found');
  assert.ok(core.exports.pageLookup(same[8]) < 0, 'the raw export ends too');
  for (const page of same.slice(0, 8)) assert.ok(core.pages.lookup(page) >= 0);
  // Evict one and map the ninth through the same column.
  const f = core.pages.remove(same[0]);
  assert.ok(f >= 0);
  core.pages.insert(same[8]);
  assert.ok(core.pages.lookup(same[8]) >= 0);
  assert.is(core.pages.lookup(same[0]), -1);
});

raw.run();
