// `twinpage serve`: one node of a pair over TCP. It takes commands as JSON
// lines on standard input and answers each on standard output (so a script, a
// test or the demo can drive it):
//
//   → {"id":1,"cmd":"allocate","size":65536}
//   ← {"id":1,"ok":true,"block":{"id":"…","base":0,"length":65536,…}}
//   → {"id":2,"cmd":"write","block":"…","offset":0,"data":"<base64>"}
//   ← {"id":2,"ok":true}
//
// Commands: allocate, free, write, read, blocks, sense, status, promote,
// resync, verify, close. Events come as {"event":…} lines: control, listening
// or started, connected, disconnected, auth-failed, resync (progress).
//
// The same commands are taken on the node's control socket (one JSON line
// each, one reply line), where `twinpage status` and `twinpage verify` ask.

import { lstat, mkdir, readFile, rm, chmod } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { openMemory, TwinpageError, type MirroredMemory, type MirrorOptions } from '../index.js';
import { connectTcp, listenTcp } from '../mirror/transports/tcp.js';
import { FileDevice, mapFsError } from '../storage/file.js';
import {
  UsageError, choice, controlPath, flag, hostPort, int, parseOptions, required, str, type Command,
} from './args.js';

const synopsis = `usage: twinpage serve --dir DIR --role primary|secondary (--listen HOST:PORT | --peer HOST:PORT)
                      --secret-file FILE [--page-size BYTES] [--cache-mb MB]
                      [--copy auto|message|storage] [--exchange FILE] [--exchange-mb MB]
                      [--extent-pages N] [--intent-extents N] [--no-stdin] [--verbose]`;

const help = `Runs one node of a mirrored pair over TCP. It takes commands as JSON lines on
standard input and answers each on standard output, with events as
{"event":...} lines (listening, connected, disconnected, resync progress).
The same commands are taken on the control socket DIR/control.sock, where
'twinpage status' and 'twinpage verify' reach the node.

  --dir          the node's data folder (created when missing)
  --role         primary (serves writes) or secondary (applies the partner's)
  --listen       wait for the partner on HOST:PORT (port 0: any free port, printed)
  --peer         connect to the partner at HOST:PORT (and reconnect when the link drops)
  --secret-file  a file holding the secret both nodes share (mutual HMAC authentication)
  --page-size    bytes per page of a new store (default 4096)
  --cache-mb     page cache in MiB (default 64)
  --copy         how pages travel to the partner: auto (default), message (in the
                 frames) or storage (through the --exchange file)
  --exchange     a file both nodes open, for the storage copy method
  --exchange-mb  MiB of the exchange file to use, both halves (default 16)
  --extent-pages pages per write-intent extent (default 128)
  --intent-extents
                 write-intent extents kept hot (default 64): after a crash, a
                 rejoining node resyncs at most these extents' pages
  --no-stdin     ignore standard input; run until SIGINT, SIGTERM or a close
                 command on the control socket (for running in the background)
  --verbose      print stack traces of errors

Commands (one JSON object per line, with an optional "id" echoed in the reply):
  {"cmd":"allocate","size":N,"policy"?:NAME}   {"cmd":"free","block":ID}
  {"cmd":"write","block":ID,"offset":N,"data":BASE64}
  {"cmd":"read","block":ID,"offset":N,"length":N}
  {"cmd":"blocks"}  {"cmd":"sense"}  {"cmd":"status"}  {"cmd":"promote"}
  {"cmd":"resync"}  {"cmd":"verify"}  {"cmd":"scrub"}  {"cmd":"close"}`;

interface ServeArgs {
  dir: string; role: 'primary' | 'secondary'; listen?: [string, number]; peer?: [string, number];
  secretFile: string; pageSize?: number; cacheMb: number;
  copy?: 'auto' | 'message' | 'storage'; exchange?: string; exchangeMb: number; stdin: boolean;
  extentPages?: number; intentExtents?: number;
}

function parse(argv: string[]): ServeArgs {
  const o = parseOptions(argv, {
    '--dir': 'value', '--role': 'value', '--listen': 'value', '--peer': 'value', '--secret-file': 'value',
    '--page-size': 'value', '--cache-mb': 'value', '--copy': 'value', '--exchange': 'value', '--exchange-mb': 'value',
    '--extent-pages': 'value', '--intent-extents': 'value', '--no-stdin': 'flag',
  });
  const role = choice(o, '--role', ['primary', 'secondary'] as const);
  if (!role) throw new UsageError('--role is required (primary or secondary)');
  const dir = required(o, '--dir');
  const secretFile = required(o, '--secret-file');
  if (o.has('--listen') === o.has('--peer')) throw new UsageError('give exactly one of --listen and --peer');
  const copy = choice(o, '--copy', ['auto', 'message', 'storage'] as const);
  const exchange = str(o, '--exchange');
  if (copy === 'storage' && !exchange) throw new UsageError('--copy storage needs --exchange FILE');
  if (o.has('--exchange-mb') && !exchange) throw new UsageError('--exchange-mb needs --exchange FILE');
  const pageSize = int(o, '--page-size', 512, 1 << 20);
  if (pageSize !== undefined && (pageSize & (pageSize - 1)) !== 0) throw new UsageError('--page-size must be a power of two from 512 to 1048576');
  return {
    dir, role, secretFile, listen: hostPort(o, '--listen'), peer: hostPort(o, '--peer'),
    pageSize, cacheMb: int(o, '--cache-mb', 1, 1 << 16) ?? 64,
    copy, exchange, exchangeMb: int(o, '--exchange-mb', 1, 1 << 16) ?? 16, stdin: !flag(o, '--no-stdin'),
    extentPages: int(o, '--extent-pages', 1, 1 << 20), intentExtents: int(o, '--intent-extents', 1, 1 << 16),
  };
}

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function serve(args: ServeArgs): Promise<void> {
  let secret: string;
  try {
    secret = (await readFile(args.secretFile)).toString('utf8').trim();
  } catch (err) {
    throw mapFsError(err, `read the secret file ${args.secretFile}`);
  }
  if (!secret) throw new UsageError(`the secret file ${args.secretFile} is empty`);
  try { await mkdir(args.dir, { recursive: true }); } catch (err) { throw mapFsError(err, `create ${args.dir}`); }
  const control = controlPath(args.dir);
  await clearStaleSocket(control, args.dir);

  const mirrorOptions: MirrorOptions = {
    role: args.role, heartbeatMs: 200, timeoutMs: 2000,
    onResyncProgress: ({ done, total }) => say({ event: 'resync', done, total }),
    extentPages: args.extentPages, intentExtents: args.intentExtents,
  };
  let exchange: FileDevice | null = null;
  if (args.exchange) {
    exchange = await FileDevice.open('exchange', resolve(args.exchange));
    mirrorOptions.exchange = { device: exchange, bytes: args.exchangeMb << 20 };
  }
  if (args.copy) mirrorOptions.copy = args.copy;
  let memory: MirroredMemory;
  try {
    memory = await openMemory({ store: args.dir, pageSize: args.pageSize, cacheBytes: args.cacheMb << 20, mirror: mirrorOptions }) as MirroredMemory;
  } catch (err) {
    await exchange?.close().catch(() => {});
    throw err;
  }
  const mirror = memory.mirror;
  let stopping = false;
  let stopListener: (() => Promise<void>) | null = null;
  let server: Server | null = null;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => { stop = r; });
  const onSignal = () => stop();

  try {
    server = await listenControl(control, memory, args.dir, stop);
    say({ event: 'control', path: control });

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
      const connectLoop = async (): Promise<void> => {
        while (!stopping) {
          try {
            const t = await connectTcp({ host, port, secret, nodeId: memory.nodeId });
            if (stopping) { t.close(); return; }
            mirror.attach(t);
            say({ event: 'connected', peer: t.peerId });
            t.onClose((err) => {
              say({ event: 'disconnected', reason: err?.message ?? null });
              if (!stopping) setTimeout(() => void connectLoop(), 200);
            });
            return;
          } catch (err) {
            if ((err as TwinpageError).code === 'AUTH_FAILED') say({ event: 'auth-failed', reason: (err as Error).message });
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      };
      void connectLoop();
      say({ event: 'started', nodeId: memory.nodeId });
    }

    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    if (args.stdin) {
      const lines = createInterface({ input: process.stdin });
      void (async () => {
        // Commands run as they arrive (replies carry their id); `close`
        // waits for those under way first.
        const running = new Set<Promise<void>>();
        for await (const line of lines) {
          if (!line.trim()) continue;
          if (asksClose(line)) {
            await Promise.all(running);
            say((await handle(memory, line)).reply);
            break;
          }
          const done = handle(memory, line).then(({ reply }) => { say(reply); });
          running.add(done);
          void done.finally(() => running.delete(done));
        }
        await Promise.all(running);
        stop();
      })();
      await stopped;
      lines.close();
    } else {
      await stopped;
    }
  } finally {
    stopping = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopListener?.().catch(() => {});
    if (server) await closeControl(server, control);
    try {
      await memory.close();
    } finally {
      await exchange?.close().catch(() => {});
    }
  }
}

/** Whether a command line is `close` (anything unreadable is not). */
function asksClose(line: string): boolean {
  try {
    return (JSON.parse(line) as { cmd?: unknown } | null)?.cmd === 'close';
  } catch {
    return false;
  }
}

/** One command line → its reply, and whether it asks the node to close. */
async function handle(memory: MirroredMemory, line: string): Promise<{ reply: Record<string, unknown>; close: boolean }> {
  let id: unknown = null;
  try {
    const c = JSON.parse(line) as Record<string, unknown>;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw TwinpageError.invalidArgument('a command must be a JSON object');
    id = c.id ?? null;
    const result = await command(memory, c);
    return { reply: { id, ok: true, ...result }, close: c.cmd === 'close' };
  } catch (err) {
    return { reply: { id, ok: false, code: (err as TwinpageError).code ?? 'INVALID_ARGUMENT', error: (err as Error).message }, close: false };
  }
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
    case 'status': return { status: status(memory) };
    case 'promote': await memory.mirror.promote(); return { sense: memory.mirror.sense() };
    case 'resync': await memory.mirror.resync(); return { sense: memory.mirror.sense() };
    case 'verify': return { verify: await memory.mirror.verify() };
    case 'scrub': return { scrub: await memory.scrub() };
    case 'close': return {};
    default: throw TwinpageError.invalidArgument(`unknown command ${JSON.stringify(c.cmd)}`);
  }
}

/** What `twinpage status` shows: the mirror's sense() and the node around it. */
function status(memory: MirroredMemory): Record<string, unknown> {
  const mirror = memory.mirror;
  const blocks = memory.blocks();
  return {
    nodeId: memory.nodeId,
    pid: process.pid,
    dir: (memory.store as { dir?: string }).dir ?? null,
    pageSize: memory.pageSize,
    sense: mirror.sense(),
    stats: mirror.stats(),
    blocks: blocks.length,
    blockBytes: blocks.reduce((n, b) => n + b.length, 0),
    space: memory.space(),
  };
}

// --- the control socket -------------------------------------------------------------

/** Removes a control socket nobody listens on; refuses when a node serves the folder already. */
async function clearStaleSocket(path: string, dir: string): Promise<void> {
  if (process.platform === 'win32') return; // named pipes vanish with their process
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch {
    return; // none there
  }
  if (!isSocket) throw TwinpageError.alreadyExists(`${path} exists and is not a socket; remove it to serve ${dir}`);
  const live = await new Promise<boolean>((r) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); r(true); });
    s.once('error', () => r(false));
  });
  if (live) throw TwinpageError.busy(`a node is already serving ${dir} (it answers on ${path})`);
  await rm(path, { force: true });
}

const openSockets = new WeakMap<Server, Set<Socket>>();

function listenControl(path: string, memory: MirroredMemory, dir: string, stop: () => void): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setEncoding('utf8');
    socket.on('error', () => {}); // a client that went away
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      if (!line.trim()) return;
      void handle(memory, line).then(({ reply, close }) => {
        if (!socket.destroyed) socket.write(JSON.stringify(reply) + '\n');
        if (close) stop();
      });
    });
  });
  openSockets.set(server, sockets);
  return new Promise((resolvePromise, reject) => {
    server.once('error', (err) => reject(mapFsError(err, `listen on the control socket ${path} of ${dir}`)));
    server.listen(path, () => {
      // Whoever reaches the socket controls the node: its owner only.
      chmod(path, 0o600).catch(() => {}).finally(() => resolvePromise(server));
    });
  });
}

async function closeControl(server: Server, path: string): Promise<void> {
  await new Promise<void>((r) => {
    server.close(() => r());
    // Connections still open would hold close() back.
    for (const s of openSockets.get(server) ?? []) s.destroy();
    setTimeout(r, 500).unref();
  });
  if (process.platform !== 'win32') await rm(path, { force: true }).catch(() => {});
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run one node of a mirrored pair over TCP (JSON-line commands on stdin)',
  synopsis,
  help,
  async run(argv) {
    await serve(parse(argv));
    return 0;
  },
};
