// What the campaigns over `twinpage serve` processes (partition.test.ts,
// quorum-pair.ts) ask of a node, whatever they do to its process: commands
// that fail by name when it hangs, its 4 KiB slots read back as versions
// (slots.ts), its blocks, and whether it says it is linked to its partner.
import type { NodeProcess, Reply } from './pair-process.js';
import { SLOT, versionOf } from './slots.js';

export abstract class ServeNode {
  proc: NodeProcess | null = null;
  abstract readonly name: string;

  /** Sends a command; a node that is not running answers EXITED. A reply later than `ms` fails the test (a hang). */
  async send(cmd: Record<string, unknown>, ms = 30000): Promise<Reply> {
    const p = this.proc;
    if (!p) return { ok: false, code: 'EXITED', error: `node ${this.name} is not running` };
    let timer!: ReturnType<typeof setTimeout>;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`node ${this.name}: no reply to ${JSON.stringify(cmd).slice(0, 80)} in ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([p.send(cmd), hang]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like send, but the reply must be ok. */
  async must(cmd: Record<string, unknown>, ms?: number): Promise<Reply> {
    const r = await this.send(cmd, ms);
    if (!r.ok) throw new Error(`node ${this.name}: ${String(cmd.cmd)} failed: ${String(r.code)} ${String(r.error)}`);
    return r;
  }

  /** Reads `count` slots of `block` from `first`: each slot's version (or -1). */
  async readSlots(block: string, count: number, first = 0): Promise<number[]> {
    const r = await this.must({ cmd: 'read', block, offset: first * SLOT, length: count * SLOT });
    const data = Buffer.from(r.data as string, 'base64');
    return Array.from({ length: count }, (_, k) => versionOf(first + k, data.subarray(k * SLOT, (k + 1) * SLOT)));
  }

  async blockIds(): Promise<string[]> {
    const r = await this.must({ cmd: 'blocks' });
    return (r.blocks as Array<{ id: string }>).map((b) => b.id).sort();
  }

  /** Whether the last connection event its process printed says it is connected to its partner now. */
  get linked(): boolean {
    const events = this.proc?.events ?? [];
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i].event === 'connected') return true;
      if (events[i].event === 'disconnected') return false;
    }
    return false;
  }
}
