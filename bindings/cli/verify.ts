// `twinpage verify`: asks a running node (twinpage serve) to compare every
// page checksum of every block with its partner's, and reports what differs.

import { TwinpageError } from '../errors.js';
import type { VerifyReport } from '../mirror/pair.js';
import { askNode, flag, out, parseOptions, required, timeoutMs, type Command } from './args.js';

const synopsis = 'usage: twinpage verify --dir DIR [--repair] [--json] [--timeout SECONDS] [--verbose]';

const help = `Asks the node serving DIR (a running 'twinpage serve') to compare the checksum
of every page of every block with its partner's, and prints what differs.
Exit status: 0 no difference (or, with --repair, all repaired), 1 differences
found (or no node, no partner).

  --dir      the data folder of the running node
  --repair   on the primary: resync what differs from it, and wait until the
             partner holds it (the differences found are still listed)
  --json     print the report as JSON: { blocks, pages, differences: [{ blockId, page }] }
             (page -1: the partner lacks the block)
  --timeout  seconds to wait for the report (default 120)
  --verbose  print stack traces of errors`;

export function verifyText(r: VerifyReport, max = 50): string {
  const lines = [`compared ${r.blocks} blocks, ${r.pages} pages with the partner: ${r.differences.length ? `${r.differences.length} differences` : 'no differences'}`];
  const byBlock = new Map<string, number[]>();
  for (const d of r.differences) byBlock.set(d.blockId, [...(byBlock.get(d.blockId) ?? []), d.page]);
  let shown = 0;
  for (const [id, pages] of byBlock) {
    if (shown++ >= max) { lines.push(`  … ${byBlock.size - max} more blocks`); break; }
    if (pages.includes(-1)) lines.push(`  block ${id}: missing on the partner`);
    else lines.push(`  block ${id}: pages ${pages.slice(0, 20).join(', ')}${pages.length > 20 ? ` … (${pages.length} pages)` : ''}`);
  }
  return lines.join('\n');
}

export const verifyCommand: Command = {
  name: 'verify',
  summary: "compare a running node's pages with its partner's (exit 1 on differences)",
  synopsis,
  help,
  async run(argv) {
    const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--timeout': 'value', '--repair': 'flag' });
    const dir = required(o, '--dir');
    const wait = timeoutMs(o, 120);
    // A node without its partner would compare nothing (and, with no blocks, find nothing).
    const repair = flag(o, '--repair');
    const { status } = await askNode(dir, { cmd: 'status' }, Math.min(wait, 10000)) as { status?: { sense?: { connected?: boolean; role?: string } } };
    if (!status?.sense?.connected) throw TwinpageError.closed(`the node serving ${dir} is not connected to its partner: nothing to compare with`);
    if (repair && status.sense.role !== 'primary') throw TwinpageError.notPrimary(`verify --repair resyncs from the primary, and the node serving ${dir} is a secondary: run it on the primary's folder`);
    const reply = await askNode(dir, { cmd: 'verify', repair }, wait);
    const report = reply.verify as VerifyReport | undefined;
    if (!report || !Array.isArray(report.differences)) throw TwinpageError.badFrame(`the node serving ${dir} gave no verify report`);
    if (flag(o, '--json')) out(JSON.stringify(repair ? { ...report, repaired: report.differences.length } : report, null, 2));
    else out(verifyText(report) + (repair && report.differences.length ? `\nrepaired: the partner was resynced from this primary` : ''));
    return report.differences.length && !repair ? 1 : 0;
  },
};
