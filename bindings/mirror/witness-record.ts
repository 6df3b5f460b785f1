/**
 * The witness's durable record (Node): the pair's record and the longest
 * lease the witness may have granted, in `<dir>/witness.record`, two
 * checksummed slots written alternately, each write made durable
 * (fdatasync) before the witness answers the request that made it.
 *
 * ```
 *   witness.record: slot 0 at byte 0, slot 1 at byte 4096; slot = sequence % 2
 *
 *   0        4      6      8             16          20          24
 *   ┌────────┬──────┬──────┬─────────────┬───────────┬───────────┬───────────────── ─ ─
 *   │ "TWPW" │ ver  │ 0    │ sequence    │ ttlMs     │ recordLen │ record (the witness
 *   │        │ u16=1│ u16  │ u64 LE      │ u32 LE    │ u32 LE    │ protocol's layout)
 *   └────────┴──────┴──────┴─────────────┴───────────┴───────────┴───────────────── ─ ─
 *   4064                               4096
 *   ┌──────────────────────────────────┐
 *   │ SHA-256 of bytes [0, 4064)        │   zeros elsewhere
 *   └──────────────────────────────────┘
 * ```
 *
 * On opening, the valid slot with the higher sequence wins: a write torn by a
 * crash leaves the other slot, the record as last acknowledged. A slot of
 * zeros was never written. When neither slot is valid, or the file is
 * missing from a folder that held one (`witness.folder` marks it, written
 * once the record was created) or holds anything else, opening is refused: a
 * witness that started over from an empty record could grant a lease the
 * lost record would refuse (to an outdated node, or with an epoch already
 * used). A new (empty or absent) folder starts a new record.
 *
 * `<dir>/witness.lock` holds the pid of the witness using the folder: a
 * second witness on the same folder is refused (BUSY) while that process lives.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { TwinpageError } from '../errors.js';
import { mapFsError } from '../storage/file.js';
import type { PairRecord } from './arbiter.js';
import { decodeRecord, encodeRecord } from './witness-protocol.js';

/** Bytes of one slot. */
export const SLOT_BYTES = 4096;
/** The file's name in the witness's folder. */
export const RECORD_FILE = 'witness.record';
/** The lock file's name. */
export const LOCK_FILE = 'witness.lock';
/** Written once the folder's record exists: a folder with it and without the record lost its record. */
export const MARKER_FILE = 'witness.folder';
const TEMP_FILE = 'witness.record.new';
const MARKER_TEXT = 'This folder holds the record of a twinpage witness (witness.record). Keep them together.\n';
const MAGIC = Uint8Array.of(0x54, 0x57, 0x50, 0x57); // "TWPW"
const FORMAT = 1;
const HEAD = 24;
const SUM_AT = SLOT_BYTES - 32;

/** A record as kept: the pair's record and the longest lease granted under it, in ms. */
export interface KeptRecord {
  record: PairRecord;
  ttlMs: number;
}

/** What one slot holds. */
export type Slot =
  | { kind: 'empty' }
  | { kind: 'damaged'; why: string }
  | { kind: 'valid'; sequence: number } & KeptRecord;

/** One slot's bytes for `sequence`. */
export function encodeSlot(sequence: number, kept: KeptRecord): Uint8Array {
  const body = encodeRecord(kept.record);
  const out = new Uint8Array(SLOT_BYTES);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  v.setUint16(4, FORMAT, true);
  v.setBigUint64(8, BigInt(sequence), true);
  v.setUint32(16, kept.ttlMs, true);
  v.setUint32(20, body.byteLength, true);
  out.set(body, HEAD);
  out.set(createHash('sha256').update(out.subarray(0, SUM_AT)).digest(), SUM_AT);
  return out;
}

/** What a slot's bytes hold; never throws. */
export function decodeSlot(bytes: Uint8Array): Slot {
  if (bytes.byteLength !== SLOT_BYTES) return { kind: 'damaged', why: `${bytes.byteLength} bytes, not ${SLOT_BYTES}` };
  if (bytes.every((b) => b === 0)) return { kind: 'empty' };
  const sum = createHash('sha256').update(bytes.subarray(0, SUM_AT)).digest();
  if (!sum.equals(bytes.subarray(SUM_AT))) return { kind: 'damaged', why: 'checksum mismatch' };
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) return { kind: 'damaged', why: 'not a witness record' };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = v.getUint16(4, true);
  if (format !== FORMAT) return { kind: 'damaged', why: `format ${format} (this build reads ${FORMAT})` };
  const sequence = v.getBigUint64(8, true);
  if (sequence === 0n || sequence > BigInt(Number.MAX_SAFE_INTEGER)) return { kind: 'damaged', why: `sequence ${sequence}` };
  const length = v.getUint32(20, true);
  if (HEAD + length > SUM_AT) return { kind: 'damaged', why: `record length ${length}` };
  let record: PairRecord;
  try { record = decodeRecord(bytes.subarray(HEAD, HEAD + length)); } catch (err) { return { kind: 'damaged', why: (err as Error).message }; }
  return { kind: 'valid', sequence: Number(sequence), ttlMs: v.getUint32(16, true), record };
}

/** The record to go on with from both slots, or why there is none. */
export function chooseSlot(slots: [Slot, Slot]): { kept: KeptRecord; sequence: number; damaged: number | null } | { error: string } {
  const misplaced = slots.map((s, i) => (s.kind === 'valid' && s.sequence % 2 !== i ? `slot ${i} holds sequence ${s.sequence}, which belongs in slot ${s.sequence % 2}` : null));
  const valid = slots.map((s, i) => (s.kind === 'valid' && misplaced[i] === null ? s : null));
  const describe = (i: number) => misplaced[i] ?? (slots[i]!.kind === 'damaged' ? `slot ${i} damaged (${(slots[i] as { why: string }).why})` : `slot ${i} ${slots[i]!.kind}`);
  const [a, b] = valid;
  if (a === null && b === null) return { error: `${describe(0)}, ${describe(1)}` };
  const best = a === null ? b! : b === null ? a : a.sequence > b.sequence ? a : b;
  const other = best === a ? 1 : 0;
  const damaged = valid[other] === null && slots[other]!.kind !== 'empty' ? other : null;
  return { kept: { record: best.record, ttlMs: best.ttlMs }, sequence: best.sequence, damaged };
}

/** The record file of a witness's folder, open for writing. */
export class WitnessRecordFile {
  readonly dir: string;
  readonly path: string;
  /** The record as last written (or read). */
  kept: KeptRecord;
  /** True when the folder was new and the record was created. */
  readonly created: boolean;
  /** A slot found damaged on opening (the other one was used), or null. */
  readonly damagedSlot: number | null;
  #fh: FileHandle | null;
  #sequence: number;

  private constructor(dir: string, fh: FileHandle, kept: KeptRecord, sequence: number, created: boolean, damagedSlot: number | null) {
    this.dir = dir;
    this.path = join(dir, RECORD_FILE);
    this.#fh = fh;
    this.kept = kept;
    this.#sequence = sequence;
    this.created = created;
    this.damagedSlot = damagedSlot;
  }

  /**
   * Opens (or, in a new folder, creates with `initial`) the record of `dir`,
   * and takes the folder's lock. CORRUPT for a damaged record, NOT_FOUND for
   * a missing one in a folder that holds other files, BUSY when a live
   * witness holds the folder.
   */
  static async open(dir: string, initial: KeptRecord): Promise<WitnessRecordFile> {
    try { await mkdir(dir, { recursive: true }); } catch (err) { throw mapFsError(err, `create ${dir}`); }
    await takeLock(dir);
    try {
      return await WitnessRecordFile.#open(dir, initial);
    } catch (err) {
      await rm(join(dir, LOCK_FILE), { force: true }).catch(() => {});
      throw err;
    }
  }

  static async #open(dir: string, initial: KeptRecord): Promise<WitnessRecordFile> {
    const path = join(dir, RECORD_FILE);
    let names: string[];
    try { names = await readdir(dir); } catch (err) { throw mapFsError(err, `list ${dir}`); }
    if (!names.includes(RECORD_FILE)) {
      const others = names.filter((n) => n !== LOCK_FILE && n !== TEMP_FILE);
      if (names.includes(MARKER_FILE)) {
        throw TwinpageError.notFound(
          `${path} is missing from a folder that held it (${MARKER_FILE} marks it): ` +
          'refusing to start from an empty record, which could grant a lease the lost one would refuse; ' +
          'restore the file, or point --dir at a new folder to start a new record');
      }
      if (others.length > 0) {
        throw TwinpageError.notFound(
          `${dir} holds files (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}) but no ${RECORD_FILE}: ` +
          'refusing to start from an empty record, which could grant a lease the lost one would refuse; ' +
          'point --dir at the folder that holds the record, or at a new folder to start a new one');
      }
      await createRecord(dir, initial);
      await ensureMarker(dir);
      const fh = await openFile(path);
      return new WitnessRecordFile(dir, fh, initial, 1, true, null);
    }
    await ensureMarker(dir);
    const fh = await openFile(path);
    try {
      const { size } = await fh.stat();
      if (size !== 2 * SLOT_BYTES) throw TwinpageError.corrupt(`the witness record ${path} is damaged: ${size} bytes, not ${2 * SLOT_BYTES}; restore it from a copy (a witness never starts over on its own)`);
      const raw = new Uint8Array(2 * SLOT_BYTES);
      const { bytesRead } = await fh.read(raw, 0, raw.byteLength, 0);
      if (bytesRead !== raw.byteLength) throw TwinpageError.corrupt(`the witness record ${path} is damaged: read ${bytesRead} bytes`);
      const chosen = chooseSlot([decodeSlot(raw.subarray(0, SLOT_BYTES)), decodeSlot(raw.subarray(SLOT_BYTES))]);
      if ('error' in chosen) throw TwinpageError.corrupt(`the witness record ${path} is damaged (${chosen.error}); restore it from a copy (a witness never starts over on its own)`);
      return new WitnessRecordFile(dir, fh, chosen.kept, chosen.sequence, false, chosen.damaged);
    } catch (err) {
      await fh.close().catch(() => {});
      if (err instanceof TwinpageError) throw err;
      throw mapFsError(err, `read ${path}`);
    }
  }

  /** Writes `kept` to the next slot and makes it durable (fdatasync). */
  async write(kept: KeptRecord): Promise<void> {
    const fh = this.#fh;
    if (fh === null) throw TwinpageError.closed('the witness record is closed');
    const sequence = this.#sequence + 1;
    const slot = encodeSlot(sequence, kept);
    try {
      await fh.write(slot, 0, SLOT_BYTES, (sequence % 2) * SLOT_BYTES);
      await fh.datasync();
    } catch (err) {
      throw mapFsError(err, `write ${this.path}`);
    }
    this.#sequence = sequence;
    this.kept = kept;
  }

  /** Closes the file and gives up the folder's lock. */
  async close(): Promise<void> {
    const fh = this.#fh;
    if (fh === null) return;
    this.#fh = null;
    await fh.close().catch(() => {});
    await rm(join(this.dir, LOCK_FILE), { force: true }).catch(() => {});
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try { return await open(path, 'r+'); } catch (err) { throw mapFsError(err, `open ${path}`); }
}

/** A new record file, whole or not at all: written aside, made durable, renamed into place, the folder synced. */
async function createRecord(dir: string, initial: KeptRecord): Promise<void> {
  const temp = join(dir, TEMP_FILE);
  const bytes = new Uint8Array(2 * SLOT_BYTES);
  bytes.set(encodeSlot(1, initial), SLOT_BYTES); // sequence 1 lives in slot 1
  try {
    const fh = await open(temp, 'w', 0o600);
    try {
      await fh.write(bytes, 0, bytes.byteLength, 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(temp, join(dir, RECORD_FILE));
    await syncDir(dir);
  } catch (err) {
    throw mapFsError(err, `create ${join(dir, RECORD_FILE)}`);
  }
}

/** Marks the folder as one that holds a record (a folder that did once, never counts as new again). */
async function ensureMarker(dir: string): Promise<void> {
  const path = join(dir, MARKER_FILE);
  try {
    await writeFile(path, MARKER_TEXT, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw mapFsError(err, `create ${path}`);
  }
  try { await syncDir(dir); } catch (err) { throw mapFsError(err, `sync ${dir}`); }
}

async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return; // a folder cannot be opened there; renames are as durable as they get
  const fh = await open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** Takes `<dir>/witness.lock` for this process; BUSY while another live process holds it. */
async function takeLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw mapFsError(err, `create ${path}`);
    }
    let pid = NaN;
    try { pid = Number((await readFile(path, 'utf8')).trim()); } catch { /* gone meanwhile: try again */ }
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw TwinpageError.busy(`a witness (pid ${pid}) already uses ${dir}; stop it first (its lock is ${path})`);
    }
    // Left by a witness that died: removed, then taken like a new one (one of two racing starts wins).
    await rm(path, { force: true });
  }
  throw TwinpageError.busy(`could not take the lock ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
