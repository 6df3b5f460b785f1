// The demo's data (`npm start`): every write is 4 KiB at a 4 KiB-aligned
// offset (a "slot") of one block, its bytes derived from (slot, version), so
// what a slot holds tells which write it is. The Book keeps, per slot, the
// version of its latest acknowledged write; writers write through a node and
// book what was acknowledged; checkAll reads a node back and compares.

import { performance } from 'node:perf_hooks';
import type { NodeProcess, Reply } from './node-process.js';
import { type Bar, mib, must } from './demo-output.js';

export const SLOT = 4096;
const MAGIC = 0x54505744; // 'TPWD'

/** The 4 KiB written as `version` of `slot`: a header (magic, slot, version) and bytes derived from both. */
export function slotData(slot: number, version: number): Buffer {
  const w = new Uint32Array(SLOT / 4);
  w[0] = MAGIC; w[1] = slot; w[2] = version;
  let x = (Math.imul(slot + 1, 0x9E3779B1) ^ Math.imul(version, 0x85EBCA77)) >>> 0 || 1;
  for (let i = 3; i < w.length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    w[i] = x;
  }
  return Buffer.from(w.buffer);
}

const ZERO = Buffer.alloc(SLOT);

/** What the demo knows of every slot. */
export class Book {
  readonly slots: number;
  /** Version of the latest acknowledged write of each slot (0: never written, reads as zeros). */
  readonly acked: Uint32Array;
  /** Versions handed out so far per slot (never reused). */
  readonly issued: Uint32Array;
  /** Version of the write in flight on each slot (0: none): one at a time per slot. */
  readonly pending: Uint32Array;
  /** Writes in flight when their node died: they may or may not have landed. */
  readonly maybe = new Map<number, number>();
  inFlight = 0;

  constructor(bytes: number) {
    this.slots = bytes / SLOT;
    this.acked = new Uint32Array(this.slots);
    this.issued = new Uint32Array(this.slots);
    this.pending = new Uint32Array(this.slots);
  }

  /** A random slot with no write in flight and no unresolved one. */
  pick(): number {
    for (let k = 0; k < 64; k++) {
      const s = Math.floor(Math.random() * this.slots);
      if (!this.pending[s] && !this.maybe.has(s)) return s;
    }
    for (let s = 0; s < this.slots; s++) if (!this.pending[s] && !this.maybe.has(s)) return s;
    throw new Error('no free slot');
  }

  get written(): number {
    let n = 0;
    for (const v of this.acked) if (v) n++;
    return n;
  }
}

export interface WriteStats { acked: number; latencies: number[]; failed: Reply[] }

/**
 * Runs `writers` concurrent writers on `node` until `stop()` says so; a
 * writer whose write fails stops (its write goes to `book.maybe`).
 */
export function runWriters(node: NodeProcess, blockId: string, book: Book, writers: number, stop: () => boolean): { stats: WriteStats; done: Promise<void> } {
  const stats: WriteStats = { acked: 0, latencies: [], failed: [] };
  const one = async () => {
    while (!stop()) {
      const slot = book.pick();
      const version = ++book.issued[slot];
      book.pending[slot] = version;
      book.inFlight++;
      const t = performance.now();
      const r = await node.send({ cmd: 'write', block: blockId, offset: slot * SLOT, data: slotData(slot, version).toString('base64') });
      book.inFlight--;
      book.pending[slot] = 0;
      if (r.ok) {
        book.acked[slot] = version;
        stats.acked++;
        stats.latencies.push(performance.now() - t);
      } else {
        book.maybe.set(slot, version);
        stats.failed.push(r);
        return;
      }
    }
  };
  return { stats, done: Promise.all(Array.from({ length: writers }, one)).then(() => undefined) };
}

export interface CheckResult { checked: number; lost: number; landed: number; notLanded: number; bytes: number; firstLoss: string | null }

/**
 * Reads the whole block back from `node` and compares every slot with its
 * latest acknowledged write (or, for a write in flight when the primary
 * died, either that write or the one before it). With `resolve`, what a
 * maybe-write turned out to be becomes the slot's acknowledged state.
 */
export async function checkAll(node: NodeProcess, name: string, blockId: string, book: Book, bar: Bar | null, resolveMaybe: boolean): Promise<CheckResult> {
  const res: CheckResult = { checked: 0, lost: 0, landed: 0, notLanded: 0, bytes: 0, firstLoss: null };
  const chunkSlots = 256; // 1 MiB per read command
  for (let first = 0; first < book.slots; first += chunkSlots) {
    const count = Math.min(chunkSlots, book.slots - first);
    const r = await must(node, name, { cmd: 'read', block: blockId, offset: first * SLOT, length: count * SLOT });
    const got = Buffer.from(r.data as string, 'base64');
    if (got.length !== count * SLOT) throw new Error(`${name}: read returned ${got.length} bytes, asked ${count * SLOT}`);
    for (let k = 0; k < count; k++) {
      const slot = first + k;
      const here = got.subarray(k * SLOT, (k + 1) * SLOT);
      const v = book.acked[slot];
      if (v) res.checked++;
      const expected = v ? slotData(slot, v) : ZERO;
      if (here.equals(expected)) {
        if (book.maybe.has(slot)) res.notLanded++;
        if (resolveMaybe) book.maybe.delete(slot);
        continue;
      }
      const m = book.maybe.get(slot);
      if (m !== undefined && here.equals(slotData(slot, m))) {
        res.landed++;
        if (resolveMaybe) { book.acked[slot] = m; book.maybe.delete(slot); }
        continue;
      }
      res.lost++;
      if (!res.firstLoss) {
        const w = new Uint32Array(here.buffer.slice(here.byteOffset, here.byteOffset + 12));
        const holds = here.equals(ZERO) ? 'zeros' : w[0] === MAGIC && w[1] === slot ? `version ${w[2]}` : 'other bytes';
        res.firstLoss = `slot ${slot} (offset ${slot * SLOT}) holds ${holds}, its latest acknowledged write is version ${v}`;
      }
    }
    res.bytes += count * SLOT;
    bar?.update((first + count) / book.slots, `${mib(res.bytes)} of ${mib(book.slots * SLOT)}`);
  }
  return res;
}
