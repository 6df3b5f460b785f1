// The demo's partition: a small TCP proxy on loopback between the node that
// dials (A) and the node that listens (B). The frames are sealed, so bytes
// are passed through as they come; the proxy only decides whether the link
// exists.
//
//   node A ──dials──▶ proxy (127.0.0.1:port) ──dials──▶ node B (listening)
//
//   cut()   every connection is destroyed on both sides (each node sees its
//           link fail at once, as when a route goes away with a reset), and
//           every new one is refused as soon as it is accepted, so the
//           dialer's reconnections fail until heal();
//   heal()  new connections go through again (the dialer's next attempt
//           reaches B).
//
// The tests' nemesis (test/nemesis.ts) has more faults (blackholes, one
// direction, delays); the demo needs only the plain partition, and the
// installed package must not depend on test code.

import { createServer, connect, type Server, type Socket } from 'node:net';

export class DemoProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  /** Both sockets of every connection passed through, to destroy at a cut. */
  readonly #sockets = new Set<Socket>();
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

  /** Destroys every connection and refuses new ones until heal(). */
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  /** Lets new connections through again. */
  heal(): void {
    this.#cut = false;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(inbound: Socket): void {
    if (this.#cut) {
      // Refused: accepted and reset at once, so the dialer fails fast and tries again later.
      this.refused++;
      inbound.on('error', () => {});
      inbound.resetAndDestroy();
      return;
    }
    const outbound = connect(this.#target.port, this.#target.host);
    // No Nagle delay: the nodes send small frames and wait for small acks, and
    // Nagle holding one back until the other side's delayed ACK costs ~40 ms a write.
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    this.#track(inbound);
    this.#track(outbound);
    // Either side ending or failing ends the other: the link is one connection.
    const end = () => { inbound.destroy(); outbound.destroy(); };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.once('close', () => this.#sockets.delete(s));
  }
}
