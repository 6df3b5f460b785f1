// uvu as the tests import it, with one before-each hook on every suite that
// appends `{"suite": ..., "test": ...}` (one JSON line) to TWINPAGE_TEST_TRACE
// as each test starts. Nothing else changes: same suites, same output.
import { appendFileSync } from 'node:fs';
import * as uvu from 'uvu';

const TRACE = process.env.TWINPAGE_TEST_TRACE;

function note(context) {
  try {
    appendFileSync(TRACE, JSON.stringify({ suite: context.__suite__ || '', test: context.__test__ }) + '\n');
  } catch {
    // The trace is a help for a hung run, never a cause of failure.
  }
}

/** Adds the hook to suite `t`, and again after each run (run() clears a suite's hooks). */
function traced(t) {
  t.before.each(note);
  const run = t.run;
  t.run = () => {
    run();
    t.before.each(note);
  };
  return t;
}

export const suite = (...args) => traced(uvu.suite(...args));
export const test = traced(uvu.test);
export const exec = uvu.exec;
