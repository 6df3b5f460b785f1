// Copy, fill and compare within the data area.
//
// Ranges are named by data-area offsets (see layout.ts) and checked with
// dataPtr(), so none of these can reach the metadata below the data area:
//
//   dataBase
//   +-----------+---------+---------+-----+
//   | io buffer | frame 0 | frame 1 | ... |
//   +-----------+---------+---------+-----+
//   ^ offset 0
//
// copyBytes and fillBytes are memory.copy and memory.fill (bulk memory: the
// engine's memmove and memset). compareBytes scans 64 bytes per step with
// v128 compares and finds the first differing byte from a lane bitmask:
//
//   a      | 16 B | 16 B | 16 B | 16 B |   four i8x16.eq, and-ed together:
//   b      | 16 B | 16 B | 16 B | 16 B |   all_true -> next 64 bytes, else
//                                           the first vector with a zero lane,
//   bitmask(eq) = 1 bit per equal byte      index = ctz(~mask)

import { OK, E_NOT_READY, E_INVALID_ARG, E_BOUNDS } from './status';
import { ready, dataPtr } from './layout';

@inline const MAX_COMPARE: u32 = 0x7FFFFFFF;
@inline const BYTE_MAX: u32 = 255;
@inline const ALL_EQUAL: i32 = 0xFFFF;

/** Copies [src, src + len) to [dst, dst + len); the ranges may overlap. */
export function copyBytes(dst: u32, src: u32, len: u32): i32 {
  if (!ready) return E_NOT_READY;
  let d = dataPtr(dst, len);
  let s = dataPtr(src, len);
  if (d == 0 || s == 0) return E_BOUNDS;
  memory.copy(d, s, <usize>len);
  return OK;
}

/** Sets [off, off + len) to `value` (0..255). */
export function fillBytes(off: u32, value: u32, len: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (value > BYTE_MAX) return E_INVALID_ARG;
  let p = dataPtr(off, len);
  if (p == 0) return E_BOUNDS;
  memory.fill(p, <u8>value, <usize>len);
  return OK;
}

/** One bit per byte of two 16-byte vectors, set where the bytes are equal. */
@inline function eqMask(a: usize, b: usize): i32 {
  return i8x16.bitmask(i8x16.eq(v128.load(a), v128.load(b)));
}

/**
 * Index of the first byte where [a, a + len) and [b, b + len) differ, or
 * `len` when they are equal (so len is at most 2^31 - 1).
 */
export function compareBytes(a: u32, b: u32, len: u32): i32 {
  if (!ready) return E_NOT_READY;
  if (len > MAX_COMPARE) return E_INVALID_ARG;
  let pa = dataPtr(a, len);
  let pb = dataPtr(b, len);
  if (pa == 0 || pb == 0) return E_BOUNDS;
  let n = <usize>len;
  let i: usize = 0;
  while (i + 64 <= n) {
    let e0 = i8x16.eq(v128.load(pa + i), v128.load(pb + i));
    let e1 = i8x16.eq(v128.load(pa + i, 16), v128.load(pb + i, 16));
    let e2 = i8x16.eq(v128.load(pa + i, 32), v128.load(pb + i, 32));
    let e3 = i8x16.eq(v128.load(pa + i, 48), v128.load(pb + i, 48));
    if (!i8x16.all_true(v128.and(v128.and(e0, e1), v128.and(e2, e3)))) break;
    i += 64;
  }
  while (i + 16 <= n) {
    let mask = eqMask(pa + i, pb + i);
    if (mask != ALL_EQUAL) return <i32>(i + <usize>ctz<u32>(~<u32>mask));
    i += 16;
  }
  if (i < n) {
    if (n >= 16) {
      // The last 16 bytes, overlapping bytes already known to be equal.
      let at = n - 16;
      let mask = eqMask(pa + at, pb + at);
      if (mask != ALL_EQUAL) return <i32>(at + <usize>ctz<u32>(~<u32>mask));
    } else {
      while (i < n) {
        if (load<u8>(pa + i) != load<u8>(pb + i)) return <i32>i;
        i++;
      }
    }
  }
  return <i32>n;
}
