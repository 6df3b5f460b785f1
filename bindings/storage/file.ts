// Devices over files, for Node: a data folder holds one file per device.
// Positional reads and writes on a FileHandle; flush is fdatasync. Files are
// opened 'r+' (or created 'wx+'), never truncated, never in append mode, so a
// write always lands at its position. A device opened for durable writes
// (the journal) is opened O_DSYNC: each write returns once durable, one
// trip to the thread pool instead of a write and an fdatasync, and its flush
// has nothing to do (unless its size was changed by `truncate`).
//
// Browsers never import this file: it is not re-exported by ./index.js.

import { constants } from 'node:fs';
import { open, mkdir, readdir, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { TwinpageError } from '../errors.js';
import { checkName, checkPosition, readFully, writeFully, type Device, type OpenOptions, type StorageSpace, type Store } from './device.js';

/**
 * Turns a Node fs error into a TwinpageError, keeping it as `cause`:
 * ENOSPC, EDQUOT, EFBIG -> NO_SPACE; ENOENT -> NOT_FOUND; anything else -> IO_ERROR.
 * A TwinpageError passes through unchanged.
 */
export function mapFsError(err: unknown, what: string): TwinpageError {
  if (err instanceof TwinpageError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = `${what}: ${(err as Error | null)?.message ?? String(err)}`;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return TwinpageError.noSpace(message, err);
  if (code === 'ENOENT') return TwinpageError.notFound(message, err);
  return TwinpageError.ioError(message, err);
}

const codeOf = (err: unknown) => (err as { code?: unknown } | null)?.code;

/** One file as a device. */
export class FileDevice implements Device {
  readonly name: string;
  /** The file's path. */
  readonly path: string;
  /** Each write is durable when it resolves (opened O_DSYNC). */
  readonly durableWrites: boolean;
  #fh: FileHandle | null;
  /** A truncate changed the size since the last flush (O_DSYNC does not cover it). */
  #resized = false;

  private constructor(name: string, path: string, fh: FileHandle, durableWrites: boolean) {
    this.name = name;
    this.path = path;
    this.#fh = fh;
    this.durableWrites = durableWrites;
  }

  /** Opens the file at `path`, creating it when missing; never truncates what is there. */
  static async open(name: string, path: string, options?: OpenOptions): Promise<FileDevice> {
    if (typeof path !== 'string' || path === '') throw TwinpageError.invalidArgument('path must be a non-empty string');
    // O_DSYNC where the platform has it (not Windows): there, flush does the work as for any file.
    const dsync = options?.durableWrites === true && typeof constants.O_DSYNC === 'number' ? constants.O_DSYNC : 0;
    const existing = dsync ? constants.O_RDWR | dsync : 'r+';
    let fh: FileHandle;
    try {
      fh = await open(path, existing);
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') throw mapFsError(err, `open ${path}`);
      try {
        fh = await open(path, dsync ? constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | dsync : 'wx+');
      } catch (err2) {
        // Created by someone else meanwhile: open what is there.
        if (codeOf(err2) !== 'EEXIST') throw mapFsError(err2, `create ${path}`);
        fh = await open(path, existing).catch((e: unknown) => { throw mapFsError(e, `open ${path}`); });
      }
    }
    return new FileDevice(name, path, fh, dsync !== 0);
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    const fh = this.#handle();
    try {
      return await readFully(position, into, async (at) => (await fh.read(into, at, into.length - at, position + at)).bytesRead);
    } catch (err) {
      throw mapFsError(err, `read ${this.path}`);
    }
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    const fh = this.#handle();
    try {
      await writeFully(position, data, async (at) => (await fh.write(data, at, data.length - at, position + at)).bytesWritten, this.path);
    } catch (err) {
      throw mapFsError(err, `write ${this.path}`);
    }
  }

  async flush(): Promise<void> {
    const fh = this.#handle();
    if (this.durableWrites && !this.#resized) return;
    this.#resized = false;
    try { await fh.datasync(); } catch (err) { this.#resized = true; throw mapFsError(err, `flush ${this.path}`); }
  }

  async size(): Promise<number> {
    const fh = this.#handle();
    try { return (await fh.stat()).size; } catch (err) { throw mapFsError(err, `stat ${this.path}`); }
  }

  async truncate(size: number): Promise<void> {
    const fh = this.#handle();
    checkPosition(size, 'size');
    this.#resized = true;
    try { await fh.truncate(size); } catch (err) { throw mapFsError(err, `truncate ${this.path}`); } finally {
      // Again once done: a flush that ran meanwhile may have synced before it.
      this.#resized = true;
    }
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    if (!fh) return;
    this.#fh = null;
    try { await fh.close(); } catch (err) { throw mapFsError(err, `close ${this.path}`); }
  }

  #handle(): FileHandle {
    if (!this.#fh) throw TwinpageError.closed(`device ${this.path} is closed`);
    return this.#fh;
  }
}

/** A data folder as a store: one file per device. Make one with {@link openFileStore}. */
export class FileStore implements Store {
  readonly kind = 'file';
  /** The folder holding the devices. */
  readonly dir: string;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir === '') throw TwinpageError.invalidArgument('dir must be a non-empty path');
    this.dir = dir;
  }

  async open(name: string, options?: OpenOptions): Promise<FileDevice> {
    return FileDevice.open(name, this.#path(name), options);
  }

  async exists(name: string): Promise<boolean> {
    const path = this.#path(name);
    try {
      await stat(path);
      return true;
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return false;
      throw mapFsError(err, `stat ${path}`);
    }
  }

  async remove(name: string): Promise<void> {
    const path = this.#path(name);
    try { await rm(path, { force: true }); } catch (err) { throw mapFsError(err, `remove ${path}`); }
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.#path(from, 'from');
    const target = this.#path(to, 'to');
    try { await rename(source, target); } catch (err) { throw mapFsError(err, `rename ${source} to ${target}`); }
  }

  async list(): Promise<string[]> {
    try {
      const entries = await readdir(this.dir, { withFileTypes: true });
      return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
    } catch (err) {
      throw mapFsError(err, `list ${this.dir}`);
    }
  }

  async sync(): Promise<void> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.dir, 'r');
      await fh.sync();
    } catch (err) {
      // Windows cannot open or fsync a folder; there renames are as durable as they get.
      if (process.platform === 'win32' && (codeOf(err) === 'EISDIR' || codeOf(err) === 'EPERM')) return;
      throw mapFsError(err, `sync ${this.dir}`);
    } finally {
      await fh?.close().catch(() => {});
    }
  }
  /** The file system's total and available bytes (statfs); null where Node cannot tell. */
  async space(): Promise<StorageSpace | null> {
    try {
      const s = await statfs(this.dir);
      return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
    } catch {
      return null;
    }
  }


  #path(name: string, what = 'name'): string {
    return join(this.dir, checkName(name, what));
  }
}

/** A data folder as a store (created, with its parents, when missing). */
export async function openFileStore(dir: string): Promise<FileStore> {
  if (typeof dir !== 'string' || dir === '') throw TwinpageError.invalidArgument('dir must be a non-empty path');
  try { await mkdir(dir, { recursive: true }); } catch (err) { throw mapFsError(err, `create ${dir}`); }
  return new FileStore(dir);
}
