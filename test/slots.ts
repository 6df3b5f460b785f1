// Test data for the campaigns over serve processes (partition.test.ts,
// quorum-pair.ts): the demo's 4 KiB slots, whose bytes say which write they
// are (bindings/cli/demo-data.ts), and how to tell which version one holds.
import { SLOT, slotData } from '../bindings/cli/demo-data.js';

export { SLOT, slotData };

/** Which version of `slot` these 4 KiB are: 0 for zeros, -1 for anything else (torn, foreign, garbage). */
export function versionOf(slot: number, bytes: Buffer): number {
  if (bytes.every((b) => b === 0)) return 0;
  if (bytes.length !== SLOT || bytes.readUInt32LE(4) !== slot) return -1;
  const v = bytes.readUInt32LE(8);
  return slotData(slot, v).equals(bytes) ? v : -1;
}
