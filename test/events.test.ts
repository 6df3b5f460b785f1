// The mirror's events (memory.mirror is an EventTarget): their order across a
// disconnect and a resync, a switchover and an automatic failover, in an
// in-process pair; the typed helpers (on, once) and the callbacks they
// stand beside (onResyncProgress, onFailover).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, MemoryArbiter, MemoryStore, MirrorEvent, MIRROR_EVENTS, type MirroredMemory, type Mirror, type MirrorEventType } from '../bindings/index.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { pattern } from './data.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 64 * PS, flushIntervalMs: 0 };

/** The next `type` event of `mirror`, or a failure naming it after `ms`. */
function next<K extends MirrorEventType>(mirror: Mirror, type: K, what: string, ms = 5000) {
  return mirror.once(type, { signal: AbortSignal.timeout(ms) }).catch((err: Error) => {
    throw new Error(`timed out after ${ms} ms waiting for ${what} (${err.message})`);
  });
}

async function until(check: () => boolean, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every event of `mirror` as [type, detail], in order. */
function record(mirror: Mirror): Array<[string, unknown]> {
  const seen: Array<[string, unknown]> = [];
  for (const type of MIRROR_EVENTS) {
    mirror.addEventListener(type, (e) => {
      assert.ok(e instanceof MirrorEvent, 'a MirrorEvent');
      seen.push([e.type, (e as MirrorEvent).detail]);
    });
  }
  return seen;
}

/** The types of `seen`, with runs of resync-progress shown once. */
function types(seen: Array<[string, unknown]>): string[] {
  const out: string[] = [];
  for (const [t] of seen) if (!(t === 'resync-progress' && out.at(-1) === t)) out.push(t);
  return out;
}

const t = suite('mirror events');

t('connected, disconnected and degraded, then connected, resync progress and done, in order; onResyncProgress still called', async () => {
  let [ta, tb] = inProcessPair();
  const progress: Array<{ done: number; total: number }> = [];
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', heartbeatMs: 20, timeoutMs: 200, onResyncProgress: (x) => progress.push(x) } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', heartbeatMs: 20, timeoutMs: 200 } });
  const ep = record(p.mirror);
  const es = record(s.mirror);
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  const b = await p.allocate(32 * PS);
  await p.write(b.id, 0, pattern(32 * PS, 1));
  await until(() => ep.some(([x]) => x === 'resync-done'), 'the first resync-done');
  assert.equal(types(ep), ['connected', 'resync-done']);
  assert.equal(ep[0][1], { peer: s.nodeId, decision: 'source' });
  assert.equal(es[0], ['connected', { peer: p.nodeId, decision: 'target' }]);

  // The link fails: both sides say so; the primary goes on degraded.
  ta.close(new Error('cable pulled'));
  await until(() => es.length >= 3, 'the secondary\'s events');
  assert.equal(ep.slice(2), [['disconnected', { reason: 'cable pulled' }], ['degraded', { role: 'primary', lagPages: 0 }]]);
  assert.equal(types(es), ['connected', 'disconnected', 'degraded']);
  assert.is((es[2][1] as { role: string }).role, 'secondary');
  for (let i = 0; i < 20; i++) await p.write(b.id, i * PS, pattern(PS, 100 + i));
  assert.is(p.mirror.sense().lagPages, 20);

  // Back: connected, the 20 pages resynced with progress, done.
  const before = ep.length;
  [ta, tb] = inProcessPair();
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  const done = await next(p.mirror, 'resync-done', 'the end of the resync');
  assert.is(done.pages, 20);
  const after = ep.slice(before);
  assert.equal(types(after), ['connected', 'resync-progress', 'resync-done']);
  const steps = after.filter(([x]) => x === 'resync-progress').map(([, d]) => d as { done: number; total: number });
  assert.equal(steps.at(-1), { done: 20, total: 20 });
  assert.ok(steps.every((x, i) => i === 0 || x.done > steps[i - 1].done), 'progress only goes up');
  assert.equal(progress.slice(-steps.length), steps, 'onResyncProgress saw the same progress');
  assert.equal(await s.read(b.id, 0, 20 * PS), await p.read(b.id, 0, 20 * PS));

  // Closing: a disconnected, and no degraded (the mirror is going away).
  const closing = ep.length;
  await p.close();
  assert.equal(ep.slice(closing), [['disconnected', { reason: null }]]);
  await s.close();
});

t('a switchover: role on both nodes; an automatic failover: disconnected, degraded, role, failover', async () => {
  const [ta, tb] = inProcessPair();
  let failovers = 0;
  // Automatic failover needs a third vote: an arbiter both nodes reach.
  const arbiter = new MemoryArbiter({ ttlMs: 1000 });
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, heartbeatMs: 20, timeoutMs: 100, arbiter } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, heartbeatMs: 20, timeoutMs: 100, arbiter, failover: 'auto', onFailover: () => { failovers++; } } });
  const b = await p.allocate(4 * PS);
  await p.write(b.id, 0, pattern(4 * PS, 3));
  await until(() => s.mirror.sense().inconsistent === false, 'the first resync');

  // Switchover and back: role events on each side.
  const ep = record(p.mirror);
  const es = record(s.mirror);
  await p.mirror.demote();
  await until(() => s.mirror.sense().peerRole === 'secondary', 'the demotion seen by the partner');
  await s.mirror.promote();
  assert.equal(ep, [['role', { role: 'secondary', previous: 'primary' }]]);
  assert.equal(es, [['role', { role: 'primary', previous: 'secondary' }]]);
  await until(() => p.mirror.sense().peerRole === 'primary', 'the promotion seen by the partner');
  await s.mirror.demote();
  await until(() => p.mirror.sense().peerRole === 'secondary', 'the demotion seen by the partner');
  await p.mirror.promote();
  await until(() => s.mirror.sense().peerRole === 'primary', 'the old primary back as primary');
  es.length = 0;

  // The primary goes: the secondary takes over by itself.
  const failover = next(s.mirror, 'failover', "the secondary's automatic failover");
  await p.close();
  const { generation } = await failover;
  assert.equal(types(es), ['disconnected', 'degraded', 'role', 'failover']);
  assert.equal(es[2][1], { role: 'primary', previous: 'secondary' });
  assert.is(generation, s.mirror.sense().generation);
  assert.is(failovers, 1, 'onFailover called too');
  await s.write(b.id, 0, pattern(PS, 4));
  await s.close();
});

t('split-brain: both nodes changed since they parted; the refusal is an event', async () => {
  let [ta, tb] = inProcessPair();
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(4 * PS);
  await p.write(b.id, 0, pattern(4 * PS, 3));
  await until(() => s.mirror.sense().inconsistent === false, 'the first resync');
  ta.close();
  await until(() => !s.mirror.sense().connected, 'the link down');
  await s.mirror.promote();
  await s.write(b.id, 0, pattern(PS, 5));
  await p.write(b.id, PS, pattern(PS, 6));
  const split = next(p.mirror, 'split-brain', 'the split-brain event on the old primary');
  const other = next(s.mirror, 'split-brain', 'the split-brain event on the promoted secondary');
  [ta, tb] = inProcessPair();
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  const [mine, theirs] = await Promise.all([split, other]);
  assert.match(mine.message, /split brain/i);
  assert.match(theirs.message, /twinpage discard --dir DIR/);
  assert.is(p.mirror.sense().health, 'split-brain');
  await p.close(); await s.close();
});

t('on() returns an unsubscribe and honours a signal; once() rejects when its signal aborts', async () => {
  const m = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary' } }) as MirroredMemory;
  const seen: string[] = [];
  const off = m.mirror.on('role', (d, e) => { seen.push(`a:${d.role}:${e.type}`); });
  const ac = new AbortController();
  m.mirror.on('role', (d) => { seen.push(`b:${d.role}`); }, { signal: ac.signal });
  m.mirror.on('role', (d) => { seen.push(`once:${d.role}`); }, { once: true });
  await m.mirror.demote();
  off();
  ac.abort();
  await m.mirror.promote();
  assert.equal(seen, ['a:secondary:role', 'b:secondary', 'once:secondary']);

  const ac2 = new AbortController();
  const waiting = m.mirror.once('connected', { signal: ac2.signal });
  ac2.abort();
  let name = '';
  try { await waiting; } catch (err) { name = (err as Error).name; }
  assert.is(name, 'AbortError');
  let early = '';
  try { await m.mirror.once('connected', { signal: AbortSignal.abort() }); } catch (err) { early = (err as Error).name; }
  assert.is(early, 'AbortError');
  await m.close();
});

t.run();
