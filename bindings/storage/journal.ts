// The write-ahead journal of one epoch: records appended in order, made
// durable by group commit (one flush covers every record appended before it),
// and read back after a crash up to the first record that does not check out.

import { TwinpageError } from '../errors.js';
import type { Device } from './device.js';
import {
  RECORD_HEADER_SIZE, RecordType, decodeBody, decodeRecordHeader, encodeRecordHead, recordHeadValid,
  type Hash, type JournalRecord,
} from './format.js';

export class Journal {
  readonly device: Device;
  readonly epoch: number;
  readonly #pageSize: number;
  readonly #hash: Hash;
  /** Where the next record goes. */
  #end: number;
  /** Encoded records not yet handed to the device, in order, from #pendingAt. */
  #pending: Uint8Array[] = [];
  #pendingAt: number;
  /** A commit asked for and not yet started, shared by everyone who asks meanwhile. */
  #nextCommit: Promise<void> | null = null;
  #committing: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  /** End of the journal at the last successful flush. */
  #committedEnd: number;
  /**
   * The journal is written with zeros ahead of its end: a flush after
   * overwriting zeros need not record a new file size, which halves its cost
   * on common file systems. Zeros read back as no record.
   */
  #zeroedTo = 0;

  constructor(device: Device, epoch: number, end: number, pageSize: number, hash: Hash) {
    this.device = device;
    this.epoch = epoch;
    this.#end = end;
    this.#pendingAt = end;
    this.#committedEnd = end;
    this.#pageSize = pageSize;
    this.#hash = hash;
  }

  /** Bytes in the journal, pending ones included. */
  get size(): number { return this.#end; }

  /**
   * Appends a record (and, for PAGES, its page images, in the order of
   * `record.pages`) to the pending tail. Head and images are copied now, so
   * frames may change right after; `commit()` writes and flushes.
   */
  append(record: JournalRecord): void {
    if (this.#failed) throw this.#failed;
    const head = encodeRecordHead(record, this.#hash);
    const images = record.type === RecordType.Pages ? record.images : [];
    const buf = new Uint8Array(head.length + images.length * this.#pageSize);
    buf.set(head, 0);
    images.forEach((img, i) => buf.set(img, head.length + i * this.#pageSize));
    this.#pending.push(buf);
    this.#end += buf.length;
  }

  /**
   * Makes every record appended so far durable: one write of everything
   * pending, one flush. Callers that come while a commit runs share the next.
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
      const parts = this.#pending;
      const at = this.#pendingAt;
      const end = this.#end;
      if (end === this.#committedEnd) return;
      this.#pending = [];
      this.#pendingAt = end;
      try {
        if (parts.length) await this.#write(at, concat(parts, end - at));
        await this.device.flush();
      } catch (err) {
        this.#failed = err;
        throw err;
      }
      this.#committedEnd = end;
    });
    this.#nextCommit = next;
    this.#committing = next.catch(() => {});
    return next;
  }

  /** Writes `data` at `at`, with zeros ahead of it when it passes the zeroed part (best effort). */
  async #write(at: number, data: Uint8Array): Promise<void> {
    const end = at + data.length;
    if (end <= this.#zeroedTo) return this.device.write(at, data);
    const target = Math.ceil((end + ZERO_AHEAD) / ZERO_AHEAD) * ZERO_AHEAD;
    const padded = new Uint8Array(target - at);
    padded.set(data);
    try {
      await this.device.write(at, padded);
      this.#zeroedTo = target;
    } catch (err) {
      if ((err as { code?: string }).code !== 'NO_SPACE') throw err;
      await this.device.write(at, data); // no room to zero ahead: just the records
    }
  }

  /**
   * After a failed commit: drops what was pending, cuts the journal back to
   * its last durable end and accepts records again. Callers undo their own
   * changes for the records they lose.
   */
  async recover(): Promise<void> {
    await this.settle();
    if (!this.#failed && this.#end === this.#committedEnd) return;
    if (this.#failed) {
      await this.device.truncate(this.#committedEnd);
      this.#zeroedTo = this.#committedEnd;
    }
    this.#pending = [];
    this.#end = this.#pendingAt = this.#committedEnd;
    this.#failed = null;
  }

  /** Waits for a commit in flight. */
  async settle(): Promise<void> {
    await this.#committing;
  }
}

/** How far ahead of its end the journal is zeroed. */
const ZERO_AHEAD = 1 << 20;

/** Resolves on a later turn of the event loop (after pending promise work). */
const nextTurn: () => Promise<void> = typeof setImmediate === 'function'
  ? () => new Promise((resolve) => setImmediate(resolve))
  : () => new Promise((resolve) => setTimeout(resolve, 0));

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** What `replayJournal` found. */
export interface ReplayResult {
  records: number;
  /** Byte offset just past the last valid record. */
  end: number;
  /** True when bytes after `end` were not a valid record (a torn tail). */
  tornTail: boolean;
  lastLsn: number;
}

/**
 * Reads the journal of `epoch` from the start and hands each valid record to
 * `apply`, in order, with its page images. Stops at the first record that is
 * torn, corrupt or of another epoch.
 */
export async function replayJournal(
  device: Device, epoch: number, pageSize: number, hash: Hash,
  apply: (record: JournalRecord) => Promise<void> | void,
): Promise<ReplayResult> {
  const size = await device.size();
  let at = 0;
  let records = 0;
  let lastLsn = 0;
  const headBuf = new Uint8Array(RECORD_HEADER_SIZE);
  while (at + RECORD_HEADER_SIZE <= size) {
    await device.read(at, headBuf);
    const h = decodeRecordHeader(headBuf);
    if (!h || h.epoch !== epoch) break;
    const total = RECORD_HEADER_SIZE + h.bodyLength + h.pageCount * pageSize;
    if (at + total > size) break;
    const head = new Uint8Array(RECORD_HEADER_SIZE + h.bodyLength);
    await device.read(at, head);
    if (!recordHeadValid(head, h, hash)) break;
    const record = decodeBody(h, head.subarray(RECORD_HEADER_SIZE));
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
