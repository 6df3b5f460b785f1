// Policies tied to allocation size (US 7,107,411 claims 7-8): how durable a
// block's writes are, whether they go through to storage on release, how
// long its pages stay cached, and how its pages travel to the partner.

import { TwinpageError } from './errors.js';

/**
 * When a write is acknowledged, like DRBD's protocols C, B and A:
 * `disk` once both nodes' storage has it, `memory` once local storage and the
 * partner's memory have it, `async` once local storage has it (the partner
 * later). Without a partner all three wait for local storage.
 */
export type Durability = 'disk' | 'memory' | 'async';
/** `write-through`: a release goes to storage; `write-back`: dirty pages stay cached until flushed. */
export type WriteMode = 'write-through' | 'write-back';
/** How pages travel to the partner (US 7,107,411 claims 11-12). */
export type CopyMethod = 'message' | 'shared' | 'storage' | 'auto';

export interface Policy {
  /** A name to ask for the policy by. */
  name: string;
  /** Largest allocation, in bytes, this policy is chosen for by size. */
  maxSize: number;
  /** @default 'disk' */
  durability: Durability;
  /** @default 'write-through' */
  writeMode: WriteMode;
  /** Cache priority 0 (evicted first) to 3 (kept longest). @default 1 */
  cachePriority: number;
  /** @default 'auto' */
  copyMethod: CopyMethod;
}

export type PolicyInput = Partial<Policy> & { name: string };

export const DEFAULT_POLICY: Policy = Object.freeze({
  name: 'default', maxSize: Infinity, durability: 'disk', writeMode: 'write-through', cachePriority: 1, copyMethod: 'auto',
});

const DURABILITIES: readonly Durability[] = ['disk', 'memory', 'async'];
const WRITE_MODES: readonly WriteMode[] = ['write-through', 'write-back'];
const COPY_METHODS: readonly CopyMethod[] = ['message', 'shared', 'storage', 'auto'];

function oneOf<T extends string>(value: unknown, allowed: readonly T[], option: string): T {
  if (!allowed.includes(value as T)) {
    throw TwinpageError.invalidArgument(`${option} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Checks one policy, filling defaults. `where` names it in errors. */
export function normalizePolicy(input: unknown, where: string): Policy {
  if (input === null || typeof input !== 'object') throw TwinpageError.invalidArgument(`${where} must be an object`);
  const p = input as Record<string, unknown>;
  if (typeof p.name !== 'string' || p.name === '') throw TwinpageError.invalidArgument(`${where}.name must be a non-empty string`);
  const maxSize = p.maxSize ?? Infinity;
  if (typeof maxSize !== 'number' || !(maxSize === Infinity || (Number.isSafeInteger(maxSize) && maxSize > 0))) {
    throw TwinpageError.invalidArgument(`${where}.maxSize must be a positive integer or Infinity`);
  }
  const cachePriority = p.cachePriority ?? DEFAULT_POLICY.cachePriority;
  if (typeof cachePriority !== 'number' || !Number.isInteger(cachePriority) || cachePriority < 0 || cachePriority > 3) {
    throw TwinpageError.invalidArgument(`${where}.cachePriority must be an integer from 0 to 3`);
  }
  return {
    name: p.name,
    maxSize,
    durability: oneOf(p.durability ?? DEFAULT_POLICY.durability, DURABILITIES, `${where}.durability`),
    writeMode: oneOf(p.writeMode ?? DEFAULT_POLICY.writeMode, WRITE_MODES, `${where}.writeMode`),
    cachePriority,
    copyMethod: oneOf(p.copyMethod ?? DEFAULT_POLICY.copyMethod, COPY_METHODS, `${where}.copyMethod`),
  };
}

/**
 * The policy list of a memory, sorted by `maxSize`. A size is served by the
 * first policy whose `maxSize` covers it; the list must cover every size.
 */
export class PolicyList {
  readonly policies: readonly Policy[];

  constructor(inputs: unknown = [DEFAULT_POLICY]) {
    if (!Array.isArray(inputs) || inputs.length === 0) throw TwinpageError.invalidArgument('policies must be a non-empty array');
    const list = inputs.map((p, i) => normalizePolicy(p, `policies[${i}]`)).sort((a, b) => a.maxSize - b.maxSize);
    const names = new Set<string>();
    for (const p of list) {
      if (names.has(p.name)) throw TwinpageError.invalidArgument(`policies: the name '${p.name}' is used twice`);
      names.add(p.name);
    }
    if (list[list.length - 1].maxSize !== Infinity) {
      throw TwinpageError.invalidArgument('policies must cover every size: give the largest one maxSize: Infinity');
    }
    this.policies = list;
  }

  /** The policy named `name`, or the one chosen for `size`. */
  choose(size: number, name?: string): Policy {
    if (name !== undefined) {
      const p = this.policies.find((q) => q.name === name);
      if (!p) throw TwinpageError.invalidArgument(`no policy named '${String(name)}'; policies: ${this.policies.map((q) => q.name).join(', ')}`);
      return p;
    }
    return this.policies.find((p) => size <= p.maxSize)!;
  }
}

/** A policy as stored in a block header (JSON has no Infinity). */
export function policyToRecord(p: Policy): Record<string, unknown> {
  return { ...p, maxSize: p.maxSize === Infinity ? null : p.maxSize };
}

export function policyFromRecord(r: Record<string, unknown>): Policy {
  return normalizePolicy({ ...r, maxSize: r.maxSize === null ? Infinity : r.maxSize }, 'stored policy');
}
