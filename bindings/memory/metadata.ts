// The node's superblock record: read once at open, rewritten whole, in the
// slot after the current one and then in the other (each flushed), so both
// agree before anything relies on a change and a slot damaged later leaves a
// good one. Writes take turns here (and only here: a superblock write never
// waits for anything else). Layout and checks are the format's
// (storage/format.ts).

import type { Device } from '../storage/device.js';
import { SUPERBLOCK_SIZE, encodeSuperblock, type Hash, type Superblock } from '../storage/format.js';

export class Metadata {
  readonly #device: Device;
  readonly #hash: Hash;
  #sb: Superblock;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(device: Device, sb: Superblock, hash: Hash) {
    this.#device = device;
    this.#sb = sb;
    this.#hash = hash;
  }

  /** The device holding the superblock slots (a mirrored device for a mirrored set). */
  get device(): Device {
    return this.#device;
  }

  get superblock(): Readonly<Superblock> {
    return this.#sb;
  }

  /** This node's id (a GUID). */
  get nodeId(): string {
    return this.#sb.nodeId;
  }

  /** Metadata the layers above keep in the superblock. */
  get meta(): Readonly<Record<string, unknown>> {
    return this.#sb.meta;
  }

  /** Writes the superblock with `change` (or what `change` makes of the current one), durably (both slots). */
  write(change: Partial<Superblock> | ((sb: Superblock) => Partial<Superblock>)): Promise<void> {
    const run = this.#chain.then(() => this.#write(typeof change === 'function' ? change(this.#sb) : change));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #write(change: Partial<Superblock>): Promise<void> {
    let sb: Superblock = { ...this.#sb, ...change };
    for (let i = 0; i < 2; i++) {
      sb = { ...sb, sequence: sb.sequence + 1 };
      await this.#device.write((sb.sequence % 2) * SUPERBLOCK_SIZE, encodeSuperblock(sb, this.#hash));
      await this.#device.flush();
    }
    this.#sb = sb;
  }

  close(): Promise<void> {
    return this.#device.close();
  }
}
