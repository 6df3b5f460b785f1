// The twinpage command: help, and bad arguments (a clear message, exit 2, no stack trace).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { CLI } from './pair-process.js';

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: '' });

test('serve --help prints the usage and exits 0', () => {
  const r = run('serve', '--help');
  assert.is(r.status, 0);
  assert.match(r.stdout, /usage: twinpage serve/);
});

test('bad arguments: exit 2 with a message, no stack trace', () => {
  for (const args of [[], ['frobnicate'], ['serve'], ['serve', '--dir', 'x', '--role', 'boss', '--listen', 'h:1', '--secret-file', 'f'],
    ['serve', '--dir', 'x', '--role', 'primary', '--listen', 'nohostport', '--secret-file', 'f'],
    ['serve', '--dir', 'x', '--role', 'primary', '--listen', 'h:1', '--peer', 'h:2', '--secret-file', 'f']]) {
    const r = run(...args);
    assert.is(r.status, 2, `twinpage ${args.join(' ')}: exit ${r.status}`);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('a missing secret file is an error with exit 1 and its code', () => {
  const r = run('serve', '--dir', '/tmp/twinpage-cli-test', '--role', 'primary', '--peer', '127.0.0.1:1', '--secret-file', '/nonexistent/secret');
  assert.is(r.status, 1);
  assert.match(r.stderr, /twinpage: /);
});

test.run();
