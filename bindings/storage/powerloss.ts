// A power-loss store: devices in memory that keep what was written since
// their last flush apart from what is durable, as SQLite's crash VFS and
// LazyFS do, and a `powerLoss()` that throws away what a power cut would:
// every write since the last flush, a random subset of them, or a random
// subset of their 512-byte sectors (torn writes). Creations, renames and
// removals are durable only after `sync()` (the folder's fsync); a power loss
// keeps a random prefix of those done since. Handles opened before a power
// loss refuse every use (IO_ERROR), as a process that lost its machine.
//
// It lives in the library (not only in the tests) so that applications can
// run their own crash tests on a memory, as `withFaults` lets them test a
// mirror's transport. No Node imports: it runs in browsers too.

import { TwinpageError } from '../errors.js';
import { checkAccess, checkName, checkPosition, type Device, type Store } from './device.js';

/** What a power loss keeps of the writes since each device's last flush. */
export type PowerLossMode =
  /** Nothing. */
  | 'drop'
  /** Each write whole, or not at all, at random. */
  | 'subset'
  /** Each sector of each write, or not, at random (a write torn at sector boundaries). */
  | 'torn';

export interface PowerLossStoreOptions {
  /**
   * Test-only mutation: false makes `flush()` keep nothing (a flush made a
   * no-op), so that a crash campaign can show it notices.
   * @default true
   */
  flushPersists?: boolean;
  /**
   * Bytes of a sector, the unit a torn write is cut at.
   * @default 512
   */
  sectorSize?: number;
}

type Op = { kind: 'write'; at: number; data: Uint8Array } | { kind: 'truncate'; size: number };

/** Bytes of a file: a growable buffer and a length. */
class Bytes {
  bytes = new Uint8Array(0);
  length = 0;

  clone(): Bytes {
    const b = new Bytes();
    b.bytes = this.bytes.slice(0, this.length);
    b.length = this.length;
    return b;
  }

  apply(op: Op): void {
    if (op.kind === 'truncate') {
      this.#room(op.size);
      if (op.size < this.length) this.bytes.fill(0, op.size, this.length);
      this.length = op.size;
      return;
    }
    if (op.data.length === 0) return;
    const end = op.at + op.data.length;
    this.#room(end);
    if (op.at > this.length) this.bytes.fill(0, this.length, op.at);
    this.bytes.set(op.data, op.at);
    this.length = Math.max(this.length, end);
  }

  #room(end: number): void {
    if (end <= this.bytes.length) return;
    const next = new Uint8Array(Math.max(end, this.bytes.length * 2, 4096));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

/** One file: its durable bytes, its bytes now, and the operations in between. */
class FileState {
  durable = new Bytes();
  current = new Bytes();
  pending: Op[] = [];

  do(op: Op): void {
    this.current.apply(op);
    this.pending.push(op);
  }

  flush(): void {
    for (const op of this.pending) this.durable.apply(op);
    this.pending = [];
  }

  /** What survives a power loss, which becomes both durable and current. */
  crash(mode: PowerLossMode, random: () => number, sector: number): void {
    const after = this.durable.clone();
    if (mode !== 'drop') {
      for (const op of this.pending) {
        if (op.kind === 'truncate' || mode === 'subset') {
          if (random() < 0.5) after.apply(op);
          continue;
        }
        // Torn: each sector-aligned piece of the write, or not.
        for (let k = 0; k < op.data.length;) {
          const at = op.at + k;
          const n = Math.min(op.data.length - k, sector - (at % sector));
          if (random() < 0.5) after.apply({ kind: 'write', at, data: op.data.subarray(k, k + n) });
          k += n;
        }
      }
    }
    this.durable = after;
    this.current = after.clone();
    this.pending = [];
  }
}

type NameOp = { kind: 'create'; name: string; file: FileState } | { kind: 'remove'; name: string } | { kind: 'rename'; from: string; to: string };

export class PowerLossStore implements Store {
  readonly kind = 'powerloss';
  readonly #flushPersists: boolean;
  readonly #sector: number;
  /** The names now, and as of the last sync(). */
  #names = new Map<string, FileState>();
  #durableNames = new Map<string, FileState>();
  #nameOps: NameOp[] = [];
  /** Bumped by each power loss; handles of an older era refuse every use. */
  #era = 0;
  /** Power losses so far. */
  losses = 0;
  /** Device operations left before a scheduled power loss (0: none scheduled). */
  #countdown = 0;
  #scheduled: { resolve: (mode: PowerLossMode) => void; options: { mode?: PowerLossMode; random?: () => number } } | null = null;

  constructor(options: PowerLossStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw TwinpageError.invalidArgument('options must be an object');
    if (options.flushPersists !== undefined && typeof options.flushPersists !== 'boolean') throw TwinpageError.invalidArgument('flushPersists must be a boolean');
    const sector = options.sectorSize ?? 512;
    if (!Number.isSafeInteger(sector) || sector < 1) throw TwinpageError.invalidArgument(`sectorSize must be a positive integer, got ${String(sector)}`);
    this.#flushPersists = options.flushPersists ?? true;
    this.#sector = sector;
  }

  /**
   * Cuts the power: what each device wrote since its last flush is dropped,
   * kept in part or torn (`mode`, chosen at random when not given), names
   * changed since the last sync() keep a random prefix of their changes, and
   * every handle opened before refuses use. Open the store again to go on.
   * A power loss scheduled by powerLossAfter() happens with this one.
   */
  powerLoss(options: { mode?: PowerLossMode; random?: () => number } = {}): PowerLossMode {
    const random = options.random ?? Math.random;
    const mode = options.mode ?? (['drop', 'subset', 'torn'] as const)[Math.floor(random() * 3)];
    if (mode !== 'drop' && mode !== 'subset' && mode !== 'torn') throw TwinpageError.invalidArgument(`mode must be 'drop', 'subset' or 'torn', got ${String(mode)}`);
    // One scheduled for later happens now, with this one.
    const scheduled = this.#scheduled;
    this.#scheduled = null;
    this.#countdown = 0;
    this.#era++;
    this.losses++;
    const files = new Set([...this.#names.values(), ...this.#durableNames.values()]);
    for (const op of this.#nameOps) if (op.kind === 'create') files.add(op.file);
    for (const f of files) f.crash(mode, random, this.#sector);
    const names = new Map(this.#durableNames);
    const kept = mode === 'drop' ? 0 : Math.floor(random() * (this.#nameOps.length + 1));
    for (const op of this.#nameOps.slice(0, kept)) {
      if (op.kind === 'create') names.set(op.name, op.file);
      else if (op.kind === 'remove') names.delete(op.name);
      else {
        const f = names.get(op.from);
        names.delete(op.from);
        if (f) names.set(op.to, f);
      }
    }
    this.#names = names;
    this.#durableNames = new Map(names);
    this.#nameOps = [];
    scheduled?.resolve(mode);
    return mode;
  }

  /**
   * Cuts the power right before the `ops`-th device operation from now (a
   * read, write, flush, size or truncate on any device of the store), which
   * then fails like every later one: a deterministic moment for a workload
   * that is. Resolves with the mode once it happened.
   */
  powerLossAfter(ops: number, options: { mode?: PowerLossMode; random?: () => number } = {}): Promise<PowerLossMode> {
    if (!Number.isSafeInteger(ops) || ops < 1) throw TwinpageError.invalidArgument(`ops must be a positive integer, got ${String(ops)}`);
    return new Promise((resolve) => {
      this.#countdown = ops;
      this.#scheduled = { resolve, options };
    });
  }

  /** Bytes written since the last flush, over all devices (what a power loss may lose). */
  get pendingBytes(): number {
    let n = 0;
    for (const f of this.#names.values()) for (const op of f.pending) n += op.kind === 'write' ? op.data.length : 0;
    return n;
  }

  async open(name: string): Promise<Device> {
    checkName(name);
    let file = this.#names.get(name);
    if (!file) {
      file = new FileState();
      this.#names.set(name, file);
      this.#nameOps.push({ kind: 'create', name, file });
    }
    return new PowerLossDevice(name, file, this, this.#era);
  }

  async exists(name: string): Promise<boolean> { return this.#names.has(checkName(name)); }

  async remove(name: string): Promise<void> {
    checkName(name);
    if (!this.#names.delete(name)) return;
    this.#nameOps.push({ kind: 'remove', name });
  }

  async rename(from: string, to: string): Promise<void> {
    checkName(from, 'from');
    checkName(to, 'to');
    const f = this.#names.get(from);
    if (!f) throw TwinpageError.notFound(`no device ${from} to rename`);
    if (from === to) return;
    this.#names.delete(from);
    this.#names.set(to, f);
    this.#nameOps.push({ kind: 'rename', from, to });
  }

  async list(): Promise<string[]> { return [...this.#names.keys()].sort(); }

  async sync(): Promise<void> {
    this.#durableNames = new Map(this.#names);
    this.#nameOps = [];
  }

  /** A simulated device of no fixed size: the platform cannot tell. */
  async space(): Promise<null> {
    return null;
  }

  /**
   * @internal Before each device operation: IO_ERROR for a handle of an era
   * before the last power loss, or when this operation is the moment a
   * scheduled power loss happens.
   */
  tick(era: number, name: string): void {
    if (era !== this.#era) throw TwinpageError.ioError(`device ${name}: the power was lost`);
    if (this.#countdown > 0 && --this.#countdown === 0) {
      const s = this.#scheduled!;
      this.#scheduled = null;
      s.resolve(this.powerLoss(s.options));
      throw TwinpageError.ioError(`device ${name}: the power was lost`);
    }
  }

  /** @internal */
  get flushPersists(): boolean { return this.#flushPersists; }
}

class PowerLossDevice implements Device {
  readonly name: string;
  readonly #file: FileState;
  readonly #store: PowerLossStore;
  readonly #era: number;
  #closed = false;

  constructor(name: string, file: FileState, store: PowerLossStore, era: number) {
    this.name = name;
    this.#file = file;
    this.#store = store;
    this.#era = era;
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    this.#check();
    checkAccess(position, into, 'into');
    const c = this.#file.current;
    const n = Math.max(0, Math.min(into.length, c.length - position));
    if (n > 0) into.set(c.bytes.subarray(position, position + n));
    into.fill(0, n);
    return n;
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.#check();
    checkAccess(position, data, 'data');
    this.#file.do({ kind: 'write', at: position, data: data.slice() });
  }

  async flush(): Promise<void> {
    this.#check();
    if (this.#store.flushPersists) this.#file.flush();
  }

  async size(): Promise<number> {
    this.#check();
    return this.#file.current.length;
  }

  async truncate(size: number): Promise<void> {
    this.#check();
    checkPosition(size, 'size');
    this.#file.do({ kind: 'truncate', size });
  }

  async close(): Promise<void> { this.#closed = true; }

  #check(): void {
    if (this.#closed) throw TwinpageError.closed(`device ${this.name} is closed`);
    this.#store.tick(this.#era, this.name);
  }
}
