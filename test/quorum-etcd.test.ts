// The quorum campaign (test/quorum-campaign.ts) with etcd as the arbiter
// instead of a witness: QUORUM_ETCD_ROUNDS rounds (default 5) of random
// faults over two `serve --failover auto --etcd` nodes, each node's link to
// etcd and the pair's link through a nemesis. etcd itself is not killed
// (a node is cut from it instead). QUORUM_SEED replays a run.
//
// The lease is 2 s here, etcd's least (it counts leases in whole seconds
// and ends them on a timer about every half second).
//
// As in etcd.test.ts: one etcd started here on loopback (its own data
// folder and free ports); without an etcd binary (Debian: apt-get install
// etcd-server) this file says it skipped itself, by name; with CI=true a
// missing etcd fails the run instead. TWINPAGE_ETCD names another binary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { quorumCampaign } from './quorum-campaign.js';
import { sleep } from './quorum-pair.js';

const SKIPPED = 'quorum campaign with etcd: skipped, no etcd binary (install etcd-server)';
const ROUNDS = Number(process.env.QUORUM_ETCD_ROUNDS ?? 5);
const SEED = process.env.QUORUM_SEED ? Number(process.env.QUORUM_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;

function findEtcd(): string | null {
  const candidates = process.env.TWINPAGE_ETCD
    ? [process.env.TWINPAGE_ETCD]
    : ['/usr/bin/etcd', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'etcd'))];
  for (const c of candidates) {
    try { accessSync(c, constants.X_OK); return c; } catch { /* next */ }
  }
  return null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An etcd of its own on loopback, as in etcd.test.ts. */
async function startEtcd(binary: string): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-quorum-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  let log = '';
  const proc: ChildProcess = spawn(binary, [
    '--name', 'twinpage-quorum', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `twinpage-quorum=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
    '--logger', 'zap', '--log-level', 'warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'], env });
  proc.stderr!.on('data', (d) => { log = (log + d).slice(-4000); });
  process.on('exit', () => proc.kill('SIGKILL'));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('close', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      proc.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) { await stop(); throw new Error(`etcd exited (${proc.exitCode}): ${log}`); }
    try {
      const res = await fetch(endpoint + '/v3/kv/range', { method: 'POST', body: JSON.stringify({ key: Buffer.from('ping').toString('base64') }) });
      if ((await res.json() as { header?: unknown }).header) return { endpoint, stop };
    } catch { /* not yet */ }
    if (Date.now() > until) { await stop(); throw new Error(`etcd did not answer at ${endpoint} within 20 s: ${log}`); }
    await sleep(100);
  }
}

const binary = findEtcd();

if (binary === null) {
  if (process.env.CI === 'true') {
    test('quorum campaign with etcd: no etcd binary, and CI=true requires one (install etcd-server: apt-get install -y etcd-server)', () => {
      assert.unreachable('no etcd binary at /usr/bin/etcd, on PATH or in TWINPAGE_ETCD');
    });
  } else {
    console.log(SKIPPED);
    test.skip(SKIPPED, () => {});
  }
  test.run();
} else {
  let etcd: { endpoint: string; stop: () => Promise<void> } | null = null;
  test.before(async () => { etcd = await startEtcd(binary); });
  quorumCampaign(test, {
    name: 'quorum campaign (etcd)', rounds: ROUNDS, seed: SEED, killArbiter: false,
    get etcd() { return etcd!.endpoint; }, etcdPrefix: `twinpage-quorum-${process.pid}`, leaseMs: 2000,
    replay: (rounds) => `QUORUM_SEED=${SEED} QUORUM_ETCD_ROUNDS=${rounds}`,
  });
  // After the campaign's own `after` (its nodes stopped first).
  test.after(async () => { await etcd?.stop(); });
  test.run();
}
