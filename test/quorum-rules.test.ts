// The rules of quorum, each over real processes: a `twinpage witness` and two
// `twinpage serve --failover auto --witness` nodes, every link through a
// nemesis (test/quorum-pair.ts), so that a node can be cut from its partner,
// from the witness, or from both; nodes SIGKILLed, SIGSTOPped and continued;
// the witness killed and started again.
//
//   (a) the primary SIGKILLed: the secondary takes over by itself, every
//       acknowledged write there;
//   (b) the pair's link cut, both alive: the primary acknowledges on (the
//       partner marked outdated at the witness), the secondary is refused
//       the lease and stays secondary; healed, resynced, nothing lost;
//   (c) the primary cut from its partner and the witness: its writes suspend
//       (or fail, --on-no-quorum error), none acknowledged; the secondary
//       takes over; healed, the old primary is fenced and rejoins as
//       secondary, no split brain, nothing lost;
//   (d) the witness killed while the pair is connected: writes go on;
//       started again, the rules go on;
//   (e) the primary SIGSTOPped longer than the lease: the secondary takes
//       over; continued, the old primary acknowledges nothing sent to it
//       since it was stopped, and every write it acknowledged is on the new
//       primary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LEASE_MS, TIMEOUT_MS, Trio, Workload, sleep, until, type QNode } from './quorum-pair.js';

const SLOTS = 16;

async function allocate(n: QNode): Promise<string> {
  return ((await n.must({ cmd: 'allocate', size: SLOTS * 4096 })).block as { id: string }).id;
}

async function verifyClean(primary: QNode): Promise<void> {
  const v = (await primary.must({ cmd: 'verify' })).verify as { differences: unknown[] };
  if (v.differences.length) {
    assert.unreachable(`verify on ${primary.name} finds ${JSON.stringify(v.differences)}; ${JSON.stringify(await primary.sense())}; ` +
      `${JSON.stringify(primary.proc!.events.filter((e) => e.event !== 'resync'))}`);
  }
}

/** The pair back in sync with `primary` primary: verify clean, both nodes hold the same, and nothing acknowledged is lost. */
async function checkSettled(t: Trio, w: Workload, expected: QNode | null): Promise<void> {
  const s = await t.inSync(30000);
  if (expected) assert.is(s.primary, expected, `${expected.name} is the primary`);
  const primary = s.primary;
  await verifyClean(primary);
  const p = await primary.readSlots(w.block, SLOTS);
  assert.equal(w.problems(p, primary.name), []);
  assert.equal(await s.secondary.readSlots(w.block, SLOTS), p, 'the secondary holds what the primary holds');
  for (const n of [t.a, t.b]) assert.is(n.count('split-brain'), 0, `no split brain on ${n.name}`);
}

test('(a) the primary SIGKILLed: the secondary takes over by itself, every acknowledged write there', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    w.start();
    await sleep(300);
    await a.kill();
    await w.stop();
    const t0 = Date.now();
    await until('B to take over', async () => b.role === 'primary', 15000);
    // Its failover event follows its role event (once the promotion has finished): a
    // loaded machine may hand the test one line before the other.
    await until('B\'s failover event', async () => b.count('failover') > 0, 5000);
    assert.is(b.count('failover'), 1, 'B promoted itself (a failover event)');
    console.log(`  (a) B took over ${Date.now() - t0} ms after A was killed; ${w.acks.length} writes acknowledged by A`);
    assert.equal(w.problems(await b.readSlots(w.block, SLOTS), 'B'), []);
    // B acknowledges alone: it holds the lease and marked A outdated.
    const r = await w.one(b, 0);
    assert.ok(r.ok, `B acknowledges alone: ${String(r.code)} ${String(r.error)}`);
    const rec = t.witnessRecord()!;
    assert.is(rec.primary, b.nodeId);
    assert.is(rec.outdated, a.nodeId);
    await a.start('secondary');
    await checkSettled(t, w, b);
  } finally {
    await t.close();
  }
});

test('(b) the link cut, both alive: the primary acknowledges with the secondary outdated at the witness; the secondary is refused the lease; healed, nothing lost', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    w.start();
    await sleep(200);
    t.pairLink.cut('blackhole');
    const cutAt = Date.now();
    // Long enough for B to find A silent, ask the witness, and be refused several times.
    await sleep(TIMEOUT_MS + 3 * LEASE_MS);
    await w.stop();
    const alone = w.acks.filter((x) => x.sent > cutAt + TIMEOUT_MS * 2);
    if (!alone.length) {
      assert.unreachable(`A acknowledged no write alone: ${w.acks.length} in all, failed ${JSON.stringify(w.failed)}, the last sent at ` +
        `${(w.acks.at(-1)?.sent ?? 0) - cutAt} ms; A: ${JSON.stringify(await a.sense())}; A events: ${JSON.stringify(a.proc!.events.slice(-12))}; ` +
        `witness events: ${JSON.stringify(t.witness!.proc!.events.slice(-6))}`);
    }
    const rec = t.witnessRecord()!;
    assert.is(rec.primary, a.nodeId, 'A holds the lease');
    assert.is(rec.outdated, b.nodeId, 'B is marked outdated');
    assert.is(b.role, 'secondary', 'B did not promote itself');
    assert.is(b.count('failover'), 0);
    const sb = (await b.sense())!;
    assert.match(sb.lastError?.message ?? '', /automatic failover refused by the arbiter/, 'B asked and was refused');
    console.log(`  (b) ${alone.length} writes acknowledged by A alone; B: ${sb.lastError!.message.slice(0, 140)}`);
    t.heal();
    await checkSettled(t, w, a);
    await until('the mark cleared at the witness', async () => t.witnessRecord()?.outdated === null, 10000);
  } finally {
    await t.close();
  }
});

for (const mode of ['suspend', 'error'] as const) {
  test(`(c) the primary cut from its partner and the witness (--on-no-quorum ${mode}): nothing acknowledged; the secondary takes over; healed, the old primary is fenced`, async () => {
    const t = await Trio.start({ onNoQuorum: mode });
    try {
      const { a, b } = t;
      const w = new Workload(await allocate(a), SLOTS, () => (b.role === 'primary' ? b : a));
      await w.fill(a);
      t.arbiterLink.A!.cut('blackhole');
      t.pairLink.cut('blackhole');
      const cutAt = Date.now();
      // Writes to A from now on: suspended (never answered while cut) or failed NO_QUORUM.
      let answered = 0;
      const toA = Array.from({ length: 4 }, (_, k) => w.one(a, k).finally(() => { answered++; }));
      await until('B to take over', async () => b.role === 'primary', 15000);
      console.log(`  (c, ${mode}) B took over ${Date.now() - cutAt} ms after the cut`);
      w.start();
      await sleep(LEASE_MS);
      await w.stop();
      assert.ok(w.acks.some((x) => x.node === 'B'), 'B acknowledges');
      const aAcks = w.acks.filter((x) => x.node === 'A' && x.sent >= cutAt);
      assert.equal(aAcks, [], 'A acknowledged nothing while cut off');
      if (mode === 'error') {
        const replies = await Promise.all(toA);
        assert.ok(replies.every((r) => !r.ok), 'every write to A failed');
        assert.ok(replies.some((r) => r.code === 'NO_QUORUM'), `NO_QUORUM: ${replies.map((r) => r.code)}`);
      } else {
        const sa = (await a.sense())!;
        assert.is(sa.role, 'primary', 'A still takes itself for primary');
        assert.is(answered, 0, "A's writes are suspended: none answered");
      }
      t.heal();
      // The old primary meets the new epoch (at the witness or in B's frames): fenced, it goes on as secondary.
      await until('A fenced', async () => a.role === 'secondary', 15000);
      const replies = await Promise.all(toA);
      assert.ok(replies.every((r) => !r.ok), `A acknowledged none of its writes of the cut: ${replies.map((r) => r.code)}`);
      assert.equal(w.acks.filter((x) => x.node === 'A' && x.sent >= cutAt), []);
      console.log(`  (c, ${mode}) A's writes of the cut: ${replies.map((r) => r.code).join(', ')}`);
      await checkSettled(t, w, b);
      const rec = t.witnessRecord()!;
      assert.is(rec.primary, b.nodeId);
    } finally {
      await t.close();
    }
  });
}

test('(d) the witness killed while the pair is connected: writes go on; started again, a cut is ridden out under its lease', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    await t.witness!.kill();
    const before = w.acks.length;
    const t0 = Date.now();
    for (let s = 0; s < SLOTS; s++) {
      const r = await w.one(a, s, 5000);
      assert.ok(r.ok, `written with the witness down: ${String(r.code)} ${String(r.error)}`);
    }
    assert.is(w.acks.length - before, SLOTS);
    console.log(`  (d) ${SLOTS} writes with the witness down in ${Date.now() - t0} ms`);
    // Nobody needed the witness: no failover, no quorum lost on the secondary's side either.
    await sleep(TIMEOUT_MS * 2);
    assert.is(b.role, 'secondary');
    assert.is(a.role, 'primary');
    await t.witness!.start();
    // The pair's link cut now: A acknowledges once the restarted witness grants leases again.
    t.pairLink.cut('reset');
    const r = await w.one(a, 0, 15000);
    assert.ok(r.ok, `A acknowledges alone after the witness restarted: ${String(r.code)} ${String(r.error)}`);
    assert.is(t.witnessRecord()!.outdated, b.nodeId);
    t.heal();
    await checkSettled(t, w, a);
  } finally {
    await t.close();
  }
});

test('(e) the primary SIGSTOPped past the lease: the secondary takes over; continued, the old primary acknowledges nothing sent since, and loses nothing it acknowledged', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    w.start();
    await sleep(300);
    a.stop();
    const stoppedAt = Date.now();
    // Writes issued from here on reach A only once it is continued (one issued just before,
    // in the same millisecond, may have been acknowledged by both before the stop).
    const stopMark = w.writesIssued;
    await until('B to take over', async () => b.role === 'primary', 15000);
    const took = Date.now() - stoppedAt;
    // B acknowledges alone (A marked outdated); A stays stopped past its lease.
    let byB = 0;
    for (let s = 0; s < SLOTS; s++) {
      if (w.busy[s]) continue; // a write to the stopped A holds it
      const r = await w.one(b, s, 10000);
      assert.ok(r.ok, `B acknowledges: ${String(r.code)} ${String(r.error)}`);
      byB++;
    }
    assert.ok(byB > 0);
    await sleep(Math.max(0, LEASE_MS * 2 - (Date.now() - stoppedAt)));
    a.cont();
    const contAt = Date.now();
    await until('A fenced', async () => a.role === 'secondary', 15000);
    // The writers, still aimed at A, go on a little: every write refused.
    await sleep(300);
    await w.stop();
    const late = w.acks.filter((x) => x.node === 'A' && x.order >= stopMark);
    assert.equal(late, [], 'A acknowledged nothing sent to it once it was stopped');
    console.log(`  (e) B took over ${took} ms after A was stopped; A fenced ${Date.now() - contAt} ms after it was continued; ` +
      `writes sent to A refused: ${JSON.stringify(w.failed)}`);
    await checkSettled(t, w, b);
  } finally {
    await t.close();
  }
});

test('(f) a primary that marked its partner outdated, killed and started again, clears the mark once the partner is resynced: the partner can take over later', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    t.pairLink.cut('reset');
    const r = await w.one(a, 0, 15000);
    assert.ok(r.ok, 'A acknowledges alone');
    assert.is(t.witnessRecord()!.outdated, b.nodeId, 'B marked outdated');
    await a.kill();
    t.heal();
    // B, outdated, is refused the lease: it stays secondary (A holds writes it lacks).
    await sleep(TIMEOUT_MS + LEASE_MS);
    assert.is(b.role, 'secondary', 'B, outdated, did not take over');
    // A comes back as secondary; an operator promotes it (B is behind it); B is resynced.
    await a.start('secondary');
    await until('A the source of a resync', async () => (await b.sense())?.connected === true, 15000);
    await a.must({ cmd: 'promote' });
    await checkSettled(t, w, a);
    // B holds everything again: the mark at the witness must go, or B can never take over.
    await until('the mark cleared at the witness', async () => t.witnessRecord()?.outdated === null, 10000)
      .catch(() => assert.unreachable(`B is in sync but still outdated at the witness: ${JSON.stringify(t.witnessRecord())}`));
    await a.kill();
    await until('B to take over', async () => b.role === 'primary', 15000);
    assert.equal(w.problems(await b.readSlots(w.block, SLOTS), 'B'), []);
  } finally {
    await t.close();
  }
});

test('(g) writes suspended for quorum go on after the partner came back: the partner, resynced, ends consistent (no new generation behind its back)', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => a);
    await w.fill(a);
    await b.kill();
    // A alone takes the lease; then it is cut from the witness: once the lease ends, its writes suspend.
    assert.ok((await w.one(a, 0, 15000)).ok, 'A acknowledges alone under the lease');
    t.arbiterLink.A!.cut('blackhole');
    await sleep(LEASE_MS + 300);
    let answered = 0;
    const suspended = Array.from({ length: 4 }, (_, k) => w.one(a, 1 + k).finally(() => { answered++; }));
    await sleep(300);
    assert.is(answered, 0, 'the writes wait for quorum');
    // B comes back (it takes A's generation and is resynced); then the witness is back.
    await b.start('secondary');
    await until('B connected', async () => (await b.sense())?.connected === true, 15000);
    t.arbiterLink.A!.heal();
    const replies = await Promise.all(suspended);
    assert.ok(replies.every((r) => r.ok), `acknowledged once quorum came back: ${replies.map((r) => r.code)}`);
    await checkSettled(t, w, a);
  } finally {
    await t.close();
  }
});

test('(h) a node promoted as its link comes up: decided again once the witness answered (a switchover to the live secondary, not a failover that cuts it)', async () => {
  const t = await Trio.start();
  try {
    const { a, b } = t;
    const w = new Workload(await allocate(a), SLOTS, () => (a.alive && a.role === 'primary' ? a : null));
    await w.fill(a);
    // A takes the lease once (its link to B cut a moment), so that the record names it: its
    // promotion below changes no epoch, and B, which knows the epoch, stays a partner it accepts.
    t.pairLink.cut('reset');
    await until('A holds the lease', async () => t.witnessRecord()?.primary === a.nodeId, 10000);
    t.pairLink.heal();
    await t.inSync();
    const epoch = t.witnessRecord()!.epoch;
    // B may not take over (cut from the witness); A, killed, comes back as secondary.
    t.arbiterLink.B!.cut('blackhole');
    w.start();
    await sleep(200);
    await a.kill();
    await w.stop();
    // A slow witness: A's promotion waits for it while the pair's handshake runs.
    t.arbiterLink.A!.delay(150);
    await a.start('secondary');
    const promoted = a.send({ cmd: 'promote' });
    const connected = await until('A connected to B', async () => {
      const s = await a.sense();
      return s?.connected && s.peerRole === 'secondary' && s.role === 'secondary' ? s : null;
    }, 10000);
    const r = await promoted;
    assert.ok(r.ok, `promoted: ${String(r.code)} ${String(r.error)}`);
    const s = (await a.sense())!;
    assert.is(s.role, 'primary');
    assert.ok(s.connected, `the link to the live secondary stays up (a switchover): ${JSON.stringify(s)}; ${JSON.stringify(a.proc!.events)}`);
    assert.is(s.generation, connected.generation, 'no new generation');
    const since = a.proc!.events.findIndex((e) => e.event === 'connected');
    assert.equal(a.proc!.events.slice(since).filter((e) => e.event === 'disconnected'), [], 'A never dropped the link');
    assert.is(t.witnessRecord()!.epoch, epoch, 'the same epoch');
    t.heal();
    // Either may be primary by now: on a loaded machine a 500 ms timeout can see a live link
    // silent, and B, reaching the witness again, may take over (fencing A): no loss either way.
    await checkSettled(t, w, null);
  } finally {
    await t.close();
  }
});

test.run();
