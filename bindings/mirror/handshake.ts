// Generations and the handshake decision (DRBD's data generation UUIDs).
//
// Each node keeps a *current* generation (16 hex digits), a *bitmap*
// generation and a short *history*:
//   - a primary that loses its partner, and a node promoted without its
//     partner, move current to bitmap (when bitmap is empty; else current
//     goes to history) and take a new current, durably, before their first
//     change the partner lacks (rotate);
//   - a node that is resynced takes its source's current (its own goes to
//     history); when the resync ends the source retires its bitmap
//     generation to history (settle).
// At the handshake one pure function of both nodes' generations and flags
// decides what happens: in sync, resync from me, resync from you (from the
// out-of-sync records, or by comparing every checksum), split brain (both
// changed since they parted), unrelated. Nothing here acts: the pair does
// what the decision says. This holds whatever roles the nodes come back in:
// a primary that kept writing while its partner was promoted is a split
// brain, never "behind".

import type { SplitBrainPolicy } from '../messages.js';
import type { Role } from './options.js';

/** The generation of a node that never held data of a pair (and "no bitmap generation"). */
export const NO_GENERATION = '0000000000000000';

/** History entries kept. */
export const HISTORY = 16;

/** A random generation id: 16 hex digits, never all zero. */
export function newGeneration(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  b[0] |= 1;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** A node's generations. */
export interface Generations {
  current: string;
  /** NO_GENERATION when the node records nothing its partner lacks. */
  bitmap: string;
  /** Earlier generations, newest first. */
  history: string[];
}

/** The generations after a rotation: a new current, the old one kept as bitmap (or in history). */
export function rotated(g: Generations, fresh = newGeneration()): Generations {
  if (g.bitmap === NO_GENERATION) return { current: fresh, bitmap: g.current, history: g.history };
  return { current: fresh, bitmap: g.bitmap, history: [g.current, ...g.history].slice(0, HISTORY) };
}

/** A resync source's generations once its partner holds everything: the bitmap generation retired. */
export function settled(g: Generations): Generations {
  if (g.bitmap === NO_GENERATION) return g;
  return { current: g.current, bitmap: NO_GENERATION, history: [g.bitmap, ...g.history].slice(0, HISTORY) };
}

/** A resync target's generations: the source's current taken, its own kept in history. */
export function taken(own: Generations, source: Generations): Generations {
  const history = [own.current, own.bitmap, ...own.history, ...source.history]
    .filter((h, i, all) => h !== NO_GENERATION && h !== source.current && all.indexOf(h) === i);
  return { current: source.current, bitmap: NO_GENERATION, history: history.slice(0, HISTORY) };
}

/** One node's side of the decision. */
export interface Side extends Generations {
  role: Role;
  /** Being resynced from its partner. */
  inconsistent: boolean;
  /** Pages it records as out of sync: its changes since the nodes parted. */
  changes: number;
  /** When it last became primary (ms since the epoch; 0: never). */
  primarySince: number;
  splitBrain: SplitBrainPolicy;
  /** It gives up its changes in a split brain (`twinpage discard`, or its policy `discard-local`). */
  discardLocal: boolean;
}

/** What the handshake decided, from this node's point of view. */
export type Decision =
  /** Same current generation: nothing to decide; a primary resyncs what the records say differs. */
  | { kind: 'in-sync' }
  /** The partner is behind: resync it from here (`full`: compare every checksum, else the union of both records). */
  | { kind: 'source'; full: boolean; reason: string }
  /** This node is behind: it takes the partner's generation and is resynced. */
  | { kind: 'target'; full: boolean; reason: string }
  /** Refused: nothing is merged, both keep their data. `splitBrain`: both changed since they parted. */
  | { kind: 'refuse'; splitBrain: boolean; reason: string };

const AUTOMATIC: readonly SplitBrainPolicy[] = ['discard-younger-primary', 'discard-least-changes', 'discard-zero-changes'];

/**
 * Decides at handshake, the same way on both nodes (each from its own point
 * of view). First the generations alone, in order:
 *   1. a node that never held data is behind (full resync);
 *   2. same current: in sync (a primary resyncs what the records name);
 *   3. my bitmap is your current: you are behind by what my record says;
 *      your bitmap is my current: I am;
 *   4. the same bitmap generation on both, with different currents: both
 *      changed since they parted: split brain, resolved only by a policy;
 *   5. your current in my history: you are behind, by an unknown amount
 *      (full resync); mine in yours: I am;
 *   6. anything shared at all: split brain; nothing shared: unrelated.
 * Then the roles: two primaries are refused; the node behind must be a
 * secondary (a primary is never resynced: refused, with what to do); the
 * node ahead may be either (two secondaries resync too).
 */
export function decide(self: Side, peer: Side): Decision {
  const d = relate(self, peer);
  if (self.role === 'primary' && peer.role === 'primary' && !(d.kind === 'refuse' && d.splitBrain)) {
    return refuse(false, 'both nodes act as primary: one of them must be restarted as secondary (or demoted)');
  }
  return d;
}

/** The decision from the generations, with the roles checked only for who is resynced. */
function relate(self: Side, peer: Side): Decision {
  const selfNew = self.current === NO_GENERATION;
  const peerNew = peer.current === NO_GENERATION;
  if (selfNew && peerNew) return { kind: 'in-sync' };
  if (selfNew) return behind(self, peer, true, 'this node never held data of the pair');
  if (peerNew) return ahead(self, peer, true, 'the partner never held data of the pair');
  if (self.current === peer.current) return { kind: 'in-sync' };
  if (self.bitmap !== NO_GENERATION && self.bitmap === peer.current) return ahead(self, peer, false, 'the partner missed what this node changed since they parted');
  if (peer.bitmap !== NO_GENERATION && peer.bitmap === self.current) return behind(self, peer, false, 'this node missed what the partner changed since they parted');
  if (self.bitmap !== NO_GENERATION && self.bitmap === peer.bitmap) return splitBrain(self, peer, 'both nodes changed since they parted');
  if (self.history.includes(peer.current)) return ahead(self, peer, true, "the partner's data is older than this node's record of it");
  if (peer.history.includes(self.current)) return behind(self, peer, true, "this node's data is older than the partner's record of it");
  const mine = new Set([self.current, self.bitmap, ...self.history].filter((g) => g !== NO_GENERATION));
  if ([peer.current, peer.bitmap, ...peer.history].some((g) => mine.has(g))) {
    return splitBrain(self, peer, 'both nodes changed since they parted, long ago');
  }
  return refuse(false, 'the two nodes hold unrelated data (no generation in common): nothing is resynced either way');
}

function refuse(splitBrain: boolean, reason: string): Decision {
  return { kind: 'refuse', splitBrain, reason };
}

/** This node is ahead: it is the source, unless the partner is a primary (which is never resynced). */
function ahead(self: Side, peer: Side, full: boolean, reason: string): Decision {
  if (peer.role === 'primary') {
    return refuse(false, `this secondary holds newer data than its primary (${reason}): ` +
      'promote it, and restart the other node as secondary so that it is resynced');
  }
  return { kind: 'source', full, reason };
}

/** This node is behind: it is the target, if it is the secondary. */
function behind(self: Side, _peer: Side, full: boolean, reason: string): Decision {
  if (self.role === 'primary') {
    return refuse(false, `this primary is behind its partner (${reason}): ` +
      'restart it as secondary (or demote it) so that it is resynced, and promote the partner');
  }
  return { kind: 'target', full, reason };
}

/**
 * Both changed since they parted. Never merged: one side's changes are
 * discarded (it becomes the resync target, from the union of both records)
 * only when a policy says which: `discard-local` (or `twinpage discard`) on
 * that side, or the same automatic policy on both. The discarded side must
 * be the secondary. Else refused.
 */
function splitBrain(self: Side, peer: Side, what: string): Decision {
  const loser = discarded(self, peer);
  const reason = `split brain: ${what}`;
  if (loser === null) {
    const both = (self.discardLocal || self.splitBrain === 'discard-local') && (peer.discardLocal || peer.splitBrain === 'discard-local');
    // Both give up: nobody to take from. A promotion takes back a node's discard.
    return refuse(true, both ? `${reason}, and both nodes are set to discard their changes (promote the one to keep)` : reason);
  }
  const discarding = loser === 'self' ? self : peer;
  if (discarding.role === 'primary') {
    return refuse(true, `${reason}; the ${loser === 'self' ? "this node's" : "partner's"} changes are to be discarded, ` +
      'but it is primary: restart it as secondary (or demote it) first');
  }
  return loser === 'self'
    ? { kind: 'target', full: false, reason: `${reason}: this node discards its changes` }
    : { kind: 'source', full: false, reason: `${reason}: the partner discards its changes` };
}

/** Which side's changes a split brain discards, or null to refuse. */
function discarded(self: Side, peer: Side): 'self' | 'peer' | null {
  const selfGives = self.discardLocal || self.splitBrain === 'discard-local';
  const peerGives = peer.discardLocal || peer.splitBrain === 'discard-local';
  if (selfGives !== peerGives) return selfGives ? 'self' : 'peer';
  if (selfGives && peerGives) return null; // both give up: nobody to take from
  // An automatic policy acts only when both nodes are configured with it.
  if (self.splitBrain !== peer.splitBrain || !AUTOMATIC.includes(self.splitBrain)) return null;
  switch (self.splitBrain) {
    case 'discard-younger-primary':
      if (self.primarySince === peer.primarySince) return null;
      return self.primarySince > peer.primarySince ? 'self' : 'peer';
    case 'discard-least-changes':
      if (self.changes === peer.changes) return null;
      return self.changes < peer.changes ? 'self' : 'peer';
    case 'discard-zero-changes':
      if ((self.changes === 0) === (peer.changes === 0)) return null;
      return self.changes === 0 ? 'self' : 'peer';
    default:
      return null;
  }
}
