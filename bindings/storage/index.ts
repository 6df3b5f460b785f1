// Storage that works everywhere (browsers included). Node's file devices are
// in ./file.js, imported on their own so browsers never load node:fs.
export type { Device, OpenOptions, Store, StorageSpace } from './device.js';
export { MemoryDevice, MemoryStore, type MemoryDeviceOptions, type MemoryStoreOptions } from './memory.js';
export { MirroredDevice, MirroredStore, type CopyHealth } from './mirrored.js';
export {
  OpfsDevice, OpfsStore, openOpfsStore,
  type OpfsSyncAccessHandle, type OpfsFileHandle, type OpfsDirectoryHandle,
} from './opfs.js';
export { PowerLossStore, type PowerLossMode, type PowerLossStoreOptions } from './powerloss.js';
