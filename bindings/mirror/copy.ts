// Copy methods on one connection (US 7,107,411 claims 11-12): how a page's
// bytes travel, chosen per change by its policy and what the connection
// offers. `message` puts them in the frame; `shared` and `storage` put them
// in this node's half of an exchange (exchange.ts) and the frame carries the
// location, which the receiver checks and copies out before applying.

import { TwinpageError } from '../errors.js';
import { AckLevel, MessageType, type Request, type WritePage } from '../messages.js';
import type { CopyMethod } from '../policies.js';
import { SlotRing, checkLocation, sharedExchange, type PageExchange } from './exchange.js';

export type Method = 'message' | 'shared' | 'storage';

/** A change's frames with their pages placed, and the exchange writes that must finish before they go. */
export interface Placed {
  method: Method;
  messages: Request[];
  puts: Array<void | Promise<void>>;
  ring: SlotRing | null;
}

export class CopyMethods {
  readonly #default: CopyMethod;
  readonly #storage: PageExchange | null;
  readonly #shared: PageExchange | null;
  readonly #pageSize: number;
  /** This node's half of each exchange (known once the partner's HELLO came), and its rings. */
  #half: 0 | 1 | null = null;
  #sharedRing: SlotRing | null = null;
  #storageRing: SlotRing | null = null;

  /** One connection's methods: `shared` from the transport's SharedArrayBuffer, `storage` from the mirror's exchange. */
  constructor(wanted: CopyMethod, shared: SharedArrayBuffer | null, storage: PageExchange | null, pageSize: number) {
    this.#default = wanted;
    this.#shared = shared ? sharedExchange(shared) : null;
    this.#storage = storage;
    this.#pageSize = pageSize;
  }

  /** The partner's id is known: each node takes its half of each exchange (the smaller id the first). */
  open(selfId: string, peerId: string): void {
    if (peerId === selfId) return;
    this.#half = selfId < peerId ? 0 : 1;
    this.#sharedRing = this.#shared ? new SlotRing(this.#shared.bytes, this.#half, this.#pageSize) : null;
    this.#storageRing = this.#storage ? new SlotRing(this.#storage.bytes, this.#half, this.#pageSize) : null;
  }

  /** The method for a block whose policy asks for `wanted`, on this connection. */
  choose(wanted: CopyMethod): Method {
    const want = wanted === 'auto' ? this.#default : wanted;
    const shared = this.#sharedRing !== null && this.#sharedRing.slots > 0;
    const storage = this.#storageRing !== null && this.#storageRing.slots > 0;
    if (want === 'shared') return shared ? 'shared' : 'message';
    if (want === 'storage') return storage ? 'storage' : 'message';
    if (want === 'auto') return shared ? 'shared' : storage ? 'storage' : 'message';
    return 'message';
  }

  /**
   * Places the pages of `messages` by `method`: each WRITE_PAGE whose page
   * gets a slot carries its location instead (a full exchange leaves the
   * rest in their frames).
   */
  place(messages: Request[], method: Method): Placed {
    if (method === 'message') return { method, messages, puts: [], ring: null };
    const ring = method === 'shared' ? this.#sharedRing! : this.#storageRing!;
    const exchange = method === 'shared' ? this.#shared! : this.#storage!;
    const puts: Array<void | Promise<void>> = [];
    const placed = messages.map((m): Request => {
      if (m.type !== MessageType.WRITE_PAGE || !m.data) return m;
      const offset = ring.take();
      if (offset < 0) return m; // the exchange is full: this page rides in the frame
      puts.push(exchange.put(offset, m.data));
      return { ...m, copy: method, data: undefined, location: { offset, length: m.data.length } };
    });
    return { method, messages: placed, puts, ring };
  }

  /** The partner acknowledged frames: shared pages were copied out on arrival, storage pages once applied. */
  acked(acked: readonly number[]): void {
    this.#sharedRing?.acked(acked[AckLevel.MEMORY]);
    this.#storageRing?.acked(acked[AckLevel.DISK]);
  }

  /** The page of a WRITE_PAGE that carries a location, copied out of the exchange (checked first). */
  copyIn(m: WritePage): WritePage | Promise<WritePage> {
    const exchange = m.copy === 'shared' ? this.#shared : this.#storage;
    if (!exchange || this.#half === null || !m.location) {
      throw TwinpageError.badFrame(`a '${m.copy}' page arrived, and this node has no ${m.copy} exchange with the partner`);
    }
    checkLocation(exchange, (1 - this.#half) as 0 | 1, m.location, this.#pageSize);
    const data = new Uint8Array(m.location.length);
    const done = exchange.get(m.location.offset, data);
    const page: WritePage = { ...m, copy: 'message', data, location: undefined };
    return done ? done.then(() => page) : page;
  }
}
