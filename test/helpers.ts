// Small assertions shared by the tests.
import * as assert from 'uvu/assert';
import { MemoryStore, TwinpageError, type Device, type Store } from '../bindings/index.js';

/** Runs `fn`, returning its value or the code of the TwinpageError it threw (any other error is rethrown). */
export function outcome<T>(fn: () => T): T | { code: string } {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof TwinpageError)) throw err;
    return { code: err.code };
  }
}

/** Asserts that `fn` throws a TwinpageError with `code`. */
export function throwsCode(fn: () => unknown, code: string): void {
  assert.equal(outcome(fn), { code }, `expected ${code}`);
}

/** A copy of a store's bytes as they are now: what a crash (SIGKILL) would leave. */
export async function snapshot(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const name of await store.list()) {
    const from = await store.open(name);
    const bytes = new Uint8Array(await from.size());
    await from.read(0, bytes);
    await (await copy.open(name)).write(0, bytes);
  }
  return copy;
}

/** `store`, with each device it opens passed through `device` (to watch, slow or fail its operations). */
export function storeWith(store: Store, device: (d: Device) => Device): Store {
  return {
    kind: store.kind,
    open: async (name) => device(await store.open(name)),
    exists: (name) => store.exists(name),
    remove: (name) => store.remove(name),
    rename: (from, to) => store.rename(from, to),
    list: () => store.list(),
    sync: () => store.sync(),
    space: () => store.space(),
  };
}
