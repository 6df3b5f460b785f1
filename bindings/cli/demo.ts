// The demo (`npm start`, `twinpage demo`): a mirrored pair as two
// `twinpage serve` processes on loopback with a third vote (a `twinpage
// witness` the demo starts, or etcd with --etcd) and automatic failover on
// both nodes. A dials B through a proxy the demo controls (demo-proxy.ts).
// The demo writes through the primary, cuts the link with both nodes alive
// (demo-partition.ts: the primary goes on under the lease, the secondary's
// takeover is refused, no split brain), heals it, then SIGKILLs the primary
// with writes in flight and waits for the secondary to take over by itself;
// every acknowledged write is checked on it, the old primary is restarted as
// secondary (it rejoins and is resynced), verify() runs, and a summary.
//
// Every write is 4 KiB at a 4 KiB-aligned offset (a "slot") of one block;
// what a slot holds tells which write it is (demo-data.ts). A write counts as
// acknowledged only once the primary's reply arrives (the block's policy is
// the default, durability `disk`: both nodes' journals hold it by then, or,
// cut off, the primary's with the partner marked outdated at the arbiter).
// Per slot the demo keeps the version of its latest acknowledged write; a
// write in flight when the primary died may or may not have landed (either is
// correct), anything else is a lost write.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NodeProcess, type NodeEvent, type Reply } from './node-process.js';
import { DEFAULT_WITNESS_TTL_MS } from '../mirror/witness-server.js';
import { EtcdArbiter } from '../mirror/etcd.js';
import { UsageError, flag, int, parseOptions, positive, str } from './args.js';
import { partitionPhase, type PartitionSummary } from './demo-partition.js';
import { DemoProxy } from './demo-proxy.js';
import { WitnessProcess } from './witness-process.js';
import { Book, SLOT, checkAll, runWriters, slotData } from './demo-data.js';
import { type Bar, Out, fmt, mib, ms, must, percentile, sleep, timed } from './demo-output.js';

const USAGE = `usage: npm start -- [options]      (or: twinpage demo [options])

Runs a mirrored pair of twinpage nodes as two processes on loopback, with a
twinpage witness as the third vote and automatic failover on both nodes. It
writes through the primary and cuts the link between the nodes at a proxy
with both alive: the primary goes on under the witness's lease, the
secondary's takeover is refused (no split brain); healed, the secondary is
resynced and checked. Then it SIGKILLs the primary while writes are in
flight and waits for the secondary to take over by itself, checks every
acknowledged write on it, restarts the old primary (it rejoins and is
resynced), runs verify() and prints a summary.

Options:
  --seconds N      how long to write before the kill (default 5; decimals allowed)
  --size MiB       size of the block written to, the working set (default 16)
  --writers N      concurrent writers, each with one 4 KiB write at a time (default 4)
  --page-size B    bytes per page of the two stores (power of two, 512 to 1048576; default 4096)
  --partition-seconds N
                   how long the link stays cut, writes going on (default 2; decimals allowed)
  --etcd URL       use etcd at URL (comma-separated URLs) as the third vote instead of
                   starting a witness (keys under a fresh twinpage-demo-* prefix)
  --dir DIR        put the data folders, the witness's folder and the secret here (created; must be empty)
                   and keep it; default: a fresh temporary folder, removed at the end
  --keep           keep the temporary folder
  --json           print one JSON object (the summary) on stdout and nothing else there
  --quiet          no progress or narration, only the summary
  --help           this text

Exit status: 0 when no acknowledged write was lost, verify() found no
difference, and the partition ended without a split brain (the primary
acknowledged writes under the lease, the secondary stayed secondary), 1
otherwise (or on an error), 2 on bad arguments.`;

export interface DemoOptions {
  seconds: number; sizeMiB: number; writers: number; pageSize: number;
  dir: string | null; keep: boolean; json: boolean; quiet: boolean;
  partitionSeconds: number; etcd: string | null;
}

function parse(argv: string[]): DemoOptions | 'help' {
  if (argv.includes('-h')) return 'help';
  const o = parseOptions(argv, {
    '--seconds': 'value', '--size': 'value', '--writers': 'value', '--page-size': 'value', '--dir': 'value',
    '--partition-seconds': 'value', '--etcd': 'value', '--keep': 'flag', '--json': 'flag', '--quiet': 'flag',
  });
  if (flag(o, '--help')) return 'help';
  const pageSize = int(o, '--page-size', 512, 1 << 20) ?? 4096;
  if ((pageSize & (pageSize - 1)) !== 0) throw new UsageError(`--page-size must be a power of two, got ${pageSize}`);
  return {
    seconds: positive(o, '--seconds', 3600) ?? 5,
    sizeMiB: int(o, '--size', 1, 1024) ?? 16,
    writers: int(o, '--writers', 1, 64) ?? 4,
    pageSize,
    dir: str(o, '--dir') ?? null,
    keep: flag(o, '--keep'),
    json: flag(o, '--json'),
    quiet: flag(o, '--quiet'),
    partitionSeconds: positive(o, '--partition-seconds', 600) ?? 2,
    etcd: str(o, '--etcd') ?? null,
  };
}

// --- the demo ------------------------------------------------------------------------------------

export interface DemoSummary {
  ok: boolean;
  lost: number;
  differences: number;
  operations: number;
  seconds: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  inFlightAtKill: number;
  inFlightLanded: number;
  failoverMs: number;
  /** exitMs: kill to A's exit seen; promoteMs: that to B's failover event; firstWriteMs: that to B's reply. */
  failover: { exitMs: number; promoteMs: number; firstWriteMs: number };
  /** B took over by itself (the demo sent no promote). */
  failoverAutomatic: boolean;
  /** The failover as B saw it: kill to B seeing the link fail; that to its failover event (watchdog tick, lease, promotion); that to the first write's reply. */
  failoverDetectMs: { noticeMs: number; takeoverMs: number; firstWriteMs: number };
  /** The third vote: a witness the demo started, or etcd. */
  witness: boolean;
  arbiter: 'witness' | 'etcd';
  timings: { heartbeatMs: number; timeoutMs: number; leaseMs: number };
  partition: PartitionSummary & { ok: boolean };
  aloneOperations: number;
  rejoinMs: number;
  resyncMs: number;
  pagesResynced: number | null;
  verifyRounds: number;
  pagesVerified: number;
  bytesVerified: number;
  acknowledgedSlotsChecked: number;
  bytesReadBack: number;
  lostAfterFailover: number;
  lostOnPrimaryAtEnd: number;
  lostOnRejoinedAtEnd: number;
  config: { dir: string; kept: boolean; seconds: number; sizeMiB: number; writers: number; pageSize: number; writeBytes: number; partitionSeconds: number };
}

export async function runDemo(argv: string[]): Promise<number> {
  let o: DemoOptions | 'help';
  try {
    o = parse(argv);
  } catch (err) {
    process.stderr.write(`twinpage demo: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (o === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const opts = o;
  const out = new Out(opts);

  let dir: string;
  const named = opts.dir !== null;
  if (named) {
    dir = resolve(opts.dir!);
    try {
      await mkdir(dir, { recursive: true });
      const entries = await readdir(dir);
      if (entries.length) {
        process.stderr.write(`twinpage demo: ${dir} is not empty: give --dir a new or empty folder (the demo creates node-a, node-b, witness and secret in it)\n`);
        return 2;
      }
    } catch (err) {
      process.stderr.write(`twinpage demo: cannot use ${dir} as the demo folder: ${(err as Error).message}\n`);
      return 2;
    }
  } else {
    dir = await mkdtemp(join(tmpdir(), 'twinpage-demo-'));
  }

  const running: Running = { nodes: [], witness: null, proxy: null };
  let bar: Bar | null = null;
  let ok = false;
  const interrupt = () => {
    bar?.stop();
    for (const n of running.nodes) if (!n.gone) n.proc.kill('SIGKILL');
    if (running.witness && !running.witness.gone) running.witness.proc.kill('SIGKILL');
    process.stderr.write(`\ntwinpage demo: interrupted; the demo folder ${dir} is left as it was\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const summary = await demo(opts, out, dir, running, (b) => { bar = b; });
    ok = summary.ok;
    const kept = named || opts.keep || !ok;
    summary.config.kept = kept;
    await stopAll(running, false);
    if (!kept) await rm(dir, { recursive: true, force: true });
    if (opts.json) {
      process.stdout.write(JSON.stringify(summary) + '\n');
    } else {
      process.stdout.write(table(summary) + '\n');
      if (kept) process.stdout.write(`\nThe data folders are in ${dir}${ok ? '' : ' (kept to look into)'}.\n`);
    }
    return ok ? 0 : 1;
  } catch (err) {
    (bar as Bar | null)?.stop();
    await stopAll(running, true);
    const message = (err as Error).message;
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: message, dir }) + '\n');
    process.stderr.write(`twinpage demo: failed: ${message}\nThe demo folder is kept: ${dir}\n`);
    return 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

/** serve's --lease-ms default: the same 10 s as the witness's --ttl-ms. */
const DEFAULT_LEASE_MS = DEFAULT_WITNESS_TTL_MS;

/** Serve timings of the demo's two nodes: quick to notice a dead link, and said in the narration. */
const HEARTBEAT_MS = 100;
const TIMEOUT_MS = 1000;

/** What the demo started, to stop at the end or on an error. */
export interface Running { nodes: NodeProcess[]; witness: WitnessProcess | null; proxy: DemoProxy | null }

async function stopAll(r: Running, kill: boolean): Promise<void> {
  for (const n of r.nodes) if (!n.gone) await n.kill();
  await r.proxy?.close().catch(() => {});
  if (r.witness) await (kill ? r.witness.kill() : r.witness.stop());
}

/** The arbiter the pair uses: a witness the demo starts, or etcd (--etcd). */
interface ArbiterSetup { name: string; serveArgs: string[]; record: () => Promise<Record<string, unknown> | null>; close: () => Promise<void> }

async function startArbiter(o: DemoOptions, dir: string, secret: string, running: Running, out: Out, step: number): Promise<ArbiterSetup> {
  if (o.etcd) {
    // A prefix of its own per run: an etcd kept between runs holds earlier pairs' records.
    const prefix = `twinpage-demo-${randomBytes(6).toString('hex')}`;
    const reader = new EtcdArbiter({ endpoints: o.etcd.split(','), prefix });
    out.say(`${step}. The pair's third vote is etcd at ${o.etcd} (keys under ${prefix}/; lease ${DEFAULT_LEASE_MS / 1000} s, the default).`);
    return {
      name: 'etcd', serveArgs: ['--etcd', o.etcd, '--etcd-prefix', prefix],
      record: async () => ({ ...await reader.read() }),
      close: () => reader.close(),
    };
  }
  const w = new WitnessProcess(['--dir', join(dir, 'witness'), '--listen', '127.0.0.1:0', '--secret-file', secret]);
  running.witness = w;
  const listening = await w.event('listening', 15000);
  out.say(`${step}. A witness (twinpage witness, record in witness/) listens on 127.0.0.1:${String(listening.port)}: the pair's third vote.`);
  out.say(`   Its lease lasts ${Number(listening.ttlMs) / 1000} s (its default): a primary cut off from B writes on while it holds it, and B may take over only once it ended.`);
  return {
    name: 'the witness', serveArgs: ['--witness', `127.0.0.1:${String(listening.port)}`],
    record: async () => w.record(), close: async () => {},
  };
}

async function demo(o: DemoOptions, out: Out, dir: string, running: Running, setBar: (b: Bar | null) => void): Promise<DemoSummary> {
  const size = o.sizeMiB << 20;
  const aloneSeconds = Math.min(2, o.seconds / 2);
  const dirA = join(dir, 'node-a');
  const dirB = join(dir, 'node-b');
  const secret = join(dir, 'secret');
  await writeFile(secret, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const cacheMb = String(Math.min(256, Math.max(64, o.sizeMiB + 16)));
  let arbiter: ArbiterSetup | null = null;
  const serveArgs = (folder: string, role: string, link: string[]) =>
    ['--dir', folder, '--role', role, ...link, '--secret-file', secret, '--page-size', String(o.pageSize), '--cache-mb', cacheMb,
      '--failover', 'auto', ...arbiter!.serveArgs, '--heartbeat-ms', String(HEARTBEAT_MS), '--timeout-ms', String(TIMEOUT_MS)];
  const start = (args: string[]) => { const n = new NodeProcess(args); running.nodes.push(n); return n; };

  out.say('twinpage demo: a mirrored pair on loopback with a third vote and automatic failover. The link between the');
  out.say('nodes is cut (no split brain), then the primary is killed mid-write and the secondary takes over by itself;');
  out.say('the old primary comes back and is resynced, and every acknowledged write is checked.');
  out.say(`  folder    ${dir}${o.dir !== null || o.keep ? '' : ' (temporary: removed at the end unless --keep)'}`);
  out.say(`  workload  ${o.writers} writer${o.writers > 1 ? 's' : ''}, 4 KiB writes at random 4 KiB-aligned offsets of a ${o.sizeMiB} MiB block, for ${o.seconds} s; pages of ${o.pageSize} B`);
  out.say(`  timings   both nodes: --failover auto --heartbeat-ms ${HEARTBEAT_MS} --timeout-ms ${TIMEOUT_MS} (serve's defaults: 200 and 2000)`);
  out.say('');

  // 1-3. The third vote, the pair, the proxy between them.
  try {
    arbiter = await startArbiter(o, dir, secret, running, out, 1);
    const b = start(serveArgs(dirB, 'secondary', ['--listen', '127.0.0.1:0']));
    const listening = await b.event('listening', 15000);
    const port = listening.port as number;
    const bId = String(listening.nodeId);
    const proxy = await DemoProxy.start({ host: '127.0.0.1', port });
    running.proxy = proxy;
    out.say(`2. Node B (secondary, data in node-b) listens on 127.0.0.1:${port}; the demo's proxy on 127.0.0.1:${proxy.port} forwards to it.`);
    let a = start(serveArgs(dirA, 'primary', ['--peer', `127.0.0.1:${proxy.port}`]));
    const aId = String((await a.event('started', 15000)).nodeId);
    await a.event('connected', 15000);
    await b.event('connected', 15000);
    out.say('3. Node A (primary, data in node-a) connected to B through the proxy; they authenticated each other with a random');
    out.say(`   shared secret, which also authenticates them to ${arbiter.name}. Both run with automatic failover.`);

    // 4. The block.
    const alloc = await must(a, 'node A', { cmd: 'allocate', size });
    const blockId = (alloc.block as { id: string }).id;
    out.say(`4. A allocated a ${o.sizeMiB} MiB block (${blockId}); B holds it too. A write is acknowledged when A replies:`);
    out.say('   with both nodes connected, both journals hold it by then (durability disk); the arbiter is not asked.');
    const book = new Book(size);

    // 5-6. The partition.
    const partition = await partitionPhase({
      out, setBar, a, b, aId, bId, proxy, arbiter: arbiter.name, record: arbiter.record, blockId, book, writers: o.writers,
      seconds: o.partitionSeconds, timeoutMs: TIMEOUT_MS, step: 5,
    });

    // 7. The workload, then the kill.
    out.say(`7. Writing through A for ${o.seconds} s, the pair connected again.`);
    if (o.writers > 1) out.say(`   Latency is from sending a write to its reply, as a writer sees it, including any wait behind the other writers' writes.`);
    let killed = false;
    const w = runWriters(a, blockId, book, o.writers, () => killed);
    const t0 = performance.now();
    const deadline = t0 + o.seconds * 1000;
    let bar = out.bar('writing ');
    setBar(bar);
    while (performance.now() < deadline) {
      if (w.stats.failed.length) throw new Error(`a write failed before the kill: ${JSON.stringify(w.stats.failed[0])}${a.stderr ? `; node A's stderr: ${a.stderr.trim()}` : ''}`);
      const el = (performance.now() - t0) / 1000;
      bar.update(el / o.seconds, `${el.toFixed(1)}/${o.seconds} s  ${fmt(w.stats.acked)} writes  ${fmt(w.stats.acked / Math.max(el, 1e-3))}/s`);
      await sleep(Math.min(100, Math.max(1, deadline - performance.now())));
    }
    // B's events from here on, timed as they arrive: its view of the failover.
    const seen: Record<string, number> = {};
    const stopTiming = b.onEvent((e) => { const k = String(e.event); seen[k] ??= performance.now(); });
    // Kill while writes are in flight, not at a quiet moment.
    for (let i = 0; book.inFlight === 0 && i < 1000; i++) await new Promise((r) => setImmediate(r));
    const inFlightAtKill = book.inFlight;
    const bEventsAtKill = b.events.length;
    const killAt = performance.now();
    killed = true;
    a.proc.kill('SIGKILL');
    const workloadSeconds = (killAt - t0) / 1000;
    const main = w.stats;
    bar.done(`${fmt(main.acked)} writes acknowledged in ${workloadSeconds.toFixed(1)} s`);
    setBar(null);
    out.say(`8. SIGKILL sent to A with ${inFlightAtKill} write${inFlightAtKill === 1 ? '' : 's'} in flight (sent, not yet acknowledged). The demo does not promote B: it waits.`);

    // 9. B takes over by itself, through the arbiter.
    await timed(a.exited, 10000, 'node A after SIGKILL');
    const exitedAt = performance.now();
    await timed(w.done, 10000, 'the writers after the kill');
    if (main.failed.some((r) => r.code !== 'EXITED')) {
      throw new Error(`a write failed other than by the kill: ${JSON.stringify(main.failed.find((r) => r.code !== 'EXITED'))}`);
    }
    // At most: a silent link's timeout, the lease if A still held one, and slack for the machine.
    const waitMs = TIMEOUT_MS + DEFAULT_LEASE_MS + 15000;
    try {
      await b.event('failover', waitMs, bEventsAtKill);
    } catch (err) {
      const s = await b.send({ cmd: 'sense' });
      throw new Error(`B did not take over by itself in ${waitMs / 1000} s: ${(err as Error).message}; its sense: ${JSON.stringify(s.sense ?? s)}`, { cause: err });
    }
    const promotedAt = seen.failover;
    stopTiming();
    const slot = book.pick();
    const version = ++book.issued[slot];
    await must(b, 'node B', { cmd: 'write', block: blockId, offset: slot * SLOT, data: slotData(slot, version).toString('base64') });
    const servedAt = performance.now();
    book.acked[slot] = version;
    const failoverMs = servedAt - killAt;
    const bSense = (await must(b, 'node B', { cmd: 'sense' })).sense as { role: string; epoch: number };
    // B sees the link fail when the kernel closes the dead process's socket ('disconnected'); a node that hung instead would be noticed after --timeout-ms of silence.
    const noticedAt = seen.disconnected ?? exitedAt;
    const detect = { noticeMs: round(noticedAt - killAt, 1), takeoverMs: round(promotedAt - noticedAt, 1), firstWriteMs: round(servedAt - promotedAt, 1) };
    out.say(`9. B took over by itself and served its first write ${ms(failoverMs)} ms after the kill (B is ${bSense.role}, epoch ${bSense.epoch}):`);
    out.say(`   ${ms(detect.noticeMs)} ms until B saw the link fail (the kernel closed A's socket as the process died; a hung A would`);
    out.say(`   be noticed after ${TIMEOUT_MS} ms of silence), ${ms(detect.takeoverMs)} ms to take over (a head start of ${TIMEOUT_MS} ms left`);
    out.say(`   to a primary that may live, cut from B only, to take the lease first; then the lease from ${arbiter.name}, granted at`);
    out.say(`   once as A had given it back after the heal, else after it ran out; a new generation, saved durably), and`);
    out.say(`   ${ms(detect.firstWriteMs)} ms for the write.`);

    // 10. Every acknowledged write, on B.
    bar = out.bar('checking');
    setBar(bar);
    const inMaybe = book.maybe.size;
    const first = await checkAll(b, 'node B', blockId, book, bar, true);
    bar.done(`${fmt(first.checked)} slots with acknowledged writes, ${first.lost} lost`);
    setBar(null);
    out.say(`10. Read all ${o.sizeMiB} MiB back on B: the latest acknowledged write of each of ${fmt(first.checked)} written slots is there` +
      (first.lost ? `, except ${first.lost} LOST (first: ${first.firstLoss})` : ', none lost') + '.');
    if (inMaybe) {
      out.say(`   Of the ${inMaybe} write${inMaybe === 1 ? '' : 's'} in flight at the kill, ${first.landed} reached B and ${first.notLanded} did not: both are correct, as none was acknowledged.`);
    }

    // 11. B alone.
    out.say(`11. B carries on alone for ${aloneSeconds} s (A is down): it holds the lease, marks A outdated, and records which pages A lacks.`);
    let alone = false;
    const w2 = runWriters(b, blockId, book, o.writers, () => alone);
    const t2 = performance.now();
    bar = out.bar('alone   ');
    setBar(bar);
    while (performance.now() - t2 < aloneSeconds * 1000) {
      if (w2.stats.failed.length) throw new Error(`a write on B failed: ${JSON.stringify(w2.stats.failed[0])}`);
      const el = (performance.now() - t2) / 1000;
      bar.update(el / aloneSeconds, `${el.toFixed(1)}/${aloneSeconds} s  ${fmt(w2.stats.acked)} writes`);
      await sleep(Math.min(100, Math.max(1, t2 + aloneSeconds * 1000 - performance.now())));
    }
    alone = true;
    await timed(w2.done, 30000, 'the writers on B');
    if (w2.stats.failed.length) throw new Error(`a write on B failed: ${JSON.stringify(w2.stats.failed[0])}`);
    bar.done(`${fmt(w2.stats.acked)} writes acknowledged by B alone`);
    setBar(null);

    // 12. A rejoins as secondary, B resyncs it.
    const bEvents = b.events.length;
    const rejoinStart = performance.now();
    let resyncDone = 0;
    let resyncTotal = 0;
    let resyncEvents = 0;
    let eventPages = 0;
    let lastDone = 0;
    const stopListening = b.onEvent((e: NodeEvent) => {
      if (e.event !== 'resync') return;
      const done = Number(e.done);
      const total = Number(e.total);
      resyncEvents++;
      // Each resync round counts from 0 again.
      eventPages += done > lastDone ? done - lastDone : done;
      lastDone = done;
      resyncDone = done;
      resyncTotal = total;
    });
    a = start(serveArgs(dirA, 'secondary', ['--peer', `127.0.0.1:${proxy.port}`]));
    out.say('12. A restarts on its data folder as secondary and rejoins; its generation is behind B\'s, so B resyncs it.');
    await a.event('connected', 15000);
    await b.event('connected', 15000, bEvents);
    const rejoinMs = performance.now() - rejoinStart;
    bar = out.bar('resync  ');
    setBar(bar);
    let maxLag = 0;
    let verify: { blocks: number; pages: number; differences: unknown[] } | null = null;
    let verifyRounds = 0;
    const resyncStart = performance.now();
    const resyncDeadline = resyncStart + 120000;
    for (;;) {
      // Wait for B to be quiet: connected, nothing lagging, nothing unacknowledged (twice in a row).
      let quiet = 0;
      while (quiet < 2 && performance.now() < resyncDeadline) {
        const s = (await must(b, 'node B', { cmd: 'sense' })).sense as { connected: boolean; lagPages: number; inFlight: number };
        maxLag = Math.max(maxLag, s.lagPages);
        if (resyncEvents) bar.update(resyncTotal ? resyncDone / resyncTotal : 0, `${fmt(resyncDone)}/${fmt(resyncTotal)} pages`);
        else bar.update(maxLag ? (maxLag - s.lagPages) / maxLag : 0, `${fmt(maxLag - s.lagPages)}/${fmt(maxLag)} pages`);
        quiet = s.connected && s.lagPages === 0 && s.inFlight === 0 && (!resyncEvents || resyncDone >= resyncTotal) ? quiet + 1 : 0;
        if (quiet < 2) await sleep(50);
      }
      await must(b, 'node B', { cmd: 'resync' }, 120000);
      const v = (await must(b, 'node B', { cmd: 'verify' }, 120000)).verify as { blocks: number; pages: number; differences: unknown[] };
      verifyRounds++;
      verify = v;
      if (v.differences.length === 0 || performance.now() > resyncDeadline) break;
      await sleep(100);
    }
    stopListening();
    const resyncMs = performance.now() - resyncStart;
    // Pages resynced: B's own count when serve reports it, else the resync progress events.
    let pagesResynced: number | null = resyncEvents ? eventPages : null;
    let pageSize = o.pageSize;
    const st = await timed(b.send({ cmd: 'status' }), 10000, 'node B: status');
    if (st.ok) {
      const status = st.status as { pageSize?: unknown; stats?: { resyncedPages?: unknown } | null };
      if (typeof status.stats?.resyncedPages === 'number') pagesResynced = status.stats.resyncedPages;
      if (typeof status.pageSize === 'number') pageSize = status.pageSize;
    }
    bar.done(`${pagesResynced === null ? 'resynced' : `${fmt(pagesResynced)} pages resynced`} in ${ms(resyncMs)} ms`);
    setBar(null);
    out.say(pagesResynced === null
      ? `    B resynced A in ${ms(resyncMs)} ms.`
      : `    B resent ${fmt(pagesResynced)} page${pagesResynced === 1 ? '' : 's'} in ${ms(resyncMs)} ms: those that may differ on A (the ones B changed alone and, as A crashed, every page of the extents A was writing to).`);

    // 13. verify().
    const differences = verify!.differences.length;
    const bytesVerified = verify!.pages * pageSize;
    out.say(`13. verify() on B compared the checksums of all ${fmt(verify!.pages)} pages (${mib(bytesVerified)}) with A's: ${differences} difference${differences === 1 ? '' : 's'}` +
      (verifyRounds > 1 ? ` (after ${verifyRounds} rounds: verify ran while the resync was finishing)` : '') + '.');

    // 14. Every acknowledged write, on both nodes.
    bar = out.bar('checking');
    setBar(bar);
    const endB = await checkAll(b, 'node B', blockId, book, null, false);
    bar.update(0.5, 'B done, reading A');
    const endA = await checkAll(a, 'node A', blockId, book, null, false);
    bar.done(`B: ${endB.lost} lost, A: ${endA.lost} lost`);
    setBar(null);
    out.say(`14. Read everything back on B and on A: ${fmt(endB.checked)} written slots, ` +
      (endB.lost + endA.lost ? `LOST on B: ${endB.lost} (${endB.firstLoss ?? '-'}), on A: ${endA.lost} (${endA.firstLoss ?? '-'})` : 'each holding its latest acknowledged write on both nodes') + '.');

    await timed(Promise.all([a.close(), b.close()]), 30000, 'closing the nodes');
    out.say('');

    const lat = [...main.latencies].sort((x, y) => x - y);
    const lost = first.lost + endB.lost + endA.lost + partition.lost;
    const partitionOk = partition.lost === 0 && !partition.splitBrain && partition.refusedPromotion && partition.writesAcknowledged > 0 &&
      partition.leaseHeld && partition.differences === 0 && partition.leaseReleased;
    return {
      ok: lost === 0 && differences === 0 && partitionOk,
      lost,
      differences,
      operations: main.acked,
      seconds: round(workloadSeconds, 3),
      opsPerSecond: round(main.acked / workloadSeconds, 1),
      mibPerSecond: round((main.acked * SLOT) / 2 ** 20 / workloadSeconds, 3),
      latencyP50Ms: round(percentile(lat, 50), 3),
      latencyP99Ms: round(percentile(lat, 99), 3),
      latencyMaxMs: round(lat[lat.length - 1] ?? 0, 3),
      inFlightAtKill,
      inFlightLanded: first.landed,
      failoverMs: round(failoverMs, 1),
      failover: { exitMs: round(exitedAt - killAt, 1), promoteMs: round(promotedAt - exitedAt, 1), firstWriteMs: round(servedAt - promotedAt, 1) },
      failoverAutomatic: true,
      failoverDetectMs: detect,
      witness: arbiter.name === 'the witness',
      arbiter: arbiter.name === 'the witness' ? 'witness' : 'etcd',
      timings: { heartbeatMs: HEARTBEAT_MS, timeoutMs: TIMEOUT_MS, leaseMs: DEFAULT_LEASE_MS },
      partition: { ...partition, ok: partitionOk },
      aloneOperations: w2.stats.acked + 1,
      rejoinMs: round(rejoinMs, 1),
      resyncMs: round(resyncMs, 1),
      pagesResynced,
      verifyRounds,
      pagesVerified: verify!.pages,
      bytesVerified,
      acknowledgedSlotsChecked: endB.checked,
      bytesReadBack: first.bytes + endB.bytes + endA.bytes,
      lostAfterFailover: first.lost,
      lostOnPrimaryAtEnd: endB.lost,
      lostOnRejoinedAtEnd: endA.lost,
      config: { dir, kept: true, seconds: o.seconds, sizeMiB: o.sizeMiB, writers: o.writers, pageSize, writeBytes: SLOT, partitionSeconds: o.partitionSeconds },
    };
  } finally {
    await arbiter?.close().catch(() => {});
  }
}


const round = (n: number, digits: number) => Number(n.toFixed(digits));

function table(s: DemoSummary): string {
  const rows: Array<[string, string]> = [
    ['writes acknowledged (4 KiB, mirrored)', `${fmt(s.operations)} in ${s.seconds.toFixed(1)} s, ${s.config.writers} writer${s.config.writers === 1 ? '' : 's'}`],
    ['throughput', `${fmt(s.opsPerSecond)} writes/s, ${s.mibPerSecond.toFixed(2)} MiB/s`],
    ['latency p50 / p99 (send to reply)', `${ms(s.latencyP50Ms)} ms / ${ms(s.latencyP99Ms)} ms`],
    ['partition (link cut, both nodes live)', `${fmt(s.partition.writesAcknowledged)} writes acknowledged by A alone in ${ms(s.partition.cutMs)} ms; B ${s.partition.refusedPromotion ? 'refused the lease, stayed secondary' : `NOT refused (${s.partition.secondaryRole})`}; split brain: ${s.partition.splitBrain ? 'YES' : 'none'}`],
    ['after the heal', `resynced and verified in ${ms(s.partition.resyncMs)} ms, ${s.partition.differences} differences, ${s.partition.lost} lost; lease given back: ${s.partition.leaseReleased ? 'yes' : 'NO'}`],
    ['writes in flight at the kill', `${s.inFlightAtKill} (${s.inFlightLanded} landed, ${s.inFlightAtKill - s.inFlightLanded} did not; either is correct)`],
    ['automatic failover (kill to first write on B)', `${ms(s.failoverMs)} ms (link seen failing ${ms(s.failoverDetectMs.noticeMs)}, takeover through ${s.arbiter} ${ms(s.failoverDetectMs.takeoverMs)}, write ${ms(s.failoverDetectMs.firstWriteMs)})`],
    ['writes on B alone', fmt(s.aloneOperations)],
    ['pages resynced to A', s.pagesResynced === null ? 'not reported by this serve' : `${fmt(s.pagesResynced)} (rejoin ${ms(s.rejoinMs)} ms, resync ${ms(s.resyncMs)} ms)`],
    ['bytes verified (verify: checksums)', `${mib(s.bytesVerified)} (${fmt(s.pagesVerified)} pages of ${fmt(s.config.pageSize)} B)`],
    ['verify differences', String(s.differences)],
    ['acknowledged writes checked', `latest of each of ${fmt(s.acknowledgedSlotsChecked)} written slots, read back 3 times (${mib(s.bytesReadBack)})`],
    ['lost acknowledged writes', String(s.lost)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  const lines = ['Summary', ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`), ''];
  lines.push(s.ok
    ? 'PASS: no acknowledged write was lost, verify() found the two nodes identical, and the partition ended without a split brain.'
    : `FAIL: ${s.lost} acknowledged write${s.lost === 1 ? '' : 's'} lost, ${s.differences} verify difference${s.differences === 1 ? '' : 's'}` +
      (s.partition.ok ? '.' : `; the partition phase failed its checks (${JSON.stringify(s.partition)}).`));
  return lines.join('\n');
}
