// The handshake's decision (mirror/handshake.ts) against a model of the
// pair: random sequences of connect, disconnect, write, promote, demote,
// switchover, crash and discard, each node keeping its generations exactly
// as the pair does (rotated before the first change the partner lacks,
// taken by a resync target, settled by its source). The rule: every
// acknowledged write survives a handshake, unless the decision refused
// (split brain, unrelated data, a primary behind) and so changed nothing.
// Both nodes decide the same thing, each from its own side.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  NO_GENERATION, decide, newGeneration, rotated, settled, taken,
  type Decision, type Generations, type Side,
} from '../bindings/mirror/handshake.js';
import type { SplitBrainPolicy } from '../bindings/messages.js';

interface ModelNode {
  name: 'A' | 'B';
  role: 'primary' | 'secondary';
  g: Generations;
  /** The partner knows `g.current` (a change it lacks rotates first). */
  shared: boolean;
  /** Writes this node holds. */
  data: Set<number>;
  /** Writes this node changed since the nodes parted (its out-of-sync record). */
  changes: Set<number>;
  primarySince: number;
  inconsistent: boolean;
  discardLocal: boolean;
  policy: SplitBrainPolicy;
}

type Op =
  | { kind: 'connect' } | { kind: 'disconnect' } | { kind: 'write'; node: 0 | 1 }
  | { kind: 'promote'; node: 0 | 1 } | { kind: 'demote'; node: 0 | 1 } | { kind: 'crash'; node: 0 | 1 }
  | { kind: 'discard'; node: 0 | 1 };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'connect' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'disconnect' as const }) },
  { weight: 5, arbitrary: fc.constantFrom(0 as const, 1 as const).map((node) => ({ kind: 'write' as const, node })) },
  { weight: 2, arbitrary: fc.constantFrom(0 as const, 1 as const).map((node) => ({ kind: 'promote' as const, node })) },
  { weight: 1, arbitrary: fc.constantFrom(0 as const, 1 as const).map((node) => ({ kind: 'demote' as const, node })) },
  { weight: 1, arbitrary: fc.constantFrom(0 as const, 1 as const).map((node) => ({ kind: 'crash' as const, node })) },
  { weight: 1, arbitrary: fc.constantFrom(0 as const, 1 as const).map((node) => ({ kind: 'discard' as const, node })) },
);

function side(n: ModelNode): Side {
  return {
    role: n.role, ...n.g, inconsistent: n.inconsistent, changes: n.changes.size,
    primarySince: n.primarySince, splitBrain: n.policy, discardLocal: n.discardLocal,
  };
}

/** Runs one sequence; returns what was seen. Throws on a broken rule. */
function run(ops: Op[], policy: SplitBrainPolicy): { decisions: string[] } {
  let clock = 1;
  const fresh = (name: 'A' | 'B', role: 'primary' | 'secondary'): ModelNode => ({
    name, role, g: { current: role === 'primary' ? newGeneration() : NO_GENERATION, bitmap: NO_GENERATION, history: [] },
    shared: false, data: new Set(), changes: new Set(), primarySince: role === 'primary' ? clock++ : 0,
    inconsistent: false, discardLocal: false, policy,
  });
  const nodes: [ModelNode, ModelNode] = [fresh('A', 'primary'), fresh('B', 'secondary')];
  let connected = false;
  let nextWrite = 1;
  /** Writes acknowledged, and writes given up on purpose (a discarded side's). */
  const acked = new Set<number>();
  const discarded = new Set<number>();
  const decisions: string[] = [];

  const rotate = (n: ModelNode) => {
    if (!n.shared) return;
    n.g = rotated(n.g);
    n.shared = false;
  };

  const connect = () => {
    const [a, b] = nodes;
    const da = decide(side(a), side(b));
    const db = decide(side(b), side(a));
    decisions.push(`${da.kind}/${db.kind}`);
    agree(da, db);
    if (da.kind === 'refuse') return; // nothing changes on either node
    connected = true;
    if (da.kind === 'in-sync') {
      // The same generation: the same data (the records would name crash leftovers, which this model has none of).
      assert.equal([...a.data].sort(), [...b.data].sort(), `in sync means the same data; decisions ${decisions.join(' ')}`);
    } else {
      const target = da.kind === 'target' ? a : b;
      const source = target === a ? b : a;
      const resolved = /discards its changes/.test(da.reason);
      for (const w of target.data) {
        if (source.data.has(w)) continue;
        // Only a split brain resolved by a policy gives up the target's writes.
        if (!resolved) throw new Error(`write ${w} on the resync target is not on its source; decisions ${decisions.join(' ')}`);
        discarded.add(w);
      }
      target.g = taken(target.g, source.g);
      target.inconsistent = false;
      target.discardLocal = false;
      target.data = new Set(source.data);
      source.g = settled(source.g);
    }
    a.shared = b.shared = true;
    a.changes.clear();
    b.changes.clear();
  };

  for (const o of ops) {
    const n = 'node' in o ? nodes[o.node] : null;
    const other = n ? nodes[1 - (o as { node: number }).node] : null;
    switch (o.kind) {
      case 'connect': if (!connected) connect(); break;
      case 'disconnect': connected = false; break;
      case 'write': {
        if (n!.role !== 'primary') break; // a secondary refuses its callers (NOT_PRIMARY)
        if (connected && other!.role === 'secondary') {
          const w = nextWrite++;
          n!.data.add(w); other!.data.add(w); acked.add(w);
          break;
        }
        if (connected) break; // two primaries connected: refused before it gets here
        rotate(n!); // before the first change the partner lacks
        const w = nextWrite++;
        n!.data.add(w); n!.changes.add(w); acked.add(w);
        break;
      }
      case 'promote':
        if (n!.role === 'primary' || n!.inconsistent) break;
        n!.role = 'primary';
        n!.primarySince = clock++;
        if (connected && other!.role === 'secondary') break; // a switchover: no new generation
        connected = false; // a failover ends the old primary's connection
        if (n!.g.current === NO_GENERATION) n!.g = { ...n!.g, current: newGeneration() };
        rotate(n!);
        break;
      case 'demote':
        n!.role = 'secondary';
        break;
      case 'crash':
        // A restart keeps what is durable: generations, data, the record. The link goes.
        connected = false;
        break;
      case 'discard':
        n!.discardLocal = true;
        break;
    }
  }
  if (!connected) {
    // The end: both come back; the model must hold whatever the decision.
    connect();
  }
  const [a, b] = nodes;
  if (connected) {
    const final = a.role === 'primary' ? a : b.role === 'primary' ? b : a;
    for (const w of acked) {
      if (!discarded.has(w) && !final.data.has(w)) throw new Error(`acknowledged write ${w} lost without a refusal; decisions ${decisions.join(' ')}`);
    }
    assert.equal([...a.data].sort(), [...b.data].sort(), 'connected and resynced: the same data');
    assert.is(a.g.current, b.g.current, 'connected and resynced: the same generation');
  }
  return { decisions };
}

/** Both nodes decide the same thing, each from its own side. */
function agree(a: Decision, b: Decision): void {
  if (a.kind === 'refuse' || b.kind === 'refuse') {
    assert.is(a.kind, b.kind, 'a refusal on one side is a refusal on the other');
    assert.is((a as { splitBrain: boolean }).splitBrain, (b as { splitBrain: boolean }).splitBrain);
    return;
  }
  if (a.kind === 'source') assert.is(b.kind, 'target');
  if (a.kind === 'target') assert.is(b.kind, 'source');
  if (a.kind === 'in-sync') assert.is(b.kind, 'in-sync');
}

test('random histories: every acknowledged write survives, or the handshake refuses; both sides agree', () => {
  const seen = new Map<string, number>();
  for (const policy of ['refuse', 'discard-younger-primary', 'discard-least-changes', 'discard-zero-changes'] as const) {
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      for (const d of run(ops, policy).decisions) seen.set(d, (seen.get(d) ?? 0) + 1);
    }), { numRuns: Number(process.env.GENERATION_RUNS ?? 1500) });
  }
  // The model reached every kind of decision (else it proves little).
  for (const d of ['in-sync/in-sync', 'source/target', 'target/source', 'refuse/refuse']) assert.ok((seen.get(d) ?? 0) > 0, `decision ${d} reached (${[...seen].join(', ')})`);
});

// --- the cases a user meets, by name ---------------------------------------------------------

const g = (current: string, bitmap = NO_GENERATION, history: string[] = []): Generations => ({ current, bitmap, history });
const s = (role: 'primary' | 'secondary', gens: Generations, more: Partial<Side> = {}): Side => ({
  role, ...gens, inconsistent: false, changes: 0, primarySince: 0, splitBrain: 'refuse', discardLocal: false, ...more,
});
const C0 = '00000000000000c0', C1 = '00000000000000c1', C2 = '00000000000000c2', X = '00000000000000ff';

test('a partition then a promotion, both written: split brain whatever roles they come back in', () => {
  const a = g(C1, C0); // the old primary wrote while parted
  const b = g(C2, C0); // the promoted secondary wrote too
  for (const [ra, rb] of [['secondary', 'primary'], ['primary', 'secondary'], ['primary', 'primary'], ['secondary', 'secondary']] as const) {
    const d = decide(s(ra, a), s(rb, b));
    assert.is(d.kind, 'refuse', `${ra}/${rb}`);
    assert.ok(d.kind === 'refuse' && d.splitBrain, `${ra}/${rb} is a split brain`);
  }
});

test("DRBD #145: a secondary closed cleanly while its primary keeps writing rejoins behind, by the primary's record", () => {
  assert.equal(decide(s('primary', g(C1, C0)), s('secondary', g(C0))), { kind: 'source', full: false, reason: 'the partner missed what this node changed since they parted' });
  assert.equal(decide(s('secondary', g(C0)), s('primary', g(C1, C0))), { kind: 'target', full: false, reason: 'this node missed what the partner changed since they parted' });
});

test('a primary behind its partner is never resynced: refused, saying what to do', () => {
  const d = decide(s('primary', g(C0)), s('secondary', g(C1, C0)));
  assert.is(d.kind, 'refuse');
  assert.match((d as { reason: string }).reason, /restart it as secondary/);
});

test('a node new to the pair takes everything, compared page by page; unrelated data is refused', () => {
  assert.equal(decide(s('secondary', g(NO_GENERATION)), s('primary', g(C0))).kind, 'target');
  assert.ok((decide(s('primary', g(C0)), s('secondary', g(NO_GENERATION))) as { full: boolean }).full);
  const u = decide(s('primary', g(C0)), s('secondary', g(X)));
  assert.ok(u.kind === 'refuse' && !u.splitBrain && /unrelated/.test(u.reason));
});

test('split-brain policies: discard-local on one side, or the same automatic policy on both; never the primary', () => {
  const a = g(C1, C0), b = g(C2, C0);
  assert.is(decide(s('secondary', a, { discardLocal: true }), s('primary', b)).kind, 'target');
  assert.is(decide(s('primary', b), s('secondary', a, { discardLocal: true })).kind, 'source');
  // The side to discard is primary: refused.
  assert.is(decide(s('primary', a, { discardLocal: true }), s('secondary', b)).kind, 'refuse');
  const least = (n: number) => ({ splitBrain: 'discard-least-changes' as const, changes: n });
  assert.is(decide(s('secondary', a, least(3)), s('primary', b, least(9))).kind, 'target');
  assert.is(decide(s('secondary', a, least(9)), s('primary', b, least(3))).kind, 'refuse', 'the primary would have to discard');
  assert.is(decide(s('secondary', a, least(3)), s('primary', b, { changes: 9 })).kind, 'refuse', 'policies differ: refused');
  const younger = (t: number) => ({ splitBrain: 'discard-younger-primary' as const, primarySince: t });
  assert.is(decide(s('secondary', a, younger(20)), s('primary', b, younger(10))).kind, 'target');
  const zero = (n: number) => ({ splitBrain: 'discard-zero-changes' as const, changes: n });
  assert.is(decide(s('secondary', a, zero(0)), s('primary', b, zero(5))).kind, 'target');
  assert.is(decide(s('secondary', a, zero(2)), s('primary', b, zero(5))).kind, 'refuse');
});

test('generation transitions: rotated keeps the first bitmap generation, settled retires it, taken keeps history', () => {
  const r1 = rotated(g(C0), C1);
  assert.equal(r1, g(C1, C0));
  assert.equal(rotated(r1, C2), g(C2, C0, [C1]), 'a second rotation keeps the bitmap generation: the record covers since C0');
  assert.equal(settled(g(C2, C0, [C1])), g(C2, NO_GENERATION, [C0, C1]));
  assert.equal(taken(g(C0), g(C2, C0, [C1])), g(C2, NO_GENERATION, [C0, C1]));
  assert.equal(taken(g(NO_GENERATION), g(C1)), g(C1));
});

test.run();
