import { TwinpageError } from '../errors.js';
import { u32, intIn, bytes } from './args.js';
import { statusError } from './status.js';
import { instantiateCore } from './wasm.js';
import { BitmapInfo, type BitmapExports } from './exports.js';

/** One past the last page: 0xFFFFFFFF is not a page. */
const END = 0xFFFFFFFF;
const LAST_PAGE = 0xFFFFFFFE;
const CHUNK_PAGES = 32768;
const CHUNK_MASK = 32767;
const CHUNK_BYTES = 4096;
// The shared blocks of assembly/bitmap.ts: every empty chunk points at
// block 0 (zeros), every full one at block 1 (ones).
const ZERO = 0;
const ONES = 1;
const CHUNKS = 131072;
const WASM_PAGE = 65536;
const MAX_RUN_BATCH = 65536;
// Core statuses the wrapper treats apart (assembly/status.ts).
const S_INVALID_ARG = -2;
const S_NOT_FOUND = -5;
const S_TOO_LARGE = -15;

/** True only for an integer number in [0, 2^32) (see conflict.ts). */
const isU32 = (x: number): boolean => typeof x === 'number' && (x >>> 0) === x;

/** Checks a page range given as (first, count); throws INVALID_ARGUMENT naming what is wrong. */
function checkRange(first: number, count: number): void {
  u32(first, 'first');
  intIn(count, 1, END, 'count');
  if (first + count > END) {
    throw TwinpageError.invalidArgument(`first + count must not pass 2^32-1 (the last page is 2^32-2), got first ${first}, count ${count}`);
  }
}

/** Options of `PageBitmap.create`. */
export interface PageBitmapOptions {
  /**
   * Most runs one `runs()` call returns; also the batch in which `addRuns`
   * hands runs to the core (1 to 65536).
   * @default 4096
   */
  runBatch?: number;
  /**
   * Most bytes of linear memory the bitmap may take (rounded down to 64 KiB);
   * a change that would need more is refused with TOO_LARGE and changes
   * nothing. 0: no limit but the page space itself, which at worst (every
   * chunk partly set) takes about 514 MiB.
   * @default 0
   */
  maxBytes?: number;
}

/** What a bitmap holds, from `PageBitmap.stats()`. */
export interface PageBitmapStats {
  /** Chunks with 1 to 32767 pages set: a 4 KiB block each. */
  chunks: number;
  /** Chunks with all 32768 pages set: they share one block. */
  fullChunks: number;
  /** Directory blocks: 4 KiB each, one per 512 chunks (16M pages) in use. */
  directories: number;
  /** Bytes of linear memory. It grows as blocks are needed and never shrinks; freed blocks are reused. */
  memoryBytes: number;
}

/**
 * A bitmap of the u32 page space, one bit per page: the out-of-sync record
 * a node keeps for its partner ("the partner may lack this page"), as
 * DRBD's bitmap. Pages are 0 to 2^32-2.
 *
 * Set and clear pages or runs, test one, walk set pages as runs in address
 * order (resync), merge a partner's runs (handshake), read the weight (the
 * pages set) in O(1). For persistence by the caller, the bitmap is cut into
 * fixed chunks of 32768 pages (4096 bytes); those changed since they were
 * last marked clean are listed by `dirtyChunks()`, read with `chunkBytes()`
 * and loaded back with `loadChunk()`. Chunk bytes are little-endian: bit k
 * of byte j of chunk i is page i * 32768 + 8j + k.
 *
 * It lives in its own WebAssembly instance (the core's module), in two
 * levels of 4 KiB blocks allocated as chunks are touched: an empty bitmap
 * takes one 64 KiB wasm page (with the default `runBatch`), a page near
 * 2^32-2 one directory and one chunk block, a run of a million pages a few
 * entries (full chunks share one block), every page set 1.2 MiB. Scattered
 * pages take a block per chunk they touch, as DRBD's 32 MiB per TiB
 * spanned. Memory grows and never shrinks; freed blocks are reused.
 */
export class PageBitmap {
  /** Pages per chunk. */
  static readonly CHUNK_PAGES = CHUNK_PAGES;
  /** Bytes per chunk (`chunkBytes`, `loadChunk`). */
  static readonly CHUNK_BYTES = CHUNK_BYTES;
  /** Chunks in the page space: chunk indexes are 0 to CHUNKS - 1. */
  static readonly CHUNKS = CHUNKS;

  /** Most runs one `runs()` call returns. */
  readonly runBatch: number;
  /** The memory limit in bytes (0: none), as given to `create`. */
  readonly maxBytes: number;
  readonly #x: BitmapExports;
  readonly #set: BitmapExports['bitmapSet'];
  readonly #clear: BitmapExports['bitmapClear'];
  readonly #runs: BitmapExports['bitmapRuns'];
  readonly #ioOffset: number;
  readonly #ioBytes: number;
  readonly #weightOffset: number;
  /** u32 index of the top directory and of block 0 in `#mem`. */
  readonly #top: number;
  readonly #pool: number;
  // Views of the instance's memory, made again whenever a call into the
  // core grew it (growth detaches them): only calls into the core grow it.
  #buffer: ArrayBuffer;
  #mem!: Uint32Array;
  #weight!: Float64Array;
  #io32!: Uint32Array;
  #io8!: Uint8Array;
  #view!: Uint32Array;
  #viewRuns = -1;

  private constructor(x: BitmapExports, maxBytes: number) {
    this.#x = x;
    this.#set = x.bitmapSet;
    this.#clear = x.bitmapClear;
    this.#runs = x.bitmapRuns;
    this.maxBytes = maxBytes;
    this.runBatch = x.bitmapInfo(BitmapInfo.RunBatch);
    this.#ioOffset = x.bitmapInfo(BitmapInfo.Io);
    this.#ioBytes = x.bitmapInfo(BitmapInfo.IoBytes);
    this.#weightOffset = x.bitmapInfo(BitmapInfo.Weight);
    this.#top = x.bitmapInfo(BitmapInfo.Top) >>> 2;
    this.#pool = x.bitmapInfo(BitmapInfo.Pool) >>> 2;
    this.#buffer = x.memory.buffer;
    this.#refresh();
  }

  /**
   * A new, empty bitmap in an instance of its own (the module is compiled
   * once and cached).
   * @throws INVALID_ARGUMENT for a bad option; TOO_LARGE when `maxBytes`
   *   leaves no room for the layout.
   */
  static async create(options: PageBitmapOptions = {}): Promise<PageBitmap> {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    const runBatch = intIn(options.runBatch ?? 4096, 1, MAX_RUN_BATCH, 'runBatch');
    const maxBytes = intIn(options.maxBytes ?? 0, 0, 2 ** 32, 'maxBytes');
    if (maxBytes !== 0 && maxBytes < WASM_PAGE) {
      throw TwinpageError.invalidArgument(`maxBytes must be 0 (no limit) or at least 65536, got ${maxBytes}`);
    }
    const x = (await instantiateCore()) as unknown as BitmapExports;
    const r = x.bitmapInit(runBatch, Math.floor(maxBytes / WASM_PAGE));
    if (r === S_TOO_LARGE) throw TwinpageError.tooLarge(`maxBytes (${maxBytes}) leaves no room for the bitmap's layout`);
    if (r < 0) throw statusError(r, 'create bitmap');
    return new PageBitmap(x, maxBytes);
  }

  /**
   * Sets `count` pages from `first`.
   * @returns how many of them were clear (newly set).
   * @throws INVALID_ARGUMENT for a bad range (count 0, past page 2^32-2);
   *   TOO_LARGE when the memory limit is reached (nothing changed).
   */
  set(first: number, count = 1): number {
    // One page in a chunk with a block of its own that it does not fill:
    // the bit, the chunk's weight and dirty flag, the directory's dirty
    // count and the weight, written here through the views, as
    // assembly/bitmap.ts lays them out (a call into WebAssembly costs more
    // than the work, and no branch here waits on the bitmap word's cache
    // miss). Anything else goes to the core.
    if (count === 1 && isU32(first) && first !== END) {
      const m = this.#mem;
      const c = first >>> 15;
      const top = this.#top + ((c >>> 9) << 1);
      const dir = m[top];
      if (dir !== 0) {
        const entry = this.#pool + (dir << 10) + ((c & 511) << 1);
        const block = m[entry];
        if (block === ONES) return 0;
        const meta = m[entry + 1]; // weight (bits 0-15), flags (bits 16-31; bit 16 dirty)
        if (block !== ZERO && (meta & 0xFFFF) !== CHUNK_PAGES - 1) {
          const word = this.#pool + (block << 10) + ((first & CHUNK_MASK) >>> 5);
          const v = m[word];
          const n = (~v >>> (first & 31)) & 1;
          m[word] = v | (1 << (first & 31));
          m[entry + 1] = (meta + n) | (n << 16);
          if ((meta & 0x10000) === 0) m[top + 1] += n << 16; // a clean chunk: the directory's dirty count (bits 16-31)
          this.#weight[0] += n;
          return n;
        }
      }
    }
    return this.#setInCore(first, count);
  }

  /** `set` through the core: ranges, and pages whose chunk needs a block or becomes full. */
  #setInCore(first: number, count: number): number {
    if (!isU32(first) || !isU32(count) || count === 0 || first + count > END) checkRange(first, count);
    const r = this.#set(first, count);
    this.#grew();
    return r < 0 ? this.#fail(r, `set ${count} pages from ${first}`) : r;
  }

  /**
   * Clears `count` pages from `first`.
   * @returns how many of them were set (newly cleared).
   * @throws INVALID_ARGUMENT for a bad range; TOO_LARGE when the memory
   *   limit is reached (clearing inside a run of full chunks takes a block).
   */
  clear(first: number, count = 1): number {
    // One page in a chunk with a block of its own that it does not empty:
    // written here, as `set` does.
    if (count === 1 && isU32(first) && first !== END) {
      const m = this.#mem;
      const c = first >>> 15;
      const top = this.#top + ((c >>> 9) << 1);
      const dir = m[top];
      if (dir === 0) return 0;
      const entry = this.#pool + (dir << 10) + ((c & 511) << 1);
      const block = m[entry];
      if (block === ZERO) return 0;
      const meta = m[entry + 1];
      if (block !== ONES && (meta & 0xFFFF) !== 1) {
        const word = this.#pool + (block << 10) + ((first & CHUNK_MASK) >>> 5);
        const v = m[word];
        const n = (v >>> (first & 31)) & 1;
        m[word] = v & ~(1 << (first & 31));
        m[entry + 1] = (meta - n) | (n << 16);
        if ((meta & 0x10000) === 0) m[top + 1] += n << 16;
        this.#weight[0] -= n;
        return n;
      }
    }
    return this.#clearInCore(first, count);
  }

  /** `clear` through the core: ranges, and pages whose chunk is full or becomes empty. */
  #clearInCore(first: number, count: number): number {
    if (!isU32(first) || !isU32(count) || count === 0 || first + count > END) checkRange(first, count);
    const r = this.#clear(first, count);
    this.#grew();
    return r < 0 ? this.#fail(r, `clear ${count} pages from ${first}`) : r;
  }

  /** Whether `page` (0 to 2^32-2) is set. */
  has(page: number): boolean {
    if (!isU32(page) || page === END) intIn(page, 0, LAST_PAGE, 'page');
    // Read through the views: an absent directory or chunk reads block 0 (zeros).
    const m = this.#mem;
    const c = page >>> 15;
    const dir = m[this.#top + ((c >>> 9) << 1)];
    const block = m[this.#pool + (dir << 10) + ((c & 511) << 1)];
    return ((m[this.#pool + (block << 10) + ((page & CHUNK_MASK) >>> 5)] >>> (page & 31)) & 1) === 1;
  }

  /**
   * The first set page at or after `from` (0 to 2^32-1), or -1 when there
   * is none.
   */
  next(from: number): number {
    if (!isU32(from)) u32(from, 'from');
    const r = this.#x.bitmapNext(from);
    if (r === S_NOT_FOUND) return -1;
    return r < 0 ? this.#fail(r, `next from ${from}`) : r;
  }

  /** The weight: how many pages are set. O(1): kept by every change. */
  count(): number {
    return this.#weight[0];
  }

  /**
   * How many of `count` pages from `first` are set. Whole chunks count by
   * their kept weight, so a long range costs one step per chunk.
   */
  countRange(first: number, count: number): number {
    if (!isU32(first) || !isU32(count) || count === 0 || first + count > END) checkRange(first, count);
    const r = this.#x.bitmapCount(first, count);
    return r < 0 ? this.#fail(r, `count ${count} pages from ${first}`) : r;
  }

  /**
   * Up to `max` runs of set pages at or after `from` (0 to 2^32-1), in
   * address order, as pairs: `[first0, count0, first1, count1, ...]`. A run
   * that holds `from` is cut to start there. Runs are whole, so the next
   * batch starts at the end of the last one (`first + count`); fewer than
   * `max` runs means the walk is done.
   *
   * The array is a view of the bitmap's memory, reused by every call and
   * allocated only when the number of runs changes: read it before the next
   * call on this bitmap (any call may overwrite it, or detach it by growing
   * memory), or `slice()` it to keep it.
   */
  runs(from: number, max: number = this.runBatch): Uint32Array {
    if (!isU32(from)) u32(from, 'from');
    if (!isU32(max) || max === 0 || max > this.runBatch) intIn(max, 1, this.runBatch, 'max');
    const n = this.#runs(from, max);
    if (n < 0) this.#fail(n, `runs from ${from}`);
    if (n !== this.#viewRuns) {
      this.#view = this.#io32.subarray(0, 2 * n);
      this.#viewRuns = n;
    }
    return this.#view;
  }

  /**
   * Every run of set pages at or after `from`, as `[first, count]`, in
   * address order: `runs()` batch by batch, each batch copied, so the
   * caller may change the bitmap between steps (a resync clearing what it
   * sent); a batch is read when the previous one is used up.
   */
  *allRuns(from = 0): IterableIterator<[first: number, count: number]> {
    let at = u32(from, 'from');
    for (;;) {
      const batch = this.runs(at).slice();
      for (let i = 0; i < batch.length; i += 2) yield [batch[i], batch[i + 1]];
      if (batch.length < 2 * this.runBatch) return;
      at = batch[batch.length - 2] + batch[batch.length - 1];
    }
  }

  /**
   * Sets every run of `pairs` (`[first0, count0, first1, count1, ...]`, in
   * any order, overlapping or not): a partner's runs merged in. Every run
   * is checked before any is set.
   * @returns how many pages were clear (newly set).
   * @throws INVALID_ARGUMENT for an odd length or a bad run (nothing
   *   changed); TOO_LARGE when the memory limit is reached: runs are set in
   *   batches of `runBatch`, each all or nothing, and the batches before the
   *   refused one stay set (setting them again is harmless).
   */
  addRuns(pairs: Uint32Array): number {
    if (!(pairs instanceof Uint32Array)) throw TwinpageError.invalidArgument('pairs must be a Uint32Array of (first, count) pairs');
    if (pairs.length % 2 !== 0) throw TwinpageError.invalidArgument(`pairs must hold whole (first, count) pairs, got ${pairs.length} numbers`);
    for (let i = 0; i < pairs.length; i += 2) {
      const first = pairs[i];
      const count = pairs[i + 1];
      if (count === 0 || first + count > END) {
        throw TwinpageError.invalidArgument(`run ${i / 2} (first ${first}, count ${count}): count must be at least 1 and first + count at most 2^32-1`);
      }
    }
    let added = 0;
    const step = 2 * this.runBatch;
    for (let at = 0; at < pairs.length; at += step) {
      const part = pairs.subarray(at, Math.min(pairs.length, at + step));
      this.#io32.set(part);
      const r = this.#x.bitmapAddRuns(part.length / 2);
      this.#grew();
      if (r < 0) this.#fail(r, `add runs ${at / 2} to ${(at + part.length) / 2 - 1}`);
      added += r;
    }
    return added;
  }

  /**
   * Clears every page. Chunks that held any become dirty (to be saved as
   * zeros).
   * @returns how many pages were set.
   */
  clearAll(): number {
    const r = this.#x.bitmapClearAll();
    return r < 0 ? this.#fail(r, 'clear all') : r;
  }

  /**
   * The chunks changed since they were last marked clean (`markClean`) or
   * loaded (`loadChunk`), ascending. A chunk cleared to zeros stays listed:
   * save it as zeros.
   */
  dirtyChunks(): number[] {
    const out: number[] = [];
    const max = this.#ioBytes >>> 2;
    let from = 0;
    for (;;) {
      const n = this.#x.bitmapDirty(from, max);
      if (n < 0) this.#fail(n, 'dirty chunks');
      const io = this.#io32;
      for (let i = 0; i < n; i++) out.push(io[i]);
      if (n < max) return out;
      from = io[n - 1] + 1;
    }
  }

  /**
   * A copy of chunk `chunk`'s 4096 bytes (zeros for a chunk with no page
   * set), the form to save. To save without losing a change made while the
   * write is in flight: take the bytes and `markClean` in the same turn,
   * before awaiting the write, and `markDirty` when the write fails.
   */
  chunkBytes(chunk: number): Uint8Array {
    const c = intIn(chunk, 0, CHUNKS - 1, 'chunk');
    const r = this.#x.bitmapChunkRead(c);
    if (r < 0) this.#fail(r, `read chunk ${c}`);
    return this.#io8.slice(0, CHUNK_BYTES);
  }

  /**
   * Replaces chunk `chunk` with `data` (4096 bytes, as saved from
   * `chunkBytes`), at open; the weight follows and the chunk is clean.
   * @returns how many pages of the chunk are set.
   * @throws INVALID_ARGUMENT for a bad index or length, or bytes that set
   *   the bit of page 2^32-1 (not a page); TOO_LARGE at the memory limit.
   */
  loadChunk(chunk: number, data: Uint8Array): number {
    const c = intIn(chunk, 0, CHUNKS - 1, 'chunk');
    bytes(data, 'data');
    if (data.length !== CHUNK_BYTES) throw TwinpageError.invalidArgument(`data must be ${CHUNK_BYTES} bytes (one chunk), got ${data.length}`);
    this.#io8.set(data);
    const r = this.#x.bitmapChunkLoad(c);
    this.#grew();
    if (r === S_INVALID_ARG) throw TwinpageError.invalidArgument(`chunk ${c}: data sets the bit of page 2^32-1, which is not a page`);
    return r < 0 ? this.#fail(r, `load chunk ${c}`) : r;
  }

  /** Marks chunk `chunk` saved: `dirtyChunks()` no longer lists it until it changes. */
  markClean(chunk: number): void {
    const c = intIn(chunk, 0, CHUNKS - 1, 'chunk');
    const r = this.#x.bitmapMarkClean(c);
    if (r < 0) this.#fail(r, `mark chunk ${c} clean`);
  }

  /**
   * Marks chunk `chunk` dirty, changed or not: a save of it failed.
   * @throws TOO_LARGE at the memory limit (a directory block may be needed).
   */
  markDirty(chunk: number): void {
    const c = intIn(chunk, 0, CHUNKS - 1, 'chunk');
    const r = this.#x.bitmapMarkDirty(c);
    this.#grew();
    if (r < 0) this.#fail(r, `mark chunk ${c} dirty`);
  }

  /**
   * One past the highest chunk that holds a set page (0 when none does):
   * chunks `[0, chunkCount)` hold every set page. Costs a scan of at most
   * 256 + 512 directory entries.
   */
  get chunkCount(): number {
    return this.#x.bitmapChunkSpan();
  }

  /** Blocks held and memory taken. */
  stats(): PageBitmapStats {
    const x = this.#x;
    return {
      chunks: x.bitmapInfo(BitmapInfo.OwnChunks),
      fullChunks: x.bitmapInfo(BitmapInfo.FullChunks),
      directories: x.bitmapInfo(BitmapInfo.Directories),
      memoryBytes: x.memory.buffer.byteLength,
    };
  }

  /** After a call that may have grown memory: views made again when it did (growth detaches them). */
  #grew(): void {
    if (this.#x.memory.buffer !== this.#buffer) this.#refresh();
  }

  #refresh(): void {
    const buffer = this.#x.memory.buffer;
    this.#buffer = buffer;
    this.#mem = new Uint32Array(buffer);
    this.#weight = new Float64Array(buffer, this.#weightOffset, 1);
    this.#io32 = new Uint32Array(buffer, this.#ioOffset, this.#ioBytes >>> 2);
    this.#io8 = new Uint8Array(buffer, this.#ioOffset, this.#ioBytes);
    this.#view = this.#io32.subarray(0, 0);
    this.#viewRuns = 0;
  }

  #fail(status: number, what: string): never {
    if (status === S_TOO_LARGE) {
      throw TwinpageError.tooLarge(`${what}: the bitmap would pass its memory limit (maxBytes ${this.maxBytes})`);
    }
    throw statusError(status, what);
  }
}
