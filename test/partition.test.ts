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
import { Nemesis, type Direction } from './nemesis.js';
import { rng } from './data.js';
import { SLOT, slotData, versionOf } from './slots.js';
import { ServeNode } from './serve-node.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- the data: 4 KiB slots whose bytes say which write they are -----------------------------


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
class Node extends ServeNode {
  /** The role the test gave it last (at start, promote, demote, discard). */
  role: Role = 'secondary';
  /** B's port, fixed at its first start. */
  port = 0;
  starts = 0;

  constructor(readonly name: Name, readonly dir: string, readonly secret: string, readonly peerPort: () => number) { super(); }

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





  async sense(): Promise<Sense | null> {
    const r = await this.send({ cmd: 'sense' });
    return r.ok ? r.sense as Sense : null;
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
      assert.match(seen[n]!.refused!, /twinpage discard --dir DIR/, `${n}: ${seen[n]!.refused}`);
      assert.match(seen[n]!.refused!, /\{"cmd":"discard"\}/, `${n}: ${seen[n]!.refused}`);
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
    const taken = (await a.sense())!.generation;
    await until("B to take A's generation", async () => (await b.sense())?.generation === taken);
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
    assert.equal(a.proc!.events.slice(events).filter((e) => e.event === 'disconnected'), [], 'A never lost the link');
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

// --- the campaign ----------------------------------------------------------------------------
//
// One pair for the whole campaign; each round starts with it in sync and a
// known baseline (every slot's version, the same on both nodes). Writers
// write through whichever node the test made primary (several at once when
// a promotion made two), each slot owned by one node (even slots by A, odd
// by B), so that whatever a slot holds names the node that wrote it, and an
// older version means a lost write. A write counts once its node replied
// ok; one that failed may or may not have landed.
//
// The checker, at the end of a round:
//   - converged (one primary, one secondary, in sync): every acknowledged
//     write is on the primary (its version, or a later one that was in
//     flight), minus what the user gave up (a discard, a forced promotion);
//   - a refused split brain on both: each side holds every write it
//     acknowledged, and none of the other side's sent after the last
//     separating fault (a cut, one-way drop, kill, promotion, discard):
//     nothing crossed once they parted.
// Then a split brain is resolved as a user would (discard on one side), the
// extra blocks are freed, verify finds nothing, and the primary's contents
// are the next round's baseline.

const ROUNDS = Number(process.env.PARTITION_ROUNDS ?? 30);
const SEED = process.env.PARTITION_SEED ? Number(process.env.PARTITION_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;
const SLOTS = 32;
const WRITERS = 4;
const owner = (slot: number): Name => (slot % 2 === 0 ? 'A' : 'B');
const other = (n: Name): Name => (n === 'A' ? 'B' : 'A');

interface Ack { slot: number; version: number; node: Name; t: number; alone: boolean }
interface BlockAck { id: string; node: Name; sent: number; t: number; marker: number; markerSlot: number }

/** What the test knows: versions sent and acknowledged, what the user gave up, the separating faults. */
class Model {
  /** Versions handed out per slot; one write at a time per slot. */
  readonly issued = new Uint32Array(SLOTS);
  readonly busy = new Uint8Array(SLOTS);
  /** When each version of each slot was sent (the model's clock). */
  readonly sentAt: Array<Map<number, number>> = Array.from({ length: SLOTS }, () => new Map());
  /** Every slot's version at the start of the round, on both nodes. */
  base = new Uint32Array(SLOTS);
  clock = 0;
  // this round
  acks: Ack[] = [];
  blocks: BlockAck[] = [];
  /** A node's acknowledgements before this time were given up (discard; a forced promotion gives up everyone's). */
  forfeitBefore: Record<Name, number> = { A: 0, B: 0 };
  /** The least each slot holds on a converged pair, before this round's acknowledgements. */
  convBase = new Uint32Array(SLOTS);
  /** The least each slot holds on each side of a split brain, before its own acknowledgements. */
  sbBase: Record<Name, Uint32Array> = { A: new Uint32Array(SLOTS), B: new Uint32Array(SLOTS) };
  /** The last fault after which nothing may cross between the nodes if they end in a split brain. */
  lastSeparation = 0;
  markerSlots = 0;

  tick(): number { return ++this.clock; }

  newRound(): void {
    this.acks = [];
    this.blocks = [];
    this.forfeitBefore = { A: 0, B: 0 };
    this.convBase = this.base.slice();
    this.sbBase = { A: this.base.slice(), B: this.base.slice() };
    this.lastSeparation = this.tick();
    this.busy.fill(0);
  }

  kept(a: { node: Name; t: number }): boolean {
    return a.t >= this.forfeitBefore[a.node];
  }

  /** The least version of `slot` a converged pair's primary must hold. */
  convRequired(slot: number): { version: number; ack: Ack | null } {
    let best = { version: this.convBase[slot], ack: null as Ack | null };
    for (const a of this.acks) if (a.slot === slot && this.kept(a) && a.version > best.version) best = { version: a.version, ack: a };
    return best;
  }

  /** The least version of `slot` side `n` of a split brain must hold. */
  sbRequired(n: Name, slot: number): { version: number; ack: Ack | null } {
    let best = { version: this.sbBase[n][slot], ack: null as Ack | null };
    for (const a of this.acks) if (a.node === n && a.slot === slot && this.kept(a) && a.version > best.version) best = { version: a.version, ack: a };
    return best;
  }
}

interface CampaignStats {
  rounds: number; writesAcked: number; writesChecked: number; writesFailed: number; blocksChecked: number;
  faults: Record<string, number>;
  splitBrainsExpected: number; splitBrainsDetected: number; splitBrainsNecessary: number;
  promotions: number; forcedPromotions: number; promotionsRefused: number; switchovers: number; discards: number;
  notPrimaryProbes: number; silentLosses: number; converged: number;
}

const campaign = suite('partition: the campaign');

campaign(`${ROUNDS} rounds of partitions, kills, restarts, promotions: no acknowledged write silently lost`, async () => {
  const stats: CampaignStats = {
    rounds: 0, writesAcked: 0, writesChecked: 0, writesFailed: 0, blocksChecked: 0, faults: {},
    splitBrainsExpected: 0, splitBrainsDetected: 0, splitBrainsNecessary: 0,
    promotions: 0, forcedPromotions: 0, promotionsRefused: 0, switchovers: 0, discards: 0,
    notPrimaryProbes: 0, silentLosses: 0, converged: 0,
  };
  console.log(`  partition campaign: seed ${SEED} (replay: PARTITION_SEED=${SEED}), ${ROUNDS} rounds`);
  const pair = await startPair();
  const { a, b, nemesis } = pair;
  const nodes: Record<Name, Node> = { A: a, B: b };
  const model = new Model();
  const transition: Record<Name, boolean> = { A: false, B: false };
  const started = Date.now();
  try {
    const main = ((await a.must({ cmd: 'allocate', size: SLOTS * SLOT })).block as { id: string }).id;
    await inSync(a, b);

    for (let round = 0; round < ROUNDS; round++) {
      const seed = (SEED + Math.imul(round + 1, 0x9E3779B1)) >>> 0;
      const random = rng(seed);
      const wrandom = rng(seed ^ 0x5bd1e995);
      const log: string[] = [];
      const say = (line: string) => log.push(`${Date.now() - roundStart} ms: ${line}`);
      const roundStart = Date.now();
      const where = () => `round ${round}, seed ${seed} (replay: PARTITION_SEED=${SEED} PARTITION_ROUNDS=${round + 1})`;
      const eventsFrom = { A: a.proc?.events.length ?? 0, B: b.proc?.events.length ?? 0, procs: { A: a.proc, B: b.proc } };
      const fail = (what: string): never => {
        const events = (['A', 'B'] as Name[]).map((n) => {
          const p = nodes[n].proc;
          const list = (p?.events ?? []).slice(p === eventsFrom.procs[n] ? eventsFrom[n] : 0).filter((e) => e.event !== 'resync');
          return `${n} events: ${list.map((e) => JSON.stringify(e).slice(0, 160)).join(' | ')}`;
        });
        throw new Error(`${where()}: ${what}\n    ${[...log, ...events].join('\n    ')}`);
      };
      const fault = (label: string) => {
        const kind = label.replace(/ [AB]( to [AB])?/g, '').replace(/ (a->b|b->a)/, ' one way');
        stats.faults[kind] = (stats.faults[kind] ?? 0) + 1;
        say(label);
      };
      const separate = () => { model.lastSeparation = model.tick(); };
      model.newRound();
      const discardedAt: Partial<Record<Name, number>> = {};

      // --- the workload -----------------------------------------------------------------
      let writing = true;
      const pickSlot = (n: Name): number => {
        const free = [];
        for (let s = 0; s < SLOTS; s++) if (owner(s) === n && !model.busy[s]) free.push(s);
        return free.length ? free[Math.floor(wrandom() * free.length)] : -1;
      };
      const writeSlot = async (n: Node, slot: number): Promise<Reply> => {
        const version = ++model.issued[slot];
        model.busy[slot] = 1;
        model.sentAt[slot].set(version, model.tick());
        const r = await write(n, main, slot, version);
        model.busy[slot] = 0;
        if (r.ok) {
          model.acks.push({ slot, version, node: n.name, t: model.tick(), alone: !n.linked });
          stats.writesAcked++;
        } else {
          stats.writesFailed++;
        }
        return r;
      };
      const writer = async () => {
        while (writing) {
          const primaries = [a, b].filter((n) => n.alive && n.role === 'primary' && !transition[n.name]);
          const secondaries = [a, b].filter((n) => n.alive && n.role === 'secondary' && !transition[n.name]);
          if (secondaries.length && wrandom() < 0.03) {
            // A secondary refuses its callers' writes.
            const s = secondaries[Math.floor(wrandom() * secondaries.length)];
            const slot = pickSlot(s.name);
            if (slot < 0) { await sleep(5); continue; }
            const r = await writeSlot(s, slot);
            if (r.ok && !transition[s.name] && s.role === 'secondary') fail(`secondary ${s.name} acknowledged a write of its caller (slot ${slot})`);
            if (r.code === 'NOT_PRIMARY') stats.notPrimaryProbes++;
            continue;
          }
          if (!primaries.length) { await sleep(20); continue; }
          const n = primaries[Math.floor(wrandom() * primaries.length)];
          if (wrandom() < 0.02 && model.blocks.length < 3) {
            // A new block, with a marker written into it.
            const sent = model.tick();
            const r = await n.send({ cmd: 'allocate', size: SLOT });
            if (!r.ok) continue;
            const ack: BlockAck = { id: (r.block as { id: string }).id, node: n.name, sent, t: model.tick(), marker: 0, markerSlot: 1000 + model.markerSlots++ };
            model.blocks.push(ack);
            const m = await n.send({ cmd: 'write', block: ack.id, offset: 0, data: slotData(ack.markerSlot, 1).toString('base64') });
            if (m.ok) ack.marker = 1;
            continue;
          }
          const slot = pickSlot(n.name);
          if (slot < 0) { await sleep(5); continue; }
          await writeSlot(n, slot);
        }
      };
      const writers = Array.from({ length: WRITERS }, writer);

      // --- the faults ---------------------------------------------------------------------
      const promote = async (n: Node, force: boolean): Promise<void> => {
        transition[n.name] = true;
        try {
          separate();
          let r = await n.send({ cmd: 'promote' });
          if (!r.ok && r.code === 'INCONSISTENT') {
            if (!force) { stats.promotionsRefused++; say(`promote ${n.name}: refused, INCONSISTENT`); return; }
            r = await n.send({ cmd: 'promote', force: true });
            if (r.ok) {
              // The user forced a node that does not hold all the data: what it lacks is given up.
              stats.forcedPromotions++;
              const t = model.tick();
              const snap = await n.readSlots(main, SLOTS);
              if (snap.some((v) => v < 0)) fail(`node ${n.name}, force-promoted, holds a slot that is no write: ${snap}`);
              model.convBase = Uint32Array.from(snap);
              model.sbBase = { A: new Uint32Array(SLOTS), B: new Uint32Array(SLOTS) };
              model.sbBase[n.name] = Uint32Array.from(snap);
              model.forfeitBefore = { A: t, B: t };
              say(`promote ${n.name} with force (it was inconsistent): holds ${snap.join(',')}`);
            }
          }
          if (r.ok) {
            n.role = 'primary';
            stats.promotions++;
            say(`promoted ${n.name}`);
          } else if (r.code !== 'EXITED') {
            fail(`promote ${n.name} failed: ${r.code} ${r.error}`);
          }
        } finally {
          transition[n.name] = false;
        }
      };
      const demote = async (n: Node): Promise<boolean> => {
        transition[n.name] = true;
        try {
          const r = await n.send({ cmd: 'demote' });
          if (r.ok) n.role = 'secondary';
          else if (r.code !== 'EXITED') fail(`demote ${n.name} failed: ${r.code} ${r.error}`);
          return r.ok === true;
        } finally {
          transition[n.name] = false;
        }
      };
      const discard = async (n: Node): Promise<void> => {
        transition[n.name] = true;
        try {
          separate();
          const r = await n.send({ cmd: 'discard' });
          if (!r.ok) { if (r.code !== 'EXITED') fail(`discard on ${n.name} failed: ${r.code} ${r.error}`); return; }
          // Everything it acknowledged before (its demotion drained it) is given up.
          const t = model.tick();
          n.role = 'secondary';
          model.forfeitBefore[n.name] = Math.max(model.forfeitBefore[n.name], t);
          model.sbBase[n.name] = new Uint32Array(SLOTS);
          discardedAt[n.name] = n.proc!.events.length;
          stats.discards++;
        } finally {
          transition[n.name] = false;
        }
      };
      const restart = async (n: Node, role: Role) => {
        say(`start ${n.name} as ${role}`);
        await n.start(role);
      };

      const steps = 1 + Math.floor(random() * 3);
      for (let step = 0; step < steps; step++) {
        await sleep(60 + random() * 160);
        const options: Array<[string, number, () => Promise<void> | void]> = [];
        const healed = nemesis.state === 'healed';
        options.push(['cut (reset)', healed ? 1 : 0.3, () => { separate(); nemesis.cut('reset'); }]);
        options.push(['cut (blackhole)', healed ? 1 : 0.3, () => { separate(); nemesis.cut('blackhole'); }]);
        for (const d of ['a->b', 'b->a'] as Direction[]) options.push([`drop ${d}`, healed ? 0.5 : 0.2, () => { separate(); nemesis.dropOneWay(d); }]);
        options.push(['delay', 0.4, () => nemesis.delay(20 + Math.floor(random() * 200))]);
        if (!healed) options.push(['heal', 1.5, () => nemesis.heal()]);
        // The route comes back, but a firewall forgot the connections: nobody is told.
        if (nemesis.state.includes('blackhole')) options.push(['heal (connections forgotten)', 0.5, () => nemesis.heal({ forget: true })]);
        for (const n of [a, b]) {
          if (n.alive) options.push([`kill ${n.name}`, 0.8, async () => { separate(); await n.kill(); }]);
          else {
            options.push([`restart ${n.name}`, 2, () => restart(n, random() < 0.5 ? 'primary' : 'secondary')]);
            // An operator in a hurry: the node restarts as secondary on a slow link and is promoted
            // while it is being resynced (refused as INCONSISTENT, so forced).
            options.push([`restart ${n.name} and promote it (force)`, 1.5, async () => {
              if (nemesis.state === 'healed') nemesis.delay(150);
              await restart(n, 'secondary');
              await until('the restarted node resynced', async () => (await n.sense())?.inconsistent, 1500).catch(() => {});
              await promote(n, true);
            }]);
          }
          if (n.alive && n.role === 'secondary') {
            options.push([`promote ${n.name}`, 1, () => promote(n, false)]);
            options.push([`promote ${n.name} (force)`, 0.5, () => promote(n, true)]);
          }
          if (n.alive) options.push([`discard on ${n.name}`, 0.2, () => discard(n)]);
          const partner = nodes[other(n.name)];
          if (n.alive && n.role === 'primary' && partner.alive && partner.role === 'secondary') {
            options.push([`switchover ${n.name} to ${partner.name}`, 1, async () => {
              if (!(await demote(n))) return;
              // The partner hears of the demotion before it is promoted (else its promotion is a failover).
              await until('the demotion heard', async () => (await partner.sense())?.peerRole === 'secondary', 1000).catch(() => {});
              stats.switchovers++;
              await promote(partner, false);
            }]);
          }
        }
        let pick = random() * options.reduce((s, o) => s + o[1], 0);
        const chosen = options.find((o) => (pick -= o[1]) < 0) ?? options[options.length - 1];
        fault(chosen[0]);
        await chosen[2]();
      }
      await sleep(80 + random() * 170);
      writing = false;
      await Promise.all(writers);

      // --- settle: heal, restart, make the roles sane -------------------------------------
      nemesis.heal({ forget: random() < 0.3 });
      for (const n of [a, b]) {
        if (n.alive) continue;
        stats.faults.restart = (stats.faults.restart ?? 0) + 1;
        await restart(n, random() < 0.5 ? 'primary' : 'secondary');
      }
      const sbSeen: Record<Name, string | null> = { A: null, B: null };
      let outcome: 'converged' | 'split-brain' | null = null;
      let primary: Node | null = null;
      const settleDeadline = Date.now() + 30000;
      const settle = async (): Promise<void> => {
        outcome = null;
        primary = null;
        let forcedReconnect = false;
        while (!outcome) {
          if (Date.now() > settleDeadline) {
            fail(`the pair did not settle: A ${JSON.stringify(await a.sense())}, B ${JSON.stringify(await b.sense())}`);
          }
          const sa = await a.sense();
          const sb = await b.sense();
          if (!sa || !sb) fail('a node stopped answering');
          const s: Record<Name, Sense> = { A: sa!, B: sb! };
          for (const n of ['A', 'B'] as Name[]) if (s[n].health === 'split-brain' && s[n].refused) sbSeen[n] = s[n].refused;
          const synced = s.A.connected && s.B.connected && !s.A.refused && !s.B.refused && s.A.role !== s.B.role &&
            s.A.peerRole === s.B.role && s.B.peerRole === s.A.role && s.A.generation === s.B.generation;
          const p = s.A.role === 'primary' ? 'A' : 'B';
          if (synced && !s[p].lagPages && !s[p].inFlight && !s[other(p)].inconsistent) {
            // A discard given this round is kept until a handshake uses it: make sure one did.
            const stale = (['A', 'B'] as Name[]).filter((n) => discardedAt[n] !== undefined && !nodes[n].proc!.events.slice(discardedAt[n]).some((e) => e.event === 'connected'));
            if (stale.length && !forcedReconnect) {
              forcedReconnect = true;
              nemesis.cut('reset');
              nemesis.heal();
              await sleep(100);
              continue;
            }
            outcome = 'converged';
            primary = nodes[p];
            break;
          }
          if (sbSeen.A && sbSeen.B) { outcome = 'split-brain'; break; }
          const refused = (n: Name) => (s[n].health === 'split-brain' ? null : s[n].refused);
          for (const n of ['A', 'B'] as Name[]) nodes[n].role = s[n].role;
          if (/unrelated/.test(refused('A') ?? '') || /unrelated/.test(refused('B') ?? '')) fail(`refused as unrelated: ${refused('A') ?? refused('B')}`);
          const behind = (['A', 'B'] as Name[]).find((n) => /this primary is behind/.test(refused(n) ?? ''));
          const ahead = (['A', 'B'] as Name[]).find((n) => /this secondary holds newer data/.test(refused(n) ?? ''));
          if (behind && s[behind].role === 'primary') {
            say(`settle: ${behind} is a primary behind its partner: demote it`);
            await demote(nodes[behind]);
          } else if (ahead && s[other(ahead)].role === 'primary') {
            say(`settle: ${ahead} is a secondary ahead of its primary: demote ${other(ahead)}`);
            await demote(nodes[other(ahead)]);
          } else if (ahead && s[ahead].role === 'secondary') {
            say(`settle: promote ${ahead}, ahead of its partner`);
            await promote(nodes[ahead], false);
          } else if (s.A.role === 'primary' && s.B.role === 'primary' && !sbSeen.A && !sbSeen.B && (refused('A') || refused('B'))) {
            const n = random() < 0.5 ? a : b;
            say(`settle: both primary: demote ${n.name}`);
            await demote(n);
          } else if (s.A.role === 'secondary' && s.B.role === 'secondary' && !sbSeen.A && !sbSeen.B) {
            const candidates = [a, b].filter((n) => !s[n.name].inconsistent);
            if (candidates.length) {
              const n = candidates[Math.floor(random() * candidates.length)];
              say(`settle: both secondary: promote ${n.name}`);
              await promote(n, false);
            }
          }
          await sleep(60);
        }
      };
      await settle();
      const ended = outcome as 'converged' | 'split-brain' | null;

      // --- the checker ------------------------------------------------------------------
      const data: Record<Name, number[]> = { A: await a.readSlots(main, SLOTS), B: await b.readSlots(main, SLOTS) };
      const ids: Record<Name, string[]> = { A: await a.blockIds(), B: await b.blockIds() };
      const describe = (x: Ack | null) => (x ? `acknowledged by ${x.node}${x.alone ? ' (alone)' : ''} at t${x.t}` : 'the baseline');
      const alone = (n: Name) => model.acks.some((x) => x.node === n && x.alone && model.kept(x));
      if (alone('A') && alone('B')) stats.splitBrainsExpected++;
      for (const n of ['A', 'B'] as Name[]) {
        data[n].forEach((v, slot) => { if (v < 0 || v > model.issued[slot]) fail(`node ${n} slot ${slot} holds bytes no write wrote (${v})`); });
      }
      if (outcome === 'split-brain') {
        stats.splitBrainsDetected++;
        say(`split brain detected: A: ${sbSeen.A}; B: ${sbSeen.B}`);
        let lacks: Record<Name, boolean> = { A: false, B: false };
        for (const n of ['A', 'B'] as Name[]) {
          const y = other(n);
          for (let slot = 0; slot < SLOTS; slot++) {
            const need = model.sbRequired(n, slot);
            if (data[n][slot] < need.version) {
              stats.silentLosses++;
              fail(`split brain, but ${n} lost its own write: slot ${slot} holds version ${data[n][slot]}, version ${need.version} was ${describe(need.ack)}`);
            }
            const v = data[n][slot];
            if (owner(slot) === y && v > 0 && (model.sentAt[slot].get(v) ?? 0) > model.lastSeparation) {
              stats.silentLosses++;
              fail(`split brain, but ${n} holds ${y}'s write of slot ${slot} version ${v}, sent after they parted (t${model.sentAt[slot].get(v)} > t${model.lastSeparation})`);
            }
          }
          for (const blk of model.blocks) {
            if (blk.node === n && model.kept(blk) && !ids[n].includes(blk.id)) fail(`split brain, but ${n} lost the block ${blk.id} it allocated`);
            if (blk.node === y && blk.sent > model.lastSeparation && ids[n].includes(blk.id)) fail(`split brain, but ${n} holds ${y}'s block ${blk.id}, allocated after they parted`);
          }
          // Does this side lack a write the other acknowledged? (Both do: the split brain was necessary.)
          lacks[n] = model.acks.some((x) => x.node === y && model.kept(x) && data[n][x.slot] < x.version);
        }
        for (const x of model.acks) if (model.kept(x)) stats.writesChecked++;
        if (lacks.A && lacks.B) stats.splitBrainsNecessary++;
        // Resolved as a user would: one side discards its changes, the other serves.
        const loser = random() < 0.5 ? a : b;
        const winner = nodes[other(loser.name)];
        const promoteFirst = random() < 0.7;
        say(`resolve: ${loser.name} discards${winner.role === 'primary' ? '' : promoteFirst ? `, ${winner.name} promoted first` : `, ${winner.name} promoted after`}`);
        // A winner given a discard this round, and started as primary since, still holds it: the
        // user takes it back as the refusal says, by promoting the one to keep (a no-op otherwise).
        if (winner.role === 'primary' && discardedAt[winner.name] !== undefined) {
          const r = await winner.send({ cmd: 'promote' });
          if (!r.ok && r.code !== 'EXITED') fail(`promote ${winner.name} (primary, to take its discard back) failed: ${r.code} ${r.error}`);
          delete discardedAt[winner.name];
        }
        if (winner.role !== 'primary' && promoteFirst) await promote(winner, false);
        const dialed = a.proc!.events.length;
        await discard(loser);
        if (winner.role !== 'primary') {
          await until(`${loser.name} to take ${winner.name}'s generation`, async () => (await loser.sense())?.inconsistent === true, 10000).catch(() => {});
          await promote(winner, false);
        }
        delete discardedAt[loser.name];
        // The refusals stand until the next handshake: A dials again (within 200 ms, or once a
        // connection a forgotten blackhole held times out).
        await until('A to connect again', async () => a.proc!.events.slice(dialed).some((e) => e.event === 'connected'), 15000).catch(() => {});
        await until('a new handshake', async () => {
          const [x, y] = [await a.sense(), await b.sense()];
          return !(x?.health === 'split-brain' && y?.health === 'split-brain');
        }, 5000).catch(() => {});
        sbSeen.A = sbSeen.B = null;
        await settle();
        if (outcome !== 'converged' || primary !== winner) fail(`the split brain was not resolved in favour of ${winner.name} (${outcome}, primary ${(primary as Node | null)?.name})`);
        const kept = await winner.readSlots(main, SLOTS);
        for (let slot = 0; slot < SLOTS; slot++) {
          if (kept[slot] !== data[winner.name][slot]) fail(`${winner.name} kept its side of the split brain, but slot ${slot} went from version ${data[winner.name][slot]} to ${kept[slot]}`);
        }
        data[winner.name] = kept;
        data[loser.name] = await loser.readSlots(main, SLOTS);
        ids[winner.name] = await winner.blockIds();
        ids[loser.name] = await loser.blockIds();
      } else {
        stats.converged++;
        const p = primary!.name;
        for (let slot = 0; slot < SLOTS; slot++) {
          const need = model.convRequired(slot);
          if (data[p][slot] < need.version) {
            stats.silentLosses++;
            fail(`SILENT LOSS on the final primary ${p}: slot ${slot} holds version ${data[p][slot]}, version ${need.version} was ${describe(need.ack)} (no split brain was reported)`);
          }
        }
        for (const x of model.acks) if (model.kept(x)) stats.writesChecked++;
        for (const blk of model.blocks) {
          if (!model.kept(blk)) continue;
          stats.blocksChecked++;
          if (!ids[p].includes(blk.id)) { stats.silentLosses++; fail(`SILENT LOSS on the final primary ${p}: block ${blk.id} allocated by ${blk.node} is gone`); }
          if (blk.marker) {
            const m = await primary!.must({ cmd: 'read', block: blk.id, offset: 0, length: SLOT });
            if (versionOf(blk.markerSlot, Buffer.from(m.data as string, 'base64')) !== 1) { stats.silentLosses++; fail(`SILENT LOSS on ${p}: the marker written into block ${blk.id} is gone`); }
          }
        }
      }

      // --- back to one consistent state -----------------------------------------------------
      const p = primary! as Node;
      for (const id of ids[p.name]) if (id !== main) await p.must({ cmd: 'free', block: id });
      await settle();
      const v = (await p.must({ cmd: 'verify' })).verify as { differences: unknown[] };
      if (v.differences.length) fail(`verify on ${p.name} found ${v.differences.length} differences: ${JSON.stringify(v.differences.slice(0, 8))}`);
      const s = nodes[other(p.name)];
      const [pd, sd] = [await p.readSlots(main, SLOTS), await s.readSlots(main, SLOTS)];
      if (pd.join() !== sd.join()) fail(`verify found nothing, but ${s.name} holds ${sd.join(',')} and ${p.name} ${pd.join(',')}`);
      const [pi, si] = [await p.blockIds(), await s.blockIds()];
      if (pi.join() !== main || si.join() !== main) fail(`the blocks are not back to the main block: ${p.name} ${pi}, ${s.name} ${si}`);
      model.base = Uint32Array.from(pd);
      stats.rounds++;
      const history = log.map((l) => l.replace(/^\d+ ms: /, '').replace(/^(split brain detected).*/, '$1'));
      console.log(`  round ${round} (seed ${seed}): ${ended === 'split-brain' ? `split brain, resolved on ${p.name}` : `converged on ${p.name}`}, ` +
        `${model.acks.length} writes acknowledged, ${Date.now() - roundStart} ms: ${history.join('; ')}`);
    }
  } finally {
    await stopPair(pair);
  }
  const took = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`  partition campaign, seed ${SEED}: ${stats.rounds} rounds in ${took} s; ${stats.writesChecked} acknowledged writes checked ` +
    `(${stats.writesAcked} acknowledged, ${stats.writesFailed} failed or refused), ${stats.blocksChecked} new blocks checked`);
  console.log(`  faults: ${Object.entries(stats.faults).sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`  split brains: ${stats.splitBrainsExpected} expected (both sides acknowledged writes while disconnected), ` +
    `${stats.splitBrainsDetected} detected and refused (${stats.splitBrainsNecessary} where each side lacked writes the other acknowledged); ` +
    `${stats.converged} rounds converged`);
  console.log(`  promotions ${stats.promotions} (${stats.forcedPromotions} forced, ${stats.promotionsRefused} refused as INCONSISTENT), ` +
    `switchovers ${stats.switchovers}, discards ${stats.discards}, writes refused by a secondary (NOT_PRIMARY) ${stats.notPrimaryProbes}; silent losses ${stats.silentLosses}`);
  assert.is(stats.silentLosses, 0);
  assert.is(stats.rounds, ROUNDS);
});

campaign.run();
