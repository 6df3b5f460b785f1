// An etcd of a test's (or a benchmark's) own: a temporary data folder and
// free loopback ports, never a system service, and none of the
// environment's ETCD_* settings. No npm package ships an etcd binary:
// findEtcd() looks at TWINPAGE_ETCD, /usr/bin/etcd and PATH. Used by
// etcd.test.ts, quorum-etcd.test.ts and bench/failover.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The etcd binary to run, or null when there is none. */
export function findEtcd(): string | null {
  const candidates = process.env.TWINPAGE_ETCD
    ? [process.env.TWINPAGE_ETCD]
    : ['/usr/bin/etcd', ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'etcd'))];
  for (const c of candidates) {
    try { accessSync(c, constants.X_OK); return c; } catch { /* next */ }
  }
  return null;
}

/** A loopback port free now. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * An endpoint out of reach that stays so: a loopback port held for as long
 * as the test needs it, every connection to it cut at once. (A port found
 * free and let go may be taken meanwhile by another test's server, an etcd
 * even, which would then answer.)
 */
export async function deadEndpoint(): Promise<{ url: string; close: () => Promise<void> }> {
  const s = createServer((socket) => socket.destroy());
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((r) => s.close(() => r())) };
}

export class LocalEtcd {
  endpoint = '';
  log = '';
  #proc: ChildProcess | null = null;
  #dir = '';

  /** Starts `binary` (with `extra` arguments) and waits (up to 20 s) until it answers on its client URL. */
  static async start(binary: string, extra: string[] = []): Promise<LocalEtcd> {
    const e = new LocalEtcd();
    e.#dir = await mkdtemp(join(tmpdir(), 'twinpage-etcd-'));
    const [client, peer] = [await freePort(), await freePort()];
    e.endpoint = `http://127.0.0.1:${client}`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const proc = spawn(binary, [
      '--name', 'twinpage-local', '--data-dir', join(e.#dir, 'data'),
      '--listen-client-urls', e.endpoint, '--advertise-client-urls', e.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `twinpage-local=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new',
      '--logger', 'zap', '--log-level', 'warn', ...extra,
    ], { stdio: ['ignore', 'ignore', 'pipe'], env });
    e.#proc = proc;
    proc.stderr!.on('data', (d) => { e.log = (e.log + d).slice(-4000); });
    process.on('exit', () => proc.kill('SIGKILL'));
    const until = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`etcd exited (${proc.exitCode}): ${e.log}`);
      try {
        const res = await fetch(e.endpoint + '/v3/kv/range', { method: 'POST', body: JSON.stringify({ key: Buffer.from('ping').toString('base64') }) });
        if (((await res.json()) as { header?: unknown }).header) return e;
      } catch { /* not yet */ }
      if (Date.now() > until) { await e.stop(); throw new Error(`etcd did not answer at ${e.endpoint} within 20 s: ${e.log}`); }
      await sleep(100);
    }
  }

  /** Sends `signal` to the etcd process (SIGSTOP and SIGCONT: an etcd that does not answer). */
  kill(signal: NodeJS.Signals): void {
    this.#proc?.kill(signal);
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGCONT'); // a test may have stopped it
      const gone = new Promise((r) => p.once('close', r));
      p.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      p.kill('SIGKILL');
    }
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}
