// `twinpage serve --metrics HOST:PORT`: the node's state in Prometheus's text
// format on http://HOST:PORT/metrics, for Prometheus (or anything that reads
// it: VictoriaMetrics, Grafana Agent, the OpenTelemetry collector).
//
// Built on prom-client, the Prometheus client most Node services use: it
// keeps the exposition format (escaping, histogram buckets, HELP and TYPE
// lines, content type) right, and adds Node's process metrics (CPU, memory,
// event-loop lag, handles) that a daemon's dashboard wants beside its own.
// Only the CLI loads it (serve imports this module when --metrics is given);
// the library never does.
//
// What is read at each scrape (sense(), stats()) is read then; what only
// happens (writes, their acknowledgement times, failovers, disconnects) is
// counted as it happens: the writes by serve's command handler, the rest
// through the mirror's events.

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MirroredMemory } from '../index.js';

/** What serve's command handler tells the metrics. */
export interface WriteMeter {
  /** A write of `bytes` acknowledged `seconds` after it started. */
  written(bytes: number, seconds: number): void;
}

export interface MetricsServer extends WriteMeter {
  /** The port listened on (the one given, or the one chosen for port 0). */
  readonly port: number;
  readonly registry: Registry;
  close(): Promise<void>;
}

const ROLES = ['primary', 'secondary'] as const;
const HEALTHS = ['ok', 'degraded', 'split-brain'] as const;

/** The node's metrics in a registry of their own. */
export function nodeMetrics(memory: MirroredMemory): { registry: Registry; meter: WriteMeter } {
  const registry = new Registry();
  const registers = [registry];
  const mirror = memory.mirror;
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'twinpage_info', help: 'This node: its id (value always 1)', labelNames: ['node_id'], registers,
    collect() { this.set({ node_id: memory.nodeId }, 1); },
  });
  new Gauge({
    name: 'twinpage_role', help: 'The role of this node: 1 for the one it has', labelNames: ['role'], registers,
    collect() { const r = mirror.role; for (const x of ROLES) this.set({ role: x }, x === r ? 1 : 0); },
  });
  new Gauge({
    name: 'twinpage_health', help: 'The health of the pair as this node senses it: 1 for the one it is in', labelNames: ['health'], registers,
    collect() { const h = mirror.sense().health; for (const x of HEALTHS) this.set({ health: x }, x === h ? 1 : 0); },
  });
  new Gauge({
    name: 'twinpage_connected', help: 'Whether the link to the partner is up (1) or not (0)', registers,
    collect() { this.set(mirror.sense().connected ? 1 : 0); },
  });
  new Gauge({
    name: 'twinpage_inconsistent', help: 'Whether this node is being resynced and does not hold all of its data yet (1)', registers,
    collect() { this.set(mirror.sense().inconsistent ? 1 : 0); },
  });
  new Gauge({
    name: 'twinpage_lag_pages', help: 'Pages the partner may lack (sent to it by the next resync)', registers,
    collect() { this.set(mirror.sense().lagPages); },
  });
  new Gauge({
    name: 'twinpage_in_flight_frames', help: 'Frames sent to the partner and not yet acknowledged at disk level', registers,
    collect() { this.set(mirror.sense().inFlight); },
  });
  new Gauge({
    name: 'twinpage_write_intents', help: 'Write-intent extents hot now (the activity log)', registers,
    collect() { this.set(mirror.sense().intents); },
  });
  new Gauge({
    name: 'twinpage_blocks', help: 'Blocks held by this node', registers,
    collect() { this.set(memory.blockCount); },
  });
  // The arbiter's vote: 0 while writes the partner lacks wait for (or fail
  // without) the arbiter's lease (quorum-lost until quorum-regained); 1
  // otherwise, and always 1 for a pair without an arbiter.
  const quorum = new Gauge({ name: 'twinpage_quorum', help: 'Whether this node holds the quorum it needs to acknowledge writes (1) or writes wait for the arbiter (0)', registers });
  quorum.set(1);
  mirror.on('quorum-lost', () => quorum.set(0));
  mirror.on('quorum-regained', () => quorum.set(1));
  new Gauge({
    name: 'twinpage_epoch', help: 'The pair\'s epoch this node knows (it grows at every change of primary through the arbiter)', registers,
    collect() { this.set(mirror.sense().epoch); },
  });

  const writes = new Counter({ name: 'twinpage_writes_total', help: 'Writes acknowledged to this node\'s callers', registers });
  const bytes = new Counter({ name: 'twinpage_written_bytes_total', help: 'Bytes of the writes acknowledged', registers });
  const ack = new Histogram({
    name: 'twinpage_write_ack_seconds',
    help: 'Time from a write\'s start to its acknowledgement (at its block\'s durability, the partner\'s included)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });

  const resyncDone = new Gauge({ name: 'twinpage_resync_done_pages', help: 'Pages sent by the resync under way (or the last one)', registers });
  const resyncTotal = new Gauge({ name: 'twinpage_resync_total_pages', help: 'Pages to send in the resync round under way (or the last one)', registers });
  mirror.on('resync-progress', ({ done, total }) => { resyncDone.set(done); resyncTotal.set(total); });
  mirror.on('resync-done', () => { resyncDone.set(0); resyncTotal.set(0); });
  // Totals kept by the mirror, exposed as counters (read at each scrape).
  const fromStats = (name: string, help: string, read: () => number) => new Counter({
    name, help, registers,
    collect() { this.reset(); this.inc(read()); },
  });
  fromStats('twinpage_resynced_pages_total', 'Pages sent by resyncs since this node started', () => mirror.stats().resyncedPages);
  fromStats('twinpage_read_repairs_total', 'Pages that failed their checksum here and were read back from the partner', () => mirror.stats().readRepairs);
  new Counter({
    name: 'twinpage_pages_sent_total', help: 'Pages sent to the partner, by how their bytes travelled', labelNames: ['method'], registers,
    collect() {
      this.reset();
      for (const [method, n] of Object.entries(mirror.stats().pages)) this.inc({ method }, n);
    },
  });
  const disconnects = new Counter({ name: 'twinpage_disconnects_total', help: 'Connections to the partner that ended after its handshake accepted it', registers });
  const failovers = new Counter({ name: 'twinpage_failovers_total', help: 'Times this node promoted itself (automatic failover)', registers });
  const splitBrains = new Counter({ name: 'twinpage_split_brains_total', help: 'Handshakes refused for a split brain', registers });
  mirror.on('disconnected', () => disconnects.inc());
  mirror.on('failover', () => failovers.inc());
  mirror.on('split-brain', () => splitBrains.inc());

  return {
    registry,
    meter: {
      written(n, seconds) {
        writes.inc();
        bytes.inc(n);
        ack.observe(seconds);
      },
    },
  };
}

/** Serves the node's metrics on http://host:port/metrics. */
export async function startMetrics(host: string, port: number, memory: MirroredMemory): Promise<MetricsServer> {
  const { registry, meter } = nodeMetrics(memory);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('twinpage: the metrics are on /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => { res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text); },
      (err) => { res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`twinpage: ${(err as Error).message}\n`); },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    registry,
    written: meter.written,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
