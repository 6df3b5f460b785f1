// The limit contender for a durable single node (DESIGN.md, "The limit
// contenders"): the simplest sound plain-Node program that makes 4 KiB page
// writes durable. A journal file with group commit: each write appends one
// record to what is pending; one `writev` of everything pending, durable
// when it returns (the file is opened O_DSYNC, as twinpage's journal is;
// without O_DSYNC, an `fdatasync` after it), then every write in that group
// is acknowledged. Writes that
// come while a flush runs form the next group. The latest image of each page
// is kept in a Map, so the program can serve reads of what it stored.
//
// A record is its own frame (the limit pair sends the same bytes over TCP):
//
//   0        4        8        12       16               16 + length
//   ┌────────┬────────┬────────┬────────┬────────────────┐
//   │ length │ seq    │ key    │ crc32  │ data           │  all u32 LE; crc32 covers
//   │        │        │ (page) │        │                │  bytes 0..12 and the data
//   └────────┴────────┴────────┴────────┴────────────────┘
//
// Like twinpage's journal, the file is written with zeros ahead of its end
// (1 MiB at a time, in the same writev), so most flushes need not record a
// new file size; a zero length reads back as the end of the journal, and a
// record whose crc32 fails is a torn tail. `readJournal` reads a file back.
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';

export const RECORD_HEADER = 16;
const ZERO_AHEAD = 1 << 20;
const ZEROS = new Uint8Array(2 * ZERO_AHEAD);

/** CRC-32 (IEEE): zlib's where Node has it (20.15 and later), else a table. */
export const crc32: (data: Uint8Array, value?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (zlib as unknown as { crc32: (d: Uint8Array, v?: number) => number }).crc32
    : tableCrc32;

let table: Uint32Array | null = null;
function tableCrc32(data: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xFF] ^ (c >>> 8);
  return ~c >>> 0;
}

/** One record: header and a copy of `data`, ready for the journal and the wire. */
export function encodeRecord(seq: number, key: number, data: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(RECORD_HEADER + data.length);
  rec.writeUInt32LE(data.length, 0);
  rec.writeUInt32LE(seq >>> 0, 4);
  rec.writeUInt32LE(key >>> 0, 8);
  rec.set(data, RECORD_HEADER);
  rec.writeUInt32LE(recordCrc(rec), 12);
  return rec;
}

/** The crc32 a record's header must hold. */
export function recordCrc(rec: Uint8Array): number {
  return crc32(rec.subarray(RECORD_HEADER), crc32(rec.subarray(0, 12)));
}

export interface Waiter { resolve: () => void; reject: (err: unknown) => void }

/** An append-only journal file with group commit. */
export class LimitJournal {
  readonly path: string;
  readonly #fh: FileHandle;
  /** Opened O_DSYNC: a write is durable when it returns. */
  readonly #dsync: boolean;
  #end = 0;
  #zeroedTo = 0;
  #pending: Uint8Array[] = [];
  #waiters: Waiter[] = [];
  #running = false;
  #failed: unknown = null;

  private constructor(path: string, fh: FileHandle, dsync: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#dsync = dsync;
  }

  /**
   * Creates (or empties) the journal file at `path`, opened O_DSYNC where
   * the platform has it: each writev returns once durable (one trip to the
   * thread pool per group instead of a writev and an fdatasync).
   */
  static async create(path: string): Promise<LimitJournal> {
    const dsync = typeof constants.O_DSYNC === 'number' ? constants.O_DSYNC : 0;
    const flags = dsync ? constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | dsync : 'w+';
    return new LimitJournal(path, await open(path, flags), dsync !== 0);
  }

  /**
   * Appends an encoded record (kept, not copied: the caller hands it over);
   * resolves once a flush covers it.
   */
  append(rec: Uint8Array): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    this.#pending.push(rec);
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#running) {
      this.#running = true;
      // Everything appended in this turn of the event loop joins the group.
      queueMicrotask(() => void this.#flushLoop());
    }
    return done;
  }

  /** Resolves once everything appended so far is durable. */
  sync(): Promise<void> {
    if (!this.#running && this.#pending.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (!this.#running) { this.#running = true; queueMicrotask(() => void this.#flushLoop()); }
    });
  }

  async #flushLoop(): Promise<void> {
    while (this.#waiters.length) {
      const parts = this.#pending;
      const waiters = this.#waiters;
      this.#pending = [];
      this.#waiters = [];
      try {
        let bytes = 0;
        for (const p of parts) bytes += p.length;
        const at = this.#end;
        const end = at + bytes;
        let zeros = 0;
        if (end > this.#zeroedTo) zeros = Math.ceil((end + ZERO_AHEAD) / ZERO_AHEAD) * ZERO_AHEAD - end;
        const buffers = zeros ? [...parts, ZEROS.subarray(0, zeros)] : parts;
        if (buffers.length) {
          const { bytesWritten } = await this.#fh.writev(buffers, at);
          if (bytesWritten !== bytes + zeros) throw new Error(`journal ${this.path}: short write (${bytesWritten} of ${bytes + zeros} bytes)`);
        }
        this.#end = end;
        if (zeros) this.#zeroedTo = end + zeros;
        if (!this.#dsync) await this.#fh.datasync();
        for (const w of waiters) w.resolve();
      } catch (err) {
        this.#failed = err;
        for (const w of [...waiters, ...this.#waiters]) w.reject(err);
        this.#waiters = [];
        break;
      }
    }
    this.#running = false;
  }

  /** Bytes of records written (zeros ahead not counted). */
  get size(): number { return this.#end; }

  async close(): Promise<void> {
    await this.sync().catch(() => {});
    await this.#fh.close();
  }
}

/**
 * The limit single node: durable 4 KiB page writes through a LimitJournal,
 * the latest image of each page in a Map.
 */
export class LimitNode {
  readonly journal: LimitJournal;
  readonly pages = new Map<number, Uint8Array>();
  #seq = 0;

  private constructor(journal: LimitJournal) { this.journal = journal; }

  static async create(path: string): Promise<LimitNode> {
    return new LimitNode(await LimitJournal.create(path));
  }

  /** Writes `data` as page `page`; resolves once it is durable. */
  write(page: number, data: Uint8Array): Promise<void> {
    const rec = encodeRecord(++this.#seq, page, data);
    this.pages.set(page, rec.subarray(RECORD_HEADER));
    return this.journal.append(rec);
  }

  read(page: number): Uint8Array | undefined {
    return this.pages.get(page);
  }

  close(): Promise<void> { return this.journal.close(); }
}

export interface JournalRecordRead { seq: number; key: number; data: Uint8Array }

/**
 * Reads a journal file back: every record up to the end (a zero length),
 * checking each one's crc32 and that sequence numbers rise by one. Throws on
 * a record that fails (the benchmark's journals are never torn).
 */
export async function readJournal(path: string): Promise<JournalRecordRead[]> {
  const buf = await readFile(path);
  const out: JournalRecordRead[] = [];
  let at = 0;
  while (at + RECORD_HEADER <= buf.length) {
    const length = buf.readUInt32LE(at);
    if (length === 0) break;
    if (at + RECORD_HEADER + length > buf.length) throw new Error(`${path}: record at ${at} runs past the end`);
    const rec = buf.subarray(at, at + RECORD_HEADER + length);
    if (rec.readUInt32LE(12) !== recordCrc(rec)) throw new Error(`${path}: record at ${at} fails its crc32`);
    const seq = rec.readUInt32LE(4);
    if (out.length && seq !== out[out.length - 1].seq + 1) throw new Error(`${path}: record at ${at} has seq ${seq} after ${out[out.length - 1].seq}`);
    out.push({ seq, key: rec.readUInt32LE(8), data: rec.subarray(RECORD_HEADER) });
    at += rec.length;
  }
  return out;
}

/** The latest image of each key in a journal file. */
export async function latestImages(path: string): Promise<Map<number, Uint8Array>> {
  const latest = new Map<number, Uint8Array>();
  for (const r of await readJournal(path)) latest.set(r.key, r.data);
  return latest;
}
