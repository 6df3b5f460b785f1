// Test data for the campaigns over serve processes (partition.test.ts,
// quorum-pair.ts): 4 KiB slots whose bytes say which write they are.

export const SLOT = 4096;
const MAGIC = 0x54505044; // 'TPPD'

/** The 4 KiB written as `version` of `slot`: a header (magic, slot, version) and bytes derived from both. */
export function slotData(slot: number, version: number): Buffer {
  const w = new Uint32Array(SLOT / 4);
  w[0] = MAGIC; w[1] = slot; w[2] = version;
  let x = (Math.imul(slot + 1, 0x9E3779B1) ^ Math.imul(version, 0x85EBCA77)) >>> 0 || 1;
  for (let i = 3; i < w.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    w[i] = x;
  }
  return Buffer.from(w.buffer);
}

/** Which version of `slot` these 4 KiB are: 0 for zeros, -1 for anything else (torn, foreign, garbage). */
export function versionOf(slot: number, bytes: Buffer): number {
  if (bytes.every((b) => b === 0)) return 0;
  if (bytes.length !== SLOT || bytes.readUInt32LE(0) !== MAGIC || bytes.readUInt32LE(4) !== slot) return -1;
  const v = bytes.readUInt32LE(8);
  return slotData(slot, v).equals(bytes) ? v : -1;
}
