import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthCommand, inputsFromEnv } from '../../../src/integrations/github/action-step.js';

/**
 * The Action's berth command line: berth run on the runner (the workspace as the repository)
 * without a server, berth exec --wait with one; the token only in BERTH_TOKEN; a fork's pull
 * request event picks no branch; the prompt is one argument after `--`.
 */

let workspace: string;
beforeAll(() => {
  workspace = mkdtempSync(join(tmpdir(), 'berth-action-cmd-'));
  mkdirSync(join(workspace, '.berth'));
  writeFileSync(join(workspace, '.berth', 'environment.yml'), 'name: web\nrepository: .\n');
});
afterAll(() => {
  rmSync(workspace, { recursive: true, force: true });
});

const inputs = (env: Record<string, string>) =>
  inputsFromEnv({ INPUT_ENV_FILE: '.berth/environment.yml', INPUT_ATTEMPTS: '1', ...env });

describe('the Action step: berth command line', () => {
  it('without a server: berth run with the workspace as the repository', () => {
    const command = berthCommand(inputs({ INPUT_PROMPT: '--help me', INPUT_MODEL: 'm1' }), {
      GITHUB_WORKSPACE: workspace,
    });
    expect(command.args).toEqual([
      'run',
      '--json',
      '--env-file',
      join(workspace, '.berth', 'environment.yml'),
      '--repo',
      workspace,
      '--attempts',
      '1',
      '--model',
      'm1',
      '--',
      '--help me',
    ]);
    expect(command.env).toEqual({});
  });

  it('with a server: berth exec --wait on the environment the file names, the token in BERTH_TOKEN', () => {
    const event = join(workspace, 'event.json');
    const pull = (head: string) =>
      writeFileSync(
        event,
        JSON.stringify({
          pull_request: {
            head: { ref: 'feature', repo: { full_name: head } },
            base: { ref: 'main', repo: { full_name: 'acme/web' } },
          },
        }),
      );
    pull('acme/web');
    const env = { GITHUB_WORKSPACE: workspace, GITHUB_EVENT_PATH: event };
    const given = inputs({
      INPUT_PROMPT: 'fix it',
      INPUT_SERVER_URL: 'https://berth.example',
      INPUT_TOKEN: 'tok-secret',
      INPUT_ATTEMPTS: '3',
    });
    const same = berthCommand(given, env);
    expect(same.args).toEqual([
      'exec',
      '--wait',
      '--json',
      '--env',
      'web',
      '--url',
      'https://berth.example',
      '--attempts',
      '3',
      '--branch',
      'feature',
      '--',
      'fix it',
    ]);
    expect(same.env).toEqual({ BERTH_TOKEN: 'tok-secret' });
    expect(same.args.join(' ')).not.toContain('tok-secret');
    // A fork's branch is not in the server's repository: no --branch.
    pull('contrib/web');
    expect(berthCommand(given, env).args).not.toContain('--branch');
  });

  it('refuses what it cannot run', () => {
    const env = { GITHUB_WORKSPACE: workspace };
    expect(() => berthCommand(inputs({}), env)).toThrow('give the prompt input, or prompt-file');
    expect(() => berthCommand(inputs({ INPUT_PROMPT: 'x', INPUT_ATTEMPTS: '0' }), env)).toThrow(
      'attempts must be',
    );
    expect(() =>
      berthCommand(inputs({ INPUT_PROMPT: 'x', INPUT_SERVER_URL: 'https://b.example' }), env),
    ).toThrow('server-url needs token');
  });
});
