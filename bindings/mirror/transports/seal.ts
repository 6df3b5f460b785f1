/**
 * Sealing (Node): every frame a TCP connection carries after its handshake,
 * encrypted and authenticated with AES-256-GCM under keys that exist only for
 * that connection and that direction. The frames one end sends in one turn of
 * the event loop (those that go out in one writev anyway) are sealed together
 * as one record, up to 64 KiB; a larger frame is a record alone. One cipher
 * set-up per record instead of per frame: a batch of page writes costs one.
 *
 * Keys. HKDF-SHA256 (RFC 5869) of the shared secret, salted with both
 * handshake nonces, one key per direction; the info binds the direction and
 * both node ids, so a key of one connection, one direction or one pair of
 * nodes opens nothing else:
 *
 * ```
 *   key(epoch 0) = HKDF-SHA256(ikm  = secret,
 *                              salt = client nonce | server nonce,
 *                              info = "twinpage-seal-v1" | sender side ("client" or "server") |
 *                                     u16 LE len | client nodeId | u16 LE len | server nodeId,
 *                              32 bytes)
 *   key(e + 1)   = HKDF-SHA256(ikm = key(e), salt = none,
 *                              info = "twinpage-rekey-v1" | u32 LE e + 1, 32 bytes)
 * ```
 *
 * A key seals at most `records` records or `bytes` bytes (2^32 - 1 records
 * and 2^36 bytes by default: 2^32 AES blocks, which keeps the chance of
 * telling GCM from random near 2^-64); the record that reaches either limit is
 * the last under it, and both ends move to the next epoch at the same record
 * without a word on the wire.
 *
 * A sealed record on the wire, holding k ≥ 1 frames:
 *
 * ```
 *   0          4                                                     4 + n      4 + n + 16
 *   ┌──────────┬─────────────────────────────────────────────────────┬──────────┐
 *   │ length   │ ciphertext: AES-256-GCM of the n bytes              │ tag      │
 *   │ u32 LE   │ ┌──────────┬─────────┬─────┬──────────┬─────────┐   │ 16 bytes │
 *   │ = n + 16 │ │ len u32  │ frame 1 │ ... │ len u32  │ frame k │   │ (GCM)    │
 *   │          │ └──────────┴─────────┴─────┴──────────┴─────────┘   │          │
 *   └──────────┴─────────────────────────────────────────────────────┴──────────┘
 *   n ≤ 64 KiB (RECORD_BYTES), or k = 1: one larger frame alone
 *   associated data = the 4 length bytes
 *   nonce (12 bytes, never sent) = u32 LE key epoch | u64 LE sequence of the record
 * ```
 *
 * The sequence counts the records of one direction from 0 and never restarts,
 * epochs included; nothing of it travels, so the receiver opens record k with
 * nonce k: a record replayed, reordered, dropped (the next one is opened with
 * the wrong nonce), altered, truncated, injected, or sealed under another
 * epoch's key fails its tag, and none of its frames is delivered. A failure is
 * 'AUTH_FAILED' and leaves the opener failed: the connection must close. A
 * record that authenticates but whose frame lengths do not tile it exactly
 * can only come from a broken peer: 'BAD_FRAME'.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { TwinpageError } from '../../errors.js';

/** Bytes of a key (AES-256). */
export const SEAL_KEY_BYTES = 32;
/** Bytes of a GCM tag, appended to every sealed record. */
export const SEAL_TAG_BYTES = 16;
/** Bytes of a GCM nonce: u32 epoch, u64 sequence. */
export const SEAL_NONCE_BYTES = 12;
/** Most plaintext bytes (frames with their u32 lengths) of a record holding several frames. */
export const RECORD_BYTES = 64 << 10;

/**
 * The largest sealed record (after its length prefix) a receiver with this
 * `maxFrame` accepts: a record of small frames, or one frame of `maxFrame`
 * bytes alone, plus the tag. Checked before a byte of it is kept.
 */
export function maxSealedRecord(maxFrame: number): number {
  return Math.max(RECORD_BYTES, 4 + maxFrame) + SEAL_TAG_BYTES;
}

/** When a direction moves to its next key. */
export interface RekeyLimits {
  /** Records one key seals; the record that reaches it is the key's last. @default 4294967295 (2^32 - 1) */
  records?: number;
  /** Plaintext bytes one key seals; the record that reaches it is the key's last. @default 68719476736 (2^36) */
  bytes?: number;
}

/** @internal */
export const DEFAULT_REKEY_RECORDS = 2 ** 32 - 1;
/** @internal */
export const DEFAULT_REKEY_BYTES = 2 ** 36;

const SEAL_LABEL = new TextEncoder().encode('twinpage-seal-v1');
const REKEY_LABEL = new TextEncoder().encode('twinpage-rekey-v1');
const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);
const MAX_EPOCH = 0xFFFFFFFF;

/** HKDF-SHA256 (RFC 5869, extract then expand): `length` bytes of key material. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

/** Which direction a key seals: what the client sends, or what the server sends. */
export type SealDirection = 'client' | 'server';

/** The two epoch-0 keys of one connection. */
export interface SessionKeys {
  /** Seals what the client sends (the server opens with it). */
  client: Uint8Array;
  /** Seals what the server sends (the client opens with it). */
  server: Uint8Array;
}

/**
 * The epoch-0 keys of a connection from its handshake: the secret, both
 * nonces and both node ids (see the file's header).
 */
export function sessionKeys(secret: Uint8Array, clientNonce: Uint8Array, serverNonce: Uint8Array, clientId: string, serverId: string): SessionKeys {
  const salt = new Uint8Array(clientNonce.byteLength + serverNonce.byteLength);
  salt.set(clientNonce, 0);
  salt.set(serverNonce, clientNonce.byteLength);
  const c = utf8.encode(clientId);
  const s = utf8.encode(serverId);
  const side = (d: SealDirection) => {
    const label = utf8.encode(d);
    const info = new Uint8Array(SEAL_LABEL.byteLength + label.byteLength + 2 + c.byteLength + 2 + s.byteLength);
    const view = new DataView(info.buffer);
    let at = 0;
    info.set(SEAL_LABEL, at); at += SEAL_LABEL.byteLength;
    info.set(label, at); at += label.byteLength;
    view.setUint16(at, c.byteLength, true); at += 2;
    info.set(c, at); at += c.byteLength;
    view.setUint16(at, s.byteLength, true); at += 2;
    info.set(s, at);
    return hkdfSha256(secret, salt, info, SEAL_KEY_BYTES);
  };
  return { client: side('client'), server: side('server') };
}

/** The key of `epoch` from the key of `epoch - 1`. */
export function nextKey(key: Uint8Array, epoch: number): Uint8Array {
  const info = new Uint8Array(REKEY_LABEL.byteLength + 4);
  info.set(REKEY_LABEL, 0);
  new DataView(info.buffer).setUint32(REKEY_LABEL.byteLength, epoch, true);
  return hkdfSha256(key, EMPTY, info, SEAL_KEY_BYTES);
}

/** The nonce of record `sequence` under the key of `epoch`, written into `out` (12 bytes). */
export function sealNonce(epoch: number, sequence: number, out: Uint8Array = new Uint8Array(SEAL_NONCE_BYTES)): Uint8Array {
  const view = new DataView(out.buffer, out.byteOffset, SEAL_NONCE_BYTES);
  view.setUint32(0, epoch, true);
  view.setUint32(4, sequence % 0x1_0000_0000, true);
  view.setUint32(8, Math.floor(sequence / 0x1_0000_0000), true);
  return out;
}

function limit(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw TwinpageError.invalidArgument(`rekey.${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** One direction's key schedule: the current key, its epoch, what it has sealed (or opened). */
class KeySchedule {
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #nonce = Buffer.alloc(SEAL_NONCE_BYTES);
  #raw: Uint8Array;
  #key: KeyObject;
  #epoch = 0;
  #sequence = 0;
  #records = 0;
  #bytes = 0;

  constructor(key: Uint8Array, limits: RekeyLimits | undefined) {
    if (!(key instanceof Uint8Array) || key.byteLength !== SEAL_KEY_BYTES) throw TwinpageError.invalidArgument(`a seal key is ${SEAL_KEY_BYTES} bytes`);
    this.#maxRecords = limit('records', limits?.records, DEFAULT_REKEY_RECORDS);
    this.#maxBytes = limit('bytes', limits?.bytes, DEFAULT_REKEY_BYTES);
    this.#raw = Uint8Array.from(key);
    this.#key = createSecretKey(this.#raw);
  }

  get epoch(): number { return this.#epoch; }
  get sequence(): number { return this.#sequence; }
  get key(): KeyObject { return this.#key; }

  /** The nonce of the next record (a view reused from record to record; the cipher copies it). */
  nonce(): Buffer {
    if (this.#sequence >= Number.MAX_SAFE_INTEGER) throw TwinpageError.closed('this connection has sealed 2^53 records: reconnect');
    return sealNonce(this.#epoch, this.#sequence, this.#nonce) as Buffer;
  }

  /** The record of `bytes` plaintext bytes under the current nonce is done: count it, and move to the next key at a limit. */
  advance(bytes: number): void {
    this.#sequence++;
    this.#bytes += bytes;
    if (++this.#records < this.#maxRecords && this.#bytes < this.#maxBytes) return;
    if (this.#epoch === MAX_EPOCH) throw TwinpageError.closed('this connection has used 2^32 keys: reconnect');
    const next = nextKey(this.#raw, ++this.#epoch);
    this.#raw.fill(0);
    this.#raw = next;
    this.#key = createSecretKey(next);
    this.#records = 0;
    this.#bytes = 0;
  }

  /** Forgets the key material (the KeyObject's copy goes with the garbage collector). */
  wipe(): void { this.#raw.fill(0); }
}

/** The plaintext of a record holding `frames`: each as its u32 LE length, then its bytes. */
export function recordPlaintext(frames: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const f of frames) n += 4 + f.byteLength;
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    view.setUint32(at, f.byteLength, true);
    out.set(f, at + 4);
    at += 4 + f.byteLength;
  }
  return out;
}

/**
 * Seals the records of one direction, in order. `seal(parts)` takes a
 * record's plaintext in pieces (laid out as drawn above: each frame's u32
 * length, then its bytes; at most RECORD_BYTES unless it is one frame) and
 * returns the wire bytes in order: the length prefix, the ciphertext of each
 * piece, the tag. Written one after the other on a corked socket they go out
 * in one writev; the pieces are read before `seal` returns (the caller may
 * reuse them).
 */
export class FrameSealer {
  readonly #keys: KeySchedule;

  constructor(key: Uint8Array, rekey?: RekeyLimits) { this.#keys = new KeySchedule(key, rekey); }

  /** The key epoch the next record is sealed under. */
  get epoch(): number { return this.#keys.epoch; }
  /** Records sealed so far (the next record's sequence). */
  get sequence(): number { return this.#keys.sequence; }

  seal(parts: readonly Uint8Array[]): Buffer[] {
    let n = 0;
    for (const p of parts) n += p.byteLength;
    if (n + SEAL_TAG_BYTES > 0xFFFFFFFF) throw TwinpageError.tooLarge(`a record of ${n} bytes is too large to seal`);
    const keys = this.#keys;
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(n + SEAL_TAG_BYTES, 0);
    const cipher = createCipheriv('aes-256-gcm', keys.key, keys.nonce(), { authTagLength: SEAL_TAG_BYTES });
    cipher.setAAD(head);
    const out: Buffer[] = [head];
    for (const p of parts) out.push(cipher.update(p));
    cipher.final(); // GCM: nothing more
    out.push(cipher.getAuthTag());
    keys.advance(n);
    return out;
  }

  wipe(): void { this.#keys.wipe(); }
}

/**
 * Opens the records of one direction, in order. `open(sealed)` takes what
 * followed a record's length prefix (ciphertext and tag) and returns its
 * frames (views into the record's plaintext), or throws: 'AUTH_FAILED' when it
 * does not authenticate (and refuses every later record), 'BAD_FRAME' when it
 * does but its frames do not tile it.
 */
export class FrameOpener {
  readonly #keys: KeySchedule;
  readonly #aad = Buffer.alloc(4);
  #failed = false;

  constructor(key: Uint8Array, rekey?: RekeyLimits) { this.#keys = new KeySchedule(key, rekey); }

  /** The key epoch the next record must be sealed under. */
  get epoch(): number { return this.#keys.epoch; }
  /** Records opened so far (the next record's sequence). */
  get sequence(): number { return this.#keys.sequence; }

  open(sealed: Uint8Array): Uint8Array[] {
    if (this.#failed) throw TwinpageError.authFailed('a sealed record failed authentication earlier on this connection');
    const keys = this.#keys;
    const length = sealed.byteLength;
    if (length < SEAL_TAG_BYTES) {
      this.#failed = true;
      throw TwinpageError.authFailed(`sealed record ${keys.sequence} is ${length} bytes, shorter than its tag: not sealed by the peer`);
    }
    const n = length - SEAL_TAG_BYTES;
    this.#aad.writeUInt32LE(length, 0);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', keys.key, keys.nonce(), { authTagLength: SEAL_TAG_BYTES });
      decipher.setAAD(this.#aad);
      decipher.setAuthTag(sealed.subarray(n));
      plain = decipher.update(sealed.subarray(0, n));
      decipher.final(); // throws when the tag does not match; `plain` is then dropped unread
    } catch (err) {
      this.#failed = true;
      throw TwinpageError.authFailed(
        `sealed record ${keys.sequence} (key epoch ${keys.epoch}) failed authentication: altered, forged, replayed, reordered or a record before it lost`, err);
    }
    keys.advance(n);
    // The frames, as plain Uint8Arrays (as frames are everywhere else), viewing the plaintext.
    const frames: Uint8Array[] = [];
    const buffer = plain.buffer;
    const base = plain.byteOffset;
    let at = 0;
    while (at < n) {
      if (n - at < 4) throw TwinpageError.badFrame(`sealed record ${keys.sequence - 1} ends inside a frame length`);
      const size = plain.readUInt32LE(at);
      if (size > n - at - 4) throw TwinpageError.badFrame(`sealed record ${keys.sequence - 1}: a frame of ${size} bytes overruns the record`);
      frames.push(new Uint8Array(buffer, base + at + 4, size));
      at += 4 + size;
    }
    if (frames.length === 0) throw TwinpageError.badFrame(`sealed record ${keys.sequence - 1} holds no frame`);
    return frames;
  }

  wipe(): void { this.#keys.wipe(); }
}
