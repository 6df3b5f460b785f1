// The quorum campaign (test/quorum-campaign.ts) with etcd as the arbiter
// instead of a witness: QUORUM_ETCD_ROUNDS rounds (default 5) of random
// faults over two `serve --failover auto --etcd` nodes, each node's link to
// etcd and the pair's link through a nemesis. etcd itself is not killed
// (a node is cut from it instead). QUORUM_SEED replays a run.
//
// The lease is 2 s here, etcd's least (it counts leases in whole seconds
// and ends them on a timer about every half second).
//
// As in etcd.test.ts: one etcd started here on loopback (its own data
// folder and free ports); without an etcd binary (Debian: apt-get install
// etcd-server) this file says it skipped itself, by name; with CI=true a
// missing etcd fails the run instead. TWINPAGE_ETCD names another binary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { quorumCampaign } from './quorum-campaign.js';
import { LocalEtcd, findEtcd } from './etcd-process.js';

const SKIPPED = 'quorum campaign with etcd: skipped, no etcd binary (install etcd-server)';
const ROUNDS = Number(process.env.QUORUM_ETCD_ROUNDS ?? 5);
const SEED = process.env.QUORUM_SEED ? Number(process.env.QUORUM_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;


const binary = findEtcd();

if (binary === null) {
  if (process.env.CI === 'true') {
    test('quorum campaign with etcd: no etcd binary, and CI=true requires one (install etcd-server: apt-get install -y etcd-server)', () => {
      assert.unreachable('no etcd binary at /usr/bin/etcd, on PATH or in TWINPAGE_ETCD');
    });
  } else {
    console.log(SKIPPED);
    test.skip(SKIPPED, () => {});
  }
  test.run();
} else {
  let etcd: LocalEtcd | null = null;
  test.before(async () => { etcd = await LocalEtcd.start(binary); });
  quorumCampaign(test, {
    name: 'quorum campaign (etcd)', rounds: ROUNDS, seed: SEED, killArbiter: false,
    get etcd() { return etcd!.endpoint; }, etcdPrefix: `twinpage-quorum-${process.pid}`, leaseMs: 2000,
    replay: (rounds) => `QUORUM_SEED=${SEED} QUORUM_ETCD_ROUNDS=${rounds}`,
  });
  // After the campaign's own `after` (its nodes stopped first).
  test.after(async () => { await etcd?.stop(); });
  test.run();
}
