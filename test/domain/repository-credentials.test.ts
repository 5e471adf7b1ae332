import { describe, expect, it } from 'vitest';
import {
  parseEnvironmentFile,
  parseEnvironmentSpec,
} from '../../src/domain/environment/environment-file.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { repositoryCredentials } from '../../src/lifecycle/repository-credentials.js';

/** `repository.credentials` in an environment: validation, and what the orchestrator makes of it. */

function refusal(text: string): BerthError {
  try {
    parseEnvironmentFile(text, 'env.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    return error as BerthError;
  }
  throw new Error('expected a refusal');
}

type Issue = { path: string; message: string; line?: number; column?: number };

const file = (credentials: string, secrets = 'secrets: [GIT_TOKEN]\n') =>
  `name: private\nrepository:\n  url: https://git.example.test/acme/app.git\n  credentials:\n${credentials}${secrets}`;

describe('repository credentials in an environment', () => {
  it('accepts a declared secret, with or without a user name', () => {
    const spec = parseEnvironmentFile(file('    secret: GIT_TOKEN\n    username: bot\n'));
    expect(spec.repository).toEqual({
      url: 'https://git.example.test/acme/app.git',
      defaultBranch: 'main',
      credentials: { secret: 'GIT_TOKEN', username: 'bot' },
    });
    const plain = parseEnvironmentFile(file('    secret: GIT_TOKEN\n'));
    expect(plain.repository.credentials).toEqual({ secret: 'GIT_TOKEN' });
  });

  it('refuses a secret the environment does not declare, naming the field, line and column', () => {
    const error = refusal(file('    secret: GIT_TOKN\n'));
    const [issue] = error.details.issues as Issue[];
    expect(issue?.path).toBe('repository.credentials.secret');
    expect(issue?.message).toContain('"GIT_TOKN" is not one of this environment\'s secrets');
    expect(issue?.line).toBe(5);
    expect(issue?.column).toBeGreaterThan(1);
    expect(error.message).toMatch(/repository\.credentials\.secret: .* \(line 5, column \d+\)/);
  });

  it('takes knownHosts for an ssh repository only, and hands it to the checkout', () => {
    const ssh = parseEnvironmentFile(
      'name: p\nrepository:\n  url: git@git.example.test:acme/app.git\n  credentials:\n    secret: KEY\n    knownHosts: "git.example.test ssh-ed25519 AAAAC3Nz"\nsecrets: [KEY]\n',
    );
    expect(repositoryCredentials(ssh, { KEY: 'private key' })).toEqual({
      username: 'x-access-token',
      password: 'private key',
      knownHosts: 'git.example.test ssh-ed25519 AAAAC3Nz',
    });
    expect(
      refusal(file('    secret: GIT_TOKEN\n    knownHosts: "h ssh-ed25519 A"\n')).message,
    ).toContain('knownHosts applies to ssh repositories only');
  });

  it('refuses unknown fields, a bad user name, and credentials given twice', () => {
    expect(refusal(file('    secret: GIT_TOKEN\n    password: x\n')).message).toContain(
      'unknown field "password"',
    );
    expect(refusal(file('    secret: GIT_TOKEN\n    username: "a:b"\n')).message).toContain(
      'repository.credentials.username',
    );
    const twice = refusal(
      'name: p\nrepository:\n  url: https://bot:tok@git.example.test/a.git\n  credentials: { secret: T }\nsecrets: [T]\n',
    );
    // Credentials in the URL are refused on their own (issue 21): the URL field says where they go.
    expect(twice.message).toContain('repository.url: the URL carries credentials');
    expect(twice.message).toContain('repository.credentials');
    expect(twice.message).not.toContain('bot:tok');
  });

  it('resolves to the secret value with the user name (default x-access-token)', () => {
    const spec = parseEnvironmentSpec({
      name: 'p',
      repository: { url: 'https://git.example.test/a.git', credentials: { secret: 'T' } },
      secrets: ['T'],
    });
    expect(repositoryCredentials(spec, { T: 'tok-1' })).toEqual({
      username: 'x-access-token',
      password: 'tok-1',
    });
    expect(() => repositoryCredentials(spec, {})).toThrow(
      'the secret "T" named by repository.credentials has no value',
    );
    // Another repository than the environment's (berth run --repo) never gets them.
    expect(
      repositoryCredentials(spec, { T: 'tok-1' }, 'https://elsewhere.test/x.git'),
    ).toBeUndefined();
    expect(repositoryCredentials(spec, { T: 'tok-1' }, 'https://git.example.test/a.git')).toEqual({
      username: 'x-access-token',
      password: 'tok-1',
    });
    const none = parseEnvironmentSpec({ name: 'q', repository: 'https://git.example.test/a.git' });
    expect(repositoryCredentials(none, { T: 'tok-1' })).toBeUndefined();
  });
});
