// A Unix socket only its owner can connect to, from the moment it exists.
//
// bind(2) creates the socket's file with mode 0777 & ~umask; a chmod after
// listening would leave a moment in which anyone may connect. So the bind
// runs under umask 0177 (mode 0600), set just before `server.listen(path)`
// and restored as soon as that call returns: Node binds a path synchronously
// inside `listen`, so nothing else of this process runs in between. (File
// system calls already running on the thread pool in that moment would create
// their files with mode 0600 too: stricter, never looser.) A chmod to 0600
// follows all the same, for platforms that ignore the umask on sockets.
// Windows named pipes have no mode; there this is a plain listen.

import { chmod } from 'node:fs/promises';
import type { Server } from 'node:net';

/** The umask a control socket is bound under: owner read and write only. */
export const OWNER_ONLY_UMASK = 0o177;

/** Listens on the socket `path`, created owner-only (0600); resolves once listening. */
export function listenOwnerOnly(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const unix = process.platform !== 'win32';
    const previous = unix ? process.umask(OWNER_ONLY_UMASK) : 0;
    try {
      server.listen(path, () => {
        server.off('error', reject);
        if (!unix) { resolve(); return; }
        chmod(path, 0o600).catch(() => {}).finally(() => resolve());
      });
    } finally {
      if (unix) process.umask(previous);
    }
  });
}
