// The witness: its protocol and record codecs, the conformance suite against
// a real `twinpage witness` process, what it does with bad input (bad frames,
// garbage requests, a wrong secret, a replayed handshake: refused, the record
// kept, read back and read again after a restart), its record across SIGKILL
// and damage, and WitnessArbiter when the witness is out of reach.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TwinpageError } from '../bindings/errors.js';
import { openMemory, MemoryStore } from '../bindings/index.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { WitnessArbiter } from '../bindings/mirror/witness.js';
import { connectTcp, listenTcp } from '../bindings/mirror/transports/tcp.js';
import type { Transport } from '../bindings/mirror/transports/transport.js';
import {
  ERROR_OP, MAX_WITNESS_FRAME, Op, decodeReply, decodeRequest, encodeReply, encodeRequest,
  type WitnessReply, type WitnessRequest,
} from '../bindings/mirror/witness-protocol.js';
import { LOCK_FILE, RECORD_FILE, SLOT_BYTES, chooseSlot, decodeSlot, encodeSlot } from '../bindings/mirror/witness-record.js';
import type { PairRecord } from '../bindings/mirror/arbiter.js';
import { arbiterConformance } from './arbiter-suite.js';
import { WitnessProcess, runWitness, secretFile } from './witness-process.js';

const SECRET = 'the witness test secret: 32 random bytes would do better';
const G1 = '1111111111111111';
const G2 = '2222222222222222';
const TTL = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fresh folder with a secret file, and everything started in it, cleaned up by `done()`. */
async function workspace(): Promise<{ root: string; dir: string; secret: string; clients: WitnessArbiter[]; witnesses: WitnessProcess[]; client(port: number, node: string, timeoutMs?: number): WitnessArbiter; done(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'twinpage-witness-'));
  const secret = await secretFile(root, SECRET);
  const clients: WitnessArbiter[] = [];
  const witnesses: WitnessProcess[] = [];
  return {
    root, dir: join(root, 'w'), secret, clients, witnesses,
    client(port, node, timeoutMs = 3000) {
      const c = new WitnessArbiter({ port, secret: SECRET, nodeId: node, timeoutMs });
      clients.push(c);
      return c;
    },
    async done() {
      for (const c of clients) await c.close();
      for (const w of witnesses) { w.proc.kill('SIGCONT'); await w.kill('SIGKILL'); }
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function startIn(ws: { dir: string; secret: string; witnesses: WitnessProcess[] }, options: { ttlMs?: number; port?: number } = {}): Promise<WitnessProcess> {
  const w = await WitnessProcess.start(ws.dir, ws.secret, { ttlMs: TTL, ...options });
  ws.witnesses.push(w);
  return w;
}

/** An authenticated connection that sends whatever frames a test makes, and collects what comes back. */
async function rawClient(port: number, nodeId = 'mallory', secret = SECRET) {
  const t: Transport = await connectTcp({ port, secret, nodeId, maxFrame: 1 << 20 });
  const frames: Uint8Array[] = [];
  let wake: (() => void) | null = null;
  let closedWith: Error | undefined | null = null;
  t.onFrame((f) => { frames.push(f); wake?.(); });
  const closed = new Promise<Error | undefined>((resolve) => t.onClose((err) => { closedWith = err; resolve(err); wake?.(); }));
  return {
    t,
    closed,
    send: (f: Uint8Array) => t.send(f),
    /** The next frame back, or null when the connection closed (or nothing came in `ms`). */
    async next(ms = 3000): Promise<Uint8Array | null> {
      const until = performance.now() + ms;
      while (frames.length === 0 && closedWith === null && performance.now() < until) {
        await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
      }
      return frames.shift() ?? null;
    },
    async reply(ms = 3000): Promise<WitnessReply> {
      const f = await this.next(ms);
      assert.ok(f, 'a reply came');
      return decodeReply(f!);
    },
  };
}

/** A frame with a header made by hand. */
function frame(op: number, id: number, body: number[] | Uint8Array = [], version = 1, reserved = 0): Uint8Array {
  const b = Uint8Array.from(body);
  const out = new Uint8Array(8 + b.byteLength);
  const v = new DataView(out.buffer);
  v.setUint8(0, version);
  v.setUint8(1, op);
  v.setUint16(2, reserved, true);
  v.setUint32(4, id, true);
  out.set(b, 8);
  return out;
}

const str = (s: string | Uint8Array) => {
  const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
  return [b.byteLength & 0xff, b.byteLength >> 8, ...b];
};
const u64 = (n: bigint) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, n, true); return [...b]; };

/** A recording TCP proxy: what the client sent, chunk by chunk. */
async function recordingProxy(target: number): Promise<{ port: number; sent: Buffer[]; close(): Promise<void> }> {
  const sent: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = connect(target, '127.0.0.1');
    sockets.add(c); sockets.add(up);
    c.on('data', (d) => { sent.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d) => c.write(d));
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.on('error', () => {}); up.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    sent,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

async function sha(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { assert.instance(err, TwinpageError); return (err as TwinpageError).code; }
  return 'none';
}

// --- the protocol and the record, as bytes ---------------------------------------

test('protocol: every request and reply goes through encode and decode unchanged', () => {
  const record: PairRecord = { epoch: 2 ** 53 - 1, primary: 'nöde-a', outdated: null, generation: G1 };
  const requests: WitnessRequest[] = [
    { op: Op.READ, id: 0 },
    { op: Op.ACQUIRE, id: 1, node: 'a', generation: '' },
    { op: Op.OUTDATE, id: 0xffffffff, node: 'a'.repeat(256), epoch: 7, partner: 'b', generation: G2 },
    { op: Op.CLEAR, id: 3, node: 'a', epoch: 0, generation: 'g'.repeat(256) },
    { op: Op.RELEASE, id: 4, node: 'b', epoch: 12 },
  ];
  for (const r of requests) assert.equal(decodeRequest(encodeRequest(r)), r);
  const replies: WitnessReply[] = [
    { op: Op.READ, id: 1, ttlMs: 10000, record },
    { op: Op.ACQUIRE, id: 2, granted: false, ttlMs: 300, record: { ...record, outdated: 'b' }, reason: 'node b holds the lease' },
    { op: Op.OUTDATE, id: 3, done: true },
    { op: Op.CLEAR, id: 4, done: false },
    { op: Op.RELEASE, id: 5 },
    { op: ERROR_OP, id: 6, code: 'INVALID_ARGUMENT', message: 'bad' },
  ];
  for (const r of replies) assert.equal(decodeReply(encodeReply(r)), r);
  assert.ok(encodeReply(replies[1]!).byteLength <= MAX_WITNESS_FRAME);
  // A long message is cut at a character boundary, never refused.
  const long = decodeReply(encodeReply({ op: ERROR_OP, id: 1, code: 'IO_ERROR', message: 'é'.repeat(2000) }));
  assert.ok(long.op === ERROR_OP && long.message === 'é'.repeat(512));
  // Out of bounds on the way out: refused before anything is sent.
  assert.throws(() => encodeRequest({ op: Op.ACQUIRE, id: 1, node: '', generation: '' }), /node must be 1 to 256/);
  assert.throws(() => encodeRequest({ op: Op.ACQUIRE, id: 1, node: 'a'.repeat(257), generation: '' }), /node must be 1 to 256/);
  assert.throws(() => encodeRequest({ op: Op.RELEASE, id: 1, node: 'a', epoch: 2 ** 53 }), /epoch/);
  assert.throws(() => encodeRequest({ op: Op.RELEASE, id: 1, node: 'a', epoch: -1 }), /epoch/);
});

test('protocol: a bad header is BAD_FRAME; a bad body is INVALID_ARGUMENT with the request id; a bad reply is BAD_FRAME', () => {
  const code = (fn: () => unknown) => { try { fn(); return 'none'; } catch (err) { return `${(err as TwinpageError).code}:${(err as { requestId?: number }).requestId ?? '-'}`; } };
  assert.is(code(() => decodeRequest(new Uint8Array(7))), 'BAD_FRAME:-');
  assert.is(code(() => decodeRequest(frame(Op.READ, 5, [], 2))), 'BAD_FRAME:-');
  assert.is(code(() => decodeRequest(frame(Op.READ, 5, [], 1, 1))), 'BAD_FRAME:-');
  assert.is(code(() => decodeRequest(frame(9, 5))), 'INVALID_ARGUMENT:5');
  assert.is(code(() => decodeRequest(frame(Op.READ, 6, [0]))), 'INVALID_ARGUMENT:6');
  assert.is(code(() => decodeRequest(frame(Op.ACQUIRE, 7, [...str('a')]))), 'INVALID_ARGUMENT:7');
  assert.is(code(() => decodeRequest(frame(Op.ACQUIRE, 8, [...str(Uint8Array.of(0xff, 0xfe)), ...str('')]))), 'INVALID_ARGUMENT:8');
  assert.is(code(() => decodeRequest(frame(Op.RELEASE, 9, [...str('a'), ...u64(2n ** 53n)]))), 'INVALID_ARGUMENT:9');
  assert.is(code(() => decodeReply(frame(Op.OUTDATE | 0x80, 1, [2]))), 'BAD_FRAME:-');
  assert.is(code(() => decodeReply(frame(Op.READ, 1))), 'BAD_FRAME:-');
  assert.is(code(() => decodeReply(frame(ERROR_OP, 1, [...str(''), ...str('x')]))), 'BAD_FRAME:-');
});

test('record slots: a slot goes through unchanged; zeros are empty; a flipped bit is damaged; the newest valid slot wins', () => {
  const kept = { record: { epoch: 3, primary: 'a', outdated: 'b', generation: G1 }, ttlMs: 10000 };
  const s3 = encodeSlot(3, kept);
  assert.equal(decodeSlot(s3), { kind: 'valid', sequence: 3, ...kept });
  assert.equal(decodeSlot(new Uint8Array(SLOT_BYTES)), { kind: 'empty' });
  for (const at of [0, 9, 17, 30, SLOT_BYTES - 1]) {
    const bad = s3.slice();
    bad[at]! ^= 0x10;
    assert.is(decodeSlot(bad).kind, 'damaged', `a bit flipped at ${at}`);
  }
  const s4 = encodeSlot(4, { ...kept, record: { ...kept.record, epoch: 4 } });
  const pick = (a: Uint8Array, b: Uint8Array) => chooseSlot([decodeSlot(a), decodeSlot(b)]);
  const both = pick(s4, s3);
  assert.ok(!('error' in both) && both.sequence === 4 && both.damaged === null);
  const torn = s4.slice(); torn.fill(0xaa, 100, 600);
  const fallback = pick(torn, s3);
  assert.ok(!('error' in fallback) && fallback.sequence === 3 && fallback.damaged === 0, JSON.stringify(fallback));
  assert.ok('error' in pick(torn, torn.slice()));
  assert.ok('error' in pick(s3, s4), 'slots in the wrong places are not trusted');
  const fresh = pick(new Uint8Array(SLOT_BYTES), encodeSlot(1, kept));
  assert.ok(!('error' in fresh) && fresh.sequence === 1 && fresh.damaged === null);
});

// --- the command line ---------------------------------------------------------------

test('twinpage witness --help names its options; bad command lines exit 2; a loose secret file is refused', async () => {
  const help = await runWitness(['--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /^usage: twinpage witness/);
  for (const o of ['--dir', '--listen', '--secret-file', '--ttl-ms', '--verbose']) assert.ok(help.stdout.includes(o), o);
  const ws = await workspace();
  try {
    const listed = await runWitness([]);
    assert.is(listed.status, 2);
    for (const args of [
      ['--listen', '127.0.0.1:0', '--secret-file', ws.secret],
      ['--dir', ws.dir, '--secret-file', ws.secret],
      ['--dir', ws.dir, '--listen', '127.0.0.1:0'],
      ['--dir', ws.dir, '--listen', 'nowhere', '--secret-file', ws.secret],
      ['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', ws.secret, '--ttl-ms', '5'],
      ['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', ws.secret, '--ttl-ms', 'ten'],
      ['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', ws.secret, '--peer', 'x:1'],
    ]) {
      const r = await runWitness(args);
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /usage: twinpage witness/);
    }
    const loose = join(ws.root, 'loose');
    await writeFile(loose, SECRET, { mode: 0o644 });
    const r = await runWitness(['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', loose]);
    assert.is(r.status, 1);
    assert.match(r.stderr, /INVALID_ARGUMENT: .*chmod 600/);
    assert.not.ok(r.stderr.includes(SECRET));
    assert.not.ok(existsSync(join(ws.dir, RECORD_FILE)), 'nothing created');
    const listedHelp = await runWitness(['--verbose', '--help']);
    assert.is(listedHelp.status, 0);
  } finally {
    await ws.done();
  }
});

// --- the conformance suite against a witness process --------------------------------

arbiterConformance({
  name: 'witness process',
  ttlMs: TTL,
  expiryMs: 150,
  async open() {
    const ws = await workspace();
    const w = await startIn(ws);
    const clients = new Map<string, WitnessArbiter>();
    return {
      client(node) {
        let c = clients.get(node);
        if (!c) { c = ws.client(w.port, node); clients.set(node, c); }
        return c;
      },
      close: () => ws.done(),
    };
  },
});

// --- bad input ----------------------------------------------------------------------

test('bad frames close that connection only; garbage requests get typed errors on a connection that stays; the record is kept', async () => {
  const ws = await workspace();
  try {
    const w = await startIn(ws, { ttlMs: 60_000 });
    const a = ws.client(w.port, 'a');
    const held = await a.acquire('a', G1);
    assert.ok(held.granted);
    assert.ok(await a.outdate('a', held.record.epoch, 'b', G2));
    const record = await a.read();

    // Frames that are not of this protocol: the connection is closed, nothing answered.
    for (const [what, f] of [
      ['an empty frame', new Uint8Array(0)],
      ['a frame shorter than a header', Uint8Array.of(1, 1, 0)],
      ['another version', frame(Op.READ, 1, [], 2)],
      ['reserved bits set', frame(Op.READ, 1, [], 1, 0x100)],
      ['a frame over the witness\'s limit', frame(Op.READ, 1, new Uint8Array(MAX_WITNESS_FRAME))],
    ] as const) {
      const m = await rawClient(w.port);
      await m.send(f);
      assert.is(await m.next(), null, `${what}: nothing answered`);
      await m.closed;
      assert.ok(m.t.closed, `${what}: connection closed`);
    }
    assert.ok(w.events.filter((e) => e.event === 'bad-frame').length >= 4);

    // Requests with a good header and a bad body: an ERROR with a code, the connection kept.
    const m = await rawClient(w.port);
    const cases: Array<[string, Uint8Array, string]> = [
      ['an unknown op', frame(9, 101), 'INVALID_ARGUMENT'],
      ['a reply\'s op', frame(Op.READ | 0x80, 102), 'INVALID_ARGUMENT'],
      ['bytes after the body', frame(Op.READ, 103, [0]), 'INVALID_ARGUMENT'],
      ['a body cut short', frame(Op.ACQUIRE, 104, [5, 0, 0x61, 0x62]), 'INVALID_ARGUMENT'],
      ['an empty node', frame(Op.ACQUIRE, 105, [...str(''), ...str(G1)]), 'INVALID_ARGUMENT'],
      ['a node of 300 bytes', frame(Op.ACQUIRE, 106, [...str('m'.repeat(300)), ...str(G1)]), 'INVALID_ARGUMENT'],
      ['a node that is not UTF-8', frame(Op.ACQUIRE, 107, [...str(Uint8Array.of(0xc3, 0x28)), ...str(G1)]), 'INVALID_ARGUMENT'],
      ['an epoch over 2^53', frame(Op.OUTDATE, 108, [...str('mallory'), ...u64(1n << 60n), ...str('a'), ...str(G1)]), 'INVALID_ARGUMENT'],
      ['an empty partner', frame(Op.OUTDATE, 109, [...str('mallory'), ...u64(1n), ...str(''), ...str(G1)]), 'INVALID_ARGUMENT'],
      ['acquiring as another node', encodeRequest({ op: Op.ACQUIRE, id: 110, node: 'b', generation: G2 }), 'REFUSED'],
      ['outdating as the holder, from another connection', encodeRequest({ op: Op.OUTDATE, id: 111, node: 'a', epoch: record.epoch, partner: 'a', generation: G1 }), 'REFUSED'],
      ['clearing as the holder', encodeRequest({ op: Op.CLEAR, id: 112, node: 'a', epoch: record.epoch, generation: G1 }), 'REFUSED'],
      ['releasing as the holder', encodeRequest({ op: Op.RELEASE, id: 113, node: 'a', epoch: record.epoch }), 'REFUSED'],
    ];
    for (const [what, f, code] of cases) {
      await m.send(f);
      const r = await m.reply();
      const id = new DataView(f.buffer, f.byteOffset).getUint32(4, true);
      assert.equal([r.op, r.id, r.op === ERROR_OP ? r.code : '-'], [ERROR_OP, id, code], what);
    }
    // Random bodies behind good headers: each answered (an ERROR, or a reply of its own op), never a change.
    let seed = 12345;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    for (let i = 0; i < 300; i++) {
      const op = rand(4) === 0 ? rand(256) : 1 + rand(5);
      const body = Array.from({ length: rand(48) }, () => rand(256));
      await m.send(frame(op, 1000 + i, body));
      const r = await m.reply();
      assert.is(r.id, 1000 + i);
      assert.ok(r.op === ERROR_OP || r.op === op, `op ${op} answered with ${r.op}`);
    }
    // More requests at once than a connection may have waiting: the rest refused with BUSY, each answered.
    for (let i = 0; i < 40; i++) void m.send(encodeRequest({ op: Op.READ, id: 2000 + i }));
    const answers: WitnessReply[] = [];
    for (let i = 0; i < 40; i++) answers.push(await m.reply());
    const busy = answers.filter((r) => r.op === ERROR_OP && r.code === 'BUSY').length;
    assert.ok(busy > 0 && answers.filter((r) => r.op === Op.READ).length + busy === 40, `busy ${busy}`);
    // Still open, and still answering.
    await m.send(encodeRequest({ op: Op.READ, id: 9999 }));
    const last = await m.reply();
    assert.ok(last.op === Op.READ && last.id === 9999);
    assert.equal(last.op === Op.READ && last.record, record);
    assert.not.ok(m.t.closed);
    m.t.close();

    // The holder's own connection was never disturbed, and its record is as it was.
    assert.equal(await a.read(), record);
    assert.is(w.events.filter((e) => e.event === 'connected' && e.peer === 'a').length, 1);
    assert.not.ok((await ws.client(w.port, 'b').acquire('b', G2)).granted);
    assert.is(w.events.filter((e) => e.event === 'record').length, 2, 'only the acquire and the outdate changed the record');

    // Read again after a restart.
    assert.is(await w.kill('SIGTERM'), 0);
    const w2 = await startIn(ws, { port: w.port });
    assert.equal((await w2.event('listening')).record, record);
    assert.equal(await a.read(), record);
  } finally {
    await ws.done();
  }
});

test('a node connected again: its older connection is closed, so a call that timed out there and arrives late changes nothing', async () => {
  const ws = await workspace();
  try {
    const w = await startIn(ws, { ttlMs: 60_000 });
    const old = await rawClient(w.port, 'a');
    await old.send(encodeRequest({ op: Op.ACQUIRE, id: 1, node: 'a', generation: G1 }));
    const held = await old.reply();
    assert.ok(held.op === Op.ACQUIRE && held.granted);
    // The node reconnects (its call timed out on the old connection) and marks its partner.
    const now = await rawClient(w.port, 'a');
    await old.closed;
    assert.ok(old.t.closed, 'the older connection closed by the witness');
    await now.send(encodeRequest({ op: Op.OUTDATE, id: 2, node: 'a', epoch: held.record.epoch, partner: 'b', generation: G1 }));
    const marked = await now.reply();
    assert.equal([marked.op, marked.op === Op.OUTDATE && marked.done], [Op.OUTDATE, true]);
    // The old connection can carry nothing more: a late CLEAR there is never taken.
    let sent = true;
    await old.send(encodeRequest({ op: Op.CLEAR, id: 3, node: 'a', epoch: held.record.epoch, generation: G1 })).catch(() => { sent = false; });
    assert.is(sent, false, 'nothing sent on the closed connection');
    const reader = ws.client(w.port, 'reader');
    assert.is((await reader.read()).outdated, 'b', 'the mark stays');
  } finally {
    await ws.done();
  }
});

test('a wrong secret and a replayed handshake are refused; the record is kept, also across a restart', async () => {
  const ws = await workspace();
  try {
    const w = await startIn(ws, { ttlMs: 60_000 });
    // A session recorded on the wire: a takes the lease, marks b outdated, clears, releases.
    const proxy = await recordingProxy(w.port);
    const a = ws.client(proxy.port, 'a');
    const { record } = await a.acquire('a', G1);
    assert.ok(await a.outdate('a', record.epoch, 'b', G1));
    assert.ok(await a.clear('a', record.epoch, G1));
    await a.release('a', record.epoch);
    await a.close();
    await proxy.close();
    // Then b takes over and gives the lease back: a replayed acquire by a would now be granted.
    const b = ws.client(w.port, 'b');
    const taken = await b.acquire('b', G1);
    assert.ok(taken.granted);
    await b.release('b', taken.record.epoch);
    const before = await b.read();
    assert.equal(before, { epoch: 2, primary: 'b', outdated: null, generation: G1 });
    const fileBefore = await sha(join(ws.dir, RECORD_FILE));

    // A wrong secret: refused at the handshake.
    const wrong = new WitnessArbiter({ port: w.port, secret: 'not the secret', nodeId: 'a', timeoutMs: 3000 });
    ws.clients.push(wrong);
    assert.is(await codeOf(wrong.acquire('a', G1)), 'AUTH_FAILED');
    await w.event('auth-failed');
    const authFailures = () => w.events.filter((e) => e.event === 'auth-failed').length;
    const failuresBefore = authFailures();

    // The recorded bytes sent again as they were: the witness's fresh nonce makes the old proof wrong.
    const replay = connect(w.port, '127.0.0.1');
    replay.on('error', () => {});
    const received: Buffer[] = [];
    replay.on('data', (d) => received.push(d));
    await new Promise<void>((r) => replay.once('connect', () => r()));
    replay.write(Buffer.concat(proxy.sent));
    await new Promise<void>((r) => replay.once('close', () => r()));
    assert.ok(proxy.sent.length > 0);
    const deadline = Date.now() + 3000;
    while (authFailures() === failuresBefore && Date.now() < deadline) await sleep(20);
    assert.is(authFailures(), failuresBefore + 1, 'the replay failed authentication');
    // What came back is the witness's hello (and nothing sealed: no reply to any replayed request).
    assert.ok(Buffer.concat(received).byteLength < 100, `${Buffer.concat(received).byteLength} bytes came back`);

    assert.equal(await b.read(), before, 'the record is as it was');
    assert.is(await sha(join(ws.dir, RECORD_FILE)), fileBefore, 'the record file is untouched');
    assert.is(await w.kill('SIGTERM'), 0);
    const w2 = await startIn(ws, { port: w.port });
    assert.equal((await w2.event('listening')).record, before);
    assert.equal(await b.read(), before);
  } finally {
    await ws.done();
  }
});

// --- durability -------------------------------------------------------------------------

test('the record survives SIGKILL; after a restart no lease is granted for one TTL, then the rules go on', async () => {
  const ws = await workspace();
  try {
    const w = await startIn(ws, { ttlMs: 400 });
    const a = ws.client(w.port, 'a');
    const b = ws.client(w.port, 'b');
    const { record } = await a.acquire('a', G1);
    assert.ok(await a.outdate('a', record.epoch, 'b', G2)); // answered once durable
    const expected = { epoch: 1, primary: 'a', outdated: 'b', generation: G2 };
    assert.is(await w.kill('SIGKILL'), null);
    assert.ok(existsSync(join(ws.dir, LOCK_FILE)), 'a killed witness leaves its lock');

    const w2 = await startIn(ws, { ttlMs: 400, port: w.port });
    const listening = await w2.event('listening');
    assert.equal(listening.record, expected);
    assert.is(listening.created, false);
    assert.ok((listening.noLeaseForMs as number) > 200, `noLeaseForMs ${listening.noLeaseForMs}`);
    // The clients find the new process by themselves.
    assert.equal(await a.read(), expected);
    const paused = await a.acquire('a', G2);
    assert.not.ok(paused.granted, 'not even the last holder, while its old lease may live');
    assert.match(!paused.granted ? paused.reason : '', /restarted/);
    await sleep(450);
    const refused = await b.acquire('b', G2);
    assert.not.ok(refused.granted);
    assert.match(!refused.granted ? refused.reason : '', /outdated/);
    const again = await a.acquire('a', G2);
    assert.ok(again.granted);
    assert.equal(again.record, expected);

    // SIGTERM: a clean exit, the lock given back; the record read again.
    assert.is(await w2.kill('SIGTERM'), 0);
    assert.ok(w2.events.some((e) => e.event === 'stopped'));
    assert.not.ok(existsSync(join(ws.dir, LOCK_FILE)));
    const w3 = await startIn(ws, { ttlMs: 400, port: w.port });
    assert.equal((await w3.event('listening')).record, expected);
  } finally {
    await ws.done();
  }
});

test('a damaged record is refused (both slots, a cut file, a lost file); one damaged slot falls back to the other', async () => {
  const ws = await workspace();
  try {
    const w = await startIn(ws, { ttlMs: 60_000 });
    const a = ws.client(w.port, 'a');
    const { record } = await a.acquire('a', G1);
    assert.ok(await a.outdate('a', record.epoch, 'b', G2));
    assert.is(await w.kill('SIGTERM'), 0);
    const path = join(ws.dir, RECORD_FILE);
    const good = await readFile(path);
    // Sequence 1 (created) in slot 1, 2 (acquire) in slot 0, 3 (outdate) in slot 1.
    const newest = decodeSlot(good.subarray(SLOT_BYTES));
    assert.ok(newest.kind === 'valid' && newest.sequence === 3);

    const refused = async (what: string, pattern: RegExp) => {
      const before = existsSync(path) ? await sha(path) : null;
      const r = await runWitness(['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', ws.secret]);
      assert.is(r.status, 1, `${what}: exit ${r.status}, ${r.stderr}`);
      assert.match(r.stderr, pattern, what);
      assert.not.ok(r.stdout.includes('"listening"'), `${what}: never listened`);
      assert.is(existsSync(path) ? await sha(path) : null, before, `${what}: the file is untouched`);
      assert.not.ok(existsSync(join(ws.dir, LOCK_FILE)), `${what}: no lock left`);
    };

    const both = Buffer.from(good);
    both[SLOT_BYTES + 40]! ^= 1;
    both[40]! ^= 1;
    await writeFile(path, both);
    await refused('both slots damaged', /CORRUPT: the witness record .*witness\.record is damaged \(slot 0 damaged \(checksum mismatch\), slot 1 damaged/);

    await writeFile(path, good.subarray(0, SLOT_BYTES + 100));
    await refused('a cut file', /CORRUPT: .*4196 bytes, not 8192/);

    await rm(path);
    await refused('a lost file', /NOT_FOUND: .*witness\.record is missing from a folder that held it/);

    const other = join(ws.root, 'other');
    await mkdir(other);
    await writeFile(join(other, 'notes.txt'), 'not a witness');
    const r = await runWitness(['--dir', other, '--listen', '127.0.0.1:0', '--secret-file', ws.secret]);
    assert.is(r.status, 1);
    assert.match(r.stderr, /NOT_FOUND: .* holds files \(notes\.txt\) but no witness\.record/);

    // The newest slot torn: the one before it (the record as acknowledged before that write) is used, and said so.
    const torn = Buffer.from(good);
    torn.fill(0x5a, SLOT_BYTES + 200, SLOT_BYTES + 900);
    await writeFile(path, torn);
    const w2 = await startIn(ws, { ttlMs: 60_000 });
    assert.equal((await w2.event('listening')).record, { epoch: 1, primary: 'a', outdated: null, generation: G1 });
    assert.is((await w2.event('record-slot-damaged')).slot, 1);
    // A second witness on the same folder is refused while the first lives.
    const second = await runWitness(['--dir', ws.dir, '--listen', '127.0.0.1:0', '--secret-file', ws.secret]);
    assert.is(second.status, 1);
    assert.match(second.stderr, /BUSY: a witness \(pid \d+\) already uses/);
    // The next write goes to the damaged slot, and both are whole again.
    await sleep(0);
    await w2.kill('SIGTERM');
    const healed = await readFile(path);
    assert.ok(!('error' in chooseSlot([decodeSlot(healed.subarray(0, SLOT_BYTES)), decodeSlot(healed.subarray(SLOT_BYTES))])));
  } finally {
    await ws.done();
  }
});

// --- WitnessArbiter out of reach --------------------------------------------------------

test('WitnessArbiter: IO_ERROR with no witness, TIMEOUT from a stopped one, CLOSED when closed; it reconnects by itself', async () => {
  const ws = await workspace();
  try {
    const port = await freePort();
    const a = ws.client(port, 'a', 400);
    assert.is(await codeOf(a.read()), 'IO_ERROR');
    const w = await startIn(ws, { port });
    assert.is(a.ttlMs, 10_000, 'the default until the witness says');
    const got = await a.acquire('a', G1);
    assert.ok(got.granted);
    assert.is(a.ttlMs, TTL, 'the witness\'s own');

    w.proc.kill('SIGSTOP');
    try {
      const t0 = performance.now();
      assert.is(await codeOf(a.acquire('a', G1)), 'TIMEOUT');
      const took = performance.now() - t0;
      assert.ok(took >= 350 && took < 1500, `took ${took} ms`);
    } finally {
      w.proc.kill('SIGCONT');
    }
    assert.equal(await a.read(), got.record, 'a new connection after the timeout');

    // The witness goes away under a connection, and comes back.
    await w.kill('SIGKILL');
    assert.ok(['CLOSED', 'IO_ERROR'].includes(await codeOf(a.read())));
    await startIn(ws, { port });
    assert.equal(await a.read(), got.record);

    // Without a nodeId: a read connects as a reader; the first node named becomes the arbiter's, over a new connection.
    const lazy = new WitnessArbiter({ port, secret: SECRET, timeoutMs: 3000 });
    ws.clients.push(lazy);
    assert.equal(await lazy.read(), got.record);
    await sleep(TTL + 100);
    const taken = await lazy.acquire('c', G1);
    assert.ok(taken.granted, `refused: ${!taken.granted ? taken.reason : ''}`);
    assert.equal(taken.record, { epoch: 2, primary: 'c', outdated: null, generation: G1 });
    assert.is(await codeOf(lazy.acquire('d', G1)), 'INVALID_ARGUMENT');
    await lazy.release('c', 2);

    // Asking for another node is refused before anything is sent; a closed arbiter refuses every call.
    assert.is(await codeOf(a.acquire('b', G1)), 'INVALID_ARGUMENT');
    await a.close();
    assert.is(await codeOf(a.read()), 'CLOSED');
  } finally {
    await ws.done();
  }
});

test('WitnessArbiter: refuses an endpoint that is not a witness, and bad options', async () => {
  const listener = await listenTcp({ port: 0, secret: SECRET, nodeId: 'node-x' }, () => {});
  try {
    const c = new WitnessArbiter({ port: listener.port, secret: SECRET, nodeId: 'a' });
    const err = await c.read().then(() => null, (e: TwinpageError) => e);
    assert.is(err?.code, 'REFUSED');
    assert.match(err!.message, /not a twinpage witness \(it is node "node-x"\)/);
    await c.close();
  } finally {
    await listener.close();
  }
  const bad = (o: unknown) => { try { new WitnessArbiter(o as never); return 'none'; } catch (err) { return (err as TwinpageError).code; } };
  assert.is(bad({ secret: SECRET, nodeId: 'a' }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 1, secret: SECRET, nodeId: 'n'.repeat(257) }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 70000, secret: SECRET, nodeId: 'a' }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 1, secret: '', nodeId: 'a' }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 1, secret: SECRET, nodeId: '' }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 1, secret: SECRET, nodeId: 'twinpage-witness' }), 'INVALID_ARGUMENT');
  assert.is(bad({ port: 1, secret: SECRET, nodeId: 'a', timeoutMs: 0 }), 'INVALID_ARGUMENT');
  assert.is(new WitnessArbiter({ host: '::1', port: 7100, secret: SECRET, nodeId: 'a' }).name, 'witness [::1]:7100');
});

// --- the pair with a witness -------------------------------------------------------------

test('a pair with a witness: cut off from its partner, the primary acknowledges under the lease with the secondary marked outdated there; healed, the mark is cleared and the lease given back', async () => {
  const ws = await workspace();
  const PS = 512;
  const opts = { pageSize: PS, cacheBytes: 64 * PS, flushIntervalMs: 0 };
  const timing = { heartbeatMs: 20, timeoutMs: 150 };
  const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 5000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  };
  try {
    const w = await startIn(ws, { ttlMs: 1000 });
    // One arbiter per node, made before the node knows its id: the first call names it. Its
    // ttlMs is the witness's --ttl-ms: the pair sizes its margin from it before the first reply.
    const arbiterP = new WitnessArbiter({ port: w.port, secret: SECRET, ttlMs: 1000 });
    const arbiterS = new WitnessArbiter({ port: w.port, secret: SECRET, ttlMs: 1000 });
    ws.clients.push(arbiterP, arbiterS);
    const [ta, tb] = inProcessPair();
    const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, arbiter: arbiterP, ...timing } });
    const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, arbiter: arbiterS, failover: 'auto', ...timing } });
    try {
      const b = await p.allocate(8 * PS);
      await p.write(b.id, 0, new Uint8Array(PS).fill(1));
      await until(() => !s.mirror.sense().inconsistent, 'the first sync');
      assert.equal(await arbiterS.read(), { epoch: 0, primary: null, outdated: null, generation: '' }, 'connected, the witness is not asked');

      ta.close(); // the link goes; both nodes live
      await p.write(b.id, PS, new Uint8Array(PS).fill(2)); // acknowledged under the lease
      const rec = await arbiterS.read();
      assert.is(rec.primary, p.nodeId);
      assert.is(rec.outdated, s.nodeId);
      assert.ok(p.mirror.sense().quorum!.held);
      await w.event('record', 5000, (e) => (e.record as PairRecord).outdated === s.nodeId);
      // The secondary's watchdog asks for the lease: refused, it stays secondary.
      await sleep(600);
      assert.is(s.mirror.role, 'secondary');

      const [ta2, tb2] = inProcessPair();
      s.mirror.attach(tb2);
      p.mirror.attach(ta2);
      await until(async () => (await arbiterS.read()).outdated === null && !p.mirror.sense().quorum!.held, 'the mark cleared and the lease given back');
      assert.equal(await s.read(b.id, PS, PS), new Uint8Array(PS).fill(2));
      // Given back: the secondary could take the lease at once (with the record's generation).
      const now = await arbiterS.read();
      assert.is(now.primary, p.nodeId);
    } finally {
      await p.close();
      await s.close();
    }
  } finally {
    await ws.done();
  }
});

test.run();
