// Transports: one behaviour suite run against every adapter (in-process,
// MessageChannel with Node- and browser-style ports, TCP, TCP over TLS, a
// fault wrapper with no faults), then what is particular to each: a real
// Worker, TCP authentication and framing, fault injection.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageChannel, Worker } from 'node:worker_threads';
import * as net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TwinpageError } from '../bindings/errors.js';
import { inProcessPair, type Transport } from '../bindings/mirror/transports/transport.js';
import { messagePortTransport, type MessagePortLike } from '../bindings/mirror/transports/message-port.js';
import {
  listenTcp, connectTcp, encodeFrame, encodeHello, decodeHello, authProof, FrameReader, NONCE_BYTES,
  type ListenTcpOptions, type TcpListener,
} from '../bindings/mirror/transports/tcp.js';
import { FrameSealer, recordPlaintext, sessionKeys } from '../bindings/mirror/transports/seal.js';
import { withFaults, mulberry32 } from '../bindings/mirror/transports/faulty.js';

// --- helpers --------------------------------------------------------------------

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { if (err instanceof TwinpageError) return err.code; throw err; }
  return 'no error';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function closeOf(t: Transport): Promise<Error | undefined> {
  return new Promise((resolve) => t.onClose(resolve));
}

/** Frame i of a test stream: its index in the first 4 bytes (when it fits), then a pattern. */
function makeFrame(i: number, size: number): Uint8Array {
  const f = new Uint8Array(size);
  for (let j = 0; j < size; j++) f[j] = (i * 31 + j * 7) & 255;
  if (size >= 4) new DataView(f.buffer).setUint32(0, i, true);
  return f;
}

function checkFrame(f: Uint8Array, i: number, size: number): void {
  if (f.byteLength !== size) assert.unreachable(`frame ${i}: ${f.byteLength} bytes, expected ${size}`);
  const want = makeFrame(i, size);
  for (let j = 0; j < size; j++) if (f[j] !== want[j]) assert.unreachable(`frame ${i}: byte ${j} differs`);
}

const indexOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(0, true);

const SECRET = 'correct horse battery staple';

// --- TLS material (test/fixtures/tls: a test CA and a node certificate it signed) ----

const TLS_DIR = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url));
const tlsMaterial = {
  key: readFileSync(TLS_DIR + 'key.pem', 'utf8'),
  cert: readFileSync(TLS_DIR + 'cert.pem', 'utf8'),
  ca: readFileSync(TLS_DIR + 'ca.pem', 'utf8'),
};

// --- pair factories ----------------------------------------------------------------

interface Pair { a: Transport; b: Transport; done(): Promise<void> }
interface Kind {
  name: string;
  make(options: { highWaterMark?: number }): Promise<Pair>;
  /** Bytes a sender may get taken while the receiver holds back, at highWaterMark 64 KiB (socket buffers count). */
  bound: number;
  /** Bytes the backpressure test tries to send. */
  total: number;
}

function nodePorts(): [MessagePortLike, MessagePortLike] {
  const { port1, port2 } = new MessageChannel();
  return [port1, port2];
}

/** Wraps a Node port so that only the browser's API is visible: addEventListener, start, postMessage, close. */
function browserStyle(port: MessagePortLike): MessagePortLike {
  const p = port as unknown as { addEventListener(t: string, l: (e: unknown) => void): void; start(): void; postMessage(m: unknown, t?: unknown): void; close(): void };
  return {
    postMessage: (m: unknown, t?: unknown) => p.postMessage(m, t),
    close: () => p.close(),
    start: () => p.start(),
    addEventListener: (type: string, l: (e: unknown) => void) => p.addEventListener(type, l),
  };
}

async function tcpPair(options: { highWaterMark?: number }, useTls: boolean): Promise<Pair> {
  let accepted!: (t: Transport) => void;
  const got = new Promise<Transport>((r) => { accepted = r; });
  const listener = await listenTcp({
    port: 0, secret: SECRET, nodeId: 'a', ...options,
    tls: useTls ? { key: tlsMaterial.key, cert: tlsMaterial.cert } : undefined,
  }, (t) => accepted(t));
  const b = await connectTcp({
    port: listener.port, secret: SECRET, nodeId: 'b', ...options,
    tls: useTls ? { ca: tlsMaterial.ca } : undefined,
  });
  const a = await got;
  return { a, b, done: async () => { a.close(); b.close(); await listener.close(); } };
}

const kinds: Kind[] = [
  { name: 'in-process', make: async (o) => { const [a, b] = inProcessPair(o); return { a, b, done: async () => a.close() }; }, bound: 256 << 10, total: 8 << 20 },
  {
    name: 'in-process through withFaults({})',
    make: async (o) => { const [a, b] = inProcessPair(o); return { a: withFaults(a), b: withFaults(b, { seed: 1 }), done: async () => a.close() }; },
    bound: 256 << 10, total: 8 << 20,
  },
  {
    name: 'MessageChannel',
    make: async (o) => { const [p, q] = nodePorts(); const a = messagePortTransport(p, o), b = messagePortTransport(q, o); return { a, b, done: async () => a.close() }; },
    bound: 256 << 10, total: 8 << 20,
  },
  {
    name: 'MessageChannel, browser-style ports',
    make: async (o) => {
      const [p, q] = nodePorts();
      const a = messagePortTransport(browserStyle(p), o), b = messagePortTransport(browserStyle(q), o);
      return { a, b, done: async () => a.close() };
    },
    bound: 256 << 10, total: 8 << 20,
  },
  { name: 'TCP 127.0.0.1', make: (o) => tcpPair(o, false), bound: 32 << 20, total: 64 << 20 },
  { name: 'TCP 127.0.0.1 over TLS', make: (o) => tcpPair(o, true), bound: 32 << 20, total: 64 << 20 },
];

// --- the shared behaviour suite ------------------------------------------------------

function transportSuite(kind: Kind) {
  const t = suite(`transport behaviour (${kind.name})`);

  t('order is kept over thousands of frames of random sizes, both ways at once', async () => {
    const { a, b, done } = await kind.make({});
    const rng = mulberry32(7);
    const n = 3000;
    const sizes = Array.from({ length: n }, () => (rng() < 0.05 ? Math.floor(rng() * 65536) : Math.floor(rng() * 2048)));
    const stream = async (from: Transport, to: Transport) => {
      let got = 0;
      const all = new Promise<void>((resolve, reject) => {
        to.onFrame((f) => {
          try { checkFrame(f, got, sizes[got]!); } catch (err) { reject(err); }
          if (++got === n) resolve();
        });
      });
      for (let i = 0; i < n; i++) await from.send(makeFrame(i, sizes[i]!));
      await all;
    };
    await Promise.all([stream(a, b), stream(b, a)]);
    await done();
  });

  t('the sender may reuse its buffer as soon as send returns', async () => {
    const { a, b, done } = await kind.make({});
    const got: Uint8Array[] = [];
    b.onFrame((f) => got.push(f));
    const buf = new Uint8Array(300);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) { buf.fill(i); sends.push(a.send(buf)); }
    buf.fill(255);
    await Promise.all(sends);
    await until(() => got.length === 200, 'all frames');
    got.forEach((f, i) => { assert.is(f.byteLength, 300); assert.ok(f.every((x) => x === i), `frame ${i} intact`); });
    await done();
  });

  t('frames sent before close arrive, then both ends see the close', async () => {
    const { a, b, done } = await kind.make({});
    const got: number[] = [];
    let closedAfter = -1;
    b.onFrame((f) => got.push(f[0]!));
    const bClosed = closeOf(b).then((err) => { closedAfter = got.length; return err; });
    const aClosed = closeOf(a);
    for (let i = 0; i < 10; i++) void a.send(Uint8Array.of(i));
    a.close();
    assert.ok(a.closed);
    assert.is(await aClosed, undefined);
    assert.is(await bClosed, undefined);
    assert.ok(b.closed);
    assert.equal(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.is(closedAfter, 10);
    await done();
  });

  t('send after close rejects with CLOSED on both ends; onClose fires once, even when set late', async () => {
    const { a, b, done } = await kind.make({});
    let calls = 0;
    a.onClose(() => calls++);
    b.close();
    a.close(); // idempotent from here on
    await until(() => a.closed, 'a closed');
    assert.is(await code(a.send(Uint8Array.of(1))), 'CLOSED');
    assert.is(await code(b.send(Uint8Array.of(1))), 'CLOSED');
    const late = await new Promise<Error | undefined>((r) => b.onClose(r));
    assert.is(late, undefined);
    await sleep(10);
    assert.is(calls, 1);
    await done();
  });

  t('a frame over maxFrame is refused with TOO_LARGE and the transport stays open', async () => {
    const { a, b, done } = await kind.make({});
    assert.is(await code(a.send(new Uint8Array((4 << 20) + 1))), 'TOO_LARGE');
    assert.not.ok(a.closed);
    const got = new Promise<Uint8Array>((r) => b.onFrame(r));
    await a.send(new Uint8Array(4 << 20).fill(3));
    const f = await got;
    assert.is(f.byteLength, 4 << 20);
    assert.is(f[(4 << 20) - 1], 3);
    await done();
  });

  t('backpressure: while the receiver holds back, sends wait; memory does not grow', async () => {
    const { a, b, done } = await kind.make({ highWaterMark: 64 << 10 });
    const size = 64 << 10;
    const n = kind.total / size;
    let sent = 0;
    const sender = (async () => { for (let i = 0; i < n; i++) { await a.send(makeFrame(i, size)); sent++; } })();
    // Wait until the sender stalls.
    let last = -1;
    let still = 0;
    const end = Date.now() + 8000;
    while (still < 4) {
      await sleep(40);
      if (sent === last) still++; else { still = 0; last = sent; }
      if (Date.now() > end) break;
    }
    assert.ok(sent < n, `the sender stalled (sent ${sent} of ${n})`);
    assert.ok(sent * size <= kind.bound, `taken ${sent * size} bytes, bound ${kind.bound}`);
    let got = 0;
    b.onFrame((f) => { if (indexOf(f) !== got) assert.unreachable(`frame ${indexOf(f)} at ${got}`); got++; });
    await sender;
    await until(() => got === n, 'every frame');
    await done();
  });

  t.run();
}

for (const kind of kinds) transportSuite(kind);

// --- MessagePort across a real Worker ------------------------------------------------

const mp = suite('MessagePort transport across a worker thread');

mp('a worker echoes thousands of frames in order; both ends address the same SharedArrayBuffer', async () => {
  const { port1, port2 } = new MessageChannel();
  const shared = new SharedArrayBuffer(64);
  const source = `
    const { workerData } = require('node:worker_threads');
    import(workerData.url).then(({ messagePortTransport }) => {
      const t = messagePortTransport(workerData.port, { shared: workerData.shared });
      Atomics.store(new Int32Array(t.shared), 0, 42);
      t.onFrame((f) => { t.send(f).catch(() => {}); });
    });`;
  const url = new URL('../bindings/mirror/transports/message-port.js', import.meta.url).href;
  const worker = new Worker(source, { eval: true, workerData: { url, port: port2, shared }, transferList: [port2 as never] });
  const exited = once(worker, 'exit');
  const t = messagePortTransport(port1, { shared, highWaterMark: 128 << 10 });
  assert.is(t.shared, shared);
  const rng = mulberry32(11);
  const n = 2000;
  const sizes = Array.from({ length: n }, () => Math.floor(rng() * 4096));
  let got = 0;
  const all = new Promise<void>((resolve, reject) => t.onFrame((f) => {
    try { checkFrame(f, got, sizes[got]!); } catch (err) { reject(err); }
    if (++got === n) resolve();
  }));
  for (let i = 0; i < n; i++) await t.send(makeFrame(i, sizes[i]!));
  await all;
  assert.is(Atomics.load(new Int32Array(shared), 0), 42);
  t.close(); // the worker's port closes, its event loop empties, it exits
  const [exitCode] = await Promise.race([exited, sleep(3000).then(() => { void worker.terminate(); return ['hung']; })]);
  assert.is(exitCode, 0);
});

mp('anything but a frame or a control message closes the transport with BAD_FRAME', async () => {
  const { port1, port2 } = new MessageChannel();
  const t = messagePortTransport(port1);
  const closed = closeOf(t);
  port2.postMessage({ hello: 'world' });
  const err = await closed;
  assert.instance(err, TwinpageError);
  assert.is((err as TwinpageError).code, 'BAD_FRAME');
  port2.close();
});

mp.run();

// --- TCP: authentication and framing -------------------------------------------------

const tcp = suite('TCP transport: authentication and framing');

interface Served { listener: TcpListener; accepted: Transport[]; errors: Error[]; done(): Promise<void> }

async function serve(extra: Partial<ListenTcpOptions> = {}): Promise<Served> {
  const accepted: Transport[] = [];
  const errors: Error[] = [];
  const listener = await listenTcp({ secret: SECRET, nodeId: 'server', onConnectionError: (e) => errors.push(e), ...extra }, (t) => accepted.push(t));
  return { listener, accepted, errors, done: () => listener.close() };
}

/** The listener still serves: a good client connects and a frame goes each way. */
async function goodClient(s: Served): Promise<void> {
  const before = s.accepted.length;
  const c = await connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'good' });
  assert.is(c.peerId, 'server');
  await until(() => s.accepted.length === before + 1, 'the good client accepted');
  const server = s.accepted[before]!;
  assert.is(server.peerId, 'good');
  const atServer = new Promise<Uint8Array>((r) => server.onFrame(r));
  const atClient = new Promise<Uint8Array>((r) => c.onFrame(r));
  await c.send(Uint8Array.of(1, 2, 3));
  await server.send(Uint8Array.of(4, 5));
  assert.equal(await atServer, Uint8Array.of(1, 2, 3));
  assert.equal(await atClient, Uint8Array.of(4, 5));
  c.close();
}

async function rawSocket(port: number): Promise<net.Socket> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  sock.on('error', () => {});
  sock.resume(); // read (and discard) what the server sends, so its close is seen
  await once(sock, 'connect');
  return sock;
}

/** Reads whole frames from a raw socket. */
function frames(sock: net.Socket): () => Promise<Uint8Array> {
  const reader = new FrameReader(1 << 20);
  const ready: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    reader.push(d);
    for (let f = reader.next(); f !== null; f = reader.next()) ready.push(f);
    wake?.();
  });
  return async () => {
    while (ready.length === 0) await new Promise<void>((r) => { wake = r; });
    return ready.shift()!;
  };
}

/** Authenticates by hand, as a client, on a raw socket; returns it with the sealer of what the client sends. */
async function handshakeByHand(port: number, secret: string, nodeId: string): Promise<{ sock: net.Socket; sealer: FrameSealer }> {
  const sock = await rawSocket(port);
  const next = frames(sock);
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  sock.write(encodeFrame(encodeHello(nodeId, nonce)));
  const hello = decodeHello(await next());
  assert.is(hello.nodeId, 'server');
  sock.write(encodeFrame(authProof(secret, 'client', nonce, hello.nonce, nodeId, hello.nodeId)));
  assert.equal(await next(), authProof(secret, 'server', hello.nonce, nonce, hello.nodeId, nodeId));
  const keys = sessionKeys(new TextEncoder().encode(secret), nonce, hello.nonce, nodeId, hello.nodeId);
  return { sock, sealer: new FrameSealer(keys.client) };
}

const socketClosed = (sock: net.Socket) => (sock.destroyed ? Promise.resolve() : once(sock, 'close').then(() => {}));

tcp('no secret on either side: refuses to listen or connect with INVALID_ARGUMENT', async () => {
  assert.is(await code(listenTcp({ nodeId: 'a' } as never, () => {})), 'INVALID_ARGUMENT');
  assert.is(await code(listenTcp({ nodeId: 'a', secret: '' }, () => {})), 'INVALID_ARGUMENT');
  assert.is(await code(connectTcp({ nodeId: 'b', port: 1, secret: new Uint8Array(0) })), 'INVALID_ARGUMENT');
  assert.is(await code(connectTcp({ nodeId: 'b', port: 1 } as never)), 'INVALID_ARGUMENT');
  assert.is(await code(connectTcp({ nodeId: '', port: 1, secret: 's' })), 'INVALID_ARGUMENT');
});

tcp('a wrong secret fails with AUTH_FAILED on both sides; no frame is delivered; the listener goes on', async () => {
  const s = await serve();
  assert.is(await code(connectTcp({ port: s.listener.port, secret: 'wrong', nodeId: 'mallory' })), 'AUTH_FAILED');
  await until(() => s.errors.length === 1, 'the server-side error');
  assert.is((s.errors[0] as TwinpageError).code, 'AUTH_FAILED');
  assert.is(s.accepted.length, 0);
  // The same by hand: a wrong proof followed by a frame; the frame never surfaces.
  const sock = await rawSocket(s.listener.port);
  const next = frames(sock);
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  sock.write(encodeFrame(encodeHello('mallory', nonce)));
  const hello = decodeHello(await next());
  sock.write(encodeFrame(authProof('guess', 'client', nonce, hello.nonce, 'mallory', hello.nodeId)));
  sock.write(encodeFrame(Uint8Array.of(6, 6, 6)));
  await socketClosed(sock);
  await until(() => s.errors.length === 2, 'the second error');
  assert.is((s.errors[1] as TwinpageError).code, 'AUTH_FAILED');
  assert.is(s.accepted.length, 0);
  await goodClient(s);
  await s.done();
});

tcp('a client that never proves (no secret) times out with AUTH_FAILED', async () => {
  const s = await serve({ authTimeoutMs: 150 });
  const sock = await rawSocket(s.listener.port);
  sock.write(encodeFrame(encodeHello('mute', new Uint8Array(randomBytes(NONCE_BYTES)))));
  await socketClosed(sock);
  assert.is((s.errors[0] as TwinpageError).code, 'AUTH_FAILED');
  assert.match(s.errors[0]!.message, /timed out/);
  // An empty proof is refused at once.
  const sock2 = await rawSocket(s.listener.port);
  sock2.write(encodeFrame(encodeHello('empty', new Uint8Array(randomBytes(NONCE_BYTES)))));
  sock2.write(encodeFrame(new Uint8Array(0)));
  await socketClosed(sock2);
  assert.is((s.errors[1] as TwinpageError).code, 'AUTH_FAILED');
  assert.is(s.accepted.length, 0);
  await goodClient(s);
  await s.done();
});

tcp('garbage instead of a hello, or a hello of another version: AUTH_FAILED', async () => {
  const s = await serve();
  const http = await rawSocket(s.listener.port);
  http.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await socketClosed(http);
  const junk = await rawSocket(s.listener.port);
  junk.write(encodeFrame(new Uint8Array(randomBytes(60))));
  await socketClosed(junk);
  const future = await rawSocket(s.listener.port);
  future.write(encodeFrame(encodeHello('future', new Uint8Array(randomBytes(NONCE_BYTES)), 2)));
  await socketClosed(future);
  const itself = await rawSocket(s.listener.port);
  itself.write(encodeFrame(encodeHello('server', new Uint8Array(randomBytes(NONCE_BYTES)))));
  await socketClosed(itself);
  await until(() => s.errors.length === 4, 'four errors');
  for (const e of s.errors) assert.is((e as TwinpageError).code, 'AUTH_FAILED');
  assert.ok(s.errors.some((e) => /version 2/.test(e.message)), 'the version is named');
  assert.is(s.accepted.length, 0);
  await goodClient(s);
  await s.done();
});

tcp('a replayed handshake fails: fresh nonces per connection', async () => {
  const s = await serve();
  // Record what a good client sends, through a relay.
  const recorded: Buffer[] = [];
  const relay = net.createServer((c) => {
    const up = net.connect(s.listener.port, '127.0.0.1');
    c.on('data', (d: Buffer) => { recorded.push(Buffer.from(d)); up.write(d); });
    up.pipe(c);
    c.on('error', () => {}); up.on('error', () => {});
    c.on('close', () => up.destroy()); up.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const c = await connectTcp({ port: (relay.address() as net.AddressInfo).port, secret: SECRET, nodeId: 'b' });
  await until(() => s.accepted.length === 1, 'the recorded connection');
  c.close();
  await new Promise<void>((r) => relay.close(() => r()));
  const handshake = Buffer.concat(recorded);
  assert.ok(handshake.byteLength > 40 + 32, 'hello and proof recorded');
  // Replay it, with a frame after it.
  const sock = await rawSocket(s.listener.port);
  sock.write(Buffer.concat([handshake, encodeFrame(Uint8Array.of(6, 6, 6))]));
  await socketClosed(sock);
  await until(() => s.errors.length === 1, 'the replay refused');
  assert.is((s.errors[0] as TwinpageError).code, 'AUTH_FAILED');
  assert.is(s.accepted.length, 1);
  await goodClient(s);
  await s.done();
});

tcp('frames cut into 1-byte TCP writes are reassembled', async () => {
  const s = await serve();
  const { sock, sealer } = await handshakeByHand(s.listener.port, SECRET, 'byhand');
  await until(() => s.accepted.length === 1, 'accepted');
  const server = s.accepted[0]!;
  assert.is(server.peerId, 'byhand');
  const got: Uint8Array[] = [];
  server.onFrame((f) => got.push(f));
  const sent = [makeFrame(0, 300), makeFrame(1, 0), makeFrame(2, 5), makeFrame(3, 257)];
  const bytes = Buffer.concat(sent.flatMap((f) => sealer.seal([recordPlaintext([f])])));
  for (let i = 0; i < bytes.byteLength; i++) {
    await new Promise<void>((r) => sock.write(bytes.subarray(i, i + 1), () => r()));
    if (i % 16 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  await until(() => got.length === 4, 'four frames');
  got.forEach((f, i) => checkFrame(f, i, sent[i]!.byteLength));
  sock.destroy();
  await s.done();
});

tcp('a declared length over maxFrame closes the connection at once with BAD_FRAME', async () => {
  const s = await serve({ maxFrame: 16 << 10 });
  // By hand: a length of 4 GiB - 1 and nothing after it.
  const { sock } = await handshakeByHand(s.listener.port, SECRET, 'byhand');
  await until(() => s.accepted.length === 1, 'accepted');
  const closed = closeOf(s.accepted[0]!);
  sock.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff));
  const err = await closed;
  assert.is((err as TwinpageError).code, 'BAD_FRAME');
  await socketClosed(sock);
  // A peer configured with a larger maxFrame sends a frame this one refuses.
  const big = await connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'big', maxFrame: 1 << 20 });
  await until(() => s.accepted.length === 2, 'accepted');
  const server = s.accepted[1]!;
  let delivered = 0;
  server.onFrame(() => delivered++);
  const serverClosed = closeOf(server);
  const clientClosed = closeOf(big);
  await big.send(new Uint8Array(64 << 10));
  assert.is(((await serverClosed) as TwinpageError).code, 'BAD_FRAME');
  await clientClosed;
  assert.is(delivered, 0);
  // The end of the stream inside a frame is a bad frame too.
  const { sock: cut } = await handshakeByHand(s.listener.port, SECRET, 'cut');
  await until(() => s.accepted.length === 3, 'accepted');
  const cutClosed = closeOf(s.accepted[2]!);
  cut.end(Uint8Array.of(100, 0, 0, 0, 1, 2, 3));
  assert.is(((await cutClosed) as TwinpageError).code, 'BAD_FRAME');
  await goodClient(s);
  await s.done();
});

tcp('closing the listener closes the connections it accepted', async () => {
  const s = await serve();
  const c = await connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'b' });
  const closed = closeOf(c);
  await until(() => s.accepted.length === 1, 'accepted');
  await s.done();
  assert.is(await closed, undefined);
  assert.is(await code(connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'b' })), 'IO_ERROR');
});

tcp('TLS: a client that does not trust the certificate cannot connect; the right secret is still required', async () => {
  const s = await serve({ tls: { key: tlsMaterial.key, cert: tlsMaterial.cert } });
  assert.is(await code(connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'b', tls: {} })), 'IO_ERROR');
  assert.is(await code(connectTcp({ port: s.listener.port, secret: 'wrong', nodeId: 'b', tls: { ca: tlsMaterial.ca } })), 'AUTH_FAILED');
  const c = await connectTcp({ port: s.listener.port, secret: SECRET, nodeId: 'b', tls: { ca: tlsMaterial.ca } });
  assert.is(c.peerId, 'server');
  c.close();
  await s.done();
});

tcp.run();

// --- fault injection -------------------------------------------------------------

const faults = suite('fault injection (withFaults)');

/** Sends n indexed frames through a faulty sender and returns the indices that arrived, in arrival order. */
async function runFaulty(plan: Parameters<typeof withFaults>[1], n: number, side: 'send' | 'receive') {
  const [a, b] = inProcessPair();
  const fa = side === 'send' ? withFaults(a, plan) : a;
  const fb = side === 'receive' ? withFaults(b, plan) : b;
  const got: number[] = [];
  fb.onFrame((f) => got.push(indexOf(f)));
  for (let i = 0; i < n; i++) await fa.send(makeFrame(i, 8));
  let last = -1;
  while (got.length !== last) { last = got.length; await sleep(40); }
  const stats = (side === 'send' ? (fa as ReturnType<typeof withFaults>).stats.send : (fb as ReturnType<typeof withFaults>).stats.receive);
  a.close();
  return { got, stats: { ...stats } };
}

function outOfOrder(seq: number[]): number {
  let k = 0;
  for (let i = 1; i < seq.length; i++) if (seq[i]! < seq[i - 1]!) k++;
  return k;
}

faults('drops, duplicates and reorders happen at the configured rates, the same for the same seed', async () => {
  const n = 10000;
  const plan = { drop: 0.1, duplicate: 0.05, reorder: 0.05, seed: 42 };
  const one = await runFaulty(plan, n, 'send');
  const near = (x: number, p: number, what: string) => assert.ok(Math.abs(x / n - p) < 0.015, `${what}: ${x} of ${n}, expected about ${p * n}`);
  assert.is(one.stats.frames, n);
  near(one.stats.dropped, 0.1, 'dropped');
  near(one.stats.duplicated, 0.05 * 0.9, 'duplicated');
  near(one.stats.reordered, 0.05 * 0.9, 'reordered');
  assert.is(one.got.length, n - one.stats.dropped + one.stats.duplicated);
  assert.ok(outOfOrder(one.got) > 0.03 * n, 'frames arrive out of order');
  assert.is(new Set(one.got).size, n - one.stats.dropped);
  const two = await runFaulty(plan, n, 'send');
  assert.equal(two.got, one.got, 'same seed, same faults');
  const other = await runFaulty({ ...plan, seed: 43 }, n, 'send');
  assert.not.equal(other.got, one.got, 'another seed, other faults');
});

faults('faults on received frames; delays keep order', async () => {
  const r = await runFaulty({ drop: 0.2, seed: 5, direction: 'receive' }, 5000, 'receive');
  assert.ok(Math.abs(r.got.length / 5000 - 0.8) < 0.03, `received ${r.got.length} of 5000`);
  assert.is(outOfOrder(r.got), 0);
  const started = Date.now();
  const d = await runFaulty({ delayMs: [2, 8], seed: 9 }, 200, 'send');
  assert.is(d.stats.delayed, 200);
  assert.equal(d.got, Array.from({ length: 200 }, (_, i) => i));
  assert.ok(Date.now() - started >= 8, 'frames were delayed');
  // The direction option: a send-only plan leaves received frames alone.
  const untouched = await runFaulty({ drop: 1, direction: 'send', seed: 1 }, 100, 'receive');
  assert.is(untouched.got.length, 100);
});

faults('a partition drops frames in both directions until it heals', async () => {
  const [a, b] = inProcessPair();
  const fa = withFaults(a, { seed: 3 });
  const atA: number[] = [];
  const atB: number[] = [];
  fa.onFrame((f) => atA.push(f[0]!));
  b.onFrame((f) => atB.push(f[0]!));
  fa.partition(true);
  assert.ok(fa.partitioned);
  for (let i = 0; i < 10; i++) { await fa.send(Uint8Array.of(i)); await b.send(Uint8Array.of(100 + i)); }
  await sleep(20);
  assert.equal(atA, []);
  assert.equal(atB, []);
  assert.is(fa.stats.send.partitioned, 10);
  assert.is(fa.stats.receive.partitioned, 10);
  fa.partition(false);
  await fa.send(Uint8Array.of(7));
  await b.send(Uint8Array.of(107));
  await until(() => atA.length === 1 && atB.length === 1, 'frames after healing');
  assert.equal(atA, [107]);
  assert.equal(atB, [7]);
  fa.close();
  assert.ok(b.closed);
  assert.is(await code(fa.send(Uint8Array.of(1))), 'CLOSED');
});

faults('plans are checked', () => {
  const [a] = inProcessPair();
  assert.throws(() => withFaults(a, { drop: 2 }), (e: unknown) => e instanceof TwinpageError && e.code === 'INVALID_ARGUMENT');
  assert.throws(() => withFaults(a, { delayMs: [5, 1] }), (e: unknown) => e instanceof TwinpageError && e.code === 'INVALID_ARGUMENT');
  a.close();
});

faults.run();
