// The options of a mirror, checked once, with their defaults.

import { TwinpageError } from '../errors.js';
import { choiceOption, functionOption, intOption } from '../options.js';
import type { CopyMethod } from '../policies.js';
import type { Device } from '../storage/device.js';

import { SPLIT_BRAIN_POLICIES, type SplitBrainPolicy } from '../messages.js';
import type { Arbiter } from './arbiter.js';

export type Role = 'primary' | 'secondary';
export type { SplitBrainPolicy };

/** Options of a Mirror. */
export interface MirrorOptions {
  role: Role;
  /**
   * How often the primary senses the partner (SENSE_REQUEST, the heartbeat), in ms.
   * @default 1000
   */
  heartbeatMs?: number;
  /**
   * A partner silent this long is down: the primary goes on degraded.
   * @default 5000
   */
  timeoutMs?: number;
  /** Called as a resync goes, with pages sent and pages to send. */
  onResyncProgress?: (progress: { done: number; total: number }) => void;
  /**
   * What to do when both nodes changed since they parted (split brain).
   * Nothing is ever merged: `refuse` keeps both as they are and reports it;
   * `discard-local` makes this node give up its changes and take the
   * partner's. Set the same on both nodes, `discard-younger-primary` (the
   * node promoted last gives up its changes), `discard-least-changes` (the
   * one with fewer changed pages), `discard-zero-changes` (one that changed
   * nothing; otherwise refused). The node that gives up must be secondary.
   * @default 'refuse'
   */
  splitBrain?: SplitBrainPolicy;
  /**
   * How pages travel to the partner, for blocks whose policy says `auto`:
   * `message` (in the frame), `shared` (through the transport's
   * SharedArrayBuffer: the frame carries its location), `storage` (through
   * `exchange`, a device both nodes open), or `auto`: `shared` when the
   * transport has a SharedArrayBuffer, else `storage` when an exchange is
   * given, else `message`. A method the connection lacks, or a full
   * exchange, falls back to `message`; `stats()` counts pages by method.
   * @default 'auto'
   */
  copy?: CopyMethod;
  /** For the `storage` copy method: a device the partner opens too, and how many bytes of it to use (both halves). */
  exchange?: { device: Device; bytes: number };
  /**
   * `auto`: a secondary that loses its primary (silent for `timeoutMs`, or
   * the connection gone) promotes itself, when the `arbiter` grants it the
   * lease (needs an arbiter: two nodes alone cannot tell a dead partner
   * from a dead link). @default 'manual'
   */
  failover?: 'manual' | 'auto';
  /**
   * The third vote (a witness, etcd, or in-process for tests). With one, a
   * primary acknowledges a write its partner lacks only while it holds the
   * arbiter's lease and has marked the partner outdated there; a secondary
   * takes over only by acquiring the lease. @default none
   */
  arbiter?: Arbiter;
  /**
   * With an arbiter: what a write the partner lacks does while this node has
   * no quorum (no lease): `suspend` waits until quorum returns or the
   * partner holds it again; `error` fails it with NO_QUORUM (it is kept
   * here and resynced, but not acknowledged). @default 'suspend'
   */
  onNoQuorum?: 'suspend' | 'error';
  /** Called when this node promoted itself (automatic failover). */
  onFailover?: () => void;
  /**
   * Pages per write-intent extent, and how many extents may be hot before
   * the least recently used one is retired. @default 128, 64
   */
  extentPages?: number;
  intentExtents?: number;
}

export interface ResolvedMirrorOptions {
  role: Role;
  heartbeatMs: number;
  timeoutMs: number;
  onResyncProgress: MirrorOptions['onResyncProgress'];
  splitBrain: SplitBrainPolicy;
  copy: CopyMethod;
  exchange: { device: Device; bytes: number } | null;
  failover: 'manual' | 'auto';
  onFailover: MirrorOptions['onFailover'];
  extentPages: number;
  intentExtents: number;
  arbiter: Arbiter | null;
  onNoQuorum: 'suspend' | 'error';
}

export function resolveMirrorOptions(options: MirrorOptions): ResolvedMirrorOptions {
  if (options?.role !== 'primary' && options?.role !== 'secondary') throw TwinpageError.invalidArgument(`mirror.role must be 'primary' or 'secondary'`);
  let exchange: ResolvedMirrorOptions['exchange'] = null;
  if (options.exchange !== undefined) {
    const x = options.exchange;
    if (x === null || typeof x !== 'object' || typeof x.device?.write !== 'function') throw TwinpageError.invalidArgument('mirror.exchange must be { device, bytes }');
    exchange = { device: x.device, bytes: intOption('mirror.exchange.bytes', x.bytes, 0) };
  }
  const arbiter = options.arbiter ?? null;
  if (arbiter !== null && (typeof arbiter !== 'object' || typeof arbiter.acquire !== 'function')) throw TwinpageError.invalidArgument('mirror.arbiter must be an Arbiter (a witness, etcd, or MemoryArbiter)');
  if (options.failover === 'auto' && arbiter === null) {
    throw TwinpageError.invalidArgument(`mirror.failover 'auto' needs mirror.arbiter (a witness or etcd): two nodes alone cannot tell a dead partner from a dead link`);
  }
  return {
    arbiter,
    onNoQuorum: choiceOption('mirror.onNoQuorum', options.onNoQuorum, ['suspend', 'error'] as const, 'suspend'),
    role: options.role,
    heartbeatMs: intOption('mirror.heartbeatMs', options.heartbeatMs, 1000),
    timeoutMs: intOption('mirror.timeoutMs', options.timeoutMs, 5000),
    onResyncProgress: functionOption('mirror.onResyncProgress', options.onResyncProgress),
    splitBrain: choiceOption('mirror.splitBrain', options.splitBrain, SPLIT_BRAIN_POLICIES, 'refuse'),
    copy: choiceOption('mirror.copy', options.copy, ['auto', 'message', 'shared', 'storage'] as const, 'auto'),
    exchange,
    failover: choiceOption('mirror.failover', options.failover, ['manual', 'auto'] as const, 'manual'),
    onFailover: functionOption('mirror.onFailover', options.onFailover),
    extentPages: intOption('mirror.extentPages', options.extentPages, 128),
    intentExtents: intOption('mirror.intentExtents', options.intentExtents, 64),
  };
}
