// Write intents: DRBD's activity log. Before a primary writes a page here,
// the page's extent (extentPages pages) is recorded as hot, durably: after a
// crash, the pages of the hot extents are all that may differ from the
// partner (writes that reached this node and not the partner, or the other
// way). At most `maxExtents` stay hot; the least recently used one with no
// write under way is retired when another turns hot. One superblock write
// covers every extent that turns hot in it.
//
// Persisted with the replica record (replica.ts), in the same write as the
// out-of-sync pages, so a retired extent's pages are recorded there first.

export interface IntentOptions {
  /** Pages per extent. @default 128 */
  extentPages: number;
  /** Extents kept hot. @default 64 */
  maxExtents: number;
}

export class ActivityLog {
  readonly extentPages: number;
  readonly maxExtents: number;
  readonly #persist: () => Promise<void>;
  /** Hot extents, least recently used first, with writes under way that are not yet recorded elsewhere. */
  readonly #hot = new Map<number, number>();
  /** Extents recorded in memory whose superblock write is under way. */
  readonly #saving = new Map<number, Promise<void>>();

  constructor(options: IntentOptions, persist: () => Promise<void>) {
    this.extentPages = options.extentPages;
    this.maxExtents = options.maxExtents;
    this.#persist = persist;
  }

  /** Extents hot now. */
  get size(): number {
    return this.#hot.size;
  }

  /** The hot extents (extent = page / extentPages). */
  extents(): number[] {
    return [...this.#hot.keys()];
  }

  /**
   * Before a release's pages are written here: makes sure their extents are
   * recorded as hot (one superblock write for any that were not). Undefined
   * when nothing needs waiting for.
   */
  cover(pages: number[]): Promise<void> | undefined {
    let added = false;
    const waits = new Set<Promise<void>>();
    for (const p of pages) {
      const e = Math.floor(p / this.extentPages);
      const writing = this.#hot.get(e);
      if (writing === undefined) added = true;
      // Most recently used last.
      this.#hot.delete(e);
      this.#hot.set(e, (writing ?? 0) + 1);
      const saving = this.#saving.get(e);
      if (saving) waits.add(saving);
    }
    if (added) {
      for (const [e, writing] of this.#hot) {
        if (this.#hot.size <= this.maxExtents) break;
        // An extent with a write between its intent and the out-of-sync record stays.
        if (writing === 0) this.#hot.delete(e);
      }
      const save = this.#persist();
      for (const p of pages) {
        const e = Math.floor(p / this.extentPages);
        if (!this.#saving.has(e)) {
          this.#saving.set(e, save);
          save.finally(() => { if (this.#saving.get(e) === save) this.#saving.delete(e); }).catch(() => {});
        }
      }
      waits.add(save);
    }
    if (waits.size === 0) return undefined;
    return Promise.all(waits).then(() => undefined);
  }

  /** The writes of `pages` are recorded elsewhere now (unacknowledged or out of sync, or durable on both nodes). */
  done(pages: number[]): void {
    for (const p of pages) {
      const e = Math.floor(p / this.extentPages);
      const writing = this.#hot.get(e);
      if (writing) this.#hot.set(e, writing - 1);
    }
  }
}
