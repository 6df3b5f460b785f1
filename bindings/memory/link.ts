// The one way a mirror attaches to a memory (memory/ never imports mirror/):
// `memory.attach(link)` hands the memory a MemoryLink and returns a function
// that detaches it. Through the link the memory sends each change it commits
// for its own callers (as a Change, which the mirror turns into paging
// synchronization messages), and asks for pages that fail their checksum on
// every local copy. What the partner sends comes in through `memory.apply`,
// the same commit path as a local change.

import type { Policy } from '../policies.js';
import type { Block } from './blocks.js';
import type { PageRepair } from './cache.js';
import type { IntentOptions } from './intents.js';

/** One page of a release: its number, checksum and bytes (the memory's own copy). */
export interface PageWrite { page: number; checksum: bigint; data: Uint8Array }

/** A change to a memory, as it travels between the nodes. */
export type Change =
  /** A block was created (ALLOCATE_MEMORY). */
  | { type: 'allocate'; block: Block }
  /** A block was freed (RELEASE_MEMORY). */
  | { type: 'free'; blockId: string }
  /** A write pointer's release (WRITE_PAGEs and RELEASE_POINTER): its pages take effect together. */
  | { type: 'release'; blockId: string; offset: number; length: number; lsn: number; pages: PageWrite[] };

/** What a change is sent with: the durability and copy method of its block's policy. */
export type LinkPolicy = Pick<Policy, 'durability' | 'copyMethod'>;

export interface MemoryLink {
  /**
   * Whether this node is the primary: its callers' changes are committed and
   * sent to the partner, write intents recorded first. A secondary's memory
   * refuses its callers' changes (NOT_PRIMARY) and is changed only by `apply`.
   */
  readonly primary: boolean;
  /**
   * Whether the primary takes new changes from its callers: false while it is
   * being demoted (new changes are refused with NOT_PRIMARY, while those
   * already under way are still committed and sent: `primary` stays true
   * until they are). @default primary
   */
  readonly accepting?: boolean;
  /**
   * Takes a change this memory committed for its caller, and resolves once
   * the partner holds it at `policy.durability`. `local`, when given, is this
   * node's own journal commit of the change, running meanwhile: if it fails,
   * the change is undone here and the partner may hold it (its pages differ).
   * A release's page data are views of this node's frames, as they are only
   * until `send` returns: whatever the link keeps of them longer it copies.
   */
  send(change: Change, policy: LinkPolicy, local?: Promise<void>): Promise<void>;
  /**
   * Before an allocation is journaled here: asks the partner to reserve the
   * run `[base, base + pages)`. False when it refuses (no room): the
   * allocation then fails with NO_SPACE and nothing changes on either node.
   * True at once without a partner (the allocation is recorded for a resync).
   */
  reserve(base: number, pages: number): Promise<boolean>;
  /** Fetches a page that fails its checksum on every local copy from the partner. */
  readonly repair: PageRepair;
  /** The write-intent extents to keep (a primary records them before writing pages here). */
  readonly intents: IntentOptions;
}
