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

/** A hot extent: the writes under way in it not yet recorded elsewhere. */
interface Extent { writing: number }

export class ActivityLog {
  readonly extentPages: number;
  readonly maxExtents: number;
  readonly #persist: () => Promise<void>;
  /** Hot extents, least recently used first. */
  readonly #hot = new Map<number, Extent>();
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
   * when nothing needs waiting for. When it fails, the release must not be
   * written: its pages count as no write under way, and an extent whose
   * save failed is not hot (the next write in it saves it again).
   */
  cover(pages: number[]): Promise<void> | undefined {
    const added: Array<[number, Extent]> = [];
    const held: Extent[] = [];
    const waits = new Set<Promise<void>>();
    for (const p of pages) {
      const e = Math.floor(p / this.extentPages);
      let extent = this.#hot.get(e);
      if (extent === undefined) {
        extent = { writing: 0 };
        added.push([e, extent]);
      }
      extent.writing++;
      held.push(extent);
      // Most recently used last.
      this.#hot.delete(e);
      this.#hot.set(e, extent);
      const saving = this.#saving.get(e);
      if (saving) waits.add(saving);
    }
    if (added.length) {
      for (const [e, extent] of this.#hot) {
        if (this.#hot.size <= this.maxExtents) break;
        // An extent with a write between its intent and the out-of-sync record stays.
        if (extent.writing === 0) this.#hot.delete(e);
      }
      // Asked for after the extents turned hot, this save names them: a write
      // in one of them waits for it (not for an older save, still under way,
      // of an earlier time the extent was hot).
      let save: Promise<void>;
      try {
        save = this.#persist();
      } catch (err) {
        save = Promise.reject(err); // undone below as any failed save is
      }
      for (const [e] of added) this.#saving.set(e, save);
      const settle = (failed: boolean) => {
        for (const [e, extent] of added) {
          if (this.#saving.get(e) === save) this.#saving.delete(e);
          // In the same step: nobody finds such an extent hot and not being saved.
          if (failed && this.#hot.get(e) === extent) this.#hot.delete(e);
        }
      };
      save.then(() => settle(false), () => settle(true));
      waits.add(save);
    }
    if (waits.size === 0) return undefined;
    // Every save waited for ends before a refusal: the writes counted here stay
    // under way until then, so none of these extents is retired meanwhile.
    return Promise.allSettled(waits).then((results) => {
      const failure = results.find((r) => r.status === 'rejected');
      if (!failure) return;
      // Not written: its pages are no write under way in the extents that stay.
      for (const extent of held) extent.writing--;
      throw (failure as PromiseRejectedResult).reason;
    });
  }

  /** The writes of `pages` are recorded elsewhere now (unacknowledged or out of sync, or durable on both nodes). */
  done(pages: number[]): void {
    for (const p of pages) {
      const extent = this.#hot.get(Math.floor(p / this.extentPages));
      if (extent && extent.writing > 0) extent.writing--;
    }
  }
}
