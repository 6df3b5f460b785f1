// Runs npm and other commands from the tests the way a user's shell would.
import { execFile } from 'node:child_process';

export const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
export const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** The environment without what `npm test` sets for its scripts (it would steer an npm run here). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/** What a command printed and its exit status (-1 when it could not run or was killed). */
export interface ShResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` in `cwd` with {@link cleanEnv}; never rejects. */
export function sh(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<ShResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve({ status: err ? (typeof code === 'number' ? code : -1) : 0, stdout, stderr });
    });
  });
}

/** The lines of npm's output that are warnings (`npm warn ...`, any case). */
export function npmWarnings(output: string): string[] {
  return output.split('\n').filter((line) => /^npm warn/i.test(line.trim()));
}
