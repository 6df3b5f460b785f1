// A mirrored set of devices on one node (US 7,107,411 claim 4): every write
// and flush goes to each healthy copy, reads come from a healthy copy, and a
// copy whose bytes fail verification is repaired from one that passes.

import { TwinpageError } from '../errors.js';
import type { Device, Store } from './device.js';

export interface CopyHealth { name: string; healthy: boolean; error?: string }

export class MirroredDevice implements Device {
  readonly name: string;
  readonly copies: readonly Device[];
  readonly #failed: Array<unknown | null>;

  constructor(copies: Device[]) {
    if (!Array.isArray(copies) || copies.length === 0) throw TwinpageError.invalidArgument('a mirrored device needs at least one copy');
    this.copies = copies;
    this.name = copies[0].name;
    this.#failed = copies.map(() => null);
  }

  health(): CopyHealth[] {
    return this.copies.map((c, i) => ({
      name: c.name, healthy: this.#failed[i] === null,
      ...(this.#failed[i] !== null ? { error: String((this.#failed[i] as Error)?.message ?? this.#failed[i]) } : {}),
    }));
  }

  read(position: number, into: Uint8Array): Promise<number> {
    return this.#first((c) => c.read(position, into));
  }

  /**
   * Reads from the first healthy copy whose bytes pass `verify`, then writes
   * those bytes over the copies that failed it. CORRUPT when none passes.
   */
  async readVerified(position: number, into: Uint8Array, verify: (bytes: Uint8Array) => boolean): Promise<{ copy: number; repaired: number[] }> {
    const bad: number[] = [];
    for (let i = 0; i < this.copies.length; i++) {
      if (this.#failed[i] !== null) continue;
      try {
        await this.copies[i].read(position, into);
      } catch (err) {
        this.#failed[i] = err;
        continue;
      }
      if (!verify(into)) { bad.push(i); continue; }
      const repaired: number[] = [];
      for (const b of bad) {
        try {
          await this.copies[b].write(position, into);
          repaired.push(b);
        } catch (err) {
          this.#failed[b] = err;
        }
      }
      return { copy: i, repaired };
    }
    if (this.#healthy().length === 0) throw this.#allFailed();
    throw TwinpageError.corrupt(`${this.name}: no copy of bytes [${position}, ${position + into.length}) passes verification`);
  }

  write(position: number, data: Uint8Array): Promise<void> { return this.#all((c) => c.write(position, data)); }
  flush(): Promise<void> { return this.#all((c) => c.flush()); }
  size(): Promise<number> { return this.#first((c) => c.size()); }
  truncate(size: number): Promise<void> { return this.#all((c) => c.truncate(size)); }
  async close(): Promise<void> { await Promise.all(this.copies.map((c) => c.close().catch(() => {}))); }

  #healthy(): number[] {
    return this.copies.map((_, i) => i).filter((i) => this.#failed[i] === null);
  }

  #allFailed(): unknown {
    return this.#failed.find((e) => e !== null) ?? TwinpageError.closed(`${this.name}: no healthy copy`);
  }

  /** Runs `op` on every healthy copy; a copy that fails is dropped, and only all failing fails. */
  async #all(op: (c: Device) => Promise<unknown>): Promise<void> {
    const live = this.#healthy();
    if (live.length === 0) throw this.#allFailed();
    const results = await Promise.allSettled(live.map((i) => op(this.copies[i])));
    let ok = 0;
    let firstError: unknown = null;
    results.forEach((r, k) => {
      if (r.status === 'fulfilled') ok++;
      else {
        firstError ??= r.reason;
        // A full device is the caller's to handle, not a broken copy.
        if ((r.reason as { code?: string })?.code !== 'NO_SPACE') this.#failed[live[k]] = r.reason;
      }
    });
    if (firstError && (ok === 0 || (firstError as { code?: string })?.code === 'NO_SPACE')) throw firstError;
  }

  async #first<T>(op: (c: Device) => Promise<T>): Promise<T> {
    for (const i of this.#healthy()) {
      try {
        return await op(this.copies[i]);
      } catch (err) {
        this.#failed[i] = err;
      }
    }
    throw this.#allFailed();
  }
}

/** Several stores kept as copies of each other: each name opens as a MirroredDevice. */
export class MirroredStore implements Store {
  readonly kind = 'mirrored';
  readonly stores: readonly Store[];

  constructor(stores: Store[]) {
    if (!Array.isArray(stores) || stores.length === 0) throw TwinpageError.invalidArgument('a mirrored store needs at least one store');
    this.stores = stores;
  }

  async open(name: string): Promise<Device> {
    return new MirroredDevice(await Promise.all(this.stores.map((s) => s.open(name))));
  }

  async exists(name: string): Promise<boolean> {
    return (await Promise.all(this.stores.map((s) => s.exists(name)))).some(Boolean);
  }

  async remove(name: string): Promise<void> { await Promise.all(this.stores.map((s) => s.remove(name))); }
  async rename(from: string, to: string): Promise<void> { await Promise.all(this.stores.map((s) => s.rename(from, to))); }

  async list(): Promise<string[]> {
    const all = new Set<string>();
    for (const s of this.stores) for (const n of await s.list()) all.add(n);
    return [...all].sort();
  }

  async sync(): Promise<void> { await Promise.all(this.stores.map((s) => s.sync())); }
}
