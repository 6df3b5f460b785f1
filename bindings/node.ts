// twinpage for Node: everything in index.ts, plus what needs Node's
// modules (data folders, TCP). Browsers and bundlers get index.ts.
export * from './index.js';
import { useFolderStores } from './storage/resolve.js';
import { openFileStore } from './storage/file.js';
useFolderStores(openFileStore);
export { FileDevice, FileStore, openFileStore, mapFsError } from './storage/file.js';
export { listenTcp, connectTcp } from './mirror/transports/tcp.js';
export type { ListenTcpOptions, ConnectTcpOptions, TcpListener } from './mirror/transports/tcp.js';
export { WitnessArbiter } from './mirror/witness.js';
export type { WitnessArbiterOptions } from './mirror/witness.js';
export { EtcdArbiter } from './mirror/etcd.js';
export type { EtcdArbiterOptions } from './mirror/etcd.js';
export type { Arbiter, PairRecord, Acquired } from './mirror/arbiter.js';
