// XXH3-64 checksums, copy, fill and compare (assembly/checksum.ts, copy.ts).
//
// The checksum is held to published known answers and to an independent
// implementation (hash-wasm's xxhash3); copy, fill and compare run one
// behaviour suite against the wasm core and a plain-JS reference.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { xxhash3 } from 'hash-wasm';
import { Core, TwinpageError } from '../bindings/index.js';
import { instantiateCore } from '../bindings/core/wasm.js';
import { rng } from './data.js';
import { outcome, throwsCode } from './helpers.js';

const hex = (sum: bigint) => sum.toString(16).padStart(16, '0');


function randomBytes(length: number, seed: number): Uint8Array {
  const next = rng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 256) | 0;
  return out;
}

// --- known answers -------------------------------------------------------------

// xxHash's sanity buffer: byte i is the top byte of PRIME32 * PRIME64^i (mod 2^64).
const PRIME32 = 2654435761n;
const PRIME64 = 11400714785074694797n;

function sanityBuffer(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let gen = PRIME32;
  for (let i = 0; i < length; i++) {
    out[i] = Number(gen >> 56n);
    gen = (gen * PRIME64) & 0xFFFFFFFFFFFFFFFFn;
  }
  return out;
}

// XXH3_64bits with seed 0 over the sanity buffer's first `length` bytes, from
// xxHash's self-test: XSUM_XXH3_testdata in cli/xsum_sanity_check.c
// (https://github.com/Cyan4973/xxHash, the same values as
// tests/sanity_test_vectors.h). One length per path of the algorithm.
const KNOWN: readonly [length: number, sum: bigint, path: string][] = [
  [0, 0x2D06800538D394C2n, 'empty'],
  [1, 0xC44BDFF4074EECDBn, '1-3'],
  [6, 0x27B56A84CD2D7325n, '4-8'],
  [12, 0xA713DAF0DFBB77E7n, '9-16'],
  [24, 0xA3FE70BF9D3510EBn, '17-32'],
  [48, 0x397DA259ECBA1F11n, '33-64'],
  [80, 0xBCDEFBBB2C47C90An, '65-96'],
  [195, 0xCD94217EE362EC3An, '129-240'],
  [403, 0xCDEB804D65C6DEA4n, 'one block, last stripe overlapping'],
  [512, 0x617E49599013CB6Bn, 'one block, ends on a stripe'],
  [2048, 0xDD59E2C3A5F038E0n, 'two blocks, ends on a block'],
  [2240, 0x6E73A90539CF2948n, 'three blocks, ends on a stripe'],
  [2367, 0xCB37AEB9E5D361EDn, 'three blocks, last stripe overlapping'],
];

const known = suite('checksum: known answers');

known('XXH3-64 of xxHash\'s sanity buffer, every length class', async () => {
  const core = await Core.create({ frames: 2, pageSize: 4096, ioBytes: 4096 });
  const buffer = sanityBuffer(4096);
  for (const [length, sum, path] of KNOWN) {
    assert.is(hex(core.checksum(buffer.subarray(0, length))), hex(sum), `${length} bytes (${path})`);
  }
});

known('the same answers at every alignment inside a frame', async () => {
  const core = await Core.create({ frames: 2, pageSize: 4096, ioBytes: 0 });
  const buffer = sanityBuffer(2367);
  const page = core.frameView(1);
  for (let shift = 0; shift < 17; shift++) {
    page.fill(0xAA);
    page.set(buffer, shift);
    for (const [length, sum] of KNOWN) {
      assert.is(hex(core.checksumAt(core.frameOffset(1) + shift, length)), hex(sum), `${length} bytes at +${shift}`);
    }
  }
});

known.run();

// --- against an independent implementation ------------------------------------

const cross = suite('checksum: against hash-wasm xxhash3');

cross('every length 0..1200 and lengths around the block edges', async () => {
  const core = await Core.create({ frames: 1, pageSize: 512, ioBytes: 8192 });
  const data = randomBytes(8192, 11);
  const lengths = Array.from({ length: 1201 }, (_, i) => i);
  for (const edge of [2048, 3072, 4096, 5120, 8192]) for (let d = -66; d <= 0; d++) lengths.push(edge + d);
  for (const n of lengths) {
    const bytes = data.subarray(0, n);
    assert.is(hex(core.checksum(bytes)), await xxhash3(bytes), `${n} bytes`);
  }
});

cross('random contents, lengths 0..10000 and offsets', async () => {
  const core = await Core.create({ frames: 1, pageSize: 512, ioBytes: 10064 });
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 10000 }), fc.integer({ min: 0, max: 63 }), fc.integer(), async (n, at, seed) => {
      const bytes = randomBytes(n, seed);
      core.io.set(bytes, at);
      assert.is(hex(core.checksumAt(at, n)), await xxhash3(bytes));
    }),
    { numRuns: 400 },
  );
});

cross('a full frame at every page size, 512 B to 64 KiB', async () => {
  for (let pageSize = 512; pageSize <= 65536; pageSize *= 2) {
    const core = await Core.create({ frames: 3, pageSize, ioBytes: 0 });
    for (let f = 0; f < 3; f++) core.frameView(f).set(randomBytes(pageSize, pageSize + f));
    for (let f = 0; f < 3; f++) {
      assert.is(hex(core.checksumFrame(f)), await xxhash3(core.frameView(f)), `page ${pageSize}, frame ${f}`);
    }
  }
});

cross.run();

// --- batched frames ----------------------------------------------------------

/** The u64 checksum field of a frame's metadata record (offset 8 of 16 bytes). */
function metaChecksum(core: Core, frame: number): bigint {
  const meta = Number(core.exports.info(0));
  return new BigUint64Array(core.exports.memory.buffer, meta + frame * 16 + 8, 1)[0];
}

const frames = suite('checksum: checksumFrames');

frames('equals per-frame checksums, in list order, and lands in the metadata', async () => {
  const core = await Core.create({ frames: 16, pageSize: 1024 });
  for (let f = 0; f < 16; f++) core.frameView(f).set(randomBytes(1024, 100 + f));
  const list = [5, 0, 15, 7, 7, 3];
  const sums = core.checksumFrames(list);
  assert.is(sums.length, list.length);
  for (let i = 0; i < list.length; i++) {
    const f = list[i];
    assert.is(sums[i], core.checksumFrame(f), `entry ${i} (frame ${f})`);
    assert.is(metaChecksum(core, f), sums[i], `metadata of frame ${f}`);
  }
  assert.is(metaChecksum(core, 1), 0n, 'unlisted frames keep their field');
  const all = Array.from({ length: 16 }, (_, f) => f);
  const every = core.checksumFrames(all);
  for (const f of all) assert.is(hex(every[f]), await xxhash3(core.frameView(f)));
});

frames('a frame out of range fails the whole batch and writes nothing', async () => {
  const core = await Core.create({ frames: 4, pageSize: 512 });
  core.frameView(2).fill(9);
  const before = core.checksumFrames([2])[0];
  core.frameView(2).fill(10);
  throwsCode(() => core.checksumFrames([2, 4]), 'FRAME_OUT_OF_RANGE');
  assert.is(metaChecksum(core, 2), before, 'metadata untouched');
  throwsCode(() => core.checksumFrames([2, -1]), 'INVALID_ARGUMENT');
  throwsCode(() => core.checksumFrames([]), 'INVALID_ARGUMENT');
  throwsCode(() => core.checksumFrames(new Array(core.pages.maxBatch + 1).fill(0)), 'INVALID_ARGUMENT');
  throwsCode(() => core.checksumFrames(null as unknown as number[]), 'INVALID_ARGUMENT');
  assert.is.not(core.checksumFrames([2])[0], before, 'still works');

  // Raw: the scratch list is read as given.
  const x = core.exports;
  core.pages.scratch[0] = 0;
  core.pages.scratch[1] = 0x7FFFFFFF;
  assert.is(x.checksumFrames(2), -3);
  assert.is(x.checksumFrames(0), -2);
  assert.is(x.checksumFrames(core.pages.maxBatch + 1), -2);
  assert.is(x.checksumFrames(-1), -2);
});

frames.run();

// --- bad input ---------------------------------------------------------------

const bad = suite('checksum: bad input');

bad('refused with a TwinpageError code, and the core works afterwards', async () => {
  const core = await Core.create({ frames: 2, pageSize: 512, ioBytes: 100 });
  const dataBytes = core.ioBytes + 2 * 512;
  const empty = hex(KNOWN[0][1]);
  const cases: [() => unknown, string][] = [
    [() => core.checksumAt(dataBytes, 1), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(0, dataBytes + 1), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(dataBytes + 1, 0), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(0xFFFFFFFF, 2), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(2, 0xFFFFFFFF), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(0xFFFFFFFF, 0xFFFFFFFF), 'OUT_OF_BOUNDS'],
    [() => core.checksumAt(-1, 1), 'INVALID_ARGUMENT'],
    [() => core.checksumAt(0, -1), 'INVALID_ARGUMENT'],
    [() => core.checksumAt(1.5, 1), 'INVALID_ARGUMENT'],
    [() => core.checksumAt(0, NaN), 'INVALID_ARGUMENT'],
    [() => core.checksumAt(2 ** 32, 1), 'INVALID_ARGUMENT'],
    [() => core.checksumAt(0, Infinity), 'INVALID_ARGUMENT'],
    [() => core.checksumAt('0' as unknown as number, 1), 'INVALID_ARGUMENT'],
    [() => core.checksum(new Uint8Array(core.ioBytes + 1)), 'TOO_LARGE'],
    [() => core.checksum([1, 2, 3] as unknown as Uint8Array), 'INVALID_ARGUMENT'],
    [() => core.checksumFrame(2), 'INVALID_ARGUMENT'],
    [() => core.checksumFrame(-1), 'INVALID_ARGUMENT'],
  ];
  for (const [call, code] of cases) {
    throwsCode(call, code);
    assert.is(hex(core.checksumAt(0, 0)), empty, 'still works');
  }
  assert.is(hex(core.checksumAt(dataBytes, 0)), empty, 'an empty range at the very end is in bounds');
  assert.is(hex(core.checksum(new Uint8Array(core.ioBytes))), await xxhash3(new Uint8Array(core.ioBytes)));
});

bad('raw exports return statuses for any u32 arguments', async () => {
  const core = await Core.create({ frames: 2, pageSize: 512, ioBytes: 0 });
  const x = core.exports;
  const words = fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.constantFrom(-1, -2, 0x7FFFFFFF, 0x80000000, 1023, 1024, 1025));
  fc.assert(
    fc.property(words, words, words, (a, b, c) => {
      for (const r of [x.checksum(a, b), x.copyBytes(a, b, c), x.fillBytes(a, b, c), x.compareBytes(a, b, c)]) {
        assert.type(r, 'number');
      }
    }),
    { numRuns: 5000 },
  );
  assert.is(x.checksum(1024, 1), -12);
  assert.is(x.checksum(1024, 0), 0);
  assert.is(x.copyBytes(0, 1, 1024), -12);
  assert.is(x.fillBytes(0, 256, 1), -2);
  assert.is(x.compareBytes(0, 0, 0x80000000), -2);
  assert.is(x.fillBytes(0, 0, 1024), 0);
  assert.is(x.compareBytes(0, 512, 512), 512, 'equal ranges answer their length');
  assert.is(x.fillBytes(1000, 1, 1), 0);
  assert.is(x.compareBytes(0, 512, 512), 488);
});

bad('every export answers NOT_READY before init', async () => {
  const x = await instantiateCore();
  assert.is(x.checksum(0, 0), -1);
  assert.is(x.checksumFrames(1), -1);
  assert.is(x.copyBytes(0, 0, 0), -1);
  assert.is(x.fillBytes(0, 0, 0), -1);
  assert.is(x.compareBytes(0, 0, 0), -1);
});

bad.run();

// --- copy, fill, compare: one suite, the wasm core and a plain reference --------

/** The byte operations both the core and the reference offer. */
interface ByteArea {
  readonly bytes: Uint8Array;
  copy(dst: number, src: number, length: number): void;
  fill(offset: number, value: number, length: number): void;
  compare(a: number, b: number, length: number): number;
}

/** Plain-JS reference: the same checks and codes as the core, over a Uint8Array. */
class ReferenceArea implements ByteArea {
  constructor(readonly bytes: Uint8Array) {}

  #range(offset: number, length: number) {
    if (offset + length > this.bytes.length) throw TwinpageError.outOfBounds('range outside the data area');
  }

  copy(dst: number, src: number, length: number) {
    checkU32(dst, src, length);
    this.#range(dst, length);
    this.#range(src, length);
    this.bytes.copyWithin(dst, src, src + length);
  }

  fill(offset: number, value: number, length: number) {
    checkU32(offset, length);
    if (!Number.isInteger(value) || value < 0 || value > 255) throw TwinpageError.invalidArgument('value');
    this.#range(offset, length);
    this.bytes.fill(value, offset, offset + length);
  }

  compare(a: number, b: number, length: number) {
    checkU32(a, b, length);
    if (length > 0x7FFFFFFF) throw TwinpageError.invalidArgument('length');
    this.#range(a, length);
    this.#range(b, length);
    for (let i = 0; i < length; i++) if (this.bytes[a + i] !== this.bytes[b + i]) return i;
    return -1;
  }
}

function checkU32(...values: number[]) {
  for (const v of values) {
    if (!Number.isInteger(v) || v < 0 || v > 0xFFFFFFFF) throw TwinpageError.invalidArgument(String(v));
  }
}

/** The core's whole data area (io buffer and frames) as one ByteArea. */
function coreArea(core: Core): ByteArea {
  const size = core.ioBytes + core.frameCount * core.pageSize;
  const bytes = new Uint8Array(core.exports.memory.buffer, Number(core.exports.info(3)), size);
  return {
    bytes,
    copy: (d, s, n) => core.copy(d, s, n),
    fill: (o, v, n) => core.fill(o, v, n),
    compare: (a, b, n) => core.compare(a, b, n),
  };
}

// io 64 + 4 frames of 512 bytes: 2112 bytes.
const AREA = 64 + 4 * 512;
const makeCore = async () => coreArea(await Core.create({ frames: 4, pageSize: 512, ioBytes: 64 }));
const makeReference = async () => new ReferenceArea(new Uint8Array(AREA));

const offset = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: AREA }) },
  { weight: 1, arbitrary: fc.integer({ min: AREA - 40, max: AREA + 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1.5, NaN, 2 ** 32, 0xFFFFFFFF, 0x80000000) },
);
const length = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 700 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: AREA + 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, Infinity, 2 ** 32, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF) },
);
const op = fc.oneof(
  fc.record({ kind: fc.constant('copy' as const), a: offset, b: offset, n: length }),
  fc.record({ kind: fc.constant('fill' as const), a: offset, b: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(256, -1, 1.5)), n: length }),
  fc.record({ kind: fc.constant('compare' as const), a: offset, b: offset, n: length }),
  // A small mutation, so compares find differences at every position.
  fc.record({ kind: fc.constant('poke' as const), a: fc.integer({ min: 0, max: AREA - 1 }), b: fc.integer({ min: 0, max: 255 }), n: fc.constant(0) }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function apply(area: ByteArea, o: Op): unknown {
  return outcome(() => {
    switch (o.kind) {
      case 'copy': return area.copy(o.a, o.b, o.n);
      case 'fill': return area.fill(o.a, o.b, o.n);
      case 'compare': return area.compare(o.a, o.b, o.n);
      case 'poke': area.bytes[o.a] = o.b; return undefined;
    }
  });
}

for (const [name, make] of [['wasm', makeCore], ['reference', makeReference]] as const) {
  const t = suite(`copy, fill, compare behaviour (${name})`);

  t('copy moves bytes, overlapping either way', async () => {
    const area = await make();
    for (let i = 0; i < 100; i++) area.bytes[i] = i;
    area.copy(10, 0, 50);
    for (let i = 0; i < 50; i++) assert.is(area.bytes[10 + i], i, `forward overlap at ${i}`);
    for (let i = 0; i < 100; i++) area.bytes[i] = i;
    area.copy(0, 10, 50);
    for (let i = 0; i < 50; i++) assert.is(area.bytes[i], 10 + i, `backward overlap at ${i}`);
    area.copy(0, 0, AREA);
    area.copy(AREA, 0, 0);
    throwsCode(() => area.copy(1, 0, AREA), 'OUT_OF_BOUNDS');
    throwsCode(() => area.copy(0, AREA, 1), 'OUT_OF_BOUNDS');
    throwsCode(() => area.copy(-1, 0, 1), 'INVALID_ARGUMENT');
  });

  t('fill sets a range and nothing else', async () => {
    const area = await make();
    area.fill(100, 0xAB, 37);
    assert.is(area.bytes[99], 0);
    for (let i = 100; i < 137; i++) assert.is(area.bytes[i], 0xAB);
    assert.is(area.bytes[137], 0);
    throwsCode(() => area.fill(0, 256, 1), 'INVALID_ARGUMENT');
    throwsCode(() => area.fill(0, -1, 1), 'INVALID_ARGUMENT');
    throwsCode(() => area.fill(AREA - 1, 0, 2), 'OUT_OF_BOUNDS');
  });

  t('compare finds the first differing byte at every position', async () => {
    const area = await make();
    const n = 700;
    for (let at = 0; at < n; at++) {
      area.fill(0, 7, 2 * n);
      area.bytes[n + at] = 8;
      area.bytes[n + Math.min(n - 1, at + 5)] = 9;
      assert.is(area.compare(0, n, n), at, `difference at ${at}`);
      assert.is(area.compare(n, 0, n), at);
      assert.is(area.compare(0, n, at), -1, 'equal before it');
    }
    assert.is(area.compare(0, 0, AREA), -1);
    assert.is(area.compare(AREA, AREA, 0), -1);
    throwsCode(() => area.compare(0, 0, 0x80000000), 'INVALID_ARGUMENT');
    throwsCode(() => area.compare(0, 1, AREA), 'OUT_OF_BOUNDS');
  });

  t.run();
}

const model = suite('copy, fill, compare: wasm core against the reference');

model('random operation sequences give the same results and the same bytes', async () => {
  const wasm = await makeCore();
  const ref = await makeReference();
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.integer(), (ops, seed) => {
      const start = randomBytes(AREA, seed);
      wasm.bytes.set(start);
      ref.bytes.set(start);
      for (const [i, o] of ops.entries()) {
        assert.equal(apply(wasm, o), apply(ref, o), `op ${i}: ${JSON.stringify(o)}`);
      }
      assert.ok(wasm.bytes.every((v, i) => v === ref.bytes[i]), 'same bytes');
    }),
    { numRuns: 300 },
  );
});

model('frame helpers: copyFrame, fillFrame, compareFrames', async () => {
  const core = await Core.create({ frames: 4, pageSize: 4096 });
  core.frameView(0).set(randomBytes(4096, 5));
  core.fillFrame(1, 0x5A);
  assert.ok(core.frameView(1).every((v) => v === 0x5A));
  assert.is.not(core.compareFrames(0, 1), -1);
  core.copyFrame(1, 0);
  assert.is(core.compareFrames(0, 1), -1);
  assert.equal(core.frameView(1), core.frameView(0));
  core.frameView(1)[4095] ^= 1;
  assert.is(core.compareFrames(0, 1), 4095);
  core.frameView(1)[17] ^= 1;
  assert.is(core.compareFrames(1, 0), 17);
  assert.is(core.checksumFrame(2), core.checksumFrame(3), 'untouched frames are both zero');
  throwsCode(() => core.copyFrame(4, 0), 'INVALID_ARGUMENT');
  throwsCode(() => core.fillFrame(0, 300), 'INVALID_ARGUMENT');
  throwsCode(() => core.compareFrames(0, -1), 'INVALID_ARGUMENT');
  assert.is(core.compareFrames(2, 3), -1, 'still works');
});

model.run();
