// Devices in memory: for tests, benchmarks and the browser without OPFS.
// A MemoryStore keeps its devices' bytes after they are closed, so a memory
// can be closed and opened again on the same store like on a folder.

import { TwinpageError } from '../errors.js';
import { checkBytes, checkName, checkPosition, type Device, type Store } from './device.js';

/** The bytes behind a memory device, shared by every handle opened on it. */
class Buffer {
  bytes = new Uint8Array(0);
  length = 0;
}

export interface MemoryStoreOptions {
  /**
   * Bytes each device may hold; a write past it fails with NO_SPACE, as a full disk would.
   * @default Infinity
   */
  deviceCapacity?: number;
}

export class MemoryDevice implements Device {
  readonly name: string;
  readonly capacity: number;
  readonly #buf: Buffer;
  #closed = false;

  constructor(name: string, buf = new Buffer(), capacity = Infinity) {
    this.name = name;
    this.#buf = buf;
    this.capacity = capacity;
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    this.#check();
    checkPosition(position, 'position');
    checkBytes(into, 'into');
    const b = this.#buf;
    const n = Math.max(0, Math.min(into.length, b.length - position));
    if (n > 0) into.set(b.bytes.subarray(position, position + n));
    into.fill(0, n);
    return n;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.#check();
    checkPosition(position, 'position');
    checkBytes(data, 'data');
    const end = position + data.length;
    if (end > this.capacity) throw TwinpageError.noSpace(`device ${this.name} is full (${this.capacity} bytes)`);
    this.#grow(end);
    this.#buf.bytes.set(data, position);
    this.#buf.length = Math.max(this.#buf.length, end);
  }

  async flush(): Promise<void> { this.#check(); }

  async size(): Promise<number> {
    this.#check();
    return this.#buf.length;
  }

  async truncate(size: number): Promise<void> {
    this.#check();
    checkPosition(size, 'size');
    if (size > this.capacity) throw TwinpageError.noSpace(`device ${this.name} is full (${this.capacity} bytes)`);
    this.#grow(size);
    const b = this.#buf;
    if (size < b.length) b.bytes.fill(0, size, b.length);
    b.length = size;
  }

  async close(): Promise<void> { this.#closed = true; }

  #grow(end: number): void {
    const b = this.#buf;
    if (end <= b.bytes.length) return;
    let cap = Math.max(4096, b.bytes.length);
    while (cap < end) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(b.bytes.subarray(0, b.length));
    b.bytes = next;
  }

  #check(): void {
    if (this.#closed) throw TwinpageError.closed(`device ${this.name} is closed`);
  }
}

export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly #buffers = new Map<string, Buffer>();
  readonly #capacity: number;

  constructor(options: MemoryStoreOptions = {}) {
    const cap = options.deviceCapacity ?? Infinity;
    if (typeof cap !== 'number' || !(cap === Infinity || (Number.isSafeInteger(cap) && cap >= 0))) {
      throw TwinpageError.invalidArgument('deviceCapacity must be a non-negative integer or Infinity');
    }
    this.#capacity = cap;
  }

  async open(name: string): Promise<Device> {
    checkName(name);
    let b = this.#buffers.get(name);
    if (!b) this.#buffers.set(name, (b = new Buffer()));
    return new MemoryDevice(name, b, this.#capacity);
  }

  async exists(name: string): Promise<boolean> { return this.#buffers.has(checkName(name)); }
  async remove(name: string): Promise<void> { this.#buffers.delete(checkName(name)); }

  async rename(from: string, to: string): Promise<void> {
    const b = this.#buffers.get(checkName(from));
    if (!b) throw TwinpageError.notFound(`no device ${from}`);
    this.#buffers.set(checkName(to), b);
    this.#buffers.delete(from);
  }

  async list(): Promise<string[]> { return [...this.#buffers.keys()].sort(); }
  async sync(): Promise<void> {}
}
