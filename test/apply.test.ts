// The one message stream: a memory hands every change to its link, the
// change travels as paging synchronization messages, and a second memory
// applying them (Memory.apply, the same commit path) ends up holding the
// same blocks and bytes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { openMemory, MemoryStore, TwinpageError, type Memory } from '../bindings/index.js';
import { MessageType, type Request } from '../bindings/messages.js';
import type { Change, MemoryLink } from '../bindings/memory/memory.js';
import { changeMessages } from '../bindings/mirror/changes.js';
import { IncomingChanges } from '../bindings/mirror/apply.js';
import { pattern } from './data.js';

const opts = { pageSize: 512, cacheBytes: 16 * 512, flushIntervalMs: 0 };

async function pair() {
  const primary = await openMemory({ store: new MemoryStore(), ...opts });
  const secondaryStore = new MemoryStore();
  const secondary = await openMemory({ store: secondaryStore, ...opts });
  const sent: Request[] = [];
  const incoming = new IncomingChanges();
  /** Applies one message on the secondary: a change it completes goes through Memory.apply. */
  const applyRemote = async (m: Request) => {
    const change = incoming.take(m);
    if (change) await secondary.apply(change);
  };
  let deliver = true;
  const link: MemoryLink = {
    primary: true,
    reserve: async () => true,
    async send(change: Change) {
      for (const m of changeMessages(change)) {
        // Kept past the send: a copy (a release's pages view the primary's frames only until then).
        sent.push(m.type === MessageType.WRITE_PAGE && m.data ? { ...m, data: m.data.slice() } : m);
        if (deliver) await applyRemote(m);
      }
    },
    repair: async () => null,
    intents: { extentPages: 128, maxExtents: 64 },
  };
  primary.attach(link);
  return { primary, secondary, secondaryStore, sent, applyRemote, stopDelivery: () => { deliver = false; } };
}

async function sameContents(a: Memory, b: Memory): Promise<void> {
  const blocks = a.blocks().sort((x, y) => x.base - y.base);
  assert.equal(b.blocks().map((x) => [x.id, x.base, x.length]).sort(), blocks.map((x) => [x.id, x.base, x.length]).sort());
  for (const blk of blocks) assert.equal(await b.read(blk.id, 0, blk.length), await a.read(blk.id, 0, blk.length), `block ${blk.id}`);
}

const t = suite('the link and Memory.apply');

t('allocations, writes and frees travel as messages and apply the same way', async () => {
  const { primary, secondary, sent } = await pair();
  const a = await primary.allocate(3000);
  const b = await primary.allocate(700);
  await primary.write(a.id, 100, pattern(2500, 1));
  await primary.write(b.id, 0, pattern(700, 2));
  const w = await primary.acquireWrite(a.id, 0, 1024);
  w.write(10, pattern(20, 3));
  await w.release();
  await primary.free(b.id);
  await sameContents(primary, secondary);
  assert.equal([...new Set(sent.map((m) => m.type))].sort(), [MessageType.ALLOCATE_MEMORY, MessageType.RELEASE_MEMORY, MessageType.WRITE_PAGE, MessageType.RELEASE_POINTER].sort());
  const release = sent.find((m) => m.type === MessageType.RELEASE_POINTER)!;
  assert.ok(release.type === MessageType.RELEASE_POINTER && release.pages >= 1);
  await primary.close();
  await secondary.close();
});

t('pages take effect only with their RELEASE_POINTER; a short release is refused', async () => {
  const { primary, secondary, sent, applyRemote, stopDelivery } = await pair();
  const a = await primary.allocate(2048);
  await primary.write(a.id, 0, pattern(2048, 4));
  const before = await secondary.read(a.id, 0, 2048);
  // Replay a release's pages without its RELEASE_POINTER: nothing changes.
  stopDelivery();
  await primary.write(a.id, 0, pattern(2048, 5));
  const pages = sent.filter((m) => m.type === MessageType.WRITE_PAGE).slice(-4);
  for (const m of pages) await applyRemote(m);
  assert.equal(await secondary.read(a.id, 0, 2048), before, 'WRITE_PAGEs alone change nothing');
  const release = sent[sent.length - 1];
  assert.is(release.type, MessageType.RELEASE_POINTER);
  await applyRemote(release);
  assert.equal(await secondary.read(a.id, 0, 2048), pattern(2048, 5));
  // A RELEASE_POINTER naming more pages than arrived is refused, and changes nothing.
  try {
    await applyRemote({ ...(release as Extract<Request, { type: MessageType.RELEASE_POINTER }>), pages: 3 });
    assert.unreachable();
  } catch (err) {
    assert.ok(err instanceof TwinpageError && err.code === 'INVALID_ARGUMENT');
  }
  assert.equal(await secondary.read(a.id, 0, 2048), pattern(2048, 5));
  await primary.close();
  await secondary.close();
});

t('the secondary keeps what it applied across a reopen', async () => {
  const { primary, secondary, secondaryStore } = await pair();
  const a = await primary.allocate(5000);
  await primary.write(a.id, 1, pattern(4999, 6));
  await secondary.close();
  const again = await openMemory({ store: secondaryStore, ...opts });
  assert.equal(await again.read(a.id, 0, 5000), await primary.read(a.id, 0, 5000));
  await again.close();
  await primary.close();
});

t('random streams: the secondary equals the primary', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ op: fc.constantFrom('alloc', 'write', 'write', 'write', 'free'), n: fc.nat(), len: fc.integer({ min: 1, max: 4000 }) }), { minLength: 1, maxLength: 25 }),
    async (ops) => {
      const { primary, secondary } = await pair();
      for (const o of ops) {
        const blocks = primary.blocks();
        if (o.op === 'alloc' || blocks.length === 0) { await primary.allocate(o.len); continue; }
        const b = blocks[o.n % blocks.length];
        if (o.op === 'free') { await primary.free(b.id); continue; }
        const at = o.n % b.length;
        await primary.write(b.id, at, pattern(Math.min(o.len, b.length - at), o.n));
      }
      await sameContents(primary, secondary);
      await primary.close();
      await secondary.close();
    },
  ), { numRuns: 60 });
});

t.run();
