// The core's byte routines against the usual JS choices:
//   core.checksum         XXH3-64 of 256 pages in one checksumFrames call
//                         vs xxhash-wasm's h64 of each page
//   core.checksum_single  one call per page: checksumFrame vs h64Raw
//   core.copy             one page, copyFrame vs TypedArray.prototype.set
// Pages are already in linear memory (frames); the others hash the same
// bytes through frameView, so nobody pays for a copy the others skip.
import xxhash from 'xxhash-wasm';
import { xxhash3, xxhash64 } from 'hash-wasm';
import { Core } from '../bindings/index.js';
import { compare, expectEqual, rng } from './util.js';

const PAGE = 4096;
const FRAMES = 256;

function hex(sum: bigint): string {
  return sum.toString(16).padStart(16, '0');
}

export async function run(): Promise<void> {
  const core = await Core.create({ frames: FRAMES + 2, pageSize: PAGE });
  const { h64Raw } = await xxhash();
  const random = rng(0x5EED);
  const frames = Array.from({ length: FRAMES }, (_, i) => i);
  const views = frames.map((f) => core.frameView(f));
  for (const v of views) for (let i = 0; i < v.length; i++) v[i] = (random() * 256) | 0;

  // The contender of both checksum benchmarks: XXH64 of each page, one call per page.
  const xxh64PerPage = {
    name: 'xxhash-wasm h64Raw (XXH64)',
    run: () => { for (const v of views) sink ^= h64Raw(v); },
    // Checked against another implementation (hash-wasm's), and against a
    // published vector: XXH64 of no bytes with seed 0 is ef46db3751d8e999.
    check: async () => {
      expectEqual('XXH64 of no bytes', hex(h64Raw(new Uint8Array(0))), 'ef46db3751d8e999');
      for (const f of [0, 1, 77, FRAMES - 1]) {
        expectEqual(`XXH64 of frame ${f}`, hex(h64Raw(views[f])), await xxhash64(views[f]));
      }
    },
  };
  // --- checksum, batched ---------------------------------------------------
  let sink = 0n;
  await compare({
    suite: 'core',
    name: 'checksum',
    opsPerRun: FRAMES,
    goal: '>= 1.2',
    ours: {
      name: 'twinpage checksumFrames (XXH3)',
      run: () => { sink ^= core.checksumFrames(frames)[0]; },
      check: async () => {
        const sums = core.checksumFrames(frames);
        for (const f of [0, 1, 77, FRAMES - 1]) {
          expectEqual(`XXH3 of frame ${f}`, hex(sums[f]), await xxhash3(views[f]));
        }
      },
    },
    others: [xxh64PerPage],
  });

  // --- checksum, one call per page -------------------------------------------
  await compare({
    suite: 'core',
    name: 'checksum_single',
    opsPerRun: FRAMES,
    ours: {
      name: 'twinpage checksumFrame (XXH3)',
      run: () => { for (let f = 0; f < FRAMES; f++) sink ^= core.checksumFrame(f); },
      check: async () => {
        for (const f of [0, 1, 77, FRAMES - 1]) {
          expectEqual(`XXH3 of frame ${f}`, hex(core.checksumFrame(f)), await xxhash3(views[f]));
        }
      },
    },
    others: [xxh64PerPage],
  });

  // --- copy -----------------------------------------------------------------
  const dst = FRAMES;
  const other = FRAMES + 1;
  const dstView = core.frameView(dst);
  const otherView = core.frameView(other);
  let src = 0;
  const sameBytes = (what: string, a: Uint8Array, b: Uint8Array) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`${what}: byte ${i} differs`);
  };
  await compare({
    suite: 'core',
    name: 'copy',
    opsPerRun: FRAMES,
    goal: '>= 0.9',
    ours: {
      name: 'twinpage copyFrame',
      run: () => { for (src = 0; src < FRAMES; src++) core.copyFrame(dst, src); },
      check: () => {
        for (src = 0; src < FRAMES; src += 51) {
          core.fillFrame(dst, 0);
          core.copyFrame(dst, src);
          sameBytes(`copyFrame(${dst}, ${src})`, dstView, views[src]);
          expectEqual(`compareFrames(${dst}, ${src})`, core.compareFrames(dst, src), -1);
        }
      },
    },
    others: [{
      name: 'Uint8Array.prototype.set',
      run: () => { for (src = 0; src < FRAMES; src++) otherView.set(views[src]); },
      check: () => {
        for (src = 0; src < FRAMES; src += 51) {
          otherView.fill(0);
          otherView.set(views[src]);
          sameBytes(`set(${src})`, otherView, views[src]);
        }
      },
    }],
  });
  if (sink === 0x1234n) console.log('');
}
