// Deterministic data shared by the tests: a seeded PRNG and byte patterns.

/** A seeded PRNG (mulberry32) giving numbers in [0, 1). */
export { mulberry32 as rng } from '../bindings/mirror/transports/faulty.js';

/** `n` bytes that depend on `seed` (never all zero for n >= 16). */
export function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed ^ 0x9E3779B9) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xFF;
  }
  return out;
}
