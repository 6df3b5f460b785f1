// The nemesis: a TCP proxy on loopback, between the node that dials (side
// "a") and the node that listens (side "b"), that a test controls. Bytes are
// opaque (the frames are sealed); the proxy only decides whether, and when,
// they move on.
//
//   node A ──dials──▶ nemesis (127.0.0.1:port) ──dials──▶ node B (listening)
//
// Faults, until heal():
//   - cut('reset'):     every connection is reset (RST) on both sides, and
//                       every new one as soon as it is accepted: the partner
//                       looks gone at once.
//   - cut('blackhole'): nothing moves either way and nothing tells anyone:
//                       connections stay open, their bytes wait (as TCP keeps
//                       retransmitting through a dead route); a new
//                       connection is accepted and never reaches B. Only
//                       timeouts can notice. The nasty one.
//   - dropOneWay(dir):  bytes from one side stop; the other direction flows.
//   - delay(ms):        every chunk waits `ms` before it moves on, in order.
// heal() ends them all: waiting bytes are delivered in order, connections held
// during a blackhole are put through to B, and a side that closed meanwhile
// has its close delivered to the other side (its FIN arrives late), as a
// route coming back would do for a partition of a few seconds.
// heal({ forget: true }) instead forgets the connections a blackhole held, as
// a firewall or NAT that dropped their state does: their bytes and closes are
// never delivered, and the sides still open hear nothing, ever (new
// connections go through).
//
// The dialer may reconnect through the proxy as often as it likes: every
// accepted connection is its own pair of sockets.

import { createServer, connect, type Server, type Socket } from 'node:net';

export type Direction = 'a->b' | 'b->a';
export type CutMode = 'reset' | 'blackhole';

interface Chunk { data: Buffer; at: number }

/** One direction of one connection: what waits to be written to the far side. */
interface Pipe {
  queue: Chunk[];
  /** The near side closed: after the queue, close the far side. */
  closing: boolean;
  /** The near side failed (reset): the far side is reset rather than ended. */
  reset: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

interface Link {
  id: number;
  a: Socket;
  b: Socket | null;
  /** B is being dialled for this link. */
  dialing: boolean;
  /** Forgotten by heal({ forget }): nothing moves, nothing is told, until its sockets close. */
  forgotten: boolean;
  ab: Pipe;
  ba: Pipe;
  done: boolean;
}

export interface NemesisStats {
  /** Connections accepted from the dialer. */
  accepted: number;
  /** Connections reset by a cut (live ones, and new ones during a reset cut). */
  reset: number;
  /** Connections held without reaching B during a blackhole. */
  held: number;
  /** Bytes moved each way. */
  bytesAB: number;
  bytesBA: number;
}

export class Nemesis {
  readonly #server: Server;
  readonly #links = new Set<Link>();
  /** Links heal({ forget }) dropped, kept only to close their sockets at the end. */
  readonly #forgotten = new Set<Link>();
  #target: { host: string; port: number };
  #cut: CutMode | null = null;
  #oneWay: Direction | null = null;
  #delayMs = 0;
  #next = 1;
  #closed = false;
  readonly stats: NemesisStats = { accepted: 0, reset: 0, held: 0, bytesAB: 0, bytesBA: 0 };

  private constructor(server: Server, target: { host: string; port: number }) {
    this.#server = server;
    this.#target = target;
  }

  /** Starts a proxy on 127.0.0.1 (a free port) in front of `target` (the listening node). */
  static async start(target: { host?: string; port: number }): Promise<Nemesis> {
    const server = createServer({ noDelay: true });
    const nemesis = new Nemesis(server, { host: target.host ?? '127.0.0.1', port: target.port });
    server.on('connection', (socket) => nemesis.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    return nemesis;
  }

  /** The port the dialing node connects to. */
  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  /** Where new connections go (the listening node restarted on another port). */
  set target(t: { host?: string; port: number }) {
    this.#target = { host: t.host ?? '127.0.0.1', port: t.port };
  }

  /** What is in force now, for the test's log. */
  get state(): string {
    const parts = [];
    if (this.#cut) parts.push(`cut(${this.#cut})`);
    if (this.#oneWay) parts.push(`drop ${this.#oneWay}`);
    if (this.#delayMs) parts.push(`delay ${this.#delayMs} ms`);
    return parts.length ? parts.join(', ') : 'healed';
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#links.size;
  }

  /** Cuts the link both ways: `reset` every connection, or `blackhole` them (silence). */
  cut(mode: CutMode = 'blackhole'): void {
    this.#cut = mode;
    if (mode === 'reset') for (const link of [...this.#links]) this.#reset(link);
  }

  /** Stops the bytes of one direction ('a->b': from the dialer to the listener); the other flows. */
  dropOneWay(direction: Direction): void {
    this.#oneWay = direction;
  }

  /** Delays every chunk by `ms` (0: none), keeping their order. */
  delay(ms: number): void {
    this.#delayMs = Math.max(0, ms);
  }

  /**
   * Ends every fault: waiting bytes and closes are delivered, held connections
   * put through; with `forget`, the connections a blackhole held are dropped
   * without a word to either side instead.
   */
  heal(options: { forget?: boolean } = {}): void {
    const forget = options.forget === true && this.#cut === 'blackhole';
    this.#cut = null;
    this.#oneWay = null;
    this.#delayMs = 0;
    for (const link of [...this.#links]) {
      if (forget) { this.#forget(link); continue; }
      // A held connection whose dialer gave up meanwhile never reaches B.
      if (!link.b && !link.dialing && link.ab.closing) { this.#finish(link, link.ab.reset); continue; }
      if (!link.b && !link.dialing) this.#dial(link);
      this.#pump(link, 'a->b');
      this.#pump(link, 'b->a');
    }
  }

  /** Stops the proxy and drops every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const link of [...this.#links]) this.#finish(link, true);
    for (const link of [...this.#forgotten]) {
      link.forgotten = false;
      this.#finish(link, true);
    }
    this.#forgotten.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Drops a link silently: its queues are discarded, and its open sides are left open, never told. */
  #forget(link: Link): void {
    this.#links.delete(link);
    link.forgotten = true;
    for (const pipe of [link.ab, link.ba]) {
      if (pipe.timer) clearTimeout(pipe.timer);
      pipe.queue = [];
    }
    this.#forgotten.add(link);
  }

  #moves(direction: Direction): boolean {
    return this.#cut === null && this.#oneWay !== direction;
  }

  #accept(a: Socket): void {
    this.stats.accepted++;
    const pipe = (): Pipe => ({ queue: [], closing: false, reset: false, timer: null });
    const link: Link = { id: this.#next++, a, b: null, dialing: false, forgotten: false, ab: pipe(), ba: pipe(), done: false };
    a.setNoDelay(true);
    if (this.#closed || this.#cut === 'reset') {
      this.stats.reset++;
      a.on('error', () => {});
      a.resetAndDestroy();
      return;
    }
    this.#links.add(link);
    this.#wire(link, a, 'a->b');
    // A blackhole: the connection never reaches B (until heal).
    if (this.#cut === 'blackhole') this.stats.held++;
    else this.#dial(link);
  }

  #dial(link: Link): void {
    if (link.done) return;
    link.dialing = true;
    const b = connect({ host: this.#target.host, port: this.#target.port, noDelay: true });
    b.once('connect', () => {
      link.dialing = false;
      if (link.done) { b.destroy(); return; }
      link.b = b;
      this.#pump(link, 'a->b');
      this.#pump(link, 'b->a');
    });
    b.once('error', () => {
      // B is not there (down, or restarting): the dialer sees its connection reset.
      if (!link.b) { link.dialing = false; this.#finish(link, true); }
    });
    this.#wire(link, b, 'b->a');
  }

  /** Reads `socket` (the near side of `direction`) into that direction's pipe. */
  #wire(link: Link, socket: Socket, direction: Direction): void {
    const pipe = direction === 'a->b' ? link.ab : link.ba;
    socket.on('data', (data: Buffer) => {
      if (link.done || link.forgotten) return;
      pipe.queue.push({ data, at: Date.now() + this.#delayMs });
      this.#pump(link, direction);
    });
    socket.on('error', () => { pipe.reset = true; });
    socket.on('close', () => {
      if (link.forgotten) {
        // Nobody is told: once both of its sockets are gone, so is the link.
        if ([link.a, link.b].every((x) => !x || x.destroyed)) this.#forgotten.delete(link);
        return;
      }
      if (link.done) return;
      pipe.closing = true;
      this.#pump(link, direction);
    });
  }

  /** Moves what waits in one direction, if the faults allow it now. */
  #pump(link: Link, direction: Direction): void {
    if (link.done || link.forgotten) return;
    const pipe = direction === 'a->b' ? link.ab : link.ba;
    const far = direction === 'a->b' ? link.b : link.a;
    if (!far || !this.#moves(direction)) return;
    while (pipe.queue.length) {
      const head = pipe.queue[0];
      const wait = head.at - Date.now();
      if (wait > 0) {
        if (!pipe.timer) pipe.timer = setTimeout(() => { pipe.timer = null; this.#pump(link, direction); }, wait);
        return;
      }
      pipe.queue.shift();
      if (direction === 'a->b') this.stats.bytesAB += head.data.length; else this.stats.bytesBA += head.data.length;
      if (!far.destroyed) far.write(head.data);
    }
    if (pipe.closing) this.#finish(link, pipe.reset);
  }

  /** Resets a connection on both sides (a cut with 'reset'). */
  #reset(link: Link): void {
    this.stats.reset++;
    this.#finish(link, true);
  }

  /** Ends both sides: reset, or a close after what was written. */
  #finish(link: Link, reset: boolean): void {
    if (link.done) return;
    link.done = true;
    this.#links.delete(link);
    for (const pipe of [link.ab, link.ba]) if (pipe.timer) clearTimeout(pipe.timer);
    for (const s of [link.a, link.b]) {
      if (!s || s.destroyed) continue;
      s.on('error', () => {});
      if (reset) s.resetAndDestroy(); else s.end(() => s.destroy());
    }
  }
}
