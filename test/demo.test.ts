// The demo (`npm start`) in a short mode: two serve processes, a primary
// SIGKILLed mid-write, failover, rejoin and resync, verify. Its JSON summary
// must say that no acknowledged write was lost and verify found no difference.
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

test('the demo, short: no acknowledged write lost, verify clean, one JSON object on stdout', async () => {
  const r = await runDemo(['--seconds', '1', '--size', '2', '--json'], 60000);
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
});

test('--help prints the usage and exits 0', () => {
  const r = spawnSync(process.execPath, [DEMO, '--help'], { encoding: 'utf8' });
  assert.is(r.status, 0);
  assert.match(r.stdout, /usage: npm start/);
  assert.match(r.stdout, /--seconds/);
});

test('bad arguments: exit 2 with a message and the usage, no stack trace', () => {
  for (const args of [['--frobnicate'], ['--seconds', 'soon'], ['--size', '0'], ['--page-size', '1000'], ['--writers'], ['stray']]) {
    const r = spawnSync(process.execPath, [DEMO, ...args], { encoding: 'utf8' });
    assert.is(r.status, 2, `demo ${args.join(' ')}: exit ${r.status}`);
    assert.match(r.stderr, /twinpage demo: /);
    assert.match(r.stderr, /usage: /);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    assert.is(r.stdout, '', 'nothing on stdout');
  }
});

test.run();
