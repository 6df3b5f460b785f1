// Drives `twinpage serve` child processes through their JSON-line commands.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../bindings/cli.js', import.meta.url));

export class NodeProcess {
  readonly proc: ChildProcess;
  readonly events: Array<Record<string, unknown>> = [];
  readonly exited: Promise<number | null>;
  #next = 1;
  readonly #replies = new Map<number, (r: Record<string, unknown>) => void>();
  #eventWaiters: Array<{ test: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }> = [];
  stderr = '';

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => {
      for (const r of this.#replies.values()) r({ ok: false, code: 'EXITED' });
      this.#replies.clear();
      resolve(code);
    }));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try { msg = JSON.parse(line); } catch { return; }
      if ('event' in msg) {
        this.events.push(msg);
        this.#eventWaiters = this.#eventWaiters.filter((w) => (w.test(msg) ? (w.resolve(msg), false) : true));
        return;
      }
      const r = this.#replies.get(msg.id as number);
      if (r) { this.#replies.delete(msg.id as number); r(msg); }
    });
  }

  /** Sends a command; resolves with its reply (ok false with code EXITED if the process died first). */
  send(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.proc.stdin!.write(JSON.stringify({ id, ...cmd }) + '\n', () => {});
    });
  }

  event(name: string, timeoutMs = 10000): Promise<Record<string, unknown>> {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${name} event in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.#eventWaiters.push({ test: (e) => e.event === name, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  }

  kill(): Promise<number | null> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    await this.send({ cmd: 'close' });
    await this.exited;
  }
}
