// The on-disk format, version 1: a double superblock and the records of the
// write-ahead journal. Pure encoding and decoding; no I/O. Every structure
// carries an XXH3-64 checksum (the core's, passed in as `hash`), and every
// decoder refuses what does not check out instead of trusting it.
//
// A store holds four kinds of device:
//   super      two superblock slots, written alternately
//   wal.<N>    the journal of epoch N: block-table changes and page images
//   pages      page p at byte p * pageSize
//   sums       page p's checksum entry at byte p * 16 (kept apart from the page)

import { TwinpageError } from '../errors.js';

export const FORMAT_VERSION = 1;
export const SUPERBLOCK_SIZE = 4096;
export const RECORD_HEADER_SIZE = 40;
export const SUM_ENTRY_SIZE = 16;
/** Largest record body a decoder accepts; bodies are small (page lists, block headers). */
export const MAX_BODY = 1 << 20;
/** Most page images one record carries. */
export const MAX_RECORD_PAGES = 4096;

export type Hash = (bytes: Uint8Array) => bigint;

const SUPER_MAGIC = 0x45474150_4E495754n; // "TWINPAGE" little-endian
const RECORD_MAGIC = 0x4A505754; // "TWPJ"

// --- superblock ---------------------------------------------------------------
//
//   0          8        12        16          24          32
//   +----------+--------+---------+-----------+-----------+
//   | magic    | version| pageSize| sequence  | walEpoch  |
//   +----------+--------+---------+-----------+-----------+
//   32                     48          56       60
//   +----------------------+-----------+--------+-----------------+
//   | nodeId (16 bytes)    | created   | jsonLen| json (meta) ... |
//   +----------------------+-----------+--------+-----------------+
//   4088                    4096
//   +-----------------------+
//   | checksum of [0, 4088) |
//   +-----------------------+
//
// Slot sequence % 2 is written; the valid slot with the higher sequence wins,
// so a write torn by a crash leaves the other slot in charge.

export interface Superblock {
  version: number;
  pageSize: number;
  /** Incremented on every superblock write. */
  sequence: number;
  /** The active journal is `wal.<walEpoch>`. */
  walEpoch: number;
  nodeId: string;
  created: number;
  /** Free-form metadata of the layers above (generations, ...), as JSON. */
  meta: Record<string, unknown>;
}

export function encodeSuperblock(sb: Superblock, hash: Hash): Uint8Array {
  const out = new Uint8Array(SUPERBLOCK_SIZE);
  const v = new DataView(out.buffer);
  const json = new TextEncoder().encode(JSON.stringify(sb.meta));
  if (json.length > SUPERBLOCK_SIZE - 8 - 60) throw TwinpageError.tooLarge('superblock metadata is too large');
  v.setBigUint64(0, SUPER_MAGIC, true);
  v.setUint32(8, sb.version, true);
  v.setUint32(12, sb.pageSize, true);
  v.setBigUint64(16, BigInt(sb.sequence), true);
  v.setBigUint64(24, BigInt(sb.walEpoch), true);
  out.set(guidToBytes(sb.nodeId), 32);
  v.setFloat64(48, sb.created, true);
  v.setUint32(56, json.length, true);
  out.set(json, 60);
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

/** The superblock in `slot`, or null when the slot is blank, torn or corrupt. */
export function decodeSuperblock(slot: Uint8Array, hash: Hash): Superblock | null {
  if (slot.length !== SUPERBLOCK_SIZE) return null;
  const v = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (v.getBigUint64(0, true) !== SUPER_MAGIC) return null;
  if (v.getBigUint64(SUPERBLOCK_SIZE - 8, true) !== hash(slot.subarray(0, SUPERBLOCK_SIZE - 8))) return null;
  const jsonLength = v.getUint32(56, true);
  if (jsonLength > SUPERBLOCK_SIZE - 8 - 60) return null;
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(new TextDecoder().decode(slot.subarray(60, 60 + jsonLength)));
  } catch {
    return null;
  }
  return {
    version: v.getUint32(8, true),
    pageSize: v.getUint32(12, true),
    sequence: Number(v.getBigUint64(16, true)),
    walEpoch: Number(v.getBigUint64(24, true)),
    nodeId: bytesToGuid(slot.subarray(32, 48)),
    created: v.getFloat64(48, true),
    meta,
  };
}

// --- journal records -----------------------------------------------------------
//
//   0        4      6      8          12          16          24          32          40
//   +--------+------+------+----------+-----------+-----------+-----------+-----------+
//   | magic  | type | 0    | bodyLen  | pageCount | lsn       | epoch     | checksum  |
//   +--------+------+------+----------+-----------+-----------+-----------+-----------+
//   | body (bodyLen bytes) | pageCount page images of pageSize bytes ...              |
//
// The checksum covers the header (checksum field zero) and the body. Each page
// image is covered by its own checksum, listed in the body of a PAGES record.

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

/** Header + body of a record, with its checksum; page images are written after it. */
export function encodeRecordHead(r: JournalRecord, hash: Hash): Uint8Array {
  const body = encodeBody(r);
  const out = new Uint8Array(RECORD_HEADER_SIZE + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, RECORD_MAGIC, true);
  v.setUint16(4, r.type, true);
  v.setUint32(8, body.length, true);
  v.setUint32(12, r.type === RecordType.Pages ? r.pages.length : 0, true);
  v.setBigUint64(16, BigInt(r.lsn), true);
  v.setBigUint64(24, BigInt(r.epoch), true);
  out.set(body, RECORD_HEADER_SIZE);
  v.setBigUint64(32, hash(out), true);
  return out;
}

export interface RecordHeader { type: number; bodyLength: number; pageCount: number; lsn: number; epoch: number; checksum: bigint }

/** The header at the start of `bytes`, or null when it is not a plausible record header. */
export function decodeRecordHeader(bytes: Uint8Array): RecordHeader | null {
  if (bytes.length < RECORD_HEADER_SIZE) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, RECORD_HEADER_SIZE);
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
    checksum: v.getBigUint64(32, true),
  };
}

/** Checks the checksum of header + body (`head`, with the checksum field as read). */
export function recordHeadValid(head: Uint8Array, h: RecordHeader, hash: Hash): boolean {
  const copy = head.slice();
  new DataView(copy.buffer).setBigUint64(32, 0n, true);
  return hash(copy) === h.checksum;
}

/** Decodes a checked body; null when its contents do not fit its header. */
export function decodeBody(h: RecordHeader, body: Uint8Array): JournalRecord | null {
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
        const policy = JSON.parse(new TextDecoder().decode(body.subarray(36)));
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

// --- checksum entries ----------------------------------------------------------
//
//   0                8           16
//   +----------------+-----------+
//   | checksum (u64) | lsn (u64) |    lsn 0: never written, reads as zeros
//   +----------------+-----------+

export function encodeSum(checksum: bigint, lsn: number, into: Uint8Array, at = 0): void {
  const v = new DataView(into.buffer, into.byteOffset + at, SUM_ENTRY_SIZE);
  v.setBigUint64(0, checksum, true);
  v.setBigUint64(8, BigInt(lsn), true);
}

export function decodeSum(bytes: Uint8Array, at = 0): { checksum: bigint; lsn: number } {
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
