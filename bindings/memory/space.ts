// The virtual address space in pages: blocks sit on page-aligned runs;
// freed runs are merged with their neighbours and reused, first fit.

export interface Run { base: number; pages: number }

export class AddressSpace {
  /** Pages the space offers: [0, total). */
  readonly total: number;
  /** Free runs, sorted by base, never adjacent. */
  #free: Run[];

  constructor(total: number, used: Iterable<Run> = []) {
    this.total = total;
    const taken = [...used].sort((a, b) => a.base - b.base);
    this.#free = [];
    let at = 0;
    for (const r of taken) {
      if (r.base > at) this.#free.push({ base: at, pages: r.base - at });
      at = Math.max(at, r.base + r.pages);
    }
    if (at < total) this.#free.push({ base: at, pages: total - at });
  }

  /** Pages free in all. */
  get freePages(): number {
    let n = 0;
    for (const r of this.#free) n += r.pages;
    return n;
  }

  /** Takes a run of `pages`; returns its base, or -1 when no free run is long enough. */
  allocate(pages: number): number {
    for (let i = 0; i < this.#free.length; i++) {
      const r = this.#free[i];
      if (r.pages < pages) continue;
      const base = r.base;
      if (r.pages === pages) this.#free.splice(i, 1);
      else this.#free[i] = { base: base + pages, pages: r.pages - pages };
      return base;
    }
    return -1;
  }

  /** Takes exactly [base, base + pages) (a partner's allocation); false when any of it is taken. */
  allocateAt(base: number, pages: number): boolean {
    const free = this.#free;
    for (let i = 0; i < free.length; i++) {
      const r = free[i];
      if (base < r.base || base + pages > r.base + r.pages) continue;
      const before = { base: r.base, pages: base - r.base };
      const after = { base: base + pages, pages: r.base + r.pages - base - pages };
      free.splice(i, 1, ...[before, after].filter((x) => x.pages > 0));
      return true;
    }
    return false;
  }

  /** Gives a run back, merging it with free neighbours. */
  release(base: number, pages: number): void {
    const free = this.#free;
    let i = 0;
    while (i < free.length && free[i].base < base) i++;
    free.splice(i, 0, { base, pages });
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
