// The virtual address space in pages: blocks sit on page-aligned runs;
// freed runs are merged with their neighbours and reused, first fit.

export interface Run { base: number; pages: number }

export class AddressSpace {
  /** Pages the space offers: [0, total). */
  readonly total: number;
  /** Free runs, sorted by base, never adjacent. */
  #free: Run[];
  /** Pages in the free runs. */
  #freePages = 0;

  constructor(total: number, used: Iterable<Run> = []) {
    this.total = total;
    const taken = [...used].sort((a, b) => a.base - b.base);
    this.#free = [];
    let at = 0;
    for (const r of taken) {
      if (r.base > at) this.#push(at, r.base - at);
      at = Math.max(at, r.base + r.pages);
    }
    if (at < total) this.#push(at, total - at);
  }

  /**
   * The space with the runs of rows `order` taken (`base[r]`, `pages[r]`):
   * in base order, not overlapping (the caller checked), in one pass.
   */
  static fromSorted(total: number, order: ArrayLike<number>, base: ArrayLike<number>, pages: ArrayLike<number>): AddressSpace {
    const space = new AddressSpace(total);
    space.#free = [];
    space.#freePages = 0;
    let at = 0;
    for (let k = 0; k < order.length; k++) {
      const r = order[k];
      if (base[r] > at) space.#push(at, base[r] - at);
      at = Math.max(at, base[r] + pages[r]);
    }
    if (at < total) space.#push(at, total - at);
    return space;
  }

  #push(base: number, pages: number): void {
    this.#free.push({ base, pages });
    this.#freePages += pages;
  }

  /** Pages free in all. */
  get freePages(): number {
    return this.#freePages;
  }

  /** Takes a run of `pages`; returns its base, or -1 when no free run is long enough. */
  allocate(pages: number): number {
    for (let i = 0; i < this.#free.length; i++) {
      const r = this.#free[i];
      if (r.pages < pages) continue;
      const base = r.base;
      if (r.pages === pages) this.#free.splice(i, 1);
      else this.#free[i] = { base: base + pages, pages: r.pages - pages };
      this.#freePages -= pages;
      return base;
    }
    return -1;
  }

  /** Takes exactly [base, base + pages) (a partner's allocation); false when any of it is taken. */
  allocateAt(base: number, pages: number): boolean {
    const free = this.#free;
    // The last free run starting at or before `base` (runs are sorted).
    let lo = 0;
    let hi = free.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (free[mid].base <= base) lo = mid; else hi = mid - 1;
    }
    const i = lo;
    const r = free[i];
    if (!r || base < r.base || base + pages > r.base + r.pages) return false;
    const before = { base: r.base, pages: base - r.base };
    const after = { base: base + pages, pages: r.base + r.pages - base - pages };
    free.splice(i, 1, ...[before, after].filter((x) => x.pages > 0));
    this.#freePages -= pages;
    return true;
  }

  /** Gives a run back, merging it with free neighbours. */
  release(base: number, pages: number): void {
    const free = this.#free;
    // The first free run starting after `base`.
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (free[mid].base < base) lo = mid + 1; else hi = mid;
    }
    const i = lo;
    free.splice(i, 0, { base, pages });
    this.#freePages += pages;
    if (i + 1 < free.length && base + pages === free[i + 1].base) {
      free[i].pages += free[i + 1].pages;
      free.splice(i + 1, 1);
    }
    if (i > 0 && free[i - 1].base + free[i - 1].pages === base) {
      free[i - 1].pages += free[i].pages;
      free.splice(i, 1);
    }
  }
}
