// XXH3-64 page checksums over linear memory.
//
// XXH3 (64-bit output, seed 0, the default 192-byte secret), written from
// the algorithm description in xxHash's doc/xxhash_spec.md. The result is
// bit-for-bit the reference XXH3_64bits(): the known-answer vectors of
// xxHash's sanity check and an independent implementation guard it
// (test/checksum.test.ts).
//
// Inputs are split by length, each class with its own mixing:
//
//   len       path
//   0         avalanche of the secret alone
//   1..3      three bytes and the length packed into one u32
//   4..8      first and last u32, rrmxmx finalizer
//   9..16     first and last u64, one 128-bit multiply
//   17..128   1..4 pairs of 16-byte mixes from both ends
//   129..240  8 mixes, avalanche, then up to 7 more and the last 16 bytes
//   > 240     the long path below
//
// The long path keeps eight u64 accumulators and walks the input in 64-byte
// stripes, each stripe against the secret shifted by 8 bytes per stripe. A
// block is 16 stripes (1 KiB); after each block the accumulators are
// scrambled with the secret's last 64 bytes:
//
//   input  |<------------------- block (1024 B) ------------------->|
//          +----------+----------+-----+-----------+
//          | stripe 0 | stripe 1 | ... | stripe 15 |  scramble  ...  last stripe
//          +----------+----------+-----+-----------+              (input end - 64)
//   secret  [0, 64)    [8, 72)          [120, 184)  [128, 192)     [121, 185)
//
// One stripe, per u64 lane i of 0..7 (d = input lane, k = secret lane):
//
//   x          = d[i] ^ k[i]
//   acc[i]    += lo32(x) * hi32(x)        (32 x 32 -> 64-bit multiply)
//   acc[i ^ 1] += d[i]                    (lanes swapped in pairs)
//
// The eight accumulators are four v128 (two u64 lanes each), so one stripe
// is four 16-byte loads of input and secret. The 32 x 32 -> 64 products of
// two vectors come from one pair of shuffles and both halves of
// i64x2.extmul_i32x4_u:
//
//   x  = [x0 lo, x0 hi, x1 lo, x1 hi]     y = [y0 lo, y0 hi, y1 lo, y1 hi]
//   L  = [x0 lo, x1 lo, y0 lo, y1 lo]     H = [x0 hi, x1 hi, y0 hi, y1 hi]
//   extmul_low(L, H)  = [x0 lo * x0 hi, x1 lo * x1 hi]   (for x's lanes)
//   extmul_high(L, H) = [y0 lo * y0 hi, y1 lo * y1 hi]   (for y's lanes)

import { OK, E_NOT_READY, E_INVALID_ARG, E_BOUNDS, E_FRAME_RANGE } from './status';
import { reserve, ready, dataPtr, frameData, pageSize } from './layout';
import { scratchBase, scratchCount, frameCount, metaBase } from './pagetable';

@inline const PRIME32_1: u64 = 0x9E3779B1;
@inline const PRIME32_2: u64 = 0x85EBCA77;
@inline const PRIME32_3: u64 = 0xC2B2AE3D;
@inline const PRIME64_1: u64 = 0x9E3779B185EBCA87;
@inline const PRIME64_2: u64 = 0xC2B2AE3D27D4EB4F;
@inline const PRIME64_3: u64 = 0x165667B19E3779F9;
@inline const PRIME64_4: u64 = 0x85EBCA77C2B2AE63;
@inline const PRIME64_5: u64 = 0x27D4EB2F165667C5;
@inline const PRIME_MX1: u64 = 0x165667919E3779F9;
@inline const PRIME_MX2: u64 = 0x9FB21C651E98DF25;

@inline const SECRET_SIZE: usize = 192;
@inline const STRIPE_LEN: usize = 64;
@inline const SECRET_CONSUME_RATE: usize = 8;
@inline const STRIPES_PER_BLOCK: usize = (SECRET_SIZE - STRIPE_LEN) / SECRET_CONSUME_RATE; // 16
@inline const BLOCK_LEN: usize = STRIPE_LEN * STRIPES_PER_BLOCK; // 1024
@inline const MIDSIZE_MAX: usize = 240;
@inline const MIDSIZE_START_OFFSET: usize = 3;
@inline const MIDSIZE_LAST_OFFSET: usize = 17;
@inline const SECRET_SIZE_MIN: usize = 136;
@inline const SECRET_LAST_STRIPE: usize = SECRET_SIZE - STRIPE_LEN - 7; // 121
@inline const SECRET_SCRAMBLE: usize = SECRET_SIZE - STRIPE_LEN; // 128
@inline const SECRET_MERGE: usize = 11;

@inline const META_SIZE: usize = 16;
@inline const META_CHECKSUM: usize = 8;

/** The default secret (kSecret), 192 pseudorandom bytes fixed by the spec. */
const SECRET: usize = memory.data<u8>([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
], 16);

/** u64 x scratchCount: the sums of checksumFrames, in list order. */
export let scratch64Base: usize = 0;
/** u64: the sum of checksum(). */
export let resultBase: usize = 0;

/** Reserves the u64 scratch (one sum per listed frame) and the result slot. */
export function checksumSetup(scratch: u32): bool { scratch64Base = reserve(<u64>scratch * 8, 16); resultBase = reserve(8, 8); return scratch64Base != 0 && resultBase != 0; }

// --- scalar helpers ----------------------------------------------------------

/** Low 64 bits xor high 64 bits of the 128-bit product a * b. */
@inline function mul128Fold64(a: u64, b: u64): u64 {
  let aLo = a & 0xFFFFFFFF;
  let aHi = a >> 32;
  let bLo = b & 0xFFFFFFFF;
  let bHi = b >> 32;
  let loLo = aLo * bLo;
  let hiLo = aHi * bLo;
  let loHi = aLo * bHi;
  let hiHi = aHi * bHi;
  let cross = (loLo >> 32) + (hiLo & 0xFFFFFFFF) + loHi;
  let hi = (hiLo >> 32) + (cross >> 32) + hiHi;
  let lo = (cross << 32) | (loLo & 0xFFFFFFFF);
  return lo ^ hi;
}

/** XXH64's final mix, used by the 0..3-byte paths. */
@inline function xxh64Avalanche(h: u64): u64 {
  h ^= h >> 33;
  h *= PRIME64_2;
  h ^= h >> 29;
  h *= PRIME64_3;
  h ^= h >> 32;
  return h;
}

/** XXH3's final mix. */
@inline function avalanche(h: u64): u64 {
  h ^= h >> 37;
  h *= PRIME_MX1;
  h ^= h >> 32;
  return h;
}

/** The 4..8-byte finalizer: rotate-rotate, multiply, xorshift, multiply. */
@inline function rrmxmx(h: u64, len: u64): u64 {
  h ^= rotl<u64>(h, 49) ^ rotl<u64>(h, 24);
  h *= PRIME_MX2;
  h ^= (h >> 35) + len;
  h *= PRIME_MX2;
  h ^= h >> 28;
  return h;
}

/** 16 input bytes against 16 secret bytes (seed 0). */
@inline function mix16(p: usize, s: usize): u64 {
  return mul128Fold64(load<u64>(p) ^ load<u64>(s), load<u64>(p, 8) ^ load<u64>(s, 8));
}

// --- short inputs ------------------------------------------------------------

function hash0To16(p: usize, len: usize): u64 {
  if (len > 8) {
    let lo = load<u64>(p) ^ (load<u64>(SECRET, 24) ^ load<u64>(SECRET, 32));
    let hi = load<u64>(p + len - 8) ^ (load<u64>(SECRET, 40) ^ load<u64>(SECRET, 48));
    let acc = <u64>len + bswap<u64>(lo) + hi + mul128Fold64(lo, hi);
    return avalanche(acc);
  }
  if (len >= 4) {
    let first = <u64>load<u32>(p);
    let last = <u64>load<u32>(p + len - 4);
    let keyed = (last | (first << 32)) ^ (load<u64>(SECRET, 8) ^ load<u64>(SECRET, 16));
    return rrmxmx(keyed, <u64>len);
  }
  if (len > 0) {
    //   bits  24..31   16..23   8..15   0..7
    //         middle   first    len     last
    let c1 = <u32>load<u8>(p);
    let c2 = <u32>load<u8>(p + (len >> 1));
    let c3 = <u32>load<u8>(p + len - 1);
    let combined = (c1 << 16) | (c2 << 24) | c3 | (<u32>len << 8);
    let flip = <u64>(load<u32>(SECRET) ^ load<u32>(SECRET, 4));
    return xxh64Avalanche(<u64>combined ^ flip);
  }
  return xxh64Avalanche(load<u64>(SECRET, 56) ^ load<u64>(SECRET, 64));
}

function hash17To128(p: usize, len: usize): u64 {
  let acc = <u64>len * PRIME64_1;
  if (len > 32) {
    if (len > 64) {
      if (len > 96) {
        acc += mix16(p + 48, SECRET + 96);
        acc += mix16(p + len - 64, SECRET + 112);
      }
      acc += mix16(p + 32, SECRET + 64);
      acc += mix16(p + len - 48, SECRET + 80);
    }
    acc += mix16(p + 16, SECRET + 32);
    acc += mix16(p + len - 32, SECRET + 48);
  }
  acc += mix16(p, SECRET);
  acc += mix16(p + len - 16, SECRET + 16);
  return avalanche(acc);
}

function hash129To240(p: usize, len: usize): u64 {
  let acc = <u64>len * PRIME64_1;
  for (let i: usize = 0; i < 8; i++) acc += mix16(p + 16 * i, SECRET + 16 * i);
  acc = avalanche(acc);
  let rounds = len >> 4;
  for (let i: usize = 8; i < rounds; i++) {
    acc += mix16(p + 16 * i, SECRET + 16 * (i - 8) + MIDSIZE_START_OFFSET);
  }
  acc += mix16(p + len - 16, SECRET + SECRET_SIZE_MIN - MIDSIZE_LAST_OFFSET);
  return avalanche(acc);
}

// --- long inputs (SIMD) ------------------------------------------------------

/** Scrambles one accumulator vector: acc = (acc ^ (acc >> 47) ^ key) * PRIME32_1. */
@inline function scramble(acc: v128, s: usize): v128 {
  let x = v128.xor(v128.xor(acc, i64x2.shr_u(acc, 47)), v128.load(s));
  // x * P with P < 2^32: lo32(x) * P + (hi32(x) * P) << 32.
  let prime = i32x4.splat(<i32>PRIME32_1);
  let lo = i64x2.extmul_low_i32x4_u(i32x4.shuffle(x, x, 0, 2, 0, 2), prime);
  let hi = i64x2.extmul_low_i32x4_u(i32x4.shuffle(x, x, 1, 3, 1, 3), prime);
  return i64x2.add(lo, i64x2.shl(hi, 32));
}

/** Mixes two accumulators with 16 secret bytes. */
@inline function mix2Accs(a: u64, b: u64, s: usize): u64 {
  return mul128Fold64(a ^ load<u64>(s), b ^ load<u64>(s, 8));
}

function hashLong(p: usize, len: usize): u64 {
  let acc0 = i64x2(<i64>PRIME32_3, <i64>PRIME64_1);
  let acc1 = i64x2(<i64>PRIME64_2, <i64>PRIME64_3);
  let acc2 = i64x2(<i64>PRIME64_4, <i64>PRIME32_2);
  let acc3 = i64x2(<i64>PRIME64_5, <i64>PRIME32_1);

  // Full blocks, then the stripes of the last (partial) block, then the
  // last stripe, which ends at the input's end and may overlap the others
  // (it takes its own secret): blocks + 2 runs of stripes through one loop.
  let blocks = (len - 1) / BLOCK_LEN;
  let tail = ((len - 1) - blocks * BLOCK_LEN) / STRIPE_LEN;
  let q = p;
  for (let b: usize = 0; b <= blocks + 1; b++) {
    let stripes: usize = b < blocks ? STRIPES_PER_BLOCK : b == blocks ? tail : 1;
    let s = SECRET;
    if (b > blocks) {
      q = p + len - STRIPE_LEN;
      s = SECRET + SECRET_LAST_STRIPE;
    }
    let end = q + stripes * STRIPE_LEN;
    while (q < end) {
      // acc[i] += lo32(x) * hi32(x), acc[i ^ 1] += d[i] (see the header).
      let d0 = v128.load(q);
      let d1 = v128.load(q, 16);
      let d2 = v128.load(q, 32);
      let d3 = v128.load(q, 48);
      let x0 = v128.xor(d0, v128.load(s));
      let x1 = v128.xor(d1, v128.load(s, 16));
      let x2 = v128.xor(d2, v128.load(s, 32));
      let x3 = v128.xor(d3, v128.load(s, 48));
      let l01 = i32x4.shuffle(x0, x1, 0, 2, 4, 6);
      let h01 = i32x4.shuffle(x0, x1, 1, 3, 5, 7);
      let l23 = i32x4.shuffle(x2, x3, 0, 2, 4, 6);
      let h23 = i32x4.shuffle(x2, x3, 1, 3, 5, 7);
      acc0 = i64x2.add(acc0, i64x2.add(i64x2.shuffle(d0, d0, 1, 0), i64x2.extmul_low_i32x4_u(l01, h01)));
      acc1 = i64x2.add(acc1, i64x2.add(i64x2.shuffle(d1, d1, 1, 0), i64x2.extmul_high_i32x4_u(l01, h01)));
      acc2 = i64x2.add(acc2, i64x2.add(i64x2.shuffle(d2, d2, 1, 0), i64x2.extmul_low_i32x4_u(l23, h23)));
      acc3 = i64x2.add(acc3, i64x2.add(i64x2.shuffle(d3, d3, 1, 0), i64x2.extmul_high_i32x4_u(l23, h23)));
      q += STRIPE_LEN;
      s += SECRET_CONSUME_RATE;
    }
    if (b < blocks) {
      let k = SECRET + SECRET_SCRAMBLE;
      acc0 = scramble(acc0, k);
      acc1 = scramble(acc1, k + 16);
      acc2 = scramble(acc2, k + 32);
      acc3 = scramble(acc3, k + 48);
    }
  }

  // Merge the eight accumulators, pairwise, against the secret from byte 11.
  let m = SECRET + SECRET_MERGE;
  let h = <u64>len * PRIME64_1;
  h += mix2Accs(i64x2.extract_lane(acc0, 0), i64x2.extract_lane(acc0, 1), m);
  h += mix2Accs(i64x2.extract_lane(acc1, 0), i64x2.extract_lane(acc1, 1), m + 16);
  h += mix2Accs(i64x2.extract_lane(acc2, 0), i64x2.extract_lane(acc2, 1), m + 32);
  h += mix2Accs(i64x2.extract_lane(acc3, 0), i64x2.extract_lane(acc3, 1), m + 48);
  return avalanche(h);
}

/** XXH3-64 (seed 0) of [ptr, ptr + len). Unchecked: the caller bounds the range. */
export function xxh3_64(ptr: usize, len: usize): u64 {
  if (len <= 16) return hash0To16(ptr, len);
  if (len <= 128) return hash17To128(ptr, len);
  if (len <= MIDSIZE_MAX) return hash129To240(ptr, len);
  return hashLong(ptr, len);
}

// --- exports -----------------------------------------------------------------

/** XXH3-64 of data-area bytes [off, off + len), written as a u64 at resultBase. */
export function checksum(off: u32, len: u32): i32 {
  if (!ready) return E_NOT_READY;
  let p = dataPtr(off, len);
  if (p == 0) return E_BOUNDS;
  store<u64>(resultBase, xxh3_64(p, <usize>len));
  return OK;
}

/**
 * XXH3-64 of each frame listed in scratch[0 .. count) (u32 frame indexes):
 * the sums go to scratch64[0 .. count) and to each frame's metadata. All
 * frames are checked first; an out-of-range one writes nothing.
 */
export function checksumFrames(count: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (count == 0 || count > scratchCount) return E_INVALID_ARG;
  for (let i: u32 = 0; i < count; i++) {
    if (load<u32>(scratchBase + (<usize>i << 2)) >= frameCount) return E_FRAME_RANGE;
  }
  let size = pageSize;
  for (let i: u32 = 0; i < count; i++) {
    let frame = load<u32>(scratchBase + (<usize>i << 2));
    let sum = xxh3_64(frameData(frame), size);
    store<u64>(scratch64Base + (<usize>i << 3), sum);
    store<u64>(metaBase + <usize>frame * META_SIZE, sum, META_CHECKSUM);
  }
  return OK;
}
