// Small assertions shared by the tests.
import * as assert from 'uvu/assert';
import { TwinpageError } from '../bindings/index.js';

/** Runs `fn`, returning its value or the code of the TwinpageError it threw (any other error is rethrown). */
export function outcome<T>(fn: () => T): T | { code: string } {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof TwinpageError)) throw err;
    return { code: err.code };
  }
}

/** Asserts that `fn` throws a TwinpageError with `code`. */
export function throwsCode(fn: () => unknown, code: string): void {
  assert.equal(outcome(fn), { code }, `expected ${code}`);
}
