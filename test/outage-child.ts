// The primary of the long-outage test (outage.test.ts): opens its data
// folder as primary with no partner (degraded) and writes one page at a time
// at scattered places of the pair's one block: writes [from, to) of the
// test's plan (outage-plan.ts). After every FLUSH_EVERY pages it flushes
// and prints "D n": the first n pages of the order are durable. Then, with
// "close", it closes cleanly ("closed"); with "kill" it prints "done" and
// waits to be killed (the test usually kills it before). A write that fails
// prints "E code message" and exits 1.
import { openMemory } from '../bindings/index.js';
import { FileStore } from '../bindings/storage/file.js';
import { PAGE_SIZE, STAMP_AT, plannedPages, stamp } from './outage-plan.js';

const [dir, fromText, toText, mode] = process.argv.slice(2);
const from = Number(fromText);
const to = Number(toText);
const FLUSH_EVERY = 65536;
const IN_FLIGHT = 256;
const say = (line: string) => process.stdout.write(line + '\n');

const memory = await openMemory({ store: new FileStore(dir), pageSize: PAGE_SIZE, cacheBytes: 32 << 20, mirror: { role: 'primary' } });
const [block] = memory.blocks();
const pageOf = plannedPages(to);
const fail = (err: unknown) => {
  const e = err as { code?: string; message?: string };
  say(`E ${e.code ?? 'ERROR'} ${e.message ?? String(err)}`);
  process.exit(1);
};

for (let first = from; first < to; first += FLUSH_EVERY) {
  const last = Math.min(to, first + FLUSH_EVERY);
  const pending = new Set<Promise<void>>();
  for (let k = first; k < last; k++) {
    const p: Promise<void> = memory.write(block.id, pageOf[k] * PAGE_SIZE + STAMP_AT, stamp(k)).then(() => { pending.delete(p); }, fail);
    pending.add(p);
    if (pending.size >= IN_FLIGHT) await Promise.race(pending);
  }
  await Promise.all(pending);
  await memory.flush().catch(fail);
  say(`D ${last}`);
}
if (mode === 'close') {
  await memory.close().catch(fail);
  say('closed');
} else {
  say('done');
  setInterval(() => {}, 1000);
}
