// The on-disk format of what a node keeps about its partner: the replica
// record (device `replica`, two fixed-size slots written alternately) and
// the out-of-sync bitmap (device `bitmap`, one bit per page, in 4 KiB
// chunks, with a checksum entry per chunk in device `bitmap.sums`). Pure
// encoding and decoding; no I/O. Nothing here grows with the data but the
// bitmap, which has its own devices.
//
// --- a replica slot (SLOT_BYTES, both slots alike) ---------------------------
//
//   0       4         8          16      20           24         32        40      48            56
//   +-------+---------+----------+-------+------------+----------+---------+-------+-------------+
//   | magic | version | sequence | flags | extentPages| current  | bitmap  | epoch | primarySince|
//   | u32   | u32     | u64      | u32   | u32        | big64    | big64   | u64   | u64         |
//   +-------+---------+----------+-------+------------+----------+---------+-------+-------------+
//   56        72        80       84            88               216        220
//   +---------+---------+--------+-------------+----------------+----------+------------------+
//   | partner | weight  | chunks | historyCount| history 16 x 8 | intents n| n x u32 extents  |
//   | guid/0  | u64     | u32    | u32         | big64          | u32      |                  |
//   +---------+---------+--------+-------------+----------------+----------+------------------+
//   SLOT_BYTES - 8: checksum (XXH3-64 of the slot before it)
//
// flags: bit 0 clean (the mirror closed cleanly), 1 inconsistent, 2 shared
// (the partner knows the current generation), 3 discardLocal, 4 known (the
// bitmap is a trusted record; else a resync compares checksums). `weight`
// and `chunks`: the bitmap's set pages and the chunks it spans as of the
// last save (a clean store's bitmap must add up to them). The valid slot
// with the higher sequence wins.
//
// --- a bitmap sums entry (16 bytes per chunk) --------------------------------
//
//   0          8       12       16
//   | checksum | chunk | weight |     all zero: never written (the chunk is all zero)
//   | u64      | u32   | u32    |

import { TwinpageError } from '../errors.js';
import { bytesToGuid, guidToBytes, isGuid, type Hash } from './format.js';

export const REPLICA_MAGIC = 0x50525054; // "TPRP"
export const REPLICA_VERSION = 1;
/** Most write-intent extents a slot holds. */
export const MAX_INTENTS = 4096;
/** Bytes of one slot: the fields, MAX_INTENTS extents and the checksum, in whole 4 KiB. */
export const SLOT_BYTES = 20480;
export const HISTORY_SLOTS = 16;
export const BITMAP_CHUNK_BYTES = 4096;
export const BITMAP_SUM_BYTES = 16;

const FLAG = { clean: 1, inconsistent: 2, shared: 4, discardLocal: 8, known: 16 } as const;
const NO_GENERATION = '0000000000000000';

/** What a replica slot holds. */
export interface ReplicaSlot {
  sequence: number;
  clean: boolean;
  inconsistent: boolean;
  shared: boolean;
  discardLocal: boolean;
  known: boolean;
  extentPages: number;
  /** Generations as 16 hex digits (all zeros: none). */
  current: string;
  bitmap: string;
  history: string[];
  epoch: number;
  primarySince: number;
  /** The partner's node id, or null. */
  partner: string | null;
  /** The bitmap's weight and the chunks it spans, as saved. */
  weight: number;
  chunks: number;
  /** Hot write-intent extents. */
  intents: number[];
}

export function encodeReplicaSlot(s: ReplicaSlot, hash: Hash): Uint8Array {
  if (s.intents.length > MAX_INTENTS) throw TwinpageError.tooLarge(`${s.intents.length} write-intent extents; a record holds at most ${MAX_INTENTS}`);
  const out = new Uint8Array(SLOT_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, REPLICA_MAGIC, true);
  v.setUint32(4, REPLICA_VERSION, true);
  v.setBigUint64(8, BigInt(s.sequence), true);
  v.setUint32(16, (s.clean ? FLAG.clean : 0) | (s.inconsistent ? FLAG.inconsistent : 0) | (s.shared ? FLAG.shared : 0)
    | (s.discardLocal ? FLAG.discardLocal : 0) | (s.known ? FLAG.known : 0), true);
  v.setUint32(20, s.extentPages, true);
  v.setBigUint64(24, generationBits(s.current), true);
  v.setBigUint64(32, generationBits(s.bitmap), true);
  v.setBigUint64(40, BigInt(s.epoch), true);
  v.setBigUint64(48, BigInt(Math.max(0, Math.floor(s.primarySince))), true);
  if (s.partner && isGuid(s.partner)) out.set(guidToBytes(s.partner), 56);
  v.setBigUint64(72, BigInt(s.weight), true);
  v.setUint32(80, s.chunks, true);
  const history = s.history.slice(0, HISTORY_SLOTS);
  v.setUint32(84, history.length, true);
  history.forEach((g, i) => v.setBigUint64(88 + i * 8, generationBits(g), true));
  v.setUint32(216, s.intents.length, true);
  s.intents.forEach((e, i) => v.setUint32(220 + i * 4, e, true));
  v.setBigUint64(SLOT_BYTES - 8, hash(out.subarray(0, SLOT_BYTES - 8)), true);
  return out;
}

/** The slot in `bytes`, or null when it is blank, torn or corrupt. */
export function decodeReplicaSlot(bytes: Uint8Array, hash: Hash): ReplicaSlot | null {
  if (bytes.length !== SLOT_BYTES) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== REPLICA_MAGIC || v.getUint32(4, true) !== REPLICA_VERSION) return null;
  if (v.getBigUint64(SLOT_BYTES - 8, true) !== hash(bytes.subarray(0, SLOT_BYTES - 8))) return null;
  const flags = v.getUint32(16, true);
  const historyCount = v.getUint32(84, true);
  const intentCount = v.getUint32(216, true);
  if (historyCount > HISTORY_SLOTS || intentCount > MAX_INTENTS) return null;
  const partnerBytes = bytes.subarray(56, 72);
  return {
    sequence: Number(v.getBigUint64(8, true)),
    clean: (flags & FLAG.clean) !== 0,
    inconsistent: (flags & FLAG.inconsistent) !== 0,
    shared: (flags & FLAG.shared) !== 0,
    discardLocal: (flags & FLAG.discardLocal) !== 0,
    known: (flags & FLAG.known) !== 0,
    extentPages: v.getUint32(20, true),
    current: hex(v.getBigUint64(24, true)),
    bitmap: hex(v.getBigUint64(32, true)),
    epoch: Number(v.getBigUint64(40, true)),
    primarySince: Number(v.getBigUint64(48, true)),
    partner: partnerBytes.some((b) => b !== 0) ? bytesToGuid(partnerBytes) : null,
    weight: Number(v.getBigUint64(72, true)),
    chunks: v.getUint32(80, true),
    history: Array.from({ length: historyCount }, (_, i) => hex(v.getBigUint64(88 + i * 8, true))),
    intents: Array.from({ length: intentCount }, (_, i) => v.getUint32(220 + i * 4, true)),
  };
}

/** A bitmap chunk's sums entry. */
export function encodeBitmapSum(chunk: number, bytes: Uint8Array, weight: number, hash: Hash, into: Uint8Array, at = 0): void {
  const v = new DataView(into.buffer, into.byteOffset + at, BITMAP_SUM_BYTES);
  v.setBigUint64(0, hash(bytes), true);
  v.setUint32(8, chunk, true);
  v.setUint32(12, weight, true);
}

/**
 * Checks chunk `chunk` against its sums entry: 'empty' (never written, all
 * zero), 'ok' with its weight, or 'bad' (it fails its checksum, names
 * another chunk, or a never-written entry covers bytes that are not zero).
 */
export function checkBitmapChunk(chunk: number, bytes: Uint8Array, entry: Uint8Array, hash: Hash): { state: 'empty' | 'ok' | 'bad'; weight: number } {
  const v = new DataView(entry.buffer, entry.byteOffset, BITMAP_SUM_BYTES);
  const sum = v.getBigUint64(0, true);
  const index = v.getUint32(8, true);
  const weight = v.getUint32(12, true);
  if (sum === 0n && index === 0 && weight === 0) return { state: bytes.every((b) => b === 0) ? 'empty' : 'bad', weight: 0 };
  if (index !== chunk || hash(bytes) !== sum) return { state: 'bad', weight: 0 };
  return { state: 'ok', weight };
}

function generationBits(g: string): bigint {
  if (!/^[0-9a-f]{16}$/.test(g)) return 0n;
  return BigInt(`0x${g}`);
}

function hex(v: bigint): string {
  return v === 0n ? NO_GENERATION : v.toString(16).padStart(16, '0');
}
