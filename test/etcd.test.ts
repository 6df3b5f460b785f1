// EtcdArbiter against a real etcd: one etcd process started here on loopback
// (its own data folder and free ports, never a system service), the arbiter
// conformance suite, the record as etcd holds it, a foreign value refused,
// several endpoints, etcd stopped or out of reach, etcd's authentication.
//
// No npm package ships an etcd binary: without one (Debian: apt-get install
// etcd-server) this file says it skipped itself, by name; with CI=true a
// missing etcd fails the run instead. TWINPAGE_ETCD names another binary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TwinpageError } from '../bindings/errors.js';
import { EtcdArbiter, type EtcdArbiterOptions } from '../bindings/mirror/etcd.js';
import { arbiterConformance } from './arbiter-suite.js';
import { LocalEtcd, deadEndpoint, findEtcd } from './etcd-process.js';

const SKIPPED = 'etcd: skipped, no etcd binary (install etcd-server)';
const G1 = '1111111111111111';
const G2 = '2222222222222222';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** POSTs to etcd's JSON gateway directly (to look at, or tamper with, what the arbiter keeps). */
async function gateway(endpoint: string, path: string, body: unknown, token?: string): Promise<Record<string, any>> {
  const res = await fetch(endpoint + path, { method: 'POST', body: JSON.stringify(body), headers: token ? { authorization: token } : {} });
  return await res.json() as Record<string, any>;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { assert.instance(err, TwinpageError); return (err as TwinpageError).code; }
  return 'none';
}


const binary = findEtcd();

if (binary === null) {
  if (process.env.CI === 'true') {
    test('etcd: no etcd binary, and CI=true requires one (install etcd-server: apt-get install -y etcd-server)', () => {
      assert.unreachable('no etcd binary at /usr/bin/etcd, on PATH or in TWINPAGE_ETCD');
    });
  } else {
    console.log(SKIPPED);
    test.skip(SKIPPED, () => {});
  }
  test.run();
} else {
  // Authentication tokens last 1 s (auth is on only in the last test): the arbiter must take a new one.
  const etcd = await LocalEtcd.start(binary, ['--auth-token-ttl', '1']);
  const arbiters: EtcdArbiter[] = [];
  const make = (options: Partial<EtcdArbiterOptions> & { prefix: string }) => {
    const a = new EtcdArbiter({ endpoints: etcd.endpoint, ttlMs: 2000, ...options });
    arbiters.push(a);
    return a;
  };
  let pairs = 0;

  arbiterConformance({
    name: 'etcd',
    ttlMs: 2000,
    // etcd's leader looks for ended leases every half second, then revokes them through raft.
    expiryMs: 1200,
    async open() {
      const prefix = `twinpage-test/conformance-${++pairs}`;
      const clients = new Map<string, EtcdArbiter>();
      return {
        client(node) {
          let c = clients.get(node);
          if (!c) { c = make({ prefix }); clients.set(node, c); }
          return c;
        },
        async close() { for (const c of clients.values()) await c.close(); },
      };
    },
  });

  test.after(async () => {
    for (const a of arbiters) await a.close();
    await etcd.stop();
  });

  test('etcd: the record is JSON under <prefix>/record; the lease key carries an etcd lease of the TTL', async () => {
    const a = make({ prefix: 'twinpage-test/shape/' });
    const { record } = await a.acquire('a', G1);
    assert.ok(await a.outdate('a', record.epoch, 'b', G2));
    const r = await gateway(etcd.endpoint, '/v3/kv/range', { key: b64('twinpage-test/shape/record') });
    assert.equal(JSON.parse(unb64(r.kvs[0].value)), { epoch: 1, primary: 'a', outdated: 'b', generation: G2 });
    assert.is(r.kvs[0].lease, undefined, 'the record outlives leases');
    const l = await gateway(etcd.endpoint, '/v3/kv/range', { key: b64('twinpage-test/shape/lease') });
    assert.is(unb64(l.kvs[0].value), 'a');
    const ttl = await gateway(etcd.endpoint, '/v3/lease/timetolive', { ID: l.kvs[0].lease });
    assert.equal([ttl.grantedTTL, Number(ttl.TTL) <= 2 && Number(ttl.TTL) > 0], ['2', true]);
    await a.release('a', record.epoch);
    const gone = await gateway(etcd.endpoint, '/v3/kv/range', { key: b64('twinpage-test/shape/lease') });
    assert.is(gone.kvs, undefined, 'release revokes the lease: its key is gone at once');
  });

  test('etcd: pairs under different prefixes do not see each other', async () => {
    const one = make({ prefix: 'twinpage-test/one' });
    const two = make({ prefix: 'twinpage-test/one/two' });
    assert.ok((await one.acquire('a', G1)).granted);
    const other = await two.acquire('b', G2);
    assert.ok(other.granted);
    assert.equal(other.record, { epoch: 1, primary: 'b', outdated: null, generation: G2 });
    assert.is((await one.read()).primary, 'a');
  });

  test('etcd: a record that is not one is refused (CORRUPT) and left as it is', async () => {
    const key = b64('twinpage-test/foreign/record');
    for (const value of ['not json', '{"epoch":1}', '{"epoch":-1,"primary":null,"outdated":null,"generation":""}',
      '{"epoch":1,"primary":"","outdated":null,"generation":""}', '{"epoch":1,"primary":null,"outdated":null,"generation":"","x":1}', '[]']) {
      await gateway(etcd.endpoint, '/v3/kv/put', { key, value: b64(value) });
      const a = make({ prefix: 'twinpage-test/foreign' });
      assert.is(await codeOf(a.read()), 'CORRUPT', value);
      assert.is(await codeOf(a.acquire('a', G1)), 'CORRUPT', value);
      const r = await gateway(etcd.endpoint, '/v3/kv/range', { key });
      assert.is(unb64(r.kvs[0].value), value, 'untouched');
    }
    // A lease key naming another node than the record's primary.
    await gateway(etcd.endpoint, '/v3/kv/put', { key, value: b64(JSON.stringify({ epoch: 1, primary: 'a', outdated: null, generation: '' })) });
    await gateway(etcd.endpoint, '/v3/kv/put', { key: b64('twinpage-test/foreign/lease'), value: b64('z') });
    assert.is(await codeOf(make({ prefix: 'twinpage-test/foreign' }).read()), 'CORRUPT');
  });

  test('etcd: options are checked; the TTL is rounded up to whole seconds, at least 2 s', () => {
    const bad = (o: unknown) => { try { new EtcdArbiter(o as never); return 'none'; } catch (err) { return (err as TwinpageError).code; } };
    assert.is(bad({ prefix: 'p' }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: [], prefix: 'p' }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: 'ftp://127.0.0.1:1', prefix: 'p' }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: 'nowhere', prefix: 'p' }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: etcd.endpoint, prefix: '' }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: etcd.endpoint, prefix: 'p', ttlMs: 1999 }), 'INVALID_ARGUMENT');
    assert.is(bad({ endpoints: etcd.endpoint, prefix: 'p', username: 'root' }), 'INVALID_ARGUMENT');
    assert.is(new EtcdArbiter({ endpoints: etcd.endpoint, prefix: 'p', ttlMs: 2500 }).ttlMs, 3000);
    assert.is(new EtcdArbiter({ endpoints: etcd.endpoint, prefix: 'p' }).ttlMs, 10_000);
  });

  test('etcd: an endpoint out of reach is passed over; none in reach is IO_ERROR; a stopped etcd is TIMEOUT; closed is CLOSED', async () => {
    const hole = await deadEndpoint();
    try {
      const dead = hole.url;
      const a = make({ prefix: 'twinpage-test/reach', endpoints: [dead, etcd.endpoint], timeoutMs: 1000 });
      assert.ok((await a.acquire('a', G1)).granted);
      const none = make({ prefix: 'twinpage-test/reach', endpoints: [dead] });
      assert.is(await codeOf(none.read()), 'IO_ERROR');
      etcd.kill('SIGSTOP');
      try {
        const t0 = performance.now();
        assert.is(await codeOf(a.acquire('a', G1)), 'TIMEOUT');
        assert.ok(performance.now() - t0 < 3000);
      } finally {
        etcd.kill('SIGCONT');
      }
      assert.is((await a.read()).primary, 'a');
      await a.close();
      assert.is(await codeOf(a.read()), 'CLOSED');
    } finally {
      await hole.close();
    }
  });

  test('etcd: with authentication on, a user and password are used; without them, or a wrong one, the call is refused', async () => {
    const e = etcd.endpoint;
    await gateway(e, '/v3/auth/role/add', { name: 'root' });
    await gateway(e, '/v3/auth/user/add', { name: 'root', password: 'rootpw' });
    await gateway(e, '/v3/auth/user/grant', { user: 'root', role: 'root' });
    const enabled = await gateway(e, '/v3/auth/enable', {});
    assert.ok(enabled.header, JSON.stringify(enabled));
    const anonymous = make({ prefix: 'twinpage-test/auth' });
    assert.is(await codeOf(anonymous.read()), 'AUTH_FAILED');
    const wrong = make({ prefix: 'twinpage-test/auth', username: 'root', password: 'nope' });
    assert.is(await codeOf(wrong.read()), 'AUTH_FAILED');
    const right = make({ prefix: 'twinpage-test/auth', username: 'root', password: 'rootpw' });
    const got = await right.acquire('a', G1);
    assert.ok(got.granted);
    assert.ok(await right.outdate('a', got.record.epoch, 'b', G1));
    assert.is((await right.read()).outdated, 'b');
    await sleep(2500);
    assert.is((await right.read()).outdated, 'b', 'a token that expired is replaced');
  });

  test.run();
}
