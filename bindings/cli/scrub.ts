// `twinpage scrub`: asks a running node (twinpage serve) to read back every
// page and every piece of its metadata, repair what a good copy can repair,
// and report what it found.

import { TwinpageError } from '../errors.js';
import type { ScrubReport } from '../memory/scrub.js';
import { askNode, bytes, flag, out, parseOptions, required, timeoutMs, type Command } from './args.js';

const synopsis = 'usage: twinpage scrub --dir DIR [--json] [--timeout SECONDS] [--verbose]';

const help = `Asks the node serving DIR (a running 'twinpage serve') to scrub its store, as
ZFS scrubs a pool: every superblock slot, journal record, sum sector and page
of every block is read back on every copy and checked; a bad copy is rewritten
from a good one (a mirrored set of folders), a page bad everywhere is asked of
the partner, and what cannot be repaired is listed (the node then refuses to
serve those pages, and its mirror resyncs them).
Exit status: 0 nothing left damaged, 1 damage left (or no node).
'twinpage inspect --check' does the checking offline, on a stopped node's folder.

  --dir      the data folder of the running node
  --json     print the report as JSON: { pages, bytes, repaired,
             damaged: [{ blockId, page, index, what }], found: [text] }
  --timeout  seconds to wait for the report (default 600)
  --verbose  print stack traces of errors`;

export function scrubText(r: ScrubReport, max = 50): string {
  const lines = [`scrubbed ${r.pages} pages (${bytes(r.bytes)} read): ${r.repaired} repaired, ${r.damaged.length ? `${r.damaged.length} pages still damaged` : 'nothing left damaged'}`];
  for (const f of r.found.slice(0, max)) lines.push(`  ${f}`);
  if (r.found.length > max) lines.push(`  … ${r.found.length - max} more`);
  if (r.damaged.length) {
    lines.push('damaged (not served here until rewritten or resynced):');
    for (const d of r.damaged.slice(0, max)) lines.push(`  block ${d.blockId} page ${d.index} (page ${d.page}): ${d.what === 'checksum' ? 'checksum lost' : 'bytes bad on every copy'}`);
    if (r.damaged.length > max) lines.push(`  … ${r.damaged.length - max} more`);
  }
  return lines.join('\n');
}

export const scrubCommand: Command = {
  name: 'scrub',
  summary: "check a running node's whole store, repair from good copies (exit 1 on damage)",
  synopsis,
  help,
  async run(argv) {
    const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--timeout': 'value' });
    const dir = required(o, '--dir');
    const reply = await askNode(dir, { cmd: 'scrub' }, timeoutMs(o, 600));
    const report = reply.scrub as ScrubReport | undefined;
    if (!report || !Array.isArray(report.damaged)) throw TwinpageError.badFrame(`the node serving ${dir} gave no scrub report`);
    out(flag(o, '--json') ? JSON.stringify(report, null, 2) : scrubText(report));
    return report.damaged.length ? 1 : 0;
  },
};
