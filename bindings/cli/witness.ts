// `twinpage witness`: the third vote of a pair (mirror/witness-server.ts). It
// holds no pages, only the pair's record (epoch, primary, outdated node,
// generation) in --dir and the lease in memory, and answers the pair's nodes
// (`WitnessArbiter`) over the same authenticated, sealed TCP link the nodes
// use between them. Events come as JSON lines on standard output:
//
//   {"event":"listening","host":"0.0.0.0","port":7100,"ttlMs":10000,"record":{…},…}
//   {"event":"connected","peer":"node-a"}
//   {"event":"record","op":"acquire","by":"node-a","record":{"epoch":1,"primary":"node-a",…}}
//   {"event":"disconnected","peer":"node-a","reason":null}
//   {"event":"stopped"}

import { TwinpageError } from '../errors.js';
import {
  DEFAULT_WITNESS_TTL_MS, MAX_WITNESS_TTL_MS, MIN_WITNESS_TTL_MS, startWitness, type WitnessEvent,
} from '../mirror/witness-server.js';
import { hostPort, int, parseOptions, required, type Command } from './args.js';
import { readSecretFile } from './secret-file.js';

const synopsis = 'usage: twinpage witness --dir DIR --listen HOST:PORT --secret-file FILE [--ttl-ms MS] [--verbose]';

const help = `Runs a witness: the third vote that lets a pair fail over on its own. It
holds no pages, only the pair's record (epoch, primary, which node is outdated,
generation), written durably to DIR before it answers, and the lease, which it
grants to one node at a time. Both nodes of the pair reach it with the same
secret they share between them. Events are printed as JSON lines (listening,
connected, disconnected, record, auth-failed, bad-frame, bad-request,
stopped). SIGTERM or SIGINT stops it.

  --dir          the witness's folder (created when missing). A folder that
                 holds files but no record, or a damaged record, is refused:
                 a witness never starts over on its own
  --listen       address to listen on, HOST:PORT (port 0: any free port, printed)
  --secret-file  the pair's secret, as given to 'twinpage serve' (chmod 600)
  --ttl-ms       the lease's length in ms, ${MIN_WITNESS_TTL_MS} to ${MAX_WITNESS_TTL_MS} (default ${DEFAULT_WITNESS_TTL_MS}).
                 A node that loses its partner writes on while it holds the
                 lease; its partner takes over only once the lease has ended,
                 so this is also how long a failover waits at most. After a
                 restart the witness grants no lease for one lease length
  --verbose      print stack traces of errors`;

interface WitnessArgs { dir: string; listen: [string, number]; secretFile: string; ttlMs: number }

function parse(argv: string[]): WitnessArgs {
  const o = parseOptions(argv, { '--dir': 'value', '--listen': 'value', '--secret-file': 'value', '--ttl-ms': 'value' });
  const dir = required(o, '--dir');
  required(o, '--listen');
  const secretFile = required(o, '--secret-file');
  return {
    dir, secretFile, listen: hostPort(o, '--listen')!,
    ttlMs: int(o, '--ttl-ms', MIN_WITNESS_TTL_MS, MAX_WITNESS_TTL_MS) ?? DEFAULT_WITNESS_TTL_MS,
  };
}

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function witness(args: WitnessArgs): Promise<number> {
  const secret = await readSecretFile(args.secretFile);
  const w = await startWitness({
    dir: args.dir, host: args.listen[0], port: args.listen[1], secret, ttlMs: args.ttlMs,
    onEvent: (e: WitnessEvent) => say(e),
  });
  let stop!: (err?: Error) => void;
  const stopped = new Promise<Error | undefined>((r) => { stop = r; });
  const onSignal = () => stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  void w.failed.then((err) => stop(err));
  let failure: Error | undefined;
  try {
    failure = await stopped;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await w.close();
  }
  if (failure) throw TwinpageError.from(failure);
  say({ event: 'stopped' });
  return 0;
}

export const witnessCommand: Command = {
  name: 'witness',
  summary: 'hold a pair\'s record and lease: the third vote for automatic failover',
  synopsis,
  help,
  run: (argv) => witness(parse(argv)),
};
