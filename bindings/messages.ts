// The language both nodes speak: the ten paging synchronization messages of
// US 7,107,411 (claim 2), a reply for each, and the transport-level frames
// around them (handshake, authentication, acks, errors), with their codec.
//
// Pure encoding and decoding; no I/O, no core, no storage. The checksum is
// XXH3-64, passed in as `hash` (the core's). Every decoder refuses what does
// not check out, with a TwinpageError of code BAD_FRAME, and accepts exactly
// the bytes the encoder produces: a frame that decodes re-encodes to itself.
//
// --- frame -----------------------------------------------------------------------
//
//   0        4     5      6       8            16           24          28         32          40
//   +--------+-----+------+-------+------------+------------+-----------+----------+-----------+
//   | magic  | ver | type | flags | sequence   | generation | bodyLength| epoch    | checksum  |
//   | "TPMF" | 1   | u8   | 0     | u64        | u64        | u32       | u32      | u64       |
//   +--------+-----+------+-------+------------+------------+-----------+----------+-----------+
//   40                          40 + bodyLength
//   +---------------------------+
//   | body (by type, below)     |
//   +---------------------------+
//
// All integers little-endian. The checksum is XXH3-64 of the header, with the
// checksum field zero, followed by the body. A frame is self-delimiting: on a
// byte stream (TCP) frames follow one another with nothing between them, and
// the header's bodyLength is the length prefix (see FrameReader).
//
// --- body fields -----------------------------------------------------------------
//
//   guid      16 bytes, the UUID's bytes in string order; the nil GUID is refused
//   u8/u32    unsigned integers
//   u64       unsigned, decoded to a number: must be a safe integer (< 2^53)
//   big64     unsigned, decoded to a bigint (checksums, generations)
//   enum      u8, an index into the listed values
//   bool      u8, 0 or 1
//   string    u32 byte length + UTF-8 (must be valid UTF-8)
//   json      u32 byte length + UTF-8 of a JSON object, exactly as JSON.stringify writes it
//
// Bodies have no padding and no trailing bytes. Every reply starts with
// replyTo, the sequence of the request it answers (request sequences start at
// 1; 0 names no frame).

import { TwinpageError } from './errors.js';

/** XXH3-64 of `bytes` (the core's `checksum`). */
export type Hash = (bytes: Uint8Array) => bigint;

/** Bytes in a frame header. */
export const FRAME_HEADER_SIZE = 40;
/** "TPMF" read as a little-endian u32. */
export const FRAME_MAGIC = 0x464D5054;
/** The frame format version this codec writes and accepts. */
export const FRAME_VERSION = 1;
/** A reply's type is its request's type with this bit set. */
export const REPLY_BIT = 0x80;
/** Largest body length the header can declare. */
export const MAX_BODY_LENGTH = 0xFFFFFFFF;

/** Frame types, stable on the wire. */
export enum MessageType {
  // the ten paging synchronization messages
  SPACE_REQUEST = 0x01,
  ALLOCATE_MEMORY = 0x02,
  RELEASE_MEMORY = 0x03,
  LOCK_REQUEST = 0x04,
  READ_HEADER = 0x05,
  WRITE_PAGE = 0x06,
  SENSE_REQUEST = 0x07,
  ALLOCATE_READ = 0x08,
  ALLOCATE_WRITE = 0x09,
  RELEASE_POINTER = 0x0A,
  // their replies: request | REPLY_BIT
  SPACE_REPLY = 0x81,
  ALLOCATE_MEMORY_REPLY = 0x82,
  RELEASE_MEMORY_REPLY = 0x83,
  LOCK_REPLY = 0x84,
  READ_HEADER_REPLY = 0x85,
  WRITE_PAGE_REPLY = 0x86,
  SENSE_REPLY = 0x87,
  ALLOCATE_READ_REPLY = 0x88,
  ALLOCATE_WRITE_REPLY = 0x89,
  RELEASE_POINTER_REPLY = 0x8A,
  // transport: the handshake, acknowledgements, errors, and what the
  // handshake streams (out-of-sync runs, block lists)
  HELLO = 0x40,
  ACK = 0x42,
  ERROR = 0x43,
  OUT_OF_SYNC = 0x44,
  BLOCK_LIST = 0x45,
  BLOCK_IDS = 0x46,
}

/** Durability reached, in an ACK: `RECEIVED` < `MEMORY` < `DISK`. */
export const AckLevel = { RECEIVED: 0, MEMORY: 1, DISK: 2 } as const;
export type AckLevel = (typeof AckLevel)[keyof typeof AckLevel];

export type LockMode = 'shared' | 'exclusive';
export type LockStatus = 'granted' | 'queued' | 'refused';
/** How a WRITE_PAGE carries its page (US 7,107,411 claims 11-12). */
export type PageCopy = 'message' | 'shared' | 'storage';
export type ReplyStatus = 'ok' | 'refused' | 'failed';
export type Role = 'primary' | 'secondary' | 'none';
export type Health = 'ok' | 'degraded';

/** A JSON object, as sent: the value JSON.stringify writes must parse back to itself. */
export type JsonObject = Record<string, unknown>;

/** Why a request was refused or failed: a TwinpageError code and message. */
export interface ErrorInfo {
  /** Upper snake case, 1 to 64 characters, e.g. `UNKNOWN_BLOCK`. */
  code: string;
  message: string;
}

// --- requests ----------------------------------------------------------------------

/**
 * How much address space, storage and cache the partner has free; with
 * `reservePages` > 0, also reserve the run `[base, base + reservePages)` for
 * an allocation (the ALLOCATE_MEMORY that follows takes it).
 *
 *   0              4      8
 *   | reservePages | base |
 *   | u32          | u32  |
 *
 * `base + reservePages` <= 2^32.
 */
export interface SpaceRequest { type: MessageType.SPACE_REQUEST; reservePages: number; base: number }

/**
 * The fields of a block header, shared by ALLOCATE_MEMORY and READ_HEADER_REPLY.
 *
 *   0         16     20      24       32           40        44
 *   | blockId | base | pages | length | generation | jsonLen | policy json |
 *   | guid    | u32  | u32   | u64    | u64        | u32     |             |
 *
 * `pages` >= 1 and `base + pages` <= 2^32; with a known page size,
 * `length` <= `pages * pageSize`.
 */
export interface BlockHeader {
  blockId: string;
  /** First virtual page of the block's run. */
  base: number;
  /** Pages in the run. */
  pages: number;
  /** Bytes asked for at allocation. */
  length: number;
  /** The journal sequence that created the block. */
  generation: number;
  /** The block's policy as stored (policyToRecord: JSON has no Infinity). */
  policy: JsonObject;
}

/** Create block `blockId` on the run `[base, base + pages)`. Body: a BlockHeader. */
export interface AllocateMemory extends BlockHeader { type: MessageType.ALLOCATE_MEMORY }

/**
 * Free block `blockId`.
 *
 *   0         16
 *   | blockId |
 */
export interface ReleaseMemory { type: MessageType.RELEASE_MEMORY; blockId: string }

/**
 * Lock bytes `[offset, offset + length)` of a block (load sharing).
 *
 *   0         16       24       32     33
 *   | blockId | offset | length | mode |
 *   | guid    | u64    | u64    | enum |   mode: shared, exclusive
 */
export interface LockRequest { type: MessageType.LOCK_REQUEST; blockId: string; offset: number; length: number; mode: LockMode }

/**
 * A block's header, with the checksums of `count` of its pages from page
 * `first` (of the block, 0-based) when `checksums`; at most SUMS_PER_FRAME,
 * so a block of any size is compared in parts. Without checksums both are 0.
 *
 *   0         16          17      20      24
 *   | blockId | checksums | 0 0 0 | first | count |
 *   | guid    | bool      |       | u32   | u32   |
 */
export interface ReadHeader { type: MessageType.READ_HEADER; blockId: string; checksums: boolean; first: number; count: number }

/** The most page checksums one READ_HEADER asks for (512 KiB of them). */
export const SUMS_PER_FRAME = 65536;

/**
 * One page of a block: its bytes (copy `message`) or where the receiver finds
 * them (copy `shared`: a SharedArrayBuffer both nodes hold; copy `storage`: a
 * device the receiver reaches itself), with its checksum and write sequence.
 *
 *   0         16     20     21     24    32         40       48       56
 *   | blockId | page | copy | 0 0 0| lsn | checksum | offset | length | data (message only) |
 *   | guid    | u32  | enum |      | u64 | big64    | u64    | u64    | length bytes        |
 *
 * copy: message, shared, storage. For `message` offset is 0 and length is
 * data's length; for the others the body ends at 56. With a known page size,
 * length must equal it.
 */
export interface WritePage {
  type: MessageType.WRITE_PAGE;
  blockId: string;
  /** Virtual page number. */
  page: number;
  /** Write sequence of the page's contents. */
  lsn: number;
  /** XXH3-64 of the page's bytes. */
  checksum: bigint;
  copy: PageCopy;
  /**
   * The page's bytes, for copy `message` (absent otherwise). A decoded frame's
   * data is a view into the decoder's private copy of the frame.
   */
  data?: Uint8Array;
  /** Where the page is, for copy `shared` and `storage` (absent for `message`). */
  location?: { offset: number; length: number };
}

/** The partner's state; also the heartbeat. Empty body. */
export interface SenseRequest { type: MessageType.SENSE_REQUEST }

/**
 * A pointer on bytes `[offset, offset + length)` of a block: read-only
 * (ALLOCATE_READ) or write (ALLOCATE_WRITE).
 *
 *   0         16       24       32
 *   | blockId | offset | length |
 *   | guid    | u64    | u64    |
 */
export interface AllocateRead { type: MessageType.ALLOCATE_READ; blockId: string; offset: number; length: number }
/** See AllocateRead; same body. */
export interface AllocateWrite { type: MessageType.ALLOCATE_WRITE; blockId: string; offset: number; length: number }

/**
 * End the pointer on `[offset, offset + length)`. For a write pointer this
 * commits the `pages` WRITE_PAGEs sent for it since its ALLOCATE_WRITE,
 * together, at sequence `lsn`.
 *
 *   0         16       24       32    40      44
 *   | blockId | offset | length | lsn | pages |
 *   | guid    | u64    | u64    | u64 | u32   |
 */
export interface ReleasePointer {
  type: MessageType.RELEASE_POINTER;
  blockId: string;
  offset: number;
  length: number;
  lsn: number;
  /** How many WRITE_PAGEs belong to the pointer (0 for a read pointer). */
  pages: number;
}

// --- replies -----------------------------------------------------------------------

/**
 * Free bytes of address space, storage and cache; `granted` tells whether
 * the reservation asked for was made.
 *
 *   0         8             16            24          32        33
 *   | replyTo | addressFree | storageFree | cacheFree | granted |
 *   | u64     | u64         | u64         | u64       | bool    |
 */
export interface SpaceReply {
  type: MessageType.SPACE_REPLY;
  replyTo: number;
  addressFree: number;
  storageFree: number;
  cacheFree: number;
  granted: boolean;
}

/**
 * The reply to a request that returns nothing but its outcome.
 *
 *   0         8        9
 *   | replyTo | status | (status != ok:) code string | message string |
 *   | u64     | enum   |                                               |
 *
 * status: ok, refused (not done, nothing changed), failed (an error while
 * doing it). `error` is present exactly when status is not `ok`.
 */
export interface StatusReply<T extends StatusReplyType = StatusReplyType> {
  type: T;
  replyTo: number;
  status: ReplyStatus;
  error?: ErrorInfo;
}
export type StatusReplyType =
  | MessageType.ALLOCATE_MEMORY_REPLY
  | MessageType.RELEASE_MEMORY_REPLY
  | MessageType.WRITE_PAGE_REPLY
  | MessageType.ALLOCATE_READ_REPLY
  | MessageType.ALLOCATE_WRITE_REPLY
  | MessageType.RELEASE_POINTER_REPLY;

/**
 *   0         8        9
 *   | replyTo | status |   status: granted, queued, refused
 *   | u64     | enum   |
 */
export interface LockReply { type: MessageType.LOCK_REPLY; replyTo: number; status: LockStatus }

/**
 * A block's header; when asked for, the checksums of the pages from `first`
 * (of the block) on, as many as the request named.
 * A READ_HEADER that cannot be answered (unknown block) gets an ERROR.
 *
 *   0         8             52 + jsonLen
 *   | replyTo | BlockHeader | hasChecksums | first (when hasChecksums) | count x big64 |
 *   | u64     |             | bool         | u32                       |               |
 */
export interface ReadHeaderReply extends BlockHeader {
  type: MessageType.READ_HEADER_REPLY;
  replyTo: number;
  first?: number;
  checksums?: bigint[];
}

/**
 * The partner's state.
 *
 *   0         8        24           32            40         48     49       50       54
 *   | replyTo | nodeId | generation | lastApplied | lagPages | role | health | count  | history: count x big64 |
 *   | u64     | guid   | big64      | u64         | u64      | enum | enum   | u32    |                        |
 *
 * role: primary, secondary, none; health: ok, degraded. Generation ids travel
 * as u64 and read as 16 lowercase hex digits.
 */
export interface SenseReply {
  type: MessageType.SENSE_REPLY;
  replyTo: number;
  role: Role;
  nodeId: string;
  /** Current generation id: 16 lowercase hex digits. */
  generation: string;
  /** Earlier generation ids, same form, newest first. */
  history: string[];
  /** Highest sequence applied in the current generation. */
  lastApplied: number;
  health: Health;
  /** Pages changed but not yet mirrored (degraded mode, resync). */
  lagPages: number;
}

// --- transport ---------------------------------------------------------------------

/**
 * First frame each way on a connection (and again when the sender's role or
 * flags change, e.g. a finished resync or a demotion): who the sender is,
 * its generations and what it holds. Authentication is the transport's.
 *
 *   0          4          8        24     25      26       27  28        36       44            52        60       68      76      80
 *   | protocol | pageSize | nodeId | role | flags | policy | 0 | current | bitmap | primarySince | changes | blocks | epoch | count | history |
 *   | u32      | u32      | guid   | enum | u8    | enum   |   | big64   | big64  | u64          | u64     | u64    | u64   | u32   | count x big64 |
 *
 * role: primary, secondary. flags: bit 0 inconsistent, 1 outOfSyncKnown,
 * 2 synced, 3 crashed, 4 discardLocal (other bits zero). policy: the
 * sender's split-brain policy. Generation ids read as 16 lowercase hex digits;
 * `bitmap` is all zeros when the sender records nothing. At most 64 history
 * entries.
 */
export interface Hello {
  type: MessageType.HELLO;
  /** Protocol version the sender speaks. */
  protocol: number;
  /** The sender's page size; both nodes must agree. */
  pageSize: number;
  nodeId: string;
  role: 'primary' | 'secondary';
  flags: HelloFlags;
  splitBrain: SplitBrainPolicy;
  /** Current generation id. */
  current: string;
  /** The generation when the sender started recording what its partner lacks (all zeros: none). */
  bitmap: string;
  /** When the sender last became primary (ms since the epoch; 0: never). */
  primarySince: number;
  /** Pages the sender records as out of sync. */
  changes: number;
  /** Blocks the sender holds. */
  blocks: number;
  /** The pair's epoch the sender knows (fencing). */
  epoch: number;
  /** Earlier generation ids, newest first. */
  history: string[];
}

export interface HelloFlags {
  /** Being resynced: does not hold all of its partner's data. */
  inconsistent: boolean;
  /** Its out-of-sync record is known (else the partner compares every checksum). */
  outOfSyncKnown: boolean;
  /** Sent by a primary whose resync of the partner just finished. */
  synced: boolean;
  /** It did not close cleanly last time (its block list is compared). */
  crashed: boolean;
  /** It gives up its changes in a split brain (`twinpage discard`). */
  discardLocal: boolean;
}

export type SplitBrainPolicy = 'refuse' | 'discard-local' | 'discard-younger-primary' | 'discard-least-changes' | 'discard-zero-changes';

/**
 * Part of the sender's out-of-sync record, streamed after its HELLO: runs of
 * pages that may differ from the partner. The last part has `last` set.
 *
 *   0      1       5
 *   | last | count | runs: count x (first u32, pages u32) |
 *   | bool | u32   |                                      |
 *
 * Each run has at least one page and ends by page 2^32.
 */
export interface OutOfSync { type: MessageType.OUT_OF_SYNC; last: boolean; runs: Array<[number, number]> }

/** Asks for the partner's block ids (answered by BLOCK_IDS with `replyTo`). Empty body. */
export interface BlockList { type: MessageType.BLOCK_LIST }

/**
 * Part of a node's block ids: streamed after its HELLO (`replyTo` 0) or
 * answering a BLOCK_LIST. The last part has `last` set.
 *
 *   0         8      9       13
 *   | replyTo | last | count | ids: count x guid |
 *   | u64     | bool | u32   |                   |
 */
export interface BlockIds { type: MessageType.BLOCK_IDS; replyTo: number; last: boolean; ids: string[] }

/**
 * Cumulative acknowledgement: every frame up to sequence `applied` reached
 * durability `level`.
 *
 *   0         8       9
 *   | applied | level |   level: 0 received, 1 memory, 2 disk
 *   | u64     | u8    |
 */
export interface Ack { type: MessageType.ACK; applied: number; level: AckLevel }

/**
 * An error. With `replyTo` 0 it is about the connection, which the sender
 * then closes; otherwise it answers that request.
 *
 *   0         8
 *   | replyTo | code string | message string |
 *   | u64     |             |                |
 */
export interface ErrorMessage { type: MessageType.ERROR; replyTo: number; code: string; message: string }

export type Request =
  | SpaceRequest | AllocateMemory | ReleaseMemory | LockRequest | ReadHeader
  | WritePage | SenseRequest | AllocateRead | AllocateWrite | ReleasePointer;
export type Reply =
  | SpaceReply | StatusReply | LockReply | ReadHeaderReply | SenseReply;
export type TransportMessage = Hello | Ack | ErrorMessage | OutOfSync | BlockList | BlockIds;
/** Anything a frame carries. */
export type Message = Request | Reply | TransportMessage;
/** The message of type `T`. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** A decoded frame: the header's fields and its message. */
export interface Frame {
  version: number;
  type: MessageType;
  sequence: number;
  generation: bigint;
  bodyLength: number;
  /** The pair's epoch the sender knows. */
  epoch: number;
  checksum: bigint;
  message: Message;
}

/** What a decoder accepts. */
export interface FrameLimits {
  /** Largest body accepted, in bytes (0 to 2^32-1). */
  maxBody: number;
  /** When given, WRITE_PAGE data and locations must be this long, and block lengths fit their pages. */
  pageSize?: number;
}

/** Every type, for iteration. */
export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze(
  Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number'),
);

/** The type's name, e.g. `WRITE_PAGE`, or `0x..` for an unknown type. */
export function messageName(type: number): string {
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0xFF) return String(type);
  const name = (MessageType as unknown as Record<number, string | undefined>)[type];
  return typeof name === 'string' ? name : `0x${type.toString(16).padStart(2, '0')}`;
}

/** Whether `type` is a reply to one of the ten requests. */
export function isReply(type: MessageType): boolean {
  return (type & REPLY_BIT) !== 0;
}

/** Whether `type` is one of the ten paging synchronization messages. */
export function isRequest(type: MessageType): boolean {
  return type >= MessageType.SPACE_REQUEST && type <= MessageType.RELEASE_POINTER;
}

/** The reply type of a request type. */
export function replyTypeOf(type: Request['type']): Reply['type'] {
  return (type | REPLY_BIT) as Reply['type'];
}

// --- enumerations on the wire (index = byte) ---------------------------------------

const LOCK_MODES: readonly LockMode[] = ['shared', 'exclusive'];
const LOCK_STATUSES: readonly LockStatus[] = ['granted', 'queued', 'refused'];
const PAGE_COPIES: readonly PageCopy[] = ['message', 'shared', 'storage'];
const REPLY_STATUSES: readonly ReplyStatus[] = ['ok', 'refused', 'failed'];
const ROLES: readonly Role[] = ['none', 'primary', 'secondary'];
const HEALTHS: readonly Health[] = ['ok', 'degraded'];
const ACK_LEVELS: readonly AckLevel[] = [AckLevel.RECEIVED, AckLevel.MEMORY, AckLevel.DISK];
const BOOLS: readonly boolean[] = [false, true];

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NIL_GUID = '00000000-0000-0000-0000-000000000000';
const GENERATION = /^[0-9a-f]{16}$/;
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const SPLIT_BRAIN_POLICIES: readonly SplitBrainPolicy[] = ['refuse', 'discard-local', 'discard-younger-primary', 'discard-least-changes', 'discard-zero-changes'];
const HELLO_ROLES: readonly Hello['role'][] = ['primary', 'secondary'];
const HELLO_FLAGS: ReadonlyArray<keyof HelloFlags> = ['inconsistent', 'outOfSyncKnown', 'synced', 'crashed', 'discardLocal'];
/** Most history entries a HELLO carries. */
export const MAX_HELLO_HISTORY = 64;
const TWO_32 = 0x1_0000_0000;
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The GUID last encoded or decoded, as text and as its 16 bytes: a stream's
 * frames name the same block again and again, and each would otherwise parse
 * (or format) it anew. `text` is null until the first one.
 */
const lastGuid: { text: string | null; bytes: Uint8Array } = { text: null, bytes: new Uint8Array(16) };

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is kept, so it re-encodes.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return String(value);
}

// --- encoding ----------------------------------------------------------------------

/** Appends fields to a growing buffer, checking each value; errors name `what.field`. */
class Writer {
  buf: Uint8Array;
  view: DataView;
  pos: number;
  readonly what: string;

  constructor(capacity: number, at: number, what: string, reuse?: Uint8Array) {
    this.buf = reuse !== undefined && reuse.length >= capacity ? reuse : new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.pos = at;
    this.what = what;
  }

  bad(field: string, rule: string, value: unknown): never {
    throw TwinpageError.invalidArgument(`${this.what}.${field} must be ${rule}, got ${describe(value)}`);
  }

  need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(64, this.buf.length * 2);
    while (size < this.pos + n) size *= 2;
    const buf = new Uint8Array(size);
    buf.set(this.buf.subarray(0, this.pos));
    this.buf = buf;
    this.view = new DataView(buf.buffer);
  }

  u8(v: number): void {
    this.need(1);
    this.buf[this.pos++] = v;
  }

  u32(v: unknown, field: string): void {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xFFFFFFFF) this.bad(field, 'an integer from 0 to 2^32-1', v);
    this.need(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  u64(v: unknown, field: string): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.bad(field, 'a non-negative safe integer', v);
    this.need(8);
    this.view.setUint32(this.pos, v % TWO_32, true);
    this.view.setUint32(this.pos + 4, Math.floor(v / TWO_32), true);
    this.pos += 8;
  }

  big64(v: unknown, field: string): void {
    if (typeof v !== 'bigint' || v < 0n || v > 0xFFFF_FFFF_FFFF_FFFFn) this.bad(field, 'a bigint from 0 to 2^64-1', v);
    this.need(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  enum<T>(v: T, values: readonly T[], field: string): void {
    const i = values.indexOf(v);
    if (i < 0) this.bad(field, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
    this.u8(i);
  }

  guid(v: unknown, field: string): void {
    this.need(16);
    if (v !== lastGuid.text) {
      if (typeof v !== 'string' || !GUID.test(v) || v === NIL_GUID) this.bad(field, 'a lowercase GUID string, not the nil GUID', v);
      const hex = v.replace(/-/g, '');
      for (let i = 0; i < 16; i++) lastGuid.bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
      lastGuid.text = v;
    }
    this.buf.set(lastGuid.bytes, this.pos);
    this.pos += 16;
  }

  /** `v` hex string of 16 lowercase digits, as a u64. */
  generation(v: unknown, field: string): void {
    if (typeof v !== 'string' || !GENERATION.test(v)) this.bad(field, 'a generation id of 16 lowercase hex digits', v);
    this.big64(BigInt(`0x${v}`), field);
  }

  raw(b: Uint8Array): void {
    this.need(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  fixed(v: unknown, size: number, field: string): void {
    if (!(v instanceof Uint8Array) || v.length !== size) this.bad(field, `a Uint8Array of ${size} bytes`, v);
    this.raw(v);
  }

  string(v: unknown, field: string): void {
    if (typeof v !== 'string' || LONE_SURROGATE.test(v)) this.bad(field, 'a well-formed string', v);
    const b = utf8Encoder.encode(v);
    this.u32(b.length, `${field}.length`);
    this.raw(b);
  }

  json(v: unknown, field: string): void {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.bad(field, 'a JSON object', v);
    let text: string;
    try {
      text = JSON.stringify(v);
    } catch (err) {
      throw TwinpageError.invalidArgument(`${this.what}.${field} cannot be written as JSON: ${(err as Error).message}`);
    }
    this.string(text, field);
  }

  errorInfo(v: unknown, field: string): void {
    if (v === null || typeof v !== 'object') this.bad(field, 'an object { code, message }', v);
    const e = v as Partial<ErrorInfo>;
    this.code(e.code, `${field}.code`);
    this.string(e.message, `${field}.message`);
  }

  code(v: unknown, field: string): void {
    if (typeof v !== 'string' || !ERROR_CODE.test(v)) this.bad(field, 'an upper snake case code of 1 to 64 characters', v);
    this.string(v, field);
  }

  absent(v: unknown, field: string, why: string): void {
    if (v !== undefined) throw TwinpageError.invalidArgument(`${this.what}.${field} must be absent ${why}`);
  }
}

function encodeBlockHeader(w: Writer, m: BlockHeader): void {
  w.guid(m.blockId, 'blockId');
  w.u32(m.base, 'base');
  w.u32(m.pages, 'pages');
  if (m.pages < 1 || m.base + m.pages > TWO_32) w.bad('pages', 'at least 1, with base + pages <= 2^32', m.pages);
  w.u64(m.length, 'length');
  w.u64(m.generation, 'generation');
  w.json(m.policy, 'policy');
}

function encodeBody(w: Writer, m: Message): void {
  switch (m.type) {
    case MessageType.SPACE_REQUEST:
      w.u32(m.reservePages, 'reservePages');
      w.u32(m.base, 'base');
      if (m.base + m.reservePages > TWO_32) w.bad('base', 'such that base + reservePages <= 2^32', m.base);
      return;
    case MessageType.ALLOCATE_MEMORY:
      encodeBlockHeader(w, m);
      return;
    case MessageType.RELEASE_MEMORY:
      w.guid(m.blockId, 'blockId');
      return;
    case MessageType.LOCK_REQUEST:
      w.guid(m.blockId, 'blockId');
      encodeRange(w, m.offset, m.length);
      w.enum(m.mode, LOCK_MODES, 'mode');
      return;
    case MessageType.READ_HEADER:
      w.guid(m.blockId, 'blockId');
      w.enum(m.checksums, BOOLS, 'checksums');
      w.u8(0); w.u8(0); w.u8(0);
      w.u32(m.first, 'first');
      w.u32(m.count, 'count');
      if (m.checksums ? m.count > SUMS_PER_FRAME : m.first !== 0 || m.count !== 0) w.bad('count', m.checksums ? `at most ${SUMS_PER_FRAME} checksums` : '0 (with first) without checksums', m.count);
      return;
    case MessageType.WRITE_PAGE: {
      w.guid(m.blockId, 'blockId');
      w.u32(m.page, 'page');
      w.enum(m.copy, PAGE_COPIES, 'copy');
      w.u8(0); w.u8(0); w.u8(0);
      w.u64(m.lsn, 'lsn');
      w.big64(m.checksum, 'checksum');
      if (m.copy === 'message') {
        w.absent(m.location, 'location', "for copy 'message'");
        if (!(m.data instanceof Uint8Array)) w.bad('data', "a Uint8Array for copy 'message'", m.data);
        w.u64(0, 'offset');
        w.u64(m.data.length, 'data.length');
        w.raw(m.data);
      } else {
        w.absent(m.data, 'data', `for copy '${m.copy}'`);
        const at = m.location;
        if (at === null || typeof at !== 'object') w.bad('location', `an object { offset, length } for copy '${m.copy}'`, at);
        encodeRange(w, at.offset, at.length, 'location.');
      }
      return;
    }
    case MessageType.SENSE_REQUEST:
      return;
    case MessageType.ALLOCATE_READ:
    case MessageType.ALLOCATE_WRITE:
      w.guid(m.blockId, 'blockId');
      encodeRange(w, m.offset, m.length);
      return;
    case MessageType.RELEASE_POINTER:
      w.guid(m.blockId, 'blockId');
      encodeRange(w, m.offset, m.length);
      w.u64(m.lsn, 'lsn');
      w.u32(m.pages, 'pages');
      return;
    case MessageType.SPACE_REPLY:
      w.u64(m.replyTo, 'replyTo');
      w.u64(m.addressFree, 'addressFree');
      w.u64(m.storageFree, 'storageFree');
      w.u64(m.cacheFree, 'cacheFree');
      w.enum(m.granted, BOOLS, 'granted');
      return;
    case MessageType.ALLOCATE_MEMORY_REPLY:
    case MessageType.RELEASE_MEMORY_REPLY:
    case MessageType.WRITE_PAGE_REPLY:
    case MessageType.ALLOCATE_READ_REPLY:
    case MessageType.ALLOCATE_WRITE_REPLY:
    case MessageType.RELEASE_POINTER_REPLY:
      w.u64(m.replyTo, 'replyTo');
      w.enum(m.status, REPLY_STATUSES, 'status');
      if (m.status === 'ok') w.absent(m.error, 'error', "when status is 'ok'");
      else w.errorInfo(m.error, 'error');
      return;
    case MessageType.LOCK_REPLY:
      w.u64(m.replyTo, 'replyTo');
      w.enum(m.status, LOCK_STATUSES, 'status');
      return;
    case MessageType.READ_HEADER_REPLY:
      w.u64(m.replyTo, 'replyTo');
      encodeBlockHeader(w, m);
      if (m.checksums === undefined) {
        w.u8(0);
      } else {
        const first = m.first ?? 0;
        if (!Array.isArray(m.checksums) || m.checksums.length > SUMS_PER_FRAME || first + m.checksums.length > m.pages) {
          w.bad('checksums', `an array of at most ${SUMS_PER_FRAME} checksums of pages from ${first}, within the block's ${m.pages}`, m.checksums);
        }
        w.u8(1);
        w.u32(first, 'first');
        for (let i = 0; i < m.checksums.length; i++) w.big64(m.checksums[i], `checksums[${i}]`);
      }
      return;
    case MessageType.SENSE_REPLY:
      w.u64(m.replyTo, 'replyTo');
      w.guid(m.nodeId, 'nodeId');
      w.generation(m.generation, 'generation');
      w.u64(m.lastApplied, 'lastApplied');
      w.u64(m.lagPages, 'lagPages');
      w.enum(m.role, ROLES, 'role');
      w.enum(m.health, HEALTHS, 'health');
      if (!Array.isArray(m.history)) w.bad('history', 'an array of generation ids', m.history);
      w.u32(m.history.length, 'history.length');
      for (let i = 0; i < m.history.length; i++) w.generation(m.history[i], `history[${i}]`);
      return;
    case MessageType.HELLO:
      w.u32(m.protocol, 'protocol');
      if (m.protocol < 1) w.bad('protocol', 'at least 1', m.protocol);
      w.u32(m.pageSize, 'pageSize');
      if (!validPageSize(m.pageSize)) w.bad('pageSize', 'a power of two from 512 to 1 MiB', m.pageSize);
      w.guid(m.nodeId, 'nodeId');
      w.enum(m.role, HELLO_ROLES, 'role');
      if (m.flags === null || typeof m.flags !== 'object') w.bad('flags', 'an object of booleans', m.flags);
      w.u8(HELLO_FLAGS.reduce((bits, f, i) => {
        const v = m.flags[f];
        if (typeof v !== 'boolean') w.bad(`flags.${f}`, 'a boolean', v);
        return v ? bits | (1 << i) : bits;
      }, 0));
      w.enum(m.splitBrain, SPLIT_BRAIN_POLICIES, 'splitBrain');
      w.u8(0);
      w.generation(m.current, 'current');
      w.generation(m.bitmap, 'bitmap');
      w.u64(m.primarySince, 'primarySince');
      w.u64(m.changes, 'changes');
      w.u64(m.blocks, 'blocks');
      w.u64(m.epoch, 'epoch');
      if (!Array.isArray(m.history) || m.history.length > MAX_HELLO_HISTORY) w.bad('history', `an array of at most ${MAX_HELLO_HISTORY} generation ids`, m.history);
      w.u32(m.history.length, 'history.length');
      for (let i = 0; i < m.history.length; i++) w.generation(m.history[i], `history[${i}]`);
      return;
    case MessageType.OUT_OF_SYNC:
      w.enum(m.last, BOOLS, 'last');
      if (!Array.isArray(m.runs)) w.bad('runs', 'an array of [first, pages] runs', m.runs);
      w.u32(m.runs.length, 'runs.length');
      for (let i = 0; i < m.runs.length; i++) {
        const run = m.runs[i];
        if (!Array.isArray(run) || run.length !== 2) w.bad(`runs[${i}]`, 'a [first, pages] pair', run);
        w.u32(run[0], `runs[${i}][0]`);
        w.u32(run[1], `runs[${i}][1]`);
        if (run[1] < 1 || run[0] + run[1] > TWO_32) w.bad(`runs[${i}][1]`, 'at least 1, with first + pages <= 2^32', run[1]);
      }
      return;
    case MessageType.BLOCK_LIST:
      return;
    case MessageType.BLOCK_IDS:
      w.u64(m.replyTo, 'replyTo');
      w.enum(m.last, BOOLS, 'last');
      if (!Array.isArray(m.ids)) w.bad('ids', 'an array of GUIDs', m.ids);
      w.u32(m.ids.length, 'ids.length');
      for (let i = 0; i < m.ids.length; i++) w.guid(m.ids[i], `ids[${i}]`);
      return;
    case MessageType.ACK:
      w.u64(m.applied, 'applied');
      w.enum(m.level, ACK_LEVELS, 'level');
      return;
    case MessageType.ERROR:
      w.u64(m.replyTo, 'replyTo');
      w.code(m.code, 'code');
      w.string(m.message, 'message');
      return;
    default:
      throw TwinpageError.invalidArgument(`message.type ${describe((m as { type: unknown }).type)} is not a message type`);
  }
}

function encodeRange(w: Writer, offset: number, length: number, prefix = ''): void {
  w.u64(offset, `${prefix}offset`);
  w.u64(length, `${prefix}length`);
  if (!Number.isSafeInteger(offset + length)) w.bad(`${prefix}length`, 'such that offset + length is a safe integer', length);
}

function validPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 1 << 20 && (n & (n - 1)) === 0;
}

/** The largest buffer a FrameArena keeps between frames (a larger frame gets one of its own). */
const ARENA_MAX = 1 << 20;

/**
 * Where a sender encodes its frames one after the other: the buffer is kept
 * from frame to frame, so a page's frame costs no allocation. A frame
 * encoded in an arena is a view that the next encode overwrites: hand it on
 * (a Transport copies what it sends before `send` returns) before encoding
 * the next.
 */
export class FrameArena {
  buf: Uint8Array = new Uint8Array(0);
}

/**
 * Encodes `msg` as one frame. The body is checked field by field: a value the
 * decoder would refuse is an INVALID_ARGUMENT error naming it (e.g.
 * `WRITE_PAGE.page`), so every frame written decodes.
 *
 * `header.sequence` is a non-negative safe integer; `header.generation` a u64.
 * With an `arena` the frame is a view into it, valid until its next encode.
 */
export function encodeFrame(msg: Message, header: { sequence: number; generation: bigint; epoch?: number }, hash: Hash, arena?: FrameArena): Uint8Array {
  if (msg === null || typeof msg !== 'object') throw TwinpageError.invalidArgument('message must be an object');
  const what = messageName(msg.type);
  const sequence = header?.sequence;
  const generation = header?.generation;
  const epoch = header?.epoch ?? 0;
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0 || epoch > 0xFFFFFFFF) {
    throw TwinpageError.invalidArgument(`header.epoch must be an integer from 0 to 2^32-1, got ${describe(epoch)}`);
  }
  if (typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence < 0) {
    throw TwinpageError.invalidArgument(`header.sequence must be a non-negative safe integer, got ${describe(sequence)}`);
  }
  if (typeof generation !== 'bigint' || generation < 0n || generation > 0xFFFF_FFFF_FFFF_FFFFn) {
    throw TwinpageError.invalidArgument(`header.generation must be a bigint from 0 to 2^64-1, got ${describe(generation)}`);
  }
  const dataLength = msg.type === MessageType.WRITE_PAGE && msg.data instanceof Uint8Array ? msg.data.length : 0;
  const w = new Writer(FRAME_HEADER_SIZE + 64 + dataLength, FRAME_HEADER_SIZE, what, arena?.buf);
  encodeBody(w, msg);
  const bodyLength = w.pos - FRAME_HEADER_SIZE;
  if (bodyLength > MAX_BODY_LENGTH) throw TwinpageError.tooLarge(`${what} body is ${bodyLength} bytes; a frame holds at most 2^32-1`);
  if (arena !== undefined && w.buf.length <= ARENA_MAX) arena.buf = w.buf;
  const out = arena !== undefined ? w.buf.subarray(0, w.pos) : w.pos === w.buf.length ? w.buf : w.buf.slice(0, w.pos);
  const v = new DataView(out.buffer, out.byteOffset, FRAME_HEADER_SIZE);
  v.setUint32(0, FRAME_MAGIC, true);
  out[4] = FRAME_VERSION;
  out[5] = msg.type;
  v.setUint16(6, 0, true);
  v.setUint32(8, sequence % TWO_32, true);
  v.setUint32(12, Math.floor(sequence / TWO_32), true);
  v.setBigUint64(16, generation, true);
  v.setUint32(24, bodyLength, true);
  v.setUint32(28, epoch, true);
  v.setBigUint64(32, 0n, true);
  const sum = hash(out);
  if (typeof sum !== 'bigint' || sum < 0n || sum > 0xFFFF_FFFF_FFFF_FFFFn) {
    throw TwinpageError.invalidArgument(`hash must return a u64 bigint, got ${describe(sum)}`);
  }
  v.setBigUint64(32, sum, true);
  return out;
}

// --- decoding ----------------------------------------------------------------------

function badFrame(message: string): never {
  throw TwinpageError.badFrame(`bad frame: ${message}`);
}

/** Reads fields from a body, refusing anything the encoder would not write; errors name `what.field`. */
class Reader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly what: string;
  pos = 0;

  constructor(bytes: Uint8Array, what: string) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.what = what;
  }

  get left(): number { return this.bytes.length - this.pos; }

  bad(field: string, problem: string): never {
    badFrame(`${this.what}.${field} ${problem}`);
  }

  need(n: number, field: string): void {
    if (n > this.left) this.bad(field, `needs ${n} bytes, the body has ${this.left} left`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++];
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(field: string): number {
    this.need(8, field);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    if (hi > 0x1FFFFF) this.bad(field, 'is not a safe integer');
    return hi * TWO_32 + lo;
  }

  big64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  enum<T>(values: readonly T[], field: string): T {
    const i = this.u8(field);
    if (i >= values.length) this.bad(field, `is ${i}, not one of 0 to ${values.length - 1}`);
    return values[i];
  }

  zero(n: number, field: string): void {
    this.need(n, field);
    for (let i = 0; i < n; i++) if (this.bytes[this.pos + i] !== 0) this.bad(field, 'must be zero');
    this.pos += n;
  }

  guid(field: string): string {
    this.need(16, field);
    const b = this.bytes;
    const p = this.pos;
    let nil = true;
    for (let i = 0; i < 16; i++) if (b[p + i] !== 0) nil = false;
    if (nil) this.bad(field, 'is the nil GUID');
    this.pos += 16;
    const last = lastGuid.bytes;
    let same = lastGuid.text !== null;
    for (let i = 0; i < 16 && same; i++) same = b[p + i] === last[i];
    if (same) return lastGuid.text!;
    const h = (i: number) => HEX[b[p + i]];
    const text = `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
    last.set(b.subarray(p, p + 16));
    lastGuid.text = text;
    return text;
  }

  generation(field: string): string {
    return this.big64(field).toString(16).padStart(16, '0');
  }

  /** `n` bytes, as a view (the decoder works on its own copy of the frame). */
  raw(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  string(field: string): string {
    const n = this.u32(`${field}.length`);
    const b = this.raw(n, field);
    try {
      return utf8Decoder.decode(b);
    } catch {
      this.bad(field, 'is not valid UTF-8');
    }
  }

  json(field: string): JsonObject {
    const text = this.string(field);
    let value: unknown;
    let again: string | undefined;
    try {
      value = JSON.parse(text);
      again = JSON.stringify(value);
    } catch {
      this.bad(field, 'is not valid JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) this.bad(field, 'is not a JSON object');
    if (again !== text) this.bad(field, 'is not JSON as JSON.stringify writes it');
    return value as JsonObject;
  }

  code(field: string): string {
    const s = this.string(field);
    if (!ERROR_CODE.test(s)) this.bad(field, `${describe(s)} is not an upper snake case code`);
    return s;
  }

  range(prefix = ''): { offset: number; length: number } {
    const offset = this.u64(`${prefix}offset`);
    const length = this.u64(`${prefix}length`);
    if (!Number.isSafeInteger(offset + length)) this.bad(`${prefix}length`, 'runs past 2^53');
    return { offset, length };
  }

  end(): void {
    if (this.left !== 0) this.bad('body', `has ${this.left} trailing bytes`);
  }
}

function decodeBlockHeader(r: Reader, pageSize: number | undefined): BlockHeader {
  const blockId = r.guid('blockId');
  const base = r.u32('base');
  const pages = r.u32('pages');
  if (pages < 1 || base + pages > TWO_32) r.bad('pages', `is ${pages}: a block has at least 1 page and ends by page 2^32`);
  const length = r.u64('length');
  if (pageSize !== undefined && length > pages * pageSize) r.bad('length', `is ${length} bytes, more than ${pages} pages hold`);
  const generation = r.u64('generation');
  const policy = r.json('policy');
  return { blockId, base, pages, length, generation, policy };
}

function decodeBody(type: MessageType, r: Reader, pageSize: number | undefined): Message {
  switch (type) {
    case MessageType.SPACE_REQUEST: {
      const reservePages = r.u32('reservePages');
      const base = r.u32('base');
      if (base + reservePages > TWO_32) r.bad('base', `is ${base}: base + reservePages is past 2^32`);
      return { type, reservePages, base };
    }
    case MessageType.ALLOCATE_MEMORY:
      return { type, ...decodeBlockHeader(r, pageSize) };
    case MessageType.RELEASE_MEMORY:
      return { type, blockId: r.guid('blockId') };
    case MessageType.LOCK_REQUEST: {
      const blockId = r.guid('blockId');
      const { offset, length } = r.range();
      return { type, blockId, offset, length, mode: r.enum(LOCK_MODES, 'mode') };
    }
    case MessageType.READ_HEADER:
    {
      const blockId = r.guid('blockId');
      const checksums = r.enum(BOOLS, 'checksums');
      r.zero(3, 'padding');
      const first = r.u32('first');
      const count = r.u32('count');
      if (checksums ? count > SUMS_PER_FRAME : first !== 0 || count !== 0) r.bad('count', `is ${count} from ${first}: at most ${SUMS_PER_FRAME} with checksums, else 0 from 0`);
      return { type, blockId, checksums, first, count };
    }
    case MessageType.WRITE_PAGE: {
      const blockId = r.guid('blockId');
      const page = r.u32('page');
      const copy = r.enum(PAGE_COPIES, 'copy');
      r.zero(3, 'padding');
      const lsn = r.u64('lsn');
      const checksum = r.big64('checksum');
      const location = r.range('location.');
      if (pageSize !== undefined && location.length !== pageSize) {
        r.bad(copy === 'message' ? 'data' : 'location.length', `is ${location.length} bytes, the page size is ${pageSize}`);
      }
      if (copy !== 'message') return { type, blockId, page, lsn, checksum, copy, location };
      if (location.offset !== 0) r.bad('offset', "must be 0 for copy 'message'");
      if (location.length !== r.left) r.bad('data', `declares ${location.length} bytes, the body has ${r.left} left`);
      return { type, blockId, page, lsn, checksum, copy, data: r.raw(location.length, 'data') };
    }
    case MessageType.SENSE_REQUEST:
      return { type };
    case MessageType.ALLOCATE_READ:
    case MessageType.ALLOCATE_WRITE: {
      const blockId = r.guid('blockId');
      return { type, blockId, ...r.range() };
    }
    case MessageType.RELEASE_POINTER: {
      const blockId = r.guid('blockId');
      const { offset, length } = r.range();
      return { type, blockId, offset, length, lsn: r.u64('lsn'), pages: r.u32('pages') };
    }
    case MessageType.SPACE_REPLY:
      return {
        type,
        replyTo: r.u64('replyTo'),
        addressFree: r.u64('addressFree'),
        storageFree: r.u64('storageFree'),
        cacheFree: r.u64('cacheFree'),
        granted: r.enum(BOOLS, 'granted'),
      };
    case MessageType.ALLOCATE_MEMORY_REPLY:
    case MessageType.RELEASE_MEMORY_REPLY:
    case MessageType.WRITE_PAGE_REPLY:
    case MessageType.ALLOCATE_READ_REPLY:
    case MessageType.ALLOCATE_WRITE_REPLY:
    case MessageType.RELEASE_POINTER_REPLY: {
      const replyTo = r.u64('replyTo');
      const status = r.enum(REPLY_STATUSES, 'status');
      if (status === 'ok') return { type, replyTo, status };
      const code = r.code('error.code');
      return { type, replyTo, status, error: { code, message: r.string('error.message') } };
    }
    case MessageType.LOCK_REPLY:
      return { type, replyTo: r.u64('replyTo'), status: r.enum(LOCK_STATUSES, 'status') };
    case MessageType.READ_HEADER_REPLY: {
      const replyTo = r.u64('replyTo');
      const header = decodeBlockHeader(r, pageSize);
      if (!r.enum(BOOLS, 'hasChecksums')) return { type, replyTo, ...header };
      const first = r.u32('first');
      const count = r.left / 8;
      if (!Number.isInteger(count) || count > SUMS_PER_FRAME || first + count > header.pages) {
        r.bad('checksums', `has ${r.left} bytes from page ${first}: whole checksums, at most ${SUMS_PER_FRAME}, within the block's ${header.pages} pages`);
      }
      const checksums = new Array<bigint>(count);
      for (let i = 0; i < count; i++) checksums[i] = r.big64('checksums');
      return { type, replyTo, ...header, first, checksums };
    }
    case MessageType.SENSE_REPLY: {
      const replyTo = r.u64('replyTo');
      const nodeId = r.guid('nodeId');
      const generation = r.generation('generation');
      const lastApplied = r.u64('lastApplied');
      const lagPages = r.u64('lagPages');
      const role = r.enum(ROLES, 'role');
      const health = r.enum(HEALTHS, 'health');
      const count = r.u32('history.length');
      if (r.left !== count * 8) r.bad('history', `has ${r.left} bytes for ${count} generation ids`);
      const history = new Array<string>(count);
      for (let i = 0; i < count; i++) history[i] = r.generation('history');
      return { type, replyTo, role, nodeId, generation, history, lastApplied, health, lagPages };
    }
    case MessageType.HELLO: {
      const protocol = r.u32('protocol');
      if (protocol < 1) r.bad('protocol', 'is 0');
      const pageSize = r.u32('pageSize');
      if (!validPageSize(pageSize)) r.bad('pageSize', `is ${pageSize}, not a power of two from 512 to 1 MiB`);
      const nodeId = r.guid('nodeId');
      const role = r.enum(HELLO_ROLES, 'role');
      const bits = r.u8('flags');
      if (bits >> HELLO_FLAGS.length) r.bad('flags', `has unknown bits 0x${bits.toString(16)}`);
      const flags = Object.fromEntries(HELLO_FLAGS.map((f, i) => [f, (bits & (1 << i)) !== 0])) as unknown as HelloFlags;
      const splitBrain = r.enum(SPLIT_BRAIN_POLICIES, 'splitBrain');
      r.zero(1, 'padding');
      const current = r.generation('current');
      const bitmap = r.generation('bitmap');
      const primarySince = r.u64('primarySince');
      const changes = r.u64('changes');
      const blocks = r.u64('blocks');
      const epoch = r.u64('epoch');
      const count = r.u32('history.length');
      if (count > MAX_HELLO_HISTORY) r.bad('history', `has ${count} entries, more than ${MAX_HELLO_HISTORY}`);
      if (r.left !== count * 8) r.bad('history', `has ${r.left} bytes for ${count} generation ids`);
      const history = new Array<string>(count);
      for (let i = 0; i < count; i++) history[i] = r.generation('history');
      return { type, protocol, pageSize, nodeId, role, flags, splitBrain, current, bitmap, primarySince, changes, blocks, epoch, history };
    }
    case MessageType.OUT_OF_SYNC: {
      const last = r.enum(BOOLS, 'last');
      const count = r.u32('runs.length');
      if (r.left !== count * 8) r.bad('runs', `has ${r.left} bytes for ${count} runs`);
      const runs = new Array<[number, number]>(count);
      for (let i = 0; i < count; i++) {
        const first = r.u32('runs.first');
        const pages = r.u32('runs.pages');
        if (pages < 1 || first + pages > TWO_32) r.bad('runs', `run ${i} [${first}, +${pages}) is empty or ends past 2^32`);
        runs[i] = [first, pages];
      }
      return { type, last, runs };
    }
    case MessageType.BLOCK_LIST:
      return { type };
    case MessageType.BLOCK_IDS: {
      const replyTo = r.u64('replyTo');
      const last = r.enum(BOOLS, 'last');
      const count = r.u32('ids.length');
      if (r.left !== count * 16) r.bad('ids', `has ${r.left} bytes for ${count} ids`);
      const ids = new Array<string>(count);
      for (let i = 0; i < count; i++) ids[i] = r.guid('ids');
      return { type, replyTo, last, ids };
    }
    case MessageType.ACK:
      return { type, applied: r.u64('applied'), level: r.enum(ACK_LEVELS, 'level') };
    case MessageType.ERROR: {
      const replyTo = r.u64('replyTo');
      const code = r.code('code');
      return { type, replyTo, code, message: r.string('message') };
    }
  }
}

/** The fields of a frame header, checked: everything but the checksum's value. */
export interface FrameHeader {
  version: number;
  type: MessageType;
  sequence: number;
  generation: bigint;
  bodyLength: number;
  /** The pair's epoch the sender knows (fencing: a node refuses an older one). */
  epoch: number;
  checksum: bigint;
}

const KNOWN_TYPES: ReadonlySet<number> = new Set(MESSAGE_TYPES);

function checkMaxBody(maxBody: unknown): number {
  if (typeof maxBody !== 'number' || !Number.isInteger(maxBody) || maxBody < 0 || maxBody > MAX_BODY_LENGTH) {
    throw TwinpageError.invalidArgument(`maxBody must be an integer from 0 to 2^32-1, got ${describe(maxBody)}`);
  }
  return maxBody;
}

/**
 * Reads and checks the 40-byte header at the start of `bytes` (at least 40
 * bytes): magic, version, type, flags, a body of at most `maxBody`
 * bytes and a safe-integer sequence. BAD_FRAME when any is wrong.
 */
export function decodeFrameHeader(bytes: Uint8Array, maxBody: number): FrameHeader {
  if (bytes.length < FRAME_HEADER_SIZE) badFrame(`${bytes.length} bytes is shorter than a frame header (${FRAME_HEADER_SIZE})`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_SIZE);
  const magic = v.getUint32(0, true);
  if (magic !== FRAME_MAGIC) badFrame(`magic is 0x${magic.toString(16).padStart(8, '0')}, not "TPMF"`);
  const version = bytes[4];
  if (version !== FRAME_VERSION) badFrame(`version ${version} is not supported (this node speaks ${FRAME_VERSION})`);
  const type = bytes[5];
  if (!KNOWN_TYPES.has(type)) badFrame(`type ${messageName(type)} is unknown`);
  const flags = v.getUint16(6, true);
  if (flags !== 0) badFrame(`flags are 0x${flags.toString(16)}, must be 0`);
  const seqLo = v.getUint32(8, true);
  const seqHi = v.getUint32(12, true);
  if (seqHi > 0x1FFFFF) badFrame('sequence is not a safe integer');
  const bodyLength = v.getUint32(24, true);
  if (bodyLength > maxBody) badFrame(`body of ${bodyLength} bytes is over the limit of ${maxBody}`);
  const epoch = v.getUint32(28, true);
  return {
    version,
    type: type as MessageType,
    sequence: seqHi * TWO_32 + seqLo,
    generation: v.getBigUint64(16, true),
    bodyLength,
    epoch,
    checksum: v.getBigUint64(32, true),
  };
}

/**
 * Decodes one frame, exactly `bytes` long. Strict: a wrong magic, version,
 * type, flags or reserved field, a length that does not match or is over
 * `limits.maxBody`, a wrong checksum, or a body that is not exactly what the
 * encoder writes, is a TwinpageError with code BAD_FRAME saying what was
 * wrong; nothing else is thrown (bad `limits` are INVALID_ARGUMENT). The hash
 * must take inputs up to 40 + maxBody bytes.
 *
 * The decoder works on its own copy of `bytes`; the caller may reuse them.
 * With `adopt` the caller hands `bytes` over instead: no copy is made, a
 * WRITE_PAGE's data is a view into them (so they must not be reused), and
 * they are as they were when the call returns.
 */
export function decodeFrame(bytes: Uint8Array, hash: Hash, limits: FrameLimits, adopt = false): Frame {
  if (limits === null || typeof limits !== 'object') throw TwinpageError.invalidArgument('limits must be an object { maxBody, pageSize? }');
  const maxBody = checkMaxBody(limits.maxBody);
  const pageSize = limits.pageSize;
  if (pageSize !== undefined && !validPageSize(pageSize)) {
    throw TwinpageError.invalidArgument(`limits.pageSize must be a power of two from 512 to 1 MiB, got ${describe(pageSize)}`);
  }
  if (!(bytes instanceof Uint8Array)) badFrame('not a Uint8Array');
  try {
    const h = decodeFrameHeader(bytes, maxBody);
    const length = FRAME_HEADER_SIZE + h.bodyLength;
    if (bytes.length !== length) badFrame(`${bytes.length} bytes, the header declares ${length}`);
    // Not adopted: a copy, never `bytes.slice()` (a Node Buffer's slice is a view, and the input must stay untouched).
    const copy = adopt ? bytes : new Uint8Array(bytes.length);
    if (!adopt) copy.set(bytes);
    // Hashed with its checksum field zero (an adopted frame's is put back after).
    const field = new DataView(copy.buffer, copy.byteOffset + 32, 8);
    field.setBigUint64(0, 0n, true);
    let sum: bigint;
    try {
      sum = hash(copy);
    } catch (err) {
      throw TwinpageError.badFrame(`bad frame: the checksum could not be computed: ${(err as Error)?.message}`, err);
    } finally {
      if (adopt) field.setBigUint64(0, h.checksum, true);
    }
    if (sum !== h.checksum) badFrame(`${messageName(h.type)} checksum does not match`);
    const r = new Reader(copy.subarray(FRAME_HEADER_SIZE), messageName(h.type));
    const message = decodeBody(h.type, r, pageSize);
    r.end();
    return { ...h, message };
  } catch (err) {
    if (err instanceof TwinpageError && err.code === 'BAD_FRAME') throw err;
    throw TwinpageError.badFrame(`bad frame: ${(err as Error)?.message ?? String(err)}`, err);
  }
}

// --- streams -----------------------------------------------------------------------

/** Options of a FrameReader. */
export interface FrameReaderOptions {
  /** Largest body accepted, in bytes (0 to 2^32-1); a connection holds at most 40 + maxBody bytes of a partial frame. */
  maxBody: number;
}

/**
 * Cuts a byte stream (TCP) into frames. Frames follow one another with
 * nothing between them; each is read as its 40-byte header, then the
 * header's bodyLength bytes. The header is checked as soon as it is complete
 * (decodeFrameHeader): a bad one, or a declared body over `maxBody`, throws
 * BAD_FRAME at once, before any memory is taken for the body, and leaves the
 * reader failed (every later push throws): close the connection.
 *
 * The frames returned are fresh arrays; pass each to decodeFrame, which
 * checks the checksum and the body.
 */
export class FrameReader {
  readonly maxBody: number;
  readonly #head = new Uint8Array(FRAME_HEADER_SIZE);
  /** The frame being filled, once its header is complete. */
  #frame: Uint8Array | null = null;
  /** Bytes of the current frame received so far. */
  #have = 0;
  #failed: TwinpageError | null = null;

  constructor(options: FrameReaderOptions) {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object { maxBody }');
    this.maxBody = checkMaxBody(options.maxBody);
  }

  /** Bytes held of a partial frame. */
  get buffered(): number {
    return this.#have;
  }

  /** Adds `chunk`; returns the frames it completes, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#failed) throw TwinpageError.badFrame(`bad frame: the stream already failed: ${this.#failed.message}`);
    if (!(chunk instanceof Uint8Array)) throw TwinpageError.invalidArgument('chunk must be a Uint8Array');
    const out: Uint8Array[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#frame === null) {
        const n = Math.min(FRAME_HEADER_SIZE - this.#have, chunk.length - pos);
        this.#head.set(chunk.subarray(pos, pos + n), this.#have);
        this.#have += n;
        pos += n;
        if (this.#have < FRAME_HEADER_SIZE) break;
        let h: FrameHeader;
        try {
          h = decodeFrameHeader(this.#head, this.maxBody);
        } catch (err) {
          this.#failed = err as TwinpageError;
          this.#have = 0;
          throw err;
        }
        this.#frame = new Uint8Array(FRAME_HEADER_SIZE + h.bodyLength);
        this.#frame.set(this.#head);
      } else {
        const n = Math.min(this.#frame.length - this.#have, chunk.length - pos);
        this.#frame.set(chunk.subarray(pos, pos + n), this.#have);
        this.#have += n;
        pos += n;
      }
      if (this.#have === this.#frame.length) {
        out.push(this.#frame);
        this.#frame = null;
        this.#have = 0;
      }
    }
    return out;
  }

  /** The stream ended: BAD_FRAME when it ended inside a frame. */
  end(): void {
    if (this.#failed) throw TwinpageError.badFrame(`bad frame: the stream already failed: ${this.#failed.message}`);
    if (this.#have !== 0) {
      const have = this.#have;
      this.#have = 0;
      this.#frame = null;
      badFrame(`the stream ended ${have} bytes into a frame`);
    }
  }
}
