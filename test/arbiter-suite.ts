// The arbiter conformance suite: the rules every Arbiter keeps, run against
// each implementation (in process, a witness process, etcd) by the test file
// of that implementation, which passes how to open a fresh record.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Arbiter, PairRecord } from '../bindings/mirror/arbiter.js';

/** One fresh record at an arbiter, and a client of it per node. */
export interface ArbiterSubject {
  /** The arbiter node `node` uses (its own client where the arbiter is remote). */
  client(node: string): Arbiter;
  close(): Promise<void>;
}

/** An implementation under test. */
export interface ArbiterKind {
  name: string;
  /** The lease's length the subjects are opened with. */
  ttlMs: number;
  /** Time past the TTL until the arbiter has surely ended a lease (etcd checks expiry on a timer). */
  expiryMs: number;
  /** A fresh record (a new witness folder, a new etcd prefix, a new in-process arbiter). */
  open(): Promise<ArbiterSubject>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const G1 = '1111111111111111';
const G2 = '2222222222222222';
const G3 = '3333333333333333';

/** Registers the conformance tests of `kind` in a uvu suite named after it, and runs the suite. */
export function arbiterConformance(kind: ArbiterKind): void {
  const test = suite(`${kind.name} conformance`);
  let subject: ArbiterSubject | null = null;
  const open = async () => { subject = await kind.open(); return subject; };
  const expire = () => sleep(kind.ttlMs + kind.expiryMs);
  test.after.each(async () => { await subject?.close(); subject = null; });

  test('a fresh record is empty; the first acquire is granted with epoch 1 and the generation recorded', async () => {
    const s = await open();
    const a = s.client('a');
    assert.equal(await a.read(), { epoch: 0, primary: null, outdated: null, generation: '' });
    const got = await a.acquire('a', G1);
    assert.ok(got.granted, `refused: ${!got.granted ? got.reason : ''}`);
    assert.equal(got.record, { epoch: 1, primary: 'a', outdated: null, generation: G1 });
    assert.is(got.granted && got.ttlMs, a.ttlMs);
    assert.ok(a.ttlMs >= kind.ttlMs, `ttlMs ${a.ttlMs}`);
    assert.equal(await s.client('b').read(), got.record);
  });

  test('the holder renews (same epoch, its generation kept); the other node is refused while the lease lives', async () => {
    const s = await open();
    const a = s.client('a');
    const b = s.client('b');
    await a.acquire('a', G1);
    const renewed = await a.acquire('a', G2);
    assert.ok(renewed.granted);
    assert.equal(renewed.record, { epoch: 1, primary: 'a', outdated: null, generation: G1 });
    const refused = await b.acquire('b', G1);
    assert.not.ok(refused.granted);
    assert.match(!refused.granted ? refused.reason : '', /node a holds the lease/);
    assert.equal(refused.record, renewed.record);
    // Renewing keeps the lease alive past its first term.
    await sleep(kind.ttlMs * 0.6);
    assert.ok((await a.acquire('a', G1)).granted);
    await sleep(kind.ttlMs * 0.6);
    assert.not.ok((await b.acquire('b', G1)).granted, 'a renewed lease still holds');
    assert.equal(await b.read(), renewed.record);
  });

  test('after the lease ends, the other node is granted with a grown epoch', async () => {
    const s = await open();
    await s.client('a').acquire('a', G1);
    await expire();
    const got = await s.client('b').acquire('b', G1);
    assert.ok(got.granted, `refused: ${!got.granted ? got.reason : ''}`);
    assert.equal(got.record, { epoch: 2, primary: 'b', outdated: null, generation: G1 });
    const back = await s.client('a').acquire('a', G1);
    assert.not.ok(back.granted, 'a is refused while b holds');
    assert.equal(await s.client('a').read(), got.record);
  });

  test('a lease that ended and is taken again by its holder keeps the epoch', async () => {
    const s = await open();
    const a = s.client('a');
    await a.acquire('a', G1);
    await expire();
    const again = await a.acquire('a', G1);
    assert.ok(again.granted);
    assert.is(again.record.epoch, 1);
  });

  test('an outdated node is refused, even once the lease ended; the holder goes on', async () => {
    const s = await open();
    const a = s.client('a');
    const b = s.client('b');
    const { record } = await a.acquire('a', G1);
    assert.ok(await a.outdate('a', record.epoch, 'b', G2));
    assert.equal(await b.read(), { epoch: 1, primary: 'a', outdated: 'b', generation: G2 });
    await expire();
    const refused = await b.acquire('b', G2);
    assert.not.ok(refused.granted);
    assert.match(!refused.granted ? refused.reason : '', /outdated/);
    assert.equal(refused.record, { epoch: 1, primary: 'a', outdated: 'b', generation: G2 });
    const again = await a.acquire('a', G2);
    assert.ok(again.granted, 'the holder takes its ended lease again');
    assert.is(again.record.epoch, 1);
  });

  test('on a change of holder the generation must be the record\'s', async () => {
    const s = await open();
    const b = s.client('b');
    await s.client('a').acquire('a', G1);
    await expire();
    const refused = await b.acquire('b', G3);
    assert.not.ok(refused.granted);
    assert.match(!refused.granted ? refused.reason : '', /generation/);
    assert.equal(await b.read(), { epoch: 1, primary: 'a', outdated: null, generation: G1 });
    const granted = await b.acquire('b', G1);
    assert.ok(granted.granted);
    assert.is(granted.record.epoch, 2);
  });

  test('outdate and clear take effect only for the holder of that epoch, while its lease lives', async () => {
    const s = await open();
    const a = s.client('a');
    const b = s.client('b');
    const { record } = await a.acquire('a', G1);
    const before: PairRecord = { ...record };
    assert.is(await b.outdate('b', record.epoch, 'a', G2), false, 'not the holder');
    assert.is(await a.outdate('a', record.epoch + 1, 'b', G2), false, 'another epoch');
    assert.is(await a.outdate('a', record.epoch - 1, 'b', G2), false, 'an older epoch');
    assert.is(await b.clear('b', record.epoch, G2), false);
    assert.equal(await a.read(), before, 'nothing changed');
    assert.is(await a.outdate('a', record.epoch, 'b', G2), true);
    assert.is(await b.clear('b', record.epoch, G3), false, 'only the holder clears');
    assert.equal(await a.read(), { ...before, outdated: 'b', generation: G2 });
    assert.is(await a.clear('a', record.epoch, G3), true);
    assert.equal(await a.read(), { ...before, outdated: null, generation: G3 });
    await expire();
    assert.is(await a.outdate('a', record.epoch, 'b', G1), false, 'a lease that ended');
    assert.is(await a.clear('a', record.epoch, G1), false);
    assert.equal(await b.read(), { ...before, outdated: null, generation: G3 });
  });

  test('release lets the partner take over at once; a release by another node or of another epoch does nothing', async () => {
    const s = await open();
    const a = s.client('a');
    const b = s.client('b');
    const { record } = await a.acquire('a', G1);
    await b.release('b', record.epoch);
    await a.release('a', record.epoch + 1);
    assert.not.ok((await b.acquire('b', G1)).granted, 'a still holds');
    await a.release('a', record.epoch);
    const t0 = performance.now();
    const got = await b.acquire('b', G1);
    assert.ok(got.granted, `refused: ${!got.granted ? got.reason : ''}`);
    assert.ok(performance.now() - t0 < kind.ttlMs, 'without waiting for the lease to end');
    assert.equal(got.record, { epoch: 2, primary: 'b', outdated: null, generation: G1 });
    assert.is(await a.outdate('a', record.epoch, 'b', G1), false, 'the released epoch gives no rights');
  });

  test('concurrent acquires from two clients: exactly one is granted, every round', async () => {
    const s = await open();
    const a = s.client('a');
    const b = s.client('b');
    let epoch = 0;
    for (let round = 0; round < 8; round++) {
      const [ra, rb] = await Promise.all([a.acquire('a', G1), b.acquire('b', G1)]);
      assert.is(Number(ra.granted) + Number(rb.granted), 1, `round ${round}: ${JSON.stringify([ra, rb])}`);
      const winner = ra.granted ? ra : rb;
      const node = ra.granted ? 'a' : 'b';
      assert.is(winner.record.primary, node);
      assert.ok(winner.record.epoch >= epoch, 'the epoch never goes back');
      epoch = winner.record.epoch;
      assert.equal(await a.read(), winner.record);
      await s.client(node).release(node, epoch);
    }
  });

  test.run();
}
