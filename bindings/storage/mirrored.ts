// A mirrored set of devices on one node (US 7,107,411 claim 4): every write
// and flush goes to each healthy copy in parallel, reads come from the first
// healthy copy, and a copy whose bytes fail verification is repaired from one
// that passes.
//
// A copy whose operation throws while another copy succeeds is marked
// unhealthy and skipped from then on (its bytes now lag). When every healthy
// copy fails the same operation, the operation throws the first error and no
// copy is marked: the failure is the operation's (a full disk, say), the
// copies still hold everything written before it, and reads go on.
// Health lives only as long as this object: resyncing a copy that fell
// behind is the caller's business (page checksums and readVerified find it).

import { TwinpageError } from '../errors.js';
import { checkAccess, checkPosition, type Device, type OpenOptions, type StorageSpace, type Store } from './device.js';

/** The state of one copy of a mirrored device. */
export interface CopyHealth {
  /** The copy's device name. */
  name: string;
  healthy: boolean;
  /** Why the copy was marked unhealthy: the message of the error it threw. */
  error?: string;
}

export class MirroredDevice implements Device {
  readonly name: string;
  /** The copies, in the order reads try them. */
  readonly copies: readonly Device[];
  /** The error each copy was marked unhealthy for, or undefined while healthy. */
  readonly #failures: unknown[];
  #closed = false;

  constructor(copies: Device[]) {
    if (!Array.isArray(copies) || copies.length === 0 || !copies.every(isDevice)) {
      throw TwinpageError.invalidArgument('copies must be a non-empty array of devices');
    }
    this.copies = [...copies];
    this.name = copies[0].name;
    this.#failures = copies.map(() => undefined);
  }

  /** Each copy's state, in order. */
  health(): CopyHealth[] {
    return this.copies.map((c, i) => {
      const failure = this.#failures[i];
      return failure === undefined
        ? { name: c.name, healthy: true }
        : { name: c.name, healthy: false, error: (failure as Error | null)?.message ?? String(failure) };
    });
  }

  /** Reads from the first healthy copy (a copy that throws is marked and the next one tried). */
  async read(position: number, into: Uint8Array): Promise<number> {
    this.#checkOpen();
    checkAccess(position, into, 'into');
    return this.#first((c) => c.read(position, into));
  }

  /**
   * Reads from the healthy copies in order until one's bytes pass `verify`,
   * then writes those bytes over (and flushes) the copies that failed it.
   * Returns the copy read and the copies repaired; CORRUPT when no copy passes.
   */
  async readVerified(position: number, into: Uint8Array, verify: (bytes: Uint8Array) => boolean): Promise<{ copy: number; repaired: number[] }> {
    this.#checkOpen();
    checkAccess(position, into, 'into');
    if (typeof verify !== 'function') throw TwinpageError.invalidArgument('verify must be a function');
    const bad: number[] = [];
    const failed: Array<{ copy: number; error: unknown }> = [];
    for (const i of this.#healthy()) {
      try {
        await this.copies[i].read(position, into);
      } catch (error) {
        failed.push({ copy: i, error });
        continue;
      }
      this.#mark(failed); // another copy could be read: those that threw are out
      if (!verify(into)) {
        bad.push(i);
        continue;
      }
      return { copy: i, repaired: await this.#repair(bad, position, into) };
    }
    if (bad.length === 0) throw failed[0].error;
    throw TwinpageError.corrupt(`${this.name}: no copy of bytes [${position}, ${position + into.length}) passes verification`);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    checkAccess(position, data, 'data');
    await this.#all((c) => c.write(position, data));
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    await this.#all((c) => c.flush());
  }

  /** The longest healthy copy's size (a copy cut short is repaired as it is read). */
  async size(): Promise<number> {
    this.#checkOpen();
    const live = this.#healthy();
    const results = await Promise.allSettled(live.map((i) => this.copies[i].size()));
    const failed = results.flatMap((r, k) => (r.status === 'rejected' ? [{ copy: live[k], error: r.reason as unknown }] : []));
    if (failed.length === live.length) throw failed[0].error;
    this.#mark(failed);
    return Math.max(...results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen();
    checkPosition(size, 'size');
    await this.#all((c) => c.truncate(size));
  }

  /** Closes every copy; throws the first error of a healthy copy's close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const results = await Promise.allSettled(this.copies.map((c) => c.close()));
    const failed = results.findIndex((r, i) => r.status === 'rejected' && this.#failures[i] === undefined);
    if (failed >= 0) throw (results[failed] as PromiseRejectedResult).reason;
  }

  /** Writes the good bytes over each copy in `bad`; returns the copies repaired. */
  async #repair(bad: number[], position: number, good: Uint8Array): Promise<number[]> {
    const results = await Promise.allSettled(bad.map(async (i) => {
      await this.copies[i].write(position, good);
      await this.copies[i].flush();
    }));
    const repaired = bad.filter((_, k) => results[k].status === 'fulfilled');
    this.#mark(results.flatMap((r, k) => (r.status === 'rejected' ? [{ copy: bad[k], error: r.reason as unknown }] : [])));
    return repaired;
  }

  /** Runs `op` on every healthy copy in parallel; copies that fail are marked, unless all fail. */
  async #all(op: (c: Device) => Promise<unknown>): Promise<void> {
    const live = this.#healthy();
    const results = await Promise.allSettled(live.map((i) => op(this.copies[i])));
    const failed = results.flatMap((r, k) => (r.status === 'rejected' ? [{ copy: live[k], error: r.reason as unknown }] : []));
    if (failed.length === live.length) throw failed[0].error;
    this.#mark(failed);
  }

  /** Runs `op` on the healthy copies in order until one succeeds; those that failed before it are marked. */
  async #first<T>(op: (c: Device) => Promise<T>): Promise<T> {
    const failed: Array<{ copy: number; error: unknown }> = [];
    for (const i of this.#healthy()) {
      let result: T;
      try {
        result = await op(this.copies[i]);
      } catch (error) {
        failed.push({ copy: i, error });
        continue;
      }
      this.#mark(failed);
      return result;
    }
    throw failed[0].error; // every healthy copy failed: none is marked
  }

  /**
   * Marks the copies in `failed` unhealthy, and empties it. Never marks the
   * last healthy copy (that can only come from operations racing): the
   * operation fails with its error instead.
   */
  #mark(failed: Array<{ copy: number; error: unknown }>): void {
    if (failed.length === 0) return;
    const failing = new Set(failed.map((f) => f.copy));
    if (this.#healthy().every((i) => failing.has(i))) throw failed[0].error;
    for (const f of failed) this.#failures[f.copy] = f.error;
    failed.length = 0;
  }

  #healthy(): number[] {
    return this.copies.flatMap((_, i) => (this.#failures[i] === undefined ? [i] : []));
  }

  #checkOpen(): void {
    if (this.#closed) throw TwinpageError.closed(`device ${this.name} is closed`);
  }
}

/** The copies behind `device`: a mirrored device's, or the device alone. */
export function copiesOf(device: Device): readonly Device[] {
  const copies = (device as Partial<MirroredDevice>).copies;
  return Array.isArray(copies) && typeof (device as Partial<MirroredDevice>).readVerified === 'function' ? copies : [device];
}

/**
 * Reads `into` from `position` and checks it with `verify`. A mirrored
 * device tries each copy until one passes and repairs the others from it;
 * `ok` is false when no copy passes (`into` then holds the first copy's bytes).
 */
export async function readChecked(device: Device, position: number, into: Uint8Array, verify: (bytes: Uint8Array) => boolean): Promise<{ ok: boolean; repaired: number }> {
  const mirrored = device as Partial<MirroredDevice>;
  if (typeof mirrored.readVerified === 'function') {
    try {
      const r = await mirrored.readVerified(position, into, verify);
      return { ok: true, repaired: r.repaired.length };
    } catch (err) {
      if ((err as { code?: string }).code !== 'CORRUPT') throw err;
      await device.read(position, into);
      return { ok: false, repaired: 0 };
    }
  }
  await device.read(position, into);
  return { ok: verify(into), repaired: 0 };
}

/**
 * Checks `length` bytes from `position` on every copy, `unit` bytes at a
 * time, with `verify(bytes, at)`: a unit bad on one copy and good on another
 * is rewritten from the good one (unless `repair` is false), `visit` sees
 * each good unit once, and the units bad on every copy are returned.
 */
export async function scrubRange(
  device: Device, position: number, length: number, unit: number,
  verify: (bytes: Uint8Array, at: number) => boolean,
  visit?: (bytes: Uint8Array, at: number) => void,
  repair = true,
): Promise<{ repaired: number; bad: number[] }> {
  const copies = copiesOf(device);
  const reads = await Promise.all(copies.map(async (c) => {
    const buf = new Uint8Array(length);
    try { await c.read(position, buf); return buf; } catch { return null; }
  }));
  if (reads.every((r) => r === null)) await device.read(position, new Uint8Array(length)); // every copy failed: throw the device's error
  let repaired = 0;
  const bad: number[] = [];
  const rewritten = new Set<number>();
  for (let k = 0; k < length; k += unit) {
    const at = position + k;
    const n = Math.min(unit, length - k);
    const good = reads.findIndex((r) => r !== null && verify(r.subarray(k, k + n), at));
    if (good < 0) { bad.push(at); continue; }
    const bytes = reads[good]!.subarray(k, k + n);
    visit?.(bytes, at);
    for (let c = 0; c < copies.length; c++) {
      // Copies before `good` failed the check; later ones are checked here. A copy that could
      // not be read (a file cut short, say) is written too: if that fails, it stays bad.
      if (c === good || !repair) continue;
      if (c > good && reads[c] !== null && verify(reads[c]!.subarray(k, k + n), at)) continue;
      try {
        await copies[c].write(at, bytes);
        rewritten.add(c);
        repaired++;
      } catch { /* a copy that cannot be written stays bad */ }
    }
  }
  for (const c of rewritten) await copies[c].flush().catch(() => {});
  return { repaired, bad };
}

/** Several stores kept as copies of each other: each name opens as a MirroredDevice. */
export class MirroredStore implements Store {
  readonly kind = 'mirrored';
  /** The stores, in the order reads try their copies. */
  readonly stores: readonly Store[];

  constructor(stores: Store[]) {
    if (!Array.isArray(stores) || stores.length === 0 || !stores.every(isStore)) {
      throw TwinpageError.invalidArgument('stores must be a non-empty array of stores');
    }
    this.stores = [...stores];
  }

  /** Opens `name` on every store; if any store fails, closes the others and throws. */
  async open(name: string, options?: OpenOptions): Promise<MirroredDevice> {
    const results = await Promise.allSettled(this.stores.map((s) => s.open(name, options)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      await Promise.allSettled(opened.map((d) => d.close()));
      throw failed.reason;
    }
    return new MirroredDevice(opened);
  }

  /** True when any store holds `name`. */
  async exists(name: string): Promise<boolean> {
    return (await Promise.all(this.stores.map((s) => s.exists(name)))).some(Boolean);
  }

  async remove(name: string): Promise<void> {
    await settleAll(this.stores.map((s) => s.remove(name)));
  }

  /** Renames on every store holding `from` (removing `to` on the others); NOT_FOUND when none does. */
  async rename(from: string, to: string): Promise<void> {
    const holds = await Promise.all(this.stores.map((s) => s.exists(from)));
    if (!holds.some(Boolean)) throw TwinpageError.notFound(`no device ${from} to rename`);
    await settleAll(this.stores.map((s, i) => (holds[i] ? s.rename(from, to) : s.remove(to))));
  }

  /** The names held by any store, sorted. */
  async list(): Promise<string[]> {
    const lists = await Promise.all(this.stores.map((s) => s.list()));
    return [...new Set(lists.flat())].sort();
  }

  async sync(): Promise<void> {
    await settleAll(this.stores.map((s) => s.sync()));
  }

  /** Every copy must hold everything: the smallest total and free room of the stores (null when one cannot tell). */
  async space(): Promise<StorageSpace | null> {
    const all = await Promise.all(this.stores.map((s) => s.space()));
    if (all.some((x) => x === null)) return null;
    return { total: Math.min(...all.map((x) => x!.total)), free: Math.min(...all.map((x) => x!.free)) };
  }
}

/** Waits for every promise (none left running), then throws the first error. */
async function settleAll(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function isDevice(d: unknown): d is Device {
  const x = d as Partial<Device> | null;
  return typeof x?.read === 'function' && typeof x.write === 'function' && typeof x.flush === 'function' && typeof x.close === 'function';
}

function isStore(s: unknown): s is Store {
  const x = s as Partial<Store> | null;
  return typeof x?.open === 'function' && typeof x.list === 'function' && typeof x.remove === 'function';
}
