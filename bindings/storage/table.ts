// The block table file (format version 3): `table.<T>`, every block's header
// as of the checkpoint of epoch T, written whole by that checkpoint in large
// sequential writes and read whole at open. The superblock names it (its
// epoch, length, block count and the checksum of its header); the journal
// holds the changes made since. Policies are stored once, in a small list,
// and each entry refers to one by number.
//
//   0: header (TABLE_HEADER_BYTES)
//   0        8         12           16       24       32       40       44           48          52   56            64
//   +--------+---------+------------+--------+--------+--------+--------+------------+-----------+----+-------------+
//   | magic  | version | entryBytes | epoch  | salt   | blocks | chunks | chunkBytes | policyLen | 0  | policyCheck |
//   +--------+---------+------------+--------+--------+--------+--------+------------+-----------+----+-------------+
//   ... zeros ...                                              4088: checksum of [0, 4088)
//
//   4096: the policies, a JSON array of policy records (policyLen bytes),
//         zero-padded to a multiple of 4096; policyCheck is their XXH3
//
//   then chunk i at 4096 + roundUp(policyLen, 4096) + i * TABLE_CHUNK_BYTES:
//   0       8       12      16         20          28   32
//   +-------+-------+-------+----------+-----------+----+---------------------------------+-------+
//   | check | index | count | salt tag | epoch     | 0  | count entries of ENTRY_BYTES... | zeros |
//   +-------+-------+-------+----------+-----------+----+---------------------------------+-------+
//   check = XXH3 of [8, TABLE_CHUNK_BYTES)
//
//   an entry (48 bytes):
//   0          16     20      24       32           40       44
//   +----------+------+-------+--------+------------+--------+---+
//   | id (16)  | base | pages | length | generation | policy | 0 |
//   +----------+------+-------+--------+------------+--------+---+
//
// Entries are in base order, every chunk full but the last. Everything is
// checked before it is used: a chunk that fails on every copy (a mirrored
// set repairs a bad copy from a good one), a header that is not the one the
// superblock names, a file cut short, an entry that makes no sense: CORRUPT.
// The table file is never changed in place: the next one is a new file.

import { TwinpageError } from '../errors.js';
import type { Device } from './device.js';
import { roundUp, type Hash, type Salt, type Superblock } from './format.js';
import { copiesOf, readChecked, scrubRange } from './mirrored.js';

export const TABLE_MAGIC = 0x454C424154505754n; // "TWPTABLE" little-endian
export const TABLE_VERSION = 3;
export const TABLE_HEADER_BYTES = 4096;
export const TABLE_CHUNK_BYTES = 64 << 10;
const CHUNK_HEAD = 32;
export const ENTRY_BYTES = 48;
/** Entries per chunk. */
export const TABLE_CHUNK_ENTRIES = Math.floor((TABLE_CHUNK_BYTES - CHUNK_HEAD) / ENTRY_BYTES);
/** Chunks read or written at a time. */
const SPAN_CHUNKS = 64;
/** Largest policy list (it is checked in one piece). */
const MAX_POLICY_BYTES = 1 << 20;

/** What the superblock says of its table file. */
export interface TableRef {
  /** The table is `table.<epoch>` (0: there is none). */
  epoch: number;
  /** Its length. */
  bytes: number;
  /** Blocks it lists. */
  blocks: number;
  /** The checksum of its header. */
  check: bigint;
}

export const NO_TABLE: TableRef = Object.freeze({ epoch: 0, bytes: 0, blocks: 0, check: 0n });

/** What the superblock `sb` says of its table file. */
export function tableRefOf(sb: Superblock): TableRef {
  return { epoch: sb.tableEpoch, bytes: sb.tableBytes, blocks: sb.tableBlocks, check: sb.tableCheck };
}

/** The table file's name. */
export const tableName = (epoch: number): string => `table.${epoch}`;

/** What a table is written from. */
export interface TableSource {
  /** Blocks, in base order. */
  blocks: number;
  /** Policy records (JSON-able), by number. */
  policies: readonly Record<string, unknown>[];
  /** Writes the entries of blocks [from, from + n) at `at` of `view`, ENTRY_BYTES each. */
  encode(from: number, n: number, view: DataView, at: number): void;
}

/** The bytes of the policy list and where the chunks start. */
function layout(policyLength: number): { chunksAt: number } {
  return { chunksAt: TABLE_HEADER_BYTES + roundUp(policyLength, TABLE_HEADER_BYTES) };
}

/**
 * Writes the table of epoch `epoch` to `device` (emptied first), a span of
 * chunks at a time (the next span made while one is written), and flushes
 * it. Returns what the superblock records of it.
 */
export async function writeTable(device: Device, epoch: number, salt: Salt, hash: Hash, source: TableSource): Promise<TableRef> {
  const policies = new TextEncoder().encode(JSON.stringify(source.policies));
  if (policies.length > MAX_POLICY_BYTES) throw TwinpageError.tooLarge(`the blocks' policies take ${policies.length} bytes stored; at most ${MAX_POLICY_BYTES}`);
  const chunks = Math.ceil(source.blocks / TABLE_CHUNK_ENTRIES);
  const { chunksAt } = layout(policies.length);
  const head = new Uint8Array(chunksAt);
  const v = new DataView(head.buffer);
  v.setBigUint64(0, TABLE_MAGIC, true);
  v.setUint32(8, TABLE_VERSION, true);
  v.setUint32(12, ENTRY_BYTES, true);
  setU64(v, 16, epoch);
  head.set(salt.bytes, 24);
  setU64(v, 32, source.blocks);
  v.setUint32(40, chunks, true);
  v.setUint32(44, TABLE_CHUNK_BYTES, true);
  v.setUint32(48, policies.length, true);
  v.setBigUint64(56, hash(policies), true);
  const check = hash(head.subarray(0, TABLE_HEADER_BYTES - 8));
  v.setBigUint64(TABLE_HEADER_BYTES - 8, check, true);
  head.set(policies, TABLE_HEADER_BYTES);

  await device.truncate(0);
  await device.write(0, head);
  let writing: Promise<void> = Promise.resolve();
  const spare: Uint8Array[] = [];
  for (let c = 0; c < chunks; c += SPAN_CHUNKS) {
    const n = Math.min(SPAN_CHUNKS, chunks - c);
    const span = spare.pop()?.subarray(0, n * TABLE_CHUNK_BYTES).fill(0) ?? new Uint8Array(n * TABLE_CHUNK_BYTES);
    const sv = new DataView(span.buffer, span.byteOffset, span.byteLength);
    for (let k = 0; k < n; k++) {
      const index = c + k;
      const from = index * TABLE_CHUNK_ENTRIES;
      const count = Math.min(TABLE_CHUNK_ENTRIES, source.blocks - from);
      const at = k * TABLE_CHUNK_BYTES;
      sv.setUint32(at + 8, index, true);
      sv.setUint32(at + 12, count, true);
      sv.setUint32(at + 16, salt.tag, true);
      setU64(sv, at + 20, epoch);
      source.encode(from, count, sv, at + CHUNK_HEAD);
      sv.setBigUint64(at, hash(span.subarray(at + 8, at + TABLE_CHUNK_BYTES)), true);
    }
    await writing;
    writing = device.write(chunksAt + c * TABLE_CHUNK_BYTES, span).then(() => { spare.push(span); });
  }
  await writing;
  await device.flush();
  return { epoch, bytes: chunksAt + chunks * TABLE_CHUNK_BYTES, blocks: source.blocks, check };
}

/** What `readTable` hands over, chunk by chunk. */
export interface TableSink {
  /** The policy records, by number, before any entry. */
  policies(records: unknown[]): void;
  /** `n` entries from `at` of `view` (checked chunk), in base order. */
  entries(view: DataView, at: number, n: number): void;
}

/**
 * Reads the table the superblock names (`ref`) from `device`, every piece
 * checked; a piece that fails on the first copy is read from another one
 * (which repairs it), and when none passes the table is CORRUPT. Spans of
 * chunks are read ahead while the previous one is handed to `sink`.
 */
export async function readTable(device: Device, ref: TableRef, salt: Salt, hash: Hash, sink: TableSink): Promise<{ repaired: number }> {
  const name = tableName(ref.epoch);
  let repaired = 0;
  const checked = async (at: number, into: Uint8Array, verify: (b: Uint8Array) => boolean): Promise<boolean> => {
    const r = await readChecked(device, at, into, verify);
    repaired += r.repaired;
    return r.ok;
  };
  const size = await device.size();
  if (size < ref.bytes) throw TwinpageError.corrupt(`${name}: it is ${size} bytes long; the superblock says ${ref.bytes}: it was cut`);
  const head = new Uint8Array(TABLE_HEADER_BYTES);
  let fields: ReturnType<typeof headerFields> = null;
  if (!(await checked(0, head, (b) => (fields = headerFields(b, hash)) !== null && fields.check === ref.check))) {
    throw TwinpageError.corrupt(`${name}: its header is damaged, or not the one the superblock names`);
  }
  const h = headerFields(head, hash)!;
  if (h.epoch !== ref.epoch || h.blocks !== ref.blocks || !equalBytes(h.salt, salt.bytes)
    || h.chunks !== Math.ceil(h.blocks / TABLE_CHUNK_ENTRIES) || h.chunkBytes !== TABLE_CHUNK_BYTES || h.entryBytes !== ENTRY_BYTES) {
    throw TwinpageError.corrupt(`${name}: its header does not fit the superblock (epoch, blocks, layout or store)`);
  }
  if (h.policyLength > MAX_POLICY_BYTES) throw TwinpageError.corrupt(`${name}: its policy list is ${h.policyLength} bytes long`);
  const { chunksAt } = layout(h.policyLength);
  if (chunksAt + h.chunks * TABLE_CHUNK_BYTES !== ref.bytes) throw TwinpageError.corrupt(`${name}: its layout does not fit the length the superblock records`);
  const policyBytes = new Uint8Array(h.policyLength);
  if (!(await checked(TABLE_HEADER_BYTES, policyBytes, (b) => hash(b) === h.policyCheck))) throw TwinpageError.corrupt(`${name}: its policy list fails its checksum`);
  let policies: unknown;
  try { policies = JSON.parse(new TextDecoder().decode(policyBytes)); } catch { policies = null; }
  if (!Array.isArray(policies)) throw TwinpageError.corrupt(`${name}: its policy list is not a list`);
  sink.policies(policies);

  const chunkValid = (b: Uint8Array, index: number): boolean => {
    const cv = new DataView(b.buffer, b.byteOffset, TABLE_CHUNK_BYTES);
    const count = Math.min(TABLE_CHUNK_ENTRIES, h.blocks - index * TABLE_CHUNK_ENTRIES);
    return cv.getUint32(8, true) === index && cv.getUint32(12, true) === count && cv.getUint32(16, true) === salt.tag
      && getU64(cv, 20) === ref.epoch && cv.getUint32(28, true) === 0 && cv.getBigUint64(0, true) === hash(b.subarray(8, TABLE_CHUNK_BYTES));
  };
  const readSpan = (c: number): { c: number; span: Uint8Array; done: Promise<unknown> } => {
    const n = Math.min(SPAN_CHUNKS, h.chunks - c);
    const span = new Uint8Array(n * TABLE_CHUNK_BYTES);
    return { c, span, done: device.read(chunksAt + c * TABLE_CHUNK_BYTES, span).catch((err: unknown) => err) };
  };
  let next = h.chunks > 0 ? readSpan(0) : null;
  while (next) {
    const { c, span, done } = next;
    const failed = await done;
    next = c + SPAN_CHUNKS < h.chunks ? readSpan(c + SPAN_CHUNKS) : null;
    const n = span.length / TABLE_CHUNK_BYTES;
    for (let k = 0; k < n; k++) {
      const index = c + k;
      const chunk = span.subarray(k * TABLE_CHUNK_BYTES, (k + 1) * TABLE_CHUNK_BYTES);
      if ((failed !== undefined || !chunkValid(chunk, index))
        && !(await checked(chunksAt + index * TABLE_CHUNK_BYTES, chunk, (b) => chunkValid(b, index)))) {
        throw TwinpageError.corrupt(`${name}: chunk ${index} fails its checksum on every copy`);
      }
      const cv = new DataView(chunk.buffer, chunk.byteOffset, TABLE_CHUNK_BYTES);
      sink.entries(cv, CHUNK_HEAD, cv.getUint32(12, true));
    }
  }
  return { repaired };
}

/** The fields of a table header that checks out, or null. */
function headerFields(b: Uint8Array, hash: Hash) {
  const v = new DataView(b.buffer, b.byteOffset, TABLE_HEADER_BYTES);
  if (v.getBigUint64(0, true) !== TABLE_MAGIC || v.getUint32(8, true) !== TABLE_VERSION) return null;
  const check = v.getBigUint64(TABLE_HEADER_BYTES - 8, true);
  if (hash(b.subarray(0, TABLE_HEADER_BYTES - 8)) !== check) return null;
  return {
    entryBytes: v.getUint32(12, true), epoch: getU64(v, 16), salt: b.slice(24, 32), blocks: getU64(v, 32), chunks: v.getUint32(40, true),
    chunkBytes: v.getUint32(44, true), policyLength: v.getUint32(48, true), policyCheck: v.getBigUint64(56, true), check,
  };
}

/**
 * Checks every piece of the table on every copy of `device` (scrub,
 * inspect): the header, the policies and each chunk. Returns what fails on
 * every copy, in words (empty: the table is whole somewhere); with
 * `repair`, a copy that fails is rewritten from one that passes.
 */
export async function checkTable(device: Device, ref: TableRef, salt: Salt, hash: Hash, repair: boolean): Promise<{ bad: string[]; repaired: number; bytes: number }> {
  const scrub = scrubRange;
  const name = tableName(ref.epoch);
  const bad: string[] = [];
  let repaired = 0;
  const size = await device.size();
  if (size < ref.bytes) bad.push(`${name}: it is ${size} bytes long; the superblock says ${ref.bytes}: it was cut`);
  else if (repair) repaired += await restoreLength(device, ref.bytes);
  let fields: ReturnType<typeof headerFields> = null;
  const head = await scrub(device, 0, TABLE_HEADER_BYTES, TABLE_HEADER_BYTES, (b) => {
    const f = headerFields(b, hash);
    if (f && f.check === ref.check) fields = f;
    return f !== null && f.check === ref.check;
  }, undefined, repair);
  repaired += head.repaired;
  const h = fields as ReturnType<typeof headerFields>;
  if (head.bad.length || !h) return { bad: [...bad, `${name}: its header fails its checksum on every copy`], repaired, bytes: TABLE_HEADER_BYTES };
  const { chunksAt } = layout(h.policyLength);
  if (h.policyLength > 0) {
    const pol = await scrub(device, TABLE_HEADER_BYTES, h.policyLength, h.policyLength, (b) => hash(b) === h.policyCheck, undefined, repair);
    repaired += pol.repaired;
    if (pol.bad.length) bad.push(`${name}: its policy list fails its checksum on every copy`);
  }
  for (let c = 0; c < h.chunks; c += SPAN_CHUNKS) {
    const n = Math.min(SPAN_CHUNKS, h.chunks - c);
    const at = chunksAt + c * TABLE_CHUNK_BYTES;
    const r = await scrub(device, at, n * TABLE_CHUNK_BYTES, TABLE_CHUNK_BYTES, (b, pos) => {
      const index = (pos - chunksAt) / TABLE_CHUNK_BYTES;
      const cv = new DataView(b.buffer, b.byteOffset, TABLE_CHUNK_BYTES);
      const count = Math.min(TABLE_CHUNK_ENTRIES, h.blocks - index * TABLE_CHUNK_ENTRIES);
      return b.length === TABLE_CHUNK_BYTES && cv.getUint32(8, true) === index && cv.getUint32(12, true) === count && cv.getUint32(16, true) === salt.tag
        && getU64(cv, 20) === ref.epoch && cv.getUint32(28, true) === 0 && cv.getBigUint64(0, true) === hash(b.subarray(8));
    }, undefined, repair);
    repaired += r.repaired;
    for (const pos of r.bad) bad.push(`${name}: chunk ${(pos - chunksAt) / TABLE_CHUNK_BYTES} fails its checksum on every copy`);
  }
  return { bad, repaired, bytes: ref.bytes };
}

/**
 * A copy cut short where only the zeros that pad the last chunk were lost
 * reads back whole (a read past its end gives zeros), yet opened alone it
 * is CORRUPT (shorter than its superblock says): its missing tail is written
 * again from a copy that has it. The number of copies mended.
 */
async function restoreLength(device: Device, bytes: number): Promise<number> {
  const copies = copiesOf(device);
  if (copies.length < 2) return 0;
  const sizes = await Promise.all(copies.map((c) => c.size().catch(() => -1)));
  const whole = sizes.findIndex((n) => n >= bytes);
  if (whole < 0) return 0;
  let mended = 0;
  for (let c = 0; c < copies.length; c++) {
    if (sizes[c] < 0 || sizes[c] >= bytes) continue;
    const tail = new Uint8Array(bytes - sizes[c]);
    try {
      await copies[whole].read(sizes[c], tail);
      await copies[c].write(sizes[c], tail);
      await copies[c].flush();
      mended++;
    } catch { /* a copy that cannot be written stays short: the chunks' checks still hold for the rest */ }
  }
  return mended;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function setU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 0x100000000, true);
  v.setUint32(at + 4, Math.floor(n / 0x100000000), true);
}

function getU64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x100000000;
}
