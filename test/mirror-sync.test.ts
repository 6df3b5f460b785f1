// The pair's copy methods (message, shared, storage), what each node keeps
// in its superblock to resync only what differs, and automatic failover.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openMemory, MemoryStore, MemoryDevice, type Device, type Memory, type MirroredMemory, type Store, type Transport } from '../bindings/index.js';
import { Mirror } from '../bindings/mirror/pair.js';
import { MemoryArbiter } from '../bindings/mirror/arbiter.js';
import { inProcessPair } from '../bindings/mirror/transports/transport.js';
import { MessageType, encodeFrame } from '../bindings/messages.js';
import { pattern } from './data.js';
import { snapshot, storeWith } from './helpers.js';

const PS = 512;
const opts = { pageSize: PS, cacheBytes: 64 * PS, flushIntervalMs: 0 };

async function same(a: Memory, b: Memory) {
  const ids = (m: Memory) => m.blocks().map((x) => x.id).sort();
  assert.equal(ids(b), ids(a), 'the same blocks');
  for (const blk of a.blocks()) assert.equal(await b.read(blk.id, 0, blk.length), await a.read(blk.id, 0, blk.length), `block ${blk.id}`);
}

/**
 * `store`, with each device write and each finished flush appended to `log`
 * as "write NAME" and "flushed NAME", in order. A flush of `slow` waits 20 ms
 * first, so that what does not wait for it shows in the log.
 */
function watched(store: Store, log: string[], slow: string): Store {
  const device = (d: Device): Device => ({
    name: d.name,
    read: (at, into) => d.read(at, into),
    write: (at, data) => { log.push(`write ${d.name}`); return d.write(at, data); },
    flush: async () => {
      if (d.name === slow) await new Promise((r) => setTimeout(r, 20));
      await d.flush();
      log.push(`flushed ${d.name}`);
    },
    size: () => d.size(),
    truncate: (n) => d.truncate(n),
    close: () => d.close(),
  });
  return storeWith(store, device);
}

/** `t`, its frames sent through `send` (everything else as `t` does it). */
function sendingWith(t: Transport, send: Transport['send']): Transport {
  return {
    send,
    onFrame: (h) => t.onFrame(h),
    onClose: (h) => t.onClose(h),
    close: (reason) => t.close(reason),
    get closed() { return t.closed; },
    get shared() { return t.shared; },
    get peerId() { return t.peerId; },
  };
}

/** `t`, with the frames it sends that `lose` picks dropped on the way (the peer never sees them). */
function losing(t: Transport, lose: (frame: Uint8Array) => boolean): Transport {
  return sendingWith(t, (frame) => (lose(frame) ? Promise.resolve() : t.send(frame)));
}

/**
 * `t`, with everything it sends held back `ms` from the first frame `from`
 * picks on (in order: a slow link, not a reordering one).
 */
function stalling(t: Transport, from: (frame: Uint8Array) => boolean, ms: number): Transport {
  let queue: Promise<void> | null = null;
  return sendingWith(t, (frame) => {
    if (queue === null && from(frame)) queue = new Promise((r) => setTimeout(r, ms));
    if (queue === null) return t.send(frame);
    const copy = frame.slice();
    queue = queue.then(() => (t.closed ? undefined : t.send(copy)));
    return queue;
  });
}

/** Waits until `check` holds (a resync runs in the background). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const copy = suite('copy methods');

copy('auto picks shared over a transport with a SharedArrayBuffer; pages arrive whole', async () => {
  const [ta, tb] = inProcessPair({ shared: new SharedArrayBuffer(16 * PS) });
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(40 * PS);
  // More pages than the exchange's 8 slots per half: some wait for acks or ride in frames.
  await Promise.all(Array.from({ length: 12 }, (_, i) => p.write(b.id, i * 3 * PS, pattern(3 * PS, i))));
  await same(p, s);
  const st = p.mirror.stats();
  assert.is(st.copy, 'shared');
  assert.ok(st.pages.shared > 0, `pages went through the shared buffer (${JSON.stringify(st.pages)})`);
  assert.is(st.pages.shared + st.pages.message, 36);
  assert.is(st.pages.storage, 0);
  await p.close(); await s.close();
});

copy('storage: pages go through a device both nodes reach', async () => {
  const device = new MemoryDevice('exchange');
  const [ta, tb] = inProcessPair();
  const exchange = { device, bytes: 64 * PS };
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, exchange } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, exchange } });
  const b = await p.allocate(10 * PS);
  await p.write(b.id, 0, pattern(10 * PS, 7));
  await same(p, s);
  assert.is(p.mirror.stats().copy, 'storage');
  assert.is(p.mirror.stats().pages.storage, 10);
  await p.close(); await s.close();
});

copy("a policy's copy method wins; one the connection lacks falls back to message", async () => {
  const [ta, tb] = inProcessPair();
  const policies = [{ name: 'shared', maxSize: Infinity, copyMethod: 'shared' as const }];
  const p = await openMemory({ store: new MemoryStore(), ...opts, policies, mirror: { role: 'primary', transport: ta } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, policies, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(4 * PS, { policy: 'shared' });
  await p.write(b.id, 0, pattern(4 * PS, 1));
  await same(p, s);
  assert.equal(p.mirror.stats().pages, { message: 4, shared: 0, storage: 0 });
  await p.close(); await s.close();
});

copy("a location outside the partner's half is refused with BAD_FRAME; nothing is applied", async () => {
  const sab = new SharedArrayBuffer(16 * PS);
  const [ta, tb] = inProcessPair({ shared: sab });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb } });
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta } });
  const b = await p.allocate(2 * PS);
  await p.write(b.id, 0, pattern(2 * PS, 3));
  const before = await s.read(b.id, 0, 2 * PS);
  // A forged frame naming a slot in the receiver's own half (both halves tried: one is its own).
  const closed = new Promise<Error | undefined>((resolve) => tb.onClose(resolve));
  const hash = (x: Uint8Array) => s.core.checksum(x);
  // Sequence numbers must follow on: send through the primary's transport with the next one.
  const next = (s.mirror.sense().lastApplied) + 1;
  const half = p.nodeId < s.nodeId ? 1 : 0; // the secondary's own half
  const bad = encodeFrame({ type: MessageType.WRITE_PAGE, blockId: b.id, page: b.base, lsn: 9, checksum: 1n, copy: 'shared', location: { offset: half * 8 * PS, length: PS } },
    { sequence: next, generation: BigInt(`0x${s.mirror.sense().generation}`) }, hash);
  await ta.send(bad);
  const err = await closed;
  assert.is((err as { code?: string })?.code, 'BAD_FRAME');
  assert.equal(await s.read(b.id, 0, 2 * PS), before, 'nothing changed on the receiver');
  await p.close(); await s.close();
});

const sync = suite('out-of-sync record and write intents');

sync('a primary restarted while degraded still knows what its partner lacks', async () => {
  const ps = new MemoryStore();
  const ss = new MemoryStore();
  let [ta, tb] = inProcessPair();
  let p = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', transport: ta } });
  let s = await openMemory({ store: ss, ...opts, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(200 * PS);
  await p.write(b.id, 0, pattern(200 * PS, 1));
  // The partner goes; three pages change without it; the primary restarts.
  await s.close();
  await p.write(b.id, 5 * PS, pattern(PS, 2));
  await p.write(b.id, 150 * PS + 10, pattern(PS, 3)); // two pages
  assert.is(p.mirror.sense().lagPages, 3);
  await p.close();
  p = await openMemory({ store: ps, ...opts, mirror: { role: 'primary' } });
  assert.is(p.mirror.sense().lagPages, 3, 'the record survived the restart');
  [ta, tb] = inProcessPair();
  s = await openMemory({ store: ss, ...opts, mirror: { role: 'secondary' } });
  s.mirror.attach(tb);
  p.mirror.attach(ta);
  await until(() => p.mirror.sense().lagPages === 0 && p.mirror.stats().lastResync !== null, 'the resync');
  assert.is(p.mirror.stats().resyncedPages, 3, 'only the three pages were sent');
  await same(p, s);
  const v = await p.mirror.verify();
  assert.is(v.differences.length, 0);
  await p.close(); await s.close();
});

sync('after a crash, every page of the hot write-intent extents is resynced, and no more', async () => {
  const ps = new MemoryStore();
  const ss = new MemoryStore();
  const mirror = { extentPages: 16, intentExtents: 4 };
  let [ta, tb] = inProcessPair();
  const p = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', transport: ta, ...mirror } });
  const s = await openMemory({ store: ss, ...opts, mirror: { role: 'secondary', transport: tb, ...mirror } });
  const b = await p.allocate(256 * PS);
  // Writes across 16 extents; only the last 4 stay hot.
  for (let e = 0; e < 16; e++) await p.write(b.id, e * 16 * PS, pattern(PS, e));
  assert.is(p.mirror.stats().intents, 4);
  const hotExtents = new Set([12, 13, 14, 15].map((e) => Math.floor((b.base + e * 16) / 16)));
  let expected = 0;
  for (let q = b.base; q < b.base + b.pages; q++) if (hotExtents.has(Math.floor(q / 16))) expected++;
  // A "crash": the store is taken as it is, without close (the superblock says not clean).
  const crashed = await snapshot(ps);
  const p2 = await openMemory({ store: crashed, ...opts, mirror: { role: 'primary', ...mirror } });
  const hot = p2.mirror.sense().lagPages;
  assert.is(hot, expected, 'the pages of the 4 hot extents count as differing');
  assert.ok(expected > 0 && expected <= 64);
  await p.close();
  [ta, tb] = inProcessPair();
  s.mirror.attach(tb);
  p2.mirror.attach(ta);
  await until(() => p2.mirror.stats().lastResync !== null && p2.mirror.sense().lagPages === 0, 'the resync');
  assert.is(p2.mirror.stats().resyncedPages, expected);
  await same(p2, s);
  await p2.close(); await s.close();
});

sync('a write intent is durable before the pages it covers are written here', async () => {
  // Each write turns a new extent hot: the replica record (its flush slowed) must be durable before the journal write.
  const log: string[] = [];
  const [ta, tb] = inProcessPair();
  const mirror = { extentPages: 16, intentExtents: 4 };
  const p = await openMemory({ store: watched(new MemoryStore(), log, 'replica'), ...opts, mirror: { role: 'primary', transport: ta, ...mirror } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, ...mirror } });
  const b = await p.allocate(64 * PS);
  for (let e = 0; e < 3; e++) {
    log.length = 0;
    await p.write(b.id, e * 16 * PS, pattern(PS, e));
    const journal = log.findIndex((x) => x.startsWith('write wal.'));
    const intent = log.indexOf('flushed replica');
    assert.ok(journal >= 0, `write ${e} reached the journal (${log.join(', ')})`);
    assert.ok(intent >= 0 && intent < journal, `write ${e}: its extent's intent was durable before its pages were journaled (${log.join(', ')})`);
  }
  assert.is(p.mirror.stats().intents, 3);
  await p.close(); await s.close();
});

sync('a crash after write intents retired: every page written alone is still in the out-of-sync record', async () => {
  const ps = new MemoryStore();
  const mirror = { extentPages: 4, intentExtents: 2 };
  const [ta, tb] = inProcessPair();
  let p = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', transport: ta, ...mirror } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, ...mirror } });
  const b = await p.allocate(64 * PS);
  await p.write(b.id, 0, pattern(64 * PS, 1));
  // The partner goes; one page changes without it, and the primary closes cleanly (its bitmap saved).
  await s.close();
  await p.write(b.id, 0, pattern(PS, 2));
  await p.close();
  p = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', ...mirror } });
  // Alone: pages in 8 more extents, at most 2 hot: the older ones' intents retire as new ones turn hot.
  const written = [b.base];
  for (let e = 1; e <= 8; e++) {
    await p.write(b.id, e * 4 * PS, pattern(PS, 10 + e));
    written.push(b.base + e * 4);
  }
  assert.ok(p.mirror.stats().intents <= 2, `${p.mirror.stats().intents} extents hot`);
  assert.equal(p.mirror.laggingPages(), written);
  // A crash: the store as it is, without close.
  const crashed = await snapshot(ps);
  await p.close();
  const p2 = await openMemory({ store: crashed, ...opts, mirror: { role: 'primary', ...mirror } });
  const lag = new Set(p2.mirror.laggingPages());
  const missing = written.filter((q) => !lag.has(q)).map((q) => q - b.base);
  assert.equal(missing, [], 'pages of the block written without the partner and not in the record after the crash');
  await p2.close();
});

sync('a block only the rejoining node holds, its allocation never acknowledged, is freed there; blocks it lacks are sent', async () => {
  const ps = new MemoryStore();
  const ss = new MemoryStore();
  let [ta, tb] = inProcessPair();
  // From a point on, the primary's ALLOCATE_MEMORY frames are lost on the way.
  let lose = false;
  const a = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', transport: losing(ta, (f) => lose && f[5] === MessageType.ALLOCATE_MEMORY) } });
  const bNode = await openMemory({ store: ss, ...opts, mirror: { role: 'secondary', transport: tb } });
  const keep = await a.allocate(8 * PS);
  await a.write(keep.id, 0, pattern(8 * PS, 1));
  lose = true;
  let acknowledged = false;
  const allocating = a.allocate(4 * PS);
  allocating.then(() => { acknowledged = true; }, () => {});
  await until(() => a.blocks().length === 2, 'the allocation journaled on the primary');
  const extra = a.blocks().find((x) => x.id !== keep.id)!;
  // A crashes now, its allocation unacknowledged (the partner never got it).
  const aStore = await snapshot(ps);
  assert.not.ok(acknowledged, 'the allocation was not acknowledged before the crash');
  assert.not.ok(bNode.blocks().some((x) => x.id === extra.id));
  ta.close();
  await a.close();
  // B takes over and allocates its own block.
  await bNode.mirror.promote();
  const mine = await bNode.allocate(6 * PS);
  await bNode.write(mine.id, 0, pattern(6 * PS, 3));
  await bNode.write(keep.id, PS, pattern(PS, 4));
  // A comes back as secondary: behind B (it never changed anything B lacks that was acknowledged).
  const a2 = await openMemory({ store: aStore, ...opts, mirror: { role: 'secondary' } });
  assert.ok(a2.blocks().some((x) => x.id === extra.id), "the crashed primary's journal holds the allocation");
  [ta, tb] = inProcessPair();
  a2.mirror.attach(ta);
  bNode.mirror.attach(tb);
  await until(() => bNode.mirror.stats().lastResync !== null && bNode.mirror.sense().lagPages === 0 && !a2.mirror.sense().inconsistent, 'the resync');
  assert.not.ok(a2.blocks().some((x) => x.id === extra.id), 'the never-acknowledged block is freed on the rejoined node');
  await same(bNode, a2);
  assert.is(a2.mirror.sense().generation, bNode.mirror.sense().generation);
  assert.is((await bNode.mirror.verify()).differences.length, 0);
  await a2.close(); await bNode.close();
});

sync('a block the old primary allocated alone while its partner took over is a split brain: kept, never silently freed, until its changes are discarded', async () => {
  const ps = new MemoryStore();
  const ss = new MemoryStore();
  let [ta, tb] = inProcessPair();
  const a = await openMemory({ store: ps, ...opts, mirror: { role: 'primary', transport: ta } });
  const bNode = await openMemory({ store: ss, ...opts, mirror: { role: 'secondary', transport: tb } });
  const keep = await a.allocate(8 * PS);
  await a.write(keep.id, 0, pattern(8 * PS, 1));
  // Parted: A, still primary, allocates and writes a block B never sees (acknowledged alone), then crashes.
  ta.close();
  await until(() => !a.mirror.sense().connected && !bNode.mirror.sense().connected, 'the link down');
  const extra = await a.allocate(4 * PS);
  await a.write(extra.id, 0, pattern(4 * PS, 2));
  const aStore = await snapshot(ps);
  await a.close();
  // B takes over and writes too.
  await bNode.mirror.promote();
  const mine = await bNode.allocate(6 * PS);
  await bNode.write(mine.id, 0, pattern(6 * PS, 3));
  await bNode.write(keep.id, PS, pattern(PS, 4));
  // A comes back as secondary: both changed since they parted.
  const a2 = await openMemory({ store: aStore, ...opts, mirror: { role: 'secondary' } });
  [ta, tb] = inProcessPair();
  a2.mirror.attach(ta);
  bNode.mirror.attach(tb);
  await until(() => a2.mirror.sense().health === 'split-brain' && bNode.mirror.sense().health === 'split-brain', 'the split brain on both nodes');
  // Nothing merged, nothing freed: each keeps what it wrote.
  assert.equal(await a2.read(extra.id, 0, 4 * PS), pattern(4 * PS, 2), 'the old primary keeps the block it allocated alone');
  assert.not.ok(a2.blocks().some((x) => x.id === mine.id));
  assert.equal(await a2.read(keep.id, PS, PS), pattern(8 * PS, 1).subarray(PS, 2 * PS));
  assert.not.ok(bNode.blocks().some((x) => x.id === extra.id));
  // Resolved by choice: A discards its changes, and is resynced from B.
  await a2.mirror.discardLocalChanges();
  [ta, tb] = inProcessPair();
  a2.mirror.attach(ta);
  bNode.mirror.attach(tb);
  await until(() => bNode.mirror.sense().health === 'ok' && bNode.mirror.sense().lagPages === 0 && !a2.mirror.sense().inconsistent, 'the resync of the discarding node');
  assert.not.ok(a2.blocks().some((x) => x.id === extra.id), 'the discarded block is freed');
  await same(bNode, a2);
  assert.is((await bNode.mirror.verify()).differences.length, 0);
  await a2.close(); await bNode.close();
});

/** A primary whose partner held its 64 pages, then went away for good (its disk to be replaced). */
async function secondaryLost(mirror: { heartbeatMs: number; timeoutMs: number }): Promise<MirroredMemory> {
  const [ta, tb] = inProcessPair();
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, ...mirror } });
  const s1 = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, ...mirror } });
  const b = await p.allocate(64 * PS);
  await p.write(b.id, 0, pattern(64 * PS, 7));
  await until(() => !s1.mirror.sense().inconsistent && p.mirror.sense().lagPages === 0, 'the first resync');
  await s1.close();
  return p;
}

// A secondary is told it holds everything only once it does: not while the
// primary still waits for the partner's record (which names what it lacks),
// whether a heartbeat or a caller (`twinpage resync`) asks for a resync then.
const asking = [
  ['heartbeats while its record is on the way', 50, 'never'],
  ['a resync() call while its record is on the way', 5000, 'after the handshake'],
  ['a resync() call before the handshake', 5000, 'at once'],
] as const;
for (const [how, heartbeatMs, ask] of asking) {
  sync(`a rejoining secondary is not called consistent before its resync is planned: ${how}`, async () => {
    const mirror = { heartbeatMs, timeoutMs: 10_000 };
    const p = await secondaryLost(mirror);
    // The secondary's disk is replaced: a node that never held data, whose record reaches
    // the primary slowly. Nothing lags on the primary's own record meanwhile.
    assert.is(p.mirror.sense().lagPages, 0);
    const [ta, tb] = inProcessPair();
    const s2 = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', ...mirror } });
    const synced: number[] = [];
    p.mirror.on('resync-done', (d) => synced.push(d.pages));
    // Its handshake makes it inconsistent in the same turn as its connected event.
    let connected = false;
    s2.mirror.on('connected', () => { connected = true; });
    s2.mirror.attach(stalling(tb, (f) => f[5] === MessageType.OUT_OF_SYNC, 400));
    p.mirror.attach(ta);
    let asked = ask === 'at once' ? p.mirror.resync() : null;
    let doneWhenAsked = -1;
    let checked = 0;
    await until(async () => {
      if (!connected) return false;
      if (s2.mirror.sense().inconsistent) {
        if (ask === 'after the handshake' && asked === null) {
          asked = p.mirror.resync();
          void asked.then(() => { doneWhenAsked = synced.length; });
        }
        return false;
      }
      // Consistent after its handshake: it must hold every page, now.
      await same(p, s2);
      checked++;
      return true;
    }, 'the end of the resync');
    assert.is(checked, 1);
    assert.ok(ask !== 'after the handshake' || asked !== null, 'resync() was called while the secondary was inconsistent');
    await asked;
    if (ask === 'after the handshake') assert.is(doneWhenAsked, 1, 'resync() resolved once the partner was told it holds everything, not before');
    assert.equal(synced, [64], 'one resync, of the 64 pages it lacked');
    await p.close(); await s2.close();
  });
}

sync('a primary demoted while its partner\'s resync is planned, whose plan then fails, promoted again: the partner is not called consistent without the data', async () => {
  const mirror = { heartbeatMs: 50, timeoutMs: 600 };
  const p = await secondaryLost(mirror);
  // A fresh secondary: its record comes late, and its answers to the checksum compare
  // (READ_HEADER replies, and the errors that would say so) are lost: the plan fails.
  const [ta, tb] = inProcessPair();
  const s2 = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', ...mirror } });
  let lost = 0;
  const lossy = losing(tb, (f) => (f[5] === MessageType.READ_HEADER_REPLY || f[5] === MessageType.ERROR ? (lost++, true) : false));
  s2.mirror.attach(stalling(lossy, (f) => f[5] === MessageType.OUT_OF_SYNC, 300));
  p.mirror.attach(ta);
  await until(() => s2.mirror.sense().inconsistent && p.mirror.sense().peerRole === 'secondary', 'the handshake');
  await p.mirror.demote();
  await until(() => lost > 0, 'the compare asked for, its answers lost');
  await new Promise((r) => setTimeout(r, 3 * mirror.timeoutMs)); // the compare times out
  await p.mirror.promote();
  await new Promise((r) => setTimeout(r, 500)); // heartbeats: ten
  if (!s2.mirror.sense().inconsistent) await same(p, s2);
  await p.close(); await s2.close();
});

sync('writes under way when the mirror closes: each is refused, or on the out-of-sync record', async () => {
  const POLICY = { name: 'disk', maxSize: Infinity, durability: 'disk' as const, writeMode: 'write-through' as const };
  const open = (store: MemoryStore) => openMemory({ store, pageSize: PS, cacheBytes: 64 * PS, policies: [POLICY], flushIntervalMs: 0, mirror: { role: 'primary', extentPages: 1, intentExtents: 1 } });
  let acknowledged = 0;
  let refused = 0;
  for (let run = 0; run < 30; run++) {
    const store = new MemoryStore();
    let p = await open(store);
    const b = await p.allocate(16 * PS, { policy: 'disk' });
    await p.write(b.id, 0, pattern(PS, 1));
    await p.close();
    p = await open(store);
    // Four writes, not awaited; the mirror closes after none, some or all of a turn.
    const acked = new Set<number>();
    const writes = Array.from({ length: 4 }, (_, k) => {
      const page = (k * 3 + run) % 16;
      return p.write(b.id, page * PS, pattern(PS, 100 + k)).then(() => { acked.add(b.base + page); }, (err) => {
        assert.is((err as { code?: string }).code, 'NOT_PRIMARY');
        refused++;
      });
    });
    if (run % 3 === 1) await Promise.resolve();
    else if (run % 3 === 2) await new Promise((r) => setImmediate(r));
    const closing = p.mirror.close();
    await Promise.all(writes);
    await closing;
    await p.close();
    p = await open(store);
    const lagging = new Set(p.mirror.laggingPages());
    for (const q of acked) assert.ok(lagging.has(q), `page ${q - b.base} was acknowledged while the partner was away, yet it is not on the record`);
    acknowledged += acked.size;
    await p.close();
  }
  assert.ok(acknowledged > 0 && refused > 0, `both outcomes seen: ${acknowledged} acknowledged, ${refused} refused`);
});

const repair = suite('read repair from the partner');

repair('a page failing its checksum here is read back from the partner and rewritten', async () => {
  const ps = new MemoryStore();
  const [ta, tb] = inProcessPair();
  const small = { ...opts, cacheBytes: 8 * PS };
  const p = await openMemory({ store: ps, ...small, mirror: { role: 'primary', transport: ta } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(32 * PS);
  await p.write(b.id, 0, pattern(32 * PS, 11));
  await p.flush();
  // Page 3 of the block, in the primary's page file (evicted from its small cache), is damaged.
  const pagesDevice = await ps.open('pages');
  const at = (b.base + 3) * PS + 100;
  await pagesDevice.write(at, Uint8Array.of(0xDE, 0xAD, 0xBE, 0xEF));
  assert.equal(await p.read(b.id, 3 * PS, PS), pattern(32 * PS, 11).subarray(3 * PS, 4 * PS), 'the good bytes, from the partner');
  assert.is(p.mirror.stats().readRepairs, 1);
  assert.is(p.repairedFromPartner, 1);
  const fixed = new Uint8Array(4);
  await pagesDevice.read(at, fixed);
  assert.equal(fixed, pattern(32 * PS, 11).subarray(3 * PS + 100, 3 * PS + 104), 'the bad copy was rewritten');
  await p.close(); await s.close();
});

repair('without a partner the read fails with CORRUPT and returns nothing', async () => {
  const ps = new MemoryStore();
  const p = await openMemory({ store: ps, ...opts, cacheBytes: 8 * PS, mirror: { role: 'primary' } });
  const b = await p.allocate(32 * PS);
  await p.write(b.id, 0, pattern(32 * PS, 12));
  await p.flush();
  await (await ps.open('pages')).write((b.base + 2) * PS, Uint8Array.of(1, 2, 3));
  let code = '';
  try { await p.read(b.id, 2 * PS, PS); } catch (err) { code = (err as { code: string }).code; }
  assert.is(code, 'CORRUPT');
  assert.is(p.mirror.stats().readRepairs, 0);
  await p.close();
});

const fo = suite('automatic failover');

fo('a secondary with failover auto promotes itself when its primary goes silent', async () => {
  const [ta, tb] = inProcessPair();
  const arbiter = new MemoryArbiter({ ttlMs: 1000 });
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, heartbeatMs: 20, timeoutMs: 100, arbiter } });
  let failedOver = false;
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, heartbeatMs: 20, timeoutMs: 100, failover: 'auto', arbiter, onFailover: () => { failedOver = true; } } });
  const b = await p.allocate(2 * PS);
  await p.write(b.id, 0, pattern(2 * PS, 5));
  // Heartbeats keep it secondary while the primary lives.
  await new Promise((r) => setTimeout(r, 250));
  assert.is(s.mirror.role, 'secondary');
  await p.close();
  await until(() => failedOver, 'the failover', 2000);
  assert.is(s.mirror.role, 'primary');
  await s.write(b.id, 0, pattern(PS, 6));
  assert.equal(await s.read(b.id, PS, PS), pattern(2 * PS, 5).subarray(PS));
  await s.close();
});

fo('a secondary that dropped the link itself (it could not apply a change) does not take over', async () => {
  const [ta, tb] = inProcessPair();
  const arbiter = new MemoryArbiter({ ttlMs: 1000 });
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, heartbeatMs: 20, timeoutMs: 200, arbiter } });
  let promoted = false;
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, failover: 'auto', arbiter, heartbeatMs: 20, timeoutMs: 200, onFailover: () => { promoted = true; } } });
  const b = await p.allocate(4 * PS);
  await p.write(b.id, 0, pattern(4 * PS, 1));
  // A release the secondary cannot apply (a block it does not hold), next in the
  // stream: it ends the connection itself.
  const hash = (x: Uint8Array) => s.core.checksum(x);
  const next = s.mirror.sense().lastApplied + 1;
  await ta.send(encodeFrame({ type: MessageType.RELEASE_POINTER, blockId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', offset: 0, length: PS, lsn: 9, pages: 0 },
    { sequence: next, generation: BigInt(`0x${s.mirror.sense().generation}`) }, hash));
  await new Promise((r) => setTimeout(r, 400));
  assert.is(s.mirror.role, 'secondary');
  assert.not.ok(promoted);
  assert.is(p.mirror.sense().health, 'degraded');
  await p.close(); await s.close();
});

fo('a secondary still being resynced refuses promotion (INCONSISTENT) and does not fail over; once synced it may', async () => {
  const aStore = new MemoryStore();
  const a = await openMemory({ store: aStore, ...opts, mirror: { role: 'primary' } });
  const blk = await a.allocate(32 * PS);
  await a.write(blk.id, 0, pattern(32 * PS, 3));
  let [ta, tb] = inProcessPair();
  let failedOver = false;
  const b = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', failover: 'auto', arbiter: new MemoryArbiter({ ttlMs: 1000 }), heartbeatMs: 20, timeoutMs: 100, onFailover: () => { failedOver = true; } } });
  b.mirror.attach(tb);
  a.mirror.attach(ta);
  // The primary goes right after the handshake, before its resync sent anything.
  await Promise.resolve();
  await a.mirror.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(b.mirror.sense().inconsistent, 'it took the generation of a primary it has no data of');
  assert.is(b.blocks().length, 0);
  assert.not.ok(failedOver, 'no automatic failover onto a node without the data');
  let code = '';
  try { await b.mirror.promote(); } catch (err) { code = (err as { code: string }).code; }
  assert.is(code, 'INCONSISTENT');
  assert.is(b.mirror.role, 'secondary');
  // The primary comes back; the resync completes; now it may be promoted.
  await a.close();
  const a2 = await openMemory({ store: aStore, ...opts, mirror: { role: 'primary' } });
  [ta, tb] = inProcessPair();
  b.mirror.attach(tb);
  a2.mirror.attach(ta);
  await until(() => !b.mirror.sense().inconsistent, 'the end of the resync');
  await same(a2, b);
  await a2.close();
  await b.mirror.promote();
  assert.is(b.mirror.role, 'primary');
  await b.close();
});

fo('requests of a secondary settle when it is promoted or closed', async () => {
  const [ta, tb] = inProcessPair();
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb } });
  const b = await p.allocate(4 * PS);
  await p.write(b.id, 0, pattern(4 * PS, 1));
  await until(() => !s.mirror.sense().inconsistent, 'the first sync');
  // The primary stops answering (its end no longer reads frames).
  const verifying = s.mirror.verify().then(() => 'resolved', (err) => (err as { code?: string }).code ?? 'rejected');
  ta.onFrame(() => {});
  await s.mirror.promote();
  assert.ok(['resolved', 'CLOSED'].includes(await verifying));
  await p.close(); await s.close();
});

fo('with failover manual (the default) it stays secondary', async () => {
  const [ta, tb] = inProcessPair();
  const p = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'primary', transport: ta, heartbeatMs: 20, timeoutMs: 100 } });
  const s = await openMemory({ store: new MemoryStore(), ...opts, mirror: { role: 'secondary', transport: tb, heartbeatMs: 20, timeoutMs: 100 } });
  await p.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.is(s.mirror.role, 'secondary');
  await s.close();
});

copy.run();
sync.run();
repair.run();
fo.run();
