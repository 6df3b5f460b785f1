// The arbiter: the third vote that lets automatic failover tell a dead
// partner from a dead link. It holds the pair's record (epoch, primary,
// outdated node, generation) and a lease, and changes them only by
// compare-and-swap. Implementations: an in-process one (here, for tests and
// for one process running both nodes), a `twinpage witness` process
// (witness.ts), and a lease in etcd (etcd.ts).
//
// The rules the pair keeps with it (quorum.ts):
//   - a primary acknowledges a write only while its partner is connected,
//     or while it holds the lease and has marked the partner outdated before
//     its first write the partner lacks;
//   - a secondary promotes itself only by acquiring the lease: granted when
//     no live lease is held by another node, it is not outdated, and its
//     generation is the record's;
//   - the epoch grows at every change of primary; every frame carries it,
//     and a frame of an older epoch is refused (fencing a stale primary).
// Lease time is measured with monotonic clocks: the holder counts its lease
// from when it *asked* (so it ends here before it ends at the arbiter), less
// a margin for clock rates.

/** The pair's record at the arbiter. */
export interface PairRecord {
  /** Grows at every change of primary; 0 before the first. */
  epoch: number;
  /** The node holding the lease (the primary while it holds one), or null. */
  primary: string | null;
  /** A node lacking writes the primary acknowledged without it: it may not take over. */
  outdated: string | null;
  /** The primary's generation when it last changed the record ('' at first). */
  generation: string;
}

/** The answer to an acquire: the lease, or why not. */
export type Acquired =
  | { granted: true; record: PairRecord; ttlMs: number }
  | { granted: false; record: PairRecord; reason: string };

/** What an arbiter does; every method may reject when the arbiter cannot be reached (IO_ERROR, TIMEOUT, CLOSED). */
export interface Arbiter {
  /** What the arbiter is, for messages and status (e.g. `witness 10.0.0.3:7100`, `etcd http://...`). */
  readonly name: string;
  /** The lease's length, in ms. */
  readonly ttlMs: number;
  /** The record as it is now. */
  read(): Promise<PairRecord>;
  /**
   * Takes or renews the lease for `node`, whose current generation is
   * `generation`. Granted when no other node holds a live lease, `node` is
   * not outdated, and (on a change of holder) `generation` is the record's
   * or the record has none. A change of holder grows the epoch.
   */
  acquire(node: string, generation: string): Promise<Acquired>;
  /** While `node` holds the lease of `epoch`: marks `partner` outdated, with the holder's `generation`. False when it no longer holds it. */
  outdate(node: string, epoch: number, partner: string, generation: string): Promise<boolean>;
  /** While `node` holds the lease of `epoch`: the partner holds everything again (clears the mark, records `generation`). */
  clear(node: string, epoch: number, generation: string): Promise<boolean>;
  /** `node` gives up the lease of `epoch` (a demotion, a close, a partner back in sync). */
  release(node: string, epoch: number): Promise<void>;
  /** Stops using the arbiter (its connection, if any). */
  close(): Promise<void>;
}

/**
 * The rules of the record, for implementations that keep it themselves
 * (in process, the witness): given the record, the lease's holder and
 * expiry (arbiter's monotonic ms), decide an acquire at `now`.
 */
export function decideAcquire(
  state: { record: PairRecord; leaseUntil: number }, node: string, generation: string, now: number, ttlMs: number,
): { state: { record: PairRecord; leaseUntil: number }; result: Acquired } {
  const { record, leaseUntil } = state;
  const held = record.primary !== null && now < leaseUntil;
  if (held && record.primary !== node) {
    return { state, result: { granted: false, record, reason: `node ${record.primary} holds the lease` } };
  }
  if (record.outdated === node) {
    return { state, result: { granted: false, record, reason: `node ${node} is outdated: it lacks writes its partner acknowledged` } };
  }
  const change = record.primary !== node;
  if (change && record.generation !== '' && record.generation !== generation) {
    return { state, result: { granted: false, record, reason: `node ${node} has generation ${generation}, the record ${record.generation}` } };
  }
  const next: PairRecord = change
    ? { epoch: record.epoch + 1, primary: node, outdated: record.outdated, generation }
    : record;
  return { state: { record: next, leaseUntil: now + ttlMs }, result: { granted: true, record: next, ttlMs } };
}

/** An arbiter in this process: the record in memory (tests; two nodes in one process). */
export class MemoryArbiter implements Arbiter {
  readonly name = 'in-process arbiter';
  readonly ttlMs: number;
  #state: { record: PairRecord; leaseUntil: number } = { record: { epoch: 0, primary: null, outdated: null, generation: '' }, leaseUntil: 0 };
  /** While true every call rejects, as an arbiter out of reach does. */
  unreachable = false;

  constructor(options: { ttlMs?: number } = {}) {
    this.ttlMs = options.ttlMs ?? 10_000;
  }

  #check(): void {
    if (this.unreachable) throw new Error('the arbiter is out of reach');
  }

  async read(): Promise<PairRecord> {
    this.#check();
    return { ...this.#state.record };
  }

  async acquire(node: string, generation: string): Promise<Acquired> {
    this.#check();
    const { state, result } = decideAcquire(this.#state, node, generation, performance.now(), this.ttlMs);
    this.#state = state;
    return { ...result, record: { ...result.record } };
  }

  async outdate(node: string, epoch: number, partner: string, generation: string): Promise<boolean> {
    this.#check();
    if (!this.#holds(node, epoch)) return false;
    this.#state = { ...this.#state, record: { ...this.#state.record, outdated: partner, generation } };
    return true;
  }

  async clear(node: string, epoch: number, generation: string): Promise<boolean> {
    this.#check();
    if (!this.#holds(node, epoch)) return false;
    this.#state = { ...this.#state, record: { ...this.#state.record, outdated: null, generation } };
    return true;
  }

  async release(node: string, epoch: number): Promise<void> {
    this.#check();
    if (this.#state.record.primary === node && this.#state.record.epoch === epoch) this.#state = { ...this.#state, leaseUntil: 0 };
  }

  async close(): Promise<void> {}

  #holds(node: string, epoch: number): boolean {
    const { record, leaseUntil } = this.#state;
    return record.primary === node && record.epoch === epoch && performance.now() < leaseUntil;
  }
}
