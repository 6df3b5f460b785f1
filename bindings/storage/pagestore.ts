// The page file and the checksum file of a store: page p lives at byte
// p * pageSize of `pages`; its checksum entry (format.ts) at byte p * 16 of
// `sums`, apart from the page, so a torn or flipped page never vouches for
// itself.

import type { Device } from './device.js';
import { SUM_ENTRY_SIZE, decodeSum, encodeSum } from './format.js';
import type { MirroredDevice } from './mirrored.js';

/** One page to write: its image, its checksum and the sequence that wrote it. */
export interface PageImage { page: number; image: Uint8Array; checksum: bigint; lsn: number }

export class PageStore {
  readonly pages: Device;
  readonly sums: Device;
  readonly pageSize: number;

  constructor(pages: Device, sums: Device, pageSize: number) {
    this.pages = pages;
    this.sums = sums;
    this.pageSize = pageSize;
  }

  /** The checksum entry of `page` (lsn 0: never written). */
  async readSum(page: number): Promise<{ checksum: bigint; lsn: number }> {
    const buf = new Uint8Array(SUM_ENTRY_SIZE);
    await this.sums.read(page * SUM_ENTRY_SIZE, buf);
    return decodeSum(buf);
  }

  /** The checksum entries of pages [first, first + count). */
  async readSums(first: number, count: number): Promise<Array<{ checksum: bigint; lsn: number }>> {
    const buf = new Uint8Array(SUM_ENTRY_SIZE * count);
    await this.sums.read(first * SUM_ENTRY_SIZE, buf);
    return Array.from({ length: count }, (_, i) => decodeSum(buf, i * SUM_ENTRY_SIZE));
  }

  /**
   * Reads `page` into `into`. With a mirrored page device, `verify` picks a
   * copy that checks out and repairs the others; returns false when no copy
   * (or the single device) passes `verify`.
   */
  async readPage(page: number, into: Uint8Array, verify: (bytes: Uint8Array) => boolean): Promise<boolean> {
    const mirrored = this.pages as Partial<MirroredDevice>;
    if (typeof mirrored.readVerified === 'function') {
      try {
        await mirrored.readVerified(page * this.pageSize, into, verify);
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === 'CORRUPT') return false;
        throw err;
      }
    }
    await this.pages.read(page * this.pageSize, into);
    return verify(into);
  }

  /**
   * Writes pages, coalescing runs of consecutive pages into one write to
   * each device, in page order. `images` must be sorted by page.
   */
  async writePages(images: PageImage[]): Promise<void> {
    const ps = this.pageSize;
    for (let i = 0; i < images.length;) {
      let j = i + 1;
      while (j < images.length && images[j].page === images[j - 1].page + 1) j++;
      const run = images.slice(i, j);
      const data = new Uint8Array(run.length * ps);
      const sums = new Uint8Array(run.length * SUM_ENTRY_SIZE);
      run.forEach((p, k) => {
        data.set(p.image, k * ps);
        encodeSum(p.checksum, p.lsn, sums, k * SUM_ENTRY_SIZE);
      });
      await this.pages.write(run[0].page * ps, data);
      await this.sums.write(run[0].page * SUM_ENTRY_SIZE, sums);
      i = j;
    }
  }

  /** Makes every completed page and checksum write durable. */
  async flush(): Promise<void> {
    await Promise.all([this.pages.flush(), this.sums.flush()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.pages.close(), this.sums.close()]);
  }
}
