// Storage that works everywhere; Node's file devices are in ./file.js.
export type { Device, Store } from './device.js';
export { MemoryDevice, MemoryStore, type MemoryStoreOptions } from './memory.js';
export { MirroredDevice, MirroredStore, type CopyHealth } from './mirrored.js';
export { OpfsDevice, OpfsStore, openOpfsStore } from './opfs.js';
