// The block table: every block's header by GUID, and the address space its
// runs are taken from. In memory only; the journal (wal.ts) makes changes to
// it durable, and a checkpoint writes it whole into the store's table file
// (storage/table.ts) once enough has changed since the last one; the journal
// carries the changes in between.
//
// Built to hold millions of blocks: the headers live in columns of typed
// arrays (a GUID is four 32-bit words), found through an open-addressing
// index on the GUID, with the policies stored once and referenced by number.
// A header becomes a `Block` object when it is asked for, and stays one (the
// same object) while the block lives; opening a store therefore makes no
// object per block, and listing the blocks makes one each.
//
//   row r:   id (4 words) | base | pages | length | generation | policy | flags
//   index:   slot -> row + 1 (0 empty, -1 a removed entry), probed linearly

import { TwinpageError } from '../errors.js';
import type { Policy } from '../policies.js';
import { policyToRecord } from '../policies.js';
import { ENTRY_BYTES } from '../storage/table.js';
import { AddressSpace } from './space.js';

/** A block's header (READ_HEADER). */
export interface Block {
  /** The block's GUID. */
  id: string;
  /** First virtual page. */
  base: number;
  /** Bytes asked for at allocation. */
  length: number;
  /** Pages in the block's run. */
  pages: number;
  policy: Policy;
  /** The journal sequence that created the block. */
  generation: number;
}

/** Row flags. */
const LIVE = 1;
/** The row is in the store's table file (a change to it is a change since the table). */
const IN_TABLE = 2;

/** A block freed since the table file was written: the journal carries its FREE until the next table. */
export interface FreedSinceTable { id: string; lsn: number }

export class BlockTable {
  readonly capacityPages: number;
  #space: AddressSpace;
  // Columns, `#capacity` rows each.
  #capacity = 0;
  #ids = new Uint32Array(0);
  #base = new Uint32Array(0);
  #pages = new Uint32Array(0);
  #length = new Float64Array(0);
  #generation = new Float64Array(0);
  #policy = new Uint32Array(0);
  #flags = new Uint8Array(0);
  /** Rows in use (live or dead), and live ones. */
  #rows = 0;
  #live = 0;
  /** Slot -> row + 1; 0 empty, -1 removed. Its length is a power of two; a GUID's home slot is its hash >>> #shift. */
  #index = new Int32Array(16);
  #shift = 28;
  /** Rows were loaded without being indexed: the index is built whole before it is used. */
  #indexStale = false;
  /** Slots not empty (live and removed). */
  #indexUsed = 0;
  /** The Block objects made so far, by id and by row: the same object while the block lives. */
  readonly #objects = new Map<string, Block>();
  #rowObject: Array<Block | undefined> = [];
  /** Policies, stored once; rows hold their number. */
  readonly #policies: Policy[] = [];
  readonly #policyByObject = new Map<Policy, number>();
  readonly #policyByKey = new Map<string, number>();
  /** Live rows not in the table file, and table rows freed since it was written. */
  #added = 0;
  #freed: FreedSinceTable[] = [];
  /** Live rows in base order, made when asked for and dropped at each change. */
  #sorted: Int32Array | null = null;
  readonly #words = new Uint32Array(4);

  constructor(capacityPages: number) {
    this.capacityPages = capacityPages;
    this.#space = new AddressSpace(capacityPages);
  }

  // --- lookups ---------------------------------------------------------------------------

  /** The block `id`; INVALID_ARGUMENT for a malformed id, UNKNOWN_BLOCK for one not here. */
  get(id: string): Block {
    const b = this.find(id);
    if (b) return b;
    if (!parseGuid(id, this.#words)) throw TwinpageError.invalidArgument(`block id must be a GUID string, got ${JSON.stringify(id)}`);
    throw TwinpageError.unknownBlock(`no block ${id}`);
  }

  /** The block `id`, or undefined. */
  find(id: string): Block | undefined {
    const known = this.#objects.get(id);
    if (known) return known;
    if (typeof id !== 'string' || !parseGuid(id, this.#words)) return undefined;
    const row = this.#find(this.#words);
    return row < 0 ? undefined : this.#object(row, id);
  }

  has(id: string): boolean {
    return this.find(id) !== undefined;
  }

  /** Whether `block` is still the table's block of its id (not freed, not replaced). */
  holds(block: Block): boolean {
    return this.#objects.get(block.id) === block;
  }

  get size(): number {
    return this.#live;
  }

  /** Every block, in the table's order (the same objects `get` gives). */
  *values(): IterableIterator<Block> {
    for (let r = 0; r < this.#rows; r++) if (this.#flags[r] & LIVE) yield this.#object(r);
  }

  /** A copy of every block's header, in the table's order (for callers to keep). */
  list(): Block[] {
    const out = new Array<Block>(this.#live);
    let k = 0;
    for (let r = 0; r < this.#rows; r++) {
      if (!(this.#flags[r] & LIVE)) continue;
      out[k++] = {
        id: this.#rowObject[r]?.id ?? this.#idOf(r), base: this.#base[r], length: this.#length[r], pages: this.#pages[r],
        policy: this.#policies[this.#policy[r]], generation: this.#generation[r],
      };
    }
    return out;
  }

  /** The block whose run holds `page`, or undefined. */
  blockAt(page: number): Block | undefined {
    const order = this.sortedRows();
    let lo = 0;
    let hi = order.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = order[mid];
      if (page < this.#base[r]) hi = mid - 1;
      else if (page >= this.#base[r] + this.#pages[r]) lo = mid + 1;
      else return this.#object(r);
    }
    return undefined;
  }

  // --- the address space -------------------------------------------------------------------

  /** Pages free in the address space. */
  get freePages(): number {
    return this.#space.freePages;
  }

  /** Takes a run of `pages`: its base, or -1 when none is long enough. */
  takeRun(pages: number): number {
    return this.#space.allocate(pages);
  }

  /** Takes exactly `[base, base + pages)`: false when any of it is taken. */
  takeRunAt(base: number, pages: number): boolean {
    return this.#space.allocateAt(base, pages);
  }

  /** Gives a run back. */
  releaseRun(base: number, pages: number): void {
    this.#space.release(base, pages);
  }

  /** After loading and replay: rebuilds the address space from the blocks held (one pass over them in base order). */
  rebuildSpace(): void {
    const order = this.sortedRows();
    let end = 0;
    for (let k = 0; k < order.length; k++) {
      const r = order[k];
      if (this.#base[r] < end) throw TwinpageError.corrupt(`block ${this.#idOf(r)} overlaps the block before it in the address space`);
      end = this.#base[r] + this.#pages[r];
    }
    if (end > this.capacityPages) throw TwinpageError.invalidArgument('capacityBytes is smaller than the blocks this store holds');
    this.#space = AddressSpace.fromSorted(this.capacityPages, order, this.#base, this.#pages);
  }

  // --- changes -----------------------------------------------------------------------------

  /** Adds a block whose run is taken already (a change since the table file). */
  add(block: Block): void {
    const words = this.#words;
    if (!parseGuid(block.id, words)) throw TwinpageError.invalidArgument(`not a GUID: ${String(block.id)}`);
    if (this.#find(words) >= 0) throw TwinpageError.alreadyExists(`block ${block.id} is in the table already`);
    const r = this.#append(words, block.base, block.pages, block.length, block.generation, this.policyNumber(block.policy), LIVE);
    this.#objects.set(block.id, block);
    this.#rowObject[r] = block;
    this.#added++;
  }

  /** Removes a block (its run is given back separately); `lsn` is the sequence of its FREE record. */
  delete(id: string, lsn = 0): void {
    const words = this.#words;
    if (!parseGuid(id, words)) return;
    const r = this.#find(words);
    if (r < 0) return;
    this.#unindex(words, r);
    if (this.#flags[r] & IN_TABLE) this.#freed.push({ id, lsn });
    else this.#added--;
    this.#flags[r] = 0;
    this.#live--;
    this.#objects.delete(this.#rowObject[r]?.id ?? id);
    this.#rowObject[r] = undefined;
    this.#sorted = null;
    if (this.#rows - this.#live > Math.max(1024, this.#live)) this.#compact();
  }

  // --- the table file -------------------------------------------------------------------------

  /** Changes since the table file (or since the store began, without one): blocks added and table blocks freed. */
  get changesSinceTable(): number {
    return this.#added + this.#freed.length;
  }

  /** The blocks added since the table file (what a checkpoint's journal carries as ALLOC records). */
  *addedSinceTable(): IterableIterator<Block> {
    for (let r = 0; r < this.#rows; r++) if ((this.#flags[r] & (LIVE | IN_TABLE)) === LIVE) yield this.#object(r);
  }

  /** The table file's blocks freed since it was written (carried as FREE records). */
  freedSinceTable(): readonly FreedSinceTable[] {
    return this.#freed;
  }

  /** Every live block is in the table file now (a checkpoint wrote it). */
  tableWritten(): void {
    for (let r = 0; r < this.#rows; r++) if (this.#flags[r] & LIVE) this.#flags[r] = LIVE | IN_TABLE;
    this.#added = 0;
    this.#freed = [];
  }

  /** The number a policy is stored under (registered when new). */
  policyNumber(policy: Policy): number {
    let n = this.#policyByObject.get(policy);
    if (n !== undefined) return n;
    const key = JSON.stringify(policyToRecord(policy));
    n = this.#policyByKey.get(key);
    if (n === undefined) {
      n = this.#policies.length;
      this.#policies.push(policy);
      this.#policyByKey.set(key, n);
    }
    this.#policyByObject.set(policy, n);
    return n;
  }

  /** The policies, by number. */
  get policies(): readonly Policy[] {
    return this.#policies;
  }

  /** Live rows in base order (kept until the next change). */
  sortedRows(): Int32Array {
    if (this.#sorted) return this.#sorted;
    const base = this.#base;
    const order = new Int32Array(this.#live);
    let n = 0;
    let prefix = -1;
    for (let r = 0; r < this.#rows; r++) {
      if (!(this.#flags[r] & LIVE)) continue;
      if (prefix < 0 && n > 0 && base[r] < base[order[n - 1]]) prefix = n;
      order[n++] = r;
    }
    // The table file's rows come in base order; what was added since is sorted apart and merged in.
    if (prefix >= 0) {
      const tail = Array.from(order.subarray(prefix)).sort((a, b) => base[a] - base[b]);
      const head = order.slice(0, prefix);
      let i = 0;
      let j = 0;
      for (let k = 0; k < n; k++) order[k] = j >= tail.length || (i < head.length && base[head[i]] < base[tail[j]]) ? head[i++] : tail[j++];
    }
    this.#sorted = order;
    return order;
  }

  /**
   * Writes the entries of rows `order[from .. from + n)` at `at` of `view`
   * (storage/table.ts lays them out): id, base, pages, length, generation,
   * policy number.
   */
  encodeEntries(order: Int32Array, from: number, n: number, view: DataView, at: number): void {
    const ids = this.#ids;
    for (let k = 0; k < n; k++, at += ENTRY_BYTES) {
      const r = order[from + k];
      view.setUint32(at, ids[4 * r], true);
      view.setUint32(at + 4, ids[4 * r + 1], true);
      view.setUint32(at + 8, ids[4 * r + 2], true);
      view.setUint32(at + 12, ids[4 * r + 3], true);
      view.setUint32(at + 16, this.#base[r], true);
      view.setUint32(at + 20, this.#pages[r], true);
      setU64(view, at + 24, this.#length[r]);
      setU64(view, at + 32, this.#generation[r]);
      view.setUint32(at + 40, this.#policy[r], true);
      view.setUint32(at + 44, 0, true);
    }
  }

  /** Makes room for `n` more rows at once (a table file about to be loaded). */
  expect(n: number): void {
    this.#reserve(this.#rows + n);
  }

  /**
   * Loads `n` entries from `at` of `view` (a table file's, checked already)
   * as rows of the table file. `policies` maps the file's policy numbers to
   * this table's. Entries that make no sense (a zero-page run, a run past the
   * page space, a policy the file does not list, a GUID twice) are CORRUPT.
   */
  loadEntries(view: DataView, at: number, n: number, policies: readonly number[], where: string): void {
    this.#reserve(this.#rows + n);
    // The entries as 32-bit words (little-endian, as the file), read in place where the platform allows.
    const aligned = LITTLE_ENDIAN && (view.byteOffset + at) % 4 === 0;
    const w = aligned ? new Uint32Array(view.buffer, view.byteOffset + at, n * ENTRY_WORDS) : wordsOf(view, at, n);
    const ids = this.#ids;
    for (let k = 0, o = 0; k < n; k++, o += ENTRY_WORDS) {
      const base = w[o + 4];
      const pages = w[o + 5];
      const length = w[o + 6] + w[o + 7] * 0x100000000;
      const generation = w[o + 8] + w[o + 9] * 0x100000000;
      const policy = w[o + 10];
      if (pages === 0 || base + pages > 0x100000000 || policy >= policies.length || w[o + 11] !== 0
        || w[o + 7] >= 0x200000 || w[o + 9] >= 0x200000 || generation < 1) {
        throw TwinpageError.corrupt(`${where}: entry ${k} makes no sense`);
      }
      const r = this.#rows;
      ids[4 * r] = w[o];
      ids[4 * r + 1] = w[o + 1];
      ids[4 * r + 2] = w[o + 2];
      ids[4 * r + 3] = w[o + 3];
      this.#base[r] = base;
      this.#pages[r] = pages;
      this.#length[r] = length;
      this.#generation[r] = generation;
      this.#policy[r] = policies[policy];
      this.#flags[r] = LIVE | IN_TABLE;
      this.#rows++;
      this.#live++;
    }
    this.#sorted = null;
    this.#indexStale = true;
  }

  /**
   * After `loadEntries`: indexes the rows loaded, all at once (a GUID the
   * table lists twice would be found once; the chunks' checksums stand for
   * the table being as it was written, from an index that held each once).
   */
  indexLoaded(): void {
    this.#rehash(this.#index.length);
  }

  // --- rows ----------------------------------------------------------------------------------

  #append(words: Uint32Array, base: number, pages: number, length: number, generation: number, policy: number, flags: number): number {
    if (this.#rows === this.#capacity) this.#reserve(this.#rows + 1);
    const r = this.#rows++;
    this.#ids.set(words, 4 * r);
    this.#base[r] = base;
    this.#pages[r] = pages;
    this.#length[r] = length;
    this.#generation[r] = generation;
    this.#policy[r] = policy;
    this.#flags[r] = flags;
    this.#live++;
    this.#sorted = null;
    this.#indexRow(words, r);
    return r;
  }

  /** Room for `rows` rows (columns grown by doubling). */
  #reserve(rows: number): void {
    if (rows <= this.#capacity) return;
    const cap = Math.max(rows, 2 * this.#capacity, 64);
    const grow = <T extends Uint32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T, per = 1): T => {
      const b = make(cap * per);
      b.set(a.subarray(0, this.#rows * per));
      return b;
    };
    this.#ids = grow(this.#ids, (n) => new Uint32Array(n), 4);
    this.#base = grow(this.#base, (n) => new Uint32Array(n));
    this.#pages = grow(this.#pages, (n) => new Uint32Array(n));
    this.#length = grow(this.#length, (n) => new Float64Array(n));
    this.#generation = grow(this.#generation, (n) => new Float64Array(n));
    this.#policy = grow(this.#policy, (n) => new Uint32Array(n));
    this.#flags = grow(this.#flags, (n) => new Uint8Array(n));
    this.#capacity = cap;
    // The index stays at most half full (removed entries counted).
    let slots = this.#index.length;
    while (slots < 2 * cap) slots *= 2;
    if (slots !== this.#index.length) this.#rehash(slots);
  }

  /** Drops dead rows (their order kept), then rebuilds the index. */
  #compact(): void {
    let w = 0;
    const objects: Array<Block | undefined> = [];
    for (let r = 0; r < this.#rows; r++) {
      if (!(this.#flags[r] & LIVE)) continue;
      if (w !== r) {
        this.#ids.copyWithin(4 * w, 4 * r, 4 * r + 4);
        this.#base[w] = this.#base[r];
        this.#pages[w] = this.#pages[r];
        this.#length[w] = this.#length[r];
        this.#generation[w] = this.#generation[r];
        this.#policy[w] = this.#policy[r];
        this.#flags[w] = this.#flags[r];
      }
      objects[w] = this.#rowObject[r];
      w++;
    }
    this.#flags.fill(0, w, this.#rows);
    this.#rows = w;
    this.#rowObject = objects;
    this.#sorted = null;
    this.#rehash(this.#index.length);
  }

  /** The Block object of row `r` (made once, then the same). */
  #object(r: number, id?: string): Block {
    const known = this.#rowObject[r];
    if (known) return known;
    const b: Block = {
      id: id ?? this.#idOf(r), base: this.#base[r], length: this.#length[r], pages: this.#pages[r],
      policy: this.#policies[this.#policy[r]], generation: this.#generation[r],
    };
    this.#rowObject[r] = b;
    this.#objects.set(b.id, b);
    return b;
  }

  #idOf(r: number): string {
    const w = this.#ids;
    return guidOf(w[4 * r], w[4 * r + 1], w[4 * r + 2], w[4 * r + 3]);
  }

  // --- the index -----------------------------------------------------------------------------
  //
  // A row's home slot is the top bits of its GUID's hash; collisions probe
  // the next slots. Rows loaded from a table file are indexed all at once.

  /** The live row of `words`, or -1. */
  #find(words: Uint32Array): number {
    if (this.#indexStale) this.#rehash(this.#index.length);
    const index = this.#index;
    const mask = index.length - 1;
    const ids = this.#ids;
    for (let s = hashWords(words) >>> this.#shift; ; s = (s + 1) & mask) {
      const v = index[s];
      if (v === 0) return -1;
      if (v < 0) continue;
      const r = v - 1;
      if (ids[4 * r] === words[0] && ids[4 * r + 1] === words[1] && ids[4 * r + 2] === words[2] && ids[4 * r + 3] === words[3]) return r;
    }
  }

  #indexRow(words: Uint32Array, r: number): void {
    if (this.#indexStale) this.#rehash(this.#index.length);
    // At most half full, removed entries counted: removed ones are dropped, and the index doubles when live ones need it.
    if (2 * (this.#indexUsed + 1) > this.#index.length) this.#rehash(4 * (this.#live + 1) > this.#index.length ? 2 * this.#index.length : this.#index.length);
    const index = this.#index;
    const mask = index.length - 1;
    let s = hashWords(words) >>> this.#shift;
    while (index[s] > 0) s = (s + 1) & mask;
    if (index[s] === 0) this.#indexUsed++;
    index[s] = r + 1;
  }

  #unindex(words: Uint32Array, r: number): void {
    if (this.#indexStale) this.#rehash(this.#index.length);
    const index = this.#index;
    const mask = index.length - 1;
    for (let s = hashWords(words) >>> this.#shift; ; s = (s + 1) & mask) {
      if (index[s] === r + 1) { index[s] = -1; return; }
      if (index[s] === 0) return;
    }
  }

  /**
   * Builds the index anew with `slots` slots (grown to stay at most half
   * full) over the live rows, in row order.
   */
  #rehash(slots: number): void {
    while (slots < 2 * (this.#live + 1)) slots *= 2;
    const shift = 32 - Math.log2(slots);
    const ids = this.#ids;
    const flags = this.#flags;
    const index = new Int32Array(slots);
    const mask = slots - 1;
    for (let r = 0; r < this.#rows; r++) {
      if (!(flags[r] & LIVE)) continue;
      let s = hash4(ids[4 * r], ids[4 * r + 1], ids[4 * r + 2], ids[4 * r + 3]) >>> shift;
      while (index[s] !== 0) s = (s + 1) & mask;
      index[s] = r + 1;
    }
    this.#index = index;
    this.#shift = shift;
    this.#indexUsed = this.#live;
    this.#indexStale = false;
  }
}

function hashWords(w: Uint32Array): number {
  return hash4(w[0], w[1], w[2], w[3]);
}

function hash4(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9E3779B9, 0x85EBCA6B);
  h = Math.imul(h ^ (h >>> 15) ^ b, 0xC2B2AE35);
  h = Math.imul(h ^ (h >>> 13) ^ c, 0x27D4EB2F);
  h = Math.imul(h ^ (h >>> 16) ^ d, 0x165667B1);
  return (h ^ (h >>> 15)) >>> 0;
}

/** Words per table entry. */
const ENTRY_WORDS = ENTRY_BYTES / 4;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** `n` entries from `at` of `view` as little-endian words (where they cannot be read in place). */
function wordsOf(view: DataView, at: number, n: number): Uint32Array {
  const w = new Uint32Array(n * ENTRY_WORDS);
  for (let i = 0; i < w.length; i++) w[i] = view.getUint32(at + 4 * i, true);
  return w;
}

function setU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 0x100000000, true);
  v.setUint32(at + 4, Math.floor(n / 0x100000000), true);
}

function getU64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x100000000;
}

// --- GUIDs as four words ----------------------------------------------------------------------
//
// Byte k of the GUID (in the order its hex digits are written) is byte k % 4
// of word k / 4, little-endian: the words are the 16 bytes the format stores.

const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) NIBBLE[97 + i] = 10 + i;
/** Where the hex digits of byte k start in the string form. */
const HEX_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** Parses a lowercase GUID string into `out` (4 words); false when it is not one. */
export function parseGuid(id: string, out: Uint32Array): boolean {
  if (typeof id !== 'string' || id.length !== 36) return false;
  if (id.charCodeAt(8) !== 45 || id.charCodeAt(13) !== 45 || id.charCodeAt(18) !== 45 || id.charCodeAt(23) !== 45) return false;
  let word = 0;
  for (let k = 0; k < 16; k++) {
    const c1 = id.charCodeAt(HEX_AT[k]);
    const c2 = id.charCodeAt(HEX_AT[k] + 1);
    const hi = c1 < 128 ? NIBBLE[c1] : -1;
    const lo = c2 < 128 ? NIBBLE[c2] : -1;
    if (hi < 0 || lo < 0) return false;
    word |= ((hi << 4) | lo) << ((k & 3) * 8);
    if ((k & 3) === 3) { out[k >> 2] = word >>> 0; word = 0; }
  }
  return true;
}

const HEX_CODE = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const s = i.toString(16).padStart(2, '0');
  HEX_CODE[2 * i] = s.charCodeAt(0);
  HEX_CODE[2 * i + 1] = s.charCodeAt(1);
}

/** The string form of a GUID given as four words (one call, no intermediate strings). */
export function guidOf(a: number, b: number, c: number, d: number): string {
  const h = HEX_CODE;
  const x = (v: number) => h[2 * v];
  const y = (v: number) => h[2 * v + 1];
  const a0 = a & 255, a1 = (a >>> 8) & 255, a2 = (a >>> 16) & 255, a3 = a >>> 24;
  const b0 = b & 255, b1 = (b >>> 8) & 255, b2 = (b >>> 16) & 255, b3 = b >>> 24;
  const c0 = c & 255, c1 = (c >>> 8) & 255, c2 = (c >>> 16) & 255, c3 = c >>> 24;
  const d0 = d & 255, d1 = (d >>> 8) & 255, d2 = (d >>> 16) & 255, d3 = d >>> 24;
  return String.fromCharCode(
    x(a0), y(a0), x(a1), y(a1), x(a2), y(a2), x(a3), y(a3), 45,
    x(b0), y(b0), x(b1), y(b1), 45, x(b2), y(b2), x(b3), y(b3), 45,
    x(c0), y(c0), x(c1), y(c1), 45, x(c2), y(c2), x(c3), y(c3),
    x(d0), y(d0), x(d1), y(d1), x(d2), y(d2), x(d3), y(d3),
  );
}
