// The twinpage command: every command's help, bad arguments (a clear message,
// exit 2, no stack trace), runtime errors (exit 1, stack only with --verbose),
// inspect on the format fixture (and that it changes nothing), status and
// verify against running `serve` processes (and against a fake node on the
// control socket, for the differences case), serve's lifecycle (control
// socket, stale sockets, signals, --no-stdin, resync events), and bench.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openMemory } from '../bindings/index.js';
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

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/format-v1', import.meta.url));
const STACK = /\n\s+at /;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every file's name and SHA-256: a folder's contents, to compare before and after. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) out[name] = createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
  return out;
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 15000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// --- help --------------------------------------------------------------------------

test('twinpage --help lists every command; no command is exit 2', async () => {
  const r = await run('--help');
  assert.is(r.status, 0);
  for (const c of ['demo', 'serve', 'status', 'verify', 'inspect', 'bench']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
  const none = await run();
  assert.is(none.status, 2);
  assert.match(none.stderr, /usage: twinpage <command>/);
  const v = await run('--version');
  assert.is(v.status, 0);
  assert.is(v.stdout.trim(), JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')).version);
});

test("every command's --help exits 0 and names its options", async () => {
  const options: Record<string, string[]> = {
    serve: ['--dir', '--role', '--listen', '--peer', '--secret-file', '--page-size', '--cache-mb', '--copy', '--exchange', '--exchange-mb', '--extent-pages', '--intent-extents', '--no-stdin', '--tls-cert', '--tls-key', '--tls-ca', '--insecure-plaintext', '--verbose'],
    status: ['--dir', '--json', '--timeout', '--verbose'],
    verify: ['--dir', '--json', '--timeout', '--verbose'],
    inspect: ['--dir', '--json', '--verbose'],
    bench: ['--seconds', '--dir', '--json', '--verbose'],
  };
  const runs = await Promise.all(Object.keys(options).map((c) => run(c, '--help')));
  Object.entries(options).forEach(([c, opts], i) => {
    const r = runs[i];
    assert.is(r.status, 0, `${c} --help: exit ${r.status}`);
    assert.match(r.stdout, new RegExp(`^usage: twinpage ${c}`));
    for (const o of opts) assert.ok(r.stdout.includes(o), `${c} --help mentions ${o}`);
  });
  const demo = await run('demo', '--help');
  assert.is(demo.status, 0, `demo --help: exit ${demo.status}: ${demo.stderr}`);
  assert.match(demo.stdout, /twinpage demo/);
  const viaHelp = await run('help', 'inspect');
  assert.is(viaHelp.status, 0);
  assert.match(viaHelp.stdout, /usage: twinpage inspect/);
});

// --- bad arguments and errors -------------------------------------------------------

test('bad arguments: exit 2 with a clear message, no stack trace, for each command', async () => {
  const serve = ['serve', '--dir', 'x', '--role', 'primary', '--secret-file', 'f'];
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--frob'], /unknown command "--frob"/],
    [['serve'], /--role is required/],
    [['serve', '--dir', 'x', '--role', 'boss', '--listen', 'h:1', '--secret-file', 'f'], /--role must be primary or secondary/],
    [[...serve, '--listen', 'nohostport'], /--listen must be HOST:PORT/],
    [[...serve, '--listen', 'h:1', '--peer', 'h:2'], /exactly one of --listen and --peer/],
    [[...serve, '--listen', 'h:99999'], /--listen must be HOST:PORT/],
    [[...serve, '--listen', 'h:1', '--copy', 'shared'], /--copy must be auto, message or storage/],
    [[...serve, '--listen', 'h:1', '--copy', 'storage'], /--copy storage needs --exchange/],
    [[...serve, '--listen', 'h:1', '--page-size', '1000'], /--page-size must be a power of two/],
    [[...serve, '--listen', 'h:1', '--cache-mb', '0'], /--cache-mb must be a whole number/],
    [[...serve, '--listen', 'h:1', 'stray'], /unexpected argument "stray"/],
    [['status'], /--dir is required/],
    [['status', '--dir'], /--dir needs a value/],
    [['status', '--dir', 'x', '--bogus'], /unknown option --bogus/],
    [['status', '--dir', 'x', '--timeout', 'soon'], /--timeout must be a number/],
    [['verify'], /--dir is required/],
    [['verify', '--dir', 'x', '--json=yes'], /--json takes no value/],
    [['verify', '--dir', 'x', '--timeout', '0'], /--timeout must be a number above 0/],
    [['inspect'], /--dir is required/],
    [['inspect', '--dir', 'a', '--dir', 'b'], /--dir is given twice/],
    [['inspect', 'folder'], /unexpected argument "folder"/],
    [['bench', '--seconds', '0'], /--seconds must be a number above 0/],
    [['bench', '--seconds', 'abc'], /--seconds must be a number/],
    [['bench', '--seconds', '61'], /at most 60/],
    [['bench', '--fast'], /unknown option --fast/],
  ];
  const runs = await Promise.all(cases.map(([args]) => run(...args)));
  cases.forEach(([args, message], i) => {
    const r = runs[i];
    const what = `twinpage ${args.join(' ')}`;
    assert.is(r.status, 2, `${what}: exit ${r.status}; ${r.stderr}`);
    assert.match(r.stderr, message, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /^twinpage/, what);
    assert.not.match(r.stderr, STACK, `${what}: no stack trace`);
    assert.is(r.stdout, '', `${what}: nothing on stdout`);
  });
});

test('runtime errors: exit 1 with the code, the stack only with --verbose', async () => {
  const missing = await run('serve', '--dir', join(tmpdir(), 'twinpage-cli-test'), '--role', 'primary', '--peer', '127.0.0.1:1', '--secret-file', '/nonexistent/secret');
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /^twinpage: NOT_FOUND: read the secret file \/nonexistent\/secret/);
  assert.not.match(missing.stderr, STACK);
  const plain = await run('inspect', '--dir', '/nonexistent/folder');
  assert.is(plain.status, 1);
  assert.match(plain.stderr, /^twinpage: NOT_FOUND: /);
  assert.not.match(plain.stderr, STACK);
  const verbose = await run('inspect', '--dir', '/nonexistent/folder', '--verbose');
  assert.is(verbose.status, 1);
  assert.match(verbose.stderr, STACK);
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  try {
    const empty = await run('inspect', '--dir', dir);
    assert.is(empty.status, 1);
    assert.match(empty.stderr, /holds no twinpage store/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// --- inspect --------------------------------------------------------------------------

test('inspect on the format-v1 fixture: its known values, and not a byte changed', async () => {
  const expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as { pageSize: number; blocks: Array<{ id: string; length: number; policy: string }> };
  const before = await snapshot(FIXTURE);
  const human = await run('inspect', '--dir', FIXTURE);
  const json = await run('inspect', '--dir', FIXTURE, '--json');
  assert.equal(await snapshot(FIXTURE), before, 'the fixture is unchanged');
  assert.is(human.status, 0, human.stderr);
  assert.is(json.status, 0, json.stderr);

  const r = JSON.parse(json.stdout);
  assert.is(r.superblock.version, 1);
  assert.is(r.superblock.pageSize, expected.pageSize);
  assert.is(r.superblock.nodeId, 'f86b4745-2d6d-4846-81d8-8680f6b7efd9');
  assert.is(r.superblock.created, '2026-11-21T23:16:22.271Z');
  assert.is(r.superblock.sequence, 4);
  assert.is(r.superblock.walEpoch, 2);
  assert.equal(r.superblock.slots, [{ slot: 0, valid: true, sequence: 4 }, { slot: 1, valid: true, sequence: 3 }]);
  assert.is(r.generations, null);
  assert.is(r.journal.name, 'wal.2');
  assert.is(r.journal.tail, 'none');
  assert.equal(r.blocks.map((b: { id: string; length: number; policy: { name: string } }) => ({ id: b.id, length: b.length, policy: b.policy.name })),
    expected.blocks.map((b) => ({ id: b.id, length: b.length, policy: b.policy })));
  assert.equal(r.blocks.map((b: { base: number; pages: number }) => [b.base, b.pages]), [[0, 2], [2, 10], [13, 7]]);
  assert.equal(r.outOfSync, { lag: null, lagPages: 0, blocks: [], intents: [], extentPages: null });
  assert.equal(r.problems, []);
  assert.is(r.live, false);

  const t = human.stdout;
  assert.match(t, /format version\s+1\n/);
  assert.match(t, /page size\s+512 bytes/);
  assert.match(t, /node id\s+f86b4745-2d6d-4846-81d8-8680f6b7efd9/);
  assert.match(t, /created\s+2026-11-21T23:16:22\.271Z/);
  assert.match(t, /sequence\s+4 /);
  assert.match(t, /generations\n  none/);
  assert.match(t, /blocks: 3 /);
  assert.match(t, /47b34e42-e5b5-4dd6-9333-da90afd8ca29\s+0\s+2\s+1000\s+small \(disk, write-back\)/);
  assert.match(t, /77e41839-eb8b-42f6-bcac-2b9cdd9f4b6f\s+2\s+10\s+5000\s+large \(disk, write-through\)/);
  assert.match(t, /772c1422-6011-41a1-9640-d36c81b078f9\s+13\s+7\s+3333\s+large/);
  assert.match(t, /lagging pages\s+none/);
  assert.match(t, /write intents\s+none/);
});

test("inspect shows the mirror's generations, lagging runs and write intents", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  try {
    const memory = await openMemory({ store: dir, flushIntervalMs: 0 });
    const block = await memory.allocate(100000);
    await memory.setMeta({
      mirror: {
        generation: '00112233445566aa', history: ['99887766554433bb'], lag: [[10, 3], [40, 1]],
        blocks: [block.id], intents: [0, 2], extentPages: 128, clean: false,
      },
    });
    await memory.close();
    const before = await snapshot(dir);
    const json = await run('inspect', '--dir', dir, '--json');
    const human = await run('inspect', '--dir', dir);
    assert.equal(await snapshot(dir), before, 'the folder is unchanged');
    assert.is(json.status, 0, json.stderr);
    const r = JSON.parse(json.stdout);
    assert.equal(r.generations, { generation: '00112233445566aa', history: ['99887766554433bb'], clean: false, bitmapGeneration: null, epoch: 0, partner: null, inconsistent: false });
    assert.equal(r.outOfSync, { lag: [[10, 3], [40, 1]], lagPages: 4, blocks: [block.id], intents: [0, 2], extentPages: 128 });
    assert.equal(r.blocks.map((b: { id: string; base: number; pages: number; length: number }) => [b.id, b.base, b.pages, b.length]), [[block.id, block.base, 25, 100000]]);
    const t = human.stdout;
    assert.match(t, /generation\s+00112233445566aa/);
    assert.match(t, /history\s+99887766554433bb/);
    assert.match(t, /closed cleanly\s+no/);
    assert.match(t, /lagging pages\s+4 in 2 runs: 10-12, 40/);
    assert.match(t, new RegExp(`lagging blocks\\s+${block.id}`));
    assert.match(t, /write intents\s+2 hot extents of 128 pages: 0 \(pages 0-127\), 2 \(pages 256-383\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// --- status and verify ------------------------------------------------------------------

test('status and verify against a running pair; degraded, resync events, back in sync', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'cli test secret\n', { mode: 0o600 });
  const dirA = join(dir, 'a');
  const dirB = join(dir, 'b');
  const nodeArgs = (d: string, role: string, link: string[]) => ['--dir', d, '--role', role, ...link, '--secret-file', secret];
  let b = new NodeProcess(nodeArgs(dirB, 'secondary', ['--listen', '127.0.0.1:0']));
  let a: NodeProcess | null = null;
  try {
    const { port, nodeId: idB } = await b.event('listening');
    a = new NodeProcess(nodeArgs(dirA, 'primary', ['--peer', `127.0.0.1:${port}`]));
    await a.event('connected');
    await b.event('connected');
    assert.is((await a.event('control')).path, join(dirA, 'control.sock'));

    const alloc = await a.send({ cmd: 'allocate', size: 16 * 4096 });
    assert.ok(alloc.ok, JSON.stringify(alloc));
    const id = (alloc.block as { id: string }).id;
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 0, data: Buffer.alloc(3 * 4096, 7).toString('base64') })).ok);

    const [sa, sb] = await Promise.all([run('status', '--dir', dirA), run('status', '--dir', dirB, '--json')]);
    assert.is(sa.status, 0, sa.stderr);
    assert.match(sa.stdout, /role\s+primary/);
    assert.match(sa.stdout, /health\s+ok/);
    assert.match(sa.stdout, /connected\s+yes/);
    assert.match(sa.stdout, /blocks\s+1 \(64 KiB\)/);
    assert.is(sb.status, 0, sb.stderr);
    const jb = JSON.parse(sb.stdout);
    assert.is(jb.nodeId, idB);
    assert.is(jb.sense.role, 'secondary');
    assert.is(jb.sense.connected, true);
    assert.is(jb.blocks, 1);

    const va = await run('verify', '--dir', dirA);
    assert.is(va.status, 0, va.stdout + va.stderr);
    assert.match(va.stdout, /compared 1 blocks, 16 pages with the partner: no differences/);
    const vb = await run('verify', '--dir', dirB, '--json');
    assert.is(vb.status, 0, vb.stderr);
    assert.equal(JSON.parse(vb.stdout), { blocks: 1, pages: 16, differences: [] });

    // A node already serves these folders: a second one is refused before it opens anything.
    const twice = await run(...['serve', ...nodeArgs(dirA, 'primary', ['--peer', '127.0.0.1:1'])]);
    assert.is(twice.status, 1);
    assert.match(twice.stderr, /^twinpage: BUSY: a node is already serving/);

    // B goes: A carries on degraded and knows what B lacks.
    await b.close();
    await a.event('disconnected');
    for (let p = 3; p < 9; p++) assert.ok((await a.send({ cmd: 'write', block: id, offset: p * 4096, data: Buffer.alloc(4096, p).toString('base64') })).ok);
    const degraded = JSON.parse((await run('status', '--dir', dirA, '--json')).stdout);
    assert.is(degraded.sense.health, 'degraded');
    assert.is(degraded.sense.connected, false);
    assert.ok(degraded.sense.lagPages >= 6, `lagging ${degraded.sense.lagPages}`);
    const alone = await run('verify', '--dir', dirA);
    assert.is(alone.status, 1);
    assert.match(alone.stderr, /not connected to its partner/);
    const gone = await run('status', '--dir', dirB);
    assert.is(gone.status, 1);
    assert.match(gone.stderr, /no node is running on/);

    // B comes back on the same port: A resyncs it, with progress events.
    const seen = a.events.length;
    b = new NodeProcess(nodeArgs(dirB, 'secondary', ['--listen', `127.0.0.1:${port}`]));
    await b.event('connected');
    const progress = await a.event('resync', 15000, seen);
    assert.ok(Number.isSafeInteger(progress.done) && Number.isSafeInteger(progress.total) && (progress.total as number) > 0, JSON.stringify(progress));
    await waitFor('the resync', async () => {
      const s = (await a!.send({ cmd: 'sense' })).sense as { lagPages: number; connected: boolean; health: string };
      return s.connected && s.lagPages === 0 && s.health === 'ok';
    });
    const last = a.events.filter((e) => e.event === 'resync').at(-1)!;
    assert.is(last.done, last.total);
    const again = await run('verify', '--dir', dirA);
    assert.is(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /no differences/);

    await Promise.all([a.close(), b.close()]);
    assert.not.ok(existsSync(join(dirA, 'control.sock')), 'the control socket is removed at close');
    const after = await run('status', '--dir', dirA);
    assert.is(after.status, 1);
    assert.match(after.stderr, /^twinpage: NOT_FOUND: no node is running on/);
  } finally {
    await a?.kill();
    await b.kill();
    await rm(dir, { recursive: true, force: true });
  }
});

test('status and verify speak the control protocol: differences are exit 1, refusals and silence are errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  let mode: 'differ' | 'refuse' | 'silent' = 'differ';
  const asked: string[] = [];
  const server = createServer((socket) => {
    createInterface({ input: socket }).on('line', (line) => {
      const c = JSON.parse(line) as { id: number; cmd: string };
      asked.push(c.cmd);
      if (mode === 'silent') return;
      if (mode === 'refuse') { socket.write(JSON.stringify({ id: c.id, ok: false, code: 'CLOSED', error: 'this memory is closed' }) + '\n'); return; }
      const reply = c.cmd === 'status'
        ? { status: { nodeId: 'n', pid: 1, dir, pageSize: 4096, sense: { role: 'primary', health: 'ok', generation: 'g', history: [], connected: true, inFlight: 0, lagPages: 0, lastApplied: 0 }, stats: null, blocks: 2, blockBytes: 8192, space: { cache: { total: 4096, free: 4096, dirty: 0 } } } }
        : { verify: { blocks: 2, pages: 9, differences: [{ blockId: 'b1', page: 3 }, { blockId: 'b1', page: 7 }, { blockId: 'b2', page: -1 }] } };
      socket.write(JSON.stringify({ id: c.id, ok: true, ...reply }) + '\n');
    });
  });
  await new Promise<void>((r) => server.listen(join(dir, 'control.sock'), r));
  try {
    const human = await run('verify', '--dir', dir);
    assert.is(human.status, 1);
    assert.match(human.stdout, /compared 2 blocks, 9 pages with the partner: 3 differences/);
    assert.match(human.stdout, /block b1: pages 3, 7/);
    assert.match(human.stdout, /block b2: missing on the partner/);
    const json = await run('verify', '--dir', dir, '--json');
    assert.is(json.status, 1);
    assert.is(JSON.parse(json.stdout).differences.length, 3);
    assert.equal(asked, ['status', 'verify', 'status', 'verify']);
    const status = await run('status', '--dir', dir);
    assert.is(status.status, 0, status.stderr);
    assert.match(status.stdout, /health\s+ok/);

    mode = 'refuse';
    const refused = await run('status', '--dir', dir);
    assert.is(refused.status, 1);
    assert.match(refused.stderr, /^twinpage: CLOSED: this memory is closed/);
    mode = 'silent';
    const silent = await run('status', '--dir', dir, '--timeout', '0.3');
    assert.is(silent.status, 1);
    assert.match(silent.stderr, /did not answer within 0.3 s/);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});

test('serve: a stale control socket is replaced; SIGTERM closes; --no-stdin runs until a close on the control socket', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'cli test secret\n', { mode: 0o600 });
  const data = join(dir, 'node');
  const args = ['--dir', data, '--role', 'primary', '--peer', '127.0.0.1:1', '--secret-file', secret];
  const procs: NodeProcess[] = [];
  try {
    // --no-stdin: the end of standard input does not stop it.
    const p1 = new NodeProcess([...args, '--no-stdin']);
    procs.push(p1);
    await p1.event('started');
    p1.proc.stdin!.end();
    await sleep(300);
    const s1 = await run('status', '--dir', data);
    assert.is(s1.status, 0, s1.stderr);
    assert.match(s1.stdout, /health\s+degraded/);
    assert.match(s1.stdout, /connected\s+no/);
    // SIGKILL leaves the socket behind.
    await p1.kill();
    assert.ok(lstatSync(join(data, 'control.sock')).isSocket());
    const stale = await run('status', '--dir', data);
    assert.is(stale.status, 1);
    assert.match(stale.stderr, /no node is running/);

    // A new node replaces the stale socket; SIGTERM closes it cleanly.
    const p2 = new NodeProcess(args);
    procs.push(p2);
    await p2.event('started');
    assert.is((await run('status', '--dir', data)).status, 0);
    p2.proc.kill('SIGTERM');
    assert.is(await p2.exited, 0, p2.stderr);
    assert.not.ok(existsSync(join(data, 'control.sock')));
    const clean = JSON.parse((await run('inspect', '--dir', data, '--json')).stdout);
    assert.is(clean.generations.clean, true, 'closed cleanly');

    // Closed from the control socket.
    const p3 = new NodeProcess([...args, '--no-stdin']);
    procs.push(p3);
    await p3.event('started');
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(join(data, 'control.sock'), () => s.write('{"id":9,"cmd":"close"}\n'));
      s.setEncoding('utf8');
      let got = '';
      s.on('data', (d) => { got += d; if (got.includes('\n')) { s.destroy(); resolve(got.trim()); } });
      s.on('error', reject);
    });
    assert.equal(JSON.parse(reply), { id: 9, ok: true });
    assert.is(await p3.exited, 0, p3.stderr);
  } finally {
    for (const p of procs) await p.kill();
    await rm(dir, { recursive: true, force: true });
  }
});

test('serve --copy storage --exchange FILE: pages travel through the shared file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twinpage-cli-'));
  const secret = join(dir, 'secret');
  await writeFile(secret, 'cli test secret\n', { mode: 0o600 });
  const copy = ['--secret-file', secret, '--copy', 'storage', '--exchange', join(dir, 'exchange'), '--exchange-mb', '1'];
  const b = new NodeProcess(['--dir', join(dir, 'b'), '--role', 'secondary', '--listen', '127.0.0.1:0', ...copy]);
  let a: NodeProcess | null = null;
  try {
    const { port } = await b.event('listening');
    a = new NodeProcess(['--dir', join(dir, 'a'), '--role', 'primary', '--peer', `127.0.0.1:${port}`, ...copy]);
    await a.event('connected');
    const alloc = await a.send({ cmd: 'allocate', size: 8 * 4096 });
    const id = (alloc.block as { id: string }).id;
    assert.ok((await a.send({ cmd: 'write', block: id, offset: 0, data: Buffer.alloc(8 * 4096, 9).toString('base64') })).ok);
    const s = JSON.parse((await run('status', '--dir', join(dir, 'a'), '--json')).stdout);
    assert.is(s.stats.copy, 'storage');
    assert.is(s.stats.pages.storage, 8);
    assert.is(s.stats.pages.message, 0);
    const v = await run('verify', '--dir', join(dir, 'b'));
    assert.is(v.status, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /8 pages with the partner: no differences/);
    await Promise.all([a.close(), b.close()]);
  } finally {
    await a?.kill();
    await b.kill();
    await rm(dir, { recursive: true, force: true });
  }
});

// --- bench -------------------------------------------------------------------------------

test('bench: one node against a pair of processes, with ratio lines; --json', async () => {
  const [human, json] = await Promise.all([run('bench', '--seconds', '0.2'), run('bench', '--seconds', '0.2', '--json')]);
  assert.is(human.status, 0, human.stderr);
  assert.match(human.stdout, /^ratio mirror\.write_memory \d+\.\d\d$/m);
  assert.match(human.stdout, /^ratio mirror\.write_disk \d+\.\d\d$/m);
  assert.match(human.stdout, /verify: \d+ pages compared with the secondary, no differences/);
  assert.is(json.status, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.is(r.cases.length, 4);
  for (const c of r.cases) assert.ok(c.writes > 0 && c.writesPerSec > 0, JSON.stringify(c));
  assert.ok(r.ratios['mirror.write_memory'] > 0 && r.ratios['mirror.write_disk'] > 0);
  assert.is(r.verify.differences, 0);
});

test.run();
