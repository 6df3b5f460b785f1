// Page exchanges: where a page's bytes travel when they do not ride in the
// frame. The sender puts the page in a slot of an area both nodes can reach
// and the WRITE_PAGE frame carries only its location; the receiver copies it
// out. Two areas:
//
//   shared   a SharedArrayBuffer both workers hold (the transport's `shared`)
//   storage  a device both nodes can open (a file on a shared disk)
//
// The area is split in two halves, one per node (the node with the smaller
// id writes the first), so the two never write the same bytes. Each half is a
// ring of page slots, handed out in order and given back in order as the
// partner acknowledges the frames that used them.
//
//   half:  [ slot 0 | slot 1 | ... | slot n-1 ]
//            ^tail (oldest unacknowledged)   ^head (next free)

import { TwinpageError } from '../errors.js';
import type { Device } from '../storage/device.js';

export type ExchangeMethod = 'shared' | 'storage';

/** An area both nodes reach, addressed by byte offset. */
export interface PageExchange {
  readonly method: ExchangeMethod;
  /** Bytes of the whole area (both halves). */
  readonly bytes: number;
  put(offset: number, data: Uint8Array): void | Promise<void>;
  get(offset: number, into: Uint8Array): void | Promise<void>;
}

/** A SharedArrayBuffer both ends of a MessagePort hold. */
export function sharedExchange(buffer: SharedArrayBuffer): PageExchange {
  const view = new Uint8Array(buffer);
  return {
    method: 'shared',
    bytes: view.length,
    put: (offset, data) => { view.set(data, offset); },
    get: (offset, into) => { into.set(view.subarray(offset, offset + into.length)); },
  };
}

/** A device both nodes can open (each its own handle on the same file). */
export function storageExchange(device: Device, bytes: number): PageExchange {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw TwinpageError.invalidArgument('the storage exchange size must be a non-negative integer');
  return {
    method: 'storage',
    bytes,
    put: (offset, data) => device.write(offset, data),
    get: async (offset, into) => {
      const n = await device.read(offset, into);
      if (n < into.length) throw TwinpageError.corrupt(`the storage exchange holds ${n} of ${into.length} bytes at ${offset}`);
    },
  };
}

/** The sender's half of an exchange: a ring of page slots. */
export class SlotRing {
  readonly #base: number;
  readonly #slots: number;
  readonly #pageSize: number;
  #head = 0;
  #tail = 0;
  /** Ring heads after each frame that took slots, by frame sequence. */
  readonly #marks: Array<{ seq: number; head: number }> = [];

  constructor(exchangeBytes: number, half: 0 | 1, pageSize: number) {
    const halfBytes = Math.floor(exchangeBytes / 2);
    this.#pageSize = pageSize;
    this.#slots = Math.floor(halfBytes / pageSize);
    this.#base = half * halfBytes;
  }

  get slots(): number { return this.#slots; }

  /** Takes a slot; returns its byte offset, or -1 when all are in use. */
  take(): number {
    if (this.#head - this.#tail >= this.#slots) return -1;
    const slot = this.#head++ % this.#slots;
    return this.#base + slot * this.#pageSize;
  }

  /** The slots taken so far belong to frames up to `seq`. */
  mark(seq: number): void {
    this.#marks.push({ seq, head: this.#head });
  }

  /** The partner acknowledged frames up to `seq`: their slots are free again. */
  acked(seq: number): void {
    let i = 0;
    while (i < this.#marks.length && this.#marks[i].seq <= seq) this.#tail = this.#marks[i++].head;
    if (i) this.#marks.splice(0, i);
  }

  /** A new connection: nothing is in flight. */
  reset(): void {
    this.#head = this.#tail = 0;
    this.#marks.length = 0;
  }
}

/** Checks a received location: one page, inside the partner's half of the area. */
export function checkLocation(exchange: PageExchange, partnerHalf: 0 | 1, location: { offset: number; length: number }, pageSize: number): void {
  const halfBytes = Math.floor(exchange.bytes / 2);
  const start = partnerHalf * halfBytes;
  if (location.length !== pageSize || location.offset < start || location.offset + location.length > start + halfBytes) {
    throw TwinpageError.badFrame(`a ${exchange.method} page location [${location.offset}, +${location.length}) is outside the partner's half of the exchange`);
  }
}
