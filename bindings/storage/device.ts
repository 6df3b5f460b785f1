// The storage interfaces every layer above talks to. A device is one
// positional byte store (a file, a buffer, an OPFS file); a store holds named
// devices (a folder, a map, an OPFS directory).

import { TwinpageError } from '../errors.js';

export interface Device {
  readonly name: string;
  /** Fills `into` from `position`; bytes past the end read as zero. Returns how many bytes were really stored there. */
  read(position: number, into: Uint8Array): Promise<number>;
  /** Writes all of `data` at `position` (extending the device), or throws. */
  write(position: number, data: Uint8Array): Promise<void>;
  /** Makes every completed write durable (fdatasync for files). */
  flush(): Promise<void>;
  size(): Promise<number>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

/** A place holding named devices: a data folder, memory, an OPFS directory. */
export interface Store {
  readonly kind: string;
  /** Opens a device, creating it when missing (never truncating one that exists). */
  open(name: string): Promise<Device>;
  exists(name: string): Promise<boolean>;
  /** Removes a device; a missing one is fine. */
  remove(name: string): Promise<void>;
  /** Renames a device, replacing `to` (atomically where the platform allows). */
  rename(from: string, to: string): Promise<void>;
  list(): Promise<string[]>;
  /** Makes creations, renames and removals durable (fsync of the folder in Node). */
  sync(): Promise<void>;
}

/** Checks a device name: no separators, no dot-dot, not empty. */
export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw TwinpageError.invalidArgument(`device name must be a plain file name, got ${JSON.stringify(name)}`);
  }
  return name;
}

/** Checks a position or size: a non-negative safe integer. */
export function checkPosition(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw TwinpageError.invalidArgument(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

export function checkBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw TwinpageError.invalidArgument(`${what} must be a Uint8Array`);
  return value;
}
