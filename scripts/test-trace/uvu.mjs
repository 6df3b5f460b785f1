// uvu as the tests import it, with two additions on every suite:
//   - a before-each hook that appends `{"suite": ..., "test": ...}` (one JSON
//     line) to TWINPAGE_TEST_TRACE as each test starts (the runner names the
//     last one when it has to stop a file);
//   - a time limit per test (TEST_TIMEOUT seconds, default 120): a test still
//     running then fails with its name and the limit, and the file goes on
//     with its next test, instead of hanging until the file's limit.
// Nothing else changes: same suites, same output.
import { appendFileSync } from 'node:fs';
import * as uvu from 'uvu';

const TRACE = process.env.TWINPAGE_TEST_TRACE;
const LIMIT_S = limit(process.env.TEST_TIMEOUT);

function limit(raw) {
  if (raw === undefined || raw === '') return 120;
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`TEST_TIMEOUT=${raw}: expected a positive number of seconds`);
  return n;
}

function note(context) {
  try {
    appendFileSync(TRACE, JSON.stringify({ suite: context.__suite__ || '', test: context.__test__ }) + '\n');
  } catch {
    // The trace is a help for a hung run, never a cause of failure.
  }
}

/** `handler`, failing once it has run for LIMIT_S seconds (it is not stopped: the file's limit ends what it left running). */
function limited(name, handler) {
  return async (context) => {
    let timer;
    const over = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the test ran for over ${LIMIT_S} s (TEST_TIMEOUT) and was failed: ${JSON.stringify(name)}`)), LIMIT_S * 1000);
    });
    try {
      return await Promise.race([handler(context), over]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Suite `t` with the trace hook (added again after each run: run() clears a suite's hooks) and the time limit. */
function traced(t) {
  t.before.each(note);
  const run = t.run;
  const register = (name, handler) => t(name, limited(name, handler));
  Object.assign(register, t);
  register.only = (name, handler) => t.only(name, limited(name, handler));
  register.run = () => {
    run();
    t.before.each(note);
  };
  return register;
}

export const suite = (...args) => traced(uvu.suite(...args));
export const test = traced(uvu.test);
export const exec = uvu.exec;
