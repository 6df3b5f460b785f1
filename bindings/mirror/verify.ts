// Verify and read repair: comparing this node's blocks and pages with the
// partner's (its block list, BLOCK_LIST; each block's page checksums,
// READ_HEADER with checksums, in parts of up to SUMS_PER_FRAME), and reading back
// from the partner a page that fails its checksum on every local copy
// (ALLOCATE_READ, answered by the page as a WRITE_PAGE outside the stream,
// sequence 0, then ALLOCATE_READ_REPLY). Both ends of both requests live here.

import { TwinpageError } from '../errors.js';
import type { Block, Memory } from '../memory/memory.js';
import { MessageType, SUMS_PER_FRAME, type AllocateRead, type ReadHeader, type WritePage } from '../messages.js';
import { policyToRecord } from '../policies.js';
import { pageMessages, pointerPages } from './changes.js';
import type { Stream } from './stream.js';

/** What `verify()` found. */
export interface VerifyReport {
  blocks: number;
  pages: number;
  /** Pages whose checksums differ, and blocks one side lacks (page -1). */
  differences: Array<{ blockId: string; page: number }>;
}

export class Verifier {
  readonly #memory: Memory;
  readonly #stream: () => Stream | null;
  /** Pages a partner sent in answer to this node's ALLOCATE_READs, by "block:page", until the reply comes. */
  readonly #readPages = new Map<string, Uint8Array>();
  #readsPending = 0;
  #answering = 0;
  /** Pages read back from the partner after failing their checksum here. */
  repairs = 0;

  constructor(memory: Memory, stream: () => Stream | null) {
    this.#memory = memory;
    this.#stream = stream;
  }

  /**
   * Compares the block lists of both nodes and every block's page checksums
   * with the partner's; reports the differences (blocks only one side holds
   * included, page -1).
   */
  async verify(): Promise<VerifyReport> {
    const stream = this.#stream();
    if (!stream?.open) throw TwinpageError.closed('no partner connected: nothing to verify against');
    const report: VerifyReport = { blocks: 0, pages: 0, differences: [] };
    const mine = this.#memory.blocks();
    const here = new Set(mine.map((b) => b.id));
    for (const id of await this.#partnerBlocks(stream)) {
      if (here.has(id)) continue;
      report.blocks++;
      report.differences.push({ blockId: id, page: -1 });
    }
    for (const b of mine) {
      report.blocks++;
      // In parts of at most SUMS_PER_FRAME pages: a block of any size fits the frames.
      for (let first = 0; first < b.pages; first += SUMS_PER_FRAME) {
        const count = Math.min(SUMS_PER_FRAME, b.pages - first);
        if (!(await this.#comparePart(stream, b, first, count, report))) break;
      }
    }
    return report;
  }

  /** Compares `count` page checksums of block `b` from its page `first`; false when the partner lacks the block. */
  async #comparePart(stream: Stream, b: Block, first: number, count: number, report: VerifyReport): Promise<boolean> {
    const [mine, reply] = await Promise.all([
      this.#memory.header(b.id, { checksums: true, first, count }),
      stream.request({ type: MessageType.READ_HEADER, blockId: b.id, checksums: true, first, count }),
    ]);
    if (reply.type === MessageType.ERROR && reply.code !== 'UNKNOWN_BLOCK') {
      // Not an answer about the block (a timeout, the partner gone, its I/O failing): verify cannot tell.
      throw TwinpageError.fromCode(reply.code, `verify of block ${b.id}: ${reply.message}`);
    }
    if (reply.type !== MessageType.READ_HEADER_REPLY || !reply.checksums || reply.first !== first || reply.checksums.length !== count || reply.pages !== b.pages) {
      report.differences.push({ blockId: b.id, page: -1 });
      return false;
    }
    const sums = mine.checksums!;
    for (let i = 0; i < count; i++) {
      report.pages++;
      if (reply.checksums[i] !== sums[i]) report.differences.push({ blockId: b.id, page: b.base + first + i });
    }
    return true;
  }

  /** The partner's block ids (BLOCK_LIST, answered in parts). */
  async #partnerBlocks(stream: Stream): Promise<string[]> {
    const ids: string[] = [];
    for (const part of await stream.requestParts({ type: MessageType.BLOCK_LIST })) {
      if (part.type === MessageType.ERROR) throw TwinpageError.fromCode(part.code, `verify: the partner's block list: ${part.message}`);
      if (part.type === MessageType.BLOCK_IDS) ids.push(...part.ids);
    }
    return ids;
  }

  /** Answers a partner's READ_HEADER. */
  answerHeader(seq: number, m: ReadHeader): void {
    const range = m.checksums ? { first: m.first, count: m.count } : {};
    // (A range past the block's end is INVALID_ARGUMENT, answered as an ERROR.)
    Promise.resolve().then(() => this.#memory.header(m.blockId, { checksums: m.checksums, ...range })).then(
      (h) => this.#stream()?.post({ type: MessageType.READ_HEADER_REPLY, replyTo: seq, blockId: h.id, base: h.base, pages: h.pages, length: h.length, generation: h.generation, policy: policyToRecord(h.policy), ...(h.checksums ? { first: m.first, checksums: h.checksums } : {}) }),
      (err) => this.#stream()?.post({ type: MessageType.ERROR, replyTo: seq, code: (err as TwinpageError).code ?? 'IO_ERROR', message: String((err as Error).message) }),
    );
  }

  /**
   * The memory's read repair: asks the partner for one page of a block.
   * Null when there is no partner or it cannot read the page either.
   */
  readonly repair = async (blockId: string, page: number): Promise<Uint8Array | null> => {
    // A page this node reads to answer the partner's own repair is not asked back (both bad: CORRUPT, not a deadlock).
    if (this.#answering > 0) return null;
    const b = this.#memory.blocks().find((x) => x.id === blockId);
    const stream = this.#stream();
    if (!b || !stream?.open || page < b.base || page >= b.base + b.pages) return null;
    const ps = this.#memory.pageSize;
    const key = `${blockId}:${page}`;
    this.#readsPending++;
    try {
      const reply = await stream.request({ type: MessageType.ALLOCATE_READ, blockId, offset: (page - b.base) * ps, length: ps });
      const data = this.#readPages.get(key) ?? null;
      if (reply.type !== MessageType.ALLOCATE_READ_REPLY || reply.status !== 'ok' || !data) return null;
      this.repairs++;
      return data;
    } finally {
      this.#readPages.delete(key);
      if (--this.#readsPending === 0) this.#readPages.clear();
    }
  };

  /** A page answering a read of this node's: kept (checked) while a read waits, else dropped. */
  takePage(m: WritePage): void {
    if (this.#readsPending === 0 || m.copy !== 'message' || !m.data) return;
    if (this.#memory.core.checksum(m.data) !== m.checksum) return;
    if (this.#readPages.size >= 64) return;
    this.#readPages.set(`${m.blockId}:${m.page}`, m.data.slice());
  }

  /** Answers a partner's ALLOCATE_READ: the range's whole pages, then the reply. */
  async answerRead(seq: number, m: AllocateRead): Promise<void> {
    const memory = this.#memory;
    const ps = memory.pageSize;
    this.#answering++;
    try {
      const b = memory.blocks().find((x) => x.id === m.blockId);
      if (!b) throw TwinpageError.unknownBlock(`block ${m.blockId} is not here`);
      if (m.offset % ps !== 0 || m.length % ps !== 0 || m.length === 0 || m.length > 64 * ps) {
        throw TwinpageError.invalidArgument('a read of the partner must be whole pages, at most 64');
      }
      const length = Math.min(m.length, b.length - m.offset);
      if (length <= 0) throw TwinpageError.outOfRange(`offset ${m.offset} is past the end of block ${m.blockId}`);
      const ptr = await memory.acquireRead(m.blockId, m.offset, length);
      let pages: WritePage[];
      try {
        pages = pageMessages(m.blockId, pointerPages(ptr, b.base + m.offset / ps, Math.ceil(length / ps), (x) => memory.core.checksum(x)), 0);
      } finally {
        await ptr.release();
      }
      const stream = this.#stream();
      for (const p of pages) stream?.post(p);
      stream?.post({ type: MessageType.ALLOCATE_READ_REPLY, replyTo: seq, status: 'ok' });
    } catch (err) {
      const e = err as TwinpageError;
      this.#stream()?.post({ type: MessageType.ALLOCATE_READ_REPLY, replyTo: seq, status: 'failed', error: { code: e.code ?? 'IO_ERROR', message: String(e.message) } });
    } finally {
      this.#answering--;
    }
  }
}

/** Block ids per BLOCK_IDS frame (16 bytes each: 256 KiB a frame). */
export const IDS_PER_FRAME = 16384;

/** This node's block ids as BLOCK_IDS frames (at least one, the last marked), answering `replyTo` (0: the handshake). */
export function blockIdFrames(ids: string[], replyTo: number): Array<{ type: MessageType.BLOCK_IDS; replyTo: number; last: boolean; ids: string[] }> {
  const out = [];
  for (let i = 0; i === 0 || i < ids.length; i += IDS_PER_FRAME) {
    out.push({ type: MessageType.BLOCK_IDS as const, replyTo, last: i + IDS_PER_FRAME >= ids.length, ids: ids.slice(i, i + IDS_PER_FRAME) });
  }
  return out;
}
