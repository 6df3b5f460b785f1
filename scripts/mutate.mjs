// `npm run mutate [-- ID...]`: applies each mutation of scripts/mutations.mjs
// to the built code (build/bindings), one at a time, runs that mutation's
// test files through scripts/test.mjs, and reports whether the tests caught
// it (killed: some test failed) or not (survived), with the tests that
// failed, and the score. Exits non-zero when a mutation survived.
//
// Before any mutation, the test files involved run once on the code as built
// (a test that fails anyway would "kill" everything); `--no-baseline` skips it.
// `--list` prints the mutations and exits; `--check` only says whether each
// applies to this build and its test files exist (npm test runs it).
//
// The built file is restored after each mutation, whatever happens: the
// original is also kept in build/.mutate/ while a mutation is applied, and a
// run that was killed outright (SIGKILL) is undone by the next run before it
// starts (and by any `npm run build`, which rewrites build/bindings).
//
// Environment: TEST_JOBS, TEST_FILE_TIMEOUT and TEST_TIMEOUT, as for
// scripts/test.mjs. A mutation caught only by a time limit (a test or file
// that ran too long) is reported as such: slow is red, but a loaded machine
// can be slow too.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MUTATIONS } from './mutations.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILT = join(ROOT, 'build', 'bindings');
const TESTS = join(ROOT, 'build', 'test');
const BACKUP = join(ROOT, 'build', '.mutate');
const RUNNER = join(ROOT, 'scripts', 'test.mjs');
const ANSI = /\x1b\[[0-9;]*m/g;

/** A find string as a pattern: its runs of whitespace match any run of whitespace. */
function pattern(find) {
  const parts = find.trim().split(/\s+/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(parts.join('\\s+'), 'g');
}

/** The mutated text of `source`, or why it cannot be made. */
function mutate(source, edits) {
  let text = source;
  for (const [find, replace] of edits) {
    const matches = [...text.matchAll(pattern(find))];
    if (matches.length !== 1) return { error: `${JSON.stringify(find)} occurs ${matches.length} times (must be once)` };
    const m = matches[0];
    text = text.slice(0, m.index) + replace + text.slice(m.index + m[0].length);
  }
  return { text };
}

/** Puts back every file a killed run left mutated (their originals are in build/.mutate). */
function restoreLeftovers() {
  if (!existsSync(BACKUP)) return;
  const walk = (dir) => readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
  for (const saved of walk(BACKUP)) {
    const target = join(BUILT, relative(BACKUP, saved));
    writeFileSync(target, readFileSync(saved));
    console.log(`restored ${relative(ROOT, target)}, left mutated by an interrupted run`);
  }
  rmSync(BACKUP, { recursive: true, force: true });
}

/** The file mutated now, to restore on any way out. */
let applied = null;
let child = null;

function restore() {
  if (!applied) return;
  writeFileSync(applied.path, applied.original);
  rmSync(BACKUP, { recursive: true, force: true });
  applied = null;
}

function apply(path, original, text) {
  const saved = join(BACKUP, relative(BUILT, path));
  mkdirSync(dirname(saved), { recursive: true });
  writeFileSync(saved, original);
  applied = { path, original };
  writeFileSync(path, text);
}

function stop(signal) {
  // The runner stops its test processes on SIGINT and SIGTERM.
  if (child) child.kill(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
  restore();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => stop(s));
process.on('exit', restore);

/** The runner's pattern for test file names (`mirror` is mirror.test.js only, not mirror-sync). */
function filesPattern(names) {
  return `^(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})\\.test\\.js$`;
}

/**
 * Runs test files through scripts/test.mjs; resolves with whether all passed,
 * the files that failed, the tests uvu reported failing, and the seconds taken.
 */
function runTests(names) {
  return new Promise((resolve) => {
    const start = Date.now();
    const env = { ...process.env };
    delete env.FORCE_COLOR;
    child = spawn(process.execPath, [RUNNER, filesPattern(names)], {
      cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s) => { out += s; });
    child.on('close', (code) => {
      child = null;
      const plain = out.replace(ANSI, '');
      // The runner prints each file's output under a line `✓ FILE: ...` or `✘ FILE: ...`.
      const files = [];
      const tests = [];
      let file = null;
      let failed = null; // the last FAIL line, until its message (the next line) is read
      for (const line of plain.split('\n')) {
        if (failed !== null && line.trim()) {
          if (/\(TEST_TIMEOUT\)/.test(line)) tests[tests.length - 1] += ' (over TEST_TIMEOUT)';
          failed = null;
          continue;
        }
        const head = /^([✓✘]) (\S+\.test\.js): /.exec(line);
        if (head) {
          file = head[2];
          if (head[1] === '✘') files.push(file);
          continue;
        }
        const fail = /^\s*FAIL\s+(.+?)\s*$/.exec(line);
        if (fail && file) {
          tests.push(`${file}: ${fail[1].replace(/\s{2,}/g, ' › ')}`);
          failed = tests.length - 1;
        }
        const stopped = /^\s+✘ (\S+\.test\.js): ((?:stopped|ended|exited|ran) .*)$/.exec(line);
        if (stopped) tests.push(`${stopped[1]}: ${stopped[2]}`);
      }
      resolve({ passed: code === 0, files, tests: [...new Set(tests)], seconds: (Date.now() - start) / 1000, output: plain });
    });
  });
}

function missingTests(names) {
  return names.filter((n) => !existsSync(join(TESTS, `${n}.test.js`)));
}

async function main() {
  const args = process.argv.slice(2);
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const ids = args.filter((a) => !a.startsWith('--'));
  for (const f of flags) {
    if (!['--list', '--no-baseline', '--check'].includes(f)) { console.error(`unknown option ${f} (--list, --no-baseline, --check)`); return 2; }
  }
  if (flags.has('--list')) {
    for (const m of MUTATIONS) console.log(`${m.id.padEnd(40)} ${m.file.padEnd(22)} ${m.what}\n${' '.repeat(41)}tests: ${m.tests.join(', ')}`);
    return 0;
  }
  const unknown = ids.filter((id) => !MUTATIONS.some((m) => m.id === id));
  if (unknown.length) { console.error(`no mutation named ${unknown.join(', ')} (npm run mutate -- --list)`); return 2; }
  const chosen = ids.length ? MUTATIONS.filter((m) => ids.includes(m.id)) : MUTATIONS;
  if (!existsSync(BUILT) || !existsSync(TESTS)) { console.error('no build/: run npm run build first (npm run mutate does)'); return 2; }
  // --check only says whether every mutation applies to this build (npm test asks, read-only).
  if (!flags.has('--check')) restoreLeftovers();

  // Every mutation must apply, and its tests exist, before anything runs.
  const problems = [];
  const prepared = chosen.map((m) => {
    const path = join(BUILT, m.file);
    if (!existsSync(path)) { problems.push(`${m.id}: no ${relative(ROOT, path)}`); return null; }
    const original = readFileSync(path, 'utf8');
    const r = mutate(original, m.edits);
    if (r.error) problems.push(`${m.id}: in ${relative(ROOT, path)}, ${r.error}`);
    const missing = missingTests(m.tests);
    if (missing.length) problems.push(`${m.id}: no test file ${missing.map((n) => `${n}.test.js`).join(', ')}`);
    return { ...m, path, original, text: r.text };
  });
  if (problems.length) {
    console.error(`mutations that cannot be applied to this build (update scripts/mutations.mjs):\n  ${problems.join('\n  ')}`);
    return 2;
  }
  if (flags.has('--check')) {
    console.log(`${prepared.length} mutations apply to this build`);
    return 0;
  }

  if (!flags.has('--no-baseline')) {
    const all = [...new Set(prepared.flatMap((m) => m.tests))];
    console.log(`baseline: ${all.length} test files on the code as built`);
    const base = await runTests(all);
    if (!base.passed) {
      console.error(`the tests fail without any mutation (${base.files.join(', ') || 'see below'}): fix them first\n${base.output}`);
      return 1;
    }
    console.log(`baseline: passed in ${base.seconds.toFixed(1)} s\n`);
  }

  const results = [];
  for (const m of prepared) {
    apply(m.path, m.original, m.text);
    // A mutation that does not parse would fail every test for nothing.
    const check = spawnSync(process.execPath, ['--check', m.path], { encoding: 'utf8' });
    if (check.status !== 0) {
      restore();
      console.error(`${m.id}: the mutated ${relative(ROOT, m.path)} does not parse:\n${check.stderr}`);
      return 2;
    }
    process.stdout.write(`${m.id}: ${m.what}\n  running ${m.tests.map((n) => `${n}.test.js`).join(', ')} ... `);
    let r;
    try {
      r = await runTests(m.tests);
    } finally {
      restore();
    }
    const killed = !r.passed;
    const by = r.tests.length ? r.tests : r.files;
    // Caught only because something ran over a time limit (a hang, or a slow machine).
    const slowOnly = killed && by.every((t) => /TEST_TIMEOUT|TEST_FILE_TIMEOUT|had not exited/.test(t));
    results.push({ id: m.id, killed, slowOnly, by, files: r.files, seconds: r.seconds });
    console.log(`${killed ? `killed${slowOnly ? ' (by a time limit only)' : ''}` : 'SURVIVED'} (${r.seconds.toFixed(1)} s)`);
    if (killed) for (const t of results.at(-1).by) console.log(`    by ${t}`);
  }

  const killed = results.filter((r) => r.killed).length;
  const width = Math.max(...results.map((r) => r.id.length));
  console.log(`\nmutation${' '.repeat(width - 8)}  result    caught by`);
  for (const r of results) {
    const first = r.killed ? (r.by[0] ?? r.files.join(', ')) : '-';
    const more = r.by.length > 1 ? ` (+${r.by.length - 1} more)` : '';
    console.log(`${r.id.padEnd(width)}  ${(r.killed ? 'killed' : 'SURVIVED').padEnd(8)}  ${first}${more}`);
  }
  const slow = results.filter((r) => r.slowOnly);
  if (slow.length) console.log(`\ncaught only by a time limit (check them on a quiet machine): ${slow.map((r) => r.id).join(', ')}`);
  console.log(`\nscore: ${killed}/${results.length} mutations killed (${Math.round((100 * killed) / results.length)}%)`);
  const survived = results.filter((r) => !r.killed);
  if (survived.length) console.log(`survived: ${survived.map((r) => r.id).join(', ')}: no test notices these bugs`);
  return survived.length ? 1 : 0;
}

process.exitCode = await main();
