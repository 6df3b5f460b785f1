// reconnecting(mirror, dial): redials with backoff, attaches each new
// transport, resyncs after each reconnection, stops on close() (or its
// signal, or `await using`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, MemoryStore, reconnecting, type Transport } from '../bindings/index.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { pattern } from './data.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 64 * PS, flushIntervalMs: 0 };

async function until(check: () => boolean, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('dials until it connects (backing off), attaches each new transport, comes back after a drop, stops on close', async () => {
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', heartbeatMs: 20, timeoutMs: 200 } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', heartbeatMs: 20, timeoutMs: 200 } });
  const dials: number[] = [];
  const errors: string[] = [];
  const ends: Transport[] = [];
  let up = false; // whether the partner "listens"
  const start = Date.now();
  const link = reconnecting(p.mirror, async () => {
    dials.push(Date.now() - start);
    if (!up) throw new Error('connection refused');
    const [a, b] = inProcessPair();
    s.mirror.attach(b);
    ends.push(b);
    return a;
  }, { minDelayMs: 20, maxDelayMs: 80, onError: (e) => errors.push(e.message) });
  await until(() => dials.length >= 4, 'four dials');
  assert.ok(errors.length >= 3 && errors.every((e) => e === 'connection refused'), errors.join());
  // Backoff: the gaps grow (20, 40, 80 ms with ±20% jitter), capped at maxDelayMs.
  const gaps = dials.slice(1).map((t, i) => t - dials[i]);
  assert.ok(gaps[0] >= 14 && gaps[2] >= 55, `gaps ${gaps.join(', ')}`);
  assert.is(link.transport, null);
  up = true;
  await until(() => link.connections === 1 && p.mirror.sense().connected, 'the connection');
  const b = await p.allocate(8 * PS);
  await p.write(b.id, 0, pattern(8 * PS, 1));
  assert.equal(await s.read(b.id, 0, 8 * PS), pattern(8 * PS, 1));

  // The partner drops the link: it is dialled again, and what changed meanwhile is resynced.
  const reconnected = p.mirror.once('resync-done', { signal: AbortSignal.timeout(5000) })
    .catch((err: Error) => { throw new Error(`timed out waiting for the resync after the reconnection (${err.message})`); });
  ends[0].close(new Error('reset'));
  await until(() => !p.mirror.sense().connected, 'the drop');
  await p.write(b.id, 0, pattern(2 * PS, 2));
  await until(() => link.connections === 2, 'the second connection');
  await reconnected;
  await until(() => p.mirror.sense().lagPages === 0, 'the resync');
  assert.equal(await s.read(b.id, 0, 2 * PS), pattern(2 * PS, 2));
  assert.ok(link.transport && !link.transport.closed, 'the current transport');

  // close(): the connection ends, nothing is dialled again.
  const current = link.transport!;
  await link.close();
  assert.ok(current.closed);
  assert.ok(link.closed);
  const count = dials.length;
  await new Promise((r) => setTimeout(r, 150));
  assert.is(dials.length, count, 'no dial after close');
  await p.close(); await s.close();
});

test('a signal closes it; await using closes it; a dial that resolves after close is closed at once', async () => {
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary' } });
  const ac = new AbortController();
  let dials = 0;
  const link = reconnecting(p.mirror, async () => { dials++; throw new Error('no'); }, { minDelayMs: 10, signal: ac.signal });
  await until(() => dials >= 2, 'two dials');
  ac.abort();
  await until(() => link.closed, 'closed by the signal');
  const n = dials;
  await new Promise((r) => setTimeout(r, 60));
  assert.is(dials, n);

  let late: Transport | null = null;
  let release!: () => void;
  {
    await using slow = reconnecting(p.mirror, async (signal) => {
      await new Promise<void>((r) => { release = r; });
      assert.ok(signal.aborted, 'the dial sees the link closed');
      const [a] = inProcessPair();
      late = a;
      return a;
    });
    assert.is(slow.connections, 0);
    setTimeout(() => release(), 20);
  }
  await until(() => late !== null, 'the late dial');
  await until(() => late!.closed, 'the late transport closed');
  assert.not.ok(p.mirror.sense().connected);

  let code = '';
  try { reconnecting({} as never, async () => { throw new Error('x'); }); } catch (err) { code = (err as { code: string }).code; }
  assert.is(code, 'INVALID_ARGUMENT');
  await p.close();
});

test('a closed mirror ends the link: attach refuses, nothing more is dialled', async () => {
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary' } });
  await p.mirror.close();
  let dials = 0;
  const errors: string[] = [];
  const link = reconnecting(p.mirror, async () => { dials++; return inProcessPair()[0]; }, { minDelayMs: 10, onError: (e) => errors.push((e as { code?: string }).code ?? e.message) });
  await until(() => link.closed, 'the link closed');
  assert.is(dials, 1);
  assert.equal(errors, ['CLOSED']);
  await p.close();
});

test.run();
