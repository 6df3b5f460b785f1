/**
 * The witness protocol: what a node (`WitnessArbiter`, witness.ts) asks a
 * `twinpage witness` and what it answers. Frames are carried by the TCP
 * transport (authenticated and sealed); this file only encodes and decodes
 * them. Binary, like the pair's own messages: every field has a fixed place
 * and a bounded length, so a decoder checks each one and never guesses (no
 * duplicate keys, no numbers rounded by a JSON parser, no unexpected types).
 *
 * Every frame, request or reply, starts with the same header:
 *
 * ```
 *   0       1       2               4                8
 *   ┌───────┬───────┬───────────────┬────────────────┬───────────── ─ ─
 *   │ ver   │ op    │ reserved = 0  │ id             │ body (by op)
 *   │ u8 =1 │ u8    │ u16           │ u32 LE         │
 *   └───────┴───────┴───────────────┴────────────────┴───────────── ─ ─
 *   id: chosen by the client, echoed in the reply (replies may be matched out of order)
 *
 *   op   request  body                                   reply (op | 0x80)  body
 *   1    READ     (none)                                 READ_OK     ttlMs u32, record
 *   2    ACQUIRE  node, generation                       ACQUIRE_OK  granted u8 (0|1), ttlMs u32, record, reason
 *   3    OUTDATE  node, epoch u64, partner, generation   OUTDATE_OK  done u8 (0|1)
 *   4    CLEAR    node, epoch u64, generation            CLEAR_OK    done u8 (0|1)
 *   5    RELEASE  node, epoch u64                        RELEASE_OK  (none)
 *   0xFF          (reply only)                           ERROR       code, message
 *
 *   string  u16 LE byte length, then UTF-8 (strict): node ids 1..256 bytes,
 *           generations 0..256, reasons and messages 0..1024, codes 1..64
 *   u64     little-endian, at most 2^53 - 1
 *   record  epoch u64, primary string, outdated string, generation string
 *           (an empty primary or outdated means none: node ids are never empty)
 * ```
 *
 * A body must be exactly as long as its fields. What is wrong with a frame's
 * header (too short, another version, reserved bits set) makes it a bad
 * frame: the witness closes that connection. What is wrong after the header
 * (an unknown op, a field out of bounds, bytes left over) makes it a bad
 * request: the witness answers ERROR with a stable code and changes nothing.
 */
import { TwinpageError } from '../errors.js';
import type { PairRecord } from './arbiter.js';

/** The protocol version this build speaks. */
export const WITNESS_PROTOCOL_VERSION = 1;
/** The node id a witness gives in the transport's hello; a client checks it. */
export const WITNESS_NODE_ID = 'twinpage-witness';
/** Bytes of the header. */
export const HEADER_BYTES = 8;
/** Longest node id, in UTF-8 bytes (the transport's limit). */
export const MAX_NODE_BYTES = 256;
/** Longest generation, in UTF-8 bytes. */
export const MAX_GENERATION_BYTES = 256;
/** Longest reason or error message, in UTF-8 bytes (longer ones are cut by the sender). */
export const MAX_TEXT_BYTES = 1024;
/** Longest error code. */
export const MAX_CODE_BYTES = 64;
/** Largest frame either side sends or takes: a reply with a record and a reason. */
export const MAX_WITNESS_FRAME = HEADER_BYTES + 8 + 4 + 8 + 3 * (2 + MAX_NODE_BYTES) + 2 + MAX_TEXT_BYTES;

/** Request ops. */
export const Op = {
  READ: 1,
  ACQUIRE: 2,
  OUTDATE: 3,
  CLEAR: 4,
  RELEASE: 5,
} as const;
/** A reply's op is its request's with this bit set. */
export const REPLY_BIT = 0x80;
/** The op of an error reply. */
export const ERROR_OP = 0xff;

export type WitnessRequest =
  | { op: typeof Op.READ; id: number }
  | { op: typeof Op.ACQUIRE; id: number; node: string; generation: string }
  | { op: typeof Op.OUTDATE; id: number; node: string; epoch: number; partner: string; generation: string }
  | { op: typeof Op.CLEAR; id: number; node: string; epoch: number; generation: string }
  | { op: typeof Op.RELEASE; id: number; node: string; epoch: number };

export type WitnessReply =
  | { op: typeof Op.READ; id: number; ttlMs: number; record: PairRecord }
  | { op: typeof Op.ACQUIRE; id: number; granted: boolean; ttlMs: number; record: PairRecord; reason: string }
  | { op: typeof Op.OUTDATE; id: number; done: boolean }
  | { op: typeof Op.CLEAR; id: number; done: boolean }
  | { op: typeof Op.RELEASE; id: number }
  | { op: typeof ERROR_OP; id: number; code: string; message: string };

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// --- writing -------------------------------------------------------------------------

class Writer {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.#bytes.byteLength) return;
    const next = new Uint8Array(Math.max(this.#bytes.byteLength * 2, this.length + n));
    next.set(this.#bytes.subarray(0, this.length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): void { this.#room(1); this.#view.setUint8(this.length, v); this.length += 1; }
  u16(v: number): void { this.#room(2); this.#view.setUint16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.#room(4); this.#view.setUint32(this.length, v, true); this.length += 4; }
  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw TwinpageError.invalidArgument(`epoch must be an integer from 0 to 2^53 - 1, got ${v}`);
    this.#room(8); this.#view.setBigUint64(this.length, BigInt(v), true); this.length += 8;
  }

  /** A string of at most `max` bytes: refused when longer, or with `cut`, shortened (at a character boundary). */
  str(what: string, s: string, min: number, max: number, cut = false): void {
    if (typeof s !== 'string') throw TwinpageError.invalidArgument(`${what} must be a string`);
    let b = utf8.encode(s);
    if (b.byteLength > max && cut) {
      let end = max;
      while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
      b = b.subarray(0, end);
    }
    if (b.byteLength < min || b.byteLength > max) {
      throw TwinpageError.invalidArgument(`${what} must be ${min} to ${max} UTF-8 bytes, got ${b.byteLength}`);
    }
    this.u16(b.byteLength);
    this.#room(b.byteLength);
    this.#bytes.set(b, this.length);
    this.length += b.byteLength;
  }

  record(r: PairRecord): void {
    this.u64(r.epoch);
    this.str('primary', r.primary ?? '', 0, MAX_NODE_BYTES);
    this.str('outdated', r.outdated ?? '', 0, MAX_NODE_BYTES);
    this.str('generation', r.generation, 0, MAX_GENERATION_BYTES);
  }

  done(): Uint8Array { return this.#bytes.slice(0, this.length); }
}

function header(w: Writer, op: number, id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw TwinpageError.invalidArgument(`request id must be a u32, got ${id}`);
  w.u8(WITNESS_PROTOCOL_VERSION);
  w.u8(op);
  w.u16(0);
  w.u32(id);
}

/** A request as a frame. Refuses fields out of bounds with INVALID_ARGUMENT. */
export function encodeRequest(req: WitnessRequest): Uint8Array {
  const w = new Writer();
  header(w, req.op, req.id);
  switch (req.op) {
    case Op.READ: break;
    case Op.ACQUIRE:
      w.str('node', req.node, 1, MAX_NODE_BYTES);
      w.str('generation', req.generation, 0, MAX_GENERATION_BYTES);
      break;
    case Op.OUTDATE:
      w.str('node', req.node, 1, MAX_NODE_BYTES);
      w.u64(req.epoch);
      w.str('partner', req.partner, 1, MAX_NODE_BYTES);
      w.str('generation', req.generation, 0, MAX_GENERATION_BYTES);
      break;
    case Op.CLEAR:
      w.str('node', req.node, 1, MAX_NODE_BYTES);
      w.u64(req.epoch);
      w.str('generation', req.generation, 0, MAX_GENERATION_BYTES);
      break;
    case Op.RELEASE:
      w.str('node', req.node, 1, MAX_NODE_BYTES);
      w.u64(req.epoch);
      break;
    default: throw TwinpageError.invalidArgument(`unknown witness op ${(req as { op: unknown }).op}`);
  }
  return w.done();
}

/** A reply as a frame. */
export function encodeReply(rep: WitnessReply): Uint8Array {
  const w = new Writer();
  header(w, rep.op === ERROR_OP ? ERROR_OP : rep.op | REPLY_BIT, rep.id);
  switch (rep.op) {
    case Op.READ: w.u32(rep.ttlMs); w.record(rep.record); break;
    case Op.ACQUIRE:
      w.u8(rep.granted ? 1 : 0);
      w.u32(rep.ttlMs);
      w.record(rep.record);
      w.str('reason', rep.reason, 0, MAX_TEXT_BYTES, true);
      break;
    case Op.OUTDATE: case Op.CLEAR: w.u8(rep.done ? 1 : 0); break;
    case Op.RELEASE: break;
    case ERROR_OP:
      w.str('code', rep.code, 1, MAX_CODE_BYTES, true);
      w.str('message', rep.message, 0, MAX_TEXT_BYTES, true);
      break;
  }
  return w.done();
}

// --- reading -------------------------------------------------------------------------

/** A problem in a frame's body: the request is refused (the connection stays). */
class BodyError extends Error {}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at: number;

  constructor(bytes: Uint8Array, at: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#at = at;
  }

  #need(n: number, what: string): void {
    if (this.#at + n > this.#bytes.byteLength) throw new BodyError(`the frame ends inside ${what}`);
  }

  u8(what: string): number { this.#need(1, what); return this.#view.getUint8(this.#at++); }
  flag(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new BodyError(`${what} must be 0 or 1, got ${v}`);
    return v === 1;
  }
  u32(what: string): number { this.#need(4, what); const v = this.#view.getUint32(this.#at, true); this.#at += 4; return v; }
  u64(what: string): number {
    this.#need(8, what);
    const v = this.#view.getBigUint64(this.#at, true);
    this.#at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BodyError(`${what} ${v} is over 2^53 - 1`);
    return Number(v);
  }
  str(what: string, min: number, max: number): string {
    this.#need(2, `the length of ${what}`);
    const n = this.#view.getUint16(this.#at, true);
    this.#at += 2;
    if (n < min || n > max) throw new BodyError(`${what} must be ${min} to ${max} bytes, got ${n}`);
    this.#need(n, what);
    const bytes = this.#bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    try { return strictUtf8.decode(bytes); } catch { throw new BodyError(`${what} is not UTF-8`); }
  }
  record(): PairRecord {
    const epoch = this.u64('the record\'s epoch');
    const primary = this.str('the record\'s primary', 0, MAX_NODE_BYTES);
    const outdated = this.str('the record\'s outdated node', 0, MAX_NODE_BYTES);
    const generation = this.str('the record\'s generation', 0, MAX_GENERATION_BYTES);
    return { epoch, primary: primary === '' ? null : primary, outdated: outdated === '' ? null : outdated, generation };
  }
  end(): void {
    const left = this.#bytes.byteLength - this.#at;
    if (left !== 0) throw new BodyError(`${left} bytes after the last field`);
  }
}

/** A frame's header, or BAD_FRAME when it is not one of this protocol. */
export function decodeHeader(frame: Uint8Array): { op: number; id: number } {
  if (!(frame instanceof Uint8Array) || frame.byteLength < HEADER_BYTES) {
    throw TwinpageError.badFrame(`a witness frame has at least ${HEADER_BYTES} bytes, got ${frame?.byteLength}`);
  }
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const version = v.getUint8(0);
  if (version !== WITNESS_PROTOCOL_VERSION) throw TwinpageError.badFrame(`witness protocol version ${version} (this build speaks ${WITNESS_PROTOCOL_VERSION})`);
  const reserved = v.getUint16(2, true);
  if (reserved !== 0) throw TwinpageError.badFrame(`reserved header bits set (0x${reserved.toString(16)})`);
  return { op: v.getUint8(1), id: v.getUint32(4, true) };
}

/**
 * A request. A bad header throws BAD_FRAME (close the connection); a bad body
 * throws INVALID_ARGUMENT carrying the request's `id` (answer it with ERROR).
 */
export function decodeRequest(frame: Uint8Array): WitnessRequest {
  const { op, id } = decodeHeader(frame);
  const r = new Reader(frame, HEADER_BYTES);
  try {
    let req: WitnessRequest;
    switch (op) {
      case Op.READ: req = { op, id }; break;
      case Op.ACQUIRE: req = { op, id, node: r.str('node', 1, MAX_NODE_BYTES), generation: r.str('generation', 0, MAX_GENERATION_BYTES) }; break;
      case Op.OUTDATE:
        req = { op, id, node: r.str('node', 1, MAX_NODE_BYTES), epoch: r.u64('epoch'), partner: r.str('partner', 1, MAX_NODE_BYTES), generation: r.str('generation', 0, MAX_GENERATION_BYTES) };
        break;
      case Op.CLEAR: req = { op, id, node: r.str('node', 1, MAX_NODE_BYTES), epoch: r.u64('epoch'), generation: r.str('generation', 0, MAX_GENERATION_BYTES) }; break;
      case Op.RELEASE: req = { op, id, node: r.str('node', 1, MAX_NODE_BYTES), epoch: r.u64('epoch') }; break;
      default: throw new BodyError(`unknown request op ${op}`);
    }
    r.end();
    return req;
  } catch (err) {
    if (err instanceof BodyError) throw Object.assign(TwinpageError.invalidArgument(`bad witness request: ${err.message}`), { requestId: id });
    throw err;
  }
}

/** The id of the request a decodeRequest error is about, when it got that far. */
export function requestIdOf(err: unknown): number | undefined {
  const id = (err as { requestId?: unknown })?.requestId;
  return typeof id === 'number' ? id : undefined;
}

/** A record alone, as the protocol lays it out (the witness keeps it on disk this way too). */
export function encodeRecord(record: PairRecord): Uint8Array {
  const w = new Writer();
  w.record(record);
  return w.done();
}

/** A record alone; CORRUPT when the bytes are not exactly one. */
export function decodeRecord(bytes: Uint8Array): PairRecord {
  const r = new Reader(bytes, 0);
  try {
    const record = r.record();
    r.end();
    return record;
  } catch (err) {
    if (err instanceof BodyError) throw TwinpageError.corrupt(`bad witness record: ${err.message}`);
    throw err;
  }
}

/** A reply. Anything malformed throws BAD_FRAME: a witness that sends one is not trusted further. */
export function decodeReply(frame: Uint8Array): WitnessReply {
  const { op, id } = decodeHeader(frame);
  const r = new Reader(frame, HEADER_BYTES);
  try {
    let rep: WitnessReply;
    switch (op) {
      case Op.READ | REPLY_BIT: rep = { op: Op.READ, id, ttlMs: r.u32('ttlMs'), record: r.record() }; break;
      case Op.ACQUIRE | REPLY_BIT: {
        const granted = r.flag('granted');
        rep = { op: Op.ACQUIRE, id, granted, ttlMs: r.u32('ttlMs'), record: r.record(), reason: r.str('reason', 0, MAX_TEXT_BYTES) };
        break;
      }
      case Op.OUTDATE | REPLY_BIT: rep = { op: Op.OUTDATE, id, done: r.flag('done') }; break;
      case Op.CLEAR | REPLY_BIT: rep = { op: Op.CLEAR, id, done: r.flag('done') }; break;
      case Op.RELEASE | REPLY_BIT: rep = { op: Op.RELEASE, id }; break;
      case ERROR_OP: rep = { op: ERROR_OP, id, code: r.str('code', 1, MAX_CODE_BYTES), message: r.str('message', 0, MAX_TEXT_BYTES) }; break;
      default: throw new BodyError(`unknown reply op ${op}`);
    }
    r.end();
    return rep;
  } catch (err) {
    if (err instanceof BodyError) throw TwinpageError.badFrame(`bad witness reply: ${err.message}`);
    throw err;
  }
}
