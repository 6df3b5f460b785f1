// Devices over files, for Node: a data folder holds one file per device.
// Positional reads and writes on a FileHandle; flush is fdatasync.

import { open, mkdir, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { TwinpageError } from '../errors.js';
import { checkBytes, checkName, checkPosition, type Device, type Store } from './device.js';

/** Turns a Node fs error into a TwinpageError (NO_SPACE, NOT_FOUND or IO_ERROR), keeping it as `cause`. */
export function mapFsError(err: unknown, what: string): TwinpageError {
  if (err instanceof TwinpageError) return err;
  const code = (err as { code?: string })?.code;
  const message = `${what}: ${(err as Error)?.message ?? String(err)}`;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return new TwinpageError('NO_SPACE', message, { cause: err });
  if (code === 'ENOENT') return new TwinpageError('NOT_FOUND', message, { cause: err });
  return new TwinpageError('IO_ERROR', message, { cause: err });
}

export class FileDevice implements Device {
  readonly name: string;
  readonly path: string;
  #fh: FileHandle | null;

  private constructor(name: string, path: string, fh: FileHandle) {
    this.name = name;
    this.path = path;
    this.#fh = fh;
  }

  /** Opens `path`, creating it when missing; never truncates. */
  static async open(name: string, path: string): Promise<FileDevice> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r+');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw mapFsError(err, `open ${path}`);
      try {
        fh = await open(path, 'wx+');
      } catch (err2) {
        // Created by someone else meanwhile: open what is there.
        if ((err2 as { code?: string }).code !== 'EEXIST') throw mapFsError(err2, `create ${path}`);
        fh = await open(path, 'r+').catch((e) => { throw mapFsError(e, `open ${path}`); });
      }
    }
    return new FileDevice(name, path, fh);
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    const fh = this.#handle();
    checkPosition(position, 'position');
    checkBytes(into, 'into');
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw mapFsError(err, `read ${this.path}`);
    }
    into.fill(0, done);
    return done;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    const fh = this.#handle();
    checkPosition(position, 'position');
    checkBytes(data, 'data');
    let done = 0;
    try {
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw mapFsError(err, `write ${this.path}`);
    }
  }

  async flush(): Promise<void> {
    const fh = this.#handle();
    try { await fh.datasync(); } catch (err) { throw mapFsError(err, `flush ${this.path}`); }
  }

  async size(): Promise<number> {
    const fh = this.#handle();
    try { return (await fh.stat()).size; } catch (err) { throw mapFsError(err, `stat ${this.path}`); }
  }

  async truncate(size: number): Promise<void> {
    const fh = this.#handle();
    checkPosition(size, 'size');
    try { await fh.truncate(size); } catch (err) { throw mapFsError(err, `truncate ${this.path}`); }
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    if (fh) await fh.close().catch(() => {});
  }

  #handle(): FileHandle {
    if (!this.#fh) throw TwinpageError.closed(`device ${this.path} is closed`);
    return this.#fh;
  }
}

export class FileStore implements Store {
  readonly kind = 'file';
  readonly dir: string;

  constructor(dir: string) { this.dir = dir; }

  open(name: string): Promise<Device> { return FileDevice.open(name, join(this.dir, checkName(name))); }

  async exists(name: string): Promise<boolean> {
    try { await stat(join(this.dir, checkName(name))); return true; } catch { return false; }
  }

  async remove(name: string): Promise<void> {
    try { await rm(join(this.dir, checkName(name)), { force: true }); } catch (err) { throw mapFsError(err, `remove ${name}`); }
  }

  async rename(from: string, to: string): Promise<void> {
    try { await rename(join(this.dir, checkName(from)), join(this.dir, checkName(to))); } catch (err) { throw mapFsError(err, `rename ${from}`); }
  }

  async list(): Promise<string[]> {
    try { return (await readdir(this.dir)).sort(); } catch (err) { throw mapFsError(err, `list ${this.dir}`); }
  }

  async sync(): Promise<void> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.dir, 'r');
      await fh.sync();
    } catch (err) {
      throw mapFsError(err, `sync ${this.dir}`);
    } finally {
      await fh?.close().catch(() => {});
    }
  }
}

/** A data folder as a store (created, with its parents, when missing). */
export async function openFileStore(dir: string): Promise<FileStore> {
  if (typeof dir !== 'string' || dir === '') throw TwinpageError.invalidArgument('the data folder must be a non-empty path');
  try { await mkdir(dir, { recursive: true }); } catch (err) { throw mapFsError(err, `create ${dir}`); }
  return new FileStore(dir);
}
