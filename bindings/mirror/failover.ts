// Failure detection and automatic failover. A primary senses its partner
// every `heartbeatMs` (SENSE_REQUEST); a partner silent for `timeoutMs`, or
// one that leaves writers waiting that long for acknowledgements (frames lost
// on the way), is down: the primary drops the connection and goes on
// degraded. A secondary senses its partner too, at the same pace (two
// secondaries would otherwise exchange nothing), and a partner silent for
// `timeoutMs` on a link still open (one that died without a word: a
// firewall or NAT that forgot it) has its link dropped, so that it is
// dialled again. With
// `failover: 'auto'` a secondary whose primary went silent, or is gone (the
// primary closed the link or it failed under it, not a link this node
// dropped itself), promotes itself instead.

import { TwinpageError } from '../errors.js';

export interface FailoverHooks {
  /** A heartbeat: sense the partner (and take up work that failed before, such as a resync). */
  beat(): void;
  /** When the oldest writer still waiting for an acknowledgement began to wait, or null. */
  oldestWait(): number | null;
  /** Drops the connection (the partner is down). */
  drop(reason: TwinpageError): void;
  /** Whether automatic failover may act now: a consistent secondary, open, whose primary went silent or closed the link. */
  primaryGone(silentFor: (ms: number) => boolean): boolean;
  /** A secondary's heartbeat: senses the partner (its reply, like any frame, says the link lives). */
  ping(): void;
  /** Whether this node is a secondary on an open link. */
  linked(): boolean;
  /** Takes over as primary, when allowed (the arbiter grants the lease): whether it did. */
  promote(): Promise<boolean>;
  onFailover?: () => void;
}

export class Failover {
  readonly #heartbeatMs: number;
  readonly #timeoutMs: number;
  readonly #auto: boolean;
  readonly #hooks: FailoverHooks;
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #watchdog: ReturnType<typeof setInterval> | null = null;
  /** When the partner was last heard. */
  #heardAt = 0;

  constructor(options: { heartbeatMs: number; timeoutMs: number; auto: boolean }, hooks: FailoverHooks) {
    this.#heartbeatMs = options.heartbeatMs;
    this.#timeoutMs = options.timeoutMs;
    this.#auto = options.auto;
    this.#hooks = hooks;
  }

  /** A frame came from the partner. */
  heard(): void {
    this.#heardAt = Date.now();
  }

  /** Whether the partner has been silent longer than the timeout. */
  silent(): boolean {
    return Date.now() - this.#heardAt > this.#timeoutMs;
  }

  /**
   * Whether this process itself stalled since `last` (a timer firing far
   * later than asked: a busy or descheduled event loop). Then the partner's
   * frames may be waiting unread: its silence is no evidence, and it is
   * given a fresh timeout.
   */
  #stalled(last: number, now: number): boolean {
    if (now - last <= Math.max(3 * this.#heartbeatMs, this.#timeoutMs / 2)) return false;
    this.heard();
    return true;
  }

  /** A primary's heartbeat, on a new connection. */
  startHeartbeat(): void {
    this.stopHeartbeat();
    let last = Date.now();
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      const stalled = this.#stalled(last, now);
      last = now;
      if (stalled) return;
      const silent = now - this.#heardAt > this.#timeoutMs;
      const oldest = this.#hooks.oldestWait();
      const unacked = oldest !== null && now - oldest > this.#timeoutMs;
      if (silent || unacked) {
        this.#hooks.drop(TwinpageError.closed(silent ? `the partner was silent for ${this.#timeoutMs} ms` : `no acknowledgement for ${this.#timeoutMs} ms`));
        return;
      }
      this.#hooks.beat();
    }, this.#heartbeatMs);
  }

  stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  /** A secondary's watch on its primary: a silent link is dropped; with automatic failover, the node takes over. */
  startWatchdog(): void {
    if (this.#watchdog) return;
    let last = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      const stalled = this.#stalled(last, now);
      last = now;
      if (stalled) return;
      if (this.#auto && this.#hooks.primaryGone(() => this.silent())) {
        clearInterval(timer);
        this.#watchdog = null;
        this.#hooks.drop(TwinpageError.closed(`the primary was silent for ${this.#timeoutMs} ms: this node tries to take over`));
        // Refused (the old primary holds the lease, this node is outdated, the
        // arbiter is out of reach): it keeps watching and asks again.
        this.#hooks.promote().then(
          (took) => { if (took) this.#hooks.onFailover?.(); else this.startWatchdog(); },
          () => this.startWatchdog(),
        );
        return;
      }
      if (!this.#hooks.linked()) return;
      if (this.silent()) {
        this.#hooks.drop(TwinpageError.closed(`the partner was silent for ${this.#timeoutMs} ms: the link is dropped (and dialled again)`));
        return;
      }
      this.#hooks.ping();
    }, Math.min(this.#heartbeatMs, this.#timeoutMs));
    this.#watchdog = timer;
  }

  stop(): void {
    this.stopHeartbeat();
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }
}
