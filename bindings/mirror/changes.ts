// Changes as messages: the one place a memory's Change becomes the paging
// synchronization messages that travel (ALLOCATE_MEMORY, RELEASE_MEMORY, a
// WRITE_PAGE per page then RELEASE_POINTER), and messages become a Change
// again on the partner.

import { TwinpageError } from '../errors.js';
import type { Block, Change, PageWrite, ReadPointer } from '../memory/memory.js';
import { MessageType, type AllocateMemory, type Request, type WritePage } from '../messages.js';
import { policyFromRecord, policyToRecord } from '../policies.js';
import { isGuid } from '../storage/format.js';

/** The messages of one change, in order. */
export function changeMessages(change: Change): Request[] {
  switch (change.type) {
    case 'allocate': return [allocateMessage(change.block)];
    case 'free': return [{ type: MessageType.RELEASE_MEMORY, blockId: change.blockId }];
    case 'release': {
      const out: Request[] = pageMessages(change.blockId, change.pages, change.lsn);
      out.push({ type: MessageType.RELEASE_POINTER, blockId: change.blockId, offset: change.offset, length: change.length, lsn: change.lsn, pages: change.pages.length });
      return out;
    }
  }
}

/** ALLOCATE_MEMORY for a block. */
export function allocateMessage(b: Block): AllocateMemory {
  return { type: MessageType.ALLOCATE_MEMORY, blockId: b.id, base: b.base, pages: b.pages, length: b.length, generation: b.generation, policy: policyToRecord(b.policy) };
}

/** A WRITE_PAGE (its bytes in the message) for each page. */
export function pageMessages(blockId: string, pages: PageWrite[], lsn: number): WritePage[] {
  return pages.map((p) => ({ type: MessageType.WRITE_PAGE, blockId, page: p.page, lsn, checksum: p.checksum, copy: 'message', data: p.data }));
}

/** The block an ALLOCATE_MEMORY creates. */
export function blockOf(m: AllocateMemory): Block {
  if (!isGuid(m.blockId)) throw TwinpageError.invalidArgument(`block id must be a GUID string, got ${JSON.stringify(m.blockId)}`);
  return { id: m.blockId, base: m.base, pages: m.pages, length: m.length, policy: policyFromRecord(m.policy), generation: m.generation };
}

/** The page a WRITE_PAGE carries in its frame (copied in already for the other copy methods). */
export function pageOf(m: WritePage): PageWrite {
  if (m.copy !== 'message' || !m.data) {
    throw TwinpageError.invalidArgument(`WRITE_PAGE for block ${m.blockId}: its page must arrive as 'message' data (the mirror copies 'shared' and 'storage' pages in before applying)`);
  }
  return { page: m.page, checksum: m.checksum, data: m.data };
}

/** Copies of a read pointer's whole pages, `first` being the first one's number. */
export function pointerPages(ptr: ReadPointer, first: number, count: number, checksum: (b: Uint8Array) => bigint): PageWrite[] {
  const out: PageWrite[] = [];
  for (let k = 0; k < count; k++) {
    const data = ptr.page(k).slice();
    out.push({ page: first + k, checksum: checksum(data), data });
  }
  return out;
}
