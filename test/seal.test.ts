// Sealed frames between nodes: the key derivation against RFC 5869's vectors,
// the AEAD wrapper against the platform's AES-256-GCM, rekeying, and what a
// man in the middle can do: read (a recording proxy between two `twinpage
// serve` processes sees no page bytes; with --insecure-plaintext it does), and
// alter, forge, replay or reorder frames (a tampering proxy: the link closes
// with AUTH_FAILED, nothing is applied, and after healing verify is clean;
// in plaintext the same forgery is applied, so the test can fail). Also the
// plaintext/sealed agreement, TLS (mutual) with sealing kept on, serve's
// refusal of a loose secret file, its TLS flags, and its control socket,
// owner-only from the moment it exists.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TwinpageError } from '../bindings/errors.js';
import { openMemory, MemoryStore, type Memory } from '../bindings/index.js';
import { Mirror } from '../bindings/mirror/pair.js';
import { encodeFrame as encodeMessage, decodeFrame, MessageType, type Message } from '../bindings/messages.js';
import type { Transport } from '../bindings/mirror/transports/transport.js';
import {
  listenTcp, connectTcp, encodeFrame as frameBytes, FrameReader, type TcpCommonOptions,
} from '../bindings/mirror/transports/tcp.js';
import {
  FrameOpener, FrameSealer, hkdfSha256, maxSealedRecord, nextKey, recordPlaintext, sealNonce, sessionKeys, SEAL_TAG_BYTES,
} from '../bindings/mirror/transports/seal.js';
import { listenOwnerOnly } from '../bindings/cli/owner-socket.js';
import { CLI, NodeProcess } from './pair-process.js';

// --- helpers --------------------------------------------------------------------

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** The next turn of the event loop: frames sent before it and after it go in different records. */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const SECRET = 'correct horse battery staple';

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function codeOf(err: unknown): string {
  if (err instanceof TwinpageError) return err.code;
  return `not a TwinpageError: ${String(err)}`;
}

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { return codeOf(err); }
  return 'no error';
}

function closeOf(t: Transport): Promise<Error | undefined> {
  return new Promise((resolve) => t.onClose(resolve));
}

/** What AES-256-GCM gives for `plain` straight from the platform: [ciphertext, tag]. */
function platformSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): [Buffer, Buffer] {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return [body, c.getAuthTag()];
}

const lengthBytes = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n, 0); return b; };

// --- key derivation and AEAD -----------------------------------------------------

const k = suite('seal: key derivation and the AEAD wrapper');

k('hkdfSha256 gives RFC 5869 test cases 1 to 3 (SHA-256)', () => {
  // Case 1: basic.
  assert.equal(hkdfSha256(new Uint8Array(22).fill(0x0b), range(0x00, 0x0c), range(0xf0, 0xf9), 42),
    hex('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865'));
  // Case 2: longer inputs and output.
  assert.equal(hkdfSha256(range(0x00, 0x4f), range(0x60, 0xaf), range(0xb0, 0xff), 82),
    hex(`b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c
         59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71
         cc30c58179ec3e87c14c01d5c1f3434f1d87`));
  // Case 3: no salt, no info.
  assert.equal(hkdfSha256(new Uint8Array(22).fill(0x0b), new Uint8Array(0), new Uint8Array(0), 42),
    hex('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8'));
});

k('session keys: HKDF of the secret, salted with both nonces, the direction and both node ids in the info', () => {
  const secret = new TextEncoder().encode(SECRET);
  const cn = new Uint8Array(randomBytes(32));
  const sn = new Uint8Array(randomBytes(32));
  const keys = sessionKeys(secret, cn, sn, 'node-a', 'node-b');
  // The layout the header of seal.ts draws, built by hand.
  const info = (side: string) => Buffer.concat([
    Buffer.from('twinpage-seal-v1'), Buffer.from(side),
    Buffer.from([6, 0]), Buffer.from('node-a'), Buffer.from([6, 0]), Buffer.from('node-b'),
  ]);
  const salt = Buffer.concat([cn, sn]);
  assert.equal(keys.client, hkdfSha256(secret, salt, info('client'), 32));
  assert.equal(keys.server, hkdfSha256(secret, salt, info('server'), 32));
  assert.not.equal(keys.client, keys.server, 'one key per direction');
  // Every input counts.
  const others = [
    sessionKeys(new TextEncoder().encode(SECRET + '!'), cn, sn, 'node-a', 'node-b'),
    sessionKeys(secret, new Uint8Array(randomBytes(32)), sn, 'node-a', 'node-b'),
    sessionKeys(secret, cn, new Uint8Array(randomBytes(32)), 'node-a', 'node-b'),
    sessionKeys(secret, sn, cn, 'node-a', 'node-b'),
    sessionKeys(secret, cn, sn, 'node-b', 'node-a'),
    sessionKeys(secret, cn, sn, 'node-a', 'node-c'),
  ];
  for (const o of others) { assert.not.equal(o.client, keys.client); assert.not.equal(o.server, keys.server); }
  // The next epoch's key: HKDF of the current one with the epoch in the info.
  const info1 = Buffer.concat([Buffer.from('twinpage-rekey-v1'), Buffer.from([1, 0, 0, 0])]);
  assert.equal(nextKey(keys.client, 1), hkdfSha256(keys.client, new Uint8Array(0), info1, 32));
  assert.not.equal(nextKey(keys.client, 1), nextKey(keys.client, 2));
});

/** The wire bytes of one record holding `frames`. */
const sealRecord = (s: FrameSealer, ...frames: Uint8Array[]) => Buffer.concat(s.seal([recordPlaintext(frames)]));
/** What follows a record's length prefix: what an opener takes. */
const body = (wire: Buffer) => wire.subarray(4);

k('a record is length | AES-256-GCM of its frames (each u32 length | bytes) | tag, exactly what createCipheriv gives with nonce epoch | sequence', () => {
  const key = new Uint8Array(randomBytes(32));
  const sealer = new FrameSealer(key);
  const opener = new FrameOpener(key);
  const records = [[0], [1], [15, 16, 17], [4096], [70000], [3, 0, 4096, 100]];
  records.forEach((sizes, seq) => {
    const frames = sizes.map((n) => new Uint8Array(randomBytes(n)));
    const wire = sealRecord(sealer, ...frames);
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32LE(0, 0);
    nonce.writeUInt32LE(seq, 4);
    nonce.writeUInt32LE(0, 8);
    assert.equal(sealNonce(0, seq), new Uint8Array(nonce));
    const plain = Buffer.concat(frames.flatMap((f) => [lengthBytes(f.byteLength), Buffer.from(f)]));
    const [ct, tag] = platformSeal(key, nonce, lengthBytes(plain.byteLength + 16), plain);
    assert.equal(new Uint8Array(wire), new Uint8Array(Buffer.concat([lengthBytes(plain.byteLength + 16), ct, tag])), `record ${seq} of ${sizes}`);
    const opened = opener.open(body(wire));
    assert.is(opened.length, frames.length);
    opened.forEach((f, i) => { assert.is(f.constructor, Uint8Array); assert.equal(f, frames[i]); });
  });
  assert.is(sealer.sequence, records.length);
  assert.is(opener.sequence, records.length);
  // The pieces given to seal() are one plaintext: cut anywhere, the same record.
  const a = new FrameSealer(key);
  const b = new FrameSealer(key);
  const plain = recordPlaintext([new Uint8Array(5000).fill(1), Uint8Array.of(2)]);
  assert.equal(new Uint8Array(Buffer.concat(a.seal([plain.subarray(0, 7), plain.subarray(7, 4000), plain.subarray(4000)]))), new Uint8Array(Buffer.concat(b.seal([plain]))));
  // A sequence past 2^32 goes in the nonce's upper word.
  assert.equal(sealNonce(7, 2 ** 32 + 5), hex('07000000 05000000 01000000'));
});

k('a record altered, truncated, replayed, reordered, dropped, or from the other direction fails with AUTH_FAILED; one that authenticates but does not tile is BAD_FRAME', async () => {
  const keys = sessionKeys(new TextEncoder().encode(SECRET), new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), 'a', 'b');
  const frames = Array.from({ length: 6 }, (_, i) => new Uint8Array(100).fill(i));
  const wire = (() => { const s = new FrameSealer(keys.client); return frames.map((f) => body(sealRecord(s, f))); })();
  const fresh = () => new FrameOpener(keys.client);
  const fails = (steps: Uint8Array[], what: string) => {
    const o = fresh();
    let failure = '';
    for (const w of steps) { try { o.open(w); } catch (err) { failure = codeOf(err); break; } }
    assert.is(failure, 'AUTH_FAILED', what);
  };
  // In order: all open.
  const o = fresh();
  wire.forEach((w, i) => assert.equal(o.open(w), [frames[i]]));
  for (const at of [0, 3, 50, 103, 104, 119]) {
    const bad = Uint8Array.from(wire[0]!);
    bad[at]! ^= 0x01;
    fails([bad], `bit flipped at ${at}`);
  }
  fails([wire[0]!.subarray(0, 60)], 'truncated');
  fails([wire[0]!.subarray(0, 10)], 'shorter than a tag');
  fails([wire[0]!, wire[0]!], 'replayed');
  fails([wire[0]!, wire[2]!], 'one dropped');
  fails([wire[1]!, wire[0]!], 'reordered');
  fails([body(sealRecord(new FrameSealer(keys.server), frames[0]!))], 'sealed for the other direction');
  // After a failure the opener refuses the next good record too.
  const broken = fresh();
  assert.is(await code(() => broken.open(wire[1]!)), 'AUTH_FAILED');
  assert.is(await code(() => broken.open(wire[0]!)), 'AUTH_FAILED');
  // Authentic but malformed (only a broken peer seals these): BAD_FRAME.
  for (const plain of [Uint8Array.of(10, 0, 0, 0, 1, 2), Uint8Array.of(0, 0), new Uint8Array(0)]) {
    const s = new FrameSealer(keys.client);
    assert.is(await code(() => fresh().open(body(Buffer.concat(s.seal([plain]))))), 'BAD_FRAME', `plaintext ${plain.length} bytes`);
  }
});

k('rekeying: by records and by bytes, records keep opening across many epochs; a record sealed under the wrong epoch fails', async () => {
  const key = new Uint8Array(randomBytes(32));
  for (const limits of [{ records: 3 }, { bytes: 10000 }, { records: 1 }]) {
    const s = new FrameSealer(key, limits);
    const o = new FrameOpener(key, limits);
    for (let i = 0; i < 40; i++) {
      const f = new Uint8Array(4096).fill(i);
      assert.equal(o.open(body(sealRecord(s, f))), [f], `record ${i} with ${JSON.stringify(limits)}`);
    }
    assert.ok(s.epoch >= 13, `${JSON.stringify(limits)}: ${s.epoch} epochs`);
    assert.is(o.epoch, s.epoch);
  }
  // Record 3 under { records: 3 } is sealed with key(epoch 1) and nonce (1, 3): checked against the platform.
  const s = new FrameSealer(key, { records: 3 });
  for (let i = 0; i < 3; i++) sealRecord(s, Uint8Array.of(i));
  assert.is(s.epoch, 1);
  const plain = recordPlaintext([Uint8Array.of(3, 3, 3)]);
  const [ct, tag] = platformSeal(nextKey(key, 1), sealNonce(1, 3), lengthBytes(7 + 16), plain);
  assert.equal(new Uint8Array(Buffer.concat(s.seal([plain]))), new Uint8Array(Buffer.concat([lengthBytes(23), ct, tag])));
  // An opener that does not rekey (still at epoch 0) refuses record 3, sealed under epoch 1.
  const s2 = new FrameSealer(key, { records: 3 });
  const o2 = new FrameOpener(key);
  for (let i = 0; i < 3; i++) o2.open(body(sealRecord(s2, Uint8Array.of(i))));
  assert.is(await code(() => o2.open(body(sealRecord(s2, Uint8Array.of(3))))), 'AUTH_FAILED');
  // And the reverse: a sealer that does not rekey, an opener that does.
  const s3 = new FrameSealer(key);
  const o3 = new FrameOpener(key, { records: 3 });
  for (let i = 0; i < 3; i++) o3.open(body(sealRecord(s3, Uint8Array.of(i))));
  assert.is(await code(() => o3.open(body(sealRecord(s3, Uint8Array.of(3))))), 'AUTH_FAILED');
  assert.is(await code(() => new FrameSealer(key, { records: 0 })), 'INVALID_ARGUMENT');
  assert.is(await code(() => new FrameSealer(new Uint8Array(16))), 'INVALID_ARGUMENT');
});

k.run();

// --- a proxy the tests control ------------------------------------------------------

/**
 * What the proxy does with each frame from the client (the connecting end) to
 * the server, after the two handshake frames: the bytes to forward instead.
 */
type Tamper = (wire: Buffer, index: number) => Buffer[];

/** A TCP proxy on loopback: forwards both ways, records every byte, and passes client-to-server frames through `tamper`. */
class Proxy {
  /** Every chunk, both directions, in arrival order. */
  readonly captured: Buffer[] = [];
  /** The chunks of each direction. */
  readonly fromClient: Buffer[] = [];
  readonly fromServer: Buffer[] = [];
  tamper: Tamper | null = null;
  readonly #server: net.Server;
  readonly #live = new Set<net.Socket>();
  port = 0;

  constructor(readonly target: number) {
    this.#server = net.createServer((c) => this.#accept(c));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this;
  }

  get capture(): Buffer { return Buffer.concat(this.captured); }

  #accept(c: net.Socket): void {
    const up = net.connect(this.target, '127.0.0.1');
    for (const s of [c, up]) { this.#live.add(s); s.on('close', () => this.#live.delete(s)); s.on('error', () => {}); }
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    up.on('data', (d: Buffer) => { this.#record(d, this.fromServer); c.write(d); });
    const tamper = this.tamper;
    if (tamper === null) {
      c.on('data', (d: Buffer) => { this.#record(d, this.fromClient); up.write(d); });
      return;
    }
    // Cut the client's stream into frames (u32 LE length | bytes) to tamper with them.
    const reader = new FrameReader(64 << 20);
    let index = -2; // the hello and the proof go through untouched
    c.on('data', (d: Buffer) => {
      this.#record(d, this.fromClient);
      reader.push(d);
      for (let f = reader.next(); f !== null; f = reader.next()) {
        const wire = Buffer.from(frameBytes(f));
        if (index < 0) up.write(wire);
        else for (const out of tamper(wire, index)) up.write(out);
        index++;
      }
    });
  }

  #record(d: Buffer, lane: Buffer[]): void {
    const copy = Buffer.from(d);
    this.captured.push(copy);
    lane.push(copy);
  }

  async close(): Promise<void> {
    for (const s of this.#live) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** No 64-byte run of `page` occurs anywhere in `capture`. Returns the offset of the first that does, or -1. */
function leakedWindow(capture: Buffer, page: Uint8Array): number {
  for (let i = 0; i + 64 <= page.byteLength; i++) if (capture.indexOf(page.subarray(i, i + 64)) >= 0) return i;
  return -1;
}

// --- the sealed TCP transport ------------------------------------------------------

const t = suite('sealed TCP transport');

interface Link { server: Transport; client: Transport; done(): Promise<void> }

async function link(server: Partial<TcpCommonOptions> = {}, client: Partial<TcpCommonOptions> = {}, via?: (port: number) => Promise<Proxy>): Promise<Link & { proxy?: Proxy }> {
  let accepted!: (t: Transport) => void;
  const got = new Promise<Transport>((r) => { accepted = r; });
  const listener = await listenTcp({ secret: SECRET, nodeId: 'server', ...server }, (x) => accepted(x));
  const proxy = via ? await via(listener.port) : undefined;
  const c = await connectTcp({ port: proxy?.port ?? listener.port, secret: SECRET, nodeId: 'client', ...client });
  const s = await got;
  return { server: s, client: c, proxy, done: async () => { c.close(); s.close(); await listener.close(); await proxy?.close(); } };
}

/** Sends `frames` one way (each in a turn of its own when `turns`, so each its own record) and checks what arrives. */
async function stream(from: Transport, to: Transport, frames: Uint8Array[], turns = false): Promise<void> {
  const got: Uint8Array[] = [];
  to.onFrame((f) => got.push(f));
  for (const f of frames) { await from.send(f); if (turns) await nextTurn(); }
  await until(() => got.length === frames.length, `${frames.length} frames`);
  got.forEach((f, i) => assert.equal(f, frames[i], `frame ${i}`));
}

t('nothing of a frame is readable on the wire; with insecurePlaintext on both ends it is (so the check can fail)', async () => {
  const pages = Array.from({ length: 8 }, () => new Uint8Array(randomBytes(4096)));
  for (const plaintext of [false, true]) {
    const l = await link({ insecurePlaintext: plaintext }, { insecurePlaintext: plaintext }, (port) => new Proxy(port).start());
    await stream(l.client, l.server, pages);
    await stream(l.server, l.client, pages);
    const capture = l.proxy!.capture;
    assert.ok(capture.byteLength > 2 * 8 * 4096, 'the proxy saw both streams');
    for (const p of pages) {
      if (plaintext) assert.ok(capture.indexOf(p) >= 0, 'plaintext: the page is on the wire');
      else assert.is(leakedWindow(capture, p), -1, 'sealed: no 64-byte run of a page is on the wire');
    }
    await l.done();
  }
});

t('a sealed end and a plaintext end refuse each other with AUTH_FAILED, on both sides, naming the option', async () => {
  for (const [serverPlain, clientPlain] of [[false, true], [true, false]]) {
    const errors: Error[] = [];
    const accepted: Transport[] = [];
    const listener = await listenTcp({ secret: SECRET, nodeId: 'server', insecurePlaintext: serverPlain, onConnectionError: (e) => errors.push(e) }, (x) => accepted.push(x));
    let clientErr: unknown;
    try { await connectTcp({ port: listener.port, secret: SECRET, nodeId: 'client', insecurePlaintext: clientPlain }); } catch (err) { clientErr = err; }
    assert.is(codeOf(clientErr), 'AUTH_FAILED');
    assert.match((clientErr as Error).message, /insecurePlaintext/);
    await until(() => errors.length === 1, 'the server-side refusal');
    assert.is(codeOf(errors[0]), 'AUTH_FAILED');
    assert.match(errors[0]!.message, /both ends must agree/);
    assert.is(accepted.length, 0);
    await listener.close();
  }
  assert.is(await code(connectTcp({ port: 1, secret: SECRET, nodeId: 'c', insecurePlaintext: 'yes' as never })), 'INVALID_ARGUMENT');
});

t('each connection has fresh nonces (never reused), and so its own keys: the same frames look different on the wire', async () => {
  const frame = new Uint8Array(4096).fill(7);
  const nonces = new Set<string>();
  const sealed = new Set<string>();
  for (let i = 0; i < 3; i++) {
    let proxy!: Proxy;
    const l = await link({}, {}, async (port) => (proxy = await new Proxy(port).start()));
    await stream(l.client, l.server, [frame]);
    await l.done();
    // Each side's first frame is its hello, the nonce at bytes 8 to 40; the client's third is the sealed record.
    const hello = (lane: Buffer[]) => { const r = new FrameReader(1 << 20); r.push(Buffer.concat(lane)); return [r.next()!, r.next()!, r.next()]; };
    const [clientHello, , sealedFrame] = hello(proxy.fromClient);
    const [serverHello] = hello(proxy.fromServer);
    nonces.add(Buffer.from(clientHello!.subarray(8, 40)).toString('hex'));
    nonces.add(Buffer.from(serverHello!.subarray(8, 40)).toString('hex'));
    assert.is(sealedFrame!.byteLength, 4 + 4096 + SEAL_TAG_BYTES);
    sealed.add(Buffer.from(sealedFrame!).toString('hex'));
    assert.is(leakedWindow(proxy.capture, frame), -1);
  }
  assert.is(nonces.size, 6, 'three connections, six nonces');
  assert.is(sealed.size, 3, 'the same frame sealed three ways');
});

t('rekeying on a live link: frames flow both ways across many epochs; an end that does not rekey is cut off with AUTH_FAILED', async () => {
  const rekey = { records: 3 };
  const l = await link({ rekey }, { rekey });
  const frames = Array.from({ length: 50 }, (_, i) => new Uint8Array(100 + i).fill(i));
  await stream(l.client, l.server, frames, true);
  await stream(l.server, l.client, frames, true);
  await stream(l.client, l.server, frames); // many frames per record
  await l.done();
  // The client rekeys every 3 records, the server never: record 3 is refused, nothing of it or after it delivered.
  const m = await link({}, { rekey });
  const got: number[] = [];
  m.server.onFrame((f) => got.push(f[0]!));
  const closed = closeOf(m.server);
  for (let i = 0; i < 5; i++) { await m.client.send(Uint8Array.of(i)).catch(() => {}); await nextTurn(); }
  const err = await closed;
  assert.is(codeOf(err), 'AUTH_FAILED');
  assert.match(err!.message, /record 3 \(key epoch 0\)/);
  assert.ok(got.length <= 3 && got.every((v, i) => v === i), `only records 0 to 2 may have been delivered: ${got}`);
  await m.done();
});

t('through a tampering proxy: a flipped bit, an injected frame, a replay, a reorder each close the link with AUTH_FAILED; the bad frame is never delivered', async () => {
  const cases: Record<string, Tamper> = {
    'flipped bit': (w, i) => { if (i === 2) w[4 + 10]! ^= 0x80; return [w]; },
    'injected frame': (w, i) => (i === 2 ? [Buffer.from(frameBytes(new Uint8Array(64).fill(0xee))), w] : [w]),
    'replayed frame': (w, i) => (i === 1 ? [w, w] : [w]),
    'reordered pair': (() => { let held: Buffer | null = null; return (w: Buffer, i: number) => { if (i === 1) { held = w; return []; } if (i === 2) return [w, held!]; return [w]; }; })(),
    'dropped frame': (w, i) => (i === 1 ? [] : [w]),
  };
  for (const [name, tamper] of Object.entries(cases)) {
    const l = await link({}, {}, async (port) => { const p = await new Proxy(port).start(); p.tamper = tamper; return p; });
    const got: number[] = [];
    l.server.onFrame((f) => got.push(f[0]!));
    const closed = closeOf(l.server);
    for (let i = 0; i < 6; i++) { await l.client.send(new Uint8Array(32).fill(i)).catch(() => {}); await nextTurn(); }
    const err = await closed;
    assert.is(codeOf(err), 'AUTH_FAILED', name);
    assert.ok(got.every((v, k) => v === k), `${name}: only frames in order were delivered (${got})`);
    assert.ok(got.length <= 2, `${name}: nothing from the bad frame on (${got})`);
    await l.done();
  }
});

t('a record length over the largest record is BAD_FRAME before anything is kept or decrypted; a frame over maxFrame in a record is BAD_FRAME', async () => {
  assert.is(maxSealedRecord(4096), (64 << 10) + 16);
  assert.is(maxSealedRecord(4 << 20), (4 << 20) + 4 + 16);
  const l = await link({ maxFrame: 4096 }, {}, async (port) => {
    const p = await new Proxy(port).start();
    // Record 0 as sent; record 1 replaced by a bare length prefix one over the largest record, and nothing after.
    p.tamper = (w, i) => (i === 1 ? [lengthBytes(maxSealedRecord(4096) + 1)] : [w]);
    return p;
  });
  const got: Uint8Array[] = [];
  l.server.onFrame((f) => got.push(f));
  const closed = closeOf(l.server);
  await l.client.send(new Uint8Array(4096).fill(1)); // exactly maxFrame: accepted
  await until(() => got.length === 1, 'the first frame');
  await l.client.send(new Uint8Array(10));
  assert.is(codeOf(await closed), 'BAD_FRAME');
  await l.done();
  assert.is(got.length, 1);
  // A peer with a larger maxFrame sends 5000 bytes: the record authenticates, the frame in it is refused.
  const m = await link({ maxFrame: 4096 }, {});
  const delivered: Uint8Array[] = [];
  m.server.onFrame((f) => delivered.push(f));
  const closed2 = closeOf(m.server);
  await m.client.send(new Uint8Array(5000));
  const err = await closed2;
  assert.is(codeOf(err), 'BAD_FRAME');
  assert.match(err!.message, /5000 bytes is over maxFrame \(4096\)/);
  assert.is(delivered.length, 0);
  await m.done();
});

t('TLS: sealing stays on under TLS (a plaintext end is refused); mutual TLS needs a client certificate the CA signed', async () => {
  const dir = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url));
  const key = readFileSync(dir + 'key.pem', 'utf8');
  const cert = readFileSync(dir + 'cert.pem', 'utf8');
  const ca = readFileSync(dir + 'ca.pem', 'utf8');
  const errors: Error[] = [];
  const listener = await listenTcp({
    secret: SECRET, nodeId: 'server', onConnectionError: (e) => errors.push(e),
    tls: { key, cert, ca, requestCert: true, rejectUnauthorized: true },
  }, () => {});
  // No client certificate: the TLS handshake fails (under TLS 1.3 the client learns it once it
  // has sent its hello, so it reports AUTH_FAILED with TLS's reason; under 1.2, IO_ERROR).
  let noCert: unknown;
  try { await connectTcp({ port: listener.port, secret: SECRET, nodeId: 'c', tls: { ca } }); } catch (err) { noCert = err; }
  assert.ok(['AUTH_FAILED', 'IO_ERROR'].includes(codeOf(noCert)), codeOf(noCert));
  assert.match((noCert as Error).message, /certificate/);
  await until(() => errors.length === 1, 'the server refused the client');
  assert.is(codeOf(errors[0]), 'AUTH_FAILED');
  assert.match(errors[0]!.message, /TLS handshake failed/);
  // A client certificate, but in plaintext: refused by the sealing server inside TLS.
  assert.is(await code(connectTcp({ port: listener.port, secret: SECRET, nodeId: 'c', tls: { ca, key, cert }, insecurePlaintext: true })), 'AUTH_FAILED');
  await listener.close();
  // Mutual TLS and sealing: frames flow.
  const tlsServer = { tls: { key, cert, ca, requestCert: true, rejectUnauthorized: true } };
  const l = await link(tlsServer, { tls: { ca, key, cert } });
  await stream(l.client, l.server, [new Uint8Array(5000).fill(5), Uint8Array.of(1)]);
  await stream(l.server, l.client, [new Uint8Array(0)]);
  await l.done();
});

t.run();

// --- the pair through a tampering proxy: nothing applied, then healed -------------

const p = suite('a mirrored pair through a tampering proxy');

const PAGE = 4096;
const policies = [{ name: 'disk', maxSize: Infinity, durability: 'disk' as const }];

async function pairThrough(options: Partial<TcpCommonOptions> = {}) {
  const open = () => openMemory({ store: new MemoryStore(), pageSize: PAGE, cacheBytes: 64 * PAGE, flushIntervalMs: 0, policies });
  const primary: Memory = await open();
  const secondary: Memory = await open();
  const ms = new Mirror(secondary, { role: 'secondary' });
  const mp = new Mirror(primary, { role: 'primary', heartbeatMs: 50, timeoutMs: 3000 });
  const accepted: Transport[] = [];
  const listener = await listenTcp({ secret: SECRET, nodeId: secondary.nodeId, ...options }, (x) => { accepted.push(x); ms.attach(x); });
  const proxy = await new Proxy(listener.port).start();
  const connect = async () => {
    const before = accepted.length;
    mp.attach(await connectTcp({ port: proxy.port, secret: SECRET, nodeId: primary.nodeId, ...options }));
    await until(() => accepted.length === before + 1 && ms.sense().connected, 'the secondary connected');
    return accepted[before]!;
  };
  const done = async () => { mp.close(); ms.close(); await listener.close(); await proxy.close(); await primary.close(); await secondary.close(); };
  return { primary, secondary, mp, ms, proxy, connect, done };
}

const fill = (seed: number) => { const b = new Uint8Array(PAGE); for (let i = 0; i < PAGE; i++) b[i] = (seed * 131 + i * 7) & 255; return b; };

/** A page image with a valid XXH3 checksum in a WRITE_PAGE frame, encoded by the project's codec. */
function forgedWritePage(hash: (b: Uint8Array) => bigint, blockId: string, page: number, data: Uint8Array, sequence: number, generation: bigint, lsn: number): Uint8Array {
  return encodeMessage({ type: MessageType.WRITE_PAGE, blockId, page, lsn, checksum: hash(data), copy: 'message', data }, { sequence, generation }, hash);
}

/** Client-to-server frames that carry a page (sealed: by their size alone). */
const carriesPage = (w: Buffer) => w.byteLength > 4 + PAGE;

p('a flipped bit, a forged frame with a valid checksum, a replayed frame, a reordered pair: AUTH_FAILED, nothing applied; healed, verify finds 0 differences', async () => {
  for (const attack of ['flipped bit', 'forged frame', 'replayed frame', 'reordered pair'] as const) {
    const { primary, secondary, mp, proxy, connect, done } = await pairThrough();
    const hash = (b: Uint8Array) => primary.core.checksum(b);
    await connect();
    const b = await primary.allocate(4 * PAGE);
    for (let i = 0; i < 4; i++) await primary.write(b.id, i * PAGE, fill(i));
    const before = await secondary.read(b.id, 0, 4 * PAGE);
    assert.equal(before, await primary.read(b.id, 0, 4 * PAGE), `${attack}: in sync before`);
    // Arm the proxy for the next connection's first page-carrying frame: reconnect through it.
    let fired = false;
    let held: Buffer | null = null;
    proxy.tamper = (w) => {
      if (held !== null) { const out = [w, held]; held = null; return out; } // the next frame overtakes the held one
      if (fired || !carriesPage(w)) return [w];
      fired = true;
      switch (attack) {
        case 'flipped bit': { const x = Buffer.from(w); x[4 + 200]! ^= 0x04; return [x]; }
        case 'forged frame': return [Buffer.from(frameBytes(forgedWritePage(hash, b.id, b.base + 2, new Uint8Array(PAGE).fill(0x66), 1000, 0n, 1000))), w];
        case 'replayed frame': return [w, w];
        case 'reordered pair': held = w; return [];
      }
    };
    const tampered = await connect();
    const closed = closeOf(tampered);
    const write = primary.write(b.id, PAGE, new Uint8Array(PAGE).fill(0xab));
    const err = await closed;
    assert.instance(err, TwinpageError, attack);
    assert.is((err as TwinpageError).code, 'AUTH_FAILED', `${attack}: ${err?.message}`);
    await write; // the primary goes on degraded
    assert.equal(await secondary.read(b.id, 0, 4 * PAGE), before, `${attack}: nothing applied on the secondary`);
    // Heal: a clean link, the primary resyncs what was not acknowledged.
    proxy.tamper = null;
    await connect();
    await mp.resync();
    assert.equal((await mp.verify()).differences, [], `${attack}: verify after healing`);
    assert.equal(await secondary.read(b.id, 0, 4 * PAGE), await primary.read(b.id, 0, 4 * PAGE), `${attack}: the same bytes`);
    await done();
  }
});

p('the same forgery in plaintext (insecurePlaintext on both ends) is applied: the secondary takes the forged page', async () => {
  const { primary, secondary, proxy, connect, done } = await pairThrough({ insecurePlaintext: true });
  const hash = (b: Uint8Array) => primary.core.checksum(b);
  await connect();
  const b = await primary.allocate(4 * PAGE);
  await primary.write(b.id, 0, fill(1));
  const forged = new Uint8Array(PAGE).fill(0x66);
  // In plaintext the proxy reads the frames: it swaps the page of the next WRITE_PAGE, keeping its sequence.
  let swapped = false;
  proxy.tamper = (w) => {
    if (swapped || !carriesPage(w)) return [w];
    const f = decodeFrame(w.subarray(4), hash, { maxBody: 1 << 20 });
    const m = f.message as Message;
    if (m.type !== MessageType.WRITE_PAGE) return [w];
    swapped = true;
    return [Buffer.from(frameBytes(forgedWritePage(hash, m.blockId, m.page, forged, f.sequence, f.generation, m.lsn)))];
  };
  await connect();
  await primary.write(b.id, PAGE, new Uint8Array(PAGE).fill(0xab));
  assert.ok(swapped, 'the proxy swapped a page');
  await until(async () => (await secondary.read(b.id, PAGE, PAGE))[0] === 0x66, 'the forged page applied');
  assert.equal(await secondary.read(b.id, PAGE, PAGE), forged, 'plaintext: the forgery went through unnoticed');
  await done();
});

p.run();

// --- twinpage serve ---------------------------------------------------------------

const s = suite('twinpage serve: sealed by default, secret file, TLS flags, control socket');

interface Run { status: number | null; stdout: string; stderr: string }

function run(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ status, stdout, stderr });
    });
    child.stdin!.end();
  });
}

async function secretFile(dir: string, mode = 0o600): Promise<{ path: string; secret: string }> {
  const path = join(dir, 'secret');
  const secret = randomBytes(32).toString('base64');
  await writeFile(path, secret + '\n', { mode: 0o600 });
  await chmod(path, mode);
  return { path, secret };
}

/** Two serve processes, the primary connecting through a recording proxy. */
async function servePair(dir: string, extra: { primary?: string[]; secondary?: string[] } = {}) {
  const { path } = await secretFile(dir);
  const common = ['--secret-file', path, '--cache-mb', '4'];
  const secondary = new NodeProcess(['--dir', join(dir, 'b'), '--role', 'secondary', '--listen', '127.0.0.1:0', ...common, ...(extra.secondary ?? [])]);
  const { port } = await secondary.event('listening');
  const proxy = await new Proxy(port as number).start();
  const primary = new NodeProcess(['--dir', join(dir, 'a'), '--role', 'primary', '--peer', `127.0.0.1:${proxy.port}`, ...common, ...(extra.primary ?? [])]);
  return { primary, secondary, proxy };
}

s('a recording proxy between two serve processes sees no 64-byte run of any page written; with --insecure-plaintext it sees every page', async () => {
  for (const plaintext of [false, true]) {
    const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-'));
    const flag = plaintext ? ['--insecure-plaintext'] : [];
    const { primary, secondary, proxy } = await servePair(dir, { primary: flag, secondary: flag });
    try {
      await primary.event('connected');
      await secondary.event('connected');
      if (plaintext) assert.match(primary.stderr + secondary.stderr, /WARNING: --insecure-plaintext/);
      const alloc = await primary.send({ cmd: 'allocate', size: 16 * PAGE });
      assert.ok(alloc.ok, JSON.stringify(alloc));
      const id = (alloc.block as { id: string }).id;
      const pages = Array.from({ length: 16 }, () => new Uint8Array(randomBytes(PAGE)));
      for (let i = 0; i < pages.length; i++) {
        const r = await primary.send({ cmd: 'write', block: id, offset: i * PAGE, data: Buffer.from(pages[i]!).toString('base64') });
        assert.ok(r.ok, JSON.stringify(r));
      }
      // On the secondary (disk durability: acknowledged there before the write returned).
      const back = await secondary.send({ cmd: 'read', block: id, offset: 0, length: 16 * PAGE });
      assert.equal(new Uint8Array(Buffer.from(back.data as string, 'base64')), new Uint8Array(Buffer.concat(pages)));
      const capture = proxy.capture;
      assert.ok(capture.byteLength > 16 * PAGE, `the proxy saw the stream (${capture.byteLength} bytes)`);
      pages.forEach((page, i) => {
        if (plaintext) assert.ok(capture.indexOf(page) >= 0, `plaintext: page ${i} is on the wire`);
        else assert.is(leakedWindow(capture, page), -1, `sealed: no 64-byte run of page ${i} on the wire`);
      });
    } finally {
      await primary.close().catch(() => primary.kill());
      await secondary.close().catch(() => secondary.kill());
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
});

s('a node with --insecure-plaintext and one without refuse each other (auth-failed, naming the option)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-'));
  const { primary, secondary, proxy } = await servePair(dir, { primary: ['--insecure-plaintext'] });
  try {
    const e = await primary.event('auth-failed');
    assert.match(String(e.reason), /insecurePlaintext/);
    assert.not.ok(secondary.events.some((x) => x.event === 'connected'));
  } finally {
    await primary.close().catch(() => primary.kill());
    await secondary.close().catch(() => secondary.kill());
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
});

s('a secret file the group or others can read is refused (exit 1, the chmod to run), and the secret is never printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-'));
  try {
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      const { path, secret } = await secretFile(dir, mode);
      const r = await run('serve', '--dir', join(dir, 'data'), '--role', 'primary', '--peer', '127.0.0.1:1', '--secret-file', path, '--no-stdin');
      assert.is(r.status, 1, `mode ${mode.toString(8)}: ${r.stderr}`);
      assert.match(r.stderr, /^twinpage: INVALID_ARGUMENT: the secret file .* is open to others \(mode 0\d\d\d\)/);
      assert.ok(r.stderr.includes(`chmod 600 ${path}`), r.stderr);
      assert.not.ok(r.stderr.includes(secret) || r.stdout.includes(secret), 'the secret is not printed');
      assert.is(r.stdout, '');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

s('TLS flags: a mutual-TLS pair of serve processes mirrors writes; flags that do not go together are usage errors', async () => {
  const fixtures = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-'));
  const tls = ['--tls-cert', fixtures + 'cert.pem', '--tls-key', fixtures + 'key.pem', '--tls-ca', fixtures + 'ca.pem'];
  const { primary, secondary, proxy } = await servePair(dir, { primary: tls, secondary: tls });
  try {
    await primary.event('connected');
    await secondary.event('connected');
    const alloc = await primary.send({ cmd: 'allocate', size: PAGE });
    const id = (alloc.block as { id: string }).id;
    const data = randomBytes(PAGE);
    assert.ok((await primary.send({ cmd: 'write', block: id, offset: 0, data: data.toString('base64') })).ok);
    const back = await secondary.send({ cmd: 'read', block: id, offset: 0, length: PAGE });
    assert.is(back.data, data.toString('base64'));
    assert.is(leakedWindow(proxy.capture, data), -1);
  } finally {
    await primary.close().catch(() => primary.kill());
    await secondary.close().catch(() => secondary.kill());
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
  const base = ['serve', '--dir', 'x', '--role', 'primary', '--secret-file', 'f'];
  for (const [args, message] of [
    [[...base, '--listen', 'h:1', '--tls-cert', 'c'], /--tls-cert and --tls-key go together/],
    [[...base, '--peer', 'h:1', '--tls-key', 'k'], /--tls-cert and --tls-key go together/],
    [[...base, '--listen', 'h:1', '--tls-ca', 'a'], /--tls-ca on the --listen side needs --tls-cert and --tls-key/],
    [[...base, '--listen', 'h:1', '--insecure-plaintext=yes'], /--insecure-plaintext takes no value/],
  ] as Array<[string[], RegExp]>) {
    const r = await run(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

// Unix file modes: on Windows the test is reported skipped (uvu counts it), not passed.
if (process.platform === 'win32') console.log('  skipped on Windows: the control socket is owner-only (Unix file modes)');
(process.platform === 'win32' ? s.skip : s)('the control socket is owner-only from the moment it exists: bound under a restrictive umask, not chmodded after', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-seal-'));
  const previous = process.umask(0o022); // a usual umask: a plain listen would make the socket 0755
  try {
    // A plain listen under this umask: the socket is open to others until someone chmods it.
    const plain = net.createServer();
    const plainPath = join(dir, 'plain.sock');
    plain.listen(plainPath);
    assert.is(statSync(plainPath).mode & 0o077, 0o055, 'control: a plain bind leaves group and others access');
    plain.close();
    // listenOwnerOnly: the bind happens inside the synchronous listen call, under umask 0177; the
    // socket's file exists, owner-only, as soon as that call returns, before any chmod could run.
    const server = net.createServer();
    const path = join(dir, 'control.sock');
    const listening = listenOwnerOnly(server, path);
    assert.is(statSync(path).mode & 0o777, 0o600, 'owner-only at the bind');
    assert.is(process.umask(0o022), 0o022, 'the umask is restored at once');
    await listening;
    assert.is(statSync(path).mode & 0o777, 0o600);
    await new Promise<void>((r) => server.close(() => r()));
    // And serve's own control socket.
    const { path: secret } = await secretFile(dir);
    const node = new NodeProcess(['--dir', join(dir, 'node'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', secret]);
    try {
      const e = await node.event('control');
      assert.is((await stat(e.path as string)).mode & 0o777, 0o600);
    } finally {
      await node.close().catch(() => node.kill());
    }
  } finally {
    process.umask(previous);
    await rm(dir, { recursive: true, force: true });
  }
});

s.run();
