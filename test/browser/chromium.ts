// The Chromium the browser tests drive, in this order:
//   1. CHROMIUM_PATH, when set (it must be there: no quiet fallback);
//   2. the system's /usr/bin/chromium (Debian's package), when installed;
//   3. the Chromium that the @sparticuz/chromium devDependency ships inside its
//      npm tarball (Linux x64): brotli-compressed, unpacked once into
//      node_modules/.cache/twinpage-chromium/<version>/ with the shared
//      libraries it was built against (al2023.tar.br), which go on its
//      LD_LIBRARY_PATH. Nothing is downloaded at test time.
// TWINPAGE_TEST_CHROMIUM=npm skips 1 and 2 (CI sets it, so that it always runs
// what a machine without a browser runs).
// Only the browser binary and its libraries are used, not that package's code
// nor its recommended flags (they turn off web security and site isolation,
// and with them the cross-origin isolation that SharedArrayBuffer needs).
import { constants, createReadStream, createWriteStream, existsSync } from 'node:fs';
import { access, mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { brotliDecompress, createBrotliDecompress } from 'node:zlib';
import { extractTar } from './tar.js';

const SYSTEM_CHROMIUM = '/usr/bin/chromium';
const PACKAGE = '@sparticuz/chromium';

/** How to launch the chosen Chromium. */
export interface Chromium {
  executablePath: string;
  /** The browser's environment (playwright's `env`), or undefined for the test's own. */
  env?: Record<string, string>;
  /** Which Chromium this is, for the test log. */
  description: string;
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(() => true, () => false);
}

/** The folder of the installed @sparticuz/chromium and its version, or null when it is not installed. */
async function bundledPackage(): Promise<{ dir: string; version: string } | null> {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(PACKAGE);
  } catch {
    return null;
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(await readFile(manifest, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === PACKAGE) return { dir, version: pkg.version ?? 'unknown' };
  }
  return null;
}

/** Unpacks the package's Chromium and libraries into `cache` (once; concurrent callers are safe). */
async function unpack(bin: string, cache: string): Promise<void> {
  if (existsSync(join(cache, 'chromium'))) return;
  await mkdir(dirname(cache), { recursive: true });
  const staging = `${cache}.unpacking-${process.pid}-${Date.now()}`;
  try {
    await mkdir(staging);
    await pipeline(createReadStream(join(bin, 'chromium.br')), createBrotliDecompress(),
      createWriteStream(join(staging, 'chromium'), { mode: 0o755 }));
    await extractTar(await promisify(brotliDecompress)(await readFile(join(bin, 'al2023.tar.br'))), staging);
    await rename(staging, cache).catch((err: NodeJS.ErrnoException) => {
      // Another process finished first: its copy is as good as ours.
      if (!(['EEXIST', 'ENOTEMPTY'].includes(err.code ?? '') && existsSync(join(cache, 'chromium')))) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  // Copies unpacked for other versions of the package are of no more use.
  for (const name of await readdir(dirname(cache))) {
    const path = join(dirname(cache), name);
    if (path !== cache && !name.includes('.unpacking-')) await rm(path, { recursive: true, force: true });
  }
}

/**
 * The Chromium to drive, or an error saying why there is none and what to do.
 * The first call may take a few seconds (unpacking about 200 MB).
 */
export async function chromiumForTests(): Promise<Chromium> {
  const npmOnly = process.env.TWINPAGE_TEST_CHROMIUM === 'npm';
  const wanted = process.env.CHROMIUM_PATH;
  if (wanted && !npmOnly) {
    if (!await isExecutable(wanted)) throw new Error(`CHROMIUM_PATH=${wanted} is not an executable file`);
    return { executablePath: wanted, description: `CHROMIUM_PATH=${wanted}` };
  }
  if (!npmOnly && await isExecutable(SYSTEM_CHROMIUM)) {
    return { executablePath: SYSTEM_CHROMIUM, description: `the system's ${SYSTEM_CHROMIUM}` };
  }

  const pkg = await bundledPackage();
  if (!pkg) {
    throw new Error(`no Chromium: no ${SYSTEM_CHROMIUM}, no CHROMIUM_PATH, and the devDependency ${PACKAGE} is not installed (npm install)`);
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`no Chromium: no ${SYSTEM_CHROMIUM}, no CHROMIUM_PATH, and ${PACKAGE} ships a Linux x64 Chromium only ` +
      `(this is ${process.platform} ${process.arch}); set CHROMIUM_PATH to a Chromium or Chrome`);
  }
  const cache = join(pkg.dir, '..', '..', '.cache', 'twinpage-chromium', pkg.version); // node_modules/.cache/...
  await unpack(join(pkg.dir, 'bin'), cache);
  const libs = join(cache, 'lib');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  env.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH ? `${libs}:${process.env.LD_LIBRARY_PATH}` : libs;
  return { executablePath: join(cache, 'chromium'), env, description: `${PACKAGE} ${pkg.version}, unpacked in ${cache}` };
}
