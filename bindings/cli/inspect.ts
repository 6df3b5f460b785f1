// `twinpage inspect`: what a data folder holds, read offline and read-only:
// the superblock, the mirror's generations, the blocks (the journal's block
// table), and what may differ from the partner (lagging pages, write-intent
// extents). With --check, every piece of it is checked as opening the store
// would check it, and more: both superblock slots, every journal record,
// every sum sector and every page of every block against its checksum; each
// damage found is listed and the exit status is 1. Nothing is written: files
// are opened 'r', and the journal is read the way recovery reads it, without
// applying anything.

import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Core } from '../core/index.js';
import { TwinpageError } from '../errors.js';
import type { Device } from '../storage/device.js';
import { mapFsError } from '../storage/file.js';
import {
  FORMAT_VERSION, RecordType, SECTOR, SUMS_PER_SECTOR, SUPERBLOCK_SIZE, decodeSumEntry, decodeSumSector, decodeSumV1, decodeSuperblock,
  fillSector, saltOf, sumSectorValid, type BlockRecord, type JournalRecord, type SumEntry, type Superblock,
} from '../storage/format.js';
import { replayJournal, replayJournalV1 } from '../storage/journal.js';
import { checkTable, readTable, tableName, tableRefOf } from '../storage/table.js';
import { guidOf } from '../memory/blocks.js';
import { inspectReplica } from '../memory/replica.js';
import { bytes, controlPath, flag, out, parseOptions, required, runsText, table, type Command } from './args.js';

const synopsis = 'usage: twinpage inspect --dir DIR [--check] [--json] [--verbose]';

const help = `Shows what the data folder DIR holds, without a running node and without
changing a byte of it: the superblock (format version, page size, node id,
created, sequence), the mirror's generations, the blocks (id, base page, pages,
length, policy) and what may differ from the partner (lagging page runs and
hot write-intent extents). Exits 1 when DIR is not a readable twinpage store.

  --dir      the data folder
  --check    also check everything against its checksums: both superblock
             slots, every journal record, every sum sector, every page of
             every block; list each damage found and exit 1 if there is any
             (a running node checks itself with 'twinpage scrub')
  --json     print everything as JSON
  --verbose  print stack traces of errors`;

/** A file opened read-only, as a device: writes are refused. */
class ReadOnlyFile implements Device {
  readonly name: string;
  readonly #fh: FileHandle;
  readonly #path: string;

  private constructor(name: string, path: string, fh: FileHandle) {
    this.name = name;
    this.#path = path;
    this.#fh = fh;
  }

  static async open(name: string, path: string): Promise<ReadOnlyFile> {
    try {
      return new ReadOnlyFile(name, path, await open(path, 'r'));
    } catch (err) {
      throw mapFsError(err, `open ${path}`);
    }
  }

  async read(position: number, into: Uint8Array): Promise<number> {
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await this.#fh.read(into, done, into.length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw mapFsError(err, `read ${this.#path}`);
    }
    into.fill(0, done);
    return done;
  }

  async size(): Promise<number> {
    return (await this.#fh.stat()).size;
  }

  write(): Promise<void> { return Promise.reject(TwinpageError.ioError(`${this.#path} is open read-only`)); }
  flush(): Promise<void> { return Promise.resolve(); }
  truncate(): Promise<void> { return this.write(); }
  async close(): Promise<void> { await this.#fh.close().catch(() => {}); }
}

export interface InspectReport {
  dir: string;
  files: Array<{ name: string; bytes: number }>;
  /** A node answers on the folder's control socket: the files may be behind it. */
  live: boolean;
  superblock: {
    version: number; pageSize: number; nodeId: string; created: string; createdMs: number;
    sequence: number; walEpoch: number;
    slots: Array<{ slot: number; valid: boolean; sequence: number | null }>;
    meta: Record<string, unknown>;
  };
  generations: {
    generation: string; history: string[]; clean: boolean | null;
    bitmapGeneration?: string | null; epoch?: number; partner?: string | null; inconsistent?: boolean; discardLocal?: true;
  } | null;
  /**
   * The active journal; `tail` says what follows its last valid record:
   * nothing (fill, or zeros written ahead in version 1), or a torn record (a
   * write a crash kept from the disk, dropped at the next open).
   */
  journal: { name: string; bytes: number; records: number; pageRecords: number; end: number; tail: 'none' | 'zeros' | 'torn'; lastLsn: number } | null;
  /** The block table file (format version 3), when the store has one: the journal holds the changes since. */
  table: { name: string; bytes: number; blocks: number } | null;
  blocks: Array<{ id: string; base: number; pages: number; length: number; generation: number; policy: Record<string, unknown> }>;
  outOfSync: {
    /** Runs [firstPage, count] of pages that may differ from the partner; null when the store keeps no record. */
    lag: Array<[number, number]> | null;
    lagPages: number;
    /** Blocks allocated or freed that the partner may not know of. */
    blocks: string[];
    /** Hot write-intent extents, and pages per extent. */
    intents: number[];
    extentPages: number | null;
  };
  problems: string[];
  /** With --check: what was checked, and every damage found (an empty list: none). */
  check: {
    sumSectors: number; badSumSectors: number; pages: number; badPages: number; lostChecksums: number;
    damage: string[];
  } | null;
}

export async function inspectFolder(dir: string, options: { check?: boolean } = {}): Promise<InspectReport> {
  let entries;
  try {
    if (!(await stat(dir)).isDirectory()) throw TwinpageError.invalidArgument(`${dir} is not a folder`);
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw mapFsError(err, `read the folder ${dir}`);
  }
  const files: InspectReport['files'] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isFile()) continue;
    files.push({ name: e.name, bytes: (await stat(join(dir, e.name))).size });
  }
  if (!files.some((f) => f.name === 'super')) throw TwinpageError.notFound(`${dir} holds no twinpage store (no 'super' file)`);

  const core = await Core.create({ pageSize: 4096, frames: 1, ioBytes: (1 << 20) + (64 << 10) });
  const hash = (b: Uint8Array) => core.checksum(b);
  const problems: string[] = [];

  const superFile = await ReadOnlyFile.open('super', join(dir, 'super'));
  const raw = new Uint8Array(2 * SUPERBLOCK_SIZE);
  try { await superFile.read(0, raw); } finally { await superFile.close(); }
  const decoded = [0, 1].map((i) => decodeSuperblock(raw.subarray(i * SUPERBLOCK_SIZE, (i + 1) * SUPERBLOCK_SIZE), hash));
  const slots = decoded.map((s, slot) => ({ slot, valid: s !== null, sequence: s?.sequence ?? null }));
  const valid = decoded.filter((s): s is Superblock => s !== null).sort((a, b) => b.sequence - a.sequence);
  if (valid.length === 0) throw TwinpageError.corrupt(`${dir}: both superblock slots fail their checksums (damaged, or not a twinpage store)`);
  for (const s of slots) if (!s.valid) problems.push(`superblock slot ${s.slot} is blank, torn or corrupt (the other one is in charge)`);
  const sb = valid[0];

  let journal: InspectReport['journal'] = null;
  const blocks = new Map<string, BlockRecord & { generation: number }>();
  /** Pages whose latest image is in the journal (the page file need not hold it yet). */
  const journaled = new Set<number>();
  const damage: string[] = [];
  const v1 = sb.version === 1;
  let table: InspectReport['table'] = null;
  if (sb.version > FORMAT_VERSION || sb.version < 1) {
    problems.push(`format version ${sb.version}: this twinpage reads versions 1 to ${FORMAT_VERSION}; the journal was not read`);
  } else if (sb.tableEpoch > 0) {
    // The block table file first: the journal holds the changes since it.
    const name = tableName(sb.tableEpoch);
    if (!files.some((f) => f.name === name)) {
      problems.push(`the superblock names the block table ${name}, which is missing`);
      damage.push(`block table ${name} is missing`);
    } else {
      const device = await ReadOnlyFile.open(name, join(dir, name));
      try {
        let policies: unknown[] = [];
        await readTable(device, tableRefOf(sb), saltOf(sb.nodeId), hash, {
          policies: (records) => { policies = records; },
          entries: (v, at, n) => {
            for (let k = 0; k < n; k++, at += 48) {
              const id = guidOf(v.getUint32(at, true), v.getUint32(at + 4, true), v.getUint32(at + 8, true), v.getUint32(at + 12, true));
              blocks.set(id, {
                id, base: v.getUint32(at + 16, true), pages: v.getUint32(at + 20, true),
                length: v.getUint32(at + 24, true) + v.getUint32(at + 28, true) * 0x100000000,
                generation: v.getUint32(at + 32, true) + v.getUint32(at + 36, true) * 0x100000000,
                policy: (policies[v.getUint32(at + 40, true)] ?? {}) as Record<string, unknown>,
              });
            }
          },
        });
        table = { name, bytes: sb.tableBytes, blocks: sb.tableBlocks };
        if (options.check) {
          const c = await checkTable(device, tableRefOf(sb), saltOf(sb.nodeId), hash, false);
          damage.push(...c.bad);
        }
      } catch (err) {
        problems.push(`block table ${name}: ${(err as Error).message}`);
        damage.push(`block table ${name}: ${(err as Error).message}`);
      } finally {
        await device.close();
      }
    }
  }
  if (sb.version > FORMAT_VERSION || sb.version < 1) {
    // Not read.
  } else if (sb.walEpoch > 0) {
    const name = `wal.${sb.walEpoch}`;
    const file = files.find((f) => f.name === name);
    if (!file) {
      problems.push(`the superblock names journal ${name}, which is missing`);
      damage.push(`journal ${name} is missing`);
    } else {
      const device = await ReadOnlyFile.open(name, join(dir, name));
      let pageRecords = 0;
      const apply = (rec: JournalRecord) => {
        if (rec.type === RecordType.Alloc) blocks.set(rec.block.id, { ...rec.block, generation: rec.lsn });
        else if (rec.type === RecordType.Free) blocks.delete(rec.id);
        else if (rec.type === RecordType.Pages) {
          pageRecords++;
          for (const p of rec.pages) journaled.add(p.page);
        }
      };
      try {
        if (v1) {
          const r = await replayJournalV1(device, sb.walEpoch, sb.pageSize, hash, apply);
          let tail: 'none' | 'zeros' | 'torn' = 'none';
          if (r.tornTail) {
            const next = new Uint8Array(Math.min(1 << 16, file.bytes - r.end));
            await device.read(r.end, next);
            tail = next.every((x) => x === 0) ? 'zeros' : 'torn';
          }
          journal = { name, bytes: file.bytes, records: r.records, pageRecords, end: r.end, tail, lastLsn: r.lastLsn };
          if (r.records === 0) problems.push(`journal ${name} has no valid epoch record`);
        } else {
          const r = await replayJournal(device, {
            epoch: sb.walEpoch, pageSize: sb.pageSize, hash, fill: fillSector(saltOf(sb.nodeId), sb.walEpoch), durableEnd: sb.walEnd,
          }, apply);
          journal = { name, bytes: file.bytes, records: r.records, pageRecords, end: r.end, tail: r.tail, lastLsn: r.lastLsn };
          if (r.problem) {
            problems.push(r.problem);
            damage.push(r.problem);
          }
        }
      } catch (err) {
        problems.push(`journal ${name}: ${(err as Error).message}`);
        damage.push(`journal ${name}: ${(err as Error).message}`);
      } finally {
        await device.close();
      }
    }
  }

  let check: InspectReport['check'] = null;
  if (options.check) {
    for (const s of slots) if (!s.valid) damage.push(`superblock slot ${s.slot} is blank, torn or corrupt (the other slot is in charge; the next open rewrites it)`);
    check = await checkPages(dir, files, sb, [...blocks.values()], journaled, hash, damage);
    check.damage = damage;
  }

  // The replica record (its own files; an older version kept it in the superblock's meta).
  const present = new Set(files.map((f) => f.name));
  const readOnly = {
    exists: async (name: string) => present.has(name),
    open: async (name: string) => ReadOnlyFile.open(name, join(dir, name)),
  };
  const r = await inspectReplica(readOnly, hash, sb.meta.mirror);
  if (r) problems.push(...r.problems);
  const generations = r && r.current
    ? { generation: r.current, history: r.history, clean: r.clean, bitmapGeneration: r.bitmap, epoch: r.epoch, partner: r.partner, inconsistent: r.inconsistent,
      // Only when set: `twinpage discard` recorded it.
      ...(r.discardLocal ? { discardLocal: true as const } : {}) }
    : null;
  const outOfSync = {
    lag: r ? r.runs : null,
    lagPages: (r?.runs ?? []).reduce((n, [, c]) => n + c, 0),
    blocks: r?.blocks ?? [],
    intents: r?.intents ?? [],
    extentPages: r?.extentPages ?? null,
  };

  return {
    dir, files, live: await answers(controlPath(dir)),
    superblock: {
      version: sb.version, pageSize: sb.pageSize, nodeId: sb.nodeId,
      created: new Date(sb.created).toISOString(), createdMs: sb.created,
      sequence: sb.sequence, walEpoch: sb.walEpoch, slots, meta: sb.meta,
    },
    generations,
    journal,
    table,
    blocks: [...blocks.values()].sort((a, b) => a.base - b.base)
      .map((b) => ({ id: b.id, base: b.base, pages: b.pages, length: b.length, generation: b.generation, policy: b.policy })),
    outOfSync,
    problems,
    check,
  };
}

/**
 * --check: every sum sector and every page of every live block, against the
 * superblock's record of what the last checkpoint made durable. Pages whose
 * latest image is in the journal are not read from the page file (the next
 * open writes them there). Adds what it finds to `damage`.
 */
async function checkPages(
  dir: string, files: InspectReport['files'], sb: Superblock, live: Array<BlockRecord & { generation: number }>,
  journaled: Set<number>, hash: (b: Uint8Array) => bigint, damage: string[],
): Promise<NonNullable<InspectReport['check']>> {
  const ps = sb.pageSize;
  const v1 = sb.version === 1;
  const size = (name: string) => files.find((f) => f.name === name)?.bytes ?? -1;
  const out = { sumSectors: 0, badSumSectors: 0, pages: 0, badPages: 0, lostChecksums: 0, damage };
  if (!v1) {
    if (size('sums') < sb.sumsBytes) damage.push(`sums is ${Math.max(0, size('sums'))} bytes; the last checkpoint made ${sb.sumsBytes} durable: it was cut or removed`);
    if (size('pages') < sb.pagesBytes) damage.push(`pages is ${Math.max(0, size('pages'))} bytes; the last checkpoint made ${sb.pagesBytes} durable: it was cut or removed`);
  }
  if (size('sums') < 0 || size('pages') < 0) {
    if (live.length) damage.push(`${size('sums') < 0 ? 'sums' : 'pages'} is missing`);
    return out;
  }
  const salt = saltOf(sb.nodeId);
  const sums = await ReadOnlyFile.open('sums', join(dir, 'sums'));
  const pages = await ReadOnlyFile.open('pages', join(dir, 'pages'));
  try {
    const page = new Uint8Array(ps);
    const readPage = async (p: number) => { await pages.read(p * ps, page); return hash(page); };
    // Entries of one sector, as opening would take them (null: the sector fails its check).
    const sector = new Uint8Array(SECTOR);
    const seen = new Map<number, Array<SumEntry | null>>();
    const sectorEntries = async (index: number): Promise<Array<SumEntry | null>> => {
      let entries = seen.get(index);
      if (!entries) seen.set(index, entries = await readSector(index));
      return entries;
    };
    const readSector = async (index: number): Promise<Array<SumEntry | null>> => {
      const at = index * SECTOR;
      const present = await sums.read(at, sector);
      if (present === 0 && at >= sb.sumsBytes) return Array.from({ length: SUMS_PER_SECTOR }, () => ({ checksum: 0n, lsn: 0 }));
      if (sumSectorValid(sector, index, salt.tag, hash)) return decodeSumSector(sector, index, salt.tag);
      out.badSumSectors++;
      if (at >= sb.sumsBytes) {
        // Past the checkpoint: a crash can leave it unwritten; the journal rewrites what is there.
        return Array.from({ length: SUMS_PER_SECTOR }, () => null);
      }
      damage.push(`sum sector ${index} (checksums of pages ${index * SUMS_PER_SECTOR}-${index * SUMS_PER_SECTOR + SUMS_PER_SECTOR - 1}) fails its check`);
      // Salvage as opening would: an entry whose page bytes match it stands.
      const entries: Array<SumEntry | null> = [];
      for (let i = 0; i < SUMS_PER_SECTOR; i++) {
        const e = decodeSumEntry(sector, 16 + i * 16, index * SUMS_PER_SECTOR + i, salt.tag);
        entries.push(e.lost === undefined && await readPage(index * SUMS_PER_SECTOR + i) === e.checksum ? e : null);
      }
      return entries;
    };
    const sumsEnd = Math.max(size('sums'), sb.sumsBytes);
    if (!v1) for (let i = 0; i * SECTOR < sumsEnd; i++) { out.sumSectors++; await sectorEntries(i); if (seen.size > 4096) seen.delete(i - 4096); }
    for (const b of live.sort((x, y) => x.base - y.base)) {
      for (let p = b.base; p < b.base + b.pages; p++) {
        out.pages++;
        if (journaled.has(p)) continue;
        let e: SumEntry | null;
        if (v1) {
          const raw = new Uint8Array(16);
          await sums.read(p * 16, raw);
          e = decodeSumV1(raw);
        } else {
          e = (await sectorEntries(Math.floor(p / SUMS_PER_SECTOR)))[p % SUMS_PER_SECTOR];
        }
        if (e === null || (e.lost !== undefined && b.generation <= e.lost)) {
          if (e === null && Math.floor(p / SUMS_PER_SECTOR) * SECTOR >= sb.sumsBytes) continue;
          out.lostChecksums++;
          damage.push(`page ${p - b.base} of block ${b.id} (page ${p}): its checksum entry is lost, its bytes cannot be checked`);
          continue;
        }
        if (e.lost !== undefined || e.lsn === 0 || e.lsn < b.generation) continue; // never written: reads as zeros
        if (await readPage(p) !== e.checksum) {
          out.badPages++;
          damage.push(`page ${p - b.base} of block ${b.id} (page ${p}) fails its checksum`);
        }
      }
    }
  } finally {
    await sums.close();
    await pages.close();
  }
  return out;
}

/** True when something listens on the control socket (a node serves the folder). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (live: boolean) => { clearTimeout(timer); s.destroy(); resolve(live); };
    const timer = setTimeout(() => done(false), 500);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export function inspectText(r: InspectReport): string {
  const s = r.superblock;
  const lines: string[] = [];
  lines.push(`data folder ${r.dir}`);
  lines.push(`  files: ${r.files.map((f) => `${f.name} ${bytes(f.bytes)}`).join(', ')}`);
  if (r.live) lines.push('  a node is serving this folder now: the files may be behind what it holds');
  lines.push('', 'superblock');
  lines.push(table([
    ['format version', String(s.version)],
    ['page size', `${s.pageSize} bytes`],
    ['node id', s.nodeId],
    ['created', s.created],
    ['sequence', `${s.sequence} (${s.slots.map((x) => `slot ${x.slot}: ${x.valid ? `sequence ${x.sequence}` : 'invalid'}`).join(', ')})`],
    ['journal', s.walEpoch ? `wal.${s.walEpoch}` : 'none yet'],
    ['block table', r.table ? `${r.table.name}: ${r.table.blocks} blocks, ${bytes(r.table.bytes)}` : 'none (the journal holds every block)'],
  ]));
  lines.push('', 'generations');
  if (!r.generations) lines.push('  none (this node was never part of a pair)');
  else {
    lines.push(table([
      ['generation', r.generations.generation || 'none yet (a secondary that never met its primary)'],
      ['history', r.generations.history.length ? r.generations.history.join(', ') : 'none'],
      ['closed cleanly', r.generations.clean === null ? 'unknown' : r.generations.clean ? 'yes' : 'no (the node stopped without closing)'],
      ...(r.generations.discardLocal ? [['discards', 'its changes, at its next split brain (twinpage discard)'] as [string, string]] : []),
    ]));
  }
  const j = r.journal;
  const tail = { none: '', zeros: ', then zeros written ahead', torn: ', then a torn record (dropped at the next open)' };
  lines.push('', `blocks: ${r.blocks.length}${j ? ` (journal ${j.name}: ${plural(j.records, 'record')} up to byte ${j.end}, ${j.pageRecords} of page images${tail[j.tail]})` : ''}`);
  if (r.blocks.length) {
    const rows = [['id', 'base', 'pages', 'length', 'policy'], ...r.blocks.map((b) => [
      b.id, String(b.base), String(b.pages), String(b.length), policyText(b.policy),
    ])];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    for (const row of rows) lines.push('  ' + row.map((c, i) => (i === 4 ? c : i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  }
  const o = r.outOfSync;
  lines.push('', 'out of sync with the partner');
  const extent = o.extentPages ?? 128;
  lines.push(table([
    ['lagging pages', o.lag === null ? (r.generations ? 'unknown (no record: a resync compares every checksum)' : 'none') : o.lagPages ? `${o.lagPages} in ${o.lag.length} runs: ${runsText(o.lag)}` : 'none'],
    ['lagging blocks', o.blocks.length ? o.blocks.join(', ') : 'none'],
    ['write intents', o.intents.length
      ? `${o.intents.length} hot extents of ${extent} pages: ${o.intents.slice(0, 20).map((e) => `${e} (pages ${e * extent}-${(e + 1) * extent - 1})`).join(', ')}${o.intents.length > 20 ? ' …' : ''}`
      : 'none'],
  ]));
  if (r.problems.length) {
    lines.push('', 'problems');
    for (const p of r.problems) lines.push(`  ${p}`);
  }
  const c = r.check;
  if (c) {
    lines.push('', 'check');
    lines.push(table([
      ['sum sectors', `${c.sumSectors} checked${c.badSumSectors ? `, ${c.badSumSectors} failing their check` : ''}`],
      ['pages', `${c.pages} of live blocks checked${c.badPages ? `, ${c.badPages} failing their checksum` : ''}${c.lostChecksums ? `, ${c.lostChecksums} whose checksum is lost` : ''}`],
    ]));
    if (c.damage.length === 0) lines.push('  no damage found');
    else {
      lines.push(`  ${plural(c.damage.length, 'damage')} found:`);
      for (const d of c.damage.slice(0, 200)) lines.push(`    ${d}`);
      if (c.damage.length > 200) lines.push(`    … ${c.damage.length - 200} more (--json lists them all)`);
    }
  }
  return lines.join('\n');
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function policyText(p: Record<string, unknown>): string {
  const details = [p.durability, p.writeMode].filter((x) => typeof x === 'string').join(', ');
  return `${String(p.name ?? '?')}${details ? ` (${details})` : ''}`;
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show what a data folder holds (offline); --check finds every damage',
  synopsis,
  help,
  async run(argv) {
    const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--check': 'flag' });
    const report = await inspectFolder(required(o, '--dir'), { check: flag(o, '--check') });
    out(flag(o, '--json') ? JSON.stringify(report, null, 2) : inspectText(report));
    if (report.check && report.check.damage.length > 0) return 1;
    return report.problems.some((p) => !p.startsWith('superblock slot')) ? 1 : 0;
  },
};
