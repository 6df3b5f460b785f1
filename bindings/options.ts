// Checking the options callers pass: one checker per kind of value, each
// naming the option in its error, so every layer refuses bad options alike.

import { TwinpageError } from './errors.js';

/**
 * An integer option: `fallback` when undefined, else a safe integer in
 * [`min`, `max`], or INVALID_ARGUMENT naming `name`.
 */
export function intOption(name: string, value: unknown, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw TwinpageError.invalidArgument(`${name} must be an integer ${range}, got ${String(value)}`);
  }
  return value;
}

/** One of `allowed`: `fallback` when undefined, else INVALID_ARGUMENT naming `name` and the choices. */
export function choiceOption<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw TwinpageError.invalidArgument(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** A function option, or undefined. */
export function functionOption<F extends (...args: never[]) => unknown>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw TwinpageError.invalidArgument(`${name} must be a function`);
  return value as F;
}
