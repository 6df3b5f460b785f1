// The quorum campaign with a witness, second half (see quorum-campaign.test.ts):
// QUORUM_ROUNDS / 2 rounds (default 15) on a pair of its own, from a seed
// derived from QUORUM_SEED.
import { test } from 'uvu';
import { quorumCampaign } from './quorum-campaign.js';

const ROUNDS = Number(process.env.QUORUM_ROUNDS ?? 30);
const SEED = process.env.QUORUM_SEED ? Number(process.env.QUORUM_SEED) >>> 0 : (Date.now() ^ (process.pid << 10)) >>> 0;

quorumCampaign(test, {
  name: 'quorum campaign (witness, second half)', rounds: Math.floor(ROUNDS / 2), seed: (SEED ^ 0x2545F491) >>> 0, killArbiter: true,
  replay: (rounds) => `QUORUM_SEED=${SEED} QUORUM_ROUNDS=${2 * rounds}`,
});

test.run();
