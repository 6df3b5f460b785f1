/**
 * `EtcdArbiter` (Node): the arbiter of a pair kept in etcd (v3), for
 * deployments that already run one. It speaks etcd's JSON gateway (the v3
 * API over HTTP, `/v3/kv/txn`, `/v3/lease/grant`, ...; etcd 3.4 and later)
 * with Node's own http/https, so twinpage takes no dependency for it and a
 * browser build never sees it.
 *
 * Two keys per pair, under a prefix the caller names (the pair's name):
 *
 * ```
 *   <prefix>/record   {"epoch":3,"primary":"a","outdated":"b","generation":"…"}   no lease: kept
 *   <prefix>/lease    the holder's node id, attached to an etcd lease of ttlMs
 * ```
 *
 * The lease is live exactly while `<prefix>/lease` exists: etcd deletes the
 * key when its lease ends, revoking the lease deletes it at once. Both keys
 * are read in one transaction (one revision), the rules of `decideAcquire`
 * applied to what was read, and any change written by a transaction that
 * compares both keys' revisions with what was read (compare-and-swap): of
 * two nodes acquiring at once, one transaction succeeds, the other reads
 * again and finds the lease held. A renewal keeps the holder's lease alive
 * (`/v3/lease/keepalive`) without touching the record.
 *
 * etcd counts leases in whole seconds and grants none shorter than its
 * minimum (about 2 s with default settings), so `ttlMs` is rounded up to
 * whole seconds, at least 2 s. The holder counts its lease from when it
 * asked, and etcd from when it granted: the holder's ends first.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { TwinpageError } from '../errors.js';
import { intOption } from '../options.js';
import { decideAcquire, type Acquired, type Arbiter, type PairRecord } from './arbiter.js';

/** Options of {@link EtcdArbiter}. */
export interface EtcdArbiterOptions {
  /**
   * etcd's client URLs (`http://host:2379` or `https://…`): the first is
   * used while it answers, the next when it cannot be reached. Required.
   */
  endpoints: string | string[];
  /** The pair's name: its keys are `<prefix>/record` and `<prefix>/lease`. Required, 1 to 512 bytes. */
  prefix: string;
  /** The lease's length in ms, rounded up to whole seconds. @default 10000 (at least 2000) */
  ttlMs?: number;
  /** Milliseconds each call may take (all its requests to etcd) before it rejects with TIMEOUT. @default 2000 */
  timeoutMs?: number;
  /** TLS for `https://` endpoints: the CA that signed etcd's certificate, and a client certificate and key when etcd asks for one. @default none */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** An etcd user, when etcd's authentication is on (with `password`). @default none */
  username?: string;
  /** That user's password. @default none */
  password?: string;
}

/** etcd's shortest lease with default settings (3/2 of an election timeout of 1 s, in whole seconds). */
const MIN_TTL_MS = 2000;
/** Attempts of a read-decide-write round lost to another writer before giving up with BUSY. */
const CAS_ATTEMPTS = 8;
/** Largest response body taken from etcd. */
const MAX_RESPONSE_BYTES = 1 << 20;
const EMPTY_RECORD: PairRecord = { epoch: 0, primary: null, outdated: null, generation: '' };

/** A key as etcd's gateway wants it: base64 of its bytes. */
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');

interface KeyState { modRevision: string; value: string; lease: string }
interface EtcdState { record: PairRecord; recordKey: KeyState | null; leaseKey: KeyState | null }

/** An arbiter kept in etcd. */
export class EtcdArbiter implements Arbiter {
  readonly name: string;
  readonly ttlMs: number;
  readonly #endpoints: URL[];
  readonly #recordKey: string;
  readonly #leaseKey: string;
  readonly #timeoutMs: number;
  readonly #tls: EtcdArbiterOptions['tls'];
  readonly #auth: { name: string; password: string } | null;
  readonly #agents = { http: new http.Agent({ keepAlive: true }), https: null as https.Agent | null };
  #current = 0;
  #token: string | null = null;
  #closed = false;

  constructor(options: EtcdArbiterOptions) {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    const list = typeof options.endpoints === 'string' ? [options.endpoints] : options.endpoints;
    if (!Array.isArray(list) || list.length === 0) throw TwinpageError.invalidArgument('endpoints must be a URL or a non-empty list of URLs (e.g. http://127.0.0.1:2379)');
    this.#endpoints = list.map((e) => {
      let url: URL;
      try { url = new URL(String(e)); } catch { throw TwinpageError.invalidArgument(`endpoints: ${JSON.stringify(e)} is not a URL`); }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw TwinpageError.invalidArgument(`endpoints: ${JSON.stringify(e)} must be http:// or https://`);
      return url;
    });
    const { prefix } = options;
    if (typeof prefix !== 'string' || prefix === '' || Buffer.byteLength(prefix) > 512) {
      throw TwinpageError.invalidArgument('prefix must be a string of 1 to 512 bytes (the pair\'s name in etcd)');
    }
    const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    this.#recordKey = `${base}/record`;
    this.#leaseKey = `${base}/lease`;
    const ttl = intOption('ttlMs', options.ttlMs, 10_000, MIN_TTL_MS);
    this.ttlMs = Math.ceil(ttl / 1000) * 1000;
    this.#timeoutMs = intOption('timeoutMs', options.timeoutMs, 2000, 1);
    if (options.tls !== undefined && (options.tls === null || typeof options.tls !== 'object')) throw TwinpageError.invalidArgument('tls must be an object { ca?, cert?, key? }');
    this.#tls = options.tls;
    if ((options.username === undefined) !== (options.password === undefined)) throw TwinpageError.invalidArgument('username and password go together');
    if (options.username !== undefined && (typeof options.username !== 'string' || typeof options.password !== 'string' || options.username === '')) {
      throw TwinpageError.invalidArgument('username and password must be strings (username non-empty)');
    }
    this.#auth = options.username === undefined ? null : { name: options.username, password: options.password! };
    this.name = `etcd ${this.#endpoints[0]!.origin} ${base}`;
  }

  async read(): Promise<PairRecord> {
    const deadline = this.#deadline();
    return { ...(await this.#readState(deadline)).record };
  }

  async acquire(node: string, generation: string): Promise<Acquired> {
    checkNode('node', node);
    if (typeof generation !== 'string') throw TwinpageError.invalidArgument('generation must be a string');
    const deadline = this.#deadline();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const s = await this.#readState(deadline);
      // A live lease key is a lease etcd has not ended: held, for as long as it exists.
      const { state, result } = decideAcquire({ record: s.record, leaseUntil: s.leaseKey ? 1 : 0 }, node, generation, 0, this.ttlMs);
      if (!result.granted) return { ...result, record: { ...result.record } };
      if (s.leaseKey !== null) {
        // The holder renews: its lease kept alive, the record unchanged.
        if (await this.#keepAlive(s.leaseKey.lease, deadline)) return { granted: true, record: { ...s.record }, ttlMs: this.ttlMs };
        continue; // it ended in between: decided again without it
      }
      const lease = await this.#grant(deadline);
      const ok = await this.#txn([this.#unchanged(this.#recordKey, s.recordKey), this.#unchanged(this.#leaseKey, null)], [
        { request_put: { key: b64(this.#recordKey), value: b64(JSON.stringify(state.record)) } },
        { request_put: { key: b64(this.#leaseKey), value: b64(node), lease } },
      ], deadline);
      if (ok) return { granted: true, record: { ...state.record }, ttlMs: this.ttlMs };
      await this.#revoke(lease, deadline).catch(() => {}); // unused; it would end on its own
    }
    throw TwinpageError.busy(`${this.name}: the record kept changing under ${CAS_ATTEMPTS} attempts to acquire`);
  }

  async outdate(node: string, epoch: number, partner: string, generation: string): Promise<boolean> {
    checkNode('node', node);
    checkNode('partner', partner);
    return this.#change(node, epoch, (r) => ({ ...r, outdated: partner, generation }), generation);
  }

  async clear(node: string, epoch: number, generation: string): Promise<boolean> {
    checkNode('node', node);
    return this.#change(node, epoch, (r) => ({ ...r, outdated: null, generation }), generation);
  }

  async release(node: string, epoch: number): Promise<void> {
    checkNode('node', node);
    checkEpoch(epoch);
    const deadline = this.#deadline();
    const s = await this.#readState(deadline);
    if (s.leaseKey === null || !this.#holds(s, node, epoch)) return;
    // Revoking this lease deletes the lease key with it, and nothing else: a later holder has another lease.
    await this.#revoke(s.leaseKey.lease, deadline);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#agents.http.destroy();
    this.#agents.https?.destroy();
  }

  // --- the record ------------------------------------------------------------------

  /** While `node` holds the lease of `epoch`: the record changed by `next`, compared and swapped. */
  async #change(node: string, epoch: number, next: (r: PairRecord) => PairRecord, generation: string): Promise<boolean> {
    checkEpoch(epoch);
    if (typeof generation !== 'string') throw TwinpageError.invalidArgument('generation must be a string');
    const deadline = this.#deadline();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const s = await this.#readState(deadline);
      if (!this.#holds(s, node, epoch)) return false;
      const record = next(s.record);
      // The lease key compared too: the change is made only while the lease is live.
      const ok = await this.#txn([this.#unchanged(this.#recordKey, s.recordKey), this.#unchanged(this.#leaseKey, s.leaseKey)], [
        { request_put: { key: b64(this.#recordKey), value: b64(JSON.stringify(record)) } },
      ], deadline);
      if (ok) return true;
    }
    throw TwinpageError.busy(`${this.name}: the record kept changing under ${CAS_ATTEMPTS} attempts`);
  }

  #holds(s: EtcdState, node: string, epoch: number): boolean {
    return s.leaseKey !== null && s.record.primary === node && s.record.epoch === epoch;
  }

  /** Both keys, read at one revision. */
  async #readState(deadline: number): Promise<EtcdState> {
    const r = await this.#call('/v3/kv/txn', {
      success: [
        { request_range: { key: b64(this.#recordKey) } },
        { request_range: { key: b64(this.#leaseKey) } },
      ],
    }, deadline);
    const responses = Array.isArray(r.responses) ? r.responses : [];
    const kv = (i: number): KeyState | null => {
      const kvs = (responses[i] as { response_range?: { kvs?: unknown } } | undefined)?.response_range?.kvs;
      if (!Array.isArray(kvs) || kvs.length === 0) return null;
      const k = kvs[0] as Record<string, unknown>;
      return { modRevision: String(k.mod_revision ?? '0'), value: unb64(k.value), lease: String(k.lease ?? '0') };
    };
    const recordKey = kv(0);
    const leaseKey = kv(1);
    const record = recordKey === null ? { ...EMPTY_RECORD } : parseRecord(recordKey.value, this.#recordKey);
    if (leaseKey !== null && leaseKey.value !== record.primary) {
      throw TwinpageError.corrupt(`${this.name}: ${this.#leaseKey} names ${JSON.stringify(leaseKey.value)} but the record's primary is ${JSON.stringify(record.primary)}`);
    }
    return { record, recordKey, leaseKey };
  }

  /** A compare: `key` is as read (same mod revision), or still absent. */
  #unchanged(key: string, read: KeyState | null): Record<string, unknown> {
    return { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: read === null ? '0' : read.modRevision };
  }

  async #txn(compare: unknown[], success: unknown[], deadline: number): Promise<boolean> {
    const r = await this.#call('/v3/kv/txn', { compare, success }, deadline);
    return r.succeeded === true;
  }

  // --- leases ----------------------------------------------------------------------

  async #grant(deadline: number): Promise<string> {
    const r = await this.#call('/v3/lease/grant', { TTL: String(this.ttlMs / 1000) }, deadline);
    if (typeof r.ID !== 'string' || !/^\d+$/.test(r.ID)) throw TwinpageError.ioError(`${this.name}: etcd granted a lease without an id`);
    return r.ID;
  }

  /** Keeps `lease` alive for another TTL; false when it had ended. */
  async #keepAlive(lease: string, deadline: number): Promise<boolean> {
    const r = await this.#call('/v3/lease/keepalive', { ID: lease }, deadline);
    const ttl = Number((r.result as { TTL?: unknown } | undefined)?.TTL ?? 0);
    return ttl > 0;
  }

  async #revoke(lease: string, deadline: number): Promise<void> {
    try {
      await this.#call('/v3/lease/revoke', { ID: lease }, deadline);
    } catch (err) {
      if ((err as { etcdCode?: number }).etcdCode === 5) return; // not found: it ended already
      throw err;
    }
  }

  // --- HTTP -------------------------------------------------------------------------

  #deadline(): number {
    if (this.#closed) throw TwinpageError.closed(`${this.name}: the arbiter was closed`);
    return performance.now() + this.#timeoutMs;
  }

  /** One gateway call: on the endpoint in use, the next ones when it cannot be reached; authenticated when asked to. */
  async #call(path: string, body: unknown, deadline: number, authRetry = true): Promise<Record<string, unknown>> {
    if (this.#closed) throw TwinpageError.closed(`${this.name}: the arbiter was closed`);
    if (this.#auth !== null && this.#token === null && path !== '/v3/auth/authenticate') await this.#authenticate(deadline);
    let last: Error | null = null;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const index = (this.#current + i) % this.#endpoints.length;
      try {
        const r = await this.#post(this.#endpoints[index]!, path, body, deadline);
        this.#current = index;
        return r;
      } catch (err) {
        const e = err as TwinpageError & { etcdCode?: number };
        if (e.etcdCode === 16 && authRetry && this.#auth !== null) {
          // The token expired (etcd keeps them a few minutes): a new one, once.
          this.#token = null;
          return this.#call(path, body, deadline, false);
        }
        // Only an endpoint out of reach (or a member that cannot serve) sends the call to the next.
        if (e.code !== 'IO_ERROR' || (e.etcdCode !== undefined && e.etcdCode !== 14)) throw err;
        last = e;
      }
    }
    throw last!;
  }

  async #authenticate(deadline: number): Promise<void> {
    const r = await this.#call('/v3/auth/authenticate', { name: this.#auth!.name, password: this.#auth!.password }, deadline, false);
    if (typeof r.token !== 'string' || r.token === '') throw TwinpageError.authFailed(`${this.name}: etcd gave no token for user ${this.#auth!.name}`);
    this.#token = r.token;
  }

  #post(endpoint: URL, path: string, body: unknown, deadline: number): Promise<Record<string, unknown>> {
    const remaining = Math.ceil(deadline - performance.now());
    if (remaining <= 0) return Promise.reject(TwinpageError.timeout(`${this.name} did not answer within ${this.#timeoutMs} ms`));
    const payload = Buffer.from(JSON.stringify(body));
    const secure = endpoint.protocol === 'https:';
    const agent = secure ? (this.#agents.https ??= new https.Agent({ keepAlive: true, ...this.#tls })) : this.#agents.http;
    const url = new URL(path, endpoint);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(payload.byteLength) };
    if (this.#token !== null && path !== '/v3/auth/authenticate') headers.authorization = this.#token;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, value?: Record<string, unknown>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) { req.destroy(); reject(err); } else resolve(value!);
      };
      const req = (secure ? https : http).request(url, { method: 'POST', agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.byteLength;
          if (bytes > MAX_RESPONSE_BYTES) finish(TwinpageError.ioError(`${this.name}: a response over ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('error', (err) => finish(TwinpageError.ioError(`${this.name}: ${err.message}`, err)));
        res.on('end', () => {
          let json: Record<string, unknown>;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
            if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('not an object');
          } catch {
            finish(TwinpageError.ioError(`${this.name}: ${path} answered HTTP ${res.statusCode} with a body that is not a JSON object`));
            return;
          }
          const error = etcdError(json);
          if (res.statusCode !== 200 || error !== null) {
            const code = error?.code;
            const message = `${this.name}: ${path}: ${error?.message ?? `HTTP ${res.statusCode}`}`;
            const auth = code === 16 || code === 7 || /user name is empty|authentication failed/.test(error?.message ?? '');
            const e = code === 4 ? TwinpageError.timeout(message) : auth ? TwinpageError.authFailed(message) : TwinpageError.ioError(message);
            finish(Object.assign(e, { etcdCode: code }));
            return;
          }
          finish(null, json);
        });
      });
      const timer = setTimeout(() => finish(TwinpageError.timeout(`${this.name} did not answer within ${this.#timeoutMs} ms`)), remaining);
      req.on('error', (err) => finish(TwinpageError.ioError(`${this.name}: ${endpoint.origin}: ${err.message}`, err)));
      req.end(payload);
    });
  }
}

/** The gRPC error a gateway response carries, in either of its shapes, or null. */
function etcdError(json: Record<string, unknown>): { code: number | undefined; message: string } | null {
  if (typeof json.error === 'string') {
    return { code: typeof json.code === 'number' ? json.code : undefined, message: typeof json.message === 'string' ? json.message : json.error };
  }
  if (json.error !== null && typeof json.error === 'object') {
    const e = json.error as Record<string, unknown>; // a streaming call's: { grpc_code, message }
    return { code: typeof e.grpc_code === 'number' ? e.grpc_code : undefined, message: typeof e.message === 'string' ? e.message : 'error' };
  }
  return null;
}

/** The record's JSON, every field checked; CORRUPT for anything else. */
function parseRecord(text: string, key: string): PairRecord {
  const bad = (why: string) => TwinpageError.corrupt(`the pair's record at ${key} is not one (${why}): was the key written by something else?`);
  let v: unknown;
  try { v = JSON.parse(text); } catch { throw bad('not JSON'); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('not an object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'epoch,generation,outdated,primary') throw bad(`fields ${keys}`);
  if (!Number.isSafeInteger(o.epoch) || (o.epoch as number) < 0) throw bad('epoch');
  const node = (x: unknown) => x === null || (typeof x === 'string' && x !== '' && Buffer.byteLength(x) <= 256);
  if (!node(o.primary)) throw bad('primary');
  if (!node(o.outdated)) throw bad('outdated');
  if (typeof o.generation !== 'string' || Buffer.byteLength(o.generation) > 256) throw bad('generation');
  return { epoch: o.epoch as number, primary: o.primary as string | null, outdated: o.outdated as string | null, generation: o.generation };
}

function checkNode(what: string, node: unknown): void {
  if (typeof node !== 'string' || node === '' || Buffer.byteLength(node) > 256) throw TwinpageError.invalidArgument(`${what} must be a node id of 1 to 256 UTF-8 bytes`);
}

function checkEpoch(epoch: unknown): void {
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) throw TwinpageError.invalidArgument(`epoch must be an integer >= 0, got ${String(epoch)}`);
}
