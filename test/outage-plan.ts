// The long-outage test's plan (outage.test.ts, outage-child.ts): the pages
// written while the partner is away, in the order they are written, and
// what each write puts there. Pages are scattered: ascending, with one to
// three pages never written between two written ones, so no two written
// pages are adjacent (each is a run of its own on the out-of-sync record).
import { rng } from './data.js';

/** Bytes per page of both nodes. */
export const PAGE_SIZE = 512;
/** Pages of the pair's one block (2 GiB, sparse: only what is written takes room). */
export const BLOCK_PAGES = 1 << 22;
/**
 * The block's policy: writes acknowledged once in this node's memory; the
 * writer flushes after each batch and counts only flushed ones as
 * acknowledged (one flush per batch instead of one per few writes).
 */
export const POLICY = { name: 'outage', maxSize: Infinity, durability: 'memory' as const };
/** Where in its page a write puts its stamp. */
export const STAMP_AT = 100;

/** The pages (of the block) of the first `count` writes, in order. */
export function plannedPages(count: number): Uint32Array {
  const random = rng(20261129);
  const out = new Uint32Array(count);
  let page = 0;
  for (let k = 0; k < count; k++) {
    out[k] = page;
    page += 2 + Math.floor(random() * 3);
  }
  if (page > BLOCK_PAGES) throw new Error(`${count} writes do not fit a block of ${BLOCK_PAGES} pages`);
  return out;
}

/** The 8 bytes the k-th write puts at STAMP_AT of its page. */
export function stamp(k: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, k, true);
  view.setUint32(4, 0x5EED0000 ^ k, true);
  return out;
}

/** A whole page as the k-th write leaves it (the page was zeros before). */
export function pageAfter(k: number): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  page.set(stamp(k), STAMP_AT);
  return page;
}
