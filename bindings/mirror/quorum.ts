// Quorum: the pair's rules with its arbiter (arbiter.ts). A primary that
// must acknowledge a write its partner lacks (the partner is gone, or never
// acknowledged it) first holds the arbiter's lease and marks the partner
// outdated there; without that it suspends the write until quorum returns
// (or fails it, `onNoQuorum: 'error'`). It renews the lease while it needs
// it, checks it again right before each such acknowledgement, and gives it
// up once the partner holds everything again. A secondary takes over only by
// acquiring the lease. Lease time is monotonic (performance.now()), counted
// from when this node asked, less a margin.

import { TwinpageError } from '../errors.js';
import type { Arbiter, PairRecord } from './arbiter.js';

/** What quorum reports in `sense()`. */
export interface QuorumState {
  /** The arbiter, by name. */
  arbiter: string;
  /** This node holds the lease now (a primary acknowledging writes its partner lacks). */
  held: boolean;
  /** Ms left on the lease (0 when not held). */
  leaseMs: number;
  /** The pair's epoch as this node knows it. */
  epoch: number;
  /** The partner this node marked outdated, or null. */
  outdated: string | null;
  /** Writes waiting for quorum. */
  waiting: number;
  /** Why quorum was last refused or out of reach, or null. */
  lastError: string | null;
}

export interface QuorumHooks {
  /** This node's id and current generation. */
  nodeId(): string;
  generation(): string;
  /** The arbiter's record shows an epoch; a newer one than this node knew is adopted (and a primary behind it fenced). */
  epochSeen(epoch: number, record: PairRecord): void;
  /** Quorum was lost or regained (for events), with why when lost. */
  changed?(held: boolean, reason: string | null): void;
}

export class Quorum {
  readonly arbiter: Arbiter;
  readonly #mode: 'suspend' | 'error';
  /** The margin for clock rates, as a share of each lease granted. */
  readonly #marginShare: number;
  readonly #hooks: QuorumHooks;
  #epoch = 0;
  /** Local monotonic ms until which the lease is surely held here. */
  #validUntil = 0;
  /** The partner marked outdated under the lease held now (trusted only while it is held). */
  #outdated: string | null = null;
  /** A partner this node may have marked at the arbiter and not cleared since (a call may take effect and still fail). */
  #maybeMarked: string | null = null;
  #renewTimer: ReturnType<typeof setTimeout> | null = null;
  #ensuring: Promise<void> | null = null;
  #ensuringEra = 0;
  #waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #lastError: string | null = null;
  #stopped = false;
  /** What was last said of quorum (null: nothing yet). */
  #reported: boolean | null = null;
  /** Set when this node was fenced (a newer primary took over): writes waiting for quorum fail with it. */
  #fencedBy: Error | null = null;
  /**
   * Grows whenever the lease is given up here (a settle, a demotion, a fencing, a stop): a
   * grant asked for before that and answered after it is not taken (seen by review: a primary
   * that lost its link asked, was demoted while the arbiter answered, and kept renewing
   * the lease as a secondary, so its partner's promotion was refused for good).
   */
  #era = 0;
  /**
   * This node's calls that change the lease or the record run one at a time, in order: the
   * arbiter sees them as this node made them (an etcd answers separate requests in any
   * order), and none reads this node's state halfway through another (seen by review: two
   * settles at once, or a settle and a write's marking, left a mark cleared at the arbiter
   * and believed here).
   */
  #serial: Promise<unknown> = Promise.resolve();
  /** Writes acknowledged under the lease with the partner marked: a settle begun before one does not clear the mark. */
  #ackedAlone = 0;
  /** Settles begun: a write whose quorum was being sought when one began is one the partner holds. */
  #settles = 0;
  /** The generation the arbiter's record holds, as last seen in a grant or set here (null: not known). */
  #recordGeneration: string | null = null;

  constructor(arbiter: Arbiter, options: { onNoQuorum: 'suspend' | 'error'; marginShare?: number; epoch: number }, hooks: QuorumHooks) {
    this.arbiter = arbiter;
    this.#mode = options.onNoQuorum;
    this.#marginShare = options.marginShare ?? 0.1;
    this.#epoch = options.epoch;
    this.#hooks = hooks;
  }

  get epoch(): number { return this.#epoch; }

  /** Whether the lease is held now and `partner` (when known) is marked outdated under it. */
  holds(partner: string | null): boolean {
    return performance.now() < this.#validUntil && (partner === null || this.#outdated === partner);
  }

  state(): QuorumState {
    const left = Math.max(0, this.#validUntil - performance.now());
    return {
      arbiter: this.arbiter.name, held: left > 0, leaseMs: Math.round(left), epoch: this.#epoch,
      outdated: this.#outdated, waiting: this.#waiters.length, lastError: this.#lastError,
    };
  }

  /**
   * Resolves once this node may acknowledge writes `partner` lacks: the
   * lease held here and the partner marked outdated (`partner` null: a node
   * never paired, nobody to mark). Checked again right before it resolves.
   * Without quorum it waits (suspend) until quorum comes back or `release`
   * says the partner holds everything again, or rejects NO_QUORUM (error).
   */
  async ensure(partner: string | null): Promise<'held' | 'released'> {
    const settles = this.#settles;
    for (;;) {
      if (this.#fencedBy) throw this.#fencedBy;
      // The partner found holding everything since this began (this write included): it goes
      // on without the lease, and asks for none (seen by review: a write that marked the
      // partner again after the settle cleared it kept a connected pair's lease for good).
      if (this.#settles !== settles) return 'released';
      if (this.holds(partner)) return this.#acknowledged();
      if (this.#stopped) throw TwinpageError.closed('this mirror is closed');
      try {
        await this.#taking(partner);
        if (this.#settles !== settles) return 'released';
        if (this.holds(partner)) return this.#acknowledged();
        // The lease taken for another reason (hold(), with nobody to mark): this write's turn now.
        if (this.holds(null) && !this.#fencedBy) continue;
      } catch (err) {
        this.#lastError = (err as Error).message;
        if (this.#settles !== settles) return 'released';
      }
      // Fenced while the arbiter answered: the write fails with it now, not after a wait.
      if (this.#fencedBy) throw this.#fencedBy;
      if (this.#mode === 'error') throw TwinpageError.noQuorum(`no quorum: ${this.#lastError ?? 'the lease is not held'}; the write is kept here and resynced, but not acknowledged`);
      this.#changed(false);
      // Suspended: tried again after a while, or released when the partner holds everything.
      const again = await this.#wait(Math.max(100, Math.min(1000, this.arbiter.ttlMs / 4)));
      if (again === 'released') return 'released';
    }
  }

  /** A write the partner lacks goes on, acknowledged under the lease and the mark. */
  #acknowledged(): 'held' {
    this.#ackedAlone++;
    return 'held';
  }

  /** Runs `fn` after every such call before it (see `#serial`). */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  /**
   * Takes the lease now, if it is not held (a primary that lost its partner):
   * renewed until `settle` gives it up. Failures are kept for sense() only: a
   * write the partner lacks asks again (ensure).
   */
  hold(): void {
    if (this.#stopped || this.#fencedBy || performance.now() < this.#validUntil) return;
    void this.#taking(null).catch((err) => {
      this.#lastError = (err as Error).message;
    });
  }

  /**
   * The lease being taken now, shared by every caller of this era (a write, hold()); one
   * asked for before a give-up (a settle, a demotion) is not shared: it is dropped when
   * answered, and a call made after the give-up needs its own (seen by review: a hold() as
   * the link went again rode a call a settle had given up, and the primary held no lease).
   */
  #taking(partner: string | null): Promise<void> {
    if (this.#ensuring && this.#ensuringEra === this.#era) return this.#ensuring;
    const taking: Promise<void> = this.#obtain(partner).finally(() => { if (this.#ensuring === taking) this.#ensuring = null; });
    this.#ensuring = taking;
    this.#ensuringEra = this.#era;
    return taking;
  }

  /** Takes (or renews) the lease, then marks the partner outdated under it. */
  #obtain(partner: string | null): Promise<void> {
    // The era of the call, not of its turn: a give-up while it waits for its turn counts.
    const era = this.#era;
    return this.#exclusive(() => this.#obtainNow(partner, era));
  }

  async #obtainNow(partner: string | null, era: number): Promise<void> {
    const asked = performance.now();
    const got = await this.arbiter.acquire(this.#hooks.nodeId(), this.#hooks.generation());
    this.#seen(got.record);
    if (!got.granted) throw TwinpageError.noQuorum(`the arbiter (${this.arbiter.name}) refused the lease: ${got.reason}`);
    // Given up while the arbiter answered: the grant is not taken (nor renewed: it runs out
    // there, or is given back by the release() that gave it up, which runs after this call).
    if (this.#era !== era) throw TwinpageError.noQuorum('the lease was given up while the arbiter granted it');
    this.#recordGeneration = got.record.generation;
    const hadLease = performance.now() < this.#validUntil;
    // A mark is trusted only under the lease it was set under, and while the record (the
    // grant carries it) still shows it: a lease taken afresh marks again (a mark believed
    // here may have been cleared at the arbiter since, by a settle whose release then
    // failed, say). Until the mark is set, none is believed.
    const trusted = hadLease && got.record.outdated === this.#outdated ? this.#outdated : null;
    const mark = partner !== null && trusted !== partner;
    this.#outdated = mark ? null : trusted;
    this.#validUntil = asked + this.#held(got.ttlMs);
    if (mark) {
      this.#maybeMarked = partner;
      if (!(await this.arbiter.outdate(this.#hooks.nodeId(), got.record.epoch, partner!, this.#hooks.generation()))) {
        this.#validUntil = 0;
        throw TwinpageError.noQuorum(`the arbiter (${this.arbiter.name}) no longer grants this node's lease`);
      }
      this.#outdated = partner;
      this.#recordGeneration = this.#hooks.generation();
      if (this.#era !== era) throw TwinpageError.noQuorum('the lease was given up while the arbiter marked the partner');
    }
    this.#lastError = null;
    if (!hadLease) this.#changed(true);
    this.#scheduleRenew();
  }

  /** Quorum lost or regained: said once per change. */
  #changed(held: boolean): void {
    if (this.#reported === held) return;
    this.#reported = held;
    this.#hooks.changed?.(held, this.#lastError);
  }

  /** Renews a third of the way through the lease, while it is held. */
  #scheduleRenew(): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    const delay = Math.max(50, (this.#validUntil - performance.now()) / 3);
    this.#renewTimer = setTimeout(() => {
      this.#renewTimer = null;
      if (this.#stopped || this.#validUntil === 0) return;
      const partner = this.#outdated;
      const era = this.#era;
      // Renewed only if still held at its turn (a settle queued before it gives the lease up).
      this.#exclusive(() => (this.#validUntil === 0 ? Promise.resolve() : this.#obtainNow(partner, era))).catch((err) => {
        this.#lastError = (err as Error).message;
        // Out of reach: tried again until the lease ends here.
        if (performance.now() < this.#validUntil) this.#scheduleRenew();
        else this.#changed(false);
      });
    }, delay);
    (this.#renewTimer as { unref?: () => void }).unref?.();
  }

  #wait(ms: number): Promise<'again' | 'released'> {
    return new Promise((resolve, reject) => {
      const w = { resolve: () => { clearTimeout(timer); resolve('released'); }, reject: (err: Error) => { clearTimeout(timer); reject(err); } };
      const timer = setTimeout(() => { this.#waiters = this.#waiters.filter((x) => x !== w); resolve('again'); }, ms);
      this.#waiters.push(w);
    });
  }

  /**
   * The partner holds everything again (a resync ended): writes waiting for
   * quorum go on, the mark is cleared and the lease given up, so a later
   * failover need not wait for it to expire.
   */
  async settle(): Promise<void> {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
    // Run after every lease call made before it (a lease taken as the partner went, a
    // renewal), which it gives up: not granted after this and renewed for good. Calls made
    // after it (the partner gone again) are not given up.
    this.#settles++;
    this.#era++;
    const acked = this.#ackedAlone;
    await this.#exclusive(() => this.#settleNow(acked));
  }

  async #settleNow(acked: number): Promise<void> {
    // A write acknowledged alone since the partner was found whole: it lacks that one.
    if (this.#ackedAlone !== acked) return;
    const node = this.#hooks.nodeId();
    const generation = this.#hooks.generation();
    let mark = this.#outdated ?? this.#maybeMarked;
    // A record naming an older generation of this node (a failover takes the lease, then a new
    // generation) refuses the partner, in sync on this one, every later takeover: set too.
    let stale = this.#recordGeneration !== null && this.#recordGeneration !== generation;
    if (mark === null && !stale && this.#validUntil === 0) {
      // Nothing marked by this process; but a mark of an earlier one (this node marked its
      // partner, was killed, and started again) would stay at the arbiter, and the partner,
      // in sync, could never take over: it is cleared too.
      try {
        const record = await this.arbiter.read();
        if (record.primary !== node) return;
        mark = record.outdated;
        stale = record.generation !== '' && record.generation !== generation;
        if (mark === null && !stale) return;
      } catch (err) {
        this.#lastError = (err as Error).message;
        return;
      }
    }
    if ((mark !== null || stale) && !this.holds(null)) {
      // A mark is cleared only under the lease: taken again when it is not held (it ran
      // out since a clearing that failed, say).
      try {
        await this.#obtainNow(null, this.#era);
      } catch (err) {
        this.#lastError = (err as Error).message;
        return;
      }
    }
    if (this.#ackedAlone !== acked) return;
    // Given up here at once: a write from now on takes the lease and marks again, after this.
    const epoch = this.#epoch;
    this.#stopRenew();
    this.#validUntil = 0;
    this.#outdated = null;
    try {
      if (mark !== null || stale) {
        if (!(await this.arbiter.clear(node, epoch, generation))) {
          throw new Error(`the arbiter (${this.arbiter.name}) no longer grants this node's lease: its record stays as it was`);
        }
        this.#recordGeneration = generation;
        if (this.#maybeMarked === mark) this.#maybeMarked = null;
      }
      await this.arbiter.release(node, epoch);
    } catch (err) {
      // The lease then simply runs out; a mark not cleared stays (known as maybe marked)
      // until the next settle, and is trusted by no write: a lease taken afresh marks again.
      this.#lastError = (err as Error).message;
    }
  }

  /** Gives the lease up (a demotion). */
  async release(): Promise<void> {
    this.#era++;
    this.#stopRenew();
    // A lease being taken now is given back too, once granted (the call runs after it).
    const held = this.#validUntil > 0 || this.#ensuring !== null;
    this.#validUntil = 0;
    if (!held) return;
    await this.#exclusive(() => this.arbiter.release(this.#hooks.nodeId(), this.#epoch)).catch((err) => { this.#lastError = (err as Error).message; });
  }

  /**
   * A secondary taking over: acquires the lease. Granted: it may promote
   * itself (epoch adopted). Refused or out of reach: why.
   */
  takeOver(): Promise<{ granted: boolean; reason: string }> {
    return this.#exclusive(() => this.#takeOverNow());
  }

  async #takeOverNow(): Promise<{ granted: boolean; reason: string }> {
    const asked = performance.now();
    let got;
    try {
      got = await this.arbiter.acquire(this.#hooks.nodeId(), this.#hooks.generation());
    } catch (err) {
      this.#lastError = (err as Error).message;
      return { granted: false, reason: `the arbiter (${this.arbiter.name}) is out of reach: ${(err as Error).message}` };
    }
    this.#seen(got.record);
    if (!got.granted) {
      this.#lastError = got.reason;
      return { granted: false, reason: got.reason };
    }
    this.#validUntil = asked + this.#held(got.ttlMs);
    this.#recordGeneration = got.record.generation;
    this.#outdated = null;
    this.#lastError = null;
    this.#fencedBy = null;
    this.#scheduleRenew();
    return { granted: true, reason: '' };
  }

  /** An epoch seen elsewhere (the partner's frames): adopted when newer. */
  adopt(epoch: number): void {
    if (epoch > this.#epoch) this.#epoch = epoch;
  }

  /** How long a lease of `ttlMs` (as granted) counts as held here: less a margin for clock rates (a tenth, at least 100 ms, never all of it). */
  #held(ttlMs: number): number {
    return ttlMs - Math.min(ttlMs / 2, Math.max(100, ttlMs * this.#marginShare));
  }

  #seen(record: PairRecord): void {
    if (record.epoch > this.#epoch) this.#epoch = record.epoch;
    this.#hooks.epochSeen(record.epoch, record);
  }

  #stopRenew(): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    this.#renewTimer = null;
  }

  /** This node is fenced (no longer primary): writes waiting for quorum fail with `err`, and so do later ones until it takes over again. */
  fence(err: Error): void {
    this.#era++;
    this.#fencedBy = err;
    this.#stopRenew();
    this.#validUntil = 0;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** This node is primary again (promoted): no longer fenced. */
  unfence(): void {
    this.#fencedBy = null;
  }

  /** Stops: writes waiting for quorum fail with CLOSED. */
  stop(): void {
    this.#era++;
    this.#stopped = true;
    this.#stopRenew();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(TwinpageError.closed('this mirror is closed'));
  }
}
