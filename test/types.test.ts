// The published declarations compile in a user's project: a browser project
// (bundler resolution, DOM, no @types/node) and a Node project (NodeNext,
// @types/node, no DOM), each with the oldest TypeScript the package supports
// (the `typescript-oldest` devDependency) and the newest (`typescript`).
//
// The package is laid out as `npm pack` would ship it: the files of
// `npm pack --dry-run` copied into a consumer's node_modules/twinpage, so the
// `exports` conditions and the `files` list are what is checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NPM, sh } from './sh.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // build/test/../..: the repository
const COMPILERS = ['typescript-oldest', 'typescript'] as const;
const VERSION: Record<string, string> = {};
for (const c of COMPILERS) {
  VERSION[c] = (JSON.parse(await readFile(join(ROOT, 'node_modules', c, 'package.json'), 'utf8')) as { version: string }).version;
}

let work = '';

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'twinpage-types-'));
});

test.after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function declarationFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await declarationFiles(path));
    else if (entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

// Typed arrays, DataView and Buffer became generic over their buffer in TypeScript 5.7
// (`Uint8Array<ArrayBuffer>`); a declaration naming one that way fails in every older compiler.
const GENERIC_BUFFER = /\b(?:(?:Ui|I)nt(?:8|16|32)Array|Uint8ClampedArray|Float(?:16|32|64)Array|Big(?:Ui|I)nt64Array|DataView|Buffer)\s*</;

test('the emitted declarations name no typed array, DataView or Buffer with a type argument (TypeScript 5.7+ only)', async () => {
  const files = await declarationFiles(join(ROOT, 'build', 'bindings'));
  assert.ok(files.length > 10, `found ${files.length} declaration files`);
  const bad: string[] = [];
  for (const file of files) {
    (await readFile(file, 'utf8')).split('\n').forEach((line, i) => {
      if (GENERIC_BUFFER.test(line)) bad.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.equal(bad, [], `annotate these in the source with the plain type (e.g. \`: Uint8Array\`):\n  ${bad.join('\n  ')}`);
});

/** Lays out the files `npm pack` would ship into `<work>/node_modules/twinpage` (once). */
let packed: Promise<string[]> | null = null;
function packedPackage(): Promise<string[]> {
  packed ??= (async () => {
    const r = await sh(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT);
    assert.is(r.status, 0, r.stderr);
    const [info] = JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>;
    const files = info.files.map((f) => f.path);
    const into = join(work, 'node_modules', 'twinpage');
    for (const f of files) {
      await mkdir(dirname(join(into, f)), { recursive: true });
      await copyFile(join(ROOT, f), join(into, f));
    }
    return files;
  })();
  return packed;
}

/** A consumer project in `<work>/<name>`: its tsconfig, package.json and one source file. */
async function consumer(name: string, tsconfig: object, source: string, withNodeTypes: boolean): Promise<string> {
  await packedPackage();
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: tsconfig, files: ['app.ts'] }, null, 2));
  await writeFile(join(dir, 'app.ts'), source);
  if (withNodeTypes) {
    await mkdir(join(dir, 'node_modules', '@types'), { recursive: true });
    await symlink(join(ROOT, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'), 'dir').catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    });
  }
  return dir;
}

/** Compiles the consumer in `dir` with the compiler package `compiler`; asserts no diagnostic at all. */
async function compiles(dir: string, compiler: string, what: string): Promise<void> {
  const tsc = join(ROOT, 'node_modules', compiler, 'bin', 'tsc');
  const r = await sh(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], dir);
  const out = (r.stdout + r.stderr).trim();
  assert.is(r.status, 0, `${what} does not compile with TypeScript ${VERSION[compiler]}:\n${out}`);
  assert.is(out, '', `${what}: the compiler said something`);
}

// skipLibCheck off: the package's own .d.ts files must check clean.
const STRICT = { target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, forceConsistentCasingInFileNames: true };

const BROWSER_APP = `
import {
  openMemory, openOpfsStore, messagePortTransport, MemoryStore, TwinpageError, Mirror, reconnecting,
  type Memory, type MirrorEvent, type MirroredMemory, type Transport, type Policy,
} from 'twinpage';
// @ts-expect-error connectTcp is Node's: the browser entry neither exports nor declares it
import { connectTcp } from 'twinpage';

/** A primary in a dedicated worker: OPFS, and a MessagePort with a SharedArrayBuffer to its partner. */
export async function worker(port: MessagePort, shared: SharedArrayBuffer): Promise<MirroredMemory> {
  const transport: Transport = messagePortTransport(port, { shared });
  const memory = await openMemory({
    store: await openOpfsStore('node-a'),
    cacheBytes: 16 << 20,
    mirror: { role: 'primary', transport, timeoutMs: 1000 },
  });
  const block = await memory.allocate(100);
  await memory.write(block.id, 0, new Uint8Array(100).fill(7));
  const back: Uint8Array = await memory.read(block.id, 0, 100);
  const mirror: Mirror = memory.mirror;
  console.log(back.length, mirror.stats().copy);
  // Events instead of polling sense(); a wait for a range that can be given up.
  const off: () => void = mirror.on('degraded', (d) => console.log(d.role, d.lagPages));
  mirror.addEventListener('resync-progress', (e) => console.log((e as MirrorEvent<'resync-progress'>).detail.done));
  const { done, total } = await mirror.once('resync-progress');
  off();
  const controller = new AbortController();
  const p = await memory.acquireRead(block.id, 0, 10, { signal: controller.signal });
  await p.release();
  console.log(done, total);
  return memory;
}

/** The main thread: a memory that keeps nothing across reloads. */
export async function page(): Promise<Memory> {
  try {
    return await openMemory({ store: new MemoryStore() });
  } catch (err) {
    if (err instanceof TwinpageError) console.log(err.code);
    throw err;
  }
}

export type { Policy };
`;

const NODE_APP = `
import { connectTcp, listenTcp, openMemory, reconnecting, type Transport, type TcpListener } from 'twinpage';

/** A pair over TCP on loopback, each side with a data folder. */
export async function pair(dir: string): Promise<void> {
  const secret = 'correct horse battery staple';
  let accepted: Transport | null = null;
  const listener: TcpListener = await listenTcp({ host: '127.0.0.1', port: 0, secret, nodeId: 'b' }, (t) => { accepted = t; });
  const transport = await connectTcp({ host: '127.0.0.1', port: listener.port, secret, nodeId: 'a' });
  const memory = await openMemory({ store: dir + '/a', mirror: { role: 'primary', transport } });
  const block = await memory.allocate(10);
  await memory.write(block.id, 0, Buffer.from('0123456789'));
  const bytes: Uint8Array = await memory.read(block.id, 0, 10);
  console.log(bytes.length, accepted !== null);
  const w = await memory.acquireWrite(block.id, 0, 10, { signal: AbortSignal.timeout(1000), overwrite: true });
  await w.release();
  memory.mirror.on('connected', ({ peer }) => console.log(peer));
  await memory.close();
  await listener.close();
  // A link that redials with backoff and attaches each new connection.
  const other = await openMemory({ store: dir + '/c', mirror: { role: 'secondary' } });
  const link = reconnecting(other.mirror, () => connectTcp({ host: '127.0.0.1', port: 7000, secret, nodeId: 'c' }), { maxDelayMs: 2000 });
  await link.close();
  await other.close();
}
`;

const DISPOSING_APP = `
import { openMemory, MemoryStore } from 'twinpage';

/** \`await using\`: the pointer is released, then the memory closed, at the end of the scope. */
export async function scoped(): Promise<number> {
  await using memory = await openMemory({ store: new MemoryStore() });
  const block = await memory.allocate(100);
  await using reader = await memory.acquireRead(block.id, 0, 100);
  return reader.read().length;
}
`;

test(`\`await using\` on a memory and a pointer compiles with TypeScript ${VERSION.typescript} (lib esnext.disposable), in a browser and a Node project`, async () => {
  const browser = await consumer('disposing-browser', {
    ...STRICT, module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2022', 'ESNext.Disposable', 'DOM'], types: [],
  }, DISPOSING_APP, false);
  await compiles(browser, 'typescript', 'the browser project with await using');
  const node = await consumer('disposing-node', {
    ...STRICT, module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'ESNext.Disposable'], types: ['node'],
  }, DISPOSING_APP, true);
  await compiles(node, 'typescript', 'the Node project with await using');
});

for (const compiler of COMPILERS) {
  test(`a browser project (bundler resolution, ES2022 + DOM, no @types/node) compiles against the package with TypeScript ${VERSION[compiler]}`, async () => {
    const dir = await consumer('browser', {
      ...STRICT, module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'], types: [],
    }, BROWSER_APP, false);
    await compiles(dir, compiler, 'the browser project');
  });

  test(`a Node project (NodeNext, @types/node, ES2022 without DOM) compiles against the package with TypeScript ${VERSION[compiler]}`, async () => {
    const dir = await consumer('node', {
      ...STRICT, module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'],
    }, NODE_APP, true);
    await compiles(dir, compiler, 'the Node project');
  });
}

test.run();
