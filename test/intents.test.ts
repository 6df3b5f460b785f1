// The write intents (memory/intents.ts, DRBD's activity log) against a model
// of what a crash leaves: the superblock slot of the last save that ended
// well. Writes cover their pages (a save when an extent turns hot), are
// written once the cover resolves, and are done later; saves end in order,
// some of them failing (a device error). Whenever a write may be under way
// here, its extent is named by the last good save: after a crash now, its
// pages would be resynced. And a write whose cover failed leaves nothing
// behind: once every write is over, at most `maxExtents` stay hot.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ActivityLog } from '../bindings/memory/intents.js';

const EXTENT = 4;

/** Saves as the replica record makes them: one at a time, in order; each takes the hot extents when it starts. */
class Saves {
  /** The extents named by the last save that ended well (what a crash leaves). */
  durable = new Set<number>();
  readonly queue: Array<{ resolve: () => void; reject: (err: Error) => void; taken: () => number[] }> = [];
  log!: ActivityLog;

  persist = (): Promise<void> => new Promise<void>((resolve, reject) => {
    this.queue.push({ resolve, reject, taken: () => this.log.extents() });
  });

  /** Ends the oldest save: its extents are durable, or it failed. */
  end(ok: boolean): void {
    const s = this.queue.shift();
    if (!s) return;
    if (ok) {
      this.durable = new Set(s.taken());
      s.resolve();
    } else {
      s.reject(new Error('a save failed on purpose'));
    }
  }
}

type Op =
  | { op: 'cover'; pages: number[] }
  | { op: 'save'; ok: boolean }
  | { op: 'done'; pick: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('cover' as const), pages: fc.array(fc.nat(8 * EXTENT - 1), { minLength: 1, maxLength: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('save' as const), ok: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('done' as const), pick: fc.nat() }) },
);

/** Lets the promise callbacks run (a save's end reaches the covers waiting for it). */
const settle = () => new Promise<void>((r) => setImmediate(r));

test('model: a write under way always has its extent in the last good save; a failed cover leaves nothing hot behind', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 60 }), async (maxExtents, ops) => {
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
      for (const o of ops) {
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
        check(JSON.stringify(o));
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
    }),
    { numRuns: 1500 },
  );
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

test.run();
