import { execFileSync, spawn } from 'node:child_process';
import { BerthError } from '../errors/berth-error.js';

/**
 * An interactive login shell in an attempt's sandbox, for `berth env test ENV -it`. It uses the
 * Docker CLI of this machine, so it works where the CLI runs beside the server's engine; the
 * sandbox is found by its attempt label, never by a name a user typed.
 */
export async function openShell(attemptId: string, sandboxId?: string): Promise<number> {
  let id: string;
  try {
    const filter =
      sandboxId !== undefined && /^[0-9a-f]{12,64}$/.test(sandboxId)
        ? `id=${sandboxId}`
        : `label=berth.attempt=${attemptId}`;
    id =
      execFileSync(
        'docker',
        ['ps', '-q', '--filter', filter, '--filter', 'label=berth.managed=true'],
        {
          encoding: 'utf8',
        },
      )
        .trim()
        .split('\n')[0] ?? '';
  } catch (error) {
    throw new BerthError(
      'runtime_unavailable',
      'an interactive shell needs the Docker CLI on the machine the server runs on',
      {},
      { cause: error },
    );
  }
  if (id === '')
    throw new BerthError(
      'sandbox_gone',
      `the sandbox of attempt ${attemptId} is not running on this machine`,
    );
  const child = spawn('docker', ['exec', '-it', '-w', '/workspace', id, 'bash', '-l'], {
    stdio: 'inherit',
  });
  return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
}
