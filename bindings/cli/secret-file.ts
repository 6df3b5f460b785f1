// The shared secret of a pair, read from a file the way ssh reads a private
// key: a file that anyone but its owner may read is refused, with the chmod
// that fixes it; the secret itself is never printed.

import { open } from 'node:fs/promises';
import { TwinpageError } from '../errors.js';
import { mapFsError } from '../storage/file.js';
import { UsageError } from './args.js';

/** Mode bits that let the group or others read, write or run a file. */
export const LOOSE_MODE_BITS = 0o077;

/**
 * Reads the secret in `path` (trimmed). Refuses, before reading a byte, a file
 * the group or others have any access to ('INVALID_ARGUMENT', naming the
 * `chmod 600` to run); an empty one is a usage error. The mode is checked on
 * the open file, so it is the file read that was checked.
 */
export async function readSecretFile(path: string): Promise<string> {
  let text: string;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw mapFsError(err, `read the secret file ${path}`);
  }
  try {
    const { mode } = await fh.stat();
    if (process.platform !== 'win32' && (mode & LOOSE_MODE_BITS) !== 0) {
      const shown = (mode & 0o777).toString(8).padStart(4, '0');
      throw TwinpageError.invalidArgument(
        `the secret file ${path} is open to others (mode ${shown}): anyone who reads it can join or read the pair; ` +
        `make it private with: chmod 600 ${shellQuote(path)}`);
    }
    text = (await fh.readFile()).toString('utf8').trim();
  } catch (err) {
    if (err instanceof TwinpageError) throw err;
    throw mapFsError(err, `read the secret file ${path}`);
  } finally {
    await fh.close().catch(() => {});
  }
  if (!text) throw new UsageError(`the secret file ${path} is empty`);
  return text;
}

/** `path` as one shell word. */
function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
