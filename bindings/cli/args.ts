// What the commands of the `twinpage` CLI share: option parsing (usage errors
// exit 2), the shape of a command, and the client side of a running node's
// control socket (serve listens on it; status and verify ask through it).

import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TwinpageError } from '../errors.js';

/** A bad command line: the dispatcher prints it with the command's synopsis and exits 2. */
export class UsageError extends Error {}

/** One subcommand of `twinpage`. */
export interface Command {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** The synopsis (first lines of the help, printed with usage errors too). */
  synopsis: string;
  /** The rest of the help: what it does, each option. */
  help: string;
  /** Runs with the arguments after the command name; resolves with the exit status. */
  run(argv: string[]): Promise<number>;
}

/** How each option of a command is given: with a value, or alone. */
export type OptionSpec = Record<string, 'value' | 'flag'>;

/** Parsed options: a value per `--name`, or `true` for a flag given. */
export type Options = Map<string, string | true>;

/** Options every command takes. */
export const COMMON: OptionSpec = { '--verbose': 'flag', '--help': 'flag' };

/**
 * Parses `--name value`, `--name=value` and `--flag` against `spec`.
 * Unknown options, missing values, repeats and stray words are usage errors.
 */
export function parseOptions(argv: string[], spec: OptionSpec): Options {
  const all: OptionSpec = { ...COMMON, ...spec };
  const out: Options = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const kind = all[name];
    if (!kind) throw new UsageError(`unknown option ${name}`);
    if (out.has(name)) throw new UsageError(`${name} is given twice`);
    if (kind === 'flag') {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      out.set(name, true);
      continue;
    }
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`${name} needs a value`);
      value = argv[++i];
    }
    if (value === '') throw new UsageError(`${name} needs a value`);
    out.set(name, value);
  }
  return out;
}

/** A string option's value, or undefined. */
export function str(o: Options, name: string): string | undefined {
  const v = o.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function required(o: Options, name: string): string {
  const v = str(o, name);
  if (v === undefined) throw new UsageError(`${name} is required`);
  return v;
}

export function flag(o: Options, name: string): boolean {
  return o.get(name) === true;
}

/** A whole-number option in [min, max]. */
export function int(o: Options, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = str(o, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/** A positive number option (fractions allowed) up to `max`. */
export function positive(o: Options, name: string, max: number): number | undefined {
  const v = str(o, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > max) throw new UsageError(`${name} must be a number above 0 and at most ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** One of `choices`. */
export function choice<T extends string>(o: Options, name: string, choices: readonly T[]): T | undefined {
  const v = str(o, name);
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`${name} must be ${choices.join(', ').replace(/, ([^,]*)$/, ' or $1')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** HOST:PORT (an IPv6 host in brackets: [::1]:7000). */
export function hostPort(o: Options, name: string): [string, number] | undefined {
  const v = str(o, name);
  if (v === undefined) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v);
  if (!m || Number(m[3]) > 65535) throw new UsageError(`${name} must be HOST:PORT, got ${JSON.stringify(v)}`);
  return [m[1] ?? m[2], Number(m[3])];
}

// --- the control socket --------------------------------------------------------------
//
// A running `twinpage serve` listens on a Unix socket (a named pipe on
// Windows) tied to its data folder, and takes there the JSON-line commands
// it takes on standard input, answering each with one line.

/** The control socket of the node serving `dir`: `<dir>/control.sock`, or a path in the temp folder when that one is too long for a socket. */
export function controlPath(dir: string): string {
  let abs = resolve(dir);
  try { abs = realpathSync(abs); } catch { /* not there (yet): the path as given */ }
  const tag = createHash('sha256').update(abs).digest('hex').slice(0, 16);
  if (process.platform === 'win32') return `\\\\.\\pipe\\twinpage-${tag}`;
  const path = join(abs, 'control.sock');
  // sun_path holds 104 (macOS) to 108 (Linux) bytes, with its NUL.
  return Buffer.byteLength(path) <= 100 ? path : join(tmpdir(), `twinpage-${tag}.sock`);
}

/**
 * Sends one command to the node serving `dir` and resolves with its reply.
 * NOT_FOUND when no node serves the folder; a reply with `ok: false` becomes
 * a TwinpageError with its code.
 */
export function askNode(dir: string, cmd: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
  const path = controlPath(dir);
  return new Promise((resolvePromise, reject) => {
    const socket = connect(path);
    let buffer = '';
    let settled = false;
    const finish = (err: Error | null, reply?: Record<string, unknown>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(reply!);
    };
    const timer = setTimeout(() => finish(TwinpageError.busy(`the node serving ${dir} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ id: 1, ...cmd }) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(buffer.slice(0, nl));
      } catch {
        finish(TwinpageError.badFrame(`the node serving ${dir} sent a reply that is not JSON`));
        return;
      }
      if (reply.ok === false) {
        finish(TwinpageError.fromCode(reply.code ?? 'IO_ERROR', String(reply.error ?? 'the node refused the command')));
      } else finish(null, reply);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        finish(TwinpageError.notFound(`no node is running on ${dir} (nothing listens on ${path}; start one with twinpage serve)`));
      } else finish(TwinpageError.ioError(`control socket ${path}: ${err.message}`, err));
    });
    socket.on('close', () => finish(TwinpageError.closed(`the node serving ${dir} closed the control connection without answering`)));
  });
}

/** Seconds as an option value → milliseconds, for the clients' --timeout. */
export function timeoutMs(o: Options, fallbackSeconds: number): number {
  return Math.round((positive(o, '--timeout', 3600) ?? fallbackSeconds) * 1000);
}

/** Writes `text` and a newline to standard output. */
export function out(text = ''): void {
  process.stdout.write(text + '\n');
}

/** Rows of [label, value] as aligned text. */
export function table(rows: Array<[string, string]>, indent = '  '): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}`).join('\n');
}

/** Bytes in a short human form: 512 B, 4 KiB, 1.5 MiB. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** Runs of pages [[first, count], ...] as "10-12, 40". */
export function runsText(runs: Array<[number, number]>, max = 20): string {
  const parts = runs.slice(0, max).map(([f, c]) => (c === 1 ? `${f}` : `${f}-${f + c - 1}`));
  if (runs.length > max) parts.push(`… ${runs.length - max} more runs`);
  return parts.join(', ');
}
