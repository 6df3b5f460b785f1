// What this node cannot trust: pages of live blocks whose checksum entry is
// lost (their bytes are unknown here) or whose bytes fail their checksum on
// every local copy. Filled at open (the sum sectors are checked whole), by
// reads and by scrub; a page leaves the list when it is written again or
// repaired (from a mirrored copy, or from the partner through the link's
// read repair). A mirror reads `memory.damage()` and listens to
// `memory.onDamage` to mark such pages out of sync and resync them.

import type { DamageObserver } from '../storage/pagestore.js';
import type { Block } from './blocks.js';

/** One page this node cannot serve. */
export interface PageDamage {
  blockId: string;
  /** The page, in the address space (as `mirror.verify()` reports pages). */
  page: number;
  /** The page's index within its block. */
  index: number;
  /**
   * `checksum`: its checksum entry was destroyed, so its bytes cannot be
   * told good or bad here; `bytes`: its bytes fail their checksum on every
   * local copy.
   */
  what: 'checksum' | 'bytes';
}

export type DamageListener = (found: PageDamage[]) => void;

export class DamageLog implements DamageObserver {
  /** Pages whose checksum entry is LOST, and the sequence number it was lost at. */
  readonly #lost = new Map<number, number>();
  /** Pages whose bytes fail their checksum on every local copy, and the sequence number that wrote them. */
  readonly #bytes = new Map<number, number>();
  readonly #listeners = new Set<DamageListener>();
  #blockAt: (page: number) => Block | undefined = () => undefined;

  /** Where the live blocks are: the block holding a page (the memory's block table). */
  useBlocks(blockAt: (page: number) => Block | undefined): void {
    this.#blockAt = blockAt;
  }

  lost(page: number, lostAt: number): void {
    const before = this.#lost.get(page);
    if (before !== undefined && before >= lostAt) return;
    this.#lost.set(page, lostAt);
    this.#emit(page);
  }

  /** `page`'s bytes (written at sequence `lsn`) fail their checksum on every local copy. */
  badBytes(page: number, lsn: number): void {
    if (this.#bytes.get(page) === lsn) return;
    this.#bytes.set(page, lsn);
    this.#emit(page);
  }

  healed(page: number): void {
    this.#lost.delete(page);
    this.#bytes.delete(page);
  }

  /** Whether any page is listed (the hot path asks this before anything else). */
  get any(): boolean {
    return this.#lost.size > 0 || this.#bytes.size > 0;
  }

  /** Whether a LOST entry of `page` concerns `block` (made before the loss). */
  lostFor(page: number, block: Pick<Block, 'generation'>): boolean {
    const at = this.#lost.get(page);
    return at !== undefined && block.generation <= at;
  }

  /** Whether this node cannot serve `page` of `block` (its checksum lost, or its bytes bad). */
  concerns(page: number, block: Pick<Block, 'generation'>): boolean {
    const wrote = this.#bytes.get(page);
    return this.lostFor(page, block) || (wrote !== undefined && wrote >= block.generation);
  }

  /** Every damaged page of a live block, in page order. */
  list(): PageDamage[] {
    const pages = [...new Set([...this.#lost.keys(), ...this.#bytes.keys()])].sort((a, b) => a - b);
    const out: PageDamage[] = [];
    for (const page of pages) {
      const d = this.#describe(page);
      if (d) out.push(d);
    }
    return out;
  }

  /** Calls `listener` with the damage found from now on (of live blocks); returns a function that stops it. */
  on(listener: DamageListener): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  #emit(page: number): void {
    if (this.#listeners.size === 0) return;
    const d = this.#describe(page);
    if (!d) return;
    for (const l of this.#listeners) {
      try { l([d]); } catch { /* a listener's failure is its own */ }
    }
  }

  #describe(page: number): PageDamage | null {
    const block = this.#blockAt(page);
    if (!block) return null;
    const lostAt = this.#lost.get(page);
    const wrote = this.#bytes.get(page);
    const what = lostAt !== undefined && block.generation <= lostAt ? 'checksum'
      : wrote !== undefined && wrote >= block.generation ? 'bytes' : null;
    return what && { blockId: block.id, page, index: page - block.base, what };
  }
}
