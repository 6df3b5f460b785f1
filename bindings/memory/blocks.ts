// The block table: every block's header by GUID, and the address space its
// runs are taken from. In memory only; the journal (wal.ts) makes changes to
// it durable and a checkpoint rewrites it into the next journal.

import { TwinpageError } from '../errors.js';
import type { Policy } from '../policies.js';
import { isGuid } from '../storage/format.js';
import { AddressSpace } from './space.js';

/** A block's header (READ_HEADER). */
export interface Block {
  /** The block's GUID. */
  id: string;
  /** First virtual page. */
  base: number;
  /** Bytes asked for at allocation. */
  length: number;
  /** Pages in the block's run. */
  pages: number;
  policy: Policy;
  /** The journal sequence that created the block. */
  generation: number;
}

export class BlockTable {
  readonly #blocks = new Map<string, Block>();
  #space: AddressSpace;
  readonly capacityPages: number;

  constructor(capacityPages: number) {
    this.capacityPages = capacityPages;
    this.#space = new AddressSpace(capacityPages);
  }

  /** The block `id`; INVALID_ARGUMENT for a malformed id, UNKNOWN_BLOCK for one not here. */
  get(id: string): Block {
    const b = this.#blocks.get(id);
    if (b) return b;
    if (!isGuid(id)) throw TwinpageError.invalidArgument(`block id must be a GUID string, got ${JSON.stringify(id)}`);
    throw TwinpageError.unknownBlock(`no block ${id}`);
  }

  /** The block `id`, or undefined. */
  find(id: string): Block | undefined {
    return this.#blocks.get(id);
  }

  has(id: string): boolean {
    return this.#blocks.has(id);
  }

  /** Whether `block` is still the table's block of its id (not freed, not replaced). */
  holds(block: Block): boolean {
    return this.#blocks.get(block.id) === block;
  }

  get size(): number {
    return this.#blocks.size;
  }

  values(): IterableIterator<Block> {
    return this.#blocks.values();
  }

  /** Pages free in the address space. */
  get freePages(): number {
    return this.#space.freePages;
  }

  /** Takes a run of `pages`: its base, or -1 when none is long enough. */
  takeRun(pages: number): number {
    return this.#space.allocate(pages);
  }

  /** Takes exactly `[base, base + pages)`: false when any of it is taken. */
  takeRunAt(base: number, pages: number): boolean {
    return this.#space.allocateAt(base, pages);
  }

  /** Gives a run back. */
  releaseRun(base: number, pages: number): void {
    this.#space.release(base, pages);
  }

  /** Adds a block whose run is taken already. */
  add(block: Block): void {
    this.#blocks.set(block.id, block);
  }

  /** Removes a block (its run is given back separately). */
  delete(id: string): void {
    this.#blocks.delete(id);
  }

  /** After replay: rebuilds the address space from the blocks held. */
  rebuildSpace(): void {
    const used = [...this.#blocks.values()].map((b) => ({ base: b.base, pages: b.pages }));
    for (const r of used) {
      if (r.base + r.pages > this.capacityPages) throw TwinpageError.invalidArgument('capacityBytes is smaller than the blocks this store holds');
    }
    this.#space = new AddressSpace(this.capacityPages, used);
  }
}
