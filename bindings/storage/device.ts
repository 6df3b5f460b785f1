// The storage interfaces every layer above talks to. A device is one
// positional byte store (a file, a buffer, an OPFS file); a store holds named
// devices (a folder, a map, an OPFS directory).
//
// Every device checks its arguments the same way (the helpers below), so a
// bad position or name is INVALID_ARGUMENT whatever the device, a closed
// device is CLOSED, a full one NO_SPACE, and any other failure IO_ERROR with
// the platform's error as `cause`.

import { TwinpageError } from '../errors.js';

export interface Device {
  /** The device's name in its store (for messages and mirrored copies). */
  readonly name: string;
  /** Fills `into` from `position`; bytes past the end read as zero. Returns how many bytes were really stored there. */
  read(position: number, into: Uint8Array): Promise<number>;
  /** Writes all of `data` at `position` (extending the device), or throws. */
  write(position: number, data: Uint8Array): Promise<void>;
  /** Makes every completed write durable (fdatasync for files). */
  flush(): Promise<void>;
  /** The device's length in bytes: one past the last byte stored. */
  size(): Promise<number>;
  /** Cuts the device to `size` bytes, or extends it with zeros. */
  truncate(size: number): Promise<void>;
  /** Releases the device; any later use throws CLOSED. Closing twice is fine. */
  close(): Promise<void>;
}

/** How a store opens a device. */
export interface OpenOptions {
  /**
   * A hint for a device whose every write is flushed at once (the journal):
   * each write is made durable as it is written (O_DSYNC in Node), so the
   * `flush()` after it has nothing left to do. The caller still flushes: a
   * store that cannot do this ignores the hint, and its flush does the work.
   */
  durableWrites?: boolean;
}

/** A place holding named devices: a data folder, memory, an OPFS directory. */
export interface Store {
  /** What holds the devices: `"file"`, `"memory"`, `"opfs"`, `"mirrored"`. */
  readonly kind: string;
  /** Opens a device, creating it when missing (never truncating one that exists). */
  open(name: string, options?: OpenOptions): Promise<Device>;
  exists(name: string): Promise<boolean>;
  /** Removes a device; a missing one is fine. */
  remove(name: string): Promise<void>;
  /** Renames a device, replacing `to` (atomically where the platform allows); NOT_FOUND when `from` is missing. */
  rename(from: string, to: string): Promise<void>;
  /** The names of the devices held, sorted. */
  list(): Promise<string[]>;
  /** Makes creations, renames and removals durable (fsync of the folder in Node). */
  sync(): Promise<void>;
  /**
   * Bytes of the storage the store lives on: total and free (statfs of the
   * folder's file system in Node, the origin's quota in browsers); null when
   * the platform cannot tell.
   */
  space(): Promise<StorageSpace | null>;
}

/** Total and free bytes of the storage under a store. */
export interface StorageSpace { total: number; free: number }

/** Checks a device name: a plain file name (not empty, no `/`, `\`, NUL, not `.` or `..`). */
export function checkName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    throw TwinpageError.invalidArgument(`${what} must be a plain file name, got ${JSON.stringify(name)}`);
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

/** Checks a buffer argument: a Uint8Array. */
export function checkBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw TwinpageError.invalidArgument(`${what} must be a Uint8Array`);
  return value;
}

/** Checks a read or write: a valid position, a Uint8Array, and an end that is still a safe integer. */
export function checkAccess(position: unknown, bytes: unknown, what: 'into' | 'data'): void {
  checkPosition(position, 'position');
  checkBytes(bytes, what);
  if (!Number.isSafeInteger((position as number) + (bytes as Uint8Array).length)) {
    throw TwinpageError.invalidArgument(`position + ${what}.length must be a safe integer, got ${String(position)} + ${(bytes as Uint8Array).length}`);
  }
}

/**
 * Fills `into` from `position` through `step` (one platform read at
 * `offset` of `into`, returning the bytes read; 0 at the end of the device),
 * zeroes what lies past the end, and returns the bytes really stored there.
 * Failures are the caller's to map.
 */
export async function readFully(position: number, into: Uint8Array, step: (offset: number) => number | Promise<number>): Promise<number> {
  checkAccess(position, into, 'into');
  let done = 0;
  while (done < into.length) {
    const n = await step(done);
    if (n === 0) break; // the end of the device
    done += n;
  }
  into.fill(0, done);
  return done;
}

/** Writes all of `data` at `position` through `step` (one platform write at `offset` of `data`, returning the bytes written). */
export async function writeFully(position: number, data: Uint8Array, step: (offset: number) => number | Promise<number>, what: string): Promise<void> {
  checkAccess(position, data, 'data');
  let done = 0;
  while (done < data.length) {
    const n = await step(done);
    if (n === 0) throw TwinpageError.ioError(`write ${what}: no progress at ${position + done}`);
    done += n;
  }
}
