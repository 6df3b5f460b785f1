import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core, PageBitmap } from '../bindings/index.js';
import { PageBitmapModel, CHUNK_PAGES, CHUNK_BYTES, CHUNKS, type PageBitmapLike } from './bitmap-model.js';
import { outcome, throwsCode } from './helpers.js';

const END = 0xFFFFFFFF;
const LAST = 0xFFFFFFFE;
const TOP_CHUNK = CHUNKS - 1;

const wasmBitmap = async (runBatch = 4096): Promise<PageBitmapLike> => PageBitmap.create({ runBatch });
const modelBitmap = async (runBatch = 4096): Promise<PageBitmapLike> => new PageBitmapModel(runBatch);

/** Every run from 0 as [first, count] pairs, through runs() batch by batch. */
function runList(b: PageBitmapLike, from = 0): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = from;
  for (;;) {
    const r = b.runs(at);
    for (let i = 0; i < r.length; i += 2) out.push([r[i], r[i + 1]]);
    if (r.length < 2 * b.runBatch) return out;
    at = r[r.length - 2] + r[r.length - 1];
  }
}

/** Everything observable about a bitmap but its chunk bytes. */
function state(b: PageBitmapLike) {
  return { runs: runList(b), count: b.count(), chunkCount: b.chunkCount, dirty: b.dirtyChunks() };
}

/** The chunks that hold a set page, from a run list. */
function chunksOf(runs: Array<[number, number]>): number[] {
  const out = new Set<number>();
  for (const [first, count] of runs) {
    for (let c = Math.floor(first / CHUNK_PAGES); c <= Math.floor((first + count - 1) / CHUNK_PAGES); c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

const BAD_NUMBERS = [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 32, 2 ** 53, '3' as unknown as number, null as unknown as number];

// --- one behaviour suite, run against the wasm bitmap and the plain model ---

for (const [name, make] of [['wasm', wasmBitmap], ['model', modelBitmap]] as const) {
  const t = suite(`bitmap behaviour (${name})`);

  t('an empty bitmap', async () => {
    const b = await make();
    assert.is(b.count(), 0);
    assert.is(b.next(0), -1);
    assert.is(b.next(END), -1);
    assert.is(b.runs(0).length, 0);
    assert.is(b.chunkCount, 0);
    assert.equal(b.dirtyChunks(), []);
    assert.is(b.has(0), false);
    assert.is(b.has(LAST), false);
    assert.is(b.countRange(0, END), 0);
    assert.is(b.clear(0, END), 0, 'clearing what is not set clears nothing');
    assert.equal(b.dirtyChunks(), [], 'and dirties nothing');
    assert.equal([...b.chunkBytes(TOP_CHUNK)], Array(CHUNK_BYTES).fill(0));
  });

  t('single pages: set, has, clear return what changed', async () => {
    const b = await make();
    assert.is(b.set(5), 1);
    assert.is(b.set(5), 0);
    assert.ok(b.has(5));
    assert.not.ok(b.has(4));
    assert.not.ok(b.has(6));
    assert.is(b.count(), 1);
    assert.is(b.clear(5), 1);
    assert.is(b.clear(5), 0);
    assert.is(b.count(), 0);
  });

  t('ranges across 64-bit words and chunks', async () => {
    const b = await make();
    assert.is(b.set(60, 10), 10, 'pages 60..69 cross word 0 into word 1');
    assert.equal(runList(b), [[60, 10]]);
    assert.is(b.set(CHUNK_PAGES - 3, 7), 7, 'crosses chunk 0 into chunk 1');
    assert.equal(runList(b), [[60, 10], [CHUNK_PAGES - 3, 7]]);
    assert.is(b.set(64, 200), 194, 'overlapping a set run');
    assert.equal(runList(b), [[60, 204], [CHUNK_PAGES - 3, 7]]);
    assert.is(b.countRange(0, 128), 68);
    assert.is(b.countRange(CHUNK_PAGES - 1, 2), 2);
    assert.is(b.clear(100, 10), 10);
    assert.equal(runList(b), [[60, 40], [110, 154], [CHUNK_PAGES - 3, 7]]);
    assert.is(b.next(100), 110);
    assert.is(b.next(264), CHUNK_PAGES - 3);
    assert.is(b.chunkCount, 2);
    assert.equal(b.dirtyChunks(), [0, 1]);
  });

  t('runs touching across a chunk boundary are one run', async () => {
    const b = await make();
    b.set(CHUNK_PAGES - 1);
    b.set(CHUNK_PAGES);
    assert.equal(runList(b), [[CHUNK_PAGES - 1, 2]]);
    b.set(3 * CHUNK_PAGES - 5, 2 * CHUNK_PAGES + 10);
    assert.equal(runList(b), [[CHUNK_PAGES - 1, 2], [3 * CHUNK_PAGES - 5, 2 * CHUNK_PAGES + 10]]);
    assert.is(b.countRange(3 * CHUNK_PAGES, CHUNK_PAGES), CHUNK_PAGES, 'a full chunk counts whole');
    assert.is(b.countRange(3 * CHUNK_PAGES + 7, 100), 100, 'and in part');
  });

  t('pages near 0 and near 2^32-2, and the whole space', async () => {
    const b = await make();
    b.set(0);
    b.set(LAST);
    assert.equal(runList(b), [[0, 1], [LAST, 1]]);
    assert.is(b.next(1), LAST);
    assert.is(b.next(LAST), LAST);
    assert.is(b.next(END), -1);
    assert.is(b.chunkCount, CHUNKS);
    assert.equal(b.dirtyChunks(), [0, TOP_CHUNK]);
    assert.is(b.set(0, END), END - 2, 'every page');
    assert.is(b.count(), END);
    assert.equal(runList(b), [[0, END]]);
    assert.equal(runList(b, 12345), [[12345, END - 12345]], 'a run holding from is cut there');
    assert.is(b.countRange(LAST - 9, 10), 10);
    assert.is(b.clear(1, LAST - 1), LAST - 1);
    assert.equal(runList(b), [[0, 1], [LAST, 1]]);
    assert.is(b.clearAll(), 2);
    assert.is(b.count(), 0);
    assert.is(b.dirtyChunks().length, CHUNKS, 'every chunk changed');
  });

  t('runs come in batches of at most runBatch, whole', async () => {
    const b = await make(3);
    for (let i = 0; i < 10; i++) b.set(i * 100, i + 1);
    const first = [...b.runs(0)];
    assert.equal(first, [0, 1, 100, 2, 200, 3]);
    assert.equal([...b.runs(0, 2)], [0, 1, 100, 2]);
    assert.equal([...b.runs(201)], [201, 2, 300, 4, 400, 5]);
    assert.is(runList(b).length, 10);
    assert.equal([...b.allRuns()], runList(b));
    assert.equal([...b.allRuns(450)], runList(b, 450));
    throwsCode(() => b.runs(0, 4), 'INVALID_ARGUMENT');
    throwsCode(() => b.runs(0, 0), 'INVALID_ARGUMENT');
  });

  t('allRuns lets the caller clear what it walked (a resync)', async () => {
    const b = await make(2);
    for (let i = 0; i < 7; i++) b.set(i * 1000, 3);
    const seen: Array<[number, number]> = [];
    for (const [first, count] of b.allRuns()) {
      seen.push([first, count]);
      b.clear(first, count);
    }
    assert.is(seen.length, 7);
    assert.is(b.count(), 0);
  });

  t('addRuns merges runs in any order, overlapping', async () => {
    const b = await make(2);
    b.set(10, 5);
    const added = b.addRuns(Uint32Array.from([100, 5, 12, 10, 0, 1, 103, 4, LAST, 1]));
    assert.is(added, 5 + 7 + 1 + 2 + 1);
    assert.equal(runList(b), [[0, 1], [10, 12], [100, 7], [LAST, 1]]);
    assert.is(b.addRuns(new Uint32Array(0)), 0);
  });

  t('addRuns refuses a bad run and sets none', async () => {
    const b = await make(2);
    b.set(7);
    const before = state(b);
    throwsCode(() => b.addRuns(Uint32Array.from([1, 2, 3, 0])), 'INVALID_ARGUMENT');
    throwsCode(() => b.addRuns(Uint32Array.from([1, 2, LAST, 2])), 'INVALID_ARGUMENT');
    throwsCode(() => b.addRuns(Uint32Array.from([1, 2, 3])), 'INVALID_ARGUMENT');
    throwsCode(() => b.addRuns([1, 2] as unknown as Uint32Array), 'INVALID_ARGUMENT');
    assert.equal(state(b), before);
  });

  t('dirty chunks: only chunks whose bits changed, until marked clean', async () => {
    const b = await make();
    b.set(3 * CHUNK_PAGES + 1);
    b.set(10 * CHUNK_PAGES - 1, 2);
    assert.equal(b.dirtyChunks(), [3, 9, 10]);
    for (const c of b.dirtyChunks()) b.markClean(c);
    assert.equal(b.dirtyChunks(), []);
    b.set(3 * CHUNK_PAGES + 1);
    b.clear(5 * CHUNK_PAGES, 4 * CHUNK_PAGES);
    assert.equal(b.dirtyChunks(), [], 'setting set pages and clearing clear ones changes nothing');
    b.clear(10 * CHUNK_PAGES);
    assert.equal(b.dirtyChunks(), [10]);
    b.markClean(10);
    b.markDirty(77);
    assert.equal(b.dirtyChunks(), [77], 'a failed save marks a chunk dirty again');
    b.markClean(77);
    b.markClean(99);
    assert.equal(b.dirtyChunks(), []);
    // A clean chunk changed one page at a time (the bindings' one-page paths).
    b.set(3 * CHUNK_PAGES + 2);
    assert.equal(b.dirtyChunks(), [3]);
    b.markClean(3);
    b.set(3 * CHUNK_PAGES + 2);
    assert.equal(b.dirtyChunks(), []);
    b.clear(3 * CHUNK_PAGES + 1);
    assert.equal(b.dirtyChunks(), [3]);
    b.markClean(3);
    b.clear(3 * CHUNK_PAGES + 1);
    assert.equal(b.dirtyChunks(), []);
  });

  t('chunk bytes: bit k of byte j of chunk i is page 32768 i + 8 j + k', async () => {
    const b = await make();
    const c = 5;
    const base = c * CHUNK_PAGES;
    b.set(base + 0);
    b.set(base + 9);
    b.set(base + 8 * 4095 + 7);
    const bytes = b.chunkBytes(c);
    assert.is(bytes.length, CHUNK_BYTES);
    assert.is(bytes[0], 1);
    assert.is(bytes[1], 2);
    assert.is(bytes[4095], 0x80);
    assert.is(bytes.reduce((s, x) => s + x, 0), 1 + 2 + 0x80);
    bytes[0] = 0xFF;
    assert.is(b.chunkBytes(c)[0], 1, 'chunkBytes is a copy');
  });

  t('loadChunk replaces a chunk, sets the weight and leaves it clean', async () => {
    const b = await make();
    b.set(0, 3 * CHUNK_PAGES);
    const data = new Uint8Array(CHUNK_BYTES);
    data[0] = 0b101;
    data[100] = 0xFF;
    assert.is(b.loadChunk(1, data), 10);
    assert.is(b.count(), 2 * CHUNK_PAGES + 10);
    assert.equal(runList(b), [[0, CHUNK_PAGES + 1], [CHUNK_PAGES + 2, 1], [CHUNK_PAGES + 800, 8], [2 * CHUNK_PAGES, CHUNK_PAGES]]);
    assert.equal(b.dirtyChunks(), [0, 2]);
    assert.is(b.loadChunk(0, new Uint8Array(CHUNK_BYTES)), 0);
    assert.is(b.loadChunk(2, new Uint8Array(CHUNK_BYTES).fill(0xFF)), CHUNK_PAGES);
    assert.is(b.count(), CHUNK_PAGES + 10);
    assert.equal(b.dirtyChunks(), []);
    const top = new Uint8Array(CHUNK_BYTES).fill(0xFF);
    throwsCode(() => b.loadChunk(TOP_CHUNK, top), 'INVALID_ARGUMENT');
    top[CHUNK_BYTES - 1] = 0x7F;
    assert.is(b.loadChunk(TOP_CHUNK, top), CHUNK_PAGES - 1);
    assert.is(b.next(LAST - 10), LAST - 10);
    assert.is(b.chunkCount, CHUNKS);
  });

  t('bad arguments are refused with INVALID_ARGUMENT and change nothing', async () => {
    const b = await make();
    b.set(40, 30);
    b.markClean(0);
    b.set(CHUNK_PAGES);
    const before = state(b);
    for (const bad of BAD_NUMBERS) {
      throwsCode(() => b.set(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.set(1, bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.clear(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.clear(1, bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.has(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.next(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.countRange(bad, 1), 'INVALID_ARGUMENT');
      throwsCode(() => b.countRange(1, bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.runs(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.runs(0, bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.chunkBytes(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.loadChunk(bad, new Uint8Array(CHUNK_BYTES)), 'INVALID_ARGUMENT');
      throwsCode(() => b.markClean(bad), 'INVALID_ARGUMENT');
      throwsCode(() => b.markDirty(bad), 'INVALID_ARGUMENT');
    }
    for (const [first, count] of [[0, 0], [LAST, 2], [END, 1], [1, END], [0, END + 1]]) {
      throwsCode(() => b.set(first, count), 'INVALID_ARGUMENT');
      throwsCode(() => b.clear(first, count), 'INVALID_ARGUMENT');
      throwsCode(() => b.countRange(first, count), 'INVALID_ARGUMENT');
    }
    throwsCode(() => b.has(END), 'INVALID_ARGUMENT');
    throwsCode(() => b.chunkBytes(CHUNKS), 'INVALID_ARGUMENT');
    throwsCode(() => b.loadChunk(0, new Uint8Array(CHUNK_BYTES - 1)), 'INVALID_ARGUMENT');
    throwsCode(() => b.loadChunk(0, [] as unknown as Uint8Array), 'INVALID_ARGUMENT');
    throwsCode(() => b.markClean(CHUNKS), 'INVALID_ARGUMENT');
    assert.equal(state(b), before);
  });

  t.run();
}

// --- model-based fuzz: random operation sequences, wasm against the model ---

type Op =
  | { op: 'set' | 'clear' | 'countRange'; first: number; count: number }
  | { op: 'has' | 'next'; page: number }
  | { op: 'runs'; from: number; max: number }
  | { op: 'addRuns'; pairs: number[] }
  | { op: 'clearAll' | 'count' | 'chunkCount' | 'dirty' | 'save' }
  | { op: 'markClean' | 'markDirty' | 'chunkBytes'; chunk: number }
  | { op: 'loadChunk'; chunk: number; bits: number[]; fill: number };

// Pages at the places that break bit code: word and chunk boundaries, both
// ends of the space, plus anything.
const EDGES = [
  0, 1, 63, 64, 65, 127, 128, 4095, 4096, CHUNK_PAGES - 1, CHUNK_PAGES, CHUNK_PAGES + 1,
  2 * CHUNK_PAGES, 512 * CHUNK_PAGES - 1, 512 * CHUNK_PAGES, 2 ** 31, LAST - CHUNK_PAGES, TOP_CHUNK * CHUNK_PAGES, LAST - 64, LAST - 1, LAST,
];
const page = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...EDGES), fc.integer({ min: -70, max: 70 })).map(([e, d]) => Math.min(LAST, Math.max(0, e + d))) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 4 * CHUNK_PAGES }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: LAST }) },
  { weight: 1, arbitrary: fc.constantFrom(END, -1, 1.5, NaN, 2 ** 32) },
);
const count = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 200 }) },
  { weight: 2, arbitrary: fc.integer({ min: CHUNK_PAGES - 130, max: 2 * CHUNK_PAGES + 130 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 2_000_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: END }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 0.5, NaN, END + 1) },
);
const chunk = fc.oneof(
  fc.integer({ min: 0, max: 5 }),
  fc.constantFrom(511, 512, 2 ** 16, TOP_CHUNK - 1, TOP_CHUNK, CHUNKS, -1),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constantFrom('set' as const, 'clear' as const), first: page, count }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('countRange' as const), first: page, count }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('has' as const, 'next' as const), page }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('runs' as const), from: page, max: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('addRuns' as const), pairs: fc.array(fc.tuple(page, count), { maxLength: 8 }).map((a) => a.flat()) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('clearAll' as const, 'count' as const, 'chunkCount' as const, 'dirty' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('save' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('markClean' as const, 'markDirty' as const, 'chunkBytes' as const), chunk }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('loadChunk' as const), chunk, bits: fc.array(fc.integer({ min: 0, max: CHUNK_PAGES - 1 }), { maxLength: 40 }), fill: fc.constantFrom(0, 0, 0xFF, 0x0F) }) },
);

/** The sum of the bytes (a loop: `reduce` over 131072 chunks of 4 KiB takes many seconds). */
function byteSum(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) n += bytes[i];
  return n;
}

function apply(b: PageBitmapLike, o: Op): unknown {
  return outcome(() => {
    switch (o.op) {
      case 'set': return b.set(o.first, o.count);
      case 'clear': return b.clear(o.first, o.count);
      case 'countRange': return b.countRange(o.first, o.count);
      case 'has': return b.has(o.page);
      case 'next': return b.next(o.page);
      case 'runs': return [...b.runs(o.from, o.max)];
      case 'addRuns': {
        // Negative or fractional numbers cannot be in a Uint32Array; keep the pairs as they wrap.
        return b.addRuns(Uint32Array.from(o.pairs.map((x) => (Number.isFinite(x) ? x : 0))));
      }
      case 'clearAll': return b.clearAll();
      case 'count': return b.count();
      case 'chunkCount': return b.chunkCount;
      case 'dirty': return b.dirtyChunks();
      case 'save': {
        // What a caller persisting the bitmap does: each dirty chunk's bytes, then clean.
        const dirty = b.dirtyChunks();
        const sums = dirty.map((c) => byteSum(b.chunkBytes(c)));
        for (const c of dirty) b.markClean(c);
        return [dirty, sums];
      }
      case 'markClean': return b.markClean(o.chunk);
      case 'markDirty': return b.markDirty(o.chunk);
      case 'chunkBytes': return [...b.chunkBytes(o.chunk)];
      case 'loadChunk': {
        const data = new Uint8Array(CHUNK_BYTES).fill(o.fill);
        for (const bit of o.bits) data[bit >>> 3] ^= 1 << (bit & 7);
        return b.loadChunk(o.chunk, data);
      }
    }
  });
}

/** Compares bitmaps in full: runs, weight, dirty chunks, and the bytes of the chunks that hold pages or changed. */
function assertSame(real: PageBitmapLike, model: PageBitmapLike, what: string): void {
  const s = state(model);
  assert.equal(state(real), s, what);
  const chunks = new Set([...chunksOf(s.runs), ...s.dirty]);
  const list = [...chunks];
  // Long runs cover many chunks: then their ends, where bits are partial, and a sample.
  const check = list.length <= 64 ? list : [...chunksOf(s.runs.flatMap(([f, c]) => [[f, 1], [f + c - 1, 1]] as Array<[number, number]>)), ...list.slice(0, 16)];
  for (const c of check) assert.equal(real.chunkBytes(c), model.chunkBytes(c), `${what}: chunk ${c}`);
}

const fuzz = suite('bitmap model-based fuzz');

fuzz('wasm bitmap behaves as the model under random operations', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(op, { minLength: 1, maxLength: 60 }), async (runBatch, ops) => {
      const real = await wasmBitmap(runBatch);
      const model = new PageBitmapModel(runBatch);
      for (const [i, o] of ops.entries()) {
        assert.equal(apply(real, o), apply(model, o), `op ${i}: ${JSON.stringify(o)}`);
      }
      assertSame(real, model, 'after the run');
    }),
    { numRuns: Number(process.env.BITMAP_RUNS ?? 400) },
  );
});

fuzz('chunks saved and loaded into a new bitmap give the same bitmap and weight', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(page, count), { minLength: 1, maxLength: 30 }), fc.array(fc.tuple(page, count), { maxLength: 10 }), async (sets, clears) => {
      const a = await PageBitmap.create({ runBatch: 7 });
      for (const [f, c] of sets) outcome(() => a.set(f, Math.min(c, 3 * CHUNK_PAGES)));
      for (const [f, c] of clears) outcome(() => a.clear(f, c));
      const b = await PageBitmap.create();
      b.set(9 * CHUNK_PAGES + 3, 70_000); // stale contents the load must replace
      const saved = chunksOf(runList(a));
      const stale = chunksOf(runList(b));
      for (const c of new Set([...saved, ...stale])) b.loadChunk(c, a.chunkBytes(c));
      assert.equal(runList(b), runList(a));
      assert.is(b.count(), a.count());
      assert.is(b.chunkCount, a.chunkCount);
      assert.equal(b.dirtyChunks(), [], 'loaded chunks are clean');
      // And saving only the dirty chunks keeps a copy in step.
      for (const c of a.dirtyChunks()) { b.loadChunk(c, a.chunkBytes(c)); a.markClean(c); }
      a.clear(CHUNK_PAGES + 5, 3);
      a.set(2 * CHUNK_PAGES, 100);
      for (const c of a.dirtyChunks()) { b.loadChunk(c, a.chunkBytes(c)); a.markClean(c); }
      assert.equal(runList(b), runList(a));
      assert.is(b.count(), a.count());
    }),
    { numRuns: 150 },
  );
});

fuzz.run();

// --- wasm only: memory, limits, views --------------------------------------

const mem = suite('bitmap memory');

mem('an empty bitmap is small; a page near 2^32-2 takes one directory and one chunk', async () => {
  const b = await PageBitmap.create();
  const empty = b.stats();
  assert.equal({ ...empty, memoryBytes: 0 }, { chunks: 0, fullChunks: 0, directories: 0, memoryBytes: 0 });
  assert.ok(empty.memoryBytes <= 128 * 1024, `empty: ${empty.memoryBytes} bytes`);
  b.set(LAST);
  const s = b.stats();
  assert.equal({ ...s, memoryBytes: 0 }, { chunks: 1, fullChunks: 0, directories: 1, memoryBytes: 0 });
  assert.ok(s.memoryBytes <= empty.memoryBytes + 128 * 1024, `one page: ${s.memoryBytes} bytes`);
});

mem('long runs share the full block: the whole space costs its directories', async () => {
  const b = await PageBitmap.create();
  assert.is(b.set(1000, 1_000_000), 1_000_000);
  assert.ok(b.stats().chunks <= 2 && b.stats().fullChunks >= 29, JSON.stringify(b.stats()));
  b.set(0, END);
  const s = b.stats();
  assert.equal({ ...s, memoryBytes: 0 }, { chunks: 1, fullChunks: TOP_CHUNK, directories: 256, memoryBytes: 0 }, 'the top chunk lacks page 2^32-1');
  assert.ok(s.memoryBytes < 2 * 1024 * 1024, `whole space: ${s.memoryBytes} bytes`);
  b.clear(CHUNK_PAGES * 1000 + 5);
  assert.is(b.stats().chunks, 2, 'a hole in a full chunk takes a block');
  b.set(CHUNK_PAGES * 1000 + 5);
  assert.is(b.stats().chunks, 1, 'and gives it back when full again');
  b.clearAll();
  assert.equal({ ...b.stats(), memoryBytes: 0 }, { chunks: 0, fullChunks: 0, directories: 256, memoryBytes: 0 }, 'directories stay while chunks are dirty');
  for (const c of b.dirtyChunks()) b.markClean(c);
  assert.is(b.stats().directories, 0);
});

mem('a million scattered pages: memory follows the chunks spanned, and is reused', async () => {
  const b = await PageBitmap.create();
  const span = 1 << 26; // 256 GiB at 4 KiB pages: 2048 chunks
  let seed = 7;
  const pages = new Uint32Array(1_000_000);
  for (let i = 0; i < pages.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    pages[i] = seed % span;
  }
  let added = 0;
  for (const p of pages) added += b.set(p);
  const distinct = new Set(pages).size;
  assert.is(added, distinct);
  assert.is(b.count(), distinct);
  const s = b.stats();
  assert.is(s.chunks, 2048);
  assert.ok(s.memoryBytes < 2048 * 4096 * 1.25 + 512 * 1024, `${s.memoryBytes} bytes`);
  let total = 0;
  for (const [, c] of b.allRuns()) total += c;
  assert.is(total, distinct);
  b.clearAll();
  for (const p of pages) b.set(p);
  assert.is(b.stats().memoryBytes, s.memoryBytes, 'freed blocks are reused');
});

mem('maxBytes: a change past the limit is TOO_LARGE and changes nothing', async () => {
  const refused = (options: object) => PageBitmap.create(options).then(
    () => assert.unreachable(JSON.stringify(options)),
    (e) => assert.is(e.code, 'INVALID_ARGUMENT', JSON.stringify(options)),
  );
  for (const bad of [-1, 1.5, NaN, 1000, 2 ** 33, '1' as unknown as number]) await refused({ maxBytes: bad });
  for (const bad of [-1, 1.5, NaN, 0, 65537, '1' as unknown as number]) await refused({ runBatch: bad });
  await PageBitmap.create(null as unknown as object).then(() => assert.unreachable('null options'), (e) => assert.is(e.code, 'INVALID_ARGUMENT'));
  await PageBitmap.create({ maxBytes: 65536, runBatch: 65536 }).then(() => assert.unreachable('no room'), (e) => assert.is(e.code, 'TOO_LARGE'));

  const b = await PageBitmap.create({ maxBytes: 256 * 1024 });
  let page = 0;
  for (;;) {
    const r = outcome(() => b.set(page * CHUNK_PAGES + 1));
    if (typeof r !== 'number') { assert.equal(r, { code: 'TOO_LARGE' }); break; }
    page++;
    assert.ok(page < 100, 'the limit is reached');
  }
  const before = state(b);
  throwsCode(() => b.set(page * CHUNK_PAGES + 1, 5), 'TOO_LARGE');
  throwsCode(() => b.addRuns(Uint32Array.from([3, 1, page * CHUNK_PAGES + 7, 2, 200 * CHUNK_PAGES, 1])), 'TOO_LARGE');
  assert.equal(state(b), before, 'a refused set or addRuns changes nothing');
  assert.is(b.set(2, 70), 70, 'chunks that have a block still take pages');
  b.clear(2, 70);
  assert.is(b.set(100 * CHUNK_PAGES, 5 * CHUNK_PAGES), 5 * CHUNK_PAGES, 'whole chunks take no block');
  const full = state(b);
  throwsCode(() => b.clear(101 * CHUNK_PAGES + 9), 'TOO_LARGE');
  assert.equal(state(b), full, 'a hole in a full chunk at the limit changes nothing');
  assert.is(b.clear(101 * CHUNK_PAGES, CHUNK_PAGES), CHUNK_PAGES, 'clearing a whole chunk takes no block');
  assert.ok(b.stats().memoryBytes <= 256 * 1024);

  // One block free: what a change took before it was refused goes back.
  assert.is(b.clear(1), 1, 'chunk 0 empties and frees its block');
  const oneFree = { state: state(b), stats: b.stats() };
  throwsCode(() => b.clear(102 * CHUNK_PAGES + 5, 2 * CHUNK_PAGES), 'TOO_LARGE');
  assert.equal({ state: state(b), stats: b.stats() }, oneFree, 'both ends full: the first end\'s block went back');
  throwsCode(() => b.set(600 * CHUNK_PAGES + 5), 'TOO_LARGE');
  assert.equal({ state: state(b), stats: b.stats() }, oneFree, 'a new directory and no chunk block: the directory went back');
  assert.is(b.clear(102 * CHUNK_PAGES + 5), 1, 'the free block is still there');
});

mem('views are made again after memory grows', async () => {
  const b = await PageBitmap.create({ runBatch: 4 });
  b.set(1, 2);
  const before = b.runs(0);
  assert.equal([...before], [1, 2]);
  const bytes = b.stats().memoryBytes;
  for (let c = 0; c < 200; c++) b.set(c * CHUNK_PAGES + 7);
  assert.ok(b.stats().memoryBytes > bytes, 'memory grew');
  assert.equal([...b.runs(0, 2)], [1, 2, 7, 1]);
  assert.is(b.chunkBytes(3)[0], 0x80);
  assert.is(b.dirtyChunks().length, 200);
  assert.is(b.loadChunk(3, new Uint8Array(CHUNK_BYTES)), 0);
  assert.is(b.addRuns(Uint32Array.from([5, 1])), 1);
});

mem('runs() reuses its view while the number of runs stays', async () => {
  const b = await PageBitmap.create({ runBatch: 2 });
  for (let i = 0; i < 10; i++) b.set(i * 10);
  const a = b.runs(0);
  const c = b.runs(20);
  assert.is(a, c, 'the same view');
  assert.equal([...c], [20, 1, 30, 1]);
});

mem.run();

// --- bad input to every raw export: a status, never a trap ------------------

const raw = suite('bitmap exports never trap');

const BITMAP_EXPORTS: Array<[string, number]> = [
  ['bitmapSet', 2], ['bitmapClear', 2], ['bitmapTest', 1], ['bitmapNext', 1], ['bitmapCount', 2],
  ['bitmapWeight', 0], ['bitmapRuns', 2], ['bitmapAddRuns', 1], ['bitmapClearAll', 0], ['bitmapDirty', 2],
  ['bitmapChunkRead', 1], ['bitmapChunkLoad', 1], ['bitmapMarkClean', 1], ['bitmapMarkDirty', 1],
  ['bitmapChunkSpan', 0], ['bitmapInfo', 1],
];
type RawExports = Record<string, (...a: number[]) => number | bigint> & { memory: WebAssembly.Memory };

raw('each mode refuses the other: a core answers no bitmap export, a bitmap no core export', async () => {
  const { instantiateCore } = await import('../bindings/core/wasm.js');
  const fresh = (await instantiateCore()) as unknown as RawExports;
  for (const [name, arity] of BITMAP_EXPORTS) assert.is(Number(fresh[name](...Array<number>(arity).fill(0))), -1, `${name} before init`);
  assert.is(fresh.bitmapInit(0, 0), -2, 'no runs refused');
  assert.is(fresh.bitmapInit(65537, 0), -2, 'too many runs refused');
  assert.is(fresh.bitmapInit(4, 65537), -2, 'a limit past 4 GiB refused');
  assert.is(fresh.bitmapInit(4, 0), 0);
  assert.is(fresh.bitmapInit(4, 0), -16, 'bitmapInit twice refused');
  assert.is(fresh.init(4096, 4, 0, 1, 4), -16, 'a bitmap instance is not a core');
  assert.is(fresh.pageInsert(1, 0), -1);
  assert.is(fresh.conflictCount(0), -1);

  const core = (await Core.create({ frames: 2 })).exports as unknown as RawExports;
  assert.is(core.bitmapInit(4, 0), -16, 'a core instance is not a bitmap');
  for (const [name, arity] of BITMAP_EXPORTS) assert.is(Number(core[name](...Array<number>(arity).fill(0))), -1, `${name} in a core`);
});

raw('random arguments to every export: a status or a result, and the bitmap stays whole', async () => {
  const limit = 16 * 1024 * 1024;
  const { instantiateCore } = await import('../bindings/core/wasm.js');
  const rawX = (await instantiateCore()) as unknown as RawExports;
  assert.is(rawX.bitmapInit(64, limit / 65536), 0);
  const io = Number(rawX.bitmapInfo(0));
  const anyArg = fc.oneof(
    fc.integer({ min: -3, max: 300 }),
    fc.constantFrom(0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, -1, 2 ** 31, 32768, 32767, 131071, 131072, 65536),
    fc.integer(),
    fc.integer({ min: 0, max: 0xFFFFFFFF }),
  );
  fc.assert(
    fc.property(fc.constantFrom(...BITMAP_EXPORTS), fc.array(anyArg, { minLength: 2, maxLength: 2 }), fc.array(fc.integer(), { maxLength: 16 }), ([name, arity], args, junk) => {
      // Garbage in the io area feeds bitmapAddRuns and bitmapChunkLoad.
      new Int32Array(rawX.memory.buffer, io, 16).set(junk);
      const r = rawX[name](...args.slice(0, arity));
      assert.ok(typeof r === 'number', `${name} returned ${String(r)}`);
      assert.ok(Number.isInteger(r) && (r as number) >= -16, `${name}(${args}) returned ${String(r)}`);
    }),
    { numRuns: 20000 },
  );
  assert.ok(rawX.memory.buffer.byteLength <= limit, 'memory stayed under its limit');
  // Whatever the calls did, the weight, the counts and the runs agree.
  const weight = Number(rawX.bitmapWeight());
  assert.is(Number(rawX.bitmapCount(0, END)), weight);
  let from = 0;
  let total = 0;
  let lastEnd = -1;
  for (;;) {
    const n = Number(rawX.bitmapRuns(from, 64));
    const pairs = new Uint32Array(rawX.memory.buffer, io, 2 * n);
    for (let i = 0; i < n; i++) {
      const [first, count] = [pairs[2 * i], pairs[2 * i + 1]];
      assert.ok(first > lastEnd, 'runs ascend and never touch');
      assert.ok(count >= 1);
      assert.is(Number(rawX.bitmapTest(first)), 1);
      if (first > 0) assert.is(Number(rawX.bitmapTest(first - 1)), 0);
      assert.is(Number(rawX.bitmapCount(first, count)), count);
      total += count;
      lastEnd = first + count;
    }
    if (n < 64) break;
    from = lastEnd;
  }
  assert.is(total, weight);
  const span = Number(rawX.bitmapChunkSpan());
  assert.is(span, lastEnd < 0 ? 0 : Math.floor((lastEnd - 1) / CHUNK_PAGES) + 1);
});

raw.run();
