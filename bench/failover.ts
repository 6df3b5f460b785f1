// failover.*: the demo's pair of `twinpage serve` processes on loopback with a
// third vote and automatic failover, run with --json a few times:
//
//   failover.witness   kill of the primary → first write served by the
//                      secondary, which took over by itself through a
//                      `twinpage witness` at its default settings (10 s
//                      lease): failure detection, the lease and the first
//                      write included; and its parts
//   failover.etcd      the same with etcd as the third vote (an etcd started
//                      here on loopback, test/etcd-process.ts), or a line saying it
//                      was skipped for want of an etcd binary
//   mirror.rejoin      the rejoining node's resync, as before
//   failover.partition what the demo's partition phase saw in each run
//
// and failover.witness_cost (witness-cost.ts): a pair's write throughput with
// a witness over one without, side by side.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalEtcd, findEtcd } from '../test/etcd-process.js';
import { figure, median } from './util.js';

const DEMO = fileURLToPath(new URL('../bindings/cli/demo-main.js', import.meta.url));
const RUNS = 3;

interface Summary {
  ok: boolean; lost: number; differences: number; failoverMs: number; resyncMs: number; pagesResynced: number; operations: number;
  failoverAutomatic: boolean; failoverDetectMs: { noticeMs: number; takeoverMs: number; firstWriteMs: number };
  timings: { heartbeatMs: number; timeoutMs: number; leaseMs: number };
  partition: { ok: boolean; writesAcknowledged: number; splitBrain: boolean; refusedPromotion: boolean; lost: number };
}

function demo(extra: string[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, '--seconds', '2', '--size', '8', '--json', '--quiet', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      try {
        const s = JSON.parse(out) as Summary;
        if (code !== 0 || !s.ok || s.lost !== 0 || s.differences !== 0 || !s.failoverAutomatic) reject(new Error(`the demo failed (exit ${code}): ${out}`));
        else resolve(s);
      } catch (err) {
        reject(new Error(`the demo printed no summary (exit ${code}): ${out}`, { cause: err }));
      }
    });
  });
}

const f1 = (x: number) => x.toFixed(1);

/** RUNS demos with `extra` arguments; prints the failover figures under `name`. */
async function failovers(name: string, what: string, extra: string[]): Promise<Summary[]> {
  const runs: Summary[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await demo(extra));
  const f = runs.map((r) => r.failoverMs);
  const part = (k: 'noticeMs' | 'takeoverMs' | 'firstWriteMs') => f1(median(runs.map((r) => r.failoverDetectMs[k])));
  const t = runs[0].timings;
  figure(name, `kill to first write served, ${what}: median ${f1(median(f))} ms (runs: ${f.map(f1).join(', ')}); ` +
    `median parts: link seen failing ${part('noticeMs')}, takeover ${part('takeoverMs')}, write ${part('firstWriteMs')} ms ` +
    `(serve --heartbeat-ms ${t.heartbeatMs} --timeout-ms ${t.timeoutMs}, lease ${t.leaseMs} ms)`);
  return runs;
}

export async function run(): Promise<void> {
  const runs = await failovers('failover.witness', 'the secondary taking over by itself through a witness (its defaults)', []);
  const r = runs.map((x) => x.resyncMs);
  const p = runs.map((x) => x.pagesResynced);
  figure('mirror.rejoin', `resync: median ${f1(median(r))} ms for ${median(p)} pages (runs: ${r.map((x, i) => `${x.toFixed(0)} ms/${p[i]} pages`).join(', ')}); 0 lost, verify clean in every run`);
  figure('failover.partition', `link cut for 2 s, both nodes live: ` +
    `${runs.map((x) => x.partition.writesAcknowledged).join(', ')} writes acknowledged by the primary alone; ` +
    `secondary refused ${runs.filter((x) => x.partition.refusedPromotion).length}/${runs.length}, split brain ${runs.filter((x) => x.partition.splitBrain).length}/${runs.length}, lost ${runs.reduce((n, x) => n + x.partition.lost, 0)}`);

  const binary = findEtcd();
  if (binary === null) {
    figure('failover.etcd', 'skipped: no etcd binary (/usr/bin/etcd, PATH or TWINPAGE_ETCD; Debian: apt-get install etcd-server)');
  } else {
    const etcd = await LocalEtcd.start(binary);
    try {
      await failovers('failover.etcd', `the same through etcd (${binary}, one member on loopback)`, ['--etcd', etcd.endpoint]);
    } finally {
      await etcd.stop();
    }
  }

  await (await import('./witness-cost.js')).run();
}
