// A pair with a third vote, over real processes, for the quorum tests
// (quorum-rules.test.ts, quorum-campaign.test.ts, quorum-etcd.test.ts):
// two `twinpage serve` nodes with --failover auto, and an arbiter (a
// `twinpage witness` process, or an etcd the caller started), every link
// through its own nemesis (test/nemesis.ts):
//
//   A ──dials──▶ nemesis "pair" ──▶ B (listening)
//   A ──────────▶ nemesis "A-witness" ──▶ witness
//   B ──────────▶ nemesis "B-witness" ──▶ witness
//
// so that either node can be cut from its partner, from the arbiter, or
// from both. Nodes can be SIGKILLed and started again (in either role),
// SIGSTOPped and continued; the witness killed and started again on its
// port (its record kept in its folder).
//
// Timings (short, so that a failover takes about a second and a campaign
// of 30 rounds fits the per-file limit on a loaded 2-core machine):
//   - the lease: 1000 ms, the least serve's --lease-ms takes (the witness's
//     --ttl-ms matches it: a pair sizes its margin from --lease-ms before the
//     witness's first reply). The pair counts it as held for 900 ms (less a
//     margin of 100 ms) and renews a third of the way through: a renewal
//     every ~300 ms leaves two more tries before it runs out. (The witness
//     would take 100 ms, but a 50 ms lease is less than one stall of a
//     loaded event loop.)
//   - heartbeat 100 ms, timeout 500 ms: a secondary takes its primary for
//     silent after half a second (a stalled event loop of its own is
//     recognised as such by failover.ts and not held against the partner).
//   - a restarted witness grants no lease for one lease length (1 s).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeProcess, type Reply } from './pair-process.js';
import { Nemesis } from './nemesis.js';
import { WitnessProcess } from './witness-process.js';
import { SLOT, slotData, versionOf } from './slots.js';
import { ServeNode } from './serve-node.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const LEASE_MS = 1000;
export const HEARTBEAT_MS = 100;
export const TIMEOUT_MS = 500;

export { SLOT, slotData, versionOf } from './slots.js';

export async function until<T>(what: string, probe: () => Promise<T | null | false | undefined>, ms = 20000, every = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// --- nodes ---------------------------------------------------------------------------------

export type Name = 'A' | 'B';
export type Role = 'primary' | 'secondary';

export interface Sense {
  role: Role; health: 'ok' | 'degraded' | 'split-brain'; connected: boolean; peerRole: Role | null;
  inFlight: number; lagPages: number; inconsistent: boolean; refused: string | null; generation: string; epoch: number;
  quorum: { held: boolean; leaseMs: number; epoch: number; outdated: string | null; waiting: number; lastError: string | null } | null;
  lastError: { code: string; message: string; at: number } | null;
}

/** One node as a `twinpage serve` process that can be killed, stopped, and started again. */
export class QNode extends ServeNode {
  /** B's port, fixed at its first start. */
  port = 0;
  nodeId = '';
  starts = 0;
  /** SIGSTOPped now. */
  stopped = false;

  constructor(readonly name: Name, readonly dir: string, readonly args: () => string[]) { super(); }

  get alive(): boolean {
    return this.proc !== null && !this.proc.gone;
  }

  /** The role its last `role` event (or its start) says. */
  get role(): Role {
    const events = this.proc?.events ?? [];
    for (let i = events.length - 1; i >= 0; i--) if (events[i].event === 'role') return events[i].role as Role;
    return this.startedAs;
  }

  startedAs: Role = 'secondary';

  async start(role: Role): Promise<void> {
    this.startedAs = role;
    this.stopped = false;
    this.proc = new NodeProcess(['--dir', this.dir, '--role', role, ...this.args(), '--cache-mb', '4', '--extent-pages', '8']);
    this.starts++;
    const e = await this.proc.event(this.name === 'A' ? 'started' : 'listening', 20000);
    if (this.name === 'B') this.port = e.port as number;
    this.nodeId = e.nodeId as string;
  }

  /** Events of processes of this node killed since, by kind. */
  readonly past: Record<string, number> = {};

  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    for (const e of p?.events ?? []) this.past[e.event as string] = (this.past[e.event as string] ?? 0) + 1;
    if (p && this.stopped) p.proc.kill('SIGCONT');
    this.stopped = false;
    await p?.kill();
  }

  stop(): void {
    if (!this.proc || this.stopped) return;
    this.stopped = true;
    this.proc.proc.kill('SIGSTOP');
  }

  cont(): void {
    if (!this.proc || !this.stopped) return;
    this.stopped = false;
    this.proc.proc.kill('SIGCONT');
  }





  async sense(): Promise<Sense | null> {
    if (this.stopped) return null;
    const r = await this.send({ cmd: 'sense' });
    return r.ok ? r.sense as Sense : null;
  }






  /** Events of the current process of a kind, counted. */
  count(event: string): number {
    return (this.proc?.events ?? []).filter((e) => e.event === event).length;
  }

  /** Events of a kind, counted over every process of this node. */
  total(event: string): number {
    return (this.past[event] ?? 0) + this.count(event);
  }
}

export function write(n: QNode, block: string, slot: number, version: number, ms?: number): Promise<Reply> {
  return n.send({ cmd: 'write', block, offset: slot * SLOT, data: slotData(slot, version).toString('base64') }, ms);
}

// --- the trio ------------------------------------------------------------------------------

export interface TrioOptions {
  /** etcd's client URL instead of a witness process (the caller runs etcd). */
  etcd?: string;
  /** A prefix of the pair's keys in etcd (one per trio). */
  etcdPrefix?: string;
  onNoQuorum?: 'suspend' | 'error';
  /** The lease (ms): the witness's --ttl-ms and serve's --lease-ms. */
  leaseMs?: number;
}

/** The arbiter as a process this test runs: a witness (killed, started again on its port). */
export class Witness {
  proc: WitnessProcess | null = null;
  port = 0;
  starts = 0;
  constructor(readonly dir: string, readonly secret: string, readonly ttlMs: number) {}
  get alive(): boolean { return this.proc !== null; }
  async start(): Promise<void> {
    this.proc = await WitnessProcess.start(this.dir, this.secret, { ttlMs: this.ttlMs, port: this.port });
    this.port = this.proc.port;
    this.starts++;
  }
  /** Events of processes of this node killed since, by kind. */
  readonly past: Record<string, number> = {};

  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    for (const e of p?.events ?? []) this.past[e.event as string] = (this.past[e.event as string] ?? 0) + 1;
    await p?.kill();
  }
}

export class Trio {
  readonly a: QNode;
  readonly b: QNode;
  readonly nodes: Record<Name, QNode>;
  witness: Witness | null = null;
  pairLink!: Nemesis;
  /** Each node's link to its arbiter. */
  readonly arbiterLink: Partial<Record<Name, Nemesis>> = {};
  readonly leaseMs: number;

  private constructor(readonly dir: string, readonly secret: string, readonly options: TrioOptions) {
    this.leaseMs = options.leaseMs ?? LEASE_MS;
    const common = (n: Name): string[] => {
      const arbiter = options.etcd
        ? ['--etcd', `http://127.0.0.1:${this.arbiterLink[n]!.port}`, '--etcd-prefix', options.etcdPrefix ?? 'twinpage-quorum']
        : ['--witness', `127.0.0.1:${this.arbiterLink[n]!.port}`];
      return ['--secret-file', secret, '--failover', 'auto', ...arbiter, '--lease-ms', String(this.leaseMs),
        '--on-no-quorum', options.onNoQuorum ?? 'suspend', '--heartbeat-ms', String(HEARTBEAT_MS), '--timeout-ms', String(TIMEOUT_MS)];
    };
    this.a = new QNode('A', join(dir, 'a'), () => ['--peer', `127.0.0.1:${this.pairLink.port}`, ...common('A')]);
    this.b = new QNode('B', join(dir, 'b'), () => ['--listen', `127.0.0.1:${this.b.port}`, ...common('B')]);
    this.nodes = { A: this.a, B: this.b };
  }

  /** Starts the arbiter's links, B, the pair's link, A; waits until they are in sync. */
  static async start(options: TrioOptions = {}, roles: { A: Role; B: Role } = { A: 'primary', B: 'secondary' }): Promise<Trio> {
    const dir = await mkdtemp(join(tmpdir(), 'twinpage-quorum-'));
    const secret = join(dir, 'secret');
    await writeFile(secret, 'the quorum tests share this secret\n', { mode: 0o600 });
    const t = new Trio(dir, secret, options);
    try {
      let target: number;
      if (options.etcd) {
        target = Number(new URL(options.etcd).port);
      } else {
        t.witness = new Witness(join(dir, 'witness'), secret, t.leaseMs);
        await t.witness.start();
        target = t.witness.port;
      }
      t.arbiterLink.A = await Nemesis.start({ port: target });
      t.arbiterLink.B = await Nemesis.start({ port: target });
      await t.b.start(roles.B);
      t.pairLink = await Nemesis.start({ port: t.b.port });
      await t.a.start(roles.A);
      await t.inSync();
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  async close(): Promise<void> {
    await Promise.all([this.a.kill(), this.b.kill()]);
    await this.witness?.kill();
    for (const n of [this.pairLink, this.arbiterLink.A, this.arbiterLink.B]) await n?.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Heals every link. */
  heal(): void {
    this.pairLink.heal();
    this.arbiterLink.A!.heal();
    this.arbiterLink.B!.heal();
  }

  /** Waits until the nodes are connected, one primary and one secondary, nothing lagging or unacknowledged. */
  async inSync(ms = 20000): Promise<{ primary: QNode; secondary: QNode }> {
    const { a, b } = this;
    return until('A and B in sync', async () => {
      const [sx, sy] = [await a.sense(), await b.sense()];
      if (!sx || !sy || !sx.connected || !sy.connected || sx.refused || sy.refused) return null;
      const [p, s, sp, ss] = sx.role === 'primary' ? [a, b, sx, sy] : [b, a, sy, sx];
      if (sp.role !== 'primary' || ss.role !== 'secondary' || ss.peerRole !== 'primary' || sp.peerRole !== 'secondary') return null;
      if (sp.lagPages || sp.inFlight || ss.inconsistent || sp.generation !== ss.generation) return null;
      // And the primary's resync of this connection, or of its promotion on it, is done (it
      // says so even when it found nothing to send): a resync planned at a switchover first
      // compares checksums, with nothing lagging or in flight meanwhile.
      const events = p.proc!.events;
      const last = (name: string) => { for (let i = events.length - 1; i >= 0; i--) if (events[i].event === name) return i; return -1; };
      if (last('resync-done') < Math.max(last('connected'), last('role'))) return null;
      return { primary: p, secondary: s };
    }, ms);
  }

  /** The record as the witness last wrote it (from its events), or null. */
  witnessRecord(): { epoch: number; primary: string | null; outdated: string | null; generation: string } | null {
    const events = this.witness?.proc?.events ?? [];
    for (let i = events.length - 1; i >= 0; i--) if (events[i].record) return events[i].record as never;
    return null;
  }
}

// --- the workload ------------------------------------------------------------------------------

/** An acknowledged write: `order` counts the writes issued before it (exact, where two times of one millisecond are not). */
export interface Ack { slot: number; version: number; node: Name; order: number; sent: number; at: number }

/**
 * Writers writing slots of one block through whichever node `pick` names,
 * one write at a time per slot, each version of a slot sent once: whatever
 * a slot holds says which write it was, and an older version than one
 * acknowledged means a lost write.
 */
export class Workload {
  readonly issued: Uint32Array;
  readonly busy: Uint8Array;
  /** The highest version of each slot acknowledged. */
  readonly acked: Uint32Array;
  acks: Ack[] = [];
  failed: Record<string, number> = {};
  /** Every write's outcome, by slot (for a failure's report). */
  readonly history: Array<Array<{ version: number; node: Name; code: string; sent: number; at: number }>>;
  #writing = false;
  #writers: Promise<void>[] = [];
  #order = 0;

  /** Writes issued so far: a write with `order` at least this many was issued after now. */
  get writesIssued(): number { return this.#order; }

  constructor(readonly block: string, readonly slots: number, readonly pick: () => QNode | null, readonly random: () => number = Math.random) {
    this.issued = new Uint32Array(slots);
    this.busy = new Uint8Array(slots);
    this.acked = new Uint32Array(slots);
    this.history = Array.from({ length: slots }, () => []);
  }

  /** One write of the next version of `slot` through `n` (a reply later than `ms` fails the test). */
  async one(n: QNode, slot: number, ms = 60000): Promise<Reply> {
    const version = ++this.issued[slot];
    this.busy[slot] = 1;
    const order = this.#order++;
    const sent = Date.now();
    try {
      const r = await write(n, this.block, slot, version, ms);
      this.history[slot].push({ version, node: n.name, code: r.ok ? 'ok' : String(r.code), sent, at: Date.now() });
      if (r.ok) {
        this.acks.push({ slot, version, node: n.name, order, sent, at: Date.now() });
        if (version > this.acked[slot]) this.acked[slot] = version;
      } else {
        const code = String(r.code);
        this.failed[code] = (this.failed[code] ?? 0) + 1;
      }
      return r;
    } finally {
      this.busy[slot] = 0;
    }
  }

  /** Writes every slot once through `n`, in order; each must be acknowledged. */
  async fill(n: QNode): Promise<void> {
    for (let s = 0; s < this.slots; s++) {
      const r = await this.one(n, s);
      if (!r.ok) throw new Error(`node ${n.name}: write of slot ${s} failed: ${String(r.code)} ${String(r.error)}`);
    }
  }

  start(writers = 4): void {
    this.#writing = true;
    this.#writers = Array.from({ length: writers }, async () => {
      while (this.#writing) {
        const n = this.pick();
        if (!n || !n.alive) { await sleep(20); continue; }
        const free = [];
        for (let s = 0; s < this.slots; s++) if (!this.busy[s]) free.push(s);
        if (!free.length) { await sleep(5); continue; }
        const r = await this.one(n, free[Math.floor(this.random() * free.length)]);
        if (!r.ok) await sleep(10);
      }
    });
  }

  /** Stops the writers and waits for the writes under way. */
  async stop(): Promise<void> {
    this.#writing = false;
    await Promise.all(this.#writers);
    this.#writers = [];
  }

  /** What is wrong with `data` (every slot's version, read from a node) as the final primary's. */
  problems(data: number[], name: string): string[] {
    const out: string[] = [];
    data.forEach((v, slot) => {
      if (v < 0 || v > this.issued[slot]) out.push(`${name} slot ${slot} holds bytes no write wrote (${v})`);
      else if (v < this.acked[slot]) {
        const ack = this.acks.find((x) => x.slot === slot && x.version === this.acked[slot])!;
        out.push(`LOST on ${name}: slot ${slot} holds version ${v}, version ${this.acked[slot]} was acknowledged by ${ack.node}`);
      }
    });
    return out;
  }
}
