// Devices in the Origin Private File System, for browsers. A sync access
// handle (dedicated workers only) gives positional reads and writes, a
// flush, a size and a truncate. No Node imports.
//
// The handle types are declared here, minimally, because TypeScript's DOM
// lib does not carry all of them (FileSystemSyncAccessHandle is worker-only).

import { TwinpageError } from '../errors.js';
import { checkName, checkPosition, readFully, writeFully, type Device, type StorageSpace, type Store } from './device.js';

/** The parts of a FileSystemSyncAccessHandle used here. */
export interface OpfsSyncAccessHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  flush(): void;
  getSize(): number;
  truncate(size: number): void;
  close(): void;
}

/** The parts of a FileSystemFileHandle used here. */
export interface OpfsFileHandle {
  createSyncAccessHandle(): Promise<OpfsSyncAccessHandle>;
  /** Not in every browser; rename falls back to copy and remove without it. */
  move?(destination: OpfsDirectoryHandle, newName: string): Promise<void>;
}

/** The parts of a FileSystemDirectoryHandle used here. */
export interface OpfsDirectoryHandle {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  removeEntry(name: string): Promise<void>;
  entries(): AsyncIterable<[string, { kind: string }]>;
}

/** Turns a DOMException into a TwinpageError (NO_SPACE, NOT_FOUND or IO_ERROR), keeping it as `cause`. */
export function mapOpfsError(err: unknown, what: string): TwinpageError {
  if (err instanceof TwinpageError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  const message = `${what}: ${(err as Error | null)?.message ?? String(err)}`;
  if (name === 'QuotaExceededError') return TwinpageError.noSpace(message, err);
  if (name === 'NotFoundError') return TwinpageError.notFound(message, err);
  return TwinpageError.ioError(message, err);
}

const isNotFound = (err: unknown) => {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'NotFoundError' || name === 'TypeMismatchError';
};

/** One OPFS file as a device, over its sync access handle. */
export class OpfsDevice implements Device {
  readonly name: string;
  #h: OpfsSyncAccessHandle | null;

  constructor(name: string, handle: OpfsSyncAccessHandle) {
    this.name = name;
    this.#h = handle;
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    const h = this.#handle();
    try {
      return await readFully(position, into, (at) => h.read(into.subarray(at), { at: position + at }));
    } catch (err) {
      throw mapOpfsError(err, `read ${this.name}`);
    }
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    const h = this.#handle();
    try {
      await writeFully(position, data, (at) => h.write(data.subarray(at), { at: position + at }), this.name);
    } catch (err) {
      throw mapOpfsError(err, `write ${this.name}`);
    }
  }

  async flush(): Promise<void> {
    const h = this.#handle();
    try { h.flush(); } catch (err) { throw mapOpfsError(err, `flush ${this.name}`); }
  }

  async size(): Promise<number> {
    const h = this.#handle();
    try { return h.getSize(); } catch (err) { throw mapOpfsError(err, `size ${this.name}`); }
  }

  async truncate(size: number): Promise<void> {
    const h = this.#handle();
    checkPosition(size, 'size');
    try { h.truncate(size); } catch (err) { throw mapOpfsError(err, `truncate ${this.name}`); }
  }

  async close(): Promise<void> {
    const h = this.#h;
    if (!h) return;
    this.#h = null;
    try { h.close(); } catch (err) { throw mapOpfsError(err, `close ${this.name}`); }
  }

  #handle(): OpfsSyncAccessHandle {
    if (!this.#h) throw TwinpageError.closed(`device ${this.name} is closed`);
    return this.#h;
  }
}

/** An OPFS directory as a store: one file per device. Make one with {@link openOpfsStore}. */
export class OpfsStore implements Store {
  readonly kind = 'opfs';
  readonly #dir: OpfsDirectoryHandle;

  constructor(dir: OpfsDirectoryHandle) {
    if (typeof (dir as Partial<OpfsDirectoryHandle> | null)?.getFileHandle !== 'function') {
      throw TwinpageError.invalidArgument('dir must be a FileSystemDirectoryHandle');
    }
    this.#dir = dir;
  }

  async open(name: string): Promise<OpfsDevice> {
    checkName(name);
    try {
      const file = await this.#dir.getFileHandle(name, { create: true });
      if (typeof file.createSyncAccessHandle !== 'function') {
        throw TwinpageError.ioError('OPFS sync access handles exist only in dedicated workers');
      }
      return new OpfsDevice(name, await file.createSyncAccessHandle());
    } catch (err) {
      throw mapOpfsError(err, `open ${name}`);
    }
  }

  async exists(name: string): Promise<boolean> {
    checkName(name);
    try {
      await this.#dir.getFileHandle(name);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw mapOpfsError(err, `exists ${name}`);
    }
  }

  async remove(name: string): Promise<void> {
    checkName(name);
    try { await this.#dir.removeEntry(name); } catch (err) {
      if (!isNotFound(err)) throw mapOpfsError(err, `remove ${name}`);
    }
  }

  /** Renames with `move()` where the browser has it, else copies and removes (not atomic). */
  async rename(from: string, to: string): Promise<void> {
    checkName(from, 'from');
    checkName(to, 'to');
    if (from === to) {
      if (!(await this.exists(from))) throw TwinpageError.notFound(`no device ${from} to rename`);
      return;
    }
    let file: OpfsFileHandle;
    try { file = await this.#dir.getFileHandle(from); } catch (err) { throw mapOpfsError(err, `rename ${from}`); }
    if (typeof file.move === 'function') {
      try {
        await file.move(this.#dir, to);
      } catch (err) {
        // Some browsers refuse to move over an existing file: remove it, then move.
        if (!(await this.exists(to))) throw mapOpfsError(err, `rename ${from} to ${to}`);
        await this.remove(to);
        try { await file.move(this.#dir, to); } catch (err2) { throw mapOpfsError(err2, `rename ${from} to ${to}`); }
      }
      return;
    }
    await this.#copy(from, to);
    await this.remove(from);
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const [name, entry] of this.#dir.entries()) if (entry.kind === 'file') names.push(name);
    } catch (err) {
      throw mapOpfsError(err, 'list');
    }
    return names.sort();
  }

  /** OPFS makes directory changes durable by itself. */
  async sync(): Promise<void> {}

  /** The origin's storage quota and what is left of it (navigator.storage.estimate()), or null without it. */
  async space(): Promise<StorageSpace | null> {
    const storage = (globalThis as { navigator?: { storage?: { estimate?: () => Promise<{ quota?: number; usage?: number }> } } }).navigator?.storage;
    if (typeof storage?.estimate !== 'function') return null;
    try {
      const { quota, usage } = await storage.estimate();
      if (typeof quota !== 'number') return null;
      return { total: quota, free: Math.max(0, quota - (usage ?? 0)) };
    } catch {
      return null;
    }
  }

  async #copy(from: string, to: string): Promise<void> {
    const src = await this.open(from);
    try {
      const dst = await this.open(to);
      try {
        const bytes = new Uint8Array(await src.size());
        await src.read(0, bytes);
        await dst.truncate(0);
        await dst.write(0, bytes);
        await dst.flush();
      } finally {
        await dst.close();
      }
    } finally {
      await src.close();
    }
  }
}

/** A folder `dirName` of the origin's private file system as a store (call it in a dedicated worker). */
export async function openOpfsStore(dirName: string): Promise<OpfsStore> {
  checkName(dirName, 'dirName');
  const storage = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<unknown> } } }).navigator?.storage;
  if (typeof storage?.getDirectory !== 'function') {
    throw TwinpageError.ioError('OPFS is not available here (navigator.storage.getDirectory is missing)');
  }
  try {
    const root = (await storage.getDirectory()) as OpfsDirectoryHandle;
    return new OpfsStore(await root.getDirectoryHandle(dirName, { create: true }));
  } catch (err) {
    throw mapOpfsError(err, `open OPFS folder ${dirName}`);
  }
}
