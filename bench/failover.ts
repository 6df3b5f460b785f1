// Failover and rejoin, timed end to end: the demo's pair of processes over
// TCP on loopback (a secondary and a primary `twinpage serve`), the primary
// SIGKILLed mid-write. Reports kill → first write served by the promoted
// secondary, and the rejoining node's resync, over a few runs.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { figure } from './util.js';

const DEMO = fileURLToPath(new URL('../bindings/cli/demo-main.js', import.meta.url));
const RUNS = 3;

interface Summary { ok: boolean; lost: number; differences: number; failoverMs: number; resyncMs: number; pagesResynced: number; operations: number }

function demo(): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, '--seconds', '2', '--size', '8', '--json', '--quiet'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      try {
        const s = JSON.parse(out) as Summary;
        if (code !== 0 || !s.ok || s.lost !== 0 || s.differences !== 0) reject(new Error(`the demo failed (exit ${code}): ${out}`));
        else resolve(s);
      } catch (err) {
        reject(new Error(`the demo printed no summary (exit ${code}): ${out}`, { cause: err }));
      }
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<void> {
  const runs: Summary[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await demo());
  const f = runs.map((r) => r.failoverMs);
  const r = runs.map((x) => x.resyncMs);
  const p = runs.map((x) => x.pagesResynced);
  figure('mirror.failover', `kill to first write served: median ${median(f).toFixed(1)} ms (runs: ${f.map((x) => x.toFixed(1)).join(', ')})`);
  figure('mirror.rejoin', `resync: median ${median(r).toFixed(1)} ms for ${median(p)} pages (runs: ${r.map((x, i) => `${x.toFixed(0)} ms/${p[i]} pages`).join(', ')}); 0 lost, verify clean in every run`);
}
