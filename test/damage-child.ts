// The reader of the damage campaign (damage.test.ts): opens each damaged
// store of a job file and reads every block back, in a process of its own,
// as a user would after finding the files damaged. For each store it prints
// one JSON line: how the open went, each block's contents (a SHA-256) or the
// code it failed with, the blocks it did not expect, and what damage() and
// scrub() reported. A store that is a mirrored set of folders is also
// scrubbed, closed, and its damaged folder opened alone and read again: the
// repair must have made it whole.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { openMemory, TwinpageError, type Memory } from '../bindings/index.js';

interface Case { dirs: string[]; damaged: string; blocks: Array<{ id: string; length: number }> }

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const codeOf = (err: unknown) => (err instanceof TwinpageError ? err.code : `UNTYPED ${(err as Error)?.message ?? String(err)}`);

async function readAll(memory: Memory, c: Case) {
  const blocks: Record<string, string | { code: string }> = {};
  const ids = new Set(memory.blocks().map((b) => b.id));
  for (const b of c.blocks) {
    if (!ids.has(b.id)) { blocks[b.id] = { code: 'MISSING' }; continue; }
    try {
      blocks[b.id] = sha(await memory.read(b.id, 0, b.length));
    } catch (err) {
      blocks[b.id] = { code: codeOf(err) };
    }
  }
  const extra = [...ids].filter((id) => !c.blocks.some((b) => b.id === id));
  return { blocks, extra };
}

const jobs = JSON.parse(await readFile(process.argv[2], 'utf8')) as Case[];
for (const c of jobs) {
  const result: Record<string, unknown> = {};
  let memory: Memory | null = null;
  try {
    memory = await openMemory({ store: c.dirs.length === 1 ? c.dirs[0] : c.dirs, cacheBytes: 64 * 4096, flushIntervalMs: 0 });
    result.open = 'ok';
    result.damage = memory.damage().length;
    Object.assign(result, await readAll(memory, c));
    if (c.dirs.length > 1) {
      const s = await memory.scrub();
      result.scrub = { repaired: s.repaired, damaged: s.damaged.length };
    }
    await memory.close();
  } catch (err) {
    if (result.open === undefined) result.open = codeOf(err);
    else result.error = codeOf(err);
    result.message = (err as Error)?.message;
    await memory?.close().catch(() => {});
  }
  if (c.dirs.length > 1 && result.open === 'ok') {
    try {
      const alone = await openMemory({ store: c.damaged, cacheBytes: 64 * 4096, flushIntervalMs: 0 });
      result.alone = { damage: alone.damage().length, ...(await readAll(alone, c)) };
      await alone.close();
    } catch (err) {
      result.alone = { open: codeOf(err), message: (err as Error)?.message };
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
