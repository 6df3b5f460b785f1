// `npm test [-- pattern...]`: runs each uvu test file of build/test in its own
// Node process, TEST_JOBS files at a time (default 2), each within
// TEST_FILE_TIMEOUT seconds (default 240), and each test within TEST_TIMEOUT
// seconds (default 120; test-trace/uvu.mjs fails a test over it, by name). A
// file over its time is stopped (its process group: SIGTERM, then SIGKILL) and
// reported with the last test it had started; so is a file still running 10 s
// after it printed its totals (a timer, socket or child keeps it alive). A
// file that is long by design (a scale test) declares its own limits near its
// top, as a line `// test-limits: test N s, file M s`; they replace the
// defaults for that file only, and never lower a limit set in the
// environment. Ends
// with uvu's totals over all files (Total, Passed, Skipped), which .ci/run
// adds up, and exits non-zero when anything failed.
//
// A pattern is a regular expression matched against the file's path under
// build/test (`npm test -- mirror` runs mirror.test.js and mirror-sync.test.js).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TESTS = join(ROOT, 'build', 'test');
const PRELOAD = fileURLToPath(new URL('./test-trace/register.mjs', import.meta.url));
const LIMIT_S = positive('TEST_FILE_TIMEOUT', 240);
const TEST_LIMIT_S = positive('TEST_TIMEOUT', 120);
const DECLARED = /^\/\/ test-limits: test (\d+) s, file (\d+) s$/m;
const JOBS = positive('TEST_JOBS', 2);
const GRACE_MS = 5000; // between SIGTERM and SIGKILL
const EXIT_MS = 10000; // from a file's totals to its exit
const ANSI = /\x1b\[[0-9;]*m/g;
// Test names are traced through a module hook (Node 20.6+); without one, a stop names no test.
const TRACE_ARGS = typeof nodeModule.register === 'function' ? ['--import', PRELOAD] : [];

function positive(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!(n > 0)) {
    console.error(`${name}=${raw}: expected a positive number`);
    process.exit(2);
  }
  return n;
}

/** Test files under `dir`, as paths relative to build/test. */
function testFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...testFiles(path));
    else if (entry.name.endsWith('.test.js')) out.push(relative(TESTS, path));
  }
  return out.sort();
}

/** The tests a trace file says were started, in order. */
function startedTests(trace) {
  let text = '';
  try {
    text = readFileSync(trace, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((line) => {
    try {
      const { suite, test } = JSON.parse(line);
      return suite ? `${suite} › ${test}` : test;
    } catch {
      return line;
    }
  });
}

/** uvu's closing block of a file's output: its counts, or null when it never printed them. */
function uvuTotals(plain) {
  const total = /^\s*Total:\s+(\d+)/m.exec(plain);
  const passed = /^\s*Passed:\s+(\d+)/m.exec(plain);
  const skipped = /^\s*Skipped:\s+(\d+)/m.exec(plain);
  if (!total || !passed || !skipped) return null;
  return { total: +total[1], passed: +passed[1], skipped: +skipped[1] };
}

/**
 * Runs one file; resolves with its counts and, when it did not pass, why.
 * @returns {Promise<{ file: string, total: number, passed: number, skipped: number, seconds: number, output: string, problem: string | null }>}
 */
function runFile(file, traceDir, live) {
  const trace = join(traceDir, `${file.replace(/[\\/]/g, '_')}.trace`);
  const declared = DECLARED.exec(readFileSync(join(TESTS, file), 'utf8').slice(0, 8192));
  const limit = Math.max(LIMIT_S, declared ? Number(declared[2]) : 0);
  const env = { ...process.env, TWINPAGE_TEST_TRACE: trace, TEST_TIMEOUT: String(Math.max(TEST_LIMIT_S, declared ? Number(declared[1]) : 0)) };
  if (process.stdout.isTTY && env.FORCE_COLOR === undefined) env.FORCE_COLOR = '1';
  const start = Date.now();
  const child = spawn(process.execPath, [...TRACE_ARGS, join(TESTS, file)], {
    cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: process.platform !== 'win32',
  });
  live.add(child);
  let output = '';
  let timedOut = false;
  let lingered = false;
  const stop = () => {
    signalGroup(child, 'SIGTERM');
    setTimeout(() => signalGroup(child, 'SIGKILL'), GRACE_MS).unref();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, limit * 1000);
  // uvu's totals end with its Duration line: the file has nothing left to run.
  let exitTimer = null;
  const read = (s) => {
    output += s;
    if (exitTimer === null && /^\s*Duration:/m.test(output.replace(ANSI, ''))) {
      exitTimer = setTimeout(() => { lingered = true; stop(); }, EXIT_MS);
    }
  };
  child.stdout.setEncoding('utf8').on('data', read);
  child.stderr.setEncoding('utf8').on('data', read);

  return new Promise((resolve) => {
    let settled = false;
    const finish = (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (exitTimer) clearTimeout(exitTimer);
      live.delete(child);
      signalGroup(child, 'SIGKILL'); // whatever the file left running in its group
      const seconds = (Date.now() - start) / 1000;
      const plain = output.replace(ANSI, '');
      const counts = uvuTotals(plain);
      const started = startedTests(trace);
      let problem = null;
      if (lingered && counts) {
        const failed = counts.total - counts.passed;
        problem = `${failed > 0 ? `${failed} test${failed > 1 ? 's' : ''} failed, and it ` : ''}ran its tests but had not exited ${EXIT_MS / 1000} s after its totals: a timer, socket or child process keeps it alive`;
      } else if (timedOut && counts) {
        problem = `ran its tests but had not exited after ${limit} s (TEST_FILE_TIMEOUT${declared ? ', as the file declares' : ''}): a timer, socket or child process keeps it alive`;
      } else if (timedOut) {
        problem = `stopped after ${limit} s (TEST_FILE_TIMEOUT${declared ? ', as the file declares' : ''}); last test started: ${started.length ? JSON.stringify(started.at(-1)) : '(none: it hung before its first test)'}`;
      } else if (signal) {
        problem = `ended by ${signal}; last test started: ${JSON.stringify(started.at(-1) ?? '(none)')}`;
      } else if (!counts) {
        problem = `exited with ${code} before uvu's totals; last test started: ${JSON.stringify(started.at(-1) ?? '(none)')}`;
      } else if (code !== 0) {
        const failed = counts.total - counts.passed; // uvu's Total leaves skipped tests out
        problem = failed > 0 ? `${failed} test${failed > 1 ? 's' : ''} failed` : `exited with ${code}`;
      }
      let { total, passed, skipped } = counts ?? { total: 0, passed: 0, skipped: 0 };
      if (problem && !counts) {
        // Count what it did: each pass mark, and at least one failure for the stop.
        passed = (plain.match(/• /g) ?? []).length;
        const failed = (plain.match(/✘ /g) ?? []).length;
        total = Math.max(started.length, passed + failed + 1);
      }
      resolve({ file, total, passed, skipped, seconds, output, problem });
    };
    // 'close' waits for the pipes too, which a grandchild may hold open: a short wait after 'exit' at most.
    child.on('close', finish);
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 2000).unref());
    child.on('error', (err) => {
      output += `\ncould not start: ${err.message}\n`;
      finish(-1, null);
    });
  });
}

function signalGroup(child, signal) {
  try {
    if (process.platform !== 'win32') process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // already gone
  }
}

/** The file's output without uvu's closing block (the runner prints the totals once, at the end). */
function withoutTotals(output) {
  return output.split('\n')
    .filter((line) => !/^\s*(Total|Passed|Skipped|Duration):/.test(line.replace(ANSI, '')))
    .join('\n').replace(/\n{3,}/g, '\n\n').trimEnd();
}

async function main() {
  const patterns = process.argv.slice(2).map((p) => new RegExp(p));
  let all;
  try {
    all = testFiles(TESTS);
  } catch (err) {
    console.error(`no ${relative(ROOT, TESTS)}: build first (npm run build; npm test does) (${err.message})`);
    return 1;
  }
  const files = patterns.length ? all.filter((f) => patterns.some((p) => p.test(f))) : all;
  if (!files.length) {
    console.error(`no test file in build/test matches ${process.argv.slice(2).join(' ') || '.test.js'}`);
    return 1;
  }
  console.log(`${files.length} test file${files.length > 1 ? 's' : ''}, ${JOBS} at a time, at most ${LIMIT_S} s each\n`);

  const traceDir = mkdtempSync(join(tmpdir(), 'twinpage-test-'));
  const live = new Set();
  const stopAll = (signal) => {
    for (const child of live) signalGroup(child, 'SIGKILL');
    rmSync(traceDir, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);

  const start = Date.now();
  const results = [];
  // Files long by design first: started last, they would end the run alone.
  const long = (f) => DECLARED.test(readFileSync(join(TESTS, f), 'utf8').slice(0, 8192));
  const queue = [...files.filter(long), ...files.filter((f) => !long(f))];
  const worker = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const r = await runFile(file, traceDir, live);
      results.push(r);
      const counts = `${r.passed} passed, ${r.total - r.passed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`;
      const body = withoutTotals(r.output);
      console.log(`${r.problem ? '✘' : '✓'} ${file}: ${counts}, ${r.seconds.toFixed(1)} s`);
      if (body) console.log(body.replace(/^/gm, '  '));
      if (r.problem) console.log(`  ✘ ${file}: ${r.problem}`);
      console.log('');
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, files.length) }, worker));
  rmSync(traceDir, { recursive: true, force: true });

  const sum = (k) => results.reduce((s, r) => s + r[k], 0);
  const failedFiles = results.filter((r) => r.problem);
  const seconds = ((Date.now() - start) / 1000).toFixed(1);
  console.log(`  Total:     ${sum('total')}`);
  console.log(`  Passed:    ${sum('passed')}`);
  console.log(`  Skipped:   ${sum('skipped')}`);
  console.log(`  Duration:  ${seconds} s for ${results.length} file${results.length > 1 ? 's' : ''}`);
  if (failedFiles.length) {
    console.log(`\n  failed files:`);
    for (const r of failedFiles) console.log(`    ${r.file}: ${r.problem}`);
  }
  return failedFiles.length || sum('total') + sum('skipped') === 0 ? 1 : 0;
}

process.exitCode = await main();
