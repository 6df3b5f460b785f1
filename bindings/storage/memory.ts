// Devices in memory: for tests, benchmarks and the browser without OPFS.
// A MemoryStore keeps its devices' bytes after they are closed, so a memory
// can be closed and opened again on the same store like on a folder.
// No Node imports: this file runs in browsers too.

import { TwinpageError } from '../errors.js';
import { checkAccess, checkName, checkPosition, type Device, type StorageSpace, type Store } from './device.js';

export interface MemoryDeviceOptions {
  /**
   * Bytes the device may hold; a write or truncate past it fails with NO_SPACE
   * and changes nothing, as a full disk would.
   * @default Infinity
   */
  capacity?: number;
}

export interface MemoryStoreOptions {
  /**
   * Bytes each device of the store may hold (see {@link MemoryDeviceOptions.capacity}).
   * @default Infinity
   */
  deviceCapacity?: number;
}

/** The bytes behind a memory device, shared by every handle opened on it. */
class Contents {
  /** Room allocated so far; grows by doubling. */
  bytes = new Uint8Array(0);
  /** The device's size: bytes at and past it read as zero. */
  length = 0;

  /** Makes room for `end` bytes, doubling (but never past `limit`). */
  reserve(end: number, limit: number): void {
    if (end <= this.bytes.length) return;
    let room = Math.max(4096, this.bytes.length);
    while (room < end) room *= 2;
    const next = new Uint8Array(Math.min(room, Math.max(end, limit)));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

/** A device over a growable Uint8Array. */
export class MemoryDevice implements Device {
  readonly name: string;
  /** Bytes this device may hold; see {@link MemoryDeviceOptions.capacity}. */
  readonly capacity: number;
  #contents = new Contents();
  #closed = false;

  constructor(name = 'memory', options: MemoryDeviceOptions = {}) {
    this.name = checkName(name);
    this.capacity = checkCapacity(options.capacity, 'capacity');
  }

  /** A fresh open handle onto the same bytes (even when this one is closed), under `name`. */
  reopen(name = this.name): MemoryDevice {
    const twin = new MemoryDevice(name, { capacity: this.capacity });
    twin.#contents = this.#contents;
    return twin;
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    this.#checkOpen();
    checkAccess(position, into, 'into');
    const c = this.#contents;
    const n = Math.max(0, Math.min(into.length, c.length - position));
    if (n > 0) into.set(c.bytes.subarray(position, position + n));
    into.fill(0, n);
    return n;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    checkAccess(position, data, 'data');
    if (data.length === 0) return; // like a file: an empty write extends nothing
    const end = position + data.length;
    this.#checkRoom(end);
    const c = this.#contents;
    c.reserve(end, this.capacity);
    c.bytes.set(data, position);
    c.length = Math.max(c.length, end);
  }

  async flush(): Promise<void> { this.#checkOpen(); }

  async size(): Promise<number> {
    this.#checkOpen();
    return this.#contents.length;
  }

  async truncate(size: number): Promise<void> {
    this.#checkOpen();
    checkPosition(size, 'size');
    this.#checkRoom(size);
    const c = this.#contents;
    c.reserve(size, this.capacity);
    // Zero what is cut off, so growing again reads zeros.
    if (size < c.length) c.bytes.fill(0, size, c.length);
    c.length = size;
  }

  async close(): Promise<void> { this.#closed = true; }

  #checkRoom(end: number): void {
    if (end > this.capacity) throw TwinpageError.noSpace(`device ${this.name} is full: ${end} bytes asked, ${this.capacity} allowed`);
  }

  #checkOpen(): void {
    if (this.#closed) throw TwinpageError.closed(`device ${this.name} is closed`);
  }
}

/** A map of memory devices; their bytes live as long as the store object. */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  /** One never-handed-out device per name; `open` returns handles onto its bytes. */
  readonly #devices = new Map<string, MemoryDevice>();
  readonly #deviceCapacity: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#deviceCapacity = checkCapacity(options.deviceCapacity, 'deviceCapacity');
  }

  async open(name: string): Promise<Device> {
    checkName(name);
    let device = this.#devices.get(name);
    if (!device) this.#devices.set(name, (device = new MemoryDevice(name, { capacity: this.#deviceCapacity })));
    return device.reopen();
  }

  async exists(name: string): Promise<boolean> { return this.#devices.has(checkName(name)); }

  async remove(name: string): Promise<void> { this.#devices.delete(checkName(name)); }

  async rename(from: string, to: string): Promise<void> {
    const device = this.#devices.get(checkName(from, 'from'));
    checkName(to, 'to');
    if (!device) throw TwinpageError.notFound(`no device ${from} to rename`);
    if (from === to) return;
    // Handles still open on `from` keep its bytes, like open files after a rename.
    this.#devices.set(to, device.reopen(to));
    this.#devices.delete(from);
  }

  async list(): Promise<string[]> { return [...this.#devices.keys()].sort(); }

  async sync(): Promise<void> {}

  /** Each device may hold `deviceCapacity` bytes: the room left in the fullest one (Infinity when unbounded). */
  async space(): Promise<StorageSpace | null> {
    const total = this.#deviceCapacity;
    if (total === Infinity) return { total, free: total };
    let largest = 0;
    for (const d of this.#devices.values()) largest = Math.max(largest, await d.reopen().size());
    return { total, free: Math.max(0, total - largest) };
  }
}

function checkCapacity(value: unknown, option: string): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || !(value === Infinity || (Number.isSafeInteger(value) && value >= 0))) {
    throw TwinpageError.invalidArgument(`${option} must be a non-negative integer or Infinity, got ${String(value)}`);
  }
  return value;
}
