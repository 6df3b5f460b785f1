// Drives a `twinpage serve` child process through its JSON-line commands:
// the demo (`npm start`, `twinpage demo`) and the multi-process tests use it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The `twinpage` command's entry point (build/bindings/cli.js), next to this module's folder. */
export const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

export type Reply = Record<string, unknown>;
export type NodeEvent = Record<string, unknown>;

export class NodeProcess {
  readonly proc: ChildProcess;
  /** Every `{"event":…}` line seen, in order. */
  readonly events: NodeEvent[] = [];
  /** Resolves with the exit code (null when killed by a signal) once the process is gone and its output read. */
  readonly exited: Promise<number | null>;
  #next = 1;
  #gone = false;
  readonly #replies = new Map<number, (r: Reply) => void>();
  #eventWaiters: Array<{ test: (e: NodeEvent) => boolean; resolve: (e: NodeEvent) => void }> = [];
  readonly #listeners = new Set<(e: NodeEvent) => void>();
  stderr = '';

  /** Starts `twinpage serve ARGS…`. */
  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => { this.stderr += d; });
    // Writes to a process that died fail with EPIPE: its pending replies say EXITED instead.
    this.proc.stdin!.on('error', () => {});
    // 'close' comes after every reply it printed was read: a reply in the pipe
    // when it died is still delivered, not reported as EXITED.
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => {
      this.#gone = true;
      for (const r of this.#replies.values()) r({ ok: false, code: 'EXITED', error: 'the node process exited' });
      this.#replies.clear();
      resolve(code);
    }));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let msg: Record<string, unknown>;
      try { msg = JSON.parse(line); } catch { return; }
      if ('event' in msg) {
        this.events.push(msg);
        this.#eventWaiters = this.#eventWaiters.filter((w) => (w.test(msg) ? (w.resolve(msg), false) : true));
        for (const l of this.#listeners) l(msg);
        return;
      }
      const r = this.#replies.get(msg.id as number);
      if (r) { this.#replies.delete(msg.id as number); r(msg); }
    });
  }

  /** True once the process exited and its output was read. */
  get gone(): boolean { return this.#gone; }

  /** Sends a command; resolves with its reply (ok false with code EXITED if the process died first). */
  send(cmd: Record<string, unknown>): Promise<Reply> {
    if (this.#gone) return Promise.resolve({ ok: false, code: 'EXITED', error: 'the node process exited' });
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#replies.set(id, resolve);
      this.proc.stdin!.write(JSON.stringify({ id, ...cmd }) + '\n', () => {});
    });
  }

  /**
   * Waits for an event named `name`: the first one seen at index `since` of
   * `events` or later (0: any seen so far counts), else the next to come.
   */
  event(name: string, timeoutMs = 10000, since = 0): Promise<NodeEvent> {
    const seen = this.events.slice(since).find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#eventWaiters = this.#eventWaiters.filter((w) => w !== waiter);
        reject(new Error(`no ${name} event from the node in ${timeoutMs} ms${this.stderr ? `; its stderr: ${this.stderr.trim()}` : ''}`));
      }, timeoutMs);
      const waiter = { test: (e: NodeEvent) => e.event === name, resolve: (e: NodeEvent) => { clearTimeout(timer); resolve(e); } };
      this.#eventWaiters.push(waiter);
      void this.exited.then(() => {
        if (!this.#eventWaiters.includes(waiter)) return;
        this.#eventWaiters = this.#eventWaiters.filter((w) => w !== waiter);
        clearTimeout(timer);
        reject(new Error(`the node exited before its ${name} event${this.stderr ? `; its stderr: ${this.stderr.trim()}` : ''}`));
      });
    });
  }

  /** Calls `listener` with every event from now on; returns a function that stops it. */
  onEvent(listener: (e: NodeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  /** SIGKILLs the process; resolves once it is gone. */
  kill(): Promise<number | null> {
    if (!this.#gone) this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** Asks the node to close (it flushes and leaves the pair), and waits for it to exit. */
  async close(): Promise<void> {
    if (this.#gone || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    await this.send({ cmd: 'close' });
    await this.exited;
  }
}
