import { TwinpageError } from '../errors.js';

// WebAssembly coerces any JS number to i32 silently (-1 becomes 0xFFFFFFFF,
// 1.5 becomes 1, NaN becomes 0), so every number is checked here first.

/** `value` as a u32, or an INVALID_ARGUMENT error naming `name`. */
export function u32(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xFFFFFFFF) {
    throw TwinpageError.invalidArgument(`${name} must be an integer from 0 to 2^32-1, got ${String(value)}`);
  }
  return value;
}

/** An integer in [min, max], or an INVALID_ARGUMENT error naming `name`. */
export function intIn(value: unknown, min: number, max: number, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw TwinpageError.invalidArgument(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** A Uint8Array, or an INVALID_ARGUMENT error naming `name`. */
export function bytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw TwinpageError.invalidArgument(`${name} must be a Uint8Array`);
  }
  return value;
}
