// Partitions over real processes: two `twinpage serve` nodes, A dialing B
// through a nemesis (test/nemesis.ts) that cuts the link (reset or
// blackhole), drops one direction, delays, heals.
//
// First the failures the pair once got wrong, each as its own test: a
// partition then a promotion (a split brain, refused, both sides intact,
// resolved by `discard`), a secondary refusing its callers' writes, a
// secondary shut down cleanly while its primary writes on (DRBD issue #145),
// an allocation the partner has no room for, a block only the partner holds.
//
// Then the campaign: rounds of random faults (cuts, one-way drops, delays,
// heals, SIGKILLs, restarts in either role, promotions with and without
// force, switchovers, discards) under concurrent writers, and a checker
// reading every node back at the end of each round: every acknowledged write
// is on the final primary, or the round ended in a detected, refused split
// brain with both sides' data intact. Never a silent overwrite.
//
// PARTITION_ROUNDS sets the campaign's rounds (default 30), PARTITION_SEED
// its seed (default: a fresh one, printed; a failure names the round and the
// seed to replay with).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, openMemory, type MirroredMemory } from '../bindings/index.js';
import { connectTcp, listenTcp } from '../bindings/mirror/transports/tcp.js';
import { NodeProcess, type Reply } from './pair-process.js';
import { Nemesis, type CutMode, type Direction } from './nemesis.js';
import { rng } from './data.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- the data: 4 KiB slots whose bytes say which write they are -----------------------------

const SLOT = 4096;
const MAGIC = 0x54505044; // 'TPPD'

/** The 4 KiB written as `version` of `slot`: a header (magic, slot, version) and bytes derived from both. */
function slotData(slot: number, version: number): Buffer {
  const w = new Uint32Array(SLOT / 4);
  w[0] = MAGIC; w[1] = slot; w[2] = version;
  let x = (Math.imul(slot + 1, 0x9E3779B1) ^ Math.imul(version, 0x85EBCA77)) >>> 0 || 1;
  for (let i = 3; i < w.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    w[i] = x;
  }
  return Buffer.from(w.buffer);
}

/** Which version of `slot` these 4 KiB are: 0 for zeros, -1 for anything else (torn, foreign, garbage). */
function versionOf(slot: number, bytes: Buffer): number {
  if (bytes.every((b) => b === 0)) return 0;
  if (bytes.length !== SLOT || bytes.readUInt32LE(0) !== MAGIC || bytes.readUInt32LE(4) !== slot) return -1;
  const v = bytes.readUInt32LE(8);
  return slotData(slot, v).equals(bytes) ? v : -1;
}

// --- nodes ---------------------------------------------------------------------------------

type Name = 'A' | 'B';
type Role = 'primary' | 'secondary';

interface Sense {
  role: Role; health: 'ok' | 'degraded' | 'split-brain'; connected: boolean; peerRole: Role | null;
  inFlight: number; lagPages: number; inconsistent: boolean; refused: string | null; generation: string;
}

/** The folder both nodes live in: the secret, and A's and B's data folders. */
async function pairFolder(): Promise<{ dir: string; secret: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-partition-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'the partition campaign shares this secret\n', { mode: 0o600 });
  return { dir, secret };
}

/**
 * One node of the pair as a `twinpage serve` process that can be killed and
 * started again: A dials the nemesis, B listens (on the same port each time).
 */
class Node {
  proc: NodeProcess | null = null;
  /** The role the test gave it last (at start, promote, demote, discard). */
  role: Role = 'secondary';
  /** B's port, fixed at its first start. */
  port = 0;
  starts = 0;

  constructor(readonly name: Name, readonly dir: string, readonly secret: string, readonly peerPort: () => number) {}

  get alive(): boolean {
    return this.proc !== null && !this.proc.gone;
  }

  async start(role: Role): Promise<void> {
    this.role = role;
    const link = this.name === 'A' ? ['--peer', `127.0.0.1:${this.peerPort()}`] : ['--listen', `127.0.0.1:${this.port}`];
    this.proc = new NodeProcess(['--dir', this.dir, '--role', role, ...link, '--secret-file', this.secret, '--cache-mb', '4', '--extent-pages', '8']);
    this.starts++;
    const e = await this.proc.event(this.name === 'A' ? 'started' : 'listening', 20000);
    if (this.name === 'B') this.port = e.port as number;
  }

  /** SIGKILL. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await p?.kill();
  }

  /** A clean shutdown (the close command). */
  async close(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await p?.close();
  }

  /** Sends a command; a node that is not running answers EXITED. A reply later than `ms` fails the test (a hang). */
  async send(cmd: Record<string, unknown>, ms = 30000): Promise<Reply> {
    const p = this.proc;
    if (!p) return { ok: false, code: 'EXITED', error: `node ${this.name} is not running` };
    let timer!: ReturnType<typeof setTimeout>;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`node ${this.name}: no reply to ${JSON.stringify(cmd).slice(0, 80)} in ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([p.send(cmd), hang]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like send, but the reply must be ok. */
  async must(cmd: Record<string, unknown>, ms?: number): Promise<Reply> {
    const r = await this.send(cmd, ms);
    if (!r.ok) throw new Error(`node ${this.name}: ${String(cmd.cmd)} failed: ${String(r.code)} ${String(r.error)}`);
    return r;
  }

  async sense(): Promise<Sense | null> {
    const r = await this.send({ cmd: 'sense' });
    return r.ok ? r.sense as Sense : null;
  }

  /** Reads `count` slots of `block` from `first`: each slot's version (or -1). */
  async readSlots(block: string, count: number, first = 0): Promise<number[]> {
    const r = await this.must({ cmd: 'read', block, offset: first * SLOT, length: count * SLOT });
    const data = Buffer.from(r.data as string, 'base64');
    return Array.from({ length: count }, (_, k) => versionOf(first + k, data.subarray(k * SLOT, (k + 1) * SLOT)));
  }

  async blockIds(): Promise<string[]> {
    const r = await this.must({ cmd: 'blocks' });
    return (r.blocks as Array<{ id: string }>).map((b) => b.id).sort();
  }

  /** Whether the last connection event it printed says it is connected to its partner now. */
  get linked(): boolean {
    const events = this.proc?.events ?? [];
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i].event === 'connected') return true;
      if (events[i].event === 'disconnected') return false;
    }
    return false;
  }
}

/** Two nodes and the nemesis between them: B (listening) first, then the nemesis, then A (dialing through it). */
async function startPair(roles: { A: Role; B: Role } = { A: 'primary', B: 'secondary' }) {
  const { dir, secret } = await pairFolder();
  let nemesis: Nemesis | null = null;
  const a = new Node('A', join(dir, 'a'), secret, () => nemesis!.port);
  const b = new Node('B', join(dir, 'b'), secret, () => 0);
  await b.start(roles.B);
  nemesis = await Nemesis.start({ port: b.port });
  const pair = { dir, a, b, nemesis };
  try {
    await a.start(roles.A);
    await inSync(a, b);
  } catch (err) {
    await stopPair(pair);
    throw err;
  }
  return pair;
}

async function stopPair(p: { dir: string; a: Node; b: Node; nemesis: Nemesis }): Promise<void> {
  await Promise.all([p.a.kill(), p.b.kill()]);
  await p.nemesis.close();
  await rm(p.dir, { recursive: true, force: true });
}

async function until<T>(what: string, probe: () => Promise<T | null | false | undefined>, ms = 20000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until the nodes are connected, one primary and one secondary, nothing lagging or unacknowledged. */
async function inSync(x: Node, y: Node, ms = 20000): Promise<{ primary: Node; secondary: Node }> {
  return until(`${x.name} and ${y.name} in sync`, async () => {
    const [sx, sy] = [await x.sense(), await y.sense()];
    if (!sx || !sy || !sx.connected || !sy.connected || sx.refused || sy.refused) return null;
    const [p, s, sp, ss] = sx.role === 'primary' ? [x, y, sx, sy] : [y, x, sy, sx];
    if (sp.role !== 'primary' || ss.role !== 'secondary' || ss.peerRole !== 'primary' || sp.peerRole !== 'secondary') return null;
    if (sp.lagPages || sp.inFlight || ss.inconsistent || sp.generation !== ss.generation) return null;
    return { primary: p, secondary: s };
  }, ms);
}

/** Waits until both nodes report a refused split brain. */
async function splitBrain(x: Node, y: Node, ms = 20000): Promise<{ [k in Name]?: Sense }> {
  const seen: { [k in Name]?: Sense } = {};
  await until(`a split brain refused on ${x.name} and ${y.name}`, async () => {
    for (const n of [x, y]) {
      const s = await n.sense();
      if (s?.health === 'split-brain' && s.refused) seen[n.name] = s;
    }
    return seen[x.name] && seen[y.name];
  }, ms);
  return seen;
}

async function verifyClean(primary: Node): Promise<void> {
  const v = (await primary.must({ cmd: 'verify' })).verify as { differences: unknown[] };
  assert.equal(v.differences, [], `verify on ${primary.name} finds no difference`);
}

async function write(n: Node, block: string, slot: number, version: number): Promise<Reply> {
  return n.send({ cmd: 'write', block, offset: slot * SLOT, data: slotData(slot, version).toString('base64') });
}

// --- the failures, one by one --------------------------------------------------------------

const cases = suite('partition: the failures, one by one');

cases('a partition then a promotion: a split brain, refused; both sides intact; discard resolves it', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 8 * SLOT })).block as { id: string }).id;
    for (let s = 0; s < 8; s++) (await a.must({ cmd: 'write', block, offset: s * SLOT, data: slotData(s, 1).toString('base64') }));
    // The link is cut while both live; B is promoted.
    nemesis.cut('blackhole');
    await b.must({ cmd: 'promote' });
    b.role = 'primary';
    // A, still primary and degraded (once the heartbeat times out), acknowledges writes and a new block.
    for (const s of [1, 3]) assert.ok((await write(a, block, s, 2)).ok, `A acknowledges slot ${s} version 2`);
    const aSense = (await a.sense())!;
    assert.is(aSense.role, 'primary');
    assert.is(aSense.connected, false, 'A noticed the cut');
    const newBlock = ((await a.must({ cmd: 'allocate', size: SLOT })).block as { id: string }).id;
    assert.ok((await a.send({ cmd: 'write', block: newBlock, offset: 0, data: slotData(100, 1).toString('base64') })).ok);
    // B acknowledges writes of its own.
    for (const s of [1, 5]) assert.ok((await write(b, block, s, 3)).ok, `B acknowledges slot ${s} version 3`);
    // A restarts as secondary and reconnects.
    await a.kill();
    await a.start('secondary');
    nemesis.heal();
    const seen = await splitBrain(a, b);
    assert.match(seen.A!.refused!, /split brain/);
    // The refusal says how to resolve it, with a command that exists.
    for (const n of ['A', 'B'] as const) {
      assert.match(seen[n]!.refused!, /\{"cmd":"discard"\}/, `${n}: ${seen[n]!.refused}`);
      assert.not.match(seen[n]!.refused!, /twinpage discard/, 'there is no twinpage discard command');
    }
    // Both sides intact: A's writes and new block on A, B's on B; nothing merged.
    assert.equal(await a.readSlots(block, 8), [1, 2, 1, 2, 1, 1, 1, 1], "A holds what it acknowledged");
    assert.equal(await b.readSlots(block, 8), [1, 3, 1, 1, 1, 3, 1, 1], "B holds what it acknowledged");
    assert.ok((await a.blockIds()).includes(newBlock), "A's new block is intact");
    assert.is(versionOf(100, Buffer.from((await a.must({ cmd: 'read', block: newBlock, offset: 0, length: SLOT })).data as string, 'base64')), 1);
    assert.not.ok((await b.blockIds()).includes(newBlock), "B never saw A's new block");
    // A gives up its changes: it takes B's data, and ends equal to B.
    await a.must({ cmd: 'discard' });
    await inSync(a, b);
    await verifyClean(b);
    assert.equal(await a.readSlots(block, 8), [1, 3, 1, 1, 1, 3, 1, 1]);
    assert.equal(await a.blockIds(), await b.blockIds());
    assert.is((await a.sense())!.health, 'ok');
  } finally {
    await stopPair(pair);
  }
});

cases('a split brain resolved while the side kept is secondary: once it is promoted, the discarded side takes all of its data', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 4 * SLOT })).block as { id: string }).id;
    for (let s = 0; s < 4; s++) await a.must({ cmd: 'write', block, offset: s * SLOT, data: slotData(s, 1).toString('base64') });
    nemesis.cut('reset');
    await b.must({ cmd: 'promote' });
    assert.ok((await write(b, block, 1, 2)).ok);
    const stray = ((await b.must({ cmd: 'allocate', size: SLOT })).block as { id: string }).id;
    assert.ok((await write(a, block, 0, 2)).ok);
    // A is demoted (it will be kept); they meet: a split brain.
    await a.must({ cmd: 'demote' });
    nemesis.heal();
    await splitBrain(a, b);
    // B gives up its changes while A is secondary; then A is promoted.
    await b.must({ cmd: 'discard' });
    await until('B to take A\'s generation', async () => (await b.sense())?.inconsistent === true);
    await a.must({ cmd: 'promote' });
    await inSync(a, b);
    await verifyClean(a);
    assert.equal(await b.readSlots(block, 4), [2, 1, 1, 1], "B holds A's data, not its own");
    assert.equal(await b.blockIds(), [block], "B's block of the split brain is gone");
  } finally {
    await stopPair(pair);
  }
});

cases('a resync source demoted as its resync ends, then promoted again, says it is done: its partner does not stay inconsistent', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const pages = 48;
    const block = ((await a.must({ cmd: 'allocate', size: pages * SLOT })).block as { id: string }).id;
    await b.kill();
    // A writes alone: B will lack all of it (one resync release of 48 pages).
    const data = Buffer.concat(Array.from({ length: pages }, (_, k) => slotData(k, 1)));
    await a.must({ cmd: 'write', block, offset: 0, data: data.toString('base64') });
    // A slow link, so the test can act while the resync's pages are on their way.
    nemesis.delay(300);
    await b.start('secondary');
    await until('the resync sent, not yet acknowledged', async () => {
      const s = await a.sense();
      return s?.connected && s.lagPages === 0 && s.inFlight > 0;
    });
    // A is demoted as the resync ends; B, not told it is done, refuses to be promoted.
    await a.must({ cmd: 'demote' });
    assert.is((await b.send({ cmd: 'promote' })).code, 'INCONSISTENT');
    nemesis.heal();
    await until('B to hear that A is secondary', async () => (await b.sense())?.peerRole === 'secondary', 2000);
    // A is promoted again (a switchover, same connection): it owes B the end of its resync.
    await a.must({ cmd: 'promote' });
    await inSync(a, b, 10000);
    await verifyClean(a);
    assert.is((await b.readSlots(block, pages)).findIndex((v) => v !== 1), -1, 'B holds every page A wrote alone');
  } finally {
    await stopPair(pair);
  }
});

cases('writes and an allocation under way when the primary is demoted reach the partner: a switchover loses no acknowledged write', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const slots = 24;
    const block = ((await a.must({ cmd: 'allocate', size: slots * SLOT })).block as { id: string }).id;
    // Writes and an allocation sent, then the demotion at once, before they are done.
    const writes = Array.from({ length: slots }, (_, s) => write(a, block, s, 1));
    const allocation = a.send({ cmd: 'allocate', size: SLOT });
    const demoted = a.send({ cmd: 'demote' });
    const replies = await Promise.all(writes);
    const alloc = await allocation;
    assert.ok((await demoted).ok);
    const acked = replies.map((r) => r.ok === true);
    for (const r of replies) if (!r.ok) assert.is(r.code, 'NOT_PRIMARY', JSON.stringify(r));
    assert.ok(acked.some(Boolean), 'some writes were under way (acknowledged)');
    await until('B to hear that A is secondary', async () => (await b.sense())?.peerRole === 'secondary', 2000);
    await b.must({ cmd: 'promote' });
    const got = await b.readSlots(block, slots);
    acked.forEach((ok, s) => { if (ok) assert.is(got[s], 1, `slot ${s}: A acknowledged it before its demotion ended; B, promoted, lacks it`); });
    if (alloc.ok) assert.ok((await b.blockIds()).includes((alloc.block as { id: string }).id), 'the block A allocated is on B');
    await inSync(a, b);
    await verifyClean(b);
  } finally {
    await stopPair(pair);
  }
});

cases('a primary killed mid-write rejoins as secondary and its partner is promoted by switchover: what the killed node\'s record names is resynced', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const slots = 32;
    const block = ((await a.must({ cmd: 'allocate', size: slots * SLOT })).block as { id: string }).id;
    let version = 0;
    let writing = true;
    const writer = async (k: number) => {
      for (let s = k; writing; s = (s + 4) % slots) if (!(await write(a, block, s, ++version)).ok) return;
    };
    const writers = [0, 1, 2, 3].map(writer);
    await sleep(300);
    await a.kill();
    writing = false;
    await Promise.all(writers);
    // A comes back as secondary: both are secondaries, in sync by their generations, and A's
    // record names the pages its writes in flight may have changed here alone.
    await a.start('secondary');
    await until('A and B connected, both secondary', async () => (await b.sense())?.peerRole === 'secondary' && (await a.sense())?.peerRole === 'secondary');
    await b.must({ cmd: 'promote' });
    await inSync(a, b);
    await until("A's record of what may differ consumed by a resync", async () => (await a.sense())?.lagPages === 0, 5000);
    await verifyClean(b);
    assert.equal(await a.readSlots(block, slots), await b.readSlots(block, slots));
  } finally {
    await stopPair(pair);
  }
});

cases('a split brain where both nodes were told to discard: the refusal says so, and promoting the one to keep resolves it', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 4 * SLOT })).block as { id: string }).id;
    for (let s = 0; s < 4; s++) await a.must({ cmd: 'write', block, offset: s * SLOT, data: slotData(s, 1).toString('base64') });
    nemesis.cut('reset');
    await b.must({ cmd: 'promote' });
    assert.ok((await write(a, block, 0, 2)).ok);
    assert.ok((await write(b, block, 1, 2)).ok);
    // Two operators each give up a side.
    await b.must({ cmd: 'discard' });
    await a.must({ cmd: 'discard' });
    nemesis.heal();
    const seen = await splitBrain(a, b);
    assert.match(seen.A!.refused!, /both nodes are set to discard/, seen.A!.refused!);
    assert.equal(await a.readSlots(block, 2), [2, 1]);
    assert.equal(await b.readSlots(block, 2), [1, 2]);
    // A is the one to keep: promoting it takes back its discard.
    await a.must({ cmd: 'promote' });
    await inSync(a, b);
    await verifyClean(a);
    assert.equal(await b.readSlots(block, 4), [2, 1, 1, 1], "B took A's side");
  } finally {
    await stopPair(pair);
  }
});

cases('a link that dies without a word (a blackhole whose state is forgotten) is noticed by the secondary too: the pair reconnects', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 2 * SLOT })).block as { id: string }).id;
    // B becomes the primary: A, which dials, is the secondary.
    await a.must({ cmd: 'demote' });
    await until('B to hear that A is secondary', async () => (await b.sense())?.peerRole === 'secondary', 2000);
    await b.must({ cmd: 'promote' });
    await inSync(a, b);
    nemesis.cut('blackhole');
    assert.ok((await write(b, block, 0, 1)).ok, 'B goes on alone once its partner is silent');
    // The route comes back, but the connection's state is gone: nobody is told anything.
    nemesis.heal({ forget: true });
    await inSync(a, b, 15000);
    await verifyClean(b);
    assert.equal(await a.readSlots(block, 1), [1]);
  } finally {
    await stopPair(pair);
  }
});

cases('a link that dies without a word while both nodes are secondary is noticed: once one is promoted, the pair reconnects', async () => {
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 2 * SLOT })).block as { id: string }).id;
    await a.must({ cmd: 'demote' });
    await until('B to hear that A is secondary', async () => (await b.sense())?.peerRole === 'secondary', 2000);
    // Two secondaries: nobody sends heartbeats as a primary. The link dies silently.
    nemesis.cut('blackhole');
    nemesis.heal({ forget: true });
    await b.must({ cmd: 'promote' });
    assert.ok((await write(b, block, 0, 1)).ok);
    await inSync(a, b, 15000);
    await verifyClean(b);
    assert.equal(await a.readSlots(block, 1), [1]);
  } finally {
    await stopPair(pair);
  }
});

cases('a secondary refuses its callers (NOT_PRIMARY); after SIGKILL of the primary and a promotion, the acknowledged write is served', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 4 * SLOT })).block as { id: string }).id;
    await a.must({ cmd: 'write', block, offset: 0, data: slotData(0, 1).toString('base64') });
    await inSync(a, b);
    const refusals = [
      await write(b, block, 0, 9),
      await write(b, block, 1, 9),
      await b.send({ cmd: 'allocate', size: SLOT }),
      await b.send({ cmd: 'free', block }),
    ];
    for (const r of refusals) assert.is(r.code, 'NOT_PRIMARY', `the secondary refuses: ${JSON.stringify(r)}`);
    assert.equal(await b.readSlots(block, 2), [1, 0], 'nothing changed on the secondary');
    assert.equal(await a.readSlots(block, 2), [1, 0], 'nothing changed on the primary');
    assert.equal(await b.blockIds(), [block]);
    assert.ok((await write(a, block, 0, 2)).ok);
    await a.kill();
    await b.must({ cmd: 'promote' });
    assert.equal(await b.readSlots(block, 2), [2, 0], 'the new primary serves the acknowledged write');
    assert.ok((await write(b, block, 1, 3)).ok, 'and takes writes');
  } finally {
    await stopPair(pair);
  }
});

cases('DRBD #145: a secondary shut down cleanly while its primary writes on is resynced when it rejoins', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 16 * SLOT })).block as { id: string }).id;
    for (let s = 0; s < 16; s++) await a.must({ cmd: 'write', block, offset: s * SLOT, data: slotData(s, 1).toString('base64') });
    // Writes in flight while B shuts down, and more after.
    const during = Array.from({ length: 8 }, (_, s) => write(a, block, s, 2));
    await b.close();
    for (const r of await Promise.all(during)) assert.ok(r.ok, JSON.stringify(r));
    for (let s = 8; s < 16; s++) assert.ok((await write(a, block, s, 3)).ok);
    const extra = ((await a.must({ cmd: 'allocate', size: 2 * SLOT })).block as { id: string }).id;
    await a.must({ cmd: 'write', block: extra, offset: SLOT, data: slotData(1, 7).toString('base64') });
    await b.start('secondary');
    await inSync(a, b);
    await verifyClean(a);
    const want = [...Array(8).fill(2), ...Array(8).fill(3)];
    assert.equal(await b.readSlots(block, 16), want, 'B holds every write made while it was away');
    assert.equal(await b.readSlots(extra, 2), [0, 7]);
    assert.equal(await b.blockIds(), await a.blockIds());
  } finally {
    await stopPair(pair);
  }
});

cases('DRBD #145, the other way round: the node that was away, started as primary, is refused (its partner holds newer data), never taken for in sync', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 4 * SLOT })).block as { id: string }).id;
    for (let s = 0; s < 4; s++) await a.must({ cmd: 'write', block, offset: s * SLOT, data: slotData(s, 1).toString('base64') });
    await b.close();
    for (let s = 0; s < 2; s++) assert.ok((await write(a, block, s, 2)).ok);
    await a.close();
    // The node that was away comes back first, as primary; the other rejoins as secondary.
    await b.start('primary');
    await a.start('secondary');
    const [ra, rb] = await until('both refusals', async () => {
      const [x, y] = [await a.sense(), await b.sense()];
      return x?.refused && y?.refused ? [x, y] : null;
    });
    assert.match(ra.refused!, /newer data/, `A: ${ra.refused}`);
    assert.match(rb.refused!, /behind/, `B: ${rb.refused}`);
    assert.equal(await a.readSlots(block, 4), [2, 2, 1, 1], 'A keeps what it wrote alone');
    assert.equal(await b.readSlots(block, 4), [1, 1, 1, 1], 'B is unchanged');
    // As the refusals say: the primary behind is demoted, the secondary ahead promoted.
    await b.must({ cmd: 'demote' });
    await a.must({ cmd: 'promote' });
    await inSync(a, b);
    await verifyClean(a);
    assert.equal(await b.readSlots(block, 4), [2, 2, 1, 1]);
  } finally {
    await stopPair(pair);
  }
});

cases('a switchover right after a verify: the demotion is prompt, the link stays up, no new generation', async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const block = ((await a.must({ cmd: 'allocate', size: 2 * SLOT })).block as { id: string }).id;
    await a.must({ cmd: 'write', block, offset: 0, data: slotData(0, 1).toString('base64') });
    await verifyClean(a);
    // The verify's requests are acknowledged like any frame: nothing stays in flight.
    await until('nothing in flight on A after its verify', async () => (await a.sense())?.inFlight === 0, 1500);
    const generation = (await a.sense())!.generation;
    const events = a.proc!.events.length;
    const t = Date.now();
    await a.must({ cmd: 'demote' });
    assert.ok(Date.now() - t < 1000, `demote took ${Date.now() - t} ms`);
    // B hears of it (A's HELLO) before it is promoted: else its promotion is a failover.
    await until('B to hear that A is secondary', async () => (await b.sense())?.peerRole === 'secondary', 1500);
    await b.must({ cmd: 'promote' });
    const { primary } = await inSync(a, b);
    assert.is(primary, b);
    assert.equal(a.proc!.events.slice(events), [], 'A never lost the link');
    assert.is((await b.sense())!.generation, generation, 'a switchover takes no new generation');
    assert.ok((await write(b, block, 1, 2)).ok);
    assert.equal(await a.readSlots(block, 2), [1, 2]);
  } finally {
    await stopPair(pair);
  }
});

/** Two memories over TCP in this process (serve has no capacity flag). */
async function libraryPair(capacity: { primary?: number; secondary?: number } = {}) {
  const opts = { pageSize: 4096, cacheBytes: 64 * 4096, flushIntervalMs: 0 };
  const p = await openMemory({ store: new MemoryStore(), ...opts, capacityBytes: capacity.primary, mirror: { role: 'primary', heartbeatMs: 100, timeoutMs: 2000 } }) as MirroredMemory;
  const s = await openMemory({ store: new MemoryStore(), ...opts, capacityBytes: capacity.secondary, mirror: { role: 'secondary', heartbeatMs: 100, timeoutMs: 2000 } }) as MirroredMemory;
  const secret = 'the partition tests share this secret';
  const listener = await listenTcp({ host: '127.0.0.1', port: 0, secret, nodeId: s.nodeId }, (t) => s.mirror.attach(t));
  p.mirror.attach(await connectTcp({ host: '127.0.0.1', port: listener.port, secret, nodeId: p.nodeId }));
  const synced = () => {
    const [x, y] = [p.mirror.sense(), s.mirror.sense()];
    return x.connected && y.connected && x.peerRole === 'secondary' && !x.lagPages && !x.inFlight && !y.inconsistent && x.generation === y.generation;
  };
  const close = async () => {
    await p.close();
    await s.close();
    await listener.close();
  };
  try {
    await until('the library pair in sync', async () => synced());
  } catch (err) {
    await close();
    throw err;
  }
  return { p, s, synced, close };
}

cases('allocate when the secondary lacks the room: NO_SPACE, nothing changed on either node', async () => {
  const pair = await libraryPair({ primary: 64 * SLOT, secondary: 16 * SLOT });
  const { p, s } = pair;
  try {
    const first = await p.allocate(8 * SLOT);
    const before = { p: p.blocks(), s: s.blocks(), pFree: (await p.space()).addressSpace.free, sFree: (await s.space()).addressSpace.free };
    // The primary has room for 16 more pages; the secondary only for 8.
    let code = '';
    try {
      await p.allocate(16 * SLOT);
    } catch (err) {
      code = (err as { code?: string }).code ?? String(err);
    }
    assert.is(code, 'NO_SPACE', 'the partner refused the room: NO_SPACE');
    assert.equal(p.blocks(), before.p, 'nothing allocated on the primary');
    assert.equal(s.blocks(), before.s, 'nothing allocated on the secondary');
    assert.is((await p.space()).addressSpace.free, before.pFree, "the primary's address space is as it was");
    assert.is((await s.space()).addressSpace.free, before.sFree, "the secondary's address space is as it was (no reservation left behind)");
    // What fits on both still allocates, on both.
    const fits = await p.allocate(8 * SLOT);
    await until('the pair in sync', async () => pair.synced());
    assert.equal(s.blocks().map((b) => b.id).sort(), [first.id, fits.id].sort());
    const v = await p.mirror.verify();
    assert.equal(v.differences, []);
  } finally {
    await pair.close();
  }
});

cases('a block only the partner holds shows in verify (page -1); verify with repair resolves it', async () => {
  const pair = await libraryPair();
  const { p, s } = pair;
  try {
    const kept = await p.allocate(2 * SLOT);
    await p.write(kept.id, 0, slotData(0, 1));
    await until('the pair in sync', async () => pair.synced());
    // A block the secondary holds and its primary does not (a stray the records never named).
    const stray = { id: crypto.randomUUID(), base: 32, pages: 2, length: 2 * SLOT, policy: kept.policy, generation: 0 };
    await s.apply({ type: 'allocate', block: stray });
    assert.ok(s.blocks().some((b) => b.id === stray.id));
    const found = await p.mirror.verify();
    assert.equal(found.differences, [{ blockId: stray.id, page: -1 }], 'verify names the block only the partner holds');
    const repaired = await p.mirror.verify({ repair: true });
    assert.equal(repaired.differences, [{ blockId: stray.id, page: -1 }]);
    await until('the pair in sync', async () => pair.synced());
    assert.equal((await p.mirror.verify()).differences, [], 'nothing differs after the repair');
    assert.equal(s.blocks().map((b) => b.id), [kept.id], 'the stray block is gone from the partner');
    assert.equal(Buffer.from(await s.read(kept.id, 0, SLOT)), slotData(0, 1));
  } finally {
    await pair.close();
  }
});

cases.run();
