// The on-disk format, version 3 (and what still reads versions 1 and 2, for
// the upgrade and `inspect`). Pure encoding and decoding; no I/O. Every structure
// carries an XXH3-64 checksum (the core's, passed in as `hash`), and every
// decoder refuses what does not check out instead of trusting it.
//
// A store holds five kinds of device:
//   super      two superblock slots, written alternately
//   table.<T>  the block table as of checkpoint T (storage/table.ts)
//   wal.<N>    the journal of epoch N: block-table changes since the table, and page images
//   pages      page p at byte p * pageSize
//   sums       page p's checksum entry, in 512-byte sum sectors that carry
//              their own checksum (kept apart from the page)
//
// docs/storage.md draws the whole format and says what is checked where.

import { TwinpageError } from '../errors.js';

export const FORMAT_VERSION = 3;
export const SUPERBLOCK_SIZE = 4096;
/** The unit a disk writes atomically, and what journal batches and sum sectors are aligned to. */
export const SECTOR = 512;
export const RECORD_HEADER_SIZE = 56;
export const SUM_ENTRY_SIZE = 16;
/** Checksum entries per sum sector (after its 16-byte header). */
export const SUMS_PER_SECTOR = 31;
/** Largest record body a decoder accepts; bodies are small (page lists, block headers). */
export const MAX_BODY = 1 << 20;
/** Most page images one record carries. */
export const MAX_RECORD_PAGES = 4096;

export type Hash = (bytes: Uint8Array) => bigint;

const UTF8 = new TextDecoder();
const SUPER_MAGIC = 0x45474150_4E495754n; // "TWINPAGE" little-endian
const RECORD_MAGIC = 0x4A505754; // "TWPJ"
const FILL_MAGIC = 0x004C4C4946505754n; // "TWPFILL\0"

/** Rounds `n` up to a multiple of `unit` (a power of two). */
export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

// --- superblock ---------------------------------------------------------------
//
//   0          8        12        16          24          32
//   +----------+--------+---------+-----------+-----------+
//   | magic    | version| pageSize| sequence  | walEpoch  |
//   +----------+--------+---------+-----------+-----------+
//   32                     48          56         64          72           80
//   +----------------------+-----------+----------+-----------+------------+
//   | nodeId (16 bytes)    | created   | walEnd   | sumsBytes | pagesBytes |
//   +----------------------+-----------+----------+-----------+------------+
//   80               88    96          104         112          120          128  132      136
//   +----------------+-----+-----------+-----------+------------+------------+----+--------+-----------------+
//   | checkpointLsn  | 0   | tableEpoch| tableBytes| tableBlocks| tableCheck | 0  | jsonLen| json (meta) ... |
//   +----------------+-----+-----------+-----------+------------+------------+----+--------+-----------------+
//   4088                    4096
//   +-----------------------+
//   | checksum of [0, 4088) |
//   +-----------------------+
//
// Slot sequence % 2 is written; the valid slot with the higher sequence wins,
// so a write torn by a crash leaves the other slot in charge. walEnd,
// sumsBytes, pagesBytes and checkpointLsn are what the last checkpoint made
// durable: the journal's end, the lengths of `sums` and `pages`, and the next
// sequence number. table* name the block table file (storage/table.ts): its
// epoch (0: none yet), length, blocks and the checksum of its header.
// Version 2 had no table fields (its json began at byte 96; the journal held
// the whole block table), version 1 not the checkpoint's either (json at 60).

export interface Superblock {
  version: number;
  pageSize: number;
  /** Incremented on every superblock write. */
  sequence: number;
  /** The active journal is `wal.<walEpoch>`. */
  walEpoch: number;
  nodeId: string;
  created: number;
  /** Bytes of `wal.<walEpoch>` durable when this superblock first named it (its checkpoint records). */
  walEnd: number;
  /** Length of `sums` at the last checkpoint: every sum sector below it was written and must check out. */
  sumsBytes: number;
  /** Length of `pages` at the last checkpoint. */
  pagesBytes: number;
  /** The next journal sequence number at the last checkpoint. */
  checkpointLsn: number;
  /** The block table file `table.<tableEpoch>` (0: none; the journal holds every block). */
  tableEpoch: number;
  /** Its length in bytes. */
  tableBytes: number;
  /** The blocks it lists. */
  tableBlocks: number;
  /** The checksum of its header. */
  tableCheck: bigint;
  /** Free-form metadata of the layers above (generations, ...), as JSON. */
  meta: Record<string, unknown>;
}

const JSON_AT = 136;
const JSON_AT_V2 = 96;
const JSON_AT_V1 = 60;

export function encodeSuperblock(sb: Superblock, hash: Hash): Uint8Array {
  const out = new Uint8Array(SUPERBLOCK_SIZE);
  const v = new DataView(out.buffer);
  const json = new TextEncoder().encode(JSON.stringify(sb.meta));
  if (json.length > SUPERBLOCK_SIZE - 8 - JSON_AT) throw TwinpageError.tooLarge('superblock metadata is too large');
  v.setBigUint64(0, SUPER_MAGIC, true);
  v.setUint32(8, FORMAT_VERSION, true);
  v.setUint32(12, sb.pageSize, true);
  v.setBigUint64(16, BigInt(sb.sequence), true);
  v.setBigUint64(24, BigInt(sb.walEpoch), true);
  out.set(guidToBytes(sb.nodeId), 32);
  v.setFloat64(48, sb.created, true);
  v.setBigUint64(56, BigInt(sb.walEnd), true);
  v.setBigUint64(64, BigInt(sb.sumsBytes), true);
  v.setBigUint64(72, BigInt(sb.pagesBytes), true);
  v.setBigUint64(80, BigInt(sb.checkpointLsn), true);
  v.setBigUint64(96, BigInt(sb.tableEpoch), true);
  v.setBigUint64(104, BigInt(sb.tableBytes), true);
  v.setBigUint64(112, BigInt(sb.tableBlocks), true);
  v.setBigUint64(120, sb.tableCheck, true);
  v.setUint32(JSON_AT - 4, json.length, true);
  out.set(json, JSON_AT);
  v.setBigUint64(SUPERBLOCK_SIZE - 8, hash(out.subarray(0, SUPERBLOCK_SIZE - 8)), true);
  return out;
}

/**
 * The page size a superblock slot of `raw` (both slots, as read) claims, if
 * either slot looks like a superblock; read before the checksum can be
 * computed (the core that computes it is laid out for the page size).
 */
export function sniffPageSize(raw: Uint8Array): number | null {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (const at of [0, SUPERBLOCK_SIZE]) {
    if (at + 16 > raw.length || v.getBigUint64(at, true) !== SUPER_MAGIC) continue;
    const ps = v.getUint32(at + 12, true);
    if (ps >= 512 && ps <= 1 << 20 && (ps & (ps - 1)) === 0) return ps;
  }
  return null;
}

/** The superblock in `slot` (version 1, 2 or 3), or null when the slot is blank, torn or corrupt. */
export function decodeSuperblock(slot: Uint8Array, hash: Hash): Superblock | null {
  if (slot.length !== SUPERBLOCK_SIZE) return null;
  const v = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (v.getBigUint64(0, true) !== SUPER_MAGIC) return null;
  if (v.getBigUint64(SUPERBLOCK_SIZE - 8, true) !== hash(slot.subarray(0, SUPERBLOCK_SIZE - 8))) return null;
  const version = v.getUint32(8, true);
  const v1 = version === 1;
  const jsonAt = v1 ? JSON_AT_V1 : version === 2 ? JSON_AT_V2 : JSON_AT;
  const jsonLength = v.getUint32(jsonAt - 4, true);
  if (jsonLength > SUPERBLOCK_SIZE - 8 - jsonAt) return null;
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(new TextDecoder().decode(slot.subarray(jsonAt, jsonAt + jsonLength)));
  } catch {
    return null;
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return null;
  const u64 = (at: number) => (v1 ? 0 : Number(v.getBigUint64(at, true)));
  const t64 = (at: number) => (version >= 3 ? Number(v.getBigUint64(at, true)) : 0);
  return {
    version,
    pageSize: v.getUint32(12, true),
    sequence: Number(v.getBigUint64(16, true)),
    walEpoch: Number(v.getBigUint64(24, true)),
    nodeId: bytesToGuid(slot.subarray(32, 48)),
    created: v.getFloat64(48, true),
    walEnd: u64(56),
    sumsBytes: u64(64),
    pagesBytes: u64(72),
    checkpointLsn: u64(80),
    tableEpoch: t64(96),
    tableBytes: t64(104),
    tableBlocks: t64(112),
    tableCheck: version >= 3 ? v.getBigUint64(120, true) : 0n,
    meta,
  };
}

// --- the store's salt ------------------------------------------------------------
//
// Sum sectors, checksum entries and the journal's fill carry bits of the
// node id, so that the files of another store (a careless copy, the
// partner's folder) never check out here.

export interface Salt {
  /** The first 8 bytes of the node id. */
  bytes: Uint8Array;
  /** The first 4, as a number. */
  tag: number;
}

export function saltOf(nodeId: string): Salt {
  const bytes = guidToBytes(nodeId).slice(0, 8);
  return { bytes, tag: new DataView(bytes.buffer).getUint32(0, true) };
}

// --- journal fill -------------------------------------------------------------------
//
// The journal is written ahead of its records with a fill pattern, made
// durable before any record is written over it: a sector that a crash kept
// from reaching the disk reads back as fill, which no damage produces (a bit
// flip, zeros, bytes of another file or epoch). Each 512-byte fill sector:
//
//   0           8              16          24                        512
//   +-----------+--------------+-----------+-------------------------+
//   | "TWPFILL" | salt (8)     | epoch     | (i * 167 + 13) & 0xFF   |
//   +-----------+--------------+-----------+-------------------------+

/** The fill sector of a journal epoch. */
export function fillSector(salt: Salt, epoch: number): Uint8Array {
  const s = new Uint8Array(SECTOR);
  const v = new DataView(s.buffer);
  v.setBigUint64(0, FILL_MAGIC, true);
  s.set(salt.bytes, 8);
  v.setBigUint64(16, BigInt(epoch), true);
  for (let i = 24; i < SECTOR; i++) s[i] = (i * 167 + 13) & 0xFF;
  return s;
}

/** Writes the fill of byte positions [at, at + length) into `into` from `offset`. */
export function fillInto(into: Uint8Array, offset: number, at: number, length: number, fill: Uint8Array): void {
  let done = 0;
  while (done < length) {
    const k = (at + done) % SECTOR;
    const n = Math.min(SECTOR - k, length - done);
    into.set(fill.subarray(k, k + n), offset + done);
    done += n;
  }
}

/** Whether `bytes`, read from position `at`, are all fill. */
export function isFill(bytes: Uint8Array, at: number, fill: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== fill[(at + i) % SECTOR]) return false;
  return true;
}

/** `length` bytes of fill for positions starting at `at`. */
export function fillBytes(at: number, length: number, fill: Uint8Array): Uint8Array {
  const out = new Uint8Array(length);
  fillInto(out, 0, at, length, fill);
  return out;
}

// --- journal records -----------------------------------------------------------
//
//   0        4      6       8          12          16          24          32
//   +--------+------+-------+----------+-----------+-----------+-----------+
//   | magic  | type | 0     | bodyLen  | pageCount | lsn       | epoch     |
//   +--------+------+-------+----------+-----------+-----------+-----------+
//   32            40          44      48          56
//   +-------------+-----------+-------+-----------+
//   | batchStart  | headCheck | 0     | checksum  |
//   +-------------+-----------+-------+-----------+
//   | body (bodyLen bytes) | pageCount page images of pageSize bytes ...  |
//
// headCheck (a 32-bit hash of bytes [0, 40)) vouches for the lengths before
// the body is read; the checksum covers header (checksum field
// zero) and body; each page image is covered by its own checksum, listed in
// the body of a PAGES record. batchStart is where the group commit holding the
// record began: records are written in batches (one write, one flush), each
// batch starting at a sector boundary and padded with fill to the next one,
// so a valid record of a later batch proves every earlier batch was flushed.

export const enum RecordType {
  /** First record of a journal: which epoch it belongs to. */
  Epoch = 1,
  /** A block was allocated (or, in a new epoch, still exists). */
  Alloc = 2,
  /** A block was freed. */
  Free = 3,
  /** Page images committed together (one write pointer's release). */
  Pages = 4,
}

export interface BlockRecord {
  id: string;
  /** First page of the block's run. */
  base: number;
  /** Pages in the run. */
  pages: number;
  /** Bytes the caller asked for. */
  length: number;
  /** The policy, as stored with the block. */
  policy: Record<string, unknown>;
}

export interface PageEntry { page: number; checksum: bigint }

export type JournalRecord =
  | { type: RecordType.Epoch; lsn: number; epoch: number; blocks: number }
  | { type: RecordType.Alloc; lsn: number; epoch: number; block: BlockRecord }
  | { type: RecordType.Free; lsn: number; epoch: number; id: string }
  | { type: RecordType.Pages; lsn: number; epoch: number; pages: PageEntry[]; images: Uint8Array[] };

export function encodeBody(r: JournalRecord): Uint8Array {
  switch (r.type) {
    case RecordType.Epoch: {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, r.blocks, true);
      return b;
    }
    case RecordType.Alloc: {
      const json = new TextEncoder().encode(JSON.stringify(r.block.policy));
      const b = new Uint8Array(36 + json.length);
      const v = new DataView(b.buffer);
      b.set(guidToBytes(r.block.id), 0);
      v.setUint32(16, r.block.base, true);
      v.setUint32(20, r.block.pages, true);
      v.setFloat64(24, r.block.length, true);
      v.setUint32(32, json.length, true);
      b.set(json, 36);
      return b;
    }
    case RecordType.Free:
      return guidToBytes(r.id);
    case RecordType.Pages: {
      const b = new Uint8Array(4 + 16 * r.pages.length);
      const v = new DataView(b.buffer);
      v.setUint32(0, r.pages.length, true);
      r.pages.forEach((p, i) => {
        v.setUint32(4 + i * 16, p.page, true);
        v.setBigUint64(4 + i * 16 + 8, p.checksum, true);
      });
      return b;
    }
  }
}

/**
 * Header + body of a record, with its checks, for a batch that starts at
 * `batchStart`; page images are written after it. A PAGES record holds 1 to
 * MAX_RECORD_PAGES pages, one image each: what replay would refuse is not
 * written (INVALID_ARGUMENT).
 */
export function encodeRecordHead(r: JournalRecord, batchStart: number, hash: Hash): Uint8Array {
  if (r.type === RecordType.Pages && (r.pages.length < 1 || r.pages.length > MAX_RECORD_PAGES || r.images.length !== r.pages.length)) {
    throw TwinpageError.invalidArgument(`a PAGES record holds 1 to ${MAX_RECORD_PAGES} pages with an image each, not ${r.pages.length} pages and ${r.images.length} images`);
  }
  const body = encodeBody(r);
  const out = new Uint8Array(RECORD_HEADER_SIZE + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, RECORD_MAGIC, true);
  v.setUint16(4, r.type, true);
  v.setUint32(8, body.length, true);
  v.setUint32(12, r.type === RecordType.Pages ? r.pages.length : 0, true);
  setU64(v, 16, r.lsn);
  setU64(v, 24, r.epoch);
  setU64(v, 32, batchStart);
  v.setUint32(40, headCheck(v), true);
  out.set(body, RECORD_HEADER_SIZE);
  v.setBigUint64(48, hash(out), true);
  return out;
}

/** Writes a safe integer as a little-endian u64 (two words: no BigInt on the write path). */
function setU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 0x100000000, true);
  v.setUint32(at + 4, Math.floor(n / 0x100000000), true);
}

/** A 32-bit hash of header bytes [0, 40): vouches for the lengths before the body is read (the checksum covers everything). */
function headCheck(v: DataView): number {
  let h = 0x2545F491;
  for (let at = 0; at < 40; at += 4) h = fmix32((h ^ v.getUint32(at, true)) + 0x9E3779B9 >>> 0);
  return h;
}

export interface RecordHeader {
  type: number; bodyLength: number; pageCount: number; lsn: number; epoch: number; batchStart: number; checksum: bigint;
}

/**
 * The header at the start of `bytes`, or null when it is not a record header
 * whose fields check out (magic, zero fields, limits, headCheck).
 */
export function decodeRecordHeader(bytes: Uint8Array): RecordHeader | null {
  if (bytes.length < RECORD_HEADER_SIZE) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE);
  if (v.getUint32(0, true) !== RECORD_MAGIC || v.getUint16(6, true) !== 0 || v.getUint32(44, true) !== 0) return null;
  if (v.getUint32(40, true) !== headCheck(v)) return null;
  const type = v.getUint16(4, true);
  const bodyLength = v.getUint32(8, true);
  const pageCount = v.getUint32(12, true);
  if (type < RecordType.Epoch || type > RecordType.Pages) return null;
  if (bodyLength > MAX_BODY || pageCount > MAX_RECORD_PAGES) return null;
  if ((type === RecordType.Pages) !== (pageCount > 0)) return null;
  return {
    type, bodyLength, pageCount,
    lsn: getU64(v, 16),
    epoch: getU64(v, 24),
    batchStart: getU64(v, 32),
    checksum: v.getBigUint64(48, true),
  };
}

/** Reads a little-endian u64 as a number (two words: no BigInt on the replay path). */
function getU64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x100000000;
}

/** Checks the checksum of header + body (`head`, with the checksum field as read). */
export function recordHeadValid(head: Uint8Array, h: RecordHeader, hash: Hash): boolean {
  const copy = head.slice();
  new DataView(copy.buffer).setBigUint64(48, 0n, true);
  return hash(copy) === h.checksum;
}

/**
 * The same check without a copy: the checksum field of `head` (a buffer the
 * caller owns) is zeroed while it is hashed, then put back.
 */
export function recordHeadValidInPlace(head: Uint8Array, h: RecordHeader, hash: Hash): boolean {
  const saved = head.subarray(48, 56).slice();
  head.fill(0, 48, 56);
  const ok = hash(head) === h.checksum;
  head.set(saved, 48);
  return ok;
}

/** Decodes a checked body; null when its contents do not fit its header. */
export function decodeBody(h: Pick<RecordHeader, 'type' | 'pageCount' | 'lsn' | 'epoch'>, body: Uint8Array): JournalRecord | null {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const { lsn, epoch } = h;
  try {
    switch (h.type) {
      case RecordType.Epoch:
        if (body.length !== 4) return null;
        return { type: RecordType.Epoch, lsn, epoch, blocks: v.getUint32(0, true) };
      case RecordType.Alloc: {
        if (body.length < 36) return null;
        const jsonLength = v.getUint32(32, true);
        if (36 + jsonLength !== body.length) return null;
        const policy = JSON.parse(UTF8.decode(body.subarray(36)));
        if (policy === null || typeof policy !== 'object') return null;
        const block: BlockRecord = {
          id: bytesToGuid(body.subarray(0, 16)),
          base: v.getUint32(16, true),
          pages: v.getUint32(20, true),
          length: v.getFloat64(24, true),
          policy,
        };
        if (!Number.isSafeInteger(block.length) || block.length < 0 || block.pages === 0) return null;
        return { type: RecordType.Alloc, lsn, epoch, block };
      }
      case RecordType.Free:
        if (body.length !== 16) return null;
        return { type: RecordType.Free, lsn, epoch, id: bytesToGuid(body) };
      case RecordType.Pages: {
        const n = v.getUint32(0, true);
        if (n !== h.pageCount || body.length !== 4 + 16 * n) return null;
        const pages: PageEntry[] = [];
        for (let i = 0; i < n; i++) {
          pages.push({ page: v.getUint32(4 + i * 16, true), checksum: v.getBigUint64(4 + i * 16 + 8, true) });
        }
        return { type: RecordType.Pages, lsn, epoch, pages, images: [] };
      }
    }
  } catch {
    return null;
  }
  return null;
}

// --- journal records of version 1 (read by the upgrade and inspect) ------------------
//
//   0        4      6      8          12          16          24          32          40
//   +--------+------+------+----------+-----------+-----------+-----------+-----------+
//   | magic  | type | 0    | bodyLen  | pageCount | lsn       | epoch     | checksum  |
//   +--------+------+------+----------+-----------+-----------+-----------+-----------+

export const RECORD_HEADER_SIZE_V1 = 40;

export function decodeRecordHeaderV1(bytes: Uint8Array): RecordHeader | null {
  if (bytes.length < RECORD_HEADER_SIZE_V1) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE_V1);
  if (v.getUint32(0, true) !== RECORD_MAGIC || v.getUint16(6, true) !== 0) return null;
  const type = v.getUint16(4, true);
  const bodyLength = v.getUint32(8, true);
  const pageCount = v.getUint32(12, true);
  if (type < RecordType.Epoch || type > RecordType.Pages) return null;
  if (bodyLength > MAX_BODY || pageCount > MAX_RECORD_PAGES) return null;
  if ((type === RecordType.Pages) !== (pageCount > 0)) return null;
  return {
    type, bodyLength, pageCount,
    lsn: Number(v.getBigUint64(16, true)),
    epoch: Number(v.getBigUint64(24, true)),
    batchStart: 0,
    checksum: v.getBigUint64(32, true),
  };
}

export function recordHeadValidV1(head: Uint8Array, h: RecordHeader, hash: Hash): boolean {
  const copy = head.slice();
  new DataView(copy.buffer).setBigUint64(32, 0n, true);
  return hash(copy) === h.checksum;
}

// --- checksum entries and sum sectors -----------------------------------------------
//
// A sum sector (512 bytes, written whole: a disk writes a sector or not):
//
//   0          8        12       16                                     512
//   +----------+--------+--------+---------+---------+-----+------------+
//   | check    | index  | salt   | entry 0 | entry 1 | ... | entry 30   |
//   +----------+--------+--------+---------+---------+-----+------------+
//
// check = XXH3 of bytes [8, 512); index = the sector's number (page / 31);
// salt = the store's salt tag. Sector i holds pages [31 i, 31 i + 31).
//
// A checksum entry (16 bytes):
//
//   0                      8                          16
//   +----------------------+--------------------------+
//   | checksum ^ seal      | lsn, or 2^63 + lostAt    |
//   +----------------------+--------------------------+
//
// lsn 0: never written (the checksum is then that of a zero page). An entry
// with the top bit set is LOST: the page's checksum was destroyed when the
// sequence number was lostAt; blocks created after that are not concerned.
// seal = a hash of (page, lsn field, salt): an entry checks against its page
// only with its own sequence number and in its own place, so an entry can be
// salvaged from a damaged sector when its page bytes match it.

const LOST_BIT = 0x80000000;

/** A page's checksum entry, decoded. */
export interface SumEntry {
  checksum: bigint;
  /** The journal sequence that wrote the page (0: never written). */
  lsn: number;
  /** Set for a LOST entry: the sequence number when the checksum was lost. */
  lost?: number;
}

export const sumSectorOf = (page: number): number => Math.floor(page / SUMS_PER_SECTOR);

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85EBCA6B);
  h ^= h >>> 13;
  h = Math.imul(h, 0xC2B2AE35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The seal's two words, high then low, as `sealWords` leaves them. */
const SEAL = new Uint32Array(2);

/** The seal of an entry (a hash of its page, its lsn field's lo and hi words, and the salt) into SEAL: high word, low word. */
function sealWords(page: number, lo: number, hi: number, tag: number): void {
  const a = fmix32((page ^ tag ^ 0x9E3779B9) >>> 0);
  const b = fmix32((a ^ lo) >>> 0);
  const c = fmix32((b ^ hi ^ 0x7F4A7C15) >>> 0);
  SEAL[0] = c;
  SEAL[1] = fmix32((c ^ page ^ Math.imul(lo, 0x27D4EB2F)) >>> 0);
}

/** The seal of an entry, as a u64: a hash of its page, its lsn field (lo, hi words) and the salt. */
export function seal(page: number, lo: number, hi: number, tag: number): bigint {
  sealWords(page, lo, hi, tag);
  return (BigInt(SEAL[0]) << 32n) | BigInt(SEAL[1]);
}

/** Writes `e` as the entry of `page` at `at` of `into`. */
export function encodeSumEntry(e: SumEntry, page: number, tag: number, into: Uint8Array, at: number): void {
  const v = new DataView(into.buffer, into.byteOffset + at, SUM_ENTRY_SIZE);
  const lo = e.lost !== undefined ? e.lost % 0x100000000 : e.lsn % 0x100000000;
  const hi = e.lost !== undefined ? (Math.floor(e.lost / 0x100000000) | LOST_BIT) >>> 0 : Math.floor(e.lsn / 0x100000000);
  v.setBigUint64(0, (e.lost !== undefined ? 0n : e.checksum) ^ seal(page, lo, hi, tag), true);
  v.setUint32(8, lo, true);
  v.setUint32(12, hi, true);
}

/** The entry of `page` at `at` of `bytes`, unchecked (its sector's check is the caller's). */
export function decodeSumEntry(bytes: Uint8Array, at: number, page: number, tag: number): SumEntry {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, SUM_ENTRY_SIZE);
  const lo = v.getUint32(8, true);
  const hi = v.getUint32(12, true);
  const checksum = v.getBigUint64(0, true) ^ seal(page, lo, hi, tag);
  if (hi & LOST_BIT) return { checksum: 0n, lsn: 0, lost: (hi & ~LOST_BIT) * 0x100000000 + lo };
  return { checksum, lsn: hi * 0x100000000 + lo };
}

/** The 512 bytes of sum sector `index` holding `entries` (31, in page order). */
export function encodeSumSector(index: number, entries: SumEntry[], tag: number, hash: Hash, into: Uint8Array = new Uint8Array(SECTOR), at = 0): Uint8Array {
  const s = into.subarray(at, at + SECTOR);
  const v = new DataView(s.buffer, s.byteOffset, SECTOR);
  v.setUint32(8, index, true);
  v.setUint32(12, tag, true);
  for (let i = 0; i < SUMS_PER_SECTOR; i++) encodeSumEntry(entries[i], index * SUMS_PER_SECTOR + i, tag, s, 16 + i * SUM_ENTRY_SIZE);
  v.setBigUint64(0, hash(s.subarray(8)), true);
  return into;
}

/** Whether `bytes` (512) are sum sector `index` of this store, checking out. */
export function sumSectorValid(bytes: Uint8Array, index: number, tag: number, hash: Hash): boolean {
  if (bytes.length !== SECTOR) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, SECTOR);
  return v.getUint32(8, true) === index && v.getUint32(12, true) === tag && v.getBigUint64(0, true) === hash(bytes.subarray(8));
}

/** The entries of a sum sector (checked by the caller). */
export function decodeSumSector(bytes: Uint8Array, index: number, tag: number): SumEntry[] {
  const out: SumEntry[] = [];
  for (let i = 0; i < SUMS_PER_SECTOR; i++) out.push(decodeSumEntry(bytes, 16 + i * SUM_ENTRY_SIZE, index * SUMS_PER_SECTOR + i, tag));
  return out;
}

/** Whether this platform's typed arrays are little-endian (a u64's low word first). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The entries of sum sector `index` (checked by the caller) for pages
 * [first, first + count) it holds, decoded without an object or a bigint
 * each: page first + k's checksum into words 2k, 2k + 1 of `checksums` (the
 * u64s of a BigUint64Array, as 32-bit words), its write sequence into
 * `lsns[k]` (-1 for a LOST entry, whose checksum is then 0).
 */
export function decodeSumSectorInto(bytes: Uint8Array, index: number, tag: number, first: number, count: number, checksums: Uint32Array, lsns: Float64Array): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, SECTOR);
  const lowWord = LITTLE_ENDIAN ? 0 : 1;
  for (let i = 0; i < SUMS_PER_SECTOR; i++) {
    const page = index * SUMS_PER_SECTOR + i;
    const k = page - first;
    if (k < 0 || k >= count) continue;
    const at = 16 + i * SUM_ENTRY_SIZE;
    const lo = v.getUint32(at + 8, true);
    const hi = v.getUint32(at + 12, true);
    if (hi & LOST_BIT) {
      checksums[2 * k] = checksums[2 * k + 1] = 0;
      lsns[k] = -1;
      continue;
    }
    sealWords(page, lo, hi, tag);
    checksums[2 * k + lowWord] = (v.getUint32(at, true) ^ SEAL[1]) >>> 0;
    checksums[2 * k + 1 - lowWord] = (v.getUint32(at + 4, true) ^ SEAL[0]) >>> 0;
    lsns[k] = hi * 0x100000000 + lo;
  }
}

/** Entries of a sector no page of which was ever written. */
export function emptyEntries(zeroSum: bigint): SumEntry[] {
  return Array.from({ length: SUMS_PER_SECTOR }, () => ({ checksum: zeroSum, lsn: 0 }));
}

/** A version-1 checksum entry: checksum, lsn (0: never written), unchecked. */
export function decodeSumV1(bytes: Uint8Array, at = 0): { checksum: bigint; lsn: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, SUM_ENTRY_SIZE);
  return { checksum: v.getBigUint64(0, true), lsn: Number(v.getBigUint64(8, true)) };
}

// --- GUIDs -------------------------------------------------------------------------

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isGuid(s: unknown): s is string {
  return typeof s === 'string' && GUID.test(s);
}

export function guidToBytes(id: string): Uint8Array {
  if (!isGuid(id)) throw TwinpageError.invalidArgument(`not a GUID: ${String(id)}`);
  const hex = id.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToGuid(b: Uint8Array): string {
  let hex = '';
  for (let i = 0; i < 16; i++) hex += b[i].toString(16).padStart(2, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
