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
  /** Appends run one after another on this chain. */
  #writes: Promise<void> = Promise.resolve();
  /** A flush already asked for and not yet started, shared by everyone who asks meanwhile. */
  #pendingFlush: Promise<void> | null = null;
  #flushing: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  /** End of the journal at the last successful flush. */
  #committedEnd: number;

  constructor(device: Device, epoch: number, end: number, pageSize: number, hash: Hash) {
    this.device = device;
    this.epoch = epoch;
    this.#end = end;
    this.#committedEnd = end;
    this.#pageSize = pageSize;
    this.#hash = hash;
  }

  /** Bytes in the journal. */
  get size(): number { return this.#end; }

  /**
   * Appends a record (and, for PAGES, its page images, in the order of
   * `record.pages`). Resolves once written, not yet durable: call `commit()`.
   * Head and images are copied before this returns, so frames may change
   * right after.
   */
  append(record: JournalRecord): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    const head = encodeRecordHead(record, this.#hash);
    const images = record.type === RecordType.Pages ? record.images : [];
    const size = head.length + images.length * this.#pageSize;
    const at = this.#end;
    this.#end += size;
    const buf = new Uint8Array(size);
    buf.set(head, 0);
    images.forEach((img, i) => buf.set(img, head.length + i * this.#pageSize));
    const write = this.#writes.then(async () => {
      if (this.#failed) throw this.#failed;
      try {
        await this.device.write(at, buf);
      } catch (err) {
        // A journal with a hole cannot take later records: refuse them all.
        this.#failed = err;
        throw err;
      }
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  /**
   * Makes every record appended so far durable. Concurrent callers share
   * flushes: one that starts while another runs waits and joins the next.
   */
  commit(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#pendingFlush) return this.#pendingFlush;
    const writesSoFar = this.#writes;
    const end = this.#end;
    const next = this.#flushing.then(async () => {
      this.#pendingFlush = null;
      await writesSoFar;
      if (this.#failed) throw this.#failed;
      try {
        await this.device.flush();
      } catch (err) {
        this.#failed = err;
        throw err;
      }
      this.#committedEnd = Math.max(this.#committedEnd, end);
    });
    this.#pendingFlush = next;
    this.#flushing = next.catch(() => {});
    return next;
  }

  /**
   * After a failed append or flush: once everything in flight has settled,
   * cuts the journal back to its last durable end, so that what failed (and
   * what was appended after it) is gone, and accepts records again.
   * Callers undo their own changes for the records they lose.
   */
  async recover(): Promise<void> {
    await this.settle();
    if (!this.#failed) return;
    await this.device.truncate(this.#committedEnd);
    this.#end = this.#committedEnd;
    this.#failed = null;
  }

  /** Waits for appends in flight (not for durability). */
  async settle(): Promise<void> {
    await this.#writes;
    await this.#flushing;
  }
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
