// A small reader of tar archives (POSIX ustar, with pax and GNU long names),
// enough to unpack the archives the test browser ships in. Regular files,
// folders and symbolic links; anything else is refused by name.
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';

const BLOCK = 512;

/** One entry of an archive. */
export interface TarEntry {
  /** Path inside the archive, without a leading './'. */
  path: string;
  /** '0' file, '5' folder, '2' symbolic link (other types are refused). */
  type: string;
  mode: number;
  /** The file's bytes (a view into the archive), empty for other types. */
  data: Uint8Array;
  /** A symbolic link's target. */
  linkName: string;
}

function text(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

/** A numeric field: octal text, or big-endian base-256 when its first byte has the high bit set. */
function number(block: Uint8Array, start: number, length: number): number {
  if (block[start] & 0x80) {
    let n = block[start] & 0x7f;
    for (let i = start + 1; i < start + length; i++) n = n * 256 + block[i];
    return n;
  }
  const s = text(block, start, length).trim();
  return s ? parseInt(s, 8) : 0;
}

function checksumOk(block: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum === number(block, 148, 8);
}

/** The records of a pax extended header: "<length> <key>=<value>\n" each. */
function paxRecords(data: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  const s = new TextDecoder().decode(data);
  let at = 0;
  while (at < s.length) {
    const space = s.indexOf(' ', at);
    const length = parseInt(s.slice(at, space), 10);
    if (space < 0 || !(length > 0)) break;
    const record = s.slice(space + 1, at + length - 1); // without the trailing newline
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/** The entries of an uncompressed tar archive, in order. Throws on a damaged header. */
export function* tarEntries(archive: Uint8Array): Generator<TarEntry> {
  let at = 0;
  let longName: string | null = null;
  let longLink: string | null = null;
  while (at + BLOCK <= archive.length) {
    const header = archive.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return; // the end-of-archive blocks
    if (!checksumOk(header)) throw new Error(`tar: bad header checksum at byte ${at}`);
    const size = number(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const data = archive.subarray(at + BLOCK, at + BLOCK + size);
    if (data.length < size) throw new Error(`tar: archive ends inside an entry at byte ${at}`);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      const pax = paxRecords(data);
      longName = pax.get('path') ?? longName;
      longLink = pax.get('linkpath') ?? longLink;
      continue;
    }
    if (type === 'L' || type === 'K') {
      const value = text(data, 0, data.length);
      if (type === 'L') longName = value;
      else longLink = value;
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing here needs it

    const prefix = text(header, 257, 6).startsWith('ustar') ? text(header, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    const linkName = longLink ?? text(header, 157, 100);
    longName = longLink = null;
    yield { path: name.replace(/^\.\//, ''), type: type === '7' ? '0' : type, mode: number(header, 100, 8), data, linkName };
  }
}

/** Writes the entries of `archive` under `dir`; an entry reaching outside it is refused. */
export async function extractTar(archive: Uint8Array, dir: string): Promise<number> {
  let count = 0;
  for (const entry of tarEntries(archive)) {
    const path = normalize(entry.path);
    if (!path || path === '.' || isAbsolute(path) || path.split(sep).includes('..')) {
      throw new Error(`tar: refusing the entry ${JSON.stringify(entry.path)} (outside the target folder)`);
    }
    const target = join(dir, path);
    if (entry.type === '5') {
      await mkdir(target, { recursive: true });
    } else if (entry.type === '0') {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, entry.data, { mode: entry.mode & 0o777 || 0o644 });
    } else if (entry.type === '2') {
      await mkdir(dirname(target), { recursive: true });
      await symlink(entry.linkName, target);
    } else {
      throw new Error(`tar: entry ${JSON.stringify(entry.path)} has type '${entry.type}', which this reader does not unpack`);
    }
    count++;
  }
  return count;
}
