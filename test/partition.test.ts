// Partitions over real processes: two `twinpage serve` nodes, A dialing B
// through a nemesis (test/nemesis.ts) that cuts the link (reset or
// blackhole), drops one direction, delays, heals.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeProcess, type Reply } from './pair-process.js';
import { Nemesis } from './nemesis.js';

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

cases.run();
