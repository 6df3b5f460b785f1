// The operator's commands on a node: `twinpage promote`, `demote`, `resync`
// and `discard`, sent to a running node (twinpage serve) through its control
// socket, as `status` and `verify` are. `discard` also works on a stopped
// node: it opens the data folder itself, as a secondary with no partner,
// records that this node gives up its changes at the next split brain, and
// closes it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TwinpageError } from '../errors.js';
import { openMemory, type MirrorState } from '../index.js';
import { askNode, flag, out, parseOptions, required, table, timeoutMs, type Command, type OptionSpec } from './args.js';

const COMMON_OPTIONS = `  --dir      the data folder of the node
  --json     print the node's state afterwards as JSON (its sense())
  --timeout  seconds to wait for the node's answer
  --verbose  print stack traces of errors`;

/** The node's state after a command, as lines. */
function senseText(what: string, s: MirrorState): string {
  return `${what}\n${table([
    ['role', s.role],
    ['health', s.health],
    ['connected', s.connected ? 'yes' : 'no'],
    ['generation', s.generation || 'none yet'],
    ['lagging', `${s.lagPages} pages`],
  ])}`;
}

/** A command that asks the node serving --dir for one thing and prints its state after it. */
function controlCommand(spec: {
  name: string; summary: string; synopsis: string; help: string; options?: OptionSpec; timeout: number;
  ask: (o: Map<string, string | true>) => Record<string, unknown>;
  done: string;
  before?: (dir: string, wait: number) => Promise<void>;
}): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    synopsis: spec.synopsis,
    help: spec.help,
    async run(argv) {
      const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--timeout': 'value', ...spec.options });
      const dir = required(o, '--dir');
      const wait = timeoutMs(o, spec.timeout);
      await spec.before?.(dir, wait);
      const reply = await askNode(dir, spec.ask(o), wait);
      const sense = reply.sense as MirrorState | undefined;
      if (!sense || typeof sense !== 'object') throw TwinpageError.badFrame(`the node serving ${dir} gave no state`);
      out(flag(o, '--json') ? JSON.stringify(sense, null, 2) : senseText(spec.done, sense));
      return 0;
    },
  };
}

export const promoteCommand = controlCommand({
  name: 'promote',
  summary: 'make a running secondary the primary (a switchover, or a failover)',
  synopsis: 'usage: twinpage promote --dir DIR [--force] [--json] [--timeout SECONDS] [--verbose]',
  help: `Makes the node serving DIR (a running 'twinpage serve') the primary. With its
partner alive and already demoted, a switchover: they stay connected and in
sync. Otherwise a failover: the old primary is taken for failed, this node
serves writes degraded under a new generation, and the old primary, when it
comes back, rejoins as secondary (or is refused as a split brain if it kept
writing). A node still being resynced refuses (INCONSISTENT): it does not
hold all of its data yet. With an arbiter, a switchover too takes its lease
(the record then names the new primary): while the arbiter refuses it (out
of reach, restarted, the old primary's lease still running) the promotion
is refused (NO_QUORUM); try again.

  --force    promote all the same: a node being resynced (it serves stale
             pages), or without the arbiter's lease (for a partner known dead)
${COMMON_OPTIONS} (default 30)`,
  options: { '--force': 'flag' },
  timeout: 30,
  ask: (o) => ({ cmd: 'promote', force: flag(o, '--force') }),
  done: 'promoted:',
});

export const demoteCommand = controlCommand({
  name: 'demote',
  summary: 'make a running primary a secondary (its partner can then be promoted)',
  synopsis: 'usage: twinpage demote --dir DIR [--json] [--timeout SECONDS] [--verbose]',
  help: `Makes the node serving DIR (a running 'twinpage serve') a secondary: its
callers' changes are refused from now on, those under way finish and reach
the partner, and the partner can then be promoted ('twinpage promote') with
no write lost and no split brain.

${COMMON_OPTIONS} (default 60)`,
  timeout: 60,
  ask: () => ({ cmd: 'demote' }),
  done: 'demoted:',
});

export const resyncCommand = controlCommand({
  name: 'resync',
  summary: 'have a running primary send its partner what it lacks, now',
  synopsis: 'usage: twinpage resync --dir DIR [--json] [--timeout SECONDS] [--verbose]',
  help: `Has the node serving DIR, a primary connected to its partner, send the
partner the pages and blocks it lacks, and waits until the partner holds
them (a resync also starts by itself at every reconnection).

${COMMON_OPTIONS} (default 600)`,
  timeout: 600,
  async before(dir, wait) {
    const { status } = await askNode(dir, { cmd: 'status' }, Math.min(wait, 10000)) as { status?: { sense?: MirrorState } };
    const s = status?.sense;
    if (s?.role !== 'primary') throw TwinpageError.notPrimary(`the node serving ${dir} is a secondary: a resync is sent by the primary; run this on the primary's folder`);
    if (!s.connected) throw TwinpageError.closed(`the node serving ${dir} is not connected to its partner: nothing to resync to (it resyncs by itself when the partner is back)`);
  },
  ask: () => ({ cmd: 'resync' }),
  done: 'resynced:',
});

const discardSynopsis = 'usage: twinpage discard --dir DIR [--json] [--timeout SECONDS] [--verbose]';

export const discardCommand: Command = {
  name: 'discard',
  summary: "give up this node's changes at the next split brain (running or stopped)",
  synopsis: discardSynopsis,
  help: `Marks the node on DIR as the one whose changes are discarded when it meets its
partner after a split brain: it becomes (or stays) secondary, and the
partner resyncs it, overwriting what it changed since they parted. Kept
durably until used. A running node ('twinpage serve' on DIR) is told through
its control socket (it demotes itself and reconnects); a stopped one is
opened here, marked, and closed (start it as secondary afterwards).

${COMMON_OPTIONS} (default 30)`,
  async run(argv) {
    const o = parseOptions(argv, { '--dir': 'value', '--json': 'flag', '--timeout': 'value' });
    const dir = required(o, '--dir');
    const wait = timeoutMs(o, 30);
    let sense: MirrorState;
    let how: string;
    try {
      const reply = await askNode(dir, { cmd: 'discard' }, wait);
      sense = reply.sense as MirrorState;
      how = 'the running node discards its changes at the next split brain (it is secondary now):';
    } catch (err) {
      if ((err as TwinpageError).code !== 'NOT_FOUND') throw err;
      sense = await discardOffline(dir);
      how = 'discard recorded: the node discards its changes when it next meets its partner (start it as secondary):';
    }
    if (!sense || typeof sense !== 'object') throw TwinpageError.badFrame(`the node serving ${dir} gave no state`);
    out(flag(o, '--json') ? JSON.stringify(sense, null, 2) : senseText(how, sense));
    return 0;
  },
};

/** Opens the stopped node's folder as a secondary without a partner, records the discard, closes it. */
async function discardOffline(dir: string): Promise<MirrorState> {
  if (!existsSync(join(dir, 'super'))) throw TwinpageError.notFound(`no data folder at ${dir} (no superblock there): nothing to discard`);
  const memory = await openMemory({ store: dir, mirror: { role: 'secondary' }, flushIntervalMs: 0 });
  try {
    await memory.mirror.discardLocalChanges();
    return memory.mirror.sense();
  } finally {
    await memory.close();
  }
}
