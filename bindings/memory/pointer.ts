// Read and write pointers on a byte range of a block. A pointer holds its
// pages pinned in cache frames and its range in the conflict table until it
// is released; its views are zero-copy windows onto those frames.

import { asyncDispose } from '../disposable.js';
import { TwinpageError } from '../errors.js';

/** What a pointer needs from the memory that handed it out. */
export interface PointerHost {
  frameView(frame: number): Uint8Array;
  readonly pageSize: number;
  releasePointer(p: PointerState, commit: boolean): Promise<void>;
}

/** A pointer's bookkeeping, shared with the memory manager. */
export interface PointerState {
  readonly blockId: string;
  readonly offset: number;
  readonly length: number;
  readonly exclusive: boolean;
  /** First virtual page of the range. */
  readonly first: number;
  /** Frames holding pages first, first + 1, ... */
  readonly frames: number[];
  /** The conflict-table entry holding the range. */
  readonly entry: number;
  /** Write pointers: each page's bytes before the pointer, to undo a failed commit (null: discard the frame). */
  undo: Array<Uint8Array | null>;
  released: boolean;
}

abstract class Pointer {
  readonly #host: PointerHost;
  protected readonly state: PointerState;

  constructor(host: PointerHost, state: PointerState) {
    this.#host = host;
    this.state = state;
  }

  /** The block's id. */
  get blockId(): string { return this.state.blockId; }
  /** Byte offset of the range in the block. */
  get offset(): number { return this.state.offset; }
  /** Bytes in the range. */
  get length(): number { return this.state.length; }
  get released(): boolean { return this.state.released; }

  /**
   * Zero-copy views covering the range in order, one per page (pages sit in
   * separate frames). Valid until `release()`; do not keep them after.
   */
  segments(): Uint8Array[] {
    this.check();
    const { offset, length, frames } = this.state;
    const ps = this.#host.pageSize;
    if (length === ps && frames.length === 1) return [this.#host.frameView(frames[0])]; // one whole page
    const out: Uint8Array[] = [];
    const startInPage = offset % ps;
    const end = startInPage + length; // relative to the first page's start
    for (let i = 0; i < frames.length; i++) {
      const from = i === 0 ? startInPage : 0;
      const to = Math.min(ps, end - i * ps);
      const frame = this.#host.frameView(frames[i]);
      out.push(from === 0 && to === ps ? frame : frame.subarray(from, to));
    }
    return out;
  }

  /** Zero-copy view of the whole `k`-th page the pointer holds (its frame). */
  page(k: number): Uint8Array {
    this.check();
    if (!Number.isInteger(k) || k < 0 || k >= this.state.frames.length) {
      throw TwinpageError.outOfRange(`page ${k} of a pointer holding ${this.state.frames.length}`);
    }
    return this.#host.frameView(this.state.frames[k]);
  }

  /** A copy of `length` bytes from `at` (relative to the pointer's range). */
  read(at = 0, length = this.state.length - at): Uint8Array {
    this.check();
    this.bounds(at, length);
    const out = new Uint8Array(length);
    this.#walk(at, length, (view, pos) => out.set(view, pos));
    return out;
  }

  protected write(at: number, data: Uint8Array): void {
    this.check();
    if (!(data instanceof Uint8Array)) throw TwinpageError.invalidArgument('data must be a Uint8Array');
    this.bounds(at, data.length);
    this.#walk(at, data.length, (view, pos) => view.set(data.subarray(pos, pos + view.length)));
  }

  /**
   * Ends the pointer; a write pointer commits its pages first and resolves
   * at its block's durability. A read pointer is released before this
   * returns (awaiting it is optional).
   */
  release(): Promise<void> {
    if (this.state.released) return Promise.reject(TwinpageError.pointerReleased('this pointer was already released'));
    return this.#host.releasePointer(this.state, true);
  }

  protected discard(): Promise<void> {
    if (this.state.released) return Promise.reject(TwinpageError.pointerReleased('this pointer was already released'));
    return this.#host.releasePointer(this.state, false);
  }

  protected check(): void {
    if (this.state.released) throw TwinpageError.pointerReleased('this pointer was released');
  }

  protected bounds(at: number, length: number): void {
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(length) || at < 0 || length < 0 || at + length > this.state.length) {
      throw TwinpageError.outOfRange(`bytes [${at}, ${at}+${length}) are outside the pointer's ${this.state.length} bytes`);
    }
  }

  /** Calls `fn(view, pos)` for each frame window of [at, at + length), pos relative to `at`. */
  #walk(at: number, length: number, fn: (view: Uint8Array, pos: number) => void): void {
    const ps = this.#host.pageSize;
    let abs = (this.state.offset % ps) + at; // position relative to the first page's start
    let pos = 0;
    while (pos < length) {
      const i = Math.floor(abs / ps);
      const inPage = abs % ps;
      const n = Math.min(ps - inPage, length - pos);
      fn(this.#host.frameView(this.state.frames[i]).subarray(inPage, inPage + n), pos);
      pos += n;
      abs += n;
    }
  }
}

/** A shared, read-only pointer (ALLOCATE_READ). Other readers may hold the same range. */
export class ReadPointer extends Pointer {
  /** `await using p = await memory.acquireRead(…)`: released at the end of the scope (if it was not). */
  async [asyncDispose](): Promise<void> {
    if (!this.released) await this.release();
  }
}

/** An exclusive write pointer (ALLOCATE_WRITE); `release()` commits at the block's durability. */
export class WritePointer extends Pointer {
  /** Copies `data` into the range at `at`. */
  override write(at: number, data: Uint8Array): void {
    super.write(at, data);
  }

  /** Ends the pointer without committing: its pages return to their contents before it. */
  abort(): Promise<void> {
    return this.discard();
  }

  /**
   * `await using w = await memory.acquireWrite(…)`: a pointer not released
   * by the end of the scope is aborted (its pages return to their contents
   * before it), as a transaction not committed is rolled back: a scope left
   * by an exception commits nothing. Call `release()` to commit.
   */
  async [asyncDispose](): Promise<void> {
    if (!this.released) await this.abort();
  }
}
