// The handshake: each node's first frame on a connection is a HELLO with its
// generations, role and out-of-sync record; from both nodes' generations one
// pure function decides what happens next. Nothing here acts: the pair does
// what the decision says.
//
// A generation id (16 hex digits) names a history of changes: a node takes a
// new one when it is promoted, keeps its earlier ones in its history, and a
// node that never held data of a pair has none (NO_GENERATION).

import type { Role, SplitBrainPolicy } from './options.js';

/** The generation of a node that never held data of a pair. */
export const NO_GENERATION = '0000000000000000';

/** A random generation id: 16 hex digits, never all zero. */
export function newGeneration(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  b[0] |= 1;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** One node's side of the decision. */
export interface Side {
  role: Role;
  generation: string;
  /** Earlier generations, newest first. */
  history: string[];
}

/** What the handshake decided, from this node's point of view. */
export type Decision =
  /** Both hold the same generation: a primary resyncs what its record says differs. */
  | { kind: 'same' }
  /** The partner is behind: this primary resyncs it (`fresh`: it never held data: compare every checksum). */
  | { kind: 'resync-peer'; fresh: boolean }
  /** This secondary is behind: it takes the partner's generation and is resynced. */
  | { kind: 'take-peer' }
  /** Both changed since they parted, and this secondary gives up its changes (`discard-local`). */
  | { kind: 'discard-local' }
  /** Refused: nothing is merged, both keep their data. */
  | { kind: 'split-brain'; what: string };

/**
 * Decides at handshake: same generation, in sync; the partner's current
 * generation in this node's history, the partner is behind; this node's in
 * the partner's, this node is behind; neither, both changed since they
 * parted: split brain, refused unless this secondary's policy is
 * `discard-local`.
 */
export function decide(self: Side, peer: Side, policy: SplitBrainPolicy): Decision {
  if (peer.role === 'primary' && self.role === 'primary') return { kind: 'split-brain', what: 'both nodes act as primary' };
  if (peer.generation === self.generation) return { kind: 'same' };
  const peerBehind = peer.generation === NO_GENERATION || self.history.includes(peer.generation);
  const selfBehind = self.generation === NO_GENERATION || peer.history.includes(self.generation);
  if (selfBehind && self.role === 'secondary') return { kind: 'take-peer' };
  if (peerBehind && self.role === 'primary') return { kind: 'resync-peer', fresh: peer.generation === NO_GENERATION };
  if (!peerBehind && !selfBehind && self.role === 'secondary' && policy === 'discard-local') return { kind: 'discard-local' };
  const what = peerBehind || selfBehind
    ? `the ${selfBehind ? 'primary' : 'secondary'} is behind its partner`
    : 'both nodes changed since they parted';
  return { kind: 'split-brain', what };
}

/** What a node's HELLO says beside its ids (the generations field). */
export interface HelloInfo extends Side {
  /** Runs of pages that may differ here, or null when unknown (a resync compares checksums). */
  outOfSync: Array<[number, number]> | null;
  /** Being resynced from the partner. */
  inconsistent: boolean;
  /** The blocks held (null: too many to list; the primary compares checksums). */
  blocks: string[] | null;
  /** A second HELLO on a connection: the primary's resync is done. */
  synced?: boolean;
}

/** Blocks whose ids go in a HELLO (more: the primary compares checksums). */
export const MAX_HELLO_BLOCKS = 65536;

/** The partner's HELLO fields, checked (anything malformed reads as unknown). */
export function readHello(g: Record<string, unknown>): HelloInfo {
  return {
    role: g.role === 'primary' ? 'primary' : 'secondary',
    generation: typeof g.generation === 'string' ? g.generation : '',
    history: Array.isArray(g.history) ? g.history.filter((h): h is string => typeof h === 'string') : [],
    outOfSync: Array.isArray(g.outOfSync) ? g.outOfSync as Array<[number, number]> : null,
    inconsistent: g.inconsistent === true,
    blocks: Array.isArray(g.blocks) ? g.blocks.filter((id): id is string => typeof id === 'string') : null,
    synced: g.synced === true,
  };
}
