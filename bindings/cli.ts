#!/usr/bin/env node
// The `twinpage` command: a dispatcher to one module per command in cli/.
//
//   twinpage --help              the commands
//   twinpage <command> --help    a command's options
//
// Exit status: 0 done; 1 an error at run time (printed as `twinpage: CODE:
// message`, with its stack only under --verbose), or a check that found
// something wrong (verify's differences, scrub's or inspect --check's
// damage); 2 a bad command line.

import { UsageError, type Command } from './cli/args.js';

/** `twinpage demo`: written in cli/demo.ts, which parses its own options and prints its own help. */
const demoCommand: Command = {
  name: 'demo',
  summary: 'start a pair with a witness, cut its link, kill the primary, watch it fail over by itself, resync; narrated',
  synopsis: 'usage: twinpage demo [options]   (twinpage demo --help for them)',
  help: '',
  async run(argv) {
    const demo = await import('./cli/demo.js');
    return demo.runDemo(argv);
  },
};

/**
 * The commands, in the order `--help` lists them. Each module is loaded only
 * when its command runs (or the list is shown): a node restarting with
 * `serve` loads no other command's code.
 */
const COMMANDS: Array<{ name: string; load: () => Promise<Command> }> = [
  { name: 'demo', load: async () => demoCommand },
  { name: 'serve', load: async () => (await import('./cli/serve.js')).serveCommand },
  { name: 'status', load: async () => (await import('./cli/status.js')).statusCommand },
  { name: 'verify', load: async () => (await import('./cli/verify.js')).verifyCommand },
  { name: 'promote', load: async () => (await import('./cli/control.js')).promoteCommand },
  { name: 'demote', load: async () => (await import('./cli/control.js')).demoteCommand },
  { name: 'resync', load: async () => (await import('./cli/control.js')).resyncCommand },
  { name: 'discard', load: async () => (await import('./cli/control.js')).discardCommand },
  { name: 'scrub', load: async () => (await import('./cli/scrub.js')).scrubCommand },
  { name: 'inspect', load: async () => (await import('./cli/inspect.js')).inspectCommand },
  { name: 'bench', load: async () => (await import('./cli/bench.js')).benchCommand },
  { name: 'witness', load: async () => (await import('./cli/witness.js')).witnessCommand },
];

async function usage(): Promise<string> {
  const commands = await Promise.all(COMMANDS.map((c) => c.load()));
  return `usage: twinpage <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(9)}${c.summary}`).join('\n')}

'twinpage <command> --help' shows a command's options. Every command takes
--verbose (stack traces of errors). Exit status: 0 done, 1 an error (or
differences found by verify, damage found by scrub or inspect --check), 2 a
bad command line.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    const about = name === 'help' && rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (about) return main([about.name, '--help']);
    console.log(await usage());
    return 0;
  }
  if (name === '--version') {
    const { createRequire } = await import('node:module');
    console.log((createRequire(import.meta.url)('../../package.json') as { version: string }).version);
    return 0;
  }
  if (!name) { console.error(await usage()); return 2; }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    console.error(`twinpage: unknown command ${JSON.stringify(name)}\n\n${await usage()}`);
    return 2;
  }
  const command = await entry.load();
  const verbose = rest.includes('--verbose');
  // The demo parses its own options (and prints its own help).
  if (command !== demoCommand && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(`${command.synopsis}\n\n${command.help}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`twinpage ${command.name}: ${err.message}\n${command.synopsis}\n(twinpage ${command.name} --help for the options)`);
      return 2;
    }
    const code = (err as { code?: unknown }).code;
    console.error(`twinpage: ${typeof code === 'string' ? code : 'ERROR'}: ${(err as Error)?.message ?? String(err)}`);
    if (verbose) {
      console.error((err as Error)?.stack ?? '');
      const cause = (err as Error)?.cause;
      if (cause) console.error('caused by:', cause);
    }
    return 1;
  }
}

// A reader that went away (`twinpage inspect … | head`): stop quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const status = await main(process.argv.slice(2));
// Exit outright (standard input, the command stream of serve, would keep the
// process alive), once what was printed is out.
process.stdout.write('', () => process.stderr.write('', () => process.exit(status)));
