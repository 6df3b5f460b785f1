// Installs the benchmark-only contenders that are not in package-lock.json.
// lmdb is kept out of the lock file because its msgpackr-extract optional
// dependencies for other platforms are not on every registry mirror, and a
// lock file missing them makes `npm ci` refuse to install anything.
import { execFileSync } from 'node:child_process';

const WANTED = { lmdb: '3.5.6' };
const missing = [];
for (const [name, version] of Object.entries(WANTED)) {
  try {
    await import(name);
  } catch {
    missing.push(`${name}@${version}`);
  }
}
if (missing.length) {
  console.log(`installing benchmark contenders: ${missing.join(', ')}`);
  execFileSync('npm', ['install', '--no-save', '--no-package-lock', ...missing], { stdio: 'inherit' });
}
