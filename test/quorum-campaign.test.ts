// The quorum campaign with a witness, first half (test/quorum-campaign.ts
// says what it does and checks; quorum-campaign-b.test.ts runs the second
// half on a pair of its own, so that each file stays well inside the
// per-file limit and the two run side by side). QUORUM_ROUNDS rounds in all
// (default 30: 15 here, 15 there); QUORUM_SEED replays a run (its seed is
// printed; a failure names the round and the variables to replay it with).
import { test } from 'uvu';
import { quorumCampaign } from './quorum-campaign.js';

const ROUNDS = Number(process.env.QUORUM_ROUNDS ?? 30);
const SEED = process.env.QUORUM_SEED ? Number(process.env.QUORUM_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;

quorumCampaign(test, {
  name: 'quorum campaign (witness, first half)', rounds: Math.ceil(ROUNDS / 2), seed: SEED, killArbiter: true,
  replay: (rounds) => `QUORUM_SEED=${SEED} QUORUM_ROUNDS=${2 * rounds - 1}`,
});

test.run();
