/**
 * The TCP transport (Node): length-prefixed frames over a socket, optionally
 * TLS, opened by a mutual HMAC-SHA256 challenge on a shared secret; then every
 * frame sealed (AES-256-GCM, `seal.ts`) under keys derived from the secret and
 * both nonces of the handshake, unless both ends were started with
 * `insecurePlaintext`.
 *
 * Every message on the wire, handshake included, is one length-prefixed frame:
 *
 * ```
 *   0          4                    4 + length
 *   ┌──────────┬────────────────────┐
 *   │ length   │ bytes              │   length ≤ maxFrame (≤ 1 KiB while authenticating);
 *   │ u32 LE   │                    │   a larger one closes the connection at once
 *   └──────────┴────────────────────┘
 * ```
 *
 * The handshake: both sides send a hello as soon as the socket is up, then a
 * proof once they have the peer's hello. Nothing else is delivered until the
 * peer's proof checks out.
 *
 * ```
 *   hello
 *   0        4      5       6        8                       40             40 + idLength
 *   ┌────────┬──────┬───────┬────────┬───────────────────────┬──────────────┐
 *   │ "TWPG" │ ver  │ flags │idLength│ nonce: 32 fresh random│ nodeId UTF-8 │
 *   │        │ u8=1 │ u8    │ u16 LE │ bytes per connection  │              │
 *   └────────┴──────┴───────┴────────┴───────────────────────┴──────────────┘
 *   flags: bit 0 (HELLO_SEALED) set when the sender seals its frames; other bits 0
 *
 *   proof (32 bytes) = HMAC-SHA256(secret,
 *       "twinpage-auth-v1" | side ("client" or "server", the sender's) |
 *       own nonce | peer nonce | u16 LE len | own nodeId | u16 LE len | peer nodeId)
 * ```
 *
 * Each side checks the peer's proof with `timingSafeEqual`. The side label
 * stops a proof being reflected back; the fresh nonces stop a recorded
 * handshake being replayed. A wrong secret, a wrong version, a malformed hello,
 * a peer that does not seal when this end does (or the reverse: both ends must
 * agree, so neither can be talked down to plaintext), or no proof within
 * `authTimeoutMs` closes the connection with 'AUTH_FAILED'.
 *
 * After the proofs, frames travel sealed (`seal.ts` draws it): the frames sent
 * in one turn of the event loop as one record of up to 64 KiB (a larger frame
 * alone). A record's length prefix is checked against the largest record this
 * end takes (64 KiB, or `maxFrame` + 4, plus the 16-byte tag) before any byte
 * of it is kept or decrypted (over it: 'BAD_FRAME'); a record that fails
 * authentication closes the connection with 'AUTH_FAILED' and none of its
 * frames is delivered; a frame in it over `maxFrame` is 'BAD_FRAME'. Under TLS
 * frames are sealed all the same: one path, and the secret still guards the
 * data when a certificate authority trusts more than it should.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TwinpageError } from '../../errors.js';
import { intOption } from '../../options.js';
import { TransportBase, DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_FRAME, type Transport, type TransportOptions } from './transport.js';
import { FrameOpener, FrameSealer, RECORD_BYTES, maxSealedRecord, sessionKeys, type RekeyLimits } from './seal.js';

/** The handshake protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;
/** The first four bytes of a hello: "TWPG". */
export const HELLO_MAGIC: Uint8Array = Uint8Array.of(0x54, 0x57, 0x50, 0x47);
/** Bytes of a hello's nonce. */
export const NONCE_BYTES = 32;
/** Bytes of a proof (HMAC-SHA256). */
export const PROOF_BYTES = 32;
/** Largest frame accepted while authenticating. */
export const HANDSHAKE_MAX_FRAME = 1024;
/** Largest node id, in UTF-8 bytes. */
export const MAX_NODE_ID_BYTES = 256;
/** Hello flag: the sender seals every frame after the handshake. */
export const HELLO_SEALED = 0x01;

const HELLO_HEADER = 8 + NONCE_BYTES;
const AUTH_LABEL = new TextEncoder().encode('twinpage-auth-v1');
const CLOSE_GRACE_MS = 2000;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Which end of a connection: the one that connected, or the one that accepted. */
export type TcpSide = 'client' | 'server';

/** Options of both {@link listenTcp} and {@link connectTcp}. */
export interface TcpCommonOptions extends TransportOptions {
  /** Address to listen on or connect to. @default '127.0.0.1' */
  host?: string;
  /** The secret both nodes share; connections are authenticated with it. Required, non-empty. */
  secret: Uint8Array | string;
  /** This node's id, sent in the hello and bound into the proof. Required, 1 to 256 UTF-8 bytes. */
  nodeId: string;
  /** TLS options (key, cert, ca, ...). When given, the connection runs over TLS. @default none (plain TCP) */
  tls?: tls.TlsOptions & tls.ConnectionOptions;
  /** Milliseconds a connection may take to authenticate before it is closed with 'AUTH_FAILED'. @default 5000 */
  authTimeoutMs?: number;
  /**
   * INSECURE: send and accept frames in plaintext after the handshake, protected
   * by nothing but a checksum anyone can recompute: whoever is on the path reads
   * every page and can forge or alter frames. Only for a link that is secured
   * otherwise (TLS, a private wire) or for measuring. Both ends must set it; a
   * sealing end refuses a plaintext one with 'AUTH_FAILED'.
   * @default false (every frame sealed with AES-256-GCM)
   */
  insecurePlaintext?: boolean;
  /**
   * @internal For tests: when each direction moves to its next key. Both ends
   * must use the same limits (a mismatch fails authentication at the first
   * record where they differ).
   * @default { records: 2^32 - 1, bytes: 2^36 }
   */
  rekey?: RekeyLimits;
}

/** Options of {@link listenTcp}. */
export interface ListenTcpOptions extends TcpCommonOptions {
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
  /** Called for each connection that fails before it is handed to `onConnection` (authentication, socket error). @default none */
  onConnectionError?: (err: Error) => void;
}

/** Options of {@link connectTcp}. */
export interface ConnectTcpOptions extends TcpCommonOptions {
  /** Port to connect to. Required. */
  port: number;
}

/** A listening TCP endpoint. */
export interface TcpListener {
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and closes every connection it accepted; resolves once they are all closed. */
  close(): Promise<void>;
}

interface Resolved {
  host: string;
  port: number;
  secret: Uint8Array;
  nodeId: string;
  nodeIdBytes: Uint8Array;
  tls: (tls.TlsOptions & tls.ConnectionOptions) | undefined;
  authTimeoutMs: number;
  highWaterMark: number;
  maxFrame: number;
  sealed: boolean;
  rekey: RekeyLimits | undefined;
}

function resolveOptions(options: TcpCommonOptions & { port?: number }, listen: boolean): Resolved {
  if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
  const { secret, nodeId, host = '127.0.0.1', port = listen ? 0 : undefined } = options;
  let secretBytes: Uint8Array;
  if (typeof secret === 'string') secretBytes = utf8.encode(secret);
  else if (secret instanceof Uint8Array) secretBytes = Uint8Array.from(secret);
  else throw TwinpageError.invalidArgument('secret must be a non-empty string or Uint8Array: connections are authenticated with it');
  if (secretBytes.byteLength === 0) throw TwinpageError.invalidArgument('secret must not be empty: connections are authenticated with it');
  if (typeof nodeId !== 'string' || nodeId === '') throw TwinpageError.invalidArgument('nodeId must be a non-empty string');
  const nodeIdBytes = utf8.encode(nodeId);
  if (nodeIdBytes.byteLength > MAX_NODE_ID_BYTES) throw TwinpageError.invalidArgument(`nodeId must be at most ${MAX_NODE_ID_BYTES} UTF-8 bytes`);
  if (typeof host !== 'string' || host === '') throw TwinpageError.invalidArgument('host must be a non-empty string');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (listen ? 0 : 1) || port > 65535) {
    throw TwinpageError.invalidArgument(`port must be an integer from ${listen ? 0 : 1} to 65535, got ${String(port)}`);
  }
  if (options.tls !== undefined && (options.tls === null || typeof options.tls !== 'object')) throw TwinpageError.invalidArgument('tls must be an object of TLS options');
  const { insecurePlaintext = false, rekey } = options;
  if (typeof insecurePlaintext !== 'boolean') throw TwinpageError.invalidArgument('insecurePlaintext must be a boolean');
  if (rekey !== undefined) {
    if (rekey === null || typeof rekey !== 'object') throw TwinpageError.invalidArgument('rekey must be an object { records?, bytes? }');
    intOption('rekey.records', rekey.records, 1);
    intOption('rekey.bytes', rekey.bytes, 1);
  }
  return {
    host,
    port,
    secret: secretBytes,
    nodeId,
    nodeIdBytes,
    tls: options.tls,
    authTimeoutMs: intOption('authTimeoutMs', options.authTimeoutMs, 5000),
    highWaterMark: intOption('highWaterMark', options.highWaterMark, DEFAULT_HIGH_WATER_MARK),
    maxFrame: intOption('maxFrame', options.maxFrame, DEFAULT_MAX_FRAME),
    sealed: !insecurePlaintext,
    rekey: rekey === undefined ? undefined : { records: rekey.records, bytes: rekey.bytes },
  };
}

// --- wire helpers (exported for tests and tools) -------------------------------

/** One frame as it goes on the wire: u32 LE length, then the bytes. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength, true);
  out.set(payload, 4);
  return out;
}

/** A hello's payload (not yet framed). `version` and `flags` are for tests of refusal. */
export function encodeHello(nodeId: string, nonce: Uint8Array, version = PROTOCOL_VERSION, flags = HELLO_SEALED): Uint8Array {
  const id = utf8.encode(nodeId);
  if (nonce.byteLength !== NONCE_BYTES) throw TwinpageError.invalidArgument(`nonce must be ${NONCE_BYTES} bytes`);
  const out = new Uint8Array(HELLO_HEADER + id.byteLength);
  const view = new DataView(out.buffer);
  out.set(HELLO_MAGIC, 0);
  out[4] = version;
  out[5] = flags;
  view.setUint16(6, id.byteLength, true);
  out.set(nonce, 8);
  out.set(id, HELLO_HEADER);
  return out;
}

/** Parses a hello's payload; throws 'AUTH_FAILED' for anything but a well-formed hello of this version. */
export function decodeHello(payload: Uint8Array): { version: number; flags: number; nodeId: string; nonce: Uint8Array } {
  if (payload.byteLength < HELLO_HEADER) throw TwinpageError.authFailed('malformed hello: too short');
  for (let i = 0; i < 4; i++) if (payload[i] !== HELLO_MAGIC[i]) throw TwinpageError.authFailed('malformed hello: not a twinpage peer');
  const version = payload[4]!;
  if (version !== PROTOCOL_VERSION) throw TwinpageError.authFailed(`unsupported protocol version ${version} (this node speaks ${PROTOCOL_VERSION})`);
  const flags = payload[5]!;
  if ((flags & ~HELLO_SEALED) !== 0) throw TwinpageError.authFailed(`malformed hello: unknown flags 0x${flags.toString(16)}`);
  const idLength = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint16(6, true);
  if (idLength === 0 || idLength > MAX_NODE_ID_BYTES || payload.byteLength !== HELLO_HEADER + idLength) {
    throw TwinpageError.authFailed('malformed hello: bad node id length');
  }
  let nodeId: string;
  try { nodeId = strictUtf8.decode(payload.subarray(HELLO_HEADER)); } catch { throw TwinpageError.authFailed('malformed hello: node id is not UTF-8'); }
  return { version, flags, nodeId, nonce: payload.slice(8, HELLO_HEADER) };
}

/** The proof `side` sends: HMAC-SHA256 over the label, the side, both nonces and both node ids (own first). */
export function authProof(secret: Uint8Array | string, side: TcpSide, ownNonce: Uint8Array, peerNonce: Uint8Array, ownId: string, peerId: string): Uint8Array {
  const own = utf8.encode(ownId);
  const peer = utf8.encode(peerId);
  const len = new Uint8Array(2);
  const hmac = createHmac('sha256', typeof secret === 'string' ? utf8.encode(secret) : secret);
  hmac.update(AUTH_LABEL);
  hmac.update(utf8.encode(side));
  hmac.update(ownNonce);
  hmac.update(peerNonce);
  new DataView(len.buffer).setUint16(0, own.byteLength, true);
  hmac.update(len);
  hmac.update(own);
  new DataView(len.buffer).setUint16(0, peer.byteLength, true);
  hmac.update(len);
  hmac.update(peer);
  return new Uint8Array(hmac.digest());
}

/**
 * Reassembles frames from a byte stream cut anywhere. Holds at most one partial
 * frame: a declared length over `maxFrame` throws 'BAD_FRAME' before any of its
 * bytes are kept.
 */
export class FrameReader {
  maxFrame: number;
  #chunks: Uint8Array[] = [];
  #offset = 0; // into #chunks[0]
  #bytes = 0;
  #length = -1; // length of the frame whose header was read, or -1

  constructor(maxFrame: number) { this.maxFrame = maxFrame; }

  /** Bytes held: the start of a frame not yet complete, plus what follows it. */
  get buffered(): number { return this.#bytes + (this.#length >= 0 ? 4 : 0); }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
  }

  /**
   * The next complete frame, or null until more bytes arrive: a fresh copy,
   * or with `view`, when the frame lies within one chunk pushed, a view into
   * that chunk (read it before pushing the chunk's bytes anywhere else).
   */
  next(view = false): Uint8Array | null {
    if (this.#length < 0) {
      if (this.#bytes < 4) return null;
      const h = this.#take(4);
      const length = (h[0]! | (h[1]! << 8) | (h[2]! << 16)) + h[3]! * 0x1000000;
      if (length > this.maxFrame) {
        this.#chunks = [];
        this.#bytes = 0;
        this.#offset = 0;
        throw TwinpageError.badFrame(`frame of ${length} bytes is over maxFrame (${this.maxFrame})`);
      }
      this.#length = length;
    }
    if (this.#bytes < this.#length) return null;
    const frame = view ? this.#view(this.#length) : this.#take(this.#length);
    this.#length = -1;
    return frame;
  }

  /** `n` bytes as a view into the first chunk when they all lie there, else a copy. */
  #view(n: number): Uint8Array {
    const chunk = this.#chunks[0];
    if (chunk === undefined || chunk.byteLength - this.#offset < n) return this.#take(n);
    const out = chunk.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    this.#bytes -= n;
    if (this.#offset === chunk.byteLength) { this.#chunks.shift(); this.#offset = 0; }
    return out;
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0]!;
      const k = Math.min(n - filled, chunk.byteLength - this.#offset);
      out.set(chunk.subarray(this.#offset, this.#offset + k), filled);
      filled += k;
      this.#offset += k;
      if (this.#offset === chunk.byteLength) { this.#chunks.shift(); this.#offset = 0; }
    }
    this.#bytes -= n;
    return out;
  }
}

// --- the transport ---------------------------------------------------------------

type Phase = 'connecting' | 'hello' | 'proof' | 'open' | 'failed';

class TcpTransport extends TransportBase {
  readonly #socket: net.Socket;
  readonly #side: TcpSide;
  readonly #o: Resolved;
  readonly #nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  readonly #reader = new FrameReader(HANDSHAKE_MAX_FRAME);
  #phase: Phase = 'connecting';
  #peerNonce: Uint8Array | null = null;
  #peerNodeId = '';
  /** Seals what this end sends, opens what the peer sends; null before the handshake ends, and in plaintext. */
  #sealer: FrameSealer | null = null;
  #opener: FrameOpener | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #graceTimer: ReturnType<typeof setTimeout> | null = null;
  #socketError: Error | undefined;
  #corked = false;
  /** Sealed: the plaintext of the record this turn's frames fill (reused), and its bytes so far. */
  #record: Buffer | null = null;
  #recordBytes = 0;
  #paused = false;
  #readyResolve!: () => void;
  #readyReject!: (err: Error) => void;
  /** Settles when authentication succeeded or failed. */
  readonly ready: Promise<void>;

  constructor(socket: net.Socket, side: TcpSide, o: Resolved) {
    super({ highWaterMark: o.highWaterMark, maxFrame: o.maxFrame });
    this.#socket = socket;
    this.#side = side;
    this.#o = o;
    this.ready = new Promise<void>((resolve, reject) => { this.#readyResolve = resolve; this.#readyReject = reject; });
    this.ready.catch(() => {});
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('drain', () => this.writable());
    socket.on('error', (err: Error) => { this.#socketError ??= err; });
    socket.on('close', () => this.#socketClosed());
    this.#timer = setTimeout(() => {
      this.#fail(this.#phase === 'connecting'
        ? TwinpageError.ioError(`timed out connecting to ${o.host}:${o.port}`)
        : TwinpageError.authFailed(`authentication timed out after ${o.authTimeoutMs} ms`));
    }, o.authTimeoutMs);
  }

  /** The socket is up (TLS: secured): send the hello. */
  start(): void {
    if (this.#phase !== 'connecting') return;
    this.#phase = 'hello';
    this.#socket.setNoDelay(true);
    this.#socket.write(encodeFrame(encodeHello(this.#o.nodeId, this.#nonce, PROTOCOL_VERSION, this.#o.sealed ? HELLO_SEALED : 0)));
  }

  #data(chunk: Buffer): void {
    if (this.#phase === 'failed' || this.closed) return;
    this.#reader.push(chunk);
    try {
      for (;;) {
        // A sealed record is read in place when it can be: opening it copies it out.
        const frame = this.#reader.next(this.#opener !== null);
        if (frame === null) break;
        if (this.#phase === 'open') {
          if (this.#opener === null) {
            if (this.receive(frame) && !this.#paused) { this.#paused = true; this.#socket.pause(); }
          } else {
            // Authenticated before any of its frames is seen; a failure throws 'AUTH_FAILED'.
            for (const f of this.#opener.open(frame)) {
              if (f.byteLength > this.maxFrame) throw TwinpageError.badFrame(`frame of ${f.byteLength} bytes is over maxFrame (${this.maxFrame})`);
              if (this.receive(f) && !this.#paused) { this.#paused = true; this.#socket.pause(); }
            }
          }
          if (this.closed) return;
        } else {
          this.#handshake(frame);
        }
      }
    } catch (err) {
      if (this.#phase === 'open') this.close(err as Error);
      else this.#fail(TwinpageError.authFailed(`bad handshake: ${(err as Error).message}`, err));
    }
  }

  #handshake(frame: Uint8Array): void {
    if (this.#phase === 'hello') {
      const hello = decodeHello(frame);
      if (hello.nodeId === this.#o.nodeId) throw TwinpageError.authFailed(`the peer claims this node's own id ${JSON.stringify(hello.nodeId)}`);
      if (timingSafeEqual(hello.nonce, this.#nonce)) throw TwinpageError.authFailed('the peer echoed this node\'s nonce');
      const peerSeals = (hello.flags & HELLO_SEALED) !== 0;
      if (peerSeals !== this.#o.sealed) {
        throw TwinpageError.authFailed(this.#o.sealed
          ? 'the peer sends frames in plaintext (insecurePlaintext) and this node seals every frame: both ends must agree'
          : 'the peer seals its frames and this node was started with insecurePlaintext: both ends must agree');
      }
      this.#peerNonce = hello.nonce;
      this.#peerNodeId = hello.nodeId;
      this.#phase = 'proof';
      this.#socket.write(encodeFrame(authProof(this.#o.secret, this.#side, this.#nonce, hello.nonce, this.#o.nodeId, hello.nodeId)));
      return;
    }
    // 'proof'
    const peerSide: TcpSide = this.#side === 'client' ? 'server' : 'client';
    const expected = authProof(this.#o.secret, peerSide, this.#peerNonce!, this.#nonce, this.#peerNodeId, this.#o.nodeId);
    if (frame.byteLength !== PROOF_BYTES || !timingSafeEqual(frame, expected)) {
      throw TwinpageError.authFailed('the peer\'s proof does not match: wrong secret, or a replayed handshake');
    }
    if (this.#o.sealed) {
      const client = this.#side === 'client';
      const keys = client
        ? sessionKeys(this.#o.secret, this.#nonce, this.#peerNonce!, this.#o.nodeId, this.#peerNodeId)
        : sessionKeys(this.#o.secret, this.#peerNonce!, this.#nonce, this.#peerNodeId, this.#o.nodeId);
      this.#sealer = new FrameSealer(client ? keys.client : keys.server, this.#o.rekey);
      this.#opener = new FrameOpener(client ? keys.server : keys.client, this.#o.rekey);
      keys.client.fill(0);
      keys.server.fill(0);
    }
    this.#phase = 'open';
    // Checked on the length prefix, before a byte of the frame (record) is kept or decrypted.
    this.#reader.maxFrame = this.#o.sealed ? maxSealedRecord(this.maxFrame) : this.maxFrame;
    this.peerId = this.#peerNodeId;
    this.#clearTimer();
    this.#readyResolve();
  }

  #fail(err: Error): void {
    if (this.#phase === 'failed' || this.#phase === 'open') return;
    this.#phase = 'failed';
    this.#clearTimer();
    this.#socket.destroy();
    this.ended(err);
    this.#readyReject(err);
  }

  #socketClosed(): void {
    this.#clearTimer();
    this.#wipe();
    if (this.#graceTimer !== null) { clearTimeout(this.#graceTimer); this.#graceTimer = null; }
    const cause = this.#socketError;
    if (this.#phase !== 'open') {
      this.#fail(this.#phase === 'connecting'
        ? TwinpageError.ioError(`could not connect to ${this.#o.host}:${this.#o.port}${cause ? `: ${cause.message}` : ''}`, cause)
        : TwinpageError.authFailed(`the connection closed during authentication${cause ? `: ${cause.message}` : ''}`, cause));
      return;
    }
    if (this.closed) return;
    if (cause !== undefined) this.ended(TwinpageError.ioError(`connection to ${this.peerId} failed: ${cause.message}`, cause));
    else if (this.#reader.buffered > 0) this.ended(TwinpageError.badFrame('the connection ended inside a frame'));
    else this.ended();
  }

  #clearTimer(): void {
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
  }

  #wipe(): void {
    this.#sealer?.wipe();
    this.#opener?.wipe();
  }

  protected write(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (!this.#corked) {
      // Frames sent in one turn go out in one writev (sealed: as one record, at the end of the turn).
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#endTurn);
    }
    const sealer = this.#sealer;
    if (sealer === null) {
      const buf = Buffer.allocUnsafe(4 + frame.byteLength);
      buf.writeUInt32LE(frame.byteLength, 0);
      buf.set(frame, 4);
      const ok = socket.write(buf);
      return !ok && socket.writableLength > this.highWaterMark;
    }
    const size = 4 + frame.byteLength;
    if (this.#recordBytes + size > RECORD_BYTES) this.#sealRecord();
    if (size > RECORD_BYTES) {
      // Larger than a record: sealed alone, now.
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32LE(frame.byteLength, 0);
      for (const chunk of sealer.seal([length, frame])) socket.write(chunk);
    } else {
      // Copied into the record now (the caller may reuse `frame`), sealed at the end of the turn.
      const record = (this.#record ??= Buffer.allocUnsafe(RECORD_BYTES));
      record.writeUInt32LE(frame.byteLength, this.#recordBytes);
      record.set(frame, this.#recordBytes + 4);
      this.#recordBytes += size;
    }
    return socket.writableLength + this.#recordBytes > this.highWaterMark;
  }

  /** Seals the frames gathered so far as one record and hands it to the socket. */
  #sealRecord(): void {
    const n = this.#recordBytes;
    if (n === 0 || this.#sealer === null) return;
    this.#recordBytes = 0;
    // The cipher reads the plaintext before seal() returns: the record buffer is reused.
    for (const chunk of this.#sealer.seal([this.#record!.subarray(0, n)])) this.#socket.write(chunk);
  }

  readonly #endTurn = (): void => {
    this.#corked = false;
    const socket = this.#socket;
    if (socket.destroyed) return;
    try {
      this.#sealRecord();
    } catch (err) {
      // Only a connection that used up its nonces (2^53 records) gets here.
      this.close(err as Error);
      return;
    }
    socket.uncork();
    // Senders may have waited on the record's bytes, which no 'drain' will report.
    if (!socket.writableNeedDrain) this.writable();
  };

  protected inboxDrained(): void {
    if (this.#paused && this.inboxBytes <= this.highWaterMark) { this.#paused = false; this.#socket.resume(); }
  }

  protected teardown(reason?: Error): void {
    this.#clearTimer();
    const socket = this.#socket;
    if (reason !== undefined || this.#phase !== 'open') { this.#wipe(); socket.destroy(); return; }
    // Orderly: what was sent still goes out; whatever arrives now is discarded.
    try { this.#sealRecord(); } catch { /* nonces used up: what is left cannot be sent */ }
    this.#wipe();
    socket.end();
    if (this.#paused) { this.#paused = false; socket.resume(); }
    this.#graceTimer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    this.#graceTimer.unref();
  }
}

function connectSocket(o: Resolved): { socket: net.Socket; connectEvent: string } {
  if (o.tls !== undefined) {
    const socket = tls.connect({ ...o.tls, host: o.host, port: o.port, highWaterMark: o.highWaterMark } as tls.ConnectionOptions);
    return { socket, connectEvent: 'secureConnect' };
  }
  return { socket: net.connect({ host: o.host, port: o.port, highWaterMark: o.highWaterMark } as net.NetConnectOpts), connectEvent: 'connect' };
}

/**
 * Connects to a node listening with {@link listenTcp} and authenticates.
 * Resolves with the transport once both sides proved they hold the secret;
 * rejects with 'AUTH_FAILED' (or 'IO_ERROR' when the socket could not connect).
 */
export async function connectTcp(options: ConnectTcpOptions): Promise<Transport> {
  const o = resolveOptions(options, false);
  const { socket, connectEvent } = connectSocket(o);
  const t = new TcpTransport(socket, 'client', o);
  socket.once(connectEvent, () => t.start());
  await t.ready;
  return t;
}

/**
 * Listens for nodes that connect with {@link connectTcp}. Each connection that
 * authenticates is handed to `onConnection`; one that fails is closed, reported
 * to `onConnectionError`, and the listener goes on serving.
 */
export async function listenTcp(options: ListenTcpOptions, onConnection: (transport: Transport) => void): Promise<TcpListener> {
  const o = resolveOptions(options, true);
  if (typeof onConnection !== 'function') throw TwinpageError.invalidArgument('onConnection must be a function');
  const onError = options.onConnectionError;
  if (onError !== undefined && typeof onError !== 'function') throw TwinpageError.invalidArgument('onConnectionError must be a function');
  const live = new Set<TcpTransport>();
  let closing: Promise<void> | null = null;

  const accept = (socket: net.Socket) => {
    const t = new TcpTransport(socket, 'server', o);
    live.add(t);
    t.onClose(() => live.delete(t));
    t.start();
    t.ready.then(
      () => {
        try { onConnection(t); } catch (err) { t.close(err instanceof Error ? err : new Error(String(err))); }
      },
      (err: Error) => { live.delete(t); if (closing === null) onError?.(err); },
    );
  };

  let server: net.Server;
  if (o.tls !== undefined) {
    const s = tls.createServer({ ...o.tls, highWaterMark: o.highWaterMark } as tls.TlsOptions, accept);
    s.on('tlsClientError', (err: Error) => closing === null && onError?.(TwinpageError.authFailed(`TLS handshake failed: ${err.message}`, err)));
    server = s;
  } else {
    server = net.createServer({ highWaterMark: o.highWaterMark } as net.ServerOpts, accept);
  }

  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error) => reject(TwinpageError.ioError(`could not listen on ${o.host}:${o.port}: ${err.message}`, err));
    server.once('error', failed);
    server.listen(o.port, o.host, () => { server.off('error', failed); resolve(); });
  });
  server.on('error', () => { /* after listening, errors belong to connections */ });

  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const t of live) t.close();
        live.clear();
      });
      return closing;
    },
  };
}
