// Runs a `twinpage witness` child process for the demo (`npm start`): its
// JSON-line events (listening, connected, record, ...), and a way to wait for
// one. The pair's nodes reach it themselves (`twinpage serve --witness`); the
// demo only starts it, watches its record, and stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI } from './node-process.js';

export type WitnessEvent = Record<string, unknown>;

export class WitnessProcess {
  readonly proc: ChildProcess;
  /** Every event line seen, in order. */
  readonly events: WitnessEvent[] = [];
  /** Resolves with the exit code (null when killed by a signal) once the process is gone. */
  readonly exited: Promise<number | null>;
  stderr = '';
  #gone = false;
  #waiters: Array<{ test: (e: WitnessEvent) => boolean; resolve: (e: WitnessEvent) => void }> = [];

  /** Starts `twinpage witness ARGS…`. */
  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'witness', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => { this.#gone = true; resolve(code); }));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let e: WitnessEvent;
      try { e = JSON.parse(line); } catch { return; }
      this.events.push(e);
      this.#waiters = this.#waiters.filter((w) => (w.test(e) ? (w.resolve(e), false) : true));
    });
  }

  get gone(): boolean { return this.#gone; }

  /** The first event named `name` matching `where`, seen already or to come. */
  event(name: string, timeoutMs = 10000, where: (e: WitnessEvent) => boolean = () => true): Promise<WitnessEvent> {
    const test = (e: WitnessEvent) => e.event === name && where(e);
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${name} event from the witness in ${timeoutMs} ms${this.stderr ? `; its stderr: ${this.stderr.trim()}` : ''}`));
      }, timeoutMs);
      const waiter = { test, resolve: (e: WitnessEvent) => { clearTimeout(timer); resolve(e); } };
      this.#waiters.push(waiter);
      void this.exited.then(() => {
        if (!this.#waiters.includes(waiter)) return;
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        clearTimeout(timer);
        reject(new Error(`the witness exited before its ${name} event${this.stderr ? `; its stderr: ${this.stderr.trim()}` : ''}`));
      });
    });
  }

  /** The pair's record as the witness last wrote it (null before its first change). */
  record(): Record<string, unknown> | null {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e.event === 'record' && e.record) return e.record as Record<string, unknown>;
    }
    return null;
  }

  /** Stops it with SIGTERM (it closes its connections and says `stopped`); SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (this.#gone) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): Promise<number | null> {
    if (!this.#gone) this.proc.kill('SIGKILL');
    return this.exited;
  }
}
