// A node run as a service: `twinpage serve --config FILE` (policies by name,
// flags over the file, unknown keys refused), the new flags (--heartbeat-ms,
// --timeout-ms, --failover, --metrics), the operator's commands on running
// nodes (promote, demote, resync, verify --repair, discard, and discard on a
// stopped node), and the Prometheus metrics scraped over HTTP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '../bindings/storage/file.js';
import { forgePage } from './forge.js';
import { CLI, NodeProcess } from './pair-process.js';

interface Run { status: number | null; stdout: string; stderr: string }

/** Runs `twinpage ARGS` to its end (standard input empty). */
function run(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      const status = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ status, stdout, stderr });
    });
    child.stdin!.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STACK = /\n\s+at /;

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 15000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A temporary folder with a secret file; removed by `done`. */
async function workspace(): Promise<{ dir: string; secret: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-service-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'service test secret\n', { mode: 0o600 });
  return { dir, secret, done: () => rm(dir, { recursive: true, force: true }) };
}

/** `twinpage status --dir D --json`, parsed. */
async function statusOf(dir: string): Promise<Record<string, any>> {
  const r = await run('status', '--dir', dir, '--json');
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const b64 = (n: number, byte: number) => Buffer.alloc(n, byte).toString('base64');

// --- help and usage -------------------------------------------------------------------

test('the new commands and options: listed, with their help; bad command lines exit 2', async () => {
  const list = await run('--help');
  for (const c of ['promote', 'demote', 'resync', 'discard']) assert.match(list.stdout, new RegExp(`^  ${c} `, 'm'));
  const options: Record<string, string[]> = {
    serve: ['--config', '--heartbeat-ms', '--timeout-ms', '--failover', '--metrics', '--split-brain'],
    promote: ['--dir', '--force', '--json', '--timeout'],
    demote: ['--dir', '--json', '--timeout'],
    resync: ['--dir', '--json', '--timeout'],
    discard: ['--dir', '--json', '--timeout'],
    verify: ['--repair'],
  };
  const runs = await Promise.all(Object.keys(options).map((c) => run(c, '--help')));
  Object.entries(options).forEach(([c, opts], i) => {
    assert.is(runs[i].status, 0, `${c} --help`);
    assert.match(runs[i].stdout, new RegExp(`^usage: twinpage ${c}`));
    for (const o of opts) assert.ok(runs[i].stdout.includes(o), `${c} --help mentions ${o}`);
  });
  const bad: Array<[string[], RegExp]> = [
    [['promote'], /--dir is required/],
    [['demote', '--dir', 'x', '--force'], /unknown option --force/],
    [['resync', '--dir', 'x', 'now'], /unexpected argument "now"/],
    [['discard', '--dir'], /--dir needs a value/],
    [['verify', '--dir', 'x', '--repair=yes'], /--repair takes no value/],
  ];
  const badRuns = await Promise.all(bad.map(([args]) => run(...args)));
  bad.forEach(([args, message], i) => {
    assert.is(badRuns[i].status, 2, args.join(' '));
    assert.match(badRuns[i].stderr, message);
  });
});

// --- the config file ------------------------------------------------------------------

test('serve --config FILE: policies chosen by name, relative paths from the file, comments skipped, flags over the file', async () => {
  const w = await workspace();
  const config = join(w.dir, 'node.json');
  await writeFile(config, JSON.stringify({
    '//': 'a primary whose partner is not there: it runs degraded',
    dir: 'data',
    role: 'primary',
    peer: '127.0.0.1:1',
    secretFile: 'secret',
    heartbeatMs: 100,
    timeoutMs: 1500,
    failover: 'manual',
    splitBrain: 'discard-local',
    policies: [
      { name: 'small', maxSize: 65536, durability: 'memory', cachePriority: 3 },
      { name: 'async', maxSize: null, durability: 'async', writeMode: 'write-back', copyMethod: 'message' },
    ],
  }, null, 2));
  // Run from another folder: the paths in the file are the file's folder's.
  const node = new NodeProcess(['--config', config, '--timeout-ms', '3000']);
  try {
    await node.event('started');
    const big = await node.send({ cmd: 'allocate', size: 1 << 20 });
    assert.ok(big.ok, JSON.stringify(big));
    assert.is((big.block as { policy: string }).policy, 'async', 'chosen by size');
    const named = await node.send({ cmd: 'allocate', size: 4096, policy: 'async' });
    assert.ok(named.ok, JSON.stringify(named));
    assert.is((named.block as { policy: string }).policy, 'async', '"policy":"async" works by name');
    const small = await node.send({ cmd: 'allocate', size: 4096 });
    assert.is((small.block as { policy: string }).policy, 'small');
    const none = await node.send({ cmd: 'allocate', size: 4096, policy: 'default' });
    assert.is(none.ok, false);
    assert.match(String(none.error), /no policy named 'default'; policies: small, async/);
    assert.ok((await node.send({ cmd: 'write', block: (named.block as { id: string }).id, offset: 0, data: b64(4096, 5) })).ok);
    const { policies } = await node.send({ cmd: 'policies' }) as { policies: Array<Record<string, unknown>> };
    assert.equal(policies.map((p) => [p.name, p.maxSize, p.durability, p.writeMode, p.cachePriority, p.copyMethod]), [
      ['small', 65536, 'memory', 'write-through', 3, 'auto'],
      ['async', null, 'async', 'write-back', 1, 'message'],
    ]);

    const s = await statusOf(join(w.dir, 'data'));
    assert.equal(s.settings, {
      configFile: config, heartbeatMs: 100, timeoutMs: 3000, failover: 'manual', splitBrain: 'discard-local',
      copy: 'auto', tls: false, insecurePlaintext: false, metrics: null, arbiter: null, leaseMs: null, onNoQuorum: null,
    }, '--timeout-ms on the command line over the file\'s timeoutMs');
    const text = await run('status', '--dir', join(w.dir, 'data'));
    assert.match(text.stdout, /failover\s+manual \(heartbeat 100 ms, timeout 3000 ms\), split brain: discard-local/);
    assert.match(text.stdout, new RegExp(`config\\s+${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await node.close();
    assert.is(await node.exited, 0, node.stderr);
  } finally {
    await node.kill();
    await w.done();
  }
});

test('TLS files from config files (relative to each file): a mutual-TLS pair mirrors writes; status says so', async () => {
  const w = await workspace();
  const fixtures = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url));
  for (const f of ['cert.pem', 'key.pem', 'ca.pem']) await writeFile(join(w.dir, f), await readFile(join(fixtures, f)));
  const tls = { tlsCert: 'cert.pem', tlsKey: 'key.pem', tlsCa: 'ca.pem', secretFile: 'secret' };
  await writeFile(join(w.dir, 'b.json'), JSON.stringify({ ...tls, dir: 'b', role: 'secondary', listen: '127.0.0.1:0' }));
  const b = new NodeProcess(['--config', join(w.dir, 'b.json')]);
  let a: NodeProcess | null = null;
  try {
    const { port } = await b.event('listening');
    await writeFile(join(w.dir, 'a.json'), JSON.stringify({ ...tls, dir: 'a', role: 'primary', peer: `127.0.0.1:${port}` }));
    a = new NodeProcess(['--config', join(w.dir, 'a.json')]);
    await a.event('connected');
    const alloc = await a.send({ cmd: 'allocate', size: 4096 });
    const id = (alloc.block as { id: string }).id;
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 0, data: b64(4096, 7) })).ok);
    assert.is((await b.send({ cmd: 'read', block: id, offset: 0, length: 4096 })).data, b64(4096, 7));
    const s = await statusOf(join(w.dir, 'a'));
    assert.is(s.settings.tls, true);
    assert.match((await run('status', '--dir', join(w.dir, 'b'))).stdout, /link\s+sealed, over TLS/);
    await a.close();
    await b.close();
  } finally {
    await a?.kill();
    await b.kill();
    await w.done();
  }
});

test('the example config file in docs/ is one serve takes', async () => {
  const { readConfigFile } = await import('../bindings/cli/config.js');
  const example = fileURLToPath(new URL('../../docs/twinpage.json', import.meta.url));
  const c = await readConfigFile(example);
  assert.equal([c.dir, c.role, c.peer, c.failover, c.metrics, c.noStdin], ['/var/lib/twinpage', 'primary', ['10.0.0.2', 7000], 'manual', ['127.0.0.1', 9464], true]);
  assert.equal((c.policies as Array<{ name: string }>).map((p) => p.name), ['small', 'bulk', 'async']);
  const unit = await readFile(fileURLToPath(new URL('../../docs/twinpage.service', import.meta.url)), 'utf8');
  assert.match(unit, /^ExecStart=\S*twinpage serve --config \/etc\/twinpage\/twinpage\.json --no-stdin$/m);
  assert.match(unit, /^StateDirectory=twinpage$/m);
});

test('a bad config file or flag is refused before anything opens: unknown keys named, wrong values explained (exit 2)', async () => {
  const w = await workspace();
  const file = (name: string, body: unknown) => {
    const path = join(w.dir, name);
    return writeFile(path, typeof body === 'string' ? body : JSON.stringify(body)).then(() => path);
  };
  const base = { dir: join(w.dir, 'data'), role: 'secondary', listen: '127.0.0.1:0', secretFile: w.secret };
  try {
    const cases: Array<[string[], RegExp]> = [
      [['--config', await file('typo.json', { ...base, heartbeat: 100, secret_file: 'x' })], /config .*typo\.json: unknown keys "heartbeat", "secret_file" \(known: dir, role, .*policies\)/],
      [['--config', await file('one.json', { ...base, hearbeatMs: 100 })], /unknown key "hearbeatMs"/],
      [['--config', await file('notjson.json', '{ "dir": "data", }')], /config .*notjson\.json: not JSON/],
      [['--config', await file('array.json', [base])], /must be a JSON object/],
      [['--config', await file('failover.json', { ...base, failover: 'sometimes' })], /failover must be one of "manual", "auto", got "sometimes"/],
      [['--config', await file('hb.json', { ...base, heartbeatMs: '100' })], /heartbeatMs must be a whole number from 1 to 3600000, got "100"/],
      [['--config', await file('listen.json', { ...base, listen: 7000 })], /listen must be "HOST:PORT", got 7000/],
      [['--config', await file('pol.json', { ...base, policies: [{ name: 'a', maxSize: null, durability: 'sometimes' }] })], /policies\[0\]\.durability must be one of 'disk', 'memory', 'async'/],
      [['--config', await file('polkey.json', { ...base, policies: [{ name: 'a', size: 10 }] })], /policies\[0\]: unknown key "size"/],
      [['--config', await file('polcover.json', { ...base, policies: [{ name: 'a', maxSize: 4096 }] })], /must cover every size/],
      [['--config', await file('both.json', { ...base, peer: '127.0.0.1:1' })], /exactly one of --listen and --peer/],
      [['--config', await file('ok.json', base), '--failover', 'maybe'], /--failover must be manual or auto, got "maybe"/],
      [['--config', join(w.dir, 'ok.json'), '--heartbeat-ms', '0'], /--heartbeat-ms must be a whole number from 1/],
      [['--config', join(w.dir, 'ok.json'), '--heartbeat-ms', '500', '--timeout-ms', '500'], /--heartbeat-ms \(500\) must be below --timeout-ms \(500\)/],
      [['--config', join(w.dir, 'ok.json'), '--metrics', 'nohost'], /--metrics must be HOST:PORT/],
      [['--config', join(w.dir, 'ok.json'), '--config', 'again.json'], /--config is given twice/],
    ];
    const runs = await Promise.all(cases.map(([args]) => run('serve', ...args)));
    cases.forEach(([args, message], i) => {
      const r = runs[i];
      assert.is(r.status, 2, `${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, message, `${args.join(' ')}`);
      assert.not.match(r.stderr, STACK);
    });
    const missing = await run('serve', '--config', join(w.dir, 'nowhere.json'));
    assert.is(missing.status, 1);
    assert.match(missing.stderr, /^twinpage: NOT_FOUND: .*read the config file .*nowhere\.json/);
  } finally {
    await w.done();
  }
});

// --- failover, heartbeat and timeout ---------------------------------------------------

test('--heartbeat-ms and --timeout-ms: a secondary gone silent (SIGSTOP) is taken for down after the timeout; back, it is resynced. --failover auto needs an arbiter', async () => {
  const w = await workspace();
  const timing = ['--heartbeat-ms', '50', '--timeout-ms', '600'];
  const b = new NodeProcess(['--dir', join(w.dir, 'b'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', w.secret, ...timing]);
  let a: NodeProcess | null = null;
  try {
    const { port } = await b.event('listening');
    a = new NodeProcess(['--dir', join(w.dir, 'a'), '--role', 'primary', '--peer', `127.0.0.1:${port}`, '--secret-file', w.secret, ...timing]);
    await a.event('connected');
    const alloc = await a.send({ cmd: 'allocate', size: 16 * 4096 });
    const id = (alloc.block as { id: string }).id;
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 0, data: b64(8192, 3) })).ok);
    const s = await statusOf(join(w.dir, 'a'));
    assert.equal([s.settings.failover, s.settings.heartbeatMs, s.settings.timeoutMs], ['manual', 50, 600]);
    // Heartbeats every 50 ms keep the pair up while both live.
    await sleep(800);
    assert.is(((await a.send({ cmd: 'sense' })).sense as { health: string }).health, 'ok');

    const seen = a.events.length;
    const stopped = Date.now();
    b.proc.kill('SIGSTOP');
    const degraded = await a.event('degraded', 10000, seen);
    const after = Date.now() - stopped;
    assert.ok(after >= 500, `taken for down after the timeout, not before: ${after} ms`);
    assert.ok(after < 1900, `within about --timeout-ms (600), not the default 2000: ${after} ms`);
    assert.is(degraded.role, 'primary');
    const disconnected = await a.event('disconnected', 5000, seen);
    assert.match(String(disconnected.reason), /silent for 600 ms|no acknowledgement for 600 ms/);
    for (let i = 2; i < 6; i++) assert.ok((await a.send({ cmd: 'write', block: id, offset: i * 4096, data: b64(4096, i) })).ok, 'writes go on alone');

    // Back: the link is redialled and what it missed is resynced.
    const back = a.events.length;
    b.proc.kill('SIGCONT');
    await a.event('resync-done', 15000, back);
    await waitFor('the pair in sync', async () => {
      const x = (await a!.send({ cmd: 'sense' })).sense as { health: string; lagPages: number };
      return x.health === 'ok' && x.lagPages === 0;
    });
    assert.is((await b.send({ cmd: 'read', block: id, offset: 5 * 4096, length: 4096 })).data, b64(4096, 5));
    await a.close();
    await b.close();

    const auto = await run('serve', '--dir', join(w.dir, 'c'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', w.secret, '--failover', 'auto');
    assert.is(auto.status, 2);
    assert.match(auto.stderr, /--failover auto needs a third vote \(an arbiter: a witness or etcd\)/);
  } finally {
    b.proc.kill('SIGCONT');
    await a?.kill();
    await b.kill();
    await w.done();
  }
});

// --- the operator's commands --------------------------------------------------------------

test('promote, demote, resync and verify --repair on running nodes; discard on a running node after a split brain, and on a stopped one', async () => {
  const w = await workspace();
  const dirA = join(w.dir, 'a');
  const dirB = join(w.dir, 'b');
  const procs: NodeProcess[] = [];
  const start = (args: string[]) => { const p = new NodeProcess([...args, '--secret-file', w.secret]); procs.push(p); return p; };
  try {
    const b = start(['--dir', dirB, '--role', 'secondary', '--listen', '127.0.0.1:0']);
    const { port } = await b.event('listening');
    const peerA = ['--dir', dirA, '--peer', `127.0.0.1:${port}`];
    let a = start([...peerA, '--role', 'primary']);
    await a.event('connected');
    const alloc = await a.send({ cmd: 'allocate', size: 16 * 4096 });
    const id = (alloc.block as { id: string; base: number }).id;
    const base = (alloc.block as { base: number }).base;
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 0, data: b64(16 * 4096, 1) })).ok);

    // A switchover: demote A, promote B; they stay connected.
    const demoted = await run('demote', '--dir', dirA);
    assert.is(demoted.status, 0, demoted.stderr);
    assert.match(demoted.stdout, /^demoted:\n\s+role\s+secondary/);
    await waitFor('B to see A as secondary', async () => (await statusOf(dirB)).sense.peerRole === 'secondary');
    const promoted = await run('promote', '--dir', dirB, '--json');
    assert.is(promoted.status, 0, promoted.stderr);
    const sense = JSON.parse(promoted.stdout);
    assert.equal([sense.role, sense.connected, sense.health], ['primary', true, 'ok']);
    assert.ok(b.events.some((e) => e.event === 'role' && e.role === 'primary'));
    assert.ok(a.events.some((e) => e.event === 'role' && e.role === 'secondary'));
    assert.ok((await b.send({ cmd: 'write', block: id, offset: 0, data: b64(4096, 2) })).ok);
    const again = await run('promote', '--dir', dirB);
    assert.is(again.status, 0, 'promoting a primary changes nothing');

    // resync: on the primary, exit 0; on the secondary, refused.
    const resync = await run('resync', '--dir', dirB);
    assert.is(resync.status, 0, resync.stderr);
    assert.match(resync.stdout, /^resynced:\n\s+role\s+primary\n\s+health\s+ok/);
    const wrong = await run('resync', '--dir', dirA);
    assert.is(wrong.status, 1);
    assert.match(wrong.stderr, /^twinpage: NOT_PRIMARY: .* is a secondary: a resync is sent by the primary/);

    // verify --repair: a page that differs on A, silently (forged while it was stopped: forge.ts).
    const nodeA = (await statusOf(dirA)).nodeId as string;
    await a.close();
    const forged = Buffer.alloc(4096, 1);
    forged[100] = 0xDE;
    await forgePage(new FileStore(dirA), nodeA, base + 5, forged);
    a = start([...peerA, '--role', 'secondary']);
    await a.event('connected');
    await waitFor('the pair back in sync', async () => {
      const s = (await statusOf(dirB)).sense;
      return s.connected && s.health === 'ok' && s.lagPages === 0;
    });
    const found = await run('verify', '--dir', dirB);
    assert.is(found.status, 1, found.stdout + found.stderr);
    assert.match(found.stdout, new RegExp(`1 differences\\n  block ${id}: pages ${base + 5}`));
    const fromSecondary = await run('verify', '--dir', dirA, '--repair');
    assert.is(fromSecondary.status, 1);
    assert.match(fromSecondary.stderr, /NOT_PRIMARY: verify --repair resyncs from the primary/);
    const repaired = await run('verify', '--dir', dirB, '--repair');
    assert.is(repaired.status, 0, repaired.stdout + repaired.stderr);
    assert.match(repaired.stdout, /1 differences[\s\S]*repaired: the partner was resynced from this primary/);
    const clean = await run('verify', '--dir', dirB);
    assert.is(clean.status, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /no differences/);

    // A split brain: each writes while they are parted.
    await a.close();
    assert.ok((await b.send({ cmd: 'write', block: id, offset: 4096, data: b64(4096, 3) })).ok);
    a = start(['--dir', dirA, '--peer', '127.0.0.1:1', '--role', 'primary']);
    await a.event('started');
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 8192, data: b64(4096, 9) })).ok);
    await a.close();
    a = start([...peerA, '--role', 'secondary']);
    const split = await a.event('split-brain');
    assert.match(String(split.message), /twinpage discard --dir DIR/);
    await b.event('split-brain');
    // (Between the redials, each refused the same way.)
    await waitFor('A to report the split brain', async () => (await statusOf(dirA)).sense.health === 'split-brain');

    // twinpage discard on the running A: it gives up its write and takes B's data.
    const seen = b.events.length;
    const discard = await run('discard', '--dir', dirA);
    assert.is(discard.status, 0, discard.stderr);
    assert.match(discard.stdout, /^the running node discards its changes/);
    await b.event('resync-done', 15000, seen);
    await waitFor('A resynced from B', async () => {
      const s = (await statusOf(dirB)).sense;
      return s.connected && s.health === 'ok' && s.lagPages === 0;
    });
    const read = await a.send({ cmd: 'read', block: id, offset: 0, length: 3 * 4096 });
    assert.equal(Buffer.from(read.data as string, 'base64'), Buffer.concat([Buffer.alloc(4096, 2), Buffer.alloc(4096, 3), Buffer.alloc(4096, 1)]), 'B\'s data, A\'s own write gone');
    assert.is((await run('verify', '--dir', dirB)).status, 0);

    // twinpage discard on a stopped node: opened here, marked, closed.
    await a.close();
    const offline = await run('discard', '--dir', dirA);
    assert.is(offline.status, 0, offline.stderr);
    assert.match(offline.stdout, /^discard recorded: the node discards its changes when it next meets its partner/);
    const inspected = JSON.parse((await run('inspect', '--dir', dirA, '--json')).stdout);
    assert.is(inspected.generations.discardLocal, true);
    assert.is(inspected.generations.clean, true, 'closed cleanly');
    assert.match((await run('inspect', '--dir', dirA)).stdout, /discards\s+its changes, at its next split brain/);
    const nothing = await run('discard', '--dir', join(w.dir, 'nothing-here'));
    assert.is(nothing.status, 1);
    assert.match(nothing.stderr, /^twinpage: NOT_FOUND: no data folder at/);
    const none = await run('promote', '--dir', dirA);
    assert.is(none.status, 1);
    assert.match(none.stderr, /^twinpage: NOT_FOUND: no node is running on/);
    await b.close();
  } finally {
    for (const p of procs) await p.kill();
    await w.done();
  }
});

// --- metrics ---------------------------------------------------------------------------------

/** GET http://127.0.0.1:port/path: status, content type, body. */
function scrape(port: number, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  });
}

/** Prometheus text format → { 'name{labels}': value } (HELP and TYPE lines checked to come first). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) { typed.add(t[1]); continue; }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const family = m![1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(m![1]) || typed.has(family), `${m![1]} has a TYPE line before it`);
    out.set(m![1] + (m![2] ?? ''), Number(m![3]));
  }
  return out;
}

test('--metrics HOST:PORT: Prometheus text on /metrics; role, health, connection, writes, bytes, ack latency, lag and resync change as the pair does', async () => {
  const w = await workspace();
  const b = new NodeProcess(['--dir', join(w.dir, 'b'), '--role', 'secondary', '--listen', '127.0.0.1:0', '--secret-file', w.secret]);
  let a: NodeProcess | null = null;
  let b2: NodeProcess | null = null;
  try {
    const { port } = await b.event('listening');
    a = new NodeProcess(['--dir', join(w.dir, 'a'), '--role', 'primary', '--peer', `127.0.0.1:${port}`, '--secret-file', w.secret, '--metrics', '127.0.0.1:0']);
    const { port: mport } = await a.event('metrics');
    await a.event('connected');
    const metrics = async () => {
      const r = await scrape(mport as number);
      assert.is(r.status, 200);
      assert.match(r.type, /^text\/plain; version=0\.0\.4/);
      return parseMetrics(r.body);
    };
    await waitFor('the handshake', async () => (await metrics()).get('twinpage_connected') === 1);
    let m = await metrics();
    assert.is(m.get('twinpage_role{role="primary"}'), 1);
    assert.is(m.get('twinpage_role{role="secondary"}'), 0);
    assert.is(m.get('twinpage_health{health="ok"}'), 1);
    assert.is(m.get('twinpage_quorum'), 1);
    assert.is(m.get('twinpage_writes_total'), 0);
    assert.is(m.get('twinpage_write_ack_seconds_count'), 0);
    assert.ok(m.has('process_cpu_user_seconds_total') && m.has('nodejs_eventloop_lag_seconds'), 'Node\'s process metrics too');

    const alloc = await a.send({ cmd: 'allocate', size: 32 * 4096 });
    const id = (alloc.block as { id: string }).id;
    for (let i = 0; i < 5; i++) assert.ok((await a.send({ cmd: 'write', block: id, offset: i * 4096, data: b64(4096, i + 1) })).ok);
    m = await metrics();
    assert.is(m.get('twinpage_writes_total'), 5);
    assert.is(m.get('twinpage_written_bytes_total'), 5 * 4096);
    assert.is(m.get('twinpage_write_ack_seconds_count'), 5);
    assert.ok(m.get('twinpage_write_ack_seconds_sum')! > 0);
    assert.is(m.get('twinpage_write_ack_seconds_bucket{le="+Inf"}'), 5);
    assert.ok(m.get('twinpage_pages_sent_total{method="message"}')! >= 5);
    assert.is(m.get('twinpage_blocks'), 1);

    // The partner goes: degraded, pages lag, a disconnect counted.
    await b.close();
    await waitFor('degraded', async () => (await metrics()).get('twinpage_health{health="degraded"}') === 1);
    for (let i = 0; i < 8; i++) assert.ok((await a.send({ cmd: 'write', block: id, offset: (8 + i) * 4096, data: b64(4096, 9) })).ok);
    m = await metrics();
    assert.is(m.get('twinpage_connected'), 0);
    assert.is(m.get('twinpage_disconnects_total'), 1);
    assert.ok(m.get('twinpage_lag_pages')! >= 8, `lag ${m.get('twinpage_lag_pages')}`);
    assert.is(m.get('twinpage_writes_total'), 13);

    // Back: resynced, lag 0.
    b2 = new NodeProcess(['--dir', join(w.dir, 'b'), '--role', 'secondary', '--listen', `127.0.0.1:${port}`, '--secret-file', w.secret]);
    await waitFor('the resync', async () => {
      const x = await metrics();
      // (A page leaves the lag when it is sent; it counts as resynced once acknowledged.)
      return x.get('twinpage_connected') === 1 && x.get('twinpage_lag_pages') === 0 && x.get('twinpage_health{health="ok"}') === 1
        && x.get('twinpage_resynced_pages_total')! >= 8;
    });
    m = await metrics();
    assert.is(m.get('twinpage_read_repairs_total'), 0);

    const other = await scrape(mport as number, '/');
    assert.is(other.status, 404);
    const status = await statusOf(join(w.dir, 'a'));
    assert.is(status.settings.metrics, `127.0.0.1:${mport}`);
    await a.close();
    await b2.close();
  } finally {
    await a?.kill();
    await b.kill();
    await b2?.kill();
    await w.done();
  }
});

test.run();
