#!/usr/bin/env node
// `npm start`: the demo on its own (the same as `twinpage demo`), so that it
// does not depend on the command dispatcher. `npm start -- --help` for options.
import { runDemo } from './demo.js';

let code: number;
try {
  code = await runDemo(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`twinpage demo: ${(err as Error).stack ?? String(err)}\n`);
  code = 1;
}
process.exit(code);
