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
// demote, discard, resync, verify, close. Events come as {"event":…} lines:
// control, listening or started, connected, disconnected, auth-failed,
// metrics, and the mirror's: resync (progress), resync-done, degraded,
// split-brain, role, failover.
//
// The same commands are taken on the node's control socket (one JSON line
// each, one reply line), where `twinpage status`, `verify`, `promote`,
// `demote`, `resync` and `discard` ask. Settings come from the command line
// and a config file (config.ts); --metrics serves Prometheus metrics (metrics.ts).

import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { openMemory, TwinpageError, type MirroredMemory, type MirrorOptions, type PolicyInput } from '../index.js';
import type { SplitBrainPolicy } from '../messages.js';
import type { Arbiter } from '../mirror/arbiter.js';
import { reconnecting } from '../mirror/transports/reconnect.js';
import { connectTcp, listenTcp, type TcpCommonOptions } from '../mirror/transports/tcp.js';
import { FileDevice, mapFsError } from '../storage/file.js';
import { UsageError, controlPath, type Command } from './args.js';
import { loadServeConfig, type ServeConfig } from './config.js';
import type { WriteMeter } from './metrics.js';
import { readSecretFile } from './secret-file.js';
import { listenOwnerOnly } from './owner-socket.js';

const synopsis = `usage: twinpage serve [--config FILE]
                      --dir DIR --role primary|secondary (--listen HOST:PORT | --peer HOST:PORT)
                      --secret-file FILE [--tls-cert FILE --tls-key FILE] [--tls-ca FILE]
                      [--insecure-plaintext] [--page-size BYTES] [--cache-mb MB]
                      [--heartbeat-ms MS] [--timeout-ms MS] [--failover manual|auto]
                      [--copy auto|message|storage] [--exchange FILE] [--exchange-mb MB]
                      [--split-brain POLICY] [--metrics HOST:PORT]
                      [--extent-pages N] [--intent-extents N] [--no-stdin] [--verbose]`;

const help = `Runs one node of a mirrored pair over TCP. It takes commands as JSON lines on
standard input and answers each on standard output, with events as
{"event":...} lines (listening, connected, disconnected, resync progress,
degraded, role, failover...). The same commands are taken on the control
socket DIR/control.sock, where 'twinpage status', 'verify', 'promote',
'demote', 'resync' and 'discard' reach the node.

  --config       a JSON file of settings: each option's name in camelCase as a
                 key ("dir", "role", "secretFile", "heartbeatMs", "noStdin"...),
                 and "policies", a list of { name, maxSize, durability, writeMode,
                 cachePriority, copyMethod } ("maxSize": null for the largest).
                 Options given on the command line win; unknown keys are refused;
                 keys starting with // are comments; relative paths are relative
                 to the file's folder
  --dir          the node's data folder (created when missing)
  --role         primary (serves writes) or secondary (applies the partner's)
  --listen       wait for the partner on HOST:PORT (port 0: any free port, printed)
  --peer         connect to the partner at HOST:PORT (and reconnect when the link drops)
  --secret-file  a file holding the secret both nodes share, readable by its owner only
                 (chmod 600; a looser file is refused). It authenticates both nodes
                 and keys the encryption of every frame between them (AES-256-GCM,
                 fresh keys per connection): use 32 random bytes, e.g. the output of
                 'openssl rand -base64 32'
  --tls-cert, --tls-key
                 run the link over TLS with this certificate and key (PEM); required
                 on the --listen side for TLS, optional on the --peer side (its client
                 certificate). Frames are sealed inside TLS all the same
  --tls-ca       the CA (PEM) that signs the partner's certificate: the --peer side
                 checks the listener's certificate against it; given on the --listen
                 side, the partner must present a certificate it signed (mutual TLS)
  --insecure-plaintext
                 INSECURE: frames travel unencrypted and unauthenticated after the
                 handshake (anyone on the path reads and can alter them). Both nodes
                 must give it; a node without it refuses one with it
  --page-size    bytes per page of a new store (default 4096)
  --cache-mb     page cache in MiB (default 64)
  --heartbeat-ms how often a primary senses its partner (default 200)
  --timeout-ms   a partner silent (or not acknowledging) this long is down
                 (default 2000); the --peer side redials with backoff up to it
  --failover     manual (default: 'twinpage promote' makes a secondary primary);
                 auto: a secondary promotes itself when its primary is down for
                 --timeout-ms and the arbiter grants it the lease (needs
                 --witness or --etcd)
  --witness      HOST:PORT of a 'twinpage witness', the pair's third vote; with
                 it a primary acknowledges a write its partner lacks only
                 while it holds the witness's lease
  --witness-secret-file
                 the secret shared with the witness (default: --secret-file)
  --etcd         etcd's client URL(s), comma-separated, as the third vote
                 instead of a witness (a lease under --etcd-prefix)
  --etcd-prefix  the pair's keys in etcd (default 'twinpage')
  --lease-ms     the arbiter's lease in ms (default 10000; a witness's own
                 --ttl-ms must match)
  --on-no-quorum what a write the partner lacks does without the lease:
                 suspend (default: it waits) or error (NO_QUORUM)
  --copy         how pages travel to the partner: auto (default), message (in the
                 frames) or storage (through the --exchange file)
  --exchange     a file both nodes open, for the storage copy method
  --exchange-mb  MiB of the exchange file to use, both halves (default 16)
  --split-brain  what to do when both nodes changed since they parted: refuse
                 (default: both keep their data, the connection is refused),
                 discard-local (this node gives up its changes), or, set the
                 same on both nodes, discard-younger-primary,
                 discard-least-changes, discard-zero-changes
  --metrics      serve Prometheus metrics on http://HOST:PORT/metrics (port 0:
                 any free port, printed); bind it to a private address
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
  {"cmd":"blocks"}  {"cmd":"policies"}  {"cmd":"sense"}  {"cmd":"status"}  {"cmd":"promote","force"?:true}
  {"cmd":"demote"}  {"cmd":"discard"}  {"cmd":"resync"}  {"cmd":"verify","repair"?:true}
  {"cmd":"scrub"}  {"cmd":"close"}`;

interface ServeArgs {
  dir: string; role: 'primary' | 'secondary'; listen?: [string, number]; peer?: [string, number];
  secretFile: string; pageSize?: number; cacheMb: number;
  heartbeatMs: number; timeoutMs: number; failover: 'manual' | 'auto'; policies?: PolicyInput[];
  copy?: 'auto' | 'message' | 'storage'; exchange?: string; exchangeMb: number; stdin: boolean;
  extentPages?: number; intentExtents?: number; splitBrain?: SplitBrainPolicy;
  tlsCert?: string; tlsKey?: string; tlsCa?: string; insecurePlaintext: boolean;
  metrics?: [string, number]; configFile?: string;
  witness?: [string, number]; witnessSecretFile?: string; etcd?: string[]; etcdPrefix: string;
  leaseMs: number; onNoQuorum?: 'suspend' | 'error';
}

/** The settings (flags over the config file), checked together. */
async function parse(argv: string[]): Promise<ServeArgs> {
  const c: ServeConfig = await loadServeConfig(argv);
  const role = c.role;
  if (!role) throw new UsageError('--role is required (primary or secondary)');
  if (!c.dir) throw new UsageError('--dir is required');
  if (!c.secretFile) throw new UsageError('--secret-file is required');
  if ((c.listen === undefined) === (c.peer === undefined)) throw new UsageError('give exactly one of --listen and --peer');
  if (c.copy === 'storage' && !c.exchange) throw new UsageError('--copy storage needs --exchange FILE');
  if (c.exchangeMb !== undefined && !c.exchange) throw new UsageError('--exchange-mb needs --exchange FILE');
  if (c.pageSize !== undefined && (c.pageSize & (c.pageSize - 1)) !== 0) throw new UsageError('--page-size must be a power of two from 512 to 1048576');
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (c.listen && c.tlsCa !== undefined && c.tlsCert === undefined) throw new UsageError('--tls-ca on the --listen side needs --tls-cert and --tls-key');
  if (c.witness && c.etcd) throw new UsageError('give one arbiter: --witness or --etcd');
  if (c.failover === 'auto' && !c.witness && !c.etcd) {
    throw new UsageError('--failover auto needs a third vote (an arbiter: a witness or etcd): give --witness HOST:PORT (a twinpage witness) ' +
      'or --etcd URL. Two nodes alone cannot tell a dead partner from a dead link');
  }
  if ((c.witnessSecretFile || c.leaseMs || c.onNoQuorum) && !c.witness && !c.etcd) throw new UsageError('--witness-secret-file, --lease-ms and --on-no-quorum need --witness or --etcd');
  if (c.etcdPrefix && !c.etcd) throw new UsageError('--etcd-prefix needs --etcd');
  const heartbeatMs = c.heartbeatMs ?? 200;
  const timeoutMs = c.timeoutMs ?? 2000;
  if (heartbeatMs >= timeoutMs) throw new UsageError(`--heartbeat-ms (${heartbeatMs}) must be below --timeout-ms (${timeoutMs})`);
  return {
    dir: c.dir, role, secretFile: c.secretFile, listen: c.listen, peer: c.peer,
    pageSize: c.pageSize, cacheMb: c.cacheMb ?? 64,
    heartbeatMs, timeoutMs, failover: c.failover ?? 'manual', policies: c.policies,
    copy: c.copy, exchange: c.exchange, exchangeMb: c.exchangeMb ?? 16, stdin: !c.noStdin,
    extentPages: c.extentPages, intentExtents: c.intentExtents, splitBrain: c.splitBrain,
    tlsCert: c.tlsCert, tlsKey: c.tlsKey, tlsCa: c.tlsCa, insecurePlaintext: c.insecurePlaintext === true,
    metrics: c.metrics, configFile: c.configFile,
    witness: c.witness, witnessSecretFile: c.witnessSecretFile,
    etcd: c.etcd ? c.etcd.split(',').map((u) => u.trim()).filter(Boolean) : undefined,
    etcdPrefix: c.etcdPrefix ?? 'twinpage', leaseMs: c.leaseMs ?? 10_000, onNoQuorum: c.onNoQuorum,
  };
}

/** The arbiter the settings name (a witness, etcd), or none. Its client is loaded only then. */
async function arbiterOf(args: ServeArgs, secret: string): Promise<Arbiter | undefined> {
  if (args.witness) {
    const witnessSecret = args.witnessSecretFile ? await readSecretFile(args.witnessSecretFile) : secret;
    const { WitnessArbiter } = await import('../mirror/witness.js');
    return new WitnessArbiter({ host: args.witness[0], port: args.witness[1], secret: witnessSecret, ttlMs: args.leaseMs });
  }
  if (args.etcd) {
    const { EtcdArbiter } = await import('../mirror/etcd.js');
    return new EtcdArbiter({ endpoints: args.etcd, prefix: args.etcdPrefix, ttlMs: args.leaseMs });
  }
  return undefined;
}

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function serve(args: ServeArgs): Promise<void> {
  const secret = await readSecretFile(args.secretFile);
  const link = await linkOptions(args);
  if (args.insecurePlaintext) {
    process.stderr.write('twinpage serve: WARNING: --insecure-plaintext: frames to and from the partner are neither encrypted nor authenticated\n');
  }
  try { await mkdir(args.dir, { recursive: true }); } catch (err) { throw mapFsError(err, `create ${args.dir}`); }
  const control = controlPath(args.dir);
  await clearStaleSocket(control, args.dir);

  const arbiter = await arbiterOf(args, secret);
  const mirrorOptions: MirrorOptions = {
    role: args.role, heartbeatMs: args.heartbeatMs, timeoutMs: args.timeoutMs, failover: args.failover,
    extentPages: args.extentPages, intentExtents: args.intentExtents, splitBrain: args.splitBrain,
    arbiter, onNoQuorum: args.onNoQuorum,
  };
  let exchange: FileDevice | null = null;
  if (args.exchange) {
    exchange = await FileDevice.open('exchange', resolve(args.exchange));
    mirrorOptions.exchange = { device: exchange, bytes: args.exchangeMb << 20 };
  }
  if (args.copy) mirrorOptions.copy = args.copy;
  let memory: MirroredMemory;
  try {
    memory = await openMemory({
      store: args.dir, pageSize: args.pageSize, cacheBytes: args.cacheMb << 20, policies: args.policies, mirror: mirrorOptions,
    }) as MirroredMemory;
  } catch (err) {
    await exchange?.close().catch(() => {});
    throw err;
  }
  const mirror = memory.mirror;
  // The mirror's events, as lines (connected and disconnected are the link's, above).
  mirror.on('resync-progress', ({ done, total }) => say({ event: 'resync', done, total }));
  for (const type of ['resync-done', 'degraded', 'split-brain', 'role', 'failover', 'quorum-lost', 'quorum-regained'] as const) {
    mirror.on(type, (detail) => say({ event: type, ...detail }));
  }
  const settings = settingsOf(args);
  let stopListener: (() => Promise<void>) | null = null;
  let stopMetrics: (() => Promise<void>) | null = null;
  let meter: WriteMeter | null = null;
  let server: Server | null = null;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => { stop = r; });
  const onSignal = () => stop();

  try {
    if (args.metrics) {
      const { startMetrics } = await import('./metrics.js');
      const metrics = await startMetrics(args.metrics[0], args.metrics[1], memory);
      stopMetrics = () => metrics.close();
      meter = metrics;
      settings.metrics = `${args.metrics[0]}:${metrics.port}`;
      say({ event: 'metrics', port: metrics.port, path: '/metrics' });
    }
    const node: ServedNode = { memory, settings, meter };
    server = await listenControl(control, node, args.dir, stop);
    say({ event: 'control', path: control });

    if (args.listen) {
      const listener = await listenTcp({ host: args.listen[0], port: args.listen[1], secret, nodeId: memory.nodeId, ...link }, (t) => {
        mirror.attach(t);
        say({ event: 'connected', peer: t.peerId });
        t.onClose((err) => say({ event: 'disconnected', reason: err?.message ?? null }));
      });
      stopListener = () => listener.close();
      say({ event: 'listening', port: listener.port, nodeId: memory.nodeId });
    } else {
      const [host, port] = args.peer!;
      // Dialled now and again whenever the link drops, backing off up to the timeout.
      const dialler = reconnecting(mirror, () => connectTcp({ host, port, secret, nodeId: memory.nodeId, ...link }), {
        minDelayMs: 200,
        maxDelayMs: Math.max(200, args.timeoutMs),
        onConnect: (t) => say({ event: 'connected', peer: t.peerId }),
        onDisconnect: (err) => say({ event: 'disconnected', reason: err?.message ?? null }),
        onError: (err) => { if ((err as TwinpageError).code === 'AUTH_FAILED') say({ event: 'auth-failed', reason: err.message }); },
      });
      stopListener = () => dialler.close();
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
            say((await handle(node, line)).reply);
            break;
          }
          const done = handle(node, line).then(({ reply }) => { say(reply); });
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
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopListener?.().catch(() => {});
    await stopMetrics?.().catch(() => {});
    if (server) await closeControl(server, control);
    try {
      await memory.close();
    } finally {
      await exchange?.close().catch(() => {});
    }
  }
}

/** What the TLS flags and --insecure-plaintext ask of the link. */
async function linkOptions(args: ServeArgs): Promise<Pick<TcpCommonOptions, 'tls' | 'insecurePlaintext'>> {
  const pem = async (flagName: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try { return await readFile(path, 'utf8'); } catch (err) { throw mapFsError(err, `read the ${flagName} file ${path}`); }
  };
  const [cert, key, ca] = [await pem('--tls-cert', args.tlsCert), await pem('--tls-key', args.tlsKey), await pem('--tls-ca', args.tlsCa)];
  if (cert === undefined && ca === undefined) return { insecurePlaintext: args.insecurePlaintext };
  const tls: NonNullable<TcpCommonOptions['tls']> = {};
  if (cert !== undefined) { tls.cert = cert; tls.key = key; }
  if (ca !== undefined) tls.ca = ca;
  // A listener given a CA asks for the partner's certificate and refuses one it did not sign.
  if (args.listen && ca !== undefined) { tls.requestCert = true; tls.rejectUnauthorized = true; }
  return { tls, insecurePlaintext: args.insecurePlaintext };
}

/** Whether a command line is `close` (anything unreadable is not). */
function asksClose(line: string): boolean {
  try {
    return (JSON.parse(line) as { cmd?: unknown } | null)?.cmd === 'close';
  } catch {
    return false;
  }
}

/** A running node, as the command handler sees it. */
interface ServedNode {
  memory: MirroredMemory;
  /** The settings in force, for `status`. */
  settings: Record<string, unknown>;
  /** Counts writes for the metrics, when they are served. */
  meter: WriteMeter | null;
}

/** What `status` shows of the settings in force. */
function settingsOf(args: ServeArgs): Record<string, unknown> {
  return {
    configFile: args.configFile ?? null, heartbeatMs: args.heartbeatMs, timeoutMs: args.timeoutMs, failover: args.failover,
    splitBrain: args.splitBrain ?? 'refuse', copy: args.copy ?? 'auto', tls: args.tlsCert !== undefined || args.tlsCa !== undefined,
    insecurePlaintext: args.insecurePlaintext, metrics: args.metrics ? `${args.metrics[0]}:${args.metrics[1]}` : null,
    arbiter: args.witness ? `witness ${args.witness[0]}:${args.witness[1]}` : args.etcd ? `etcd ${args.etcd.join(',')} (${args.etcdPrefix})` : null,
    leaseMs: args.witness || args.etcd ? args.leaseMs : null, onNoQuorum: args.witness || args.etcd ? args.onNoQuorum ?? 'suspend' : null,
  };
}

/** One command line → its reply, and whether it asks the node to close. */
async function handle(node: ServedNode, line: string): Promise<{ reply: Record<string, unknown>; close: boolean }> {
  let id: unknown = null;
  try {
    const c = JSON.parse(line) as Record<string, unknown>;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw TwinpageError.invalidArgument('a command must be a JSON object');
    id = c.id ?? null;
    const result = await command(node, c);
    return { reply: { id, ok: true, ...result }, close: c.cmd === 'close' };
  } catch (err) {
    return { reply: { id, ok: false, code: (err as TwinpageError).code ?? 'INVALID_ARGUMENT', error: (err as Error).message }, close: false };
  }
}

async function command(node: ServedNode, c: Record<string, unknown>): Promise<Record<string, unknown>> {
  const memory = node.memory;
  const str = (k: string) => { if (typeof c[k] !== 'string') throw TwinpageError.invalidArgument(`${k} must be a string`); return c[k] as string; };
  const int = (k: string) => { if (!Number.isSafeInteger(c[k])) throw TwinpageError.invalidArgument(`${k} must be an integer`); return c[k] as number; };
  switch (c.cmd) {
    case 'allocate': {
      const b = await memory.allocate(int('size'), { policy: typeof c.policy === 'string' ? c.policy : undefined });
      return { block: { ...b, policy: b.policy.name } };
    }
    case 'free': await memory.free(str('block')); return {};
    case 'write': {
      const data = Buffer.from(str('data'), 'base64');
      const start = performance.now();
      await memory.write(str('block'), int('offset'), data);
      node.meter?.written(data.length, (performance.now() - start) / 1000);
      return {};
    }
    case 'read': return { data: Buffer.from(await memory.read(str('block'), int('offset'), int('length'))).toString('base64') };
    case 'blocks': return { blocks: memory.blocks().map((b) => ({ ...b, policy: b.policy.name })) };
    case 'policies': return { policies: memory.policies.policies.map((p) => ({ ...p, maxSize: p.maxSize === Infinity ? null : p.maxSize })) };
    case 'sense': return { sense: memory.mirror.sense() };
    case 'status': return { status: { ...await status(memory), settings: node.settings } };
    case 'promote': await memory.mirror.promote({ force: c.force === true }); return { sense: memory.mirror.sense() };
    case 'demote': await memory.mirror.demote(); return { sense: memory.mirror.sense() };
    case 'discard':
      // Its changes are given up at the next handshake, as a secondary.
      await memory.mirror.demote();
      await memory.mirror.discardLocalChanges();
      return { sense: memory.mirror.sense() };
    case 'resync': await memory.mirror.resync(); return { sense: memory.mirror.sense() };
    case 'verify': return { verify: await memory.mirror.verify({ repair: c.repair === true }) };
    case 'scrub': return { scrub: await memory.scrub() };
    case 'close': return {};
    default: throw TwinpageError.invalidArgument(`unknown command ${JSON.stringify(c.cmd)}`);
  }
}

/** What `twinpage status` shows: the mirror's sense() and the node around it. */
async function status(memory: MirroredMemory): Promise<Record<string, unknown>> {
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
    space: await memory.space(),
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

function listenControl(path: string, node: ServedNode, dir: string, stop: () => void): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setEncoding('utf8');
    socket.on('error', () => {}); // a client that went away
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      if (!line.trim()) return;
      void handle(node, line).then(({ reply, close }) => {
        if (!socket.destroyed) socket.write(JSON.stringify(reply) + '\n');
        if (close) stop();
      });
    });
  });
  openSockets.set(server, sockets);
  // Whoever reaches the socket controls the node: its owner only, from the moment it exists.
  return listenOwnerOnly(server, path).then(
    () => server,
    (err) => { throw mapFsError(err, `listen on the control socket ${path} of ${dir}`); },
  );
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
    await serve(await parse(argv));
    return 0;
  },
};
