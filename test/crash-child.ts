// The writer of the crash campaign (crash.test.ts): opens a data folder and
// writes random bytes with the `disk` policy until it is killed (the damage
// campaign, damage.test.ts, uses it too, on a folder or a mirrored set). Before each
// operation it prints what it starts ("S ..."), after each acknowledgement
// what is now durable ("A ..." for an allocation, "W ..." for a write).
// stdout is a pipe, written synchronously on Linux: a printed line survives
// the SIGKILL that follows it.
import { openMemory } from '../bindings/index.js';
import { pattern, rng } from './data.js';

const [dir, seedText, blocksText] = process.argv.slice(2);
const random = rng(Number(seedText));
const memory = await openMemory({
  // "a,b": a mirrored set of two folders.
  store: dir.includes(',') ? dir.split(',') : dir, pageSize: 4096, cacheBytes: 64 * 4096, flushIntervalMs: 20, checkpointBytes: 2 << 20,
});
const say = (line: string) => process.stdout.write(line + '\n');

let blocks = memory.blocks();
while (blocks.length < Number(blocksText)) {
  const size = 4096 + Math.floor(random() * 60000);
  say(`S alloc ${size}`);
  const b = await memory.allocate(size);
  say(`A ${b.id} ${size}`);
  blocks = memory.blocks();
}
say('ready');
for (;;) {
  const b = blocks[Math.floor(random() * blocks.length)];
  const len = 1 + Math.floor(random() * Math.min(b.length, 40000));
  const at = Math.floor(random() * (b.length - len + 1));
  const seed = Math.floor(random() * 2 ** 31);
  say(`S ${b.id} ${at} ${len} ${seed}`);
  await memory.write(b.id, at, pattern(len, seed));
  say(`W ${b.id} ${at} ${len} ${seed}`);
}
