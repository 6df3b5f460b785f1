// A long outage: the secondary is away while its primary writes OUTAGE_PAGES
// (default 1,000,000) single pages scattered over a sparse block (no two
// adjacent: outage-plan.ts), in a
// process of its own: the first half, then a clean close; the second half
// after a reopen, SIGKILLed while writing. The primary is reopened and meets
// its secondary again: every page it wrote alone is on its out-of-sync
// record (none lost to a size limit: the record is a bitmap on disk; none
// lost to a chunk of it the kill cut short: that chunk counts whole), the
// resync sends them, verify() finds no difference, and the secondary holds
// every acknowledged write. Progress and timings go to stderr.
//
// Long by design (about 2 minutes alone on 2 cores: the writes about 50 s,
// the resync about 65 s, verify of the 2 GiB block about 3 s), so it
// declares its own limits:
// test-limits: test 600 s, file 720 s
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openMemory, inProcessPair, type MirroredMemory, type Transport } from '../bindings/index.js';
import { FileStore } from '../bindings/storage/file.js';
import { BLOCK_PAGES, PAGE_SIZE, POLICY, pageAfter, plannedPages } from './outage-plan.js';

const PAGES = Number(process.env.OUTAGE_PAGES ?? 1_000_000);
const CHILD = fileURLToPath(new URL('./outage-child.js', import.meta.url));
const note = (line: string) => process.stderr.write(`  outage: ${line}\n`);

/** Runs the writing primary on `dir` for pages [from, to); with `killAt`, SIGKILLs it once that many are durable. Returns the durable count. */
function writer(dir: string, from: number, to: number, killAt: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(from), String(to), killAt === null ? 'close' : 'kill'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let durable = from;
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('E ')) reject(new Error(`a write failed: ${line.slice(2)}`));
        if (line.startsWith('D ')) {
          durable = Number(line.slice(2));
          note(`${durable.toLocaleString('en-US')} pages written`);
          if (killAt !== null && durable >= killAt) child.kill('SIGKILL');
        }
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (killAt === null ? code === 0 : signal === 'SIGKILL') resolve(durable);
      else reject(new Error(`the writer ended with ${code ?? signal}: ${err}`));
    });
  });
}


test(`${PAGES.toLocaleString('en-US')} scattered pages written alone, a clean close and a SIGKILL between: all resynced, verify clean`, async () => {
  const root = await mkdtemp(join(tmpdir(), 'twinpage-outage-'));
  const dirA = join(root, 'a');
  const dirB = join(root, 'b');
  await mkdir(dirA);
  await mkdir(dirB);
  const open: MirroredMemory[] = [];
  const openNode = async (dir: string, role: 'primary' | 'secondary', transport: Transport) => {
    const m = await openMemory({ store: new FileStore(dir), pageSize: PAGE_SIZE, cacheBytes: 32 << 20, policies: [POLICY], mirror: { role, transport } });
    open.push(m);
    return m;
  };
  try {
    // The pair, in sync, with one sparse block of 2 GiB.
    let [ta, tb] = inProcessPair();
    let p = await openNode(dirA, 'primary', ta);
    let s = await openNode(dirB, 'secondary', tb);
    const block = await p.allocate(BLOCK_PAGES * PAGE_SIZE, { policy: POLICY.name });
    // (The policy's durability is memory: the secondary applies the allocation right after.)
    for (let i = 0; s.blocks().length === 0; i++) {
      if (i > 500) assert.unreachable('the secondary never took the block');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(s.blocks().map((b) => b.id), [block.id]);
    await s.close();
    await p.close();

    // The outage: half the pages, a clean close; the rest after a reopen, killed while writing.
    let t = performance.now();
    const half = Math.floor(PAGES / 2);
    assert.is(await writer(dirA, 0, half, null), half);
    const killAt = Math.max(half + 1, PAGES - 65536);
    const durable = await writer(dirA, half, PAGES, killAt);
    assert.ok(durable >= killAt);
    note(`written alone: ${durable.toLocaleString('en-US')} acknowledged in ${((performance.now() - t) / 1000).toFixed(1)} s (the writer was killed then)`);

    // Reopened: every page written alone is on the record, and none it did not write.
    [ta, tb] = inProcessPair();
    p = await openNode(dirA, 'primary', ta);
    // Trusted whole: a chunk the SIGKILL cut short counts whole, not the record as damage.
    assert.is(p.mirror.sense().lastError, null, 'the out-of-sync record loads without damage');
    const pageOf = plannedPages(PAGES);
    const lagging = new Set(p.mirror.laggingPages());
    for (let k = 0; k < durable; k++) {
      if (!lagging.has(block.base + pageOf[k])) assert.unreachable(`page ${pageOf[k]} (write ${k}) is not on the out-of-sync record`);
    }
    note(`on the record after the SIGKILL: ${lagging.size.toLocaleString('en-US')} pages`);

    // The secondary back: the resync, then verify.
    t = performance.now();
    s = await openNode(dirB, 'secondary', tb);
    for (let i = 0; !p.mirror.sense().connected; i++) {
      if (i > 500) assert.unreachable('the pair never connected');
      await new Promise((r) => setTimeout(r, 20));
    }
    await p.mirror.resync();
    assert.is(p.mirror.sense().lagPages, 0, JSON.stringify(p.mirror.sense()));
    note(`resync: ${p.mirror.stats().resyncedPages.toLocaleString('en-US')} pages in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const report = await p.mirror.verify();
    assert.is(report.pages, BLOCK_PAGES);
    assert.equal(report.differences, []);
    note(`verify: ${report.pages.toLocaleString('en-US')} pages in ${((performance.now() - t) / 1000).toFixed(1)} s, no difference`);

    // Every acknowledged write is on the secondary (its checksums, against the pages the writes left).
    const expected = new Map<number, number>();
    for (let k = 0; k < PAGES; k++) expected.set(pageOf[k], k);
    const zero = s.core.checksum(new Uint8Array(PAGE_SIZE));
    const PART = 65536;
    for (let first = 0; first < BLOCK_PAGES; first += PART) {
      const { checksums } = await s.header(block.id, { checksums: true, first, count: PART });
      checksums!.forEach((sum, i) => {
        const k = expected.get(first + i);
        if (k === undefined) {
          if (sum !== zero) assert.unreachable(`page ${first + i} was never written but is not zeros`);
        } else if (sum !== s.core.checksum(pageAfter(k))) {
          // A write after the last durable mark may or may not have landed; an acknowledged one must have.
          if (k < durable || sum !== zero) assert.unreachable(`page ${first + i} (write ${k}, ${k < durable ? 'acknowledged' : 'in flight'}) holds neither its write${k < durable ? '' : ' nor zeros'}`);
        }
      });
    }
    await s.close();
    await p.close();
  } finally {
    for (const m of open) await m.close().catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
});

test.run();
