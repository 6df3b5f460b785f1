// The write intents (memory/intents.ts, DRBD's activity log) against a model
// of what a crash leaves: the slot of the last save that ended well. Writes
// cover their pages (a save when an extent turns hot), are written once the
// cover resolves, and are done later. Saves run as the replica record runs
// them: one at a time, in order, each taking the hot extents when it starts,
// a call while one waits to start sharing it; some of them fail (a device
// error). Whenever a write may be under way here, its extent is named by the
// last good save: after a crash now, its pages would be resynced. And a
// write whose cover failed leaves nothing behind: once every write is over,
// at most `maxExtents` stay hot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ActivityLog } from '../bindings/memory/intents.js';

const EXTENT = 4;

interface Save { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void; taken: number[] | null }

class Saves {
  /** The extents named by the last save that ended well (what a crash leaves). */
  durable = new Set<number>();
  /** Saves asked for, in order: the first is under way (it took the hot extents when it started), the others wait. */
  readonly queue: Save[] = [];
  log!: ActivityLog;

  persist = (): Promise<void> => {
    const last = this.queue[this.queue.length - 1];
    if (last && last.taken === null) return last.promise; // waits to start: shared
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
    this.queue.push({ promise, resolve, reject, taken: null });
    if (this.queue.length === 1) this.#start();
    return promise;
  };

  #start(): void {
    if (this.queue.length) this.queue[0].taken = this.log.extents();
  }

  /** Ends the save under way: its extents are durable, or it failed; the next one starts. */
  end(ok: boolean): void {
    const s = this.queue.shift();
    if (!s) return;
    if (ok) {
      this.durable = new Set(s.taken);
      s.resolve();
    } else {
      s.reject(new Error('a save failed on purpose'));
    }
    this.#start();
  }
}

type Op =
  | { op: 'cover'; pages: number[] }
  | { op: 'save'; ok: boolean }
  | { op: 'done'; pick: number };

/** Lets the promise callbacks run (a save's end reaches the covers waiting for it). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Runs `ops` on a log of at most `maxExtents` hot extents, checking the model after each. */
async function run(maxExtents: number, ops: Op[]): Promise<void> {
  const saves = new Saves();
  const log = new ActivityLog({ extentPages: EXTENT, maxExtents }, saves.persist);
  saves.log = log;
  /** Writes written here (their cover resolved), not yet done. */
  const writing: number[][] = [];
  let pending = 0;
  const check = (when: string) => {
    for (const pages of writing) {
      for (const p of pages) {
        const e = Math.floor(p / EXTENT);
        assert.ok(saves.durable.has(e), `${when}: page ${p} is being written, and the last good save does not name extent ${e} (it names ${[...saves.durable].join(', ') || 'none'})`);
      }
    }
  };
  for (const [i, o] of ops.entries()) {
    if (o.op === 'cover') {
      const c = log.cover(o.pages);
      if (c === undefined) writing.push(o.pages);
      else {
        pending++;
        c.then(() => { writing.push(o.pages); }, () => {}).finally(() => { pending--; });
      }
    } else if (o.op === 'save') {
      saves.end(o.ok);
    } else if (writing.length) {
      const [pages] = writing.splice(o.pick % writing.length, 1);
      log.done(pages);
    }
    await settle();
    check(`step ${i} ${JSON.stringify(o)}`);
  }
  // Every save ends (well), every write ends.
  while (saves.queue.length || pending) {
    saves.end(true);
    await settle();
  }
  check('at the end');
  for (const pages of writing.splice(0)) log.done(pages);
  // One more extent turns hot: whatever no write holds is retired.
  const last = log.cover([100 * EXTENT]);
  saves.end(true);
  await last;
  assert.ok(log.size <= maxExtents, `${log.size} extents hot with no write under way (at most ${maxExtents})`);
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('cover' as const), pages: fc.array(fc.nat(8 * EXTENT - 1), { minLength: 1, maxLength: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('save' as const), ok: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('done' as const), pick: fc.nat() }) },
);

test('model: a write under way always has its extent in the last good save; a failed cover leaves nothing hot behind', async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 60 }), run), { numRuns: 1500 });
});

test('a save that fails: the extent it would have made hot is not hot, and the next write in it saves it again', async () => {
  const saves = new Saves();
  const log = new ActivityLog({ extentPages: EXTENT, maxExtents: 4 }, saves.persist);
  saves.log = log;
  const first = log.cover([1]);
  assert.ok(first, 'extent 0 turns hot: a save');
  saves.end(false);
  assert.is(await first!.then(() => 'written', () => 'refused'), 'refused');
  assert.equal(log.extents(), [], 'not hot after its save failed');
  const second = log.cover([2]);
  assert.ok(second, 'the next write in extent 0 waits for a save of its own');
  saves.end(true);
  await second;
  assert.equal([...saves.durable], [0]);
});

test('an extent hot again while a save of its earlier time is still under way: its writes wait for the save that names it now', async () => {
  // Extents: e = 0 (pages 0-3), f = 1, g = 2, h = 3; at most one hot.
  const cover = (...pages: number[]): Op => ({ op: 'cover', pages });
  const save = (ok: boolean): Op => ({ op: 'save', ok });
  await run(1, [
    cover(4), // f turns hot: a save starts
    cover(0, 5), // e turns hot: a second save, waiting to start
    save(false), // the first fails: the write to e and f is refused; the second save starts (naming e)
    cover(8), // g turns hot (e retired if nothing holds it): a third save, waiting
    cover(1), // e hot again, in the third save
    cover(2), // a write in e: it must wait for the third save, not the second
    save(true), // the second ends well (it names e)
    save(false), // the third fails: e is not hot; a write in it still under way would be named by no save
    cover(12), // h turns hot: a save, which leaves e out
    save(true),
  ]);
});

test.run();
