// The quorum campaign with a witness (test/quorum-campaign.ts says what it
// does and checks): QUORUM_ROUNDS rounds (default 30) of random faults over
// a witness and two `serve --failover auto` nodes, every link through a
// nemesis. QUORUM_SEED replays a run (its seed is printed; a failure names
// the round and the variables to replay it with).
import { test } from 'uvu';
import { quorumCampaign } from './quorum-campaign.js';

const ROUNDS = Number(process.env.QUORUM_ROUNDS ?? 30);
const SEED = process.env.QUORUM_SEED ? Number(process.env.QUORUM_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;

test(`quorum campaign, witness: ${ROUNDS} rounds of cuts, kills, stops and witness restarts under automatic failover: no split brain, no acknowledged write lost`, async () => {
  await quorumCampaign({ name: 'quorum campaign (witness)', rounds: ROUNDS, seed: SEED, env: { rounds: 'QUORUM_ROUNDS', seed: 'QUORUM_SEED' }, killArbiter: true });
});

test.run();
