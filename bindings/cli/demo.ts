// The demo (`npm start`, `twinpage demo`): a mirrored pair as two
// `twinpage serve` processes on loopback, a write workload through the
// primary, the primary SIGKILLed while writes are in flight, the secondary
// promoted, every acknowledged write checked on it, the old primary restarted
// as secondary (it rejoins and is resynced), verify(), and a summary.
//
// Every write is 4 KiB at a 4 KiB-aligned offset (a "slot") of one block; its
// bytes are derived from (slot, version), so what a slot holds tells which
// write it is. A write counts as acknowledged only once the primary's reply
// arrives (the block's policy is the default, durability `disk`: both nodes'
// journals hold it by then). Per slot the demo keeps the version of its latest
// acknowledged write; a write in flight when the primary died may or may not
// have landed (either is correct), anything else is a lost write.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NodeProcess, type NodeEvent, type Reply } from './node-process.js';
import { UsageError, flag, int, parseOptions, positive, str } from './args.js';
import { Book, SLOT, checkAll, runWriters, slotData } from './demo-data.js';
import { type Bar, Out, fmt, mib, ms, must, percentile, sleep, timed } from './demo-output.js';

const USAGE = `usage: npm start -- [options]      (or: twinpage demo [options])

Runs a mirrored pair of twinpage nodes as two processes on loopback, writes
through the primary, SIGKILLs it while writes are in flight, promotes the
secondary, checks every acknowledged write on it, restarts the old primary
(it rejoins and is resynced), runs verify() and prints a summary.

Options:
  --seconds N      how long to write before the kill (default 5; decimals allowed)
  --size MiB       size of the block written to, the working set (default 16)
  --writers N      concurrent writers, each with one 4 KiB write at a time (default 4)
  --page-size B    bytes per page of the two stores (power of two, 512 to 1048576; default 4096)
  --dir DIR        put the two data folders and the secret here (created; must be empty)
                   and keep it; default: a fresh temporary folder, removed at the end
  --keep           keep the temporary folder
  --json           print one JSON object (the summary) on stdout and nothing else there
  --quiet          no progress or narration, only the summary
  --help           this text

Exit status: 0 when no acknowledged write was lost and verify() found no
difference, 1 otherwise (or on an error), 2 on bad arguments.`;

export interface DemoOptions {
  seconds: number; sizeMiB: number; writers: number; pageSize: number;
  dir: string | null; keep: boolean; json: boolean; quiet: boolean;
}

function parse(argv: string[]): DemoOptions | 'help' {
  if (argv.includes('-h')) return 'help';
  const o = parseOptions(argv, {
    '--seconds': 'value', '--size': 'value', '--writers': 'value', '--page-size': 'value', '--dir': 'value',
    '--keep': 'flag', '--json': 'flag', '--quiet': 'flag',
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
  failover: { exitMs: number; promoteMs: number; firstWriteMs: number };
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
  config: { dir: string; kept: boolean; seconds: number; sizeMiB: number; writers: number; pageSize: number; writeBytes: number };
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
        process.stderr.write(`twinpage demo: ${dir} is not empty: give --dir a new or empty folder (the demo creates node-a, node-b and secret in it)\n`);
        return 2;
      }
    } catch (err) {
      process.stderr.write(`twinpage demo: cannot use ${dir} as the demo folder: ${(err as Error).message}\n`);
      return 2;
    }
  } else {
    dir = await mkdtemp(join(tmpdir(), 'twinpage-demo-'));
  }

  const nodes: NodeProcess[] = [];
  let bar: Bar | null = null;
  let ok = false;
  const interrupt = () => {
    bar?.stop();
    for (const n of nodes) if (!n.gone) n.proc.kill('SIGKILL');
    process.stderr.write(`\ntwinpage demo: interrupted; the demo folder ${dir} is left as it was\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const summary = await demo(opts, out, dir, nodes, (b) => { bar = b; });
    ok = summary.ok;
    const kept = named || opts.keep || !ok;
    summary.config.kept = kept;
    for (const n of nodes) if (!n.gone) await n.kill();
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
    for (const n of nodes) if (!n.gone) await n.kill();
    const message = (err as Error).message;
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: message, dir }) + '\n');
    process.stderr.write(`twinpage demo: failed: ${message}\nThe demo folder is kept: ${dir}\n`);
    return 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

async function demo(o: DemoOptions, out: Out, dir: string, nodes: NodeProcess[], setBar: (b: Bar | null) => void): Promise<DemoSummary> {
  const size = o.sizeMiB << 20;
  const aloneSeconds = Math.min(2, o.seconds / 2);
  const dirA = join(dir, 'node-a');
  const dirB = join(dir, 'node-b');
  const secret = join(dir, 'secret');
  await writeFile(secret, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const cacheMb = String(Math.min(256, Math.max(64, o.sizeMiB + 16)));
  const serveArgs = (folder: string, role: string, link: string[]) =>
    ['--dir', folder, '--role', role, ...link, '--secret-file', secret, '--page-size', String(o.pageSize), '--cache-mb', cacheMb];
  const start = (args: string[]) => { const n = new NodeProcess(args); nodes.push(n); return n; };

  out.say('twinpage demo: a mirrored pair on loopback; the primary is killed mid-write, the secondary takes over,');
  out.say('the old primary comes back and is resynced, and every acknowledged write is checked.');
  out.say(`  folder    ${dir}${o.dir !== null || o.keep ? '' : ' (temporary: removed at the end unless --keep)'}`);
  out.say(`  workload  ${o.writers} writer${o.writers > 1 ? 's' : ''}, 4 KiB writes at random 4 KiB-aligned offsets of a ${o.sizeMiB} MiB block, for ${o.seconds} s; pages of ${o.pageSize} B`);
  out.say('');

  // 1-2. The pair.
  const b = start(serveArgs(dirB, 'secondary', ['--listen', '127.0.0.1:0']));
  const listening = await b.event('listening', 15000);
  const port = listening.port as number;
  out.say(`1. Node B (secondary, data in node-b) listens on 127.0.0.1:${port}.`);
  let a = start(serveArgs(dirA, 'primary', ['--peer', `127.0.0.1:${port}`]));
  await a.event('connected', 15000);
  await b.event('connected', 15000);
  out.say('2. Node A (primary, data in node-a) connected to B; they authenticated each other with a random shared secret.');

  // 3. The block.
  const alloc = await must(a, 'node A', { cmd: 'allocate', size });
  const blockId = (alloc.block as { id: string }).id;
  out.say(`3. A allocated a ${o.sizeMiB} MiB block (${blockId}); B holds it too.`);

  // 4. The workload, then the kill.
  out.say(`4. Writing through A for ${o.seconds} s. A write is acknowledged when A replies: by then both nodes' journals hold it (durability disk).`);
  if (o.writers > 1) out.say(`   Latency is from sending a write to its reply, as a writer sees it, including any wait behind the other writers' writes.`);
  const book = new Book(size);
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
  // Kill while writes are in flight, not at a quiet moment.
  for (let i = 0; book.inFlight === 0 && i < 1000; i++) await new Promise((r) => setImmediate(r));
  const inFlightAtKill = book.inFlight;
  const killAt = performance.now();
  killed = true;
  a.proc.kill('SIGKILL');
  const workloadSeconds = (killAt - t0) / 1000;
  const main = w.stats;
  bar.done(`${fmt(main.acked)} writes acknowledged in ${workloadSeconds.toFixed(1)} s`);
  setBar(null);
  out.say(`5. SIGKILL sent to A with ${inFlightAtKill} write${inFlightAtKill === 1 ? '' : 's'} in flight (sent, not yet acknowledged).`);

  // 6. Failover.
  await timed(a.exited, 10000, 'node A after SIGKILL');
  const exitedAt = performance.now();
  await timed(w.done, 10000, 'the writers after the kill');
  if (main.failed.some((r) => r.code !== 'EXITED')) {
    throw new Error(`a write failed other than by the kill: ${JSON.stringify(main.failed.find((r) => r.code !== 'EXITED'))}`);
  }
  await must(b, 'node B', { cmd: 'promote' });
  const promotedAt = performance.now();
  const slot = book.pick();
  const version = ++book.issued[slot];
  await must(b, 'node B', { cmd: 'write', block: blockId, offset: slot * SLOT, data: slotData(slot, version).toString('base64') });
  const servedAt = performance.now();
  book.acked[slot] = version;
  const failoverMs = servedAt - killAt;
  out.say(`6. B promoted to primary and served its first write ${ms(failoverMs)} ms after the kill.`);
  out.say('   (The demo promotes B as soon as A\'s process is gone: no failure-detection delay is counted.)');

  // 7. Every acknowledged write, on B.
  bar = out.bar('checking');
  setBar(bar);
  const inMaybe = book.maybe.size;
  const first = await checkAll(b, 'node B', blockId, book, bar, true);
  bar.done(`${fmt(first.checked)} slots with acknowledged writes, ${first.lost} lost`);
  setBar(null);
  out.say(`7. Read all ${o.sizeMiB} MiB back on B: the latest acknowledged write of each of ${fmt(first.checked)} written slots is there` +
    (first.lost ? `, except ${first.lost} LOST (first: ${first.firstLoss})` : ', none lost') + '.');
  if (inMaybe) {
    out.say(`   Of the ${inMaybe} write${inMaybe === 1 ? '' : 's'} in flight at the kill, ${first.landed} reached B and ${first.notLanded} did not: both are correct, as none was acknowledged.`);
  }

  // 8. B alone.
  out.say(`8. B carries on alone for ${aloneSeconds} s (A is down): B records which pages A lacks.`);
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

  // 9. A rejoins as secondary, B resyncs it.
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
  a = start(serveArgs(dirA, 'secondary', ['--peer', `127.0.0.1:${port}`]));
  out.say('9. A restarts on its data folder as secondary and rejoins; its generation is behind B\'s, so B resyncs it.');
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
    ? `   B resynced A in ${ms(resyncMs)} ms.`
    : `   B resent ${fmt(pagesResynced)} page${pagesResynced === 1 ? '' : 's'} in ${ms(resyncMs)} ms: those that may differ on A (the ones B changed alone and, as A crashed, every page of the extents A was writing to).`);

  // 10. verify().
  const differences = verify!.differences.length;
  const bytesVerified = verify!.pages * pageSize;
  out.say(`10. verify() on B compared the checksums of all ${fmt(verify!.pages)} pages (${mib(bytesVerified)}) with A's: ${differences} difference${differences === 1 ? '' : 's'}` +
    (verifyRounds > 1 ? ` (after ${verifyRounds} rounds: verify ran while the resync was finishing)` : '') + '.');

  // 11. Every acknowledged write, on both nodes.
  bar = out.bar('checking');
  setBar(bar);
  const endB = await checkAll(b, 'node B', blockId, book, null, false);
  bar.update(0.5, 'B done, reading A');
  const endA = await checkAll(a, 'node A', blockId, book, null, false);
  bar.done(`B: ${endB.lost} lost, A: ${endA.lost} lost`);
  setBar(null);
  out.say(`11. Read everything back on B and on A: ${fmt(endB.checked)} written slots, ` +
    (endB.lost + endA.lost ? `LOST on B: ${endB.lost} (${endB.firstLoss ?? '-'}), on A: ${endA.lost} (${endA.firstLoss ?? '-'})` : 'each holding its latest acknowledged write on both nodes') + '.');

  await timed(Promise.all([a.close(), b.close()]), 30000, 'closing the nodes');
  out.say('');

  const lat = [...main.latencies].sort((x, y) => x - y);
  const lost = first.lost + endB.lost + endA.lost;
  return {
    ok: lost === 0 && differences === 0,
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
    config: { dir, kept: true, seconds: o.seconds, sizeMiB: o.sizeMiB, writers: o.writers, pageSize, writeBytes: SLOT },
  };
}

const round = (n: number, digits: number) => Number(n.toFixed(digits));

function table(s: DemoSummary): string {
  const rows: Array<[string, string]> = [
    ['writes acknowledged (4 KiB, mirrored)', `${fmt(s.operations)} in ${s.seconds.toFixed(1)} s, ${s.config.writers} writer${s.config.writers === 1 ? '' : 's'}`],
    ['throughput', `${fmt(s.opsPerSecond)} writes/s, ${s.mibPerSecond.toFixed(2)} MiB/s`],
    ['latency p50 / p99 (send to reply)', `${ms(s.latencyP50Ms)} ms / ${ms(s.latencyP99Ms)} ms`],
    ['writes in flight at the kill', `${s.inFlightAtKill} (${s.inFlightLanded} landed, ${s.inFlightAtKill - s.inFlightLanded} did not; either is correct)`],
    ['failover (kill to first write on B)', `${ms(s.failoverMs)} ms (exit ${ms(s.failover.exitMs)}, promote ${ms(s.failover.promoteMs)}, write ${ms(s.failover.firstWriteMs)})`],
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
    ? 'PASS: no acknowledged write was lost, and verify() found the two nodes identical.'
    : `FAIL: ${s.lost} acknowledged write${s.lost === 1 ? '' : 's'} lost, ${s.differences} verify difference${s.differences === 1 ? '' : 's'}.`);
  return lines.join('\n');
}
