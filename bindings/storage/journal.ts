// The write-ahead journal of one epoch: records appended in order, made
// durable by group commit (one write and one flush cover every record
// appended before it), and read back after a crash with every record checked.
//
// Telling a crash from damage. Each group commit (a batch) starts at a
// sector boundary, is padded with fill to the next one, and is written only
// over fill that is already durable (the journal writes fill ahead of its end
// and flushes it before records go there). So after any crash:
//   - a record of a later batch proves every earlier batch was flushed: a bad
//     record before one is CORRUPT, never the end of the journal;
//   - what a crash kept from the disk reads back as fill (whole sectors), and
//     the end of the file never cuts a record: a bad record in the last batch
//     is a torn tail only when a sector of it reads as fill; a bit flip, a
//     zeroed range or a cut file is CORRUPT;
//   - everything before the superblock's `walEnd` (the checkpoint's records)
//     must check out.
// What stays undetectable (docs/storage.md): the journal cut exactly at the
// end of a batch that ended on a sector boundary, after that checkpoint.

import { TwinpageError } from '../errors.js';
import type { Device } from './device.js';
import {
  RECORD_HEADER_SIZE, RECORD_HEADER_SIZE_V1, RecordType, SECTOR, decodeBody, decodeRecordHeader, decodeRecordHeaderV1,
  encodeRecordHead, fillInto, isFill, recordHeadValid, recordHeadValidInPlace, recordHeadValidV1, roundUp,
  type Hash, type JournalRecord,
} from './format.js';
import { copiesOf, readChecked } from './mirrored.js';

/** How far ahead of its records the journal keeps durable fill (and how much it grows by), at least. */
export const FILL_AHEAD = 1 << 20;
/** At most (a batch of very many pages keeps twice its size ahead, up to this). */
const MAX_AHEAD = 64 << 20;
/**
 * Most fill a step writes ahead of need. A step that grows the file makes
 * its flush record new space (and a recycled file, written over in place,
 * needs none); the fill after the last batch is read at open.
 */
const MAX_STEP = 8 << 20;

export interface JournalOptions {
  pageSize: number;
  hash: Hash;
  /** The epoch's fill sector (format.ts `fillSector`). */
  fill: Uint8Array;
  /** Bytes from the start known to hold durable records or fill; records are written only below it. */
  filledTo: number;
  /**
   * A journal no superblock names yet (a checkpoint's): its first batch is
   * written together with the fill after it, since a crash before the
   * superblock names the journal makes it garbage anyway. Its device may be
   * a recycled journal of an older epoch: past the fill, its bytes are that
   * journal's, and no record is ever written there before fill is.
   */
  fresh?: boolean;
}

/** Largest arena a journal keeps for its next batches (a larger batch's goes with it). */
const ARENA_KEEP = 8 << 20;
const EMPTY = new Uint8Array(0);

export class Journal {
  readonly device: Device;
  readonly epoch: number;
  readonly #pageSize: number;
  readonly #hash: Hash;
  readonly #fill: Uint8Array;
  /** FILL_AHEAD bytes of fill, made once (the pattern repeats every sector). */
  #fillBlock = new Uint8Array(0);
  /** Where the next record goes. */
  #end: number;
  /**
   * Records not yet handed to the device, one after the other from
   * #pendingAt (the next batch's start) up to #end: the next batch, written
   * from here as it is. Two arenas take turns: appends go to one while the
   * batch before is written from the other, which is used again for the
   * batch after (no allocation per record or batch) unless a record in it was
   * appended with `keep` (its copy is someone's now) or it grew too large.
   */
  #arena: Uint8Array = EMPTY;
  #spare: Uint8Array = EMPTY;
  #arenaKept = false;
  /** The recovery under way after a failed commit, shared by every caller. */
  #recovering: Promise<void> | null = null;
  #pendingAt: number;
  /** A commit asked for and not yet started, shared by everyone who asks meanwhile. */
  #nextCommit: Promise<void> | null = null;
  #committing: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  /** End of the journal at the last successful flush. */
  #committedEnd: number;
  /** End of what a failed batch may have written (wiped by recover). */
  #dirtyTo: number;
  #filledTo: number;
  #fresh: boolean;
  /** The next step of fill ahead (doubling, up to MAX_STEP). */
  #step = FILL_AHEAD;

  constructor(device: Device, epoch: number, end: number, options: JournalOptions) {
    if (end % SECTOR !== 0) throw TwinpageError.invalidArgument(`a journal resumes at a sector boundary, not ${end}`);
    this.device = device;
    this.epoch = epoch;
    this.#end = this.#pendingAt = this.#committedEnd = this.#dirtyTo = end;
    this.#pageSize = options.pageSize;
    this.#hash = options.hash;
    this.#fill = options.fill;
    this.#filledTo = Math.max(options.filledTo, end);
    this.#fresh = options.fresh === true;
  }

  /** Bytes in the journal, pending ones included. */
  get size(): number { return this.#end; }

  /**
   * Appends a record (and, for PAGES, its page images, in the order of
   * `record.pages`) to the pending tail. Head and images are copied now, so
   * frames may change right after; `commit()` writes and flushes. Returns
   * the copy of the images (one after the other): with `keep` it stays as it
   * is; without, it holds until the turn in which the commit covering it
   * resolves ends (its arena takes later records after that).
   */
  append(record: JournalRecord, keep = false): Uint8Array {
    if (this.#failed) throw this.#failed;
    const head = encodeRecordHead(record, this.#pendingAt, this.#hash);
    const images = record.type === RecordType.Pages ? record.images : [];
    const ps = this.#pageSize;
    const length = head.length + images.length * ps;
    const at = this.#end - this.#pendingAt;
    const buf = this.#room(at, at + length);
    buf.set(head, at);
    for (let i = 0, to = at + head.length; i < images.length; i++, to += ps) buf.set(images[i], to);
    this.#end += length;
    if (keep) this.#arenaKept = true;
    // The copy of the images: never changed after this in its batch (padding goes after them).
    return buf.subarray(at + head.length, at + length);
  }

  /** The arena, with room for `end` bytes and the batch's padding; its first `used` bytes kept. */
  #room(used: number, end: number): Uint8Array {
    const need = roundUp(end, SECTOR);
    const arena = this.#arena;
    if (arena.length >= need) return arena;
    const grown = new Uint8Array(Math.max(need, 2 * arena.length, 64 << 10));
    grown.set(arena.subarray(0, used));
    return this.#arena = grown;
  }

  /**
   * Makes every record appended so far durable: one write of everything
   * pending (padded with fill to a sector boundary), one flush. Callers that
   * come while a commit runs share the next.
   */
  commit(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#nextCommit) return this.#nextCommit;
    const next = this.#committing.then(async () => {
      // Let the appends already under way in this turn of the event loop
      // join this flush rather than wait for the next one.
      await nextTurn();
      this.#nextCommit = null;
      if (this.#failed) throw this.#failed;
      const at = this.#pendingAt;
      const dataEnd = this.#end;
      if (dataEnd === this.#committedEnd) return;
      const batchEnd = roundUp(dataEnd, SECTOR);
      // This batch is written from its arena; appends go to the other one meanwhile.
      const arena = this.#room(dataEnd - at, dataEnd - at);
      this.#arena = this.#spare;
      this.#spare = this.#arenaKept || arena.length > ARENA_KEEP ? EMPTY : arena;
      this.#arenaKept = false;
      this.#pendingAt = this.#end = batchEnd;
      try {
        // Fill ahead: at least a step, and twice the batch (the next batches are alike).
        const want = Math.min(MAX_AHEAD, Math.max(FILL_AHEAD, 2 * (batchEnd - at)));
        // A sector of durable fill always follows the last batch: a recycled
        // file holds an older journal's bytes past the fill, never to be
        // taken for this one's.
        if (batchEnd + SECTOR > this.#filledTo && !this.#fresh) await this.#extend(batchEnd + SECTOR, want);
        const data = arena.subarray(0, batchEnd - at);
        fillInto(data, dataEnd - at, dataEnd, batchEnd - dataEnd, this.#fill);
        this.#dirtyTo = batchEnd;
        // Written with the batch, it is durable with its flush, before any record goes there.
        // The steps double (up to MAX_STEP): the file grows, and its flush
        // records new space, once in a long while rather than at every batch.
        const from = Math.max(this.#filledTo, batchEnd);
        const ahead = batchEnd + want / 2 > this.#filledTo || this.#fresh ? roundUp(batchEnd + Math.max(want, this.#step), FILL_AHEAD) : 0;
        if (ahead > from) this.#step = Math.min(MAX_STEP, 2 * this.#step);
        // Both settle before either failure is thrown: the batch's arena is not
        // reused, nor its range written over by recover(), while the device reads it.
        const [written, filled] = await Promise.allSettled([
          this.device.write(at, data),
          ahead > from ? this.#writeFill(from, ahead).then(() => true, noSpaceIsFalse) : false,
        ]);
        if (written.status === 'rejected') throw written.reason;
        if (filled.status === 'rejected') throw filled.reason;
        const aheadDone = filled.value;
        await this.device.flush();
        if (this.#fresh) this.#filledTo = Math.max(this.#filledTo, batchEnd);
        if (aheadDone) this.#filledTo = ahead;
        this.#fresh = false;
      } catch (err) {
        this.#failed = err;
        throw err;
      }
      this.#committedEnd = batchEnd;
    });
    this.#nextCommit = next;
    this.#committing = next.catch(() => {});
    return next;
  }

  /** Writes fill over [from, to) (sector boundaries), a step at a time, from one block made once. */
  async #writeFill(from: number, to: number): Promise<void> {
    if (this.#fillBlock.length === 0) {
      this.#fillBlock = new Uint8Array(FILL_AHEAD);
      fillInto(this.#fillBlock, 0, 0, FILL_AHEAD, this.#fill);
    }
    for (let at = from; at < to; at += FILL_AHEAD) {
      await this.device.write(at, this.#fillBlock.subarray(0, Math.min(FILL_AHEAD, to - at)));
    }
  }

  /**
   * Grows the durable fill to cover `needEnd` before records are written
   * there: `want` bytes ahead if the device has room, else just what is needed.
   */
  async #extend(needEnd: number, want: number): Promise<void> {
    for (const target of [roundUp(needEnd + want, FILL_AHEAD), needEnd]) {
      if (target <= this.#filledTo) continue;
      try {
        await this.#writeFill(this.#filledTo, target);
        await this.device.flush();
        this.#filledTo = target;
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'NO_SPACE') throw err;
      }
    }
    throw TwinpageError.noSpace(`journal wal.${this.epoch} cannot grow to ${needEnd} bytes: the device is full`);
  }

  /**
   * After a failed commit: drops what was pending, writes fill back over
   * what the failed batch may have written (flushed), and accepts records
   * again at the last durable end. Callers undo their own changes for the
   * records they lose. Everyone who calls while it runs shares it, and a
   * call once it is done changes nothing: records appended after a recovery
   * are never dropped by another caller's.
   */
  recover(): Promise<void> {
    // Nothing failed (an append refused its record, say): nothing to recover. Decided now: a
    // recovery that waited first could see a later failure and drop records appended after it.
    if (!this.#failed && this.#recovering === null) return Promise.resolve();
    return this.#recovering ??= this.#recover().finally(() => { this.#recovering = null; });
  }

  async #recover(): Promise<void> {
    await this.settle();
    if (!this.#failed) return;
    if (this.#dirtyTo > this.#committedEnd) {
      await this.#writeFill(this.#committedEnd, this.#dirtyTo);
      await this.device.flush();
    }
    this.#dirtyTo = this.#committedEnd;
    // Fresh arenas: copies of the records dropped may still be someone's.
    this.#arena = this.#spare = EMPTY;
    this.#arenaKept = false;
    this.#end = this.#pendingAt = this.#committedEnd;
    this.#failed = null;
  }

  /** Waits for a commit in flight. */
  async settle(): Promise<void> {
    await this.#committing;
  }
}

const noSpaceIsFalse = (err: unknown): false => {
  if ((err as { code?: string }).code === 'NO_SPACE') return false;
  throw err;
};

/** Resolves on a later turn of the event loop (after pending promise work). */
const nextTurn: () => Promise<void> = typeof setImmediate === 'function'
  ? () => new Promise((resolve) => setImmediate(resolve))
  : () => new Promise((resolve) => setTimeout(resolve, 0));

// --- replay ---------------------------------------------------------------------------

export interface ReplayOptions {
  epoch: number;
  pageSize: number;
  hash: Hash;
  /** The epoch's fill sector. */
  fill: Uint8Array;
  /** Bytes the superblock says were durable when it named this journal (0: none vouched for). */
  durableEnd: number;
}

/** What `replayJournal` found. */
export interface ReplayResult {
  /** Valid records applied. */
  records: number;
  /** Byte offset just past the last valid record (and its batch's padding, when whole). */
  end: number;
  /**
   * What follows: `none` (fill: nothing was written there), or `torn` (a
   * batch a crash kept from the disk, never acknowledged: dropped).
   */
  tail: 'none' | 'torn';
  lastLsn: number;
  /** Why the journal is CORRUPT (and nothing after `end` was applied), or null. */
  problem: string | null;
  /** Bad bytes rewritten from a good copy (a mirrored device). */
  repaired: number;
}

type RecordRead =
  | { ok: true; record: JournalRecord; length: number; batchStart: number }
  | { ok: false; span: [number, number]; why: string };

/**
 * Reads the journal of `o.epoch` from the start and hands each valid record
 * to `apply`, in order, with its page images. It stops at the end of what
 * was written or at a torn tail; anything else that does not check out is a
 * `problem` (the caller refuses the store with CORRUPT). On a mirrored
 * device a record failing its checks is read from another copy, which
 * repairs the bad one. A record's page images are views of the journal as
 * read, valid until `apply` returns (or its promise settles): copy what is
 * kept.
 */
export async function replayJournal(
  device: Device, o: ReplayOptions,
  apply: (record: JournalRecord) => Promise<void> | void,
): Promise<ReplayResult> {
  const { hash, fill, pageSize, epoch } = o;
  const size = await device.size();
  const name = `wal.${epoch}`;
  let repaired = 0;
  const checked = async (at: number, into: Uint8Array, verify: (b: Uint8Array) => boolean) => {
    const r = await readChecked(device, at, into, verify);
    repaired += r.repaired;
    return r.ok;
  };
  const fillAt = async (at: number, length: number) => {
    const seen = (await ahead.load(at, length)) && ahead.view(at, length);
    if (seen && isFill(seen, at, fill)) return true;
    return checked(at, new Uint8Array(length), (b) => isFill(b, at, fill));
  };

  // The fast path: the journal read in order, in large chunks (the next one
  // read while this one is checked), each record checked in memory, in one
  // synchronous step. What fails there is read again the careful way below
  // (a mirrored device's other copies tried, and repaired), with the same
  // verdicts as before.
  const ahead = new ReadAhead(device, size);
  /** The record at `p` when it is whole in the chunk and checks out; null when not (or not there). */
  const quickRecord = (p: number): RecordRead | null => {
    const head = ahead.view(p, RECORD_HEADER_SIZE);
    const h = head && decodeRecordHeader(head);
    if (!h || h.epoch !== epoch) return null;
    const bodyEnd = RECORD_HEADER_SIZE + h.bodyLength;
    const total = bodyEnd + h.pageCount * pageSize;
    const all = ahead.view(p, total);
    if (!all) return null;
    const headBody = all.subarray(0, bodyEnd);
    if (!recordHeadValidInPlace(headBody, h, hash)) return null;
    const record = decodeBody(h, headBody.subarray(RECORD_HEADER_SIZE));
    if (!record) return null;
    if (record.type === RecordType.Pages) {
      const pages = record.pages;
      for (let i = 0, at = bodyEnd; i < pages.length; i++, at += pageSize) {
        const img = all.subarray(at, at + pageSize);
        if (hash(img) !== pages[i].checksum) return null;
        record.images.push(img);
      }
    }
    return { ok: true, record, length: total, batchStart: h.batchStart };
  };
  /** Whether the device is one copy: reading it again the careful way reads the very same bytes. */
  const single = copiesOf(device).length === 1;
  /** The record at `p`, fast when it can be. */
  const nextRecord = async (p: number): Promise<RecordRead> => {
    let quick = quickRecord(p);
    if (!quick) {
      const head = (await ahead.load(p, RECORD_HEADER_SIZE)) ? ahead.view(p, RECORD_HEADER_SIZE) : null;
      const h = head && decodeRecordHeader(head);
      // No header here (the padding after each batch, say), on the only copy: the
      // careful read's verdict, without reading it again (a read per batch).
      if (head && single && !(h && h.epoch === epoch)) return { ok: false, span: [p, p + RECORD_HEADER_SIZE], why: 'its header does not check out' };
      if (h && h.epoch === epoch && await ahead.load(p, RECORD_HEADER_SIZE + h.bodyLength + h.pageCount * pageSize)) quick = quickRecord(p);
    }
    return quick ?? readRecord(p);
  };

  const readRecord = async (p: number): Promise<RecordRead> => {
    const headerEnd = Math.min(size, p + RECORD_HEADER_SIZE);
    const head = new Uint8Array(RECORD_HEADER_SIZE);
    if (p + RECORD_HEADER_SIZE > size) return { ok: false, span: [p, headerEnd], why: 'its header is cut by the end of the file' };
    if (!(await checked(p, head, (b) => decodeRecordHeader(b)?.epoch === epoch))) {
      return { ok: false, span: [p, headerEnd], why: 'its header does not check out' };
    }
    const h = decodeRecordHeader(head)!;
    const total = RECORD_HEADER_SIZE + h.bodyLength + h.pageCount * pageSize;
    if (p + total > size) return { ok: false, span: [p, size], why: 'it is cut by the end of the file' };
    const headBody = new Uint8Array(RECORD_HEADER_SIZE + h.bodyLength);
    const bodyOk = await checked(p, headBody, (b) => {
      const hh = decodeRecordHeader(b);
      return !!hh && hh.epoch === epoch && hh.bodyLength === h.bodyLength && hh.pageCount === h.pageCount
        && recordHeadValid(b, hh, hash) && decodeBody(hh, b.subarray(RECORD_HEADER_SIZE)) !== null;
    });
    if (!bodyOk) return { ok: false, span: [p, p + total], why: 'its checksum fails' };
    const hv = decodeRecordHeader(headBody)!;
    const record = decodeBody(hv, headBody.subarray(RECORD_HEADER_SIZE))!;
    if (record.type === RecordType.Pages) {
      const at = p + headBody.length;
      const images = new Uint8Array(h.pageCount * pageSize);
      await device.read(at, images);
      for (let i = 0; i < h.pageCount; i++) {
        const img = images.subarray(i * pageSize, (i + 1) * pageSize);
        const expected = record.pages[i].checksum;
        // The page-image check: each image matches the checksum its record lists.
        if (hash(img) !== expected && !(await checked(at + i * pageSize, img, (b) => hash(b) === expected))) {
          return { ok: false, span: [p, p + total], why: `page image ${i} fails its checksum` };
        }
        record.images.push(img);
      }
    }
    return { ok: true, record, length: total, batchStart: hv.batchStart };
  };

  /** A valid record at a sector boundary q > p that starts its own batch: proof that p's batch was flushed. */
  const laterBatch = async (p: number): Promise<number | null> => {
    const first = roundUp(p + 1, SECTOR);
    const chunk = new Uint8Array(1 << 20);
    for (let base = first; base + RECORD_HEADER_SIZE <= size; base += chunk.length) {
      const n = Math.min(chunk.length, size - base);
      await device.read(base, chunk.subarray(0, n));
      for (let k = 0; k + RECORD_HEADER_SIZE <= n; k += SECTOR) {
        if (chunk[k] !== 0x54 || chunk[k + 1] !== 0x57) continue; // "TW"
        const h = decodeRecordHeader(chunk.subarray(k, k + RECORD_HEADER_SIZE));
        if (!h || h.epoch !== epoch || h.batchStart !== base + k) continue;
        const head = new Uint8Array(RECORD_HEADER_SIZE + h.bodyLength);
        await device.read(base + k, head);
        if (recordHeadValid(head, h, hash)) return base + k;
      }
    }
    return null;
  };

  /**
   * The end of the run of fill sectors from `p` (a sector boundary), when a
   * valid record there starts a batch of its own: proof that a batch after
   * the fill at `p` was flushed. Past the fill is the end of the file, or
   * the bytes of an older journal (a recycled file).
   */
  const batchAfterFill = async (p: number): Promise<number | null> => {
    const chunk = new Uint8Array(1 << 20);
    const fill32 = new Uint32Array(fill.buffer, fill.byteOffset, SECTOR / 4);
    for (let base = p; base + SECTOR <= size; base += chunk.length) {
      const n = Math.min(chunk.length, size - base) & ~(SECTOR - 1);
      await device.read(base, chunk.subarray(0, n));
      const k = firstNotFill(new Uint32Array(chunk.buffer, 0, n / 4), fill32);
      if (k >= 0) {
        const h = decodeRecordHeader(chunk.subarray(k, k + RECORD_HEADER_SIZE));
        if (!h || h.epoch !== epoch || h.batchStart !== base + k) return null;
        const head = new Uint8Array(RECORD_HEADER_SIZE + h.bodyLength);
        await device.read(base + k, head);
        return recordHeadValid(head, h, hash) ? base + k : null;
      }
    }
    return null;
  };

  /** Whether a whole sector overlapping `span` reads as fill on some copy: what a crash leaves. */
  const torn = async ([from, to]: [number, number]): Promise<boolean> => {
    const sector = new Uint8Array(SECTOR);
    for (const copy of copiesOf(device)) {
      for (let s = Math.floor(from / SECTOR) * SECTOR; s < to && s + SECTOR <= size; s += SECTOR) {
        await copy.read(s, sector);
        if (isFill(sector, s, fill)) return true;
      }
    }
    return false;
  };

  let p = 0;
  let records = 0;
  let lastLsn = 0;
  let batch = -1;
  let contiguous = false;
  const result = (tail: 'none' | 'torn', problem: string | null): ReplayResult => (
    { records, end: p, tail, lastLsn, problem: problem && `journal ${name}: ${problem}`, repaired }
  );
  for (;;) {
    if (p >= size) {
      if (p < o.durableEnd) return result('none', `it ends at byte ${p}, but its checkpoint made ${o.durableEnd} bytes durable: it was cut`);
      if (records === 0) return result('none', 'it is empty');
      if (p % SECTOR !== 0) return result('none', `it ends inside a sector, right after the record ending at byte ${p}: it was cut`);
      return result('none', null);
    }
    const r = quickRecord(p) ?? await nextRecord(p);
    if (r.ok) {
      const startsBatch = r.batchStart === p && p % SECTOR === 0;
      if (!startsBatch && !(contiguous && r.batchStart === batch)) {
        return result('none', `the record at byte ${p} says its batch starts at byte ${r.batchStart}, which does not fit`);
      }
      if ((records === 0) !== (r.record.type === RecordType.Epoch)) {
        return result('none', records === 0 ? 'it does not start with its epoch record' : `a second epoch record at byte ${p}`);
      }
      batch = r.batchStart;
      const applied = apply(r.record);
      if (applied) await applied;
      records++;
      lastLsn = Math.max(lastLsn, r.record.lsn);
      p += r.length;
      contiguous = true;
      continue;
    }
    // No valid record at p: the padding at the end of a batch, the end, a torn tail, or damage.
    if (p % SECTOR !== 0 && records > 0) {
      const padEnd = roundUp(p, SECTOR);
      if (padEnd <= size && await fillAt(p, padEnd - p)) {
        p = padEnd;
        contiguous = false;
        continue;
      }
    }
    if (records === 0) return result('none', `no valid epoch record at its start (${r.why})`);
    const clean = p % SECTOR === 0 && await fillAt(p, Math.min(SECTOR, size - p));
    const what = clean ? `nothing was written at byte ${p}` : `the record at byte ${p} is bad: ${r.why}`;
    if (p < o.durableEnd) return result('none', `${what}, inside the ${o.durableEnd} bytes its checkpoint made durable`);
    // After a clean end, a later batch could only start where the fill after it stops.
    const later = clean ? await batchAfterFill(p) : await laterBatch(p);
    if (later !== null) return result('none', `${what}, yet a later batch at byte ${later} proves it was flushed`);
    if (clean) return result('none', null);
    if (await torn(r.span)) return result('torn', null);
    return result('none', `${what}, and no sector of it reads as fill: damage, not a write a crash tore`);
  }
}

/**
 * The byte offset of the first sector of `words` that is not the fill
 * sector `fill` (its SECTOR / 4 words), or -1. A function of its own, so
 * that it is optimized at once: the scan past a journal's end runs it over
 * megabytes.
 */
function firstNotFill(words: Uint32Array, fill: Uint32Array): number {
  const per = SECTOR >>> 2;
  for (let o = 0; o < words.length; o += per) {
    for (let w = 0; w < per; w++) {
      if (words[o + w] !== fill[w]) return o << 2;
    }
  }
  return -1;
}

/**
 * Bytes read ahead from a device in large chunks, in order (replay's fast
 * path): the next chunk is read while the current one is being checked. Two
 * chunk buffers take turns, so a view is valid until the next `load` that
 * reads.
 */
class ReadAhead {
  static readonly CHUNK = 8 << 20;
  /** The next chunk starts this far before the current one's end, so that a record straddling them is whole in it. */
  static readonly OVERLAP = 1 << 20;
  readonly #device: Device;
  readonly #size: number;
  #buf: Uint8Array = new Uint8Array(0);
  #at = 0;
  /** The buffer not in use (the other one's turn next). */
  #spare: Uint8Array | null = null;
  /** The chunk after the current one, being read. */
  #next: { at: number; buf: Uint8Array; done: Promise<boolean> } | null = null;

  constructor(device: Device, size: number) {
    this.#device = device;
    this.#size = size;
  }

  /** Bytes [at, at + length) when the current chunk holds them, else null. */
  view(at: number, length: number): Uint8Array | null {
    const k = at - this.#at;
    if (k < 0 || k + length > this.#buf.length) return null;
    return this.#buf.subarray(k, k + length);
  }

  /** Makes the current chunk hold [at, at + length); false past the device's end. */
  async load(at: number, length: number): Promise<boolean> {
    if (at + length > this.#size) return false;
    if (this.view(at, length)) return true;
    const next = this.#next;
    this.#next = null;
    const old = this.#buf;
    if (next && next.at <= at && at + length <= next.at + next.buf.length && await next.done) {
      this.#buf = next.buf;
      this.#at = next.at;
    } else {
      if (next) await next.done;
      const n = Math.min(this.#size - at, Math.max(ReadAhead.CHUNK, length));
      this.#buf = this.#take(n, next?.buf ?? null);
      this.#at = at;
      await this.#device.read(at, this.#buf);
    }
    this.#spare = old.length ? old : this.#spare;
    const from = this.#at + this.#buf.length - Math.min(this.#buf.length, ReadAhead.OVERLAP);
    if (from > this.#at && from + ReadAhead.OVERLAP < this.#size) {
      const buf = this.#take(Math.min(this.#size - from, ReadAhead.CHUNK), null);
      this.#spare = null;
      this.#next = { at: from, buf, done: this.#device.read(from, buf).then(() => true, () => false) };
    }
    return true;
  }

  /** A buffer of `n` bytes: the spare one (or `also`) when large enough, else a new one. */
  #take(n: number, also: Uint8Array | null): Uint8Array {
    for (const b of [this.#spare, also]) if (b && b.length >= n) return b.subarray(0, n);
    return bufferOf(n);
  }
}

/** A buffer for a device to fill whole (not zeroed first where the platform allows: Node's Buffer). */
function bufferOf(n: number): Uint8Array {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer;
  if (!B) return new Uint8Array(n);
  const b = B.allocUnsafeSlow(n);
  // A plain view of its memory: a Buffer's subarrays are slower to make.
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

// --- version 1 -------------------------------------------------------------------------

/**
 * Reads a version-1 journal (no batches, no fill: zeros were written ahead)
 * up to the first record that does not check out, as version 1 did. Used by
 * the upgrade to version 2 and by `inspect`.
 */
export async function replayJournalV1(
  device: Device, epoch: number, pageSize: number, hash: Hash,
  apply: (record: JournalRecord) => Promise<void> | void,
): Promise<{ records: number; end: number; tornTail: boolean; lastLsn: number }> {
  const size = await device.size();
  let at = 0;
  let records = 0;
  let lastLsn = 0;
  const headBuf = new Uint8Array(RECORD_HEADER_SIZE_V1);
  while (at + RECORD_HEADER_SIZE_V1 <= size) {
    await device.read(at, headBuf);
    const h = decodeRecordHeaderV1(headBuf);
    if (!h || h.epoch !== epoch) break;
    const total = RECORD_HEADER_SIZE_V1 + h.bodyLength + h.pageCount * pageSize;
    if (at + total > size) break;
    const head = new Uint8Array(RECORD_HEADER_SIZE_V1 + h.bodyLength);
    await device.read(at, head);
    if (!recordHeadValidV1(head, h, hash)) break;
    const record = decodeBody(h, head.subarray(RECORD_HEADER_SIZE_V1));
    if (!record) break;
    if (record.type === RecordType.Pages) {
      const images = new Uint8Array(h.pageCount * pageSize);
      await device.read(at + head.length, images);
      let intact = true;
      for (let i = 0; i < h.pageCount; i++) {
        const img = images.subarray(i * pageSize, (i + 1) * pageSize);
        if (hash(img) !== record.pages[i].checksum) { intact = false; break; }
        record.images.push(img);
      }
      if (!intact) break;
    }
    if (records === 0 && record.type !== RecordType.Epoch) {
      throw TwinpageError.corrupt(`journal wal.${epoch} does not start with its epoch record`);
    }
    await apply(record);
    records++;
    lastLsn = Math.max(lastLsn, record.lsn);
    at += total;
  }
  return { records, end: at, tornTail: at < size, lastLsn };
}
