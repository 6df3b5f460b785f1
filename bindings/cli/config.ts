// The settings of `twinpage serve`: one table, read from the command line and
// from a config file (`--config FILE`), the command line winning.
//
// The config file is JSON: one object whose keys are the flags' names in
// camelCase (`--secret-file` is "secretFile", `--no-stdin` is "noStdin"),
// plus what only a file can say well ("policies"). JSON because Node reads
// it with nothing added (YAML or TOML would bring a parser into the daemon),
// every tool that generates configuration writes it, and it is the language
// the node already speaks (its commands, its events, `--json` outputs). It
// has no comments: keys starting with "//" are taken as comments and skipped.
// Unknown keys are refused, naming them, so a misspelt setting never passes
// silently. Relative paths in the file are relative to the file's folder
// (a service starts in /), on the command line to the current folder.
//
// A new setting is one row of SETTINGS (and its use in serve.ts): its key,
// its flag, its kind; the checks, the file, the flag and the override come
// with the row. Settings that only a file gives (no flag) leave `flag` out.

import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { SPLIT_BRAIN_POLICIES } from '../messages.js';
import { PolicyList, type PolicyInput } from '../policies.js';
import { mapFsError } from '../storage/file.js';
import { TwinpageError } from '../errors.js';
import {
  UsageError, choice, flag, hostPort, int, parseOptions, str, type OptionSpec, type Options,
} from './args.js';

type Kind =
  | { type: 'string' }
  | { type: 'path' }
  | { type: 'flag' }
  | { type: 'int'; min: number; max: number }
  | { type: 'choice'; choices: readonly string[] }
  | { type: 'hostPort' }
  | { type: 'policies' };

interface Setting {
  /** The key in the config file. */
  key: string;
  /** The command-line option, when there is one. */
  flag?: string;
  kind: Kind;
}

const path: Kind = { type: 'path' };
const yes: Kind = { type: 'flag' };
const endpoint: Kind = { type: 'hostPort' };
const count = (min: number, max: number): Kind => ({ type: 'int', min, max });
const oneOf = (...choices: string[]): Kind => ({ type: 'choice', choices });

/** Every setting of `twinpage serve`. */
export const SETTINGS: readonly Setting[] = [
  { key: 'dir', flag: '--dir', kind: path },
  { key: 'role', flag: '--role', kind: oneOf('primary', 'secondary') },
  { key: 'listen', flag: '--listen', kind: endpoint },
  { key: 'peer', flag: '--peer', kind: endpoint },
  { key: 'secretFile', flag: '--secret-file', kind: path },
  { key: 'tlsCert', flag: '--tls-cert', kind: path },
  { key: 'tlsKey', flag: '--tls-key', kind: path },
  { key: 'tlsCa', flag: '--tls-ca', kind: path },
  { key: 'insecurePlaintext', flag: '--insecure-plaintext', kind: yes },
  { key: 'pageSize', flag: '--page-size', kind: count(512, 1 << 20) },
  { key: 'cacheMb', flag: '--cache-mb', kind: count(1, 1 << 16) },
  { key: 'heartbeatMs', flag: '--heartbeat-ms', kind: count(1, 3_600_000) },
  { key: 'timeoutMs', flag: '--timeout-ms', kind: count(1, 3_600_000) },
  { key: 'failover', flag: '--failover', kind: oneOf('manual', 'auto') },
  { key: 'witness', flag: '--witness', kind: endpoint },
  { key: 'witnessSecretFile', flag: '--witness-secret-file', kind: path },
  { key: 'etcd', flag: '--etcd', kind: { type: 'string' } },
  { key: 'etcdPrefix', flag: '--etcd-prefix', kind: { type: 'string' } },
  { key: 'leaseMs', flag: '--lease-ms', kind: count(1000, 3_600_000) },
  { key: 'onNoQuorum', flag: '--on-no-quorum', kind: oneOf('suspend', 'error') },
  { key: 'splitBrain', flag: '--split-brain', kind: oneOf(...SPLIT_BRAIN_POLICIES) },
  { key: 'copy', flag: '--copy', kind: oneOf('auto', 'message', 'storage') },
  { key: 'exchange', flag: '--exchange', kind: path },
  { key: 'exchangeMb', flag: '--exchange-mb', kind: count(1, 1 << 16) },
  { key: 'extentPages', flag: '--extent-pages', kind: count(1, 1 << 20) },
  { key: 'intentExtents', flag: '--intent-extents', kind: count(1, 1 << 16) },
  { key: 'noStdin', flag: '--no-stdin', kind: yes },
  { key: 'metrics', flag: '--metrics', kind: endpoint },
  { key: 'policies', kind: { type: 'policies' } },
];

/** The settings as given: each key's value, from the flags over the file. */
export interface ServeConfig {
  dir?: string;
  role?: 'primary' | 'secondary';
  listen?: [string, number];
  peer?: [string, number];
  secretFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  insecurePlaintext?: boolean;
  pageSize?: number;
  cacheMb?: number;
  heartbeatMs?: number;
  timeoutMs?: number;
  failover?: 'manual' | 'auto';
  witness?: [string, number];
  witnessSecretFile?: string;
  etcd?: string;
  etcdPrefix?: string;
  leaseMs?: number;
  onNoQuorum?: 'suspend' | 'error';
  splitBrain?: (typeof SPLIT_BRAIN_POLICIES)[number];
  copy?: 'auto' | 'message' | 'storage';
  exchange?: string;
  exchangeMb?: number;
  extentPages?: number;
  intentExtents?: number;
  noStdin?: boolean;
  metrics?: [string, number];
  policies?: PolicyInput[];
  /** The config file read, if any. */
  configFile?: string;
}

/** The option spec of the settings that have a flag, and --config. */
export function serveOptionSpec(): OptionSpec {
  const spec: OptionSpec = { '--config': 'value' };
  for (const s of SETTINGS) if (s.flag) spec[s.flag] = s.kind.type === 'flag' ? 'flag' : 'value';
  return spec;
}

/** Reads the command line and, with --config, the file under it. */
export async function loadServeConfig(argv: string[]): Promise<ServeConfig> {
  const o = parseOptions(argv, serveOptionSpec());
  const file = str(o, '--config');
  const config: Record<string, unknown> = file ? await readConfigFile(file) : {};
  for (const s of SETTINGS) {
    const v = s.flag ? fromFlag(s, o) : undefined;
    if (v !== undefined) config[s.key] = v;
  }
  if (file) config.configFile = resolve(file);
  return config as ServeConfig;
}

/** A setting's value from the command line, checked; undefined when not given. */
function fromFlag(s: Setting, o: Options): unknown {
  const name = s.flag!;
  if (!o.has(name)) return undefined;
  const k = s.kind;
  switch (k.type) {
    case 'flag': return flag(o, name) || undefined;
    case 'int': return int(o, name, k.min, k.max);
    case 'choice': return choice(o, name, k.choices);
    case 'hostPort': return hostPort(o, name);
    default: return str(o, name);
  }
}

/** Reads and checks a config file: a JSON object of known keys. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw mapFsError(err, `read the config file ${file}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`config ${file}: not JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new UsageError(`config ${file}: must be a JSON object ({ "dir": …, "role": … })`);
  const entries = Object.entries(json as Record<string, unknown>).filter(([k]) => !k.startsWith('//'));
  const known = new Map(SETTINGS.map((s) => [s.key, s]));
  const unknown = entries.map(([k]) => k).filter((k) => !known.has(k));
  if (unknown.length) {
    throw new UsageError(`config ${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} ` +
      `(known: ${SETTINGS.map((s) => s.key).join(', ')})`);
  }
  const base = dirname(resolve(file));
  const out: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    const v = fromFile(known.get(key)!, value, `config ${file}: ${key}`, base);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** A setting's value from the file, checked (`where` names it in errors); undefined for null or false. */
function fromFile(s: Setting, value: unknown, where: string, base: string): unknown {
  if (value === null) return undefined;
  const k = s.kind;
  const bad = (what: string) => new UsageError(`${where} must be ${what}, got ${JSON.stringify(value)}`);
  switch (k.type) {
    case 'flag':
      if (typeof value !== 'boolean') throw bad('true or false');
      return value || undefined;
    case 'int':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < k.min || value > k.max) throw bad(`a whole number from ${k.min} to ${k.max}`);
      return value;
    case 'choice':
      if (typeof value !== 'string' || !k.choices.includes(value)) throw bad(`one of ${k.choices.map((c) => JSON.stringify(c)).join(', ')}`);
      return value;
    case 'hostPort': {
      if (typeof value !== 'string') throw bad('"HOST:PORT"');
      try {
        return hostPort(new Map([['value', value]]), 'value');
      } catch {
        throw bad('"HOST:PORT"');
      }
    }
    case 'path':
      if (typeof value !== 'string' || value === '') throw bad('a path');
      return isAbsolute(value) ? value : resolve(base, value);
    case 'string':
      if (typeof value !== 'string' || value === '') throw bad('a string');
      return value;
    case 'policies':
      return checkPolicies(value, where);
  }
}

const POLICY_KEYS = ['name', 'maxSize', 'durability', 'writeMode', 'cachePriority', 'copyMethod'];

/** The "policies" list: objects of known keys, checked as openMemory would (maxSize null or left out: any size). */
function checkPolicies(value: unknown, where: string): PolicyInput[] {
  if (!Array.isArray(value) || value.length === 0) throw new UsageError(`${where} must be a non-empty list of policies ({ "name": …, "maxSize": …, "durability": … })`);
  value.forEach((p, i) => {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new UsageError(`${where}[${i}] must be an object`);
    const extra = Object.keys(p).filter((k) => !POLICY_KEYS.includes(k));
    if (extra.length) throw new UsageError(`${where}[${i}]: unknown key${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')} (known: ${POLICY_KEYS.join(', ')})`);
  });
  const inputs = value.map((p) => ({ ...p, maxSize: p.maxSize ?? Infinity })) as PolicyInput[];
  try {
    new PolicyList(inputs);
  } catch (err) {
    if (err instanceof TwinpageError) throw new UsageError(`${where.replace(/: policies$/, '')}: ${err.message}`);
    throw err;
  }
  return inputs;
}
