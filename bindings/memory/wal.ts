// The memory's write-ahead log: the journal of the current epoch (replaced
// at each checkpoint) and the sequence numbers (LSNs) it hands out. A record
// is appended and flushed by group commit (storage/journal.ts); a failed
// flush cuts the journal back to its last durable end and the caller undoes
// its in-memory change.

import { policyToRecord } from '../policies.js';
import type { Journal } from '../storage/journal.js';
import { RecordType, type JournalRecord } from '../storage/format.js';
import type { Block } from './blocks.js';

export class Wal {
  #journal: Journal | null = null;
  #nextLsn = 1;

  /** The journal records go to (none before the first checkpoint of a new store). */
  get journal(): Journal {
    if (!this.#journal) throw new Error('twinpage: no journal yet');
    return this.#journal;
  }

  get hasJournal(): boolean {
    return this.#journal !== null;
  }

  /** Switches to a new epoch's journal (checkpoint); returns the old one. */
  swap(journal: Journal): Journal | null {
    const old = this.#journal;
    this.#journal = journal;
    return old;
  }

  /** The next sequence number, taken. */
  takeLsn(): number {
    return this.#nextLsn++;
  }

  /** The sequence the next change will get (without taking it). */
  get nextLsn(): number {
    return this.#nextLsn;
  }

  /** Replay saw `lsn`: later changes get higher ones. */
  saw(lsn: number): void {
    this.#nextLsn = Math.max(this.#nextLsn, lsn + 1);
  }

  /** Bytes in the current journal. */
  get size(): number {
    return this.#journal?.size ?? 0;
  }

  get epoch(): number {
    return this.journal.epoch;
  }

  /**
   * Appends one record and waits for its flush. On failure the journal is
   * cut back to its last durable end (this record and any that shared the
   * flush are gone) and the error is thrown: callers undo their changes.
   */
  async log(record: JournalRecord): Promise<void> {
    const journal = this.journal;
    try {
      journal.append(record);
      await journal.commit();
    } catch (err) {
      await journal.recover();
      throw err;
    }
  }

  /**
   * As `log`, for a PAGES record: resolves with the journal's copy of each
   * image (made when the record was appended, in this turn), once flushed.
   * The copies are the caller's to keep when it says so (`keep`); otherwise
   * they hold only until the turn they resolve in ends.
   */
  async logPages(record: Extract<JournalRecord, { type: RecordType.Pages }>, keep = false): Promise<Uint8Array[]> {
    const journal = this.journal;
    let copy: Uint8Array;
    try {
      copy = journal.append(record, keep);
      await journal.commit();
    } catch (err) {
      await journal.recover();
      throw err;
    }
    const ps = record.images.length ? copy.length / record.images.length : 0;
    return record.images.map((_, i) => copy.subarray(i * ps, (i + 1) * ps));
  }

  /** Journals a block's creation. */
  logAlloc(block: Block): Promise<void> {
    return this.log(this.#allocRecord(block));
  }

  /**
   * Appends a block's creation now (in this turn: the journal's order is
   * the caller's) and returns the wait for its flush, which the records
   * appended meanwhile share (group commit). On failure as `log`.
   */
  appendAlloc(block: Block): Promise<void> {
    const journal = this.journal;
    try {
      journal.append(this.#allocRecord(block));
    } catch (err) {
      return journal.recover().then(() => { throw err; });
    }
    return journal.commit().catch(async (err: unknown) => {
      await journal.recover();
      throw err;
    });
  }

  #allocRecord(block: Block): JournalRecord {
    return { type: RecordType.Alloc, lsn: block.generation, epoch: this.epoch, block: { ...block, policy: policyToRecord(block.policy) } };
  }

  /** Journals a block's release; resolves with the record's sequence number. */
  async logFree(id: string): Promise<number> {
    const lsn = this.takeLsn();
    await this.log({ type: RecordType.Free, lsn, epoch: this.epoch, id });
    return lsn;
  }
}
