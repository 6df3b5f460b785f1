// The demo's partition phase (`npm start`): the link between the two nodes is
// cut while both live, through the demo's proxy (demo-proxy.ts), with writes
// going on through the primary. What the quorum rules promise, checked here:
//
//   - the primary keeps acknowledging writes: it holds the arbiter's lease and
//     has marked the secondary outdated there before its first write the
//     secondary lacks;
//   - the secondary, whose primary is gone as far as it can tell, asks the
//     arbiter to take over and is refused (the lease is held, it is
//     outdated): it stays secondary, so there is one primary, not two;
//   - healed, the secondary rejoins, is resynced, verify() finds no
//     difference, every acknowledged write (those of the partition too) is on
//     both nodes, neither node reports a split brain, and the primary gives
//     the lease back (so a later failover need not wait for it to run out).

import { performance } from 'node:perf_hooks';
import type { DemoProxy } from './demo-proxy.js';
import { type Book, checkAll, runWriters } from './demo-data.js';
import { type Bar, type Out, fmt, ms, must, sleep, timed } from './demo-output.js';
import type { NodeEvent, NodeProcess } from './node-process.js';

export interface PartitionContext {
  out: Out;
  setBar: (b: Bar | null) => void;
  /** The primary (it dials B through the proxy) and the secondary. */
  a: NodeProcess;
  b: NodeProcess;
  aId: string;
  bId: string;
  proxy: DemoProxy;
  /** The arbiter, as the narration names it ('the witness', 'etcd'). */
  arbiter: string;
  /** The pair's record as the arbiter holds it (the witness's last record event; etcd: read by the demo), or null when unknown. */
  record: () => Promise<Record<string, unknown> | null>;
  blockId: string;
  book: Book;
  writers: number;
  /** How long the link stays cut, s. */
  seconds: number;
  /** The nodes' --timeout-ms: how long B waits out a silent link. */
  timeoutMs: number;
  /** The narration's step numbers start here. */
  step: number;
}

export interface PartitionSummary {
  /** Writes acknowledged by the primary while the link was cut. */
  writesAcknowledged: number;
  /** Writes acknowledged in all of the phase (before the cut, during, and those in flight at it). */
  writesInPhase: number;
  /** Acknowledged writes not found on one of the nodes after the heal (0). */
  lost: number;
  /** A split brain reported by either node (an event, or its sense()). */
  splitBrain: boolean;
  /** The secondary asked the arbiter to take over, was refused, and stayed secondary. */
  refusedPromotion: boolean;
  /** Cut to the first refusal the secondary reported (0: none). */
  refusedAfterMs: number;
  /** The secondary's role at the end of the cut, and why the arbiter refused it (its last error). */
  secondaryRole: string;
  refusal: string | null;
  /** The primary held the lease with the secondary marked outdated at the end of the cut. */
  leaseHeld: boolean;
  outdatedAtArbiter: boolean;
  cutMs: number;
  /** Heal to both connected; connected to the secondary resynced and verified. */
  rejoinMs: number;
  resyncMs: number;
  differences: number;
  /** The lease given back and the mark cleared at the arbiter after the heal, and how long after. */
  leaseReleased: boolean;
  leaseReleasedMs: number;
}

type Sense = {
  role: string; health: string; connected: boolean; lagPages: number; inFlight: number; inconsistent: boolean;
  refused: string | null; lastError: { message: string } | null;
  quorum: { held: boolean; leaseMs: number; outdated: string | null } | null;
};

/** How serve reports the arbiter refusing a secondary's automatic failover (its sense().lastError). */
const REFUSED = /automatic failover refused by the arbiter/;

const sense = async (n: NodeProcess, name: string) => (await must(n, name, { cmd: 'sense' })).sense as Sense;

export async function partitionPhase(c: PartitionContext): Promise<PartitionSummary> {
  const { out, a, b, proxy, book } = c;
  let step = c.step;
  const splitBrains: string[] = [];
  const watchA = a.onEvent((e) => { if (e.event === 'split-brain') splitBrains.push(`A: ${String(e.message)}`); });
  const watchB = b.onEvent((e) => { if (e.event === 'split-brain') splitBrains.push(`B: ${String(e.message)}`); });
  // B's role events: a promotion here would be the split brain the arbiter exists to prevent.
  const bRoles: NodeEvent[] = [];
  const watchRoles = b.onEvent((e) => { if (e.event === 'role' || e.event === 'failover') bRoles.push(e); });
  try {
    // Writers run through the whole phase: before the cut, during it, until the heal.
    let stop = false;
    const w = runWriters(a, c.blockId, book, c.writers, () => stop);
    const failedEarly = () => { if (w.stats.failed.length) throw new Error(`a write on A failed in the partition phase: ${JSON.stringify(w.stats.failed[0])}`); };
    await sleep(500);
    failedEarly();
    // Cut with writes in flight: they are the first the secondary lacks.
    for (let i = 0; book.inFlight === 0 && i < 1000; i++) await new Promise((r) => setImmediate(r));
    const inFlight = book.inFlight;
    const before = w.stats.acked;
    const aEvents = a.events.length;
    const bEvents = b.events.length;
    proxy.cut();
    const cutAt = performance.now();
    out.say(`${step++}. The link is cut at the proxy with ${inFlight} write${inFlight === 1 ? '' : 's'} in flight, both nodes alive: A's side of it is reset (A hears`);
    out.say(`   of it at once), B's side is held open and silent (B can tell only from the silence, after ${c.timeoutMs} ms), new connections are refused.`);
    out.say(`   A asks ${c.arbiter} for the lease and marks B outdated there before it acknowledges a write B lacks;`);
    out.say(`   B, once it takes A for gone, asks ${c.arbiter} to take over (again at every heartbeat), and must be refused.`);

    const bar = out.bar('cut     ');
    c.setBar(bar);
    // The cut lasts `seconds`, and at least until B asked and was refused (B asks only after its timeout), 10 s more at most.
    let refusedAt = 0;
    for (;;) {
      failedEarly();
      const el = (performance.now() - cutAt) / 1000;
      if (!refusedAt && REFUSED.test((await sense(b, 'node B')).lastError?.message ?? '')) refusedAt = performance.now();
      if (el >= c.seconds && (refusedAt || el >= c.seconds + 10)) break;
      bar.update(el / c.seconds, `${el.toFixed(1)}/${c.seconds} s  ${fmt(w.stats.acked - before)} writes acknowledged by A alone`);
      await sleep(100);
    }
    const cutMs = performance.now() - cutAt;
    const [sa, sb] = [await sense(a, 'node A'), await sense(b, 'node B')];
    const rec = await c.record();
    const during = w.stats.acked - before;
    stop = true;
    await timed(w.done, 30000, 'the writers on A');
    failedEarly();
    bar.done(`${fmt(during)} writes acknowledged by A while cut off`);
    c.setBar(null);

    const leaseHeld = sa.role === 'primary' && sa.quorum?.held === true && sa.quorum.outdated === c.bId;
    const outdatedAtArbiter = rec !== null && rec.primary === c.aId && rec.outdated === c.bId;
    const refusal = sb.lastError?.message ?? null;
    const asked = refusal !== null && REFUSED.test(refusal);
    const refusedPromotion = sb.role === 'secondary' && bRoles.length === 0 && asked;
    out.say(`   A acknowledged ${fmt(during)} write${during === 1 ? '' : 's'} in ${ms(cutMs)} ms while cut off: ` +
      (leaseHeld ? `it holds the arbiter's lease (${ms(sa.quorum!.leaseMs)} ms left, renewed as it goes), B marked outdated there` : `BUT its quorum state is ${JSON.stringify(sa.quorum)}`) +
      (rec ? ` (the arbiter's record: epoch ${String(rec.epoch)}, primary ${rec.primary === c.aId ? 'A' : String(rec.primary)}, outdated ${rec.outdated === c.bId ? 'B' : String(rec.outdated)}).` : '.'));
    out.say(refusedPromotion
      ? `   B is still secondary: its automatic failover was refused, first ${ms(refusedAt - cutAt)} ms after the cut (${refusal}).`
      : sb.role !== 'secondary' || bRoles.length
        ? `   B TOOK OVER while A was still acknowledging (B is ${sb.role}; its events: ${JSON.stringify(bRoles)}): two primaries, what this phase must never see.`
        : `   B is secondary but did not ask ${c.arbiter} to take over${refusal ? ` (its last error: ${refusal})` : ''}: this phase expects it to ask and be refused.`);

    // The heal: A's dialer gets through on its next attempt; the handshake finds B behind, A resyncs it.
    proxy.heal();
    const healAt = performance.now();
    await timed(a.event('connected', 15000, aEvents), 16000, 'node A reconnecting after the heal');
    await timed(b.event('connected', 15000, bEvents), 16000, 'node B reconnecting after the heal');
    const rejoinMs = performance.now() - healAt;
    out.say(`${step++}. The link is healed: A redialled and reconnected ${ms(rejoinMs)} ms later (the proxy refused ${proxy.refused} attempt${proxy.refused === 1 ? '' : 's'} meanwhile); B is behind, so A resyncs it.`);
    const resyncStart = performance.now();
    // A split brain never gets quiet: it is reported at once rather than waited out.
    const differences = await resyncAndVerify(a, 'node A', resyncStart + 60000, () => splitBrains.length > 0);
    const resyncMs = performance.now() - resyncStart;
    const released = !splitBrains.length && await leaseGivenBack(a, c.record, c.bId, healAt + 30000);
    const leaseReleasedMs = performance.now() - healAt;
    out.say(`   B resynced and verify() found ${differences} difference${differences === 1 ? '' : 's'} after ${ms(resyncMs)} ms; ` +
      (released ? `A gave the lease back and cleared B's mark at the arbiter ${ms(leaseReleasedMs)} ms after the heal.` : 'A did NOT give the lease back in 30 s.'));

    const endA = await checkAll(a, 'node A', c.blockId, book, null, true);
    const endB = await checkAll(b, 'node B', c.blockId, book, null, false);
    const [fa, fb] = [await sense(a, 'node A'), await sense(b, 'node B')];
    for (const [name, s] of [['A', fa], ['B', fb]] as const) {
      if (s.health === 'split-brain' || s.refused) splitBrains.push(`${name}: health ${s.health}, refused ${s.refused}`);
    }
    const lost = endA.lost + endB.lost;
    out.say(`   Read back on both nodes: ${fmt(endA.checked)} written slots, ` +
      (lost ? `LOST on A: ${endA.lost} (${endA.firstLoss ?? '-'}), on B: ${endB.lost} (${endB.firstLoss ?? '-'})` : 'each holding its latest acknowledged write (those of the partition too) on A and on B') +
      `; split brain: ${splitBrains.length ? `YES (${splitBrains.join('; ')})` : 'none on either node'}; A is ${fa.role}, B is ${fb.role}.`);
    return {
      writesAcknowledged: during, writesInPhase: w.stats.acked, lost, splitBrain: splitBrains.length > 0,
      refusedPromotion, refusedAfterMs: refusedAt ? Math.round(refusedAt - cutAt) : 0, leaseReleased: released, secondaryRole: sb.role, refusal, leaseHeld, outdatedAtArbiter,
      cutMs: Math.round(cutMs), rejoinMs: Math.round(rejoinMs), resyncMs: Math.round(resyncMs), differences,
      leaseReleasedMs: Math.round(leaseReleasedMs),
    };
  } finally {
    watchA(); watchB(); watchRoles();
  }
}

/** Waits for the primary to be quiet (connected, nothing lagging or in flight), then verify(); again while differences remain. */
export async function resyncAndVerify(primary: NodeProcess, name: string, deadline: number, giveUp: () => boolean = () => false): Promise<number> {
  for (;;) {
    let quiet = 0;
    while (quiet < 2 && performance.now() < deadline && !giveUp()) {
      const s = await sense(primary, name);
      quiet = s.connected && s.lagPages === 0 && s.inFlight === 0 ? quiet + 1 : 0;
      if (quiet < 2) await sleep(50);
    }
    const v = (await must(primary, name, { cmd: 'verify' }, 120000)).verify as { differences: unknown[] };
    if (v.differences.length === 0 || performance.now() > deadline || giveUp()) return v.differences.length;
    await sleep(100);
  }
}

/** Waits until the primary holds no lease and the arbiter's record marks no node outdated. */
async function leaseGivenBack(primary: NodeProcess, record: () => Promise<Record<string, unknown> | null>, outdated: string, deadline: number): Promise<boolean> {
  while (performance.now() < deadline) {
    const s = await sense(primary, 'node A');
    const rec = await record();
    if (s.quorum && !s.quorum.held && s.quorum.outdated === null && (rec === null || rec.outdated !== outdated)) return true;
    await sleep(50);
  }
  return false;
}
