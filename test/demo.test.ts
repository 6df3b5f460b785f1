// The demo (`npm start`) in a short mode: a witness and two serve processes
// with automatic failover, the link cut at the demo's proxy with both nodes
// alive, healed, then the primary SIGKILLed mid-write, the secondary taking
// over by itself, rejoin and resync, verify. Its JSON summary must say that
// no acknowledged write was lost (those of the partition included), verify
// found no difference, the secondary stayed secondary while cut off (the
// witness refused it), no node reported a split brain, and the failover came
// from the secondary itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DEMO = fileURLToPath(new URL('../bindings/cli/demo-main.js', import.meta.url));

function runDemo(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the demo took over ${timeoutMs} ms; stderr: ${stderr}`)); }, timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('the demo, short: no acknowledged write lost, verify clean, partition without split brain, automatic failover, one JSON object on stdout', async () => {
  const r = await runDemo(['--seconds', '1', '--size', '2', '--partition-seconds', '1', '--json'], 90000);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 1, `stdout holds one line, the JSON summary: ${r.stdout}`);
  const s = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.is(r.code, 0, `exit code; summary ${lines[0]}; stderr ${r.stderr}`);
  assert.is(s.ok, true);
  assert.is(s.lost, 0, 'lost acknowledged writes');
  assert.is(s.differences, 0, 'verify differences');
  assert.ok((s.operations as number) > 0, 'operations');
  assert.ok((s.failoverMs as number) > 0, 'failover time');
  assert.type(s.pagesResynced, 'number');
  assert.ok((s.pagesResynced as number) >= 0, 'pages resynced');
  assert.ok((s.bytesVerified as number) > 0, 'bytes verified');
  assert.ok((s.inFlightAtKill as number) > 0, 'the primary was killed with writes in flight');
  assert.ok((s.acknowledgedSlotsChecked as number) > 0, 'acknowledged writes were checked');
  assert.is((s.config as { sizeMiB: number }).sizeMiB, 2);

  // The failover: B took over through the witness, no promote sent; its parts add up to the whole.
  assert.is(s.witness, true, 'the pair ran with a witness');
  assert.is(s.failoverAutomatic, true, 'B took over by itself');
  const d = s.failoverDetectMs as { noticeMs: number; takeoverMs: number; firstWriteMs: number };
  for (const k of ['noticeMs', 'takeoverMs', 'firstWriteMs'] as const) assert.ok(d[k] >= 0, `failoverDetectMs.${k} ${d[k]}`);
  assert.ok(Math.abs(d.noticeMs + d.takeoverMs + d.firstWriteMs - (s.failoverMs as number)) < 1, 'the parts of the failover add up to it');

  // The partition: writes went on under the lease, none lost; B refused and still secondary; no split brain.
  const p = s.partition as Record<string, unknown>;
  assert.is(p.ok, true, `partition ${JSON.stringify(p)}`);
  assert.ok((p.writesAcknowledged as number) > 0, 'the primary acknowledged writes while cut off');
  assert.is(p.lost, 0, 'writes acknowledged during the partition are on both nodes after the heal');
  assert.is(p.splitBrain, false, 'no split brain on either node');
  assert.is(p.refusedPromotion, true, 'the secondary asked to take over and was refused');
  assert.is(p.secondaryRole, 'secondary', 'the secondary stayed secondary');
  assert.match(String(p.refusal), /refused by the arbiter/, 'the refusal came from the witness');
  assert.is(p.leaseHeld, true, 'the primary held the lease with B outdated');
  assert.is(p.outdatedAtArbiter, true, "the witness's record marked B outdated");
  assert.is(p.differences, 0, 'verify after the heal');
  assert.is(p.leaseReleased, true, 'the lease was given back after the heal');
});

test('--help prints the usage and exits 0', () => {
  const r = spawnSync(process.execPath, [DEMO, '--help'], { encoding: 'utf8' });
  assert.is(r.status, 0);
  assert.match(r.stdout, /usage: npm start/);
  assert.match(r.stdout, /--seconds/);
});

test('bad arguments: exit 2 with a message and the usage, no stack trace', () => {
  for (const args of [['--frobnicate'], ['--seconds', 'soon'], ['--partition-seconds', '0'], ['--etcd'], ['--size', '0'], ['--page-size', '1000'], ['--writers'], ['stray']]) {
    const r = spawnSync(process.execPath, [DEMO, ...args], { encoding: 'utf8' });
    assert.is(r.status, 2, `demo ${args.join(' ')}: exit ${r.status}`);
    assert.match(r.stderr, /twinpage demo: /);
    assert.match(r.stderr, /usage: /);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    assert.is(r.stdout, '', 'nothing on stdout');
  }
});

test.run();
