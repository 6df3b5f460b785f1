// The secondary's applier (mirror/apply.ts) against a model: frames of the
// partner's stream, arriving in order, some of them while earlier applies are
// still under way, each apply taking its own time. Releases start in stream
// order; a block-table change starts only once every apply before it ended,
// and nothing after it starts before it ended; the disk-level
// acknowledgement never passes an apply that has not ended; and once the
// applier reported a failed apply, nothing more starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { AckLevel, MessageType, type Message, type Request } from '../bindings/messages.js';
import { Applier } from '../bindings/mirror/apply.js';
import { allocateMessage } from '../bindings/mirror/changes.js';
import type { Change, Memory } from '../bindings/memory/memory.js';
import { DEFAULT_POLICY } from '../bindings/policies.js';

const BLOCK = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const PAGE = 512;

/** A change as the stream carries it: a block-table change, or a release of `pages` pages. */
type Step = { kind: 'table' } | { kind: 'release'; pages: number };

/** The frames of a step, numbered from `seq`. */
function framesOf(step: Step, lsn: number): Request[] {
  if (step.kind === 'table') {
    return [allocateMessage({ id: BLOCK, base: 0, pages: 64, length: 64 * PAGE, policy: DEFAULT_POLICY, generation: lsn })];
  }
  const out: Request[] = [];
  for (let k = 0; k < step.pages; k++) {
    out.push({ type: MessageType.WRITE_PAGE, blockId: BLOCK, page: k, lsn, checksum: 0n, copy: 'message', data: new Uint8Array(PAGE) });
  }
  out.push({ type: MessageType.RELEASE_POINTER, blockId: BLOCK, offset: 0, length: step.pages * PAGE, lsn, pages: step.pages });
  return out;
}

test('model: applies start in order, block-table changes alone, acknowledgements never run ahead, nothing after a reported failure', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({
      step: fc.oneof(fc.constant<Step>({ kind: 'table' }), fc.integer({ min: 1, max: 4 }).map((pages): Step => ({ kind: 'release', pages }))),
      /** Event loop turns its apply takes. */
      turns: fc.integer({ min: 0, max: 4 }),
      /** Turns before its frames arrive (after the frames before them). */
      gap: fc.integer({ min: 0, max: 2 }),
      fails: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
      /** Its frames' messages arrive later, as promises (a page copied in from an exchange). */
      copied: fc.boolean(),
      /** A frame that changes nothing (a read) comes before it. */
      read: fc.boolean(),
    }), { minLength: 1, maxLength: 20 }),
    /** Turns the applier is held at the start (this node's new generation being saved). */
    fc.integer({ min: 0, max: 3 }),
    async (plan, held) => {
      const turn = () => new Promise<void>((r) => setImmediate(r));
      // Checked where they happen, reported at the end (a throw in apply would read as its failure).
      const problems: string[] = [];
      const check = (ok: boolean, what: string) => { if (!ok) problems.push(what); };
      const started: number[] = [];
      const running = new Set<number>();
      const ended: number[] = [];
      let failures = 0;
      let diskAck = 0;
      /** The last frame (sequence) of each step, by lsn. */
      const lastSeq = new Map<number, number>();
      const memory = {
        async apply(change: Change): Promise<void> {
          const lsn = change.type === 'allocate' ? change.block.generation : change.type === 'release' ? change.lsn : -1;
          const { turns, fails, step } = plan[lsn - 1];
          // In stream order; a block-table change alone; none after a failure.
          check(started.length === lsn - 1, `step ${lsn} starts after steps ${started}`);
          check(failures === 0, `step ${lsn} started after the applier reported a failure`);
          if (step.kind === 'table') check(running.size === 0, `block-table step ${lsn} starts while ${[...running]} run`);
          for (const r of running) check(plan[r - 1].step.kind !== 'table', `step ${lsn} starts while block-table step ${r} runs`);
          if (change.type === 'release') check(change.pages.length === (step as { pages: number }).pages, `step ${lsn}: ${change.pages.length} pages`);
          started.push(lsn);
          running.add(lsn);
          for (let i = 0; i < turns; i++) await turn();
          running.delete(lsn);
          if (fails) throw new Error(`step ${lsn} fails`);
          ended.push(lsn);
        },
      } as unknown as Memory;
      const applier = new Applier(memory, {
        post(m: Message) {
          if (m.type !== MessageType.ACK || m.level !== AckLevel.DISK) return;
          // Every step whose last frame is acknowledged ended (and did not fail).
          for (const [lsn, seq] of lastSeq) if (seq <= m.applied) check(ended.includes(lsn), `frame ${seq} acknowledged at disk level before step ${lsn} ended`);
          diskAck = Math.max(diskAck, m.applied);
        },
        fail() { failures++; },
        taken() {},
      });
      let gateOpen = held === 0;
      if (!gateOpen) applier.hold((async () => { for (let i = 0; i < held; i++) await turn(); gateOpen = true; })());
      const firstStart = memory.apply;
      memory.apply = (change: Change) => {
        check(gateOpen, 'an apply started while the applier was held');
        return firstStart(change);
      };
      let seq = 0;
      for (let i = 0; i < plan.length; i++) {
        for (let g = 0; g < plan[i].gap; g++) await turn();
        if (plan[i].read) applier.saw(++seq);
        for (const frame of framesOf(plan[i].step, i + 1)) {
          seq++;
          if (!applier.next(seq)) continue;
          applier.apply(seq, plan[i].copied ? turn().then(() => frame) : frame);
        }
        lastSeq.set(i + 1, seq);
      }
      await applier.drained();
      for (let i = 0; i < 10; i++) await turn();
      assert.equal(problems, []);
      const firstFailure = plan.findIndex((p) => p.fails);
      if (firstFailure < 0) {
        // (Releases overlap: they may end in any order.)
        assert.equal([...ended].sort((a, b) => a - b), plan.map((_, i) => i + 1), 'every step applied');
        assert.equal(started, plan.map((_, i) => i + 1), 'every step started, in order');
        assert.is(diskAck, seq, 'everything acknowledged at disk level');
        assert.is(failures, 0);
      } else {
        assert.ok(failures >= 1, 'the failure ends the connection');
        assert.ok(diskAck < lastSeq.get(firstFailure + 1)!, 'the failed step is never acknowledged at disk level');
      }
    },
  ), { numRuns: 300 });
});

test.run();
