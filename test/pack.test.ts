// Packaging: `npm pack` gives a tarball with the built JS, types and WASM only
// (no sources, tests, benchmarks or source maps), and that tarball, installed
// into an empty folder, works from Node the way a user would use it: the
// package's import and its `twinpage` command.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // build/test/../..: the repository
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** The environment without what `npm test` sets for its scripts (it would steer the npm run here). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

function sh(cmd: string, args: string[], cwd: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: 120000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve({ status: err ? (typeof code === 'number' ? code : -1) : 0, stdout, stderr });
    });
  });
}

let work = '';
let tarball = '';

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'twinpage-pack-'));
});

test.after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('npm pack: the built JS, types and WASM, the README and package.json; nothing else', async () => {
  // --ignore-scripts: 'prepare' would rebuild, and the build ran before the tests.
  const r = await sh(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT);
  assert.is(r.status, 0, r.stderr);
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(work, info.filename);
  const files = info.files.map((f) => f.path).sort();
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; bin: Record<string, string> };
  const allowed = (p: string) => /^build\/bindings\/.+\.(js|d\.ts)$/.test(p)
    || (p === 'build/core.wasm' && pkg.files.includes('build/core.wasm'))
    || p === 'README.md' || p === 'package.json' || /^LICEN[CS]E(\.\w+)?$/.test(p);
  assert.equal(files.filter((p) => !allowed(p)), [], 'only built JS, types, the WASM, README, package.json, LICENSE');
  for (const p of files) {
    assert.not.match(p, /^(test|bench|assembly|scripts|bindings)\//, `no sources: ${p}`);
    assert.not.match(p, /^build\/(test|bench)\//, `no built tests or benchmarks: ${p}`);
    assert.not.match(p, /\.map$/, `no source maps: ${p}`);
  }
  for (const p of ['package.json', 'README.md', 'build/bindings/index.js', 'build/bindings/index.d.ts', 'build/bindings/node.js',
    'build/bindings/node.d.ts', 'build/bindings/core/wasm-bytes.js', 'build/bindings/cli.js', 'build/bindings/cli/inspect.js']) {
    assert.ok(files.includes(p), `the tarball holds ${p}`);
  }
  assert.ok(files.includes(pkg.bin.twinpage.replace(/^\.\//, '')), 'the bin is in the tarball');
});

test('installed into an empty folder: imported from Node, and its twinpage command', async () => {
  assert.ok(tarball, 'the pack test ran first');
  const app = join(work, 'app');
  await mkdir(app);
  const init = await sh(NPM, ['init', '-y'], app);
  assert.is(init.status, 0, init.stderr);
  // @assemblyscript/loader, the one dependency, comes from the npm cache.
  const install = await sh(NPM, ['install', tarball, '--offline', '--no-audit', '--no-fund'], app);
  assert.is(install.status, 0, install.stdout + install.stderr);
  const installed = await readdir(join(app, 'node_modules', 'twinpage'));
  assert.not.ok(installed.includes('test') || installed.includes('bindings') || installed.includes('assembly'), installed.join(', '));

  await writeFile(join(app, 'use.mjs'), `
import { openMemory, TwinpageError } from 'twinpage';
const dir = process.argv[2];
const bytes = Uint8Array.from({ length: 10000 }, (_, i) => (i * 7 + 3) & 255);
let memory = await openMemory({ store: dir, cacheBytes: 1 << 20 });
const block = await memory.allocate(bytes.length);
await memory.write(block.id, 0, bytes);
await memory.close();
memory = await openMemory({ store: dir, cacheBytes: 1 << 20 });
const back = await memory.read(block.id, 0, bytes.length);
if (back.length !== bytes.length || back.some((b, i) => b !== bytes[i])) throw new Error('read back other bytes than written');
let refused = null;
try { await memory.read(block.id, 9999, 2); } catch (err) { refused = err instanceof TwinpageError ? err.code : String(err); }
await memory.close();
console.log(JSON.stringify({ ok: true, id: block.id, blocks: 1, refused }));
`);
  const data = join(work, 'data');
  const use = await sh(process.execPath, ['use.mjs', data], app);
  assert.is(use.status, 0, use.stderr);
  const result = JSON.parse(use.stdout);
  assert.is(result.ok, true);
  assert.is(result.refused, 'OUT_OF_RANGE');

  const help = await sh(NPX, ['--no', '--', 'twinpage', '--help'], app);
  assert.is(help.status, 0, help.stderr);
  assert.match(help.stdout, /usage: twinpage <command>/);
  for (const c of ['serve', 'status', 'verify', 'inspect', 'bench']) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'));
  const inspect = await sh(NPX, ['--no', '--', 'twinpage', 'inspect', '--dir', data, '--json'], app);
  assert.is(inspect.status, 0, inspect.stderr);
  assert.equal(JSON.parse(inspect.stdout).blocks.map((b: { id: string; length: number }) => [b.id, b.length]), [[result.id, 10000]]);
});

test.run();
