// The limit contender for a mirrored pair (DESIGN.md, "The limit
// contenders"): the simplest sound plain-Node pair. The primary (this class,
// in the bench process) journals each 4 KiB page write locally with group
// commit (limit-journal.ts) and sends the same record, length first, over
// TCP on loopback to its secondary, a child process (limit-secondary.ts),
// which journals it with group commit too and acknowledges cumulatively.
// A write resolves:
//   disk:   once the local journal flushed it and the partner's ack says its
//           journal flushed it;
//   memory: once the local journal flushed it and the partner's ack says it
//           received it.
// Records written in one turn of the event loop leave in one socket write.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LimitJournal, RECORD_HEADER, encodeRecord } from './limit-journal.js';

const SECONDARY = fileURLToPath(new URL('./limit-secondary.js', import.meta.url));

/** The limit pair's secondary process. */
export class LimitSecondary {
  readonly proc: ChildProcess;
  readonly dir: string;
  readonly port: Promise<number>;
  #stderr = '';

  constructor(dir: string) {
    this.dir = dir;
    this.proc = spawn(process.execPath, [SECONDARY, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => { this.#stderr += d; });
    this.port = new Promise((resolve, reject) => {
      const lines = createInterface({ input: this.proc.stdout! });
      lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
      this.proc.once('exit', (code) => reject(new Error(`limit-secondary exited (${code}): ${this.#stderr.trim()}`)));
    });
  }

  get stderr(): string { return this.#stderr; }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** The limit pair's primary. */
export class LimitPair {
  readonly journal: LimitJournal;
  readonly durability: 'memory' | 'disk';
  /** The secondary's journal file name (in its folder). */
  readonly remoteName: string;
  readonly pages = new Map<number, Uint8Array>();
  readonly #socket: Socket;
  #seq = 0;
  #acked = 0;
  #waiters: Array<{ seq: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  #corked = false;
  #failed: Error | null = null;

  private constructor(journal: LimitJournal, socket: Socket, durability: 'memory' | 'disk', remoteName: string) {
    this.journal = journal;
    this.#socket = socket;
    this.durability = durability;
    this.remoteName = remoteName;
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let at = 0;
      for (; at + 4 <= pending.length; at += 4) this.#acked = Math.max(this.#acked, pending.readUInt32LE(at));
      pending = pending.subarray(at);
      while (this.#waiters.length && this.#waiters[0].seq <= this.#acked) this.#waiters.shift()!.resolve();
    });
    const fail = (err?: Error) => {
      this.#failed = err ?? new Error('the limit secondary closed the connection');
      for (const w of this.#waiters) w.reject(this.#failed);
      this.#waiters = [];
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  /** Connects to the secondary at `port`; the local journal goes to `localPath`, the partner's to `remoteName` in its folder. */
  static async connect(port: number, durability: 'memory' | 'disk', localPath: string, remoteName: string): Promise<LimitPair> {
    const journal = await LimitJournal.create(localPath);
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => { socket.off('error', reject); resolve(); });
    });
    const name = Buffer.from(remoteName, 'utf8');
    socket.write(Buffer.concat([Buffer.of(durability === 'memory' ? 0x6D : 0x64, name.length), name]));
    // The secondary acks 0 once its journal is open.
    await new Promise<void>((resolve, reject) => {
      socket.once('data', (d: Buffer) => (d.length >= 4 && d.readUInt32LE(0) === 0 ? resolve() : reject(new Error('limit secondary: bad ready ack'))));
      socket.once('close', () => reject(new Error('limit secondary closed before it was ready')));
    });
    return new LimitPair(journal, socket, durability, remoteName);
  }

  /** Writes `data` as page `page`; resolves at the pair's durability. */
  write(page: number, data: Uint8Array): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    const seq = ++this.#seq;
    const rec = encodeRecord(seq, page, data);
    this.pages.set(page, rec.subarray(RECORD_HEADER));
    const local = this.journal.append(rec);
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      queueMicrotask(() => { this.#corked = false; this.#socket.uncork(); });
    }
    this.#socket.write(rec);
    const remote = new Promise<void>((resolve, reject) => this.#waiters.push({ seq, resolve, reject }));
    return Promise.all([local, remote]).then(() => {});
  }

  read(page: number): Uint8Array | undefined {
    return this.pages.get(page);
  }

  async close(): Promise<void> {
    await this.journal.close();
    await new Promise<void>((r) => this.#socket.end(r));
  }
}
