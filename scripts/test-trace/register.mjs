// Preloaded by scripts/test.mjs (node --import) into each test file's process:
// when TWINPAGE_TEST_TRACE names a file, 'uvu' resolves to ./uvu.mjs, which
// appends to that file the name of every test as it starts (the runner reads
// the last one when it has to stop a file that hangs) and fails a test that
// runs for over TEST_TIMEOUT seconds, by name.
import { register } from 'node:module';

if (process.env.TWINPAGE_TEST_TRACE) register('./hooks.mjs', import.meta.url);
