// The demo's partition: a small TCP proxy on loopback between the node that
// dials (A) and the node that listens (B). The frames are sealed, so bytes
// are passed through as they come; the proxy only decides whether the link
// exists.
//
//   node A ──dials──▶ proxy (127.0.0.1:port) ──dials──▶ node B (listening)
//
//   cut()   the route fails next to A: A's side of every connection is reset
//           (A hears of it at once), B's side is held open and silent, nothing
//           moving either way (B can tell only from the silence, after its
//           --timeout-ms), and every new connection is refused as soon as it
//           is accepted, so A's redials fail until heal();
//   heal()  the held connections are closed (B dropped them by then) and new
//           connections go through again: A's next redial reaches B.
//
// Why A hears first: a primary asks the arbiter for the lease only when it
// has a write its partner lacks, a secondary as soon as it takes its primary
// for gone; a cut both sides hear of at the same instant is a race between
// the two (see docs/quorum.md). The demo shows the partition the quorum rules
// are built for, the primary cut off while writing, deterministically.
//
// The tests' nemesis (test/nemesis.ts) has more faults (blackholes, one
// direction, delays); the installed package must not depend on test code.

import { createServer, connect, type Server, type Socket } from 'node:net';

interface Link { a: Socket; b: Socket; held: boolean }

export class DemoProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #links = new Set<Link>();
  #cut = false;
  /** Connections refused while cut (for the narration). */
  refused = 0;
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((inbound) => this.#accept(inbound));
  }

  /** Listens on 127.0.0.1 (a free port) and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<DemoProxy> {
    const p = new DemoProxy(target);
    await new Promise<void>((resolve, reject) => {
      p.#server.once('error', reject);
      p.#server.listen(0, '127.0.0.1', () => { p.#server.off('error', reject); resolve(); });
    });
    p.port = (p.#server.address() as { port: number }).port;
    return p;
  }

  get isCut(): boolean { return this.#cut; }

  /** Resets A's side of every connection, holds B's side silent, refuses new connections; until heal(). */
  cut(): void {
    this.#cut = true;
    for (const l of this.#links) {
      if (l.held) continue;
      l.held = true;
      l.a.unpipe(l.b);
      l.b.unpipe(l.a);
      // What B sends now stays in this socket's buffers: B hears nothing back.
      l.b.pause();
      l.a.resetAndDestroy();
    }
  }

  /** Closes the held connections and lets new ones through again. */
  heal(): void {
    for (const l of this.#links) if (l.held) l.b.destroy();
    this.#cut = false;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const l of this.#links) { l.a.destroy(); l.b.destroy(); }
    this.#links.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(inbound: Socket): void {
    inbound.on('error', () => {});
    if (this.#cut) {
      // Refused: accepted and reset at once, so the dialer fails fast and tries again later.
      this.refused++;
      inbound.resetAndDestroy();
      return;
    }
    const outbound = connect(this.#target.port, this.#target.host);
    outbound.on('error', () => {});
    // No Nagle delay: the nodes send small frames and wait for small acks, and
    // Nagle holding one back until the other side's delayed ACK costs ~40 ms a write.
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    const link: Link = { a: inbound, b: outbound, held: false };
    this.#links.add(link);
    // Either side ending ends the other (the link is one connection), except
    // B's side of a cut link, which stays open and silent until heal().
    const end = () => {
      inbound.destroy();
      if (!link.held || outbound.destroyed) outbound.destroy();
      if (inbound.destroyed && outbound.destroyed) this.#links.delete(link);
    };
    inbound.on('close', end);
    outbound.on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }
}
