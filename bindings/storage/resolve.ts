// Store resolution: what `openMemory({ store })` accepts, turned into one
// Store: a data folder (Node), a Store, or a list of them kept as a mirrored
// set of copies on this node (US 7,107,411 claim 4).

import { TwinpageError } from '../errors.js';
import type { Store } from './device.js';
import { MirroredStore } from './mirrored.js';

/** A data folder, a Store, or a list of them. */
export type StoreSpec = string | Store | Array<string | Store>;

type FolderStores = (dir: string) => Promise<Store>;
let folderStores: FolderStores | undefined;

/** Node's entry (node.ts) hands over its file stores, so that no bundle has to find storage/file.js. */
export function useFolderStores(open: FolderStores): void {
  folderStores = open;
}

/**
 * index.js imported directly in Node: load the file stores. The specifier is
 * a variable so that bundlers for browsers do not follow it into node:fs.
 */
async function loadFolderStores(): Promise<FolderStores> {
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  if (!node) throw TwinpageError.invalidArgument('store: a folder path needs Node; in a browser give a Store (openOpfsStore, MemoryStore)');
  const file = './file.js';
  const { openFileStore } = await import(/* webpackIgnore: true */ /* @vite-ignore */ file) as typeof import('./file.js');
  return openFileStore;
}

/** The Store that `spec` names. */
export async function resolveStore(spec: StoreSpec): Promise<Store> {
  if (Array.isArray(spec)) {
    if (spec.length === 0) throw TwinpageError.invalidArgument('store: an empty list');
    if (spec.length === 1) return resolveStore(spec[0]);
    return new MirroredStore(await Promise.all(spec.map((s) => resolveStore(s))));
  }
  if (typeof spec === 'string') {
    if (spec === '') throw TwinpageError.invalidArgument('store: an empty folder name');
    return (folderStores ??= await loadFolderStores())(spec);
  }
  if (spec && typeof spec === 'object' && typeof (spec as Store).open === 'function') return spec as Store;
  throw TwinpageError.invalidArgument('store must be a folder path, a Store, or a list of them');
}
