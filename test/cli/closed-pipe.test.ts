import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BERTH_BIN } from '../support/cli.js';

/**
 * `berth … | head`: a command whose reader went away ends quietly (no stack trace) with the
 * status a Unix tool ended by SIGPIPE reports (141). The reader here (`true`) exits before the
 * CLI has started, so its first write meets a closed pipe.
 */
function piped(args: string[], reader: string): Promise<{ status: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const quoted = [process.execPath, BERTH_BIN, ...args].map((a) => `'${a}'`).join(' ');
    const child = spawn('bash', ['-c', `${quoted} | ${reader}; echo "\${PIPESTATUS[0]}" >&3`], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let status = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    (child.stdio[3] as NodeJS.ReadableStream)
      .setEncoding('utf8')
      .on('data', (d: string) => (status += d));
    child.on('error', reject);
    child.on('close', () => resolve({ status: status.trim(), stderr }));
  });
}

describe('a closed pipe', () => {
  it.each([[['--help']], [['env', 'create', '--help']], [['task', 'logs', '--help']]])(
    'berth %j | true ends quietly with 141',
    async (args) => {
      const r = await piped(args, 'true');
      expect(r.stderr).toBe('');
      expect(r.status).toBe('141');
    },
  );
});
