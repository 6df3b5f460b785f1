// `twinpage status`: what a running node (twinpage serve) senses of its pair,
// asked through its control socket.

import { TwinpageError } from '../errors.js';
import { askNode, bytes, flag, out, parseOptions, required, table, timeoutMs, type Command } from './args.js';

const synopsis = 'usage: twinpage status --dir DIR [--json] [--timeout SECONDS] [--verbose]';

const help = `Shows what the node serving DIR (a running 'twinpage serve') senses of its
pair: role, health, connection, generation, frames in flight, lagging pages.
Exits 1 when no node serves DIR.

  --dir      the data folder of the running node
  --json     print the node's answer as JSON (sense, stats, space)
  --timeout  seconds to wait for the node's answer (default 10)
  --verbose  print stack traces of errors`;

export interface NodeStatus {
  nodeId: string;
  pid: number;
  dir: string | null;
  pageSize: number;
  sense: {
    role: string; health: string; generation: string; history: string[]; connected: boolean; peerRole?: string | null;
    inFlight: number; lagPages: number; lastApplied: number; intents?: number;
    bitmapGeneration?: string; epoch?: number; refused?: string | null;
    quorum?: null | { arbiter: string; held: boolean; leaseMs: number; epoch: number; outdated: string | null; waiting: number; lastError: string | null };
    lastError?: { code: string; message: string; at: number } | null;
  };
  stats: null | {
    copy: string; pages: Record<string, number>; resyncedPages: number;
    lastResync: { pages: number; ms: number } | null; intents: number; extentPages: number;
  };
  blocks: number;
  blockBytes: number;
  space: { addressSpace: { total: number; free: number }; cache: { total: number; free: number; dirty: number } };
  /** The settings in force (serve's flags and config file). */
  settings?: {
    configFile: string | null; heartbeatMs: number; timeoutMs: number; failover: string; splitBrain: string;
    copy: string; tls: boolean; insecurePlaintext: boolean; metrics: string | null;
    arbiter?: string | null; leaseMs?: number | null; onNoQuorum?: string | null;
  };
}

export function statusText(s: NodeStatus): string {
  const m = s.sense;
  const rows: Array<[string, string]> = [
    ['node', `${s.nodeId} (pid ${s.pid})`],
    ['folder', s.dir ?? '?'],
    ['role', m.role],
    ['health', m.health],
    ['connected', m.connected ? `yes${m.peerRole ? `, to a ${m.peerRole}` : ''}` : 'no'],
    ['generation', m.generation || 'none yet'],
    ['history', m.history.length ? m.history.join(', ') : 'none'],
    ['in flight', `${m.inFlight} frames`],
    ['lagging', `${m.lagPages} pages`],
    ['applied', `up to frame ${m.lastApplied} from the partner`],
  ];
  if (m.bitmapGeneration && m.bitmapGeneration !== '0000000000000000') rows.push(['bitmap generation', `${m.bitmapGeneration} (recording what the partner lacks since then)`]);
  if (m.refused) rows.push(['refused', m.refused]);
  if (m.epoch !== undefined) rows.push(['epoch', String(m.epoch)]);
  if (m.quorum) {
    const q = m.quorum;
    rows.push(['quorum', `${q.arbiter}: ${q.held ? `lease held, ${q.leaseMs} ms left` : 'no lease held'}` +
      `${q.outdated ? `; partner ${q.outdated} marked outdated` : ''}${q.waiting ? `; ${q.waiting} writes waiting for quorum` : ''}` +
      `${q.lastError ? `; last refusal: ${q.lastError}` : ''}`]);
  }
  if (m.lastError) rows.push(['last error', `${m.lastError.code}: ${m.lastError.message}`]);
  if (m.intents !== undefined) rows.push(['intents', `${m.intents} hot extent${m.intents === 1 ? '' : 's'}${s.stats ? ` of ${s.stats.extentPages} pages` : ''}`]);
  if (s.stats) {
    const p = s.stats.pages;
    rows.push(['copy', `${s.stats.copy} (pages sent: ${Object.entries(p).map(([k, v]) => `${k} ${v}`).join(', ')})`]);
    const last = s.stats.lastResync ? `; last: ${s.stats.lastResync.pages} pages in ${s.stats.lastResync.ms} ms` : '';
    rows.push(['resynced', `${s.stats.resyncedPages} pages${last}`]);
  }
  rows.push(['blocks', `${s.blocks} (${bytes(s.blockBytes)}), page size ${bytes(s.pageSize)}`]);
  const c = s.space.cache;
  rows.push(['cache', `${bytes(c.total - c.free)} of ${bytes(c.total)} in use, ${bytes(c.dirty)} dirty`]);
  const st = s.settings;
  if (st) {
    rows.push(['failover', `${st.failover} (heartbeat ${st.heartbeatMs} ms, timeout ${st.timeoutMs} ms), split brain: ${st.splitBrain}`]);
    if (st.arbiter) rows.push(['arbiter', `${st.arbiter}, lease ${st.leaseMs} ms, without quorum: ${st.onNoQuorum}`]);
    rows.push(['link', st.insecurePlaintext ? 'PLAINTEXT (--insecure-plaintext)' : st.tls ? 'sealed, over TLS' : 'sealed']);
    if (st.metrics) rows.push(['metrics', `http://${st.metrics}/metrics`]);
    if (st.configFile) rows.push(['config', st.configFile]);
  }
  return table(rows, '');
}

export const statusCommand: Command = {
  name: 'status',
  summary: "show a running node's sense of its pair (role, health, lag)",
  synopsis,
  help,
  async run(argv) {
    const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--timeout': 'value' });
    const dir = required(o, '--dir');
    const wait = timeoutMs(o, 10);
    const reply = await askNode(dir, { cmd: 'status' }, wait);
    const s = reply.status as NodeStatus | undefined;
    if (!s || typeof s !== 'object' || !s.sense) throw TwinpageError.badFrame(`the node serving ${dir} gave no status`);
    out(flag(o, '--json') ? JSON.stringify(s, null, 2) : statusText(s));
    return 0;
  },
};
