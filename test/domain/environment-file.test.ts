import { describe, expect, it } from 'vitest';
import {
  parseEnvironmentFile,
  parseEnvironmentSpec,
} from '../../src/domain/environment/environment-file.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { SCRIPT_MAX_BYTES } from '../../src/domain/environment/environment-spec.js';

function refusal(text: string): BerthError {
  try {
    parseEnvironmentFile(text, 'env.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    return error as BerthError;
  }
  throw new Error('expected a refusal');
}

function issues(
  error: BerthError,
): Array<{ path: string; message: string; line?: number; column?: number }> {
  return error.details.issues as Array<{ path: string; message: string; line?: number }>;
}

const base = 'name: payments\nrepository: https://git.example.test/acme/payments.git\n';

describe('environment files', () => {
  it('fills in defaults and normalises shorthands', () => {
    const spec = parseEnvironmentFile(`${base}setup: npm ci\n`);
    expect(spec.repository).toEqual({
      url: 'https://git.example.test/acme/payments.git',
      defaultBranch: 'main',
    });
    expect(spec.setup).toEqual({ script: 'npm ci', strict: true, timeoutMs: 1_800_000 });
    expect(spec.image).toBe('universal');
    expect(spec.internet.access).toBe('off');
  });

  it('reads the full form', () => {
    const spec = parseEnvironmentFile(`${base}image: minimal
versions: { node: 22 }
setup: { script: "make deps", strict: false }
env: { NODE_ENV: test }
secrets: [NPM_TOKEN]
internet: { access: allowlist, presets: [common-dependencies], domains: ["*.Example.test"], methods: [get, HEAD] }
services: [{ name: db, command: "postgres", ready: { port: 5432 } }]
resources: { cpus: 1, memoryMb: 2048 }
members: [alice]
verify: npm test
`);
    expect(spec.versions).toEqual({ node: '22' });
    expect(spec.setup?.strict).toBe(false);
    expect(spec.internet.domains).toEqual(['*.Example.test']);
    expect(spec.internet.methods).toEqual(['GET', 'HEAD']);
    expect(spec.resources).toMatchObject({ cpus: 1, memoryMb: 2048, pids: 1024 });
  });

  it('refuses malformed YAML with line and column', () => {
    const error = refusal('name: a\nrepository: [unclosed\n');
    expect(error.code).toBe('invalid_environment');
    expect(issues(error)[0]?.line).toBeGreaterThan(0);
    expect(error.message).toMatch(/line \d+, column \d+/);
  });

  it('refuses unknown and misspelled fields, naming them', () => {
    const error = refusal(`${base}setpu: npm ci\ninternet: { acess: on }\n`);
    const paths = issues(error).map((i) => i.path);
    expect(paths).toContain('setpu');
    expect(paths).toContain('internet.acess');
    expect(error.message).toContain('unknown field "setpu"');
    // At the key, not at its value: line 3, column 1 (the value starts at column 8).
    expect(issues(error).find((i) => i.path === 'setpu')).toMatchObject({ line: 3, column: 1 });
    expect(issues(error).find((i) => i.path === 'internet.acess')).toMatchObject({
      line: 4,
      column: 13,
    });
    expect(error.message).toContain('setpu: unknown field "setpu" (line 3, column 1)');
  });

  it('points at the first of several unknown fields in block style', () => {
    const error = refusal(`${base}internet:\n  access: on\n  acess: on\n  metods: [GET]\n`);
    expect(issues(error)[0]).toMatchObject({
      path: 'internet',
      message: 'unknown fields "acess", "metods"',
      line: 5,
      column: 3,
    });
  });

  it.each(['*.', 'exa mple.com', '*evil.com', '192.168.1.1', '[::1]'])(
    'refuses the domain pattern %j',
    (pattern) => {
      const error = refusal(
        `${base}internet: { access: allowlist, domains: [${JSON.stringify(pattern)}] }\n`,
      );
      expect(issues(error)[0]?.path).toBe('internet.domains[0]');
    },
  );

  it('refuses an HTTP method that does not exist', () => {
    const error = refusal(`${base}internet: { access: allowlist, methods: [GET, FETCH] }\n`);
    expect(issues(error)[0]?.path).toBe('internet.methods[1]');
  });

  it('refuses a script over the size limit', () => {
    const error = refusal(`${base}setup: ${JSON.stringify('x'.repeat(SCRIPT_MAX_BYTES + 1))}\n`);
    expect(issues(error)[0]?.path).toBe('setup');
    expect(error.message).toContain(`${SCRIPT_MAX_BYTES} bytes`);
  });

  it.each([
    ['', /empty/],
    ['--upload-pack=touch /tmp/pwned', /git option/],
    ['-oProxyCommand=x', /git option/],
    ['ext::sh -c touch% /tmp/pwned', /whitespace|remote helpers/],
    ['relative/path', /absolute local path/],
    ['ftp://example.test/r.git', /not supported/],
  ])('refuses the repository %j', (url, reason) => {
    const error = refusal(`name: a\nrepository: ${JSON.stringify(url)}\n`);
    expect(issues(error)[0]?.path).toBe('repository');
    expect(error.message).toMatch(reason);
  });

  it('refuses reserved and duplicate names', () => {
    expect(issues(refusal(`${base}env: { HTTPS_PROXY: x }\n`))[0]?.path).toBe('env.HTTPS_PROXY');
    expect(issues(refusal(`${base}secrets: [A, A]\n`))[0]?.message).toMatch(/duplicate/);
    expect(
      issues(refusal(`${base}services: [{name: a, command: x}, {name: a, command: y}]\n`))[0]
        ?.message,
    ).toMatch(/duplicate/);
  });

  it('validates JSON values the same way', () => {
    expect(() =>
      parseEnvironmentSpec({ name: 'a', repository: 'https://x.test/r', extra: 1 }),
    ).toThrow(/unknown field "extra"/);
  });
});
