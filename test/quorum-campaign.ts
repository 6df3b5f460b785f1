// The quorum campaign (run by quorum-campaign.test.ts with a witness, and by
// quorum-etcd.test.ts with etcd): one pair with automatic failover and its
// arbiter (test/quorum-pair.ts), rounds of random faults under four writers
// that write through whichever node is primary (as its last role event
// says), then everything healed and a checker reading every node back.
//
// Faults: the pair's link cut (reset or blackhole) and healed; a node cut
// from the arbiter and healed; the witness SIGKILLed and started again (its
// record kept); either node SIGKILLed and started again as secondary; a node
// SIGSTOPped past the lease and continued. Nobody promotes or demotes a node
// during a round: every change of primary is the pair's own (a failover
// through the arbiter, a fencing).
//
// At the end of a round everything is healed, continued and started again;
// where both nodes came back secondary (a restarted node always starts as
// one), an operator promotes one, as the arbiter allows (a node outdated
// there is refused; a refusal is counted and the other one tried). Then the
// checker, once the pair is in sync:
//   - no split brain, ever (a split-brain event or a refused handshake
//     fails the run): with automatic failover and an arbiter there must be
//     none;
//   - every write any node acknowledged, in any round, is on the final
//     primary (its version of the slot or a later one), and no slot holds
//     bytes no write wrote;
//   - the secondary holds the same, and verify finds no difference.
import * as assert from 'uvu/assert';
import { rng } from './data.js';
import { Trio, Workload, sleep, until, TIMEOUT_MS, type Name, type QNode, type Sense, type TrioOptions } from './quorum-pair.js';

const SLOTS = 32;
const other = (n: Name): Name => (n === 'A' ? 'B' : 'A');

export interface CampaignOptions extends TrioOptions {
  name: string;
  rounds: number;
  seed: number;
  /** The variables that replay a run to the end of round `round` (e.g. QUORUM_SEED=… QUORUM_ROUNDS=…). */
  replay: (rounds: number) => string;
  /** Whether the arbiter can be killed and started again (a witness process). */
  killArbiter: boolean;
}

/** A uvu test (or suite) to register the campaign's tests on. */
type Test = ((name: string, fn: () => Promise<void>) => void) & { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void };

/** Rounds per test: each test stays well inside TEST_TIMEOUT on a loaded machine. */
const CHUNK = 5;

/**
 * Registers the campaign on `test`: one pair for the whole file, started
 * before the first test; its rounds in tests of CHUNK rounds each (a test
 * after a failed one fails at once); then a test printing the figures and
 * checking them.
 */
export function quorumCampaign(test: Test, o: CampaignOptions): void {
  const stats = {
    rounds: 0, faults: {} as Record<string, number>, failovers: 0, refusedByArbiter: 0, operatorPromotions: 0,
    operatorRefused: 0, fenced: 0, splitBrains: 0, silentLosses: 0, writesChecked: 0,
  };
  let t!: Trio;
  let a!: QNode;
  let b!: QNode;
  let nodes!: Record<Name, QNode>;
  let block = '';
  let w!: Workload;
  let wrandom = rng(o.seed ^ 0x5bd1e995);
  let started = 0;
  let broken: string | null = null;
  // Refusals of an automatic failover by the arbiter, as seen in sense() (each once, by its time).
  const refusalsSeen = new Set<string>();
  let polling = false;
  let poller: Promise<void> = Promise.resolve();

  test.before(async () => {
    console.log(`  ${o.name}: seed ${o.seed} (replay: ${o.replay(o.rounds)}), ${o.rounds} rounds`);
    t = await Trio.start(o);
    ({ a, b, nodes } = t);
    started = Date.now();
    polling = true;
    poller = (async () => {
      while (polling) {
        for (const n of [a, b]) {
          if (!n.alive || n.stopped) continue;
          const s = await n.sense().catch(() => null);
          const e = s?.lastError;
          if (e && /automatic failover refused by the arbiter/.test(e.message)) refusalsSeen.add(`${n.name}${n.starts}@${e.at}`);
        }
        await sleep(150);
      }
    })();
    block = ((await a.must({ cmd: 'allocate', size: SLOTS * 4096 })).block as { id: string }).id;
    w = new Workload(block, SLOTS, () => {
      const ps = [a, b].filter((n) => n.alive && !n.stopped && n.role === 'primary');
      return ps.length ? ps[Math.floor(wrandom() * ps.length)] : null;
    }, () => wrandom());
    await w.fill(a);
    await t.inSync();
  });

  test.after(async () => {
    polling = false;
    await poller;
    await t?.close();
  });

  const runRound = async (round: number): Promise<void> => {
    const seed = (o.seed + Math.imul(round + 1, 0x9E3779B1)) >>> 0;
    const random = rng(seed);
    wrandom = rng(seed ^ 0x5bd1e995);
    const roundStart = Date.now();
    const log: string[] = [];
    const say = (line: string) => log.push(`${Date.now() - roundStart} ms: ${line}`);
    const eventsFrom = { A: a.proc?.events.length ?? 0, B: b.proc?.events.length ?? 0, procs: { A: a.proc, B: b.proc } };
    const fail = (what: string): never => {
      const events = (['A', 'B'] as Name[]).map((n) => {
        const p = nodes[n].proc;
        const list = (p?.events ?? []).slice(p === eventsFrom.procs[n] ? eventsFrom[n] : 0).filter((e) => e.event !== 'resync');
        return `${n} events: ${list.map((e) => JSON.stringify(e).slice(0, 200)).join(' | ')}`;
      });
      const wev = (t.witness?.proc?.events ?? []).slice(-12).map((e) => JSON.stringify(e).slice(0, 200));
      throw new Error(`${o.name}, round ${round}, seed ${seed} (replay: ${o.replay(round + 1)}): ${what}\n    ` +
        `${[...log, ...events, `witness events: ${wev.join(' | ')}`].join('\n    ')}`);
    };
    const fault = (kind: string, label: string) => {
      stats.faults[kind] = (stats.faults[kind] ?? 0) + 1;
      say(label);
    };
    const roles = () => `A ${a.alive ? (a.stopped ? 'stopped' : a.role) : 'dead'}, B ${b.alive ? (b.stopped ? 'stopped' : b.role) : 'dead'}`;

    w.start();
    const steps = 1 + Math.floor(random() * 3);
    for (let step = 0; step < steps; step++) {
      await sleep(150 + random() * 400);
      const options: Array<[string, string, number, () => Promise<void> | void]> = [];
      const pairCut = t.pairLink.state !== 'healed';
      if (!pairCut) {
        options.push(['cut the pair link', 'cut pair (reset)', 1, () => t.pairLink.cut('reset')]);
        options.push(['cut the pair link', 'cut pair (blackhole)', 1, () => t.pairLink.cut('blackhole')]);
      } else {
        options.push(['heal the pair link', 'heal pair', 1, () => t.pairLink.heal()]);
      }
      for (const n of [a, b]) {
        const link = t.arbiterLink[n.name]!;
        if (link.state === 'healed') options.push(['cut a node from the arbiter', `cut ${n.name} from the arbiter`, 0.8, () => link.cut(random() < 0.5 ? 'reset' : 'blackhole')]);
        else options.push(['heal a node and the arbiter', `heal ${n.name} and the arbiter`, 0.8, () => link.heal()]);
        if (n.alive && !n.stopped) {
          options.push(['SIGKILL a node', `kill ${n.name} (${n.role})`, 0.8, () => n.kill()]);
          options.push(['SIGSTOP a node past the lease', `stop ${n.name} (${n.role})`, 0.6, async () => {
            n.stop();
            await sleep(TIMEOUT_MS + t.leaseMs + random() * 600);
            say(`continue ${n.name}`);
            n.cont();
          }]);
        }
        if (!n.alive) options.push(['restart a node as secondary', `restart ${n.name} as secondary`, 1.5, () => n.start('secondary')]);
      }
      if (o.killArbiter && t.witness) {
        if (t.witness.alive) options.push(['kill the witness', 'kill the witness', 0.6, () => t.witness!.kill()]);
        else options.push(['restart the witness', 'restart the witness', 1.5, () => t.witness!.start()]);
      }
      let pick = random() * options.reduce((s, x) => s + x[2], 0);
      const chosen = options.find((x) => (pick -= x[2]) < 0) ?? options[options.length - 1];
      fault(chosen[0], `${chosen[1]} [${roles()}]`);
      await chosen[3]();
    }
    // Time for the pair to act on the last fault (a failover takes the timeout and the lease).
    await sleep(random() * (TIMEOUT_MS + t.leaseMs));

    // --- settle: heal, continue, restart; an operator promotes where both came back secondary ---
    for (const n of [a, b]) n.cont();
    t.heal();
    if (t.witness && !t.witness.alive) { say('restart the witness'); await t.witness.start(); }
    for (const n of [a, b]) if (!n.alive) { say(`restart ${n.name} as secondary`); await n.start('secondary'); }
    say(`settle [${roles()}]`);
    const settleDeadline = Date.now() + 40000;
    let primary: QNode | null = null;
    let lastPromote = 0;
    let nextCandidate = random() < 0.5 ? 0 : 1;
    while (!primary) {
      const sa = await a.sense();
      const sb = await b.sense();
      if (!sa || !sb) fail('a node stopped answering');
      const s: Record<Name, Sense> = { A: sa!, B: sb! };
      for (const n of ['A', 'B'] as Name[]) {
        if (s[n].health === 'split-brain' || nodes[n].count('split-brain') > 0) {
          stats.splitBrains++;
          fail(`SPLIT BRAIN on ${n}: ${s[n].refused}`);
        }
      }
      const synced = s.A.connected && s.B.connected && !s.A.refused && !s.B.refused && s.A.role !== s.B.role &&
        s.A.peerRole === s.B.role && s.B.peerRole === s.A.role && s.A.generation === s.B.generation;
      const p = s.A.role === 'primary' ? 'A' : 'B';
      if (synced && !s[p].lagPages && !s[p].inFlight && !s[other(p)].inconsistent) { primary = nodes[p]; break; }
      if (Date.now() > settleDeadline) fail(`the pair did not settle: A ${JSON.stringify(sa)}, B ${JSON.stringify(sb)}`);
      for (const n of ['A', 'B'] as Name[]) {
        // A node promoted behind its partner (or a secondary ahead of its primary): the arbiter let the wrong node take over.
        if (/is behind|holds newer data|unrelated/.test(s[n].refused ?? '')) fail(`${n} refused the handshake: ${s[n].refused}`);
      }
      if (s.A.role === 'secondary' && s.B.role === 'secondary' && Date.now() - lastPromote > 300) {
        // Both secondary: an operator promotes one that holds all the data, as the arbiter allows.
        const order = [nodes[(['A', 'B'] as Name[])[nextCandidate]], nodes[(['A', 'B'] as Name[])[1 - nextCandidate]]];
        const n = order.find((x) => !s[x.name].inconsistent);
        lastPromote = Date.now();
        if (n) {
          const r = await n.send({ cmd: 'promote' });
          if (r.ok) { stats.operatorPromotions++; say(`operator: promoted ${n.name}`); }
          else {
            if (r.code === 'NO_QUORUM') stats.operatorRefused++;
            say(`operator: promote ${n.name} refused: ${String(r.code)} ${String(r.error).slice(0, 120)}`);
            nextCandidate = 1 - nextCandidate;
          }
        }
      }
      if (s.A.role === 'primary' && s.B.role === 'primary' && Date.now() - lastPromote > 5000) {
        // Both primary and both reachable: one must be fenced by the epoch; it must not last.
        lastPromote = Date.now();
        say(`both primary: A epoch ${s.A.epoch}, B epoch ${s.B.epoch}`);
      }
      await sleep(60);
    }
    await w.stop();
    // The writers stopped: the pair in sync again, nothing in flight.
    const { primary: fp, secondary: fs } = await t.inSync(30000).catch(async (err) => fail(`not in sync after the writers stopped: ${(err as Error).message}; ` +
      `A ${JSON.stringify(await a.sense())}, B ${JSON.stringify(await b.sense())}`));
    primary = fp;

    // --- the checker ----------------------------------------------------------------------
    const data = await fp.readSlots(block, SLOTS);
    const problems = w.problems(data, fp.name);
    if (problems.length) { stats.silentLosses += problems.filter((x) => x.startsWith('LOST')).length; fail(problems.join('; ')); }
    stats.writesChecked = w.acks.length;
    const sd = await fs.readSlots(block, SLOTS);
    if (sd.join() !== data.join()) {
      const slots = data.map((v, k) => (v === sd[k] ? -1 : k)).filter((k) => k >= 0);
      const v = (await fp.send({ cmd: 'verify' })).verify;
      fail(`the secondary ${fs.name} holds ${sd.join(',')}, the primary ${fp.name} ${data.join(',')}; ` +
        slots.map((k) => `slot ${k}: ${JSON.stringify(w.history[k].slice(-4).map((x) => ({ ...x, sent: x.sent - roundStart, at: x.at - roundStart })))}`).join('; ') +
        `; verify: ${JSON.stringify(v)}; ${fp.name} ${JSON.stringify(await fp.sense())}; ${fs.name} ${JSON.stringify(await fs.sense())}`);
    }
    const v = (await fp.must({ cmd: 'verify' })).verify as { differences: unknown[] };
    if (v.differences.length) fail(`verify on ${fp.name} found ${v.differences.length} differences: ${JSON.stringify(v.differences.slice(0, 8))}`);
    const ids = [await fp.blockIds(), await fs.blockIds()];
    if (ids[0].join() !== block || ids[1].join() !== block) fail(`blocks: ${fp.name} ${ids[0]}, ${fs.name} ${ids[1]}`);
    stats.rounds++;
    console.log(`  round ${round} (seed ${seed}): in sync on ${fp.name}, ${w.acks.length} writes acknowledged so far, ${Date.now() - roundStart} ms: ${log.map((l) => l.replace(/^\d+ ms: /, '')).join('; ')}`);
  };

  for (let first = 0; first < o.rounds; first += CHUNK) {
    const last = Math.min(o.rounds, first + CHUNK) - 1;
    test(`${o.name}: rounds ${first} to ${last}`, async () => {
      if (broken) throw new Error(`not run: ${broken}`);
      try {
        for (let r = first; r <= last; r++) await runRound(r);
      } catch (err) {
        broken = `round ${stats.rounds} failed`;
        throw err;
      }
    });
  }

  test(`${o.name}: the figures (no split brain, no acknowledged write lost)`, async () => {
    if (broken) throw new Error(`not run: ${broken}`);
    stats.failovers = a.total('failover') + b.total('failover');
    stats.fenced = [a, b].reduce((n, x) => n + x.total('role') , 0) - stats.failovers - stats.operatorPromotions;
    stats.splitBrains += a.total('split-brain') + b.total('split-brain');
    const took = ((Date.now() - started) / 1000).toFixed(1);
    polling = false;
    await poller;
    stats.refusedByArbiter = refusalsSeen.size;
    console.log(`  ${o.name}, seed ${o.seed}: ${stats.rounds} rounds in ${took} s; ${stats.writesChecked} acknowledged writes checked ` +
      `(every round's final primary holds each slot's last acknowledged version or a later one; refused or failed: ${JSON.stringify(w.failed)})`);
    console.log(`  faults: ${Object.entries(stats.faults).sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
    console.log(`  automatic failovers ${stats.failovers}, automatic failovers refused by the arbiter ${stats.refusedByArbiter} (seen), ` +
      `primaries fenced ${stats.fenced}, operator promotions ${stats.operatorPromotions} (${stats.operatorRefused} refused by the arbiter); ` +
      `split brains ${stats.splitBrains}, silent losses ${stats.silentLosses}`);
    assert.is(stats.splitBrains, 0, 'no split brain');
    assert.is(stats.silentLosses, 0, 'no acknowledged write lost');
    assert.is(stats.rounds, o.rounds);
  });
}
