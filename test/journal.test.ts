// The journal on its own (storage/journal.ts): group commit through the two
// batch buffers that take turns, the copies of records kept by their
// callers, and recovery after a failed commit, checked against a model (what
// was acknowledged is what a replay reads back, in order).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Core, TwinpageError } from '../bindings/index.js';
import type { Device } from '../bindings/storage/device.js';
import { RecordType, fillBytes, fillSector, saltOf, type JournalRecord } from '../bindings/storage/format.js';
import { Journal, replayJournal } from '../bindings/storage/journal.js';
import { MemoryDevice } from '../bindings/storage/memory.js';

const PS = 512;
const EPOCH = 3;
const core = await Core.create({ frames: 1, ioBytes: 1 << 20 });
const hash = (b: Uint8Array): bigint => core.checksum(b);
const fill = fillSector(saltOf('0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'), EPOCH);

/**
 * A device whose writes fail while `failing` is above 0 (one failure each),
 * and read what they write a few turns later, as a file's do (a buffer changed
 * while its write is under way lands changed).
 */
class Flaky implements Device {
  failing = 0;
  /** A write that is to fail has started. */
  failStarted = false;
  /** `turns`: how many turns of the event loop a write waits before it reads its bytes (one, at least, for a write that fails). */
  constructor(readonly inner: MemoryDevice, readonly turns = 3) {}
  get name() { return this.inner.name; }
  read(p: number, into: Uint8Array) { return this.inner.read(p, into); }
  async write(p: number, data: Uint8Array) {
    const fails = this.failing > 0;
    if (fails) { this.failing--; this.failStarted = true; }
    for (let i = 0; i < Math.max(this.turns, fails ? 1 : 0); i++) await new Promise((r) => setImmediate(r));
    if (fails) throw TwinpageError.ioError('a write failed on purpose');
    return this.inner.write(p, data);
  }
  flush() { return this.inner.flush(); }
  size() { return this.inner.size(); }
  truncate(n: number) { return this.inner.truncate(n); }
  close() { return this.inner.close(); }
}

/** A PAGES record of `pages` images, each filled with `seed` and its index. */
function pagesRecord(lsn: number, seed: number, pages: number): Extract<JournalRecord, { type: RecordType.Pages }> {
  const images = Array.from({ length: pages }, (_, i) => new Uint8Array(PS).fill((seed * 7 + i) & 0xFF));
  return { type: RecordType.Pages, lsn, epoch: EPOCH, pages: images.map((img, i) => ({ page: seed * 16 + i, checksum: hash(img) })), images };
}

/** A new journal on `device`, its EPOCH record appended (a journal starts with it). */
function newJournal(device: Device): Journal {
  const journal = new Journal(device, EPOCH, 0, { pageSize: PS, hash, fill, filledTo: 0, fresh: true });
  journal.append({ type: RecordType.Epoch, lsn: 0, epoch: EPOCH, blocks: 0 });
  return journal;
}

/** The lsns of the PAGES records a replay of `device` reads, in order. */
async function replayed(device: Device): Promise<number[]> {
  const lsns: number[] = [];
  await replayJournal(device, { epoch: EPOCH, pageSize: PS, hash, fill, durableEnd: 0 }, (r) => {
    if (r.type === RecordType.Pages) {
      // Every image replayed is the one appended.
      r.images.forEach((img, i) => assert.ok(img.every((b) => b === ((r.lsn * 7 + i) & 0xFF)), `record ${r.lsn} page ${i}`));
    }
    if (r.type === RecordType.Pages) lsns.push(r.lsn);
  });
  return lsns;
}

test('model: appends and commits in any interleaving; acknowledged records replay in order, kept copies never change', async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('append' as const), pages: fc.integer({ min: 1, max: 40 }), keep: fc.boolean() }),
    fc.record({ kind: fc.constant('commit' as const), wait: fc.boolean() }),
    fc.record({ kind: fc.constant('turn' as const) }),
  );
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
    const device = new Flaky(new MemoryDevice('wal.3'));
    const journal = newJournal(device);
    const appended: number[] = [];
    const kept: Array<{ lsn: number; copy: Uint8Array; pages: number }> = [];
    const commits: Promise<void>[] = [];
    let lsn = 0;
    for (const o of ops) {
      if (o.kind === 'append') {
        lsn++;
        const copy = journal.append(pagesRecord(lsn, lsn, o.pages), o.keep);
        assert.is(copy.length, o.pages * PS);
        appended.push(lsn);
        if (o.keep) kept.push({ lsn, copy, pages: o.pages });
      } else if (o.kind === 'commit') {
        const c = journal.commit();
        commits.push(c);
        if (o.wait) await c;
      } else {
        await new Promise((r) => setImmediate(r));
      }
    }
    commits.push(journal.commit());
    await Promise.all(commits);
    // The copies their callers kept are as they were appended, after every later batch.
    for (const k of kept) {
      for (let i = 0; i < k.pages; i++) {
        assert.ok(k.copy.subarray(i * PS, (i + 1) * PS).every((b) => b === ((k.lsn * 7 + i) & 0xFF)), `kept copy of record ${k.lsn}, page ${i}`);
      }
    }
    assert.equal(await replayed(device), appended);
  }), { numRuns: 150 });
});

test('a failed commit: callers that shared it recover once; a record appended after the recovery is not dropped by a later caller\'s', async () => {
  const device = new Flaky(new MemoryDevice('wal.3'));
  const journal = newJournal(device);
  journal.append(pagesRecord(1, 1, 1));
  await journal.commit();
  // X and Z share a batch whose write fails.
  journal.append(pagesRecord(2, 2, 2));
  journal.append(pagesRecord(3, 3, 1));
  device.failing = 1;
  const failed = journal.commit();
  await failed.then(() => assert.unreachable('the batch write failed'), (err) => assert.is((err as TwinpageError).code, 'IO_ERROR'));
  // X recovers; then Y appends and commits; then Z, late, recovers too.
  await journal.recover();
  journal.append(pagesRecord(4, 4, 3));
  const y = journal.commit();
  await journal.recover();
  await y;
  // Both recovering at once share one recovery.
  journal.append(pagesRecord(5, 5, 1));
  device.failing = 1;
  await journal.commit().catch(() => {});
  const [a, b] = [journal.recover(), journal.recover()];
  assert.is(a, b, 'one recovery for every caller of the same failure');
  await a;
  journal.append(pagesRecord(6, 6, 2));
  await journal.commit();
  assert.equal(await replayed(device), [1, 4, 6]);
});

test('a recovery asked for when nothing had failed does nothing, even when a commit in flight fails after', async () => {
  // Other writes done at once: a recovery would finish before the next commit's turn comes.
  const device = new Flaky(new MemoryDevice('wal.3'), 0);
  const journal = newJournal(device);
  await journal.commit();
  journal.append(pagesRecord(1, 1, 1));
  device.failing = 1;
  const x = journal.commit(); // its write will fail, a turn after it starts
  while (!device.failStarted) await new Promise((r) => setImmediate(r));
  // An append refused, nothing failed yet: its caller recovers, as wal.ts does.
  try { journal.append(pagesRecord(2, 2, 0)); } catch { /* INVALID_ARGUMENT */ }
  const early = journal.recover();
  journal.append(pagesRecord(3, 3, 1)); // pending when x fails: lost with it, and its commit must say so
  const y = journal.commit();
  const [xr, yr] = await Promise.allSettled([x, y]);
  await early;
  assert.is(xr.status, 'rejected');
  await journal.recover();
  journal.append(pagesRecord(4, 4, 1));
  await journal.commit();
  const got = await replayed(device);
  assert.ok(yr.status === 'rejected' ? !got.includes(3) : got.includes(3), `record 3's commit ${yr.status}, yet the journal holds ${JSON.stringify(got)}`);
  assert.ok(got.includes(4));
});

test('a PAGES record the replay would refuse is refused when appended (INVALID_ARGUMENT), and nothing pending is lost', async () => {
  const device = new MemoryDevice('wal.3');
  const journal = newJournal(device);
  journal.append(pagesRecord(1, 1, 2));
  const refusals: string[] = [];
  for (const bad of [pagesRecord(2, 2, 0), { ...pagesRecord(3, 3, 2), images: [] }]) {
    try { journal.append(bad); } catch (err) { refusals.push((err as TwinpageError).code); }
  }
  assert.equal(refusals, ['INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
  await journal.recover(); // what a caller does after its append failed: nothing else is dropped
  await journal.commit();
  assert.equal(await replayed(device), [1]);
});

test('a replay reads the journal in large chunks, not again at the padding after each batch', async () => {
  const inner = new MemoryDevice('wal.3');
  const journal = newJournal(inner);
  let lsn = 0;
  for (let b = 0; b < 200; b++) {
    for (let i = 0; i < 16; i++) { lsn++; journal.append(pagesRecord(lsn, lsn, 1)); }
    await journal.commit();
  }
  const reads: number[] = [];
  const counting: Device = { name: 'wal.3', size: () => inner.size(), read: (p, into) => { reads.push(into.length); return inner.read(p, into); },
    write: () => Promise.reject(new Error('replay writes nothing')), flush: async () => {}, truncate: async () => {}, close: async () => {} };
  assert.is((await replayed(counting)).length, lsn);
  // 200 batches in about 1.6 MiB: a few chunk reads, none of a record header's 56 bytes.
  assert.ok(reads.length <= 4, `${reads.length} reads: ${reads.join(', ')}`);
});

test('a batch lost under fill is damage when a later batch follows the fill: the scan past it finds that batch megabytes on', async () => {
  for (const lostPages of [1, 8000]) {
    const device = new MemoryDevice('wal.3');
    const journal = newJournal(device);
    journal.append(pagesRecord(1, 1, 1));
    await journal.commit();
    const lostAt = journal.size;
    // The lost batch: one page, or about 4 MiB of them (the scan reads 1 MiB at a time).
    for (let done = 0, lsn = 2; done < lostPages; lsn++) {
      const n = Math.min(4000, lostPages - done);
      journal.append(pagesRecord(lsn, lsn, n));
      done += n;
    }
    await journal.commit();
    const lostEnd = journal.size;
    journal.append(pagesRecord(9, 9, 1));
    await journal.commit();
    // Whole fill sectors where the lost batch was: as if its writes never reached the disk.
    await device.write(lostAt, fillBytes(lostAt, lostEnd - lostAt, fill));
    const result = await replayJournal(device, { epoch: EPOCH, pageSize: PS, hash, fill, durableEnd: 0 }, () => {});
    assert.match(result.problem ?? '', `a later batch at byte ${lostEnd} proves it was flushed`, `${lostPages} pages lost`);
  }
});

test.run();
