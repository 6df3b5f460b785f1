// Runs `twinpage witness` as a child process for the tests: its JSON events,
// its exit, a signal.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI } from './pair-process.js';

export type WitnessEventLine = Record<string, unknown>;

export class WitnessProcess {
  readonly proc: ChildProcess;
  readonly events: WitnessEventLine[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';
  port = 0;
  #waiters: Array<{ test: (e: WitnessEventLine) => boolean; resolve: (e: WitnessEventLine) => void }> = [];

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'witness', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('close', (code) => resolve(code)));
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let e: WitnessEventLine;
      try { e = JSON.parse(line); } catch { return; }
      this.events.push(e);
      this.#waiters = this.#waiters.filter((w) => (w.test(e) ? (w.resolve(e), false) : true));
    });
  }

  /** Starts a witness on `dir` and waits until it listens (rejects with its stderr when it exits first). */
  static async start(dir: string, secretFile: string, options: { ttlMs?: number; port?: number } = {}): Promise<WitnessProcess> {
    const args = ['--dir', dir, '--listen', `127.0.0.1:${options.port ?? 0}`, '--secret-file', secretFile];
    if (options.ttlMs !== undefined) args.push('--ttl-ms', String(options.ttlMs));
    const w = new WitnessProcess(args);
    const listening = await w.event('listening');
    w.port = listening.port as number;
    return w;
  }

  /** The first event named `name` (seen already, or to come). */
  event(name: string, timeoutMs = 10000, where: (e: WitnessEventLine) => boolean = () => true): Promise<WitnessEventLine> {
    const test = (e: WitnessEventLine) => e.event === name && where(e);
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${name} event from the witness in ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      const waiter = { test, resolve: (e: WitnessEventLine) => { clearTimeout(timer); resolve(e); } };
      this.#waiters.push(waiter);
      void this.exited.then(() => {
        if (!this.#waiters.includes(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`the witness exited before its ${name} event; stderr: ${this.stderr}`));
      });
    });
  }

  /** Sends `signal`; resolves with the exit code once gone. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }
}

/** Runs `twinpage witness ARGS` to its end (it must stop on its own: bad arguments, a refused folder). */
export async function runWitness(args: string[], timeoutMs = 15000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'witness', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  return { status, stdout, stderr };
}

/** Writes a secret file readable by its owner only; returns its path. */
export async function secretFile(dir: string, secret: string, name = 'secret'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, secret + '\n', { mode: 0o600 });
  return path;
}
