// The demo's output (`npm start`): narration on stdout (stderr with --json,
// so stdout holds only the JSON summary), progress bars on stderr, number
// formats, and the small helpers every phase uses to talk to a node.

import { performance } from 'node:perf_hooks';
import type { NodeProcess, Reply } from './node-process.js';

/** What the output needs of the demo's options. */
export interface OutOptions { json: boolean; quiet: boolean }

export class Out {
  readonly tty = process.stderr.isTTY === true;
  constructor(readonly o: OutOptions) {}
  /** A line of narration: on stdout, or on stderr with --json (stdout holds only the JSON). */
  say(line = ''): void {
    if (this.o.quiet) return;
    (this.o.json ? process.stderr : process.stdout).write(line + '\n');
  }
  bar(label: string): Bar { return new Bar(this, label); }
}

/** A progress bar on stderr: one line redrawn with \r on a terminal, a plain line at each quarter otherwise. */
export class Bar {
  #drawn = 0;
  #quarter = -1;
  #open = false;
  constructor(readonly out: Out, readonly label: string) {}

  update(fraction: number, text: string): void {
    if (this.out.o.quiet) return;
    const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
    if (this.out.tty) {
      const now = performance.now();
      if (now - this.#drawn < 80) return;
      this.#drawn = now;
      this.#draw(f, text);
    } else {
      const q = Math.floor(f * 4);
      if (q <= this.#quarter || q >= 4) return;
      this.#quarter = q;
      process.stderr.write(`   ${this.label.trim()}: ${Math.round(f * 100)}%  ${text}\n`);
    }
  }

  done(text: string): void {
    if (this.out.o.quiet) return;
    if (this.out.tty) {
      this.#draw(1, text);
      process.stderr.write('\n');
      this.#open = false;
    } else {
      process.stderr.write(`   ${this.label.trim()}: done  ${text}\n`);
    }
  }

  /** Ends the bar where it is (an error or an interruption). */
  stop(): void {
    if (this.#open && this.out.tty) process.stderr.write('\n');
    this.#open = false;
  }

  #draw(f: number, text: string): void {
    const width = 24;
    const full = Math.round(f * width);
    let line = `   ${this.label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.round(f * 100)).padStart(3)}%  ${text}`;
    const cols = process.stderr.columns ?? 100;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    process.stderr.write(`\r\x1b[K${line}`);
    this.#open = true;
  }
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
export const ms = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2));
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes >= 2 ** 30 ? 0 : 1)} MiB`;
export const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Rejects when `p` takes longer than `t` ms: a node that stops answering fails the demo instead of hanging it. */
export function timed<T>(p: Promise<T>, t: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${t / 1000} s`)), t); }),
  ]);
}

/** A command that must succeed. */
export async function must(node: NodeProcess, name: string, cmd: Record<string, unknown>, t = 30000): Promise<Reply> {
  const r = await timed(node.send(cmd), t, `${name}: ${String(cmd.cmd)}`);
  if (!r.ok) throw new Error(`${name}: ${String(cmd.cmd)} failed: ${String(r.code ?? '')} ${String(r.error ?? '')}`.trim());
  return r;
}
