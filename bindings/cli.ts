#!/usr/bin/env node
// The `twinpage` command. `serve` runs one node of a pair over TCP and takes
// commands as JSON lines on standard input, answering each on standard
// output (so a script, a test or the demo can drive it):
//
//   → {"id":1,"cmd":"allocate","size":65536}
//   ← {"id":1,"ok":true,"block":{"id":"…","base":0,"length":65536,…}}
//   → {"id":2,"cmd":"write","block":"…","offset":0,"data":"<base64>"}
//   ← {"id":2,"ok":true}
//
// Commands: allocate, free, write, read, blocks, sense, promote, resync,
// verify, close. Events (connection up and down) come as {"event":…} lines.

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { openMemory, TwinpageError, type MirroredMemory } from './index.js';
import { connectTcp, listenTcp } from './mirror/tcp.js';

const USAGE = `usage: twinpage serve --dir DIR --role primary|secondary (--listen HOST:PORT | --peer HOST:PORT)
                      --secret-file FILE [--page-size BYTES] [--cache-mb MB] [--verbose]

Runs one node of a mirrored pair and takes JSON-line commands on stdin.
  --dir          the node's data folder (created when missing)
  --role         primary (serves writes) or secondary (applies the partner's)
  --listen       wait for the partner on HOST:PORT (port 0: any free port, printed)
  --peer         connect to the partner at HOST:PORT (and reconnect when the link drops)
  --secret-file  a file holding the secret both nodes share (mutual HMAC authentication)
  --page-size    bytes per page of a new store (default 4096)
  --cache-mb     page cache in MiB (default 64)
  --verbose      print stack traces of errors`;

class UsageError extends Error {}

interface ServeArgs {
  dir: string; role: 'primary' | 'secondary'; listen?: [string, number]; peer?: [string, number];
  secretFile: string; pageSize?: number; cacheMb: number; verbose: boolean;
}

function hostPort(value: string | undefined, flag: string): [string, number] {
  const m = /^(.+):(\d+)$/.exec(value ?? '');
  if (!m || Number(m[2]) > 65535) throw new UsageError(`${flag} must be HOST:PORT, got ${String(value)}`);
  return [m[1], Number(m[2])];
}

function parseServe(argv: string[]): ServeArgs {
  const get = new Map<string, string>();
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--verbose') { verbose = true; continue; }
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new UsageError(`unexpected argument: ${a}`);
    get.set(a, argv[++i]);
  }
  for (const k of get.keys()) {
    if (!['--dir', '--role', '--listen', '--peer', '--secret-file', '--page-size', '--cache-mb'].includes(k)) throw new UsageError(`unknown option ${k}`);
  }
  const role = get.get('--role');
  if (role !== 'primary' && role !== 'secondary') throw new UsageError('--role must be primary or secondary');
  if (!get.get('--dir')) throw new UsageError('--dir is required');
  if (!get.get('--secret-file')) throw new UsageError('--secret-file is required');
  if (get.has('--listen') === get.has('--peer')) throw new UsageError('give exactly one of --listen and --peer');
  const num = (k: string) => {
    const v = get.get(k);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`${k} must be a whole number`);
    return Number(v);
  };
  return {
    dir: get.get('--dir')!, role, secretFile: get.get('--secret-file')!,
    listen: get.has('--listen') ? hostPort(get.get('--listen'), '--listen') : undefined,
    peer: get.has('--peer') ? hostPort(get.get('--peer'), '--peer') : undefined,
    pageSize: num('--page-size'), cacheMb: num('--cache-mb') ?? 64, verbose,
  };
}

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function serve(args: ServeArgs): Promise<void> {
  const secret = (await readFile(args.secretFile)).toString('utf8').trim();
  if (!secret) throw new UsageError(`the secret file ${args.secretFile} is empty`);
  const memory = await openMemory({
    store: args.dir, pageSize: args.pageSize, cacheBytes: args.cacheMb << 20,
    mirror: { role: args.role, heartbeatMs: 200, timeoutMs: 2000 },
  }) as MirroredMemory;
  const mirror = memory.mirror;
  let stopping = false;
  let stopListener: (() => Promise<void>) | null = null;

  if (args.listen) {
    const listener = await listenTcp({ host: args.listen[0], port: args.listen[1], secret, nodeId: memory.nodeId }, (t) => {
      mirror.attach(t);
      say({ event: 'connected', peer: t.peerId });
      t.onClose((err) => say({ event: 'disconnected', reason: err?.message ?? null }));
    });
    stopListener = () => listener.close();
    say({ event: 'listening', port: listener.port, nodeId: memory.nodeId });
  } else {
    const [host, port] = args.peer!;
    const connect = async (): Promise<void> => {
      while (!stopping) {
        try {
          const t = await connectTcp({ host, port, secret, nodeId: memory.nodeId });
          mirror.attach(t);
          say({ event: 'connected', peer: t.peerId });
          t.onClose((err) => {
            say({ event: 'disconnected', reason: err?.message ?? null });
            if (!stopping) setTimeout(() => void connect(), 200);
          });
          return;
        } catch (err) {
          if ((err as TwinpageError).code === 'AUTH_FAILED') say({ event: 'auth-failed', reason: (err as Error).message });
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    void connect();
    say({ event: 'started', nodeId: memory.nodeId });
  }

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let id: unknown = null;
    try {
      const c = JSON.parse(line) as Record<string, unknown>;
      id = c.id ?? null;
      const result = await command(memory, c);
      say({ id, ok: true, ...result });
      if (c.cmd === 'close') break;
    } catch (err) {
      say({ id, ok: false, code: (err as TwinpageError).code ?? 'INVALID_ARGUMENT', error: (err as Error).message });
    }
  }
  stopping = true;
  await stopListener?.();
  await memory.close();
}

async function command(memory: MirroredMemory, c: Record<string, unknown>): Promise<Record<string, unknown>> {
  const str = (k: string) => { if (typeof c[k] !== 'string') throw TwinpageError.invalidArgument(`${k} must be a string`); return c[k] as string; };
  const int = (k: string) => { if (!Number.isSafeInteger(c[k])) throw TwinpageError.invalidArgument(`${k} must be an integer`); return c[k] as number; };
  switch (c.cmd) {
    case 'allocate': {
      const b = await memory.allocate(int('size'), { policy: typeof c.policy === 'string' ? c.policy : undefined });
      return { block: { ...b, policy: b.policy.name } };
    }
    case 'free': await memory.free(str('block')); return {};
    case 'write': await memory.write(str('block'), int('offset'), Buffer.from(str('data'), 'base64')); return {};
    case 'read': return { data: Buffer.from(await memory.read(str('block'), int('offset'), int('length'))).toString('base64') };
    case 'blocks': return { blocks: memory.blocks().map((b) => ({ ...b, policy: b.policy.name })) };
    case 'sense': return { sense: memory.mirror.sense() };
    case 'promote': await memory.mirror.promote(); return { sense: memory.mirror.sense() };
    case 'resync': await memory.mirror.resync(); return { sense: memory.mirror.sense() };
    case 'verify': return { verify: await memory.mirror.verify() };
    case 'close': return {};
    default: throw TwinpageError.invalidArgument(`unknown command ${JSON.stringify(c.cmd)}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === 'help') { console.log(USAGE); return cmd ? 0 : 2; }
  if (cmd !== 'serve') { console.error(`twinpage: unknown command ${cmd}\n${USAGE}`); return 2; }
  if (rest.includes('--help')) { console.log(USAGE); return 0; }
  let args: ServeArgs;
  try {
    args = parseServe(rest);
  } catch (err) {
    console.error(`twinpage: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  try {
    await serve(args);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) { console.error(`twinpage: ${err.message}`); return 2; }
    console.error(`twinpage: ${(err as TwinpageError).code ?? 'ERROR'}: ${(err as Error).message}`);
    if (args.verbose) console.error((err as Error).stack);
    return 1;
  }
}

// Exit outright: standard input (the command stream) would keep the process alive.
process.exit(await main(process.argv.slice(2)));
