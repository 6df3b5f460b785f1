// Devices in the Origin Private File System, for browsers. A sync access
// handle (workers only) gives positional reads and writes and a flush.

import { TwinpageError } from '../errors.js';
import { checkBytes, checkName, checkPosition, type Device, type Store } from './device.js';

/** The parts of FileSystemSyncAccessHandle used here. */
interface SyncAccessHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  flush(): void;
  getSize(): number;
  truncate(size: number): void;
  close(): void;
}

interface OpfsFileHandle { createSyncAccessHandle(): Promise<SyncAccessHandle>; move?(dir: unknown, name: string): Promise<void> }

interface OpfsDirectoryHandle {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

function mapOpfsError(err: unknown, what: string): TwinpageError {
  if (err instanceof TwinpageError) return err;
  const name = (err as { name?: string })?.name;
  const message = `${what}: ${(err as Error)?.message ?? String(err)}`;
  if (name === 'QuotaExceededError') return new TwinpageError('NO_SPACE', message, { cause: err });
  if (name === 'NotFoundError') return new TwinpageError('NOT_FOUND', message, { cause: err });
  return new TwinpageError('IO_ERROR', message, { cause: err });
}

export class OpfsDevice implements Device {
  readonly name: string;
  #h: SyncAccessHandle | null;

  constructor(name: string, handle: SyncAccessHandle) {
    this.name = name;
    this.#h = handle;
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    const h = this.#handle();
    checkPosition(position, 'position');
    checkBytes(into, 'into');
    let n: number;
    try { n = h.read(into, { at: position }); } catch (err) { throw mapOpfsError(err, `read ${this.name}`); }
    into.fill(0, n);
    return n;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    const h = this.#handle();
    checkPosition(position, 'position');
    checkBytes(data, 'data');
    let done = 0;
    try {
      while (done < data.length) done += h.write(data.subarray(done), { at: position + done });
    } catch (err) {
      throw mapOpfsError(err, `write ${this.name}`);
    }
  }

  async flush(): Promise<void> {
    try { this.#handle().flush(); } catch (err) { throw mapOpfsError(err, `flush ${this.name}`); }
  }

  async size(): Promise<number> { return this.#handle().getSize(); }

  async truncate(size: number): Promise<void> {
    checkPosition(size, 'size');
    try { this.#handle().truncate(size); } catch (err) { throw mapOpfsError(err, `truncate ${this.name}`); }
  }

  async close(): Promise<void> {
    const h = this.#h;
    this.#h = null;
    h?.close();
  }

  #handle(): SyncAccessHandle {
    if (!this.#h) throw TwinpageError.closed(`device ${this.name} is closed`);
    return this.#h;
  }
}

export class OpfsStore implements Store {
  readonly kind = 'opfs';
  readonly #dir: OpfsDirectoryHandle;

  constructor(dir: OpfsDirectoryHandle) { this.#dir = dir; }

  async open(name: string): Promise<Device> {
    try {
      const file = await this.#dir.getFileHandle(checkName(name), { create: true });
      return new OpfsDevice(name, await file.createSyncAccessHandle());
    } catch (err) {
      throw mapOpfsError(err, `open ${name}`);
    }
  }

  async exists(name: string): Promise<boolean> {
    try { await this.#dir.getFileHandle(checkName(name)); return true; } catch { return false; }
  }

  async remove(name: string): Promise<void> {
    try { await this.#dir.removeEntry(checkName(name)); } catch (err) {
      if ((err as { name?: string })?.name !== 'NotFoundError') throw mapOpfsError(err, `remove ${name}`);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const file = await this.#dir.getFileHandle(checkName(from)).catch((e) => { throw mapOpfsError(e, `rename ${from}`); });
    if (typeof file.move === 'function') {
      await this.remove(checkName(to));
      await file.move(this.#dir, to);
      return;
    }
    const src = await this.open(from);
    const dst = await this.open(to);
    try {
      const bytes = new Uint8Array(await src.size());
      await src.read(0, bytes);
      await dst.truncate(0);
      await dst.write(0, bytes);
      await dst.flush();
    } finally {
      await src.close();
      await dst.close();
    }
    await this.remove(from);
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    for await (const n of this.#dir.keys()) names.push(n);
    return names.sort();
  }

  async sync(): Promise<void> {}
}

/** A folder of the origin's private file system as a store (in a worker). */
export async function openOpfsStore(dirName: string): Promise<OpfsStore> {
  checkName(dirName);
  const storage = (globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<OpfsDirectoryHandle> } } }).navigator?.storage;
  if (!storage?.getDirectory) throw TwinpageError.invalidArgument('OPFS is not available here (navigator.storage.getDirectory is missing)');
  const root = await storage.getDirectory();
  return new OpfsStore(await root.getDirectoryHandle(dirName, { create: true }));
}
