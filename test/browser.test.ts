// twinpage in a real browser: Chromium, headless, driven by playwright-core.
// The system's Chromium when there is one, else the one an npm devDependency
// ships (see browser/chromium.ts); no browser is downloaded. Two ways in:
//   esm     the page and its workers import build/bindings/index.js by URL, unbundled
//   bundle  esbuild bundles entries that import 'twinpage' (platform browser, format esm)
// For each: a pair of nodes in two dedicated workers over a MessagePort, both
// ends given one SharedArrayBuffer (the `shared` copy method, which needs the
// page cross-origin isolated: COOP same-origin + COEP require-corp), each on
// its own OPFS folder. The primary writes in parallel streams and its worker
// is terminated mid-stream; the promoted secondary must hold every chunk the
// page saw acknowledged (and no torn chunk); then the page reloads and the
// survivor's OPFS store, reopened, must hold them still.
//
// The static files are served from the source tree (test/browser, build/bindings)
// and the esbuild output, by a node:http server on 127.0.0.1, port 0, with no
// import map: the unbundled package must load by URL alone (workers have no
// import maps). No Chromium to be had fails the tests, saying why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { chromiumForTests, type Chromium } from './browser/chromium.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // build/test/.. /..: the repository
const SERVED = ['test/browser/', 'build/bindings/'];
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json', '.json': 'application/json', '.wasm': 'application/wasm',
};

const CHUNK = 6000; // bytes per chunk: chunks straddle 4 KiB pages
const CHUNKS = 400; // chunks the block has room for
const FIRST = 8; // chunks 0..7 are written one by one before the stream
const KILL_AFTER = 40; // acknowledgements the page sees before it kills the primary
const POST = CHUNKS - 1; // the chunk the promoted node writes
const STEP_MS = 30_000; // any one step of a test

let server: Server | null = null;
let base = '';
let bundleDir = '';
let userDataDir = '';
let context: BrowserContext | null = null;
let browserBinary: Chromium | null = null;
let noBrowser = 'the Chromium was not looked for';
const logs: string[] = [];

function requireChromium(): Chromium {
  if (!browserBinary) assert.unreachable(`no browser to drive: ${noBrowser}`);
  return browserBinary!;
}

async function within<T>(what: string, promise: Promise<T>, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms\n${recentLogs()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const recentLogs = () => (logs.length ? `browser console:\n  ${logs.slice(-30).join('\n  ')}` : '(browser console empty)');

async function bundle(): Promise<string> {
  const outdir = await mkdtemp(join(tmpdir(), 'twinpage-bundle-'));
  try {
    await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: {
        'worker-bundle': 'test/browser/worker-bundle.js',
        'page-bundle': 'test/browser/page-bundle.js',
      },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      outdir,
      logLevel: 'silent',
    });
  } catch (err) {
    await rm(outdir, { recursive: true, force: true });
    const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors ?? [];
    const detail = errors.map((e) => `  ${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`).join('\n');
    throw new Error(`esbuild could not bundle 'twinpage' for the browser:\n${detail || String(err)}`);
  }
  return outdir;
}

function serve(): Promise<Server> {
  const s = createServer(async (req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    let file: string | null = null;
    if (path.startsWith('bundle/')) file = join(bundleDir, path.slice('bundle/'.length));
    else if (SERVED.some((p) => path.startsWith(p))) file = join(ROOT, path);
    const inside = file && !normalize(path).split(sep).includes('..');
    try {
      if (!file || !inside) throw new Error('not served');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      res.end(`not found: /${path}`);
    }
  });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

async function browser(): Promise<BrowserContext> {
  const binary = requireChromium();
  if (context) return context;
  userDataDir = await mkdtemp(join(tmpdir(), 'twinpage-chromium-'));
  context = await within(`launching ${binary.description}`, chromium.launchPersistentContext(userDataDir, {
    executablePath: binary.executablePath,
    env: binary.env,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  }));
  return context;
}

async function openPage(variant: 'esm' | 'bundle'): Promise<Page> {
  const ctx = await browser();
  const page = await ctx.newPage();
  page.on('console', (m) => logs.push(`[${variant} ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${variant} pageerror] ${e.message}`));
  page.on('worker', (w) => logs.push(`[${variant}] worker started: ${w.url()}`));
  await loadHarness(page, variant);
  return page;
}

/** Loads the harness page, or reloads it (`reload`: the page's workers die with it). */
async function loadHarness(page: Page, variant: string, reload = false): Promise<void> {
  const url = `${base}/test/browser/page.html?variant=${variant}`;
  await within(`${reload ? 'reloading' : 'loading'} ${url}`, reload ? page.reload() : page.goto(url));
  assert.is(page.url(), url);
  await within('the harness', page.waitForFunction(() => (window as any).harnessReady === true, null, { timeout: STEP_MS }));
}

/** Calls window.harness[fn](arg) in the page; errors carry the browser console. */
async function harness<T = any>(page: Page, fn: string, arg: unknown = {}): Promise<T> {
  try {
    return await within(`harness.${fn}`, page.evaluate(([f, a]) => (window as any).harness[f as string](a), [fn, arg] as const)) as T;
  } catch (err) {
    throw new Error(`harness.${fn}(${JSON.stringify(arg)}): ${(err as Error).message}\n${recentLogs()}`);
  }
}

test.before(async () => {
  bundleDir = await bundle().catch((err) => { logs.push(String(err.message)); return ''; });
  try {
    browserBinary = await chromiumForTests();
    console.log(`  browser: ${browserBinary.description}`);
  } catch (err) {
    noBrowser = (err as Error).message; // the browser tests fail with the reason
    return;
  }
  server = await serve();
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no server address');
  base = `http://127.0.0.1:${address.port}`;
});

test.after(async () => {
  await context?.close().catch(() => {});
  context = null;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await esbuild.stop();
  if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

test('a Chromium to drive: CHROMIUM_PATH, /usr/bin/chromium, or the one @sparticuz/chromium ships', () => {
  requireChromium();
});

/**
 * The modules a browser (or a bundler, which follows literal dynamic imports
 * too) loads from `entry`, and every import that is a node: module or a bare
 * specifier (which a worker cannot resolve: workers have no import maps).
 */
async function browserImportGraph(entry: string): Promise<{ files: number; bad: string[] }> {
  const IMPORT = /(?:^|[;\n])\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[;\n])\s*import\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  const seen = new Set<string>();
  const bad: string[] = [];
  const visit = async (file: string, chain: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const here = [...chain, file.slice(ROOT.length)];
      if (spec.startsWith('./') || spec.startsWith('../')) await visit(fileURLToPath(new URL(spec, `file://${file}`)), here);
      else bad.push(`${spec}  (imported by ${here.join(' -> ')})`);
    }
  };
  await visit(join(ROOT, entry), []);
  return { files: seen.size, bad };
}

test('the browser entry (build/bindings/index.js) imports no node: module and no bare specifier', async () => {
  const { files, bad } = await browserImportGraph('build/bindings/index.js');
  assert.ok(files > 10, `followed ${files} files`);
  assert.equal(bad, [], `the browser entry must load unbundled by URL alone:\n  ${bad.join('\n  ')}`);
});

test('esbuild bundles twinpage for the browser (no node: modules)', () => {
  assert.ok(bundleDir, logs.join('\n'));
});

for (const variant of ['esm', 'bundle'] as const) {
  test(`${variant}: a worker pair over a MessagePort with a SharedArrayBuffer on OPFS survives the primary's death and a reload`, async () => {
    requireChromium();
    if (variant === 'bundle') assert.ok(bundleDir, `no bundle: ${logs.join('\n')}`);
    const page = await openPage(variant);
    try {
      const env = await harness(page, 'environment');
      assert.ok(env.crossOriginIsolated, 'the page is cross-origin isolated (COOP/COEP)');
      assert.ok(env.sharedArrayBuffer && env.opfs, `SharedArrayBuffer and OPFS are there: ${JSON.stringify(env)}`);

      // The package in the page's main thread.
      assert.equal(await harness(page, 'mainThread'), [0, 7, 8, 9, 0]);

      // The pair. The bundled variant asks for `shared`; the unbundled one leaves `auto` to pick it.
      const dirA = `twinpage-${variant}-a`, dirB = `twinpage-${variant}-b`;
      const copy = variant === 'bundle' ? 'shared' : undefined;
      const opened = await harness(page, 'startPair', {
        dirA, dirB, copy, sharedBytes: 16 << 20, chunkBytes: CHUNK, heartbeatMs: 200, timeoutMs: 1000,
      });
      assert.ok(opened.a.crossOriginIsolated && opened.b.crossOriginIsolated, 'both workers are cross-origin isolated');

      const call = <T = any>(name: string, cmd: string, args: object = {}) => harness<T>(page, 'call', { name, cmd, args });
      const id = await call<string>('a', 'allocate', { size: 200 + CHUNKS * CHUNK });

      // Chunks written one by one: each resolves once b holds it (disk durability, the default policy).
      for (let i = 0; i < FIRST; i++) await call('a', 'write', { id, i });
      const stats = await call('a', 'stats');
      assert.is(stats.copy, 'shared', `the pair copies through the SharedArrayBuffer: ${JSON.stringify(stats)}`);
      assert.ok(stats.pages.shared >= FIRST, `pages went through the SharedArrayBuffer: ${JSON.stringify(stats)}`);
      assert.equal((await call('a', 'sense')).role, 'primary');

      // Parallel streams of writes; the primary's worker dies after the page has seen KILL_AFTER acknowledgements.
      const { acked } = await harness<{ acked: number[] }>(page, 'streamAndKill', {
        name: 'a', id, first: FIRST, count: CHUNKS - 1 - FIRST, streams: 4, killAfter: KILL_AFTER,
      });
      assert.is(acked.length, KILL_AFTER);

      // b takes over: every acknowledged chunk is there, whole; the rest are whole or untouched, never torn.
      const promoted = await call('b', 'promote');
      assert.is(promoted.role, 'primary');
      const must = [...Array(FIRST).keys(), ...acked].sort((x, y) => x - y);
      const check = async (name: string, what: string) => {
        const r = await call<{ whole: number[]; zero: number[]; bad: number[] }>(name, 'check', { id, first: 0, count: CHUNKS });
        assert.equal(r.bad, [], `${what}: no torn or wrong chunk`);
        const missing = must.filter((i) => !r.whole.includes(i));
        assert.equal(missing, [], `${what}: every acknowledged chunk is whole`);
        return r;
      };
      const afterFailover = await check('b', 'after failover');
      assert.ok(afterFailover.whole.length >= FIRST + KILL_AFTER);

      // The new primary goes on (its partner is gone: degraded) and its write is durable on OPFS.
      await call('b', 'write', { id, i: POST });
      must.push(POST);

      // Reload: the workers die with the page; the survivor's OPFS folder, reopened, holds it all.
      await loadHarness(page, variant, true);
      const reopened = await harness(page, 'openSolo', { name: 'c', dir: dirB, chunkBytes: CHUNK });
      assert.ok(reopened.crossOriginIsolated);
      const blocks = await call<Array<{ id: string }>>('c', 'blocks');
      assert.ok(blocks.some((b) => b.id === id), 'the block is in the reopened store');
      const afterReload = await check('c', 'after reload');
      assert.equal(afterReload.whole, [...afterFailover.whole, POST].sort((x, y) => x - y), 'the chunks b held, and the one it wrote');

      // Cached reads in a worker, reported (a figure, never a timed assertion): readInto against read.
      const reads = await call<{ readInto: number; read: number; same: boolean }>('c', 'cachedReads', { id, i: POST, count: 20000 });
      assert.ok(reads.same, 'cached reads return the bytes written');
      process.stderr.write(`  ${variant}: cached 4 KiB reads in a Chromium worker: readInto ${reads.readInto.toLocaleString('en-US')}/s, read ${reads.read.toLocaleString('en-US')}/s\n`);
      await call('c', 'close');
    } finally {
      await page.close().catch(() => {});
    }
  });
}

test.run();
