import * as yaml from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';
import {
  composeEnvironmentYaml,
  ENVIRONMENT_YAML_LIMITS,
} from '../../src/domain/environment/environment-yaml.js';
import { BerthError } from '../../src/errors/berth-error.js';
import { EnvironmentYamlWorker } from '../../src/server/environment-yaml-worker.js';
import {
  composeEnvironmentBody,
  valueLimitIssue,
} from '../../src/domain/environment/environment-json.js';

/**
 * The limits of environment files on the in-place parse (`berth env validate`, `berth run`) and
 * on the server's worker: the same refusals, each a BerthError('invalid_environment') with the
 * reason and the field path where there is one.
 */

const HEAD = 'name: limits\nrepository: https://git.example/acme/app.git\n';

function refusal(text: string): { message: string; issue: Record<string, unknown> } {
  try {
    parseEnvironmentFile(text, 'env.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    const berth = error as BerthError;
    expect(berth.code).toBe('invalid_environment');
    const issues = berth.details.issues as Array<Record<string, unknown>>;
    return { message: berth.message, issue: issues[0] ?? {} };
  }
  throw new Error('expected a refusal');
}

function keys(count: number, extra = ''): string {
  const lines = [HEAD, 'env:\n'];
  for (let i = 0; i < count; i++) lines.push(`  K${i}: v\n`);
  return lines.join('') + extra;
}

describe('environment file limits (in place)', () => {
  it('finds a duplicate among thousands of keys, at its line', () => {
    const text = keys(1_900, '  K17: again\n');
    const { message, issue } = refusal(text);
    expect(issue).toEqual({
      path: 'env.K17',
      message: 'duplicate key "K17"',
      line: 1_904,
      column: 3,
    });
    expect(message).toBe('env.yaml: env.K17: duplicate key "K17" (line 1904, column 3)');
  });

  it('finds duplicates in nested and flow mappings, as the keys the value will have', () => {
    expect(refusal(`${HEAD}resources: {cpus: 1, cpus: 2}\n`).issue.path).toBe('resources.cpus');
    expect(refusal(`${HEAD}env:\n  0x1: a\n  "1": b\n`).issue.message).toBe('duplicate key "1"');
  });

  it('refuses a key that is a collection', () => {
    expect(refusal(`${HEAD}env:\n  [a, b]: c\n`).issue.message).toMatch(/a key must be a plain/);
  });

  it('refuses more keys and items than the limit, where the limit is passed', () => {
    const { issue } = refusal(keys(40_000));
    expect(issue.message).toBe('more than 2000 keys and sequence items in the file');
    expect(issue.line).toBe(ENVIRONMENT_YAML_LIMITS.maxEntries + 1);
    const items = `${HEAD}internet:\n  domains:\n${'    - a.test\n'.repeat(40_000)}`;
    expect(refusal(items).issue.message).toMatch(/more than 2000 keys/);
  });

  it('answers an alias bomb with a refusal, not a ReferenceError', () => {
    let text = `${HEAD}a0: &a0 [x, x, x, x, x, x, x, x, x]\n`;
    for (let i = 1; i < 9; i++)
      text += `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    expect(refusal(text).issue.message).toMatch(/^aliases expand too much/);
  });

  it('refuses a file larger than the limit before parsing it', () => {
    const text = `${HEAD}setup: "${'x'.repeat(1024 * 1024)}"\n`;
    expect(refusal(text).issue.message).toMatch(/bytes; at most 524288 are accepted$/);
  });

  it('refuses deep nesting, flow or block, naming the depth', () => {
    expect(refusal(`${HEAD}env: ${'{a: '.repeat(40)}1${'}'.repeat(40)}\n`).issue.message).toBe(
      'nested more than 32 levels deep',
    );
    let block = `${HEAD}env:\n`;
    for (let depth = 1; depth <= 40; depth++) block += `${'  '.repeat(depth)}- \n`;
    expect(refusal(block).issue.message).toBe('nested more than 32 levels deep');
    expect(refusal(`${HEAD}env:\n  ${'- '.repeat(1_500)}x\n`).issue.message).toBe(
      'nested more than 32 levels deep',
    );
  });

  it('still accepts anchors and aliases within the limits', () => {
    const spec = parseEnvironmentFile(`${HEAD}setup: &s npm ci\nmaintenance: *s\n`);
    expect(spec.maintenance?.script).toBe('npm ci');
  });
});

describe('environment files on the worker', () => {
  const worker = new EnvironmentYamlWorker();
  afterAll(() => worker.close());

  it('gives the same answers as the in-place parse', async () => {
    for (const text of [
      `${HEAD}setup: npm ci\n`,
      keys(100, '  K5: again\n'),
      keys(3_000),
      `${HEAD}env: [`,
    ]) {
      expect(await worker.compose(text)).toEqual(
        composeEnvironmentYaml(yaml, text, ENVIRONMENT_YAML_LIMITS, false),
      );
      expect(await worker.compose(text, ENVIRONMENT_YAML_LIMITS, true)).toEqual(
        composeEnvironmentYaml(yaml, text, ENVIRONMENT_YAML_LIMITS),
      );
    }
  });

  it('refuses a parse that takes longer than its time-out, and keeps serving', async () => {
    const slow = new EnvironmentYamlWorker(1);
    try {
      const result = await slow.compose(keys(4_000));
      expect(result).toEqual({
        ok: false,
        issues: [{ path: '(root)', message: 'the file took longer than 1 ms to parse' }],
      });
    } finally {
      await slow.close();
    }
    // Many at once queue on one worker and each gets its own answer.
    const texts = Array.from({ length: 5 }, (_, i) => `${HEAD}setup: step ${i}\n`);
    const results = await Promise.all(texts.map((text) => worker.compose(text)));
    results.forEach((result, i) => {
      expect(result.ok && (result.value as { setup: string }).setup).toBe(`step ${i}`);
    });
  });
});

describe('JSON environment bodies on the worker', () => {
  const worker = new EnvironmentYamlWorker();
  afterAll(() => worker.close());
  const FIELDS = ['spec', 'secrets', 'removeSecrets'];
  const spec = { name: 'limits', repository: 'https://git.example/acme/app.git' };

  it('gives the same answers as in place: accepted, refused by the spec, the body or the JSON', async () => {
    const env = (count: number) =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`K${i}`, 'v']));
    for (const text of [
      JSON.stringify({ spec: { ...spec, env: env(10) }, secrets: { A: 'a' } }),
      JSON.stringify({ spec: { ...spec, env: env(3_000) } }),
      JSON.stringify({ spec, removeSecrets: Array.from({ length: 3_000 }, () => 'A') }),
      `{"spec": ${JSON.stringify(spec)}, "__proto__": {"x": 1}, "other": [[[1]]]}`,
      '[1, 2]',
      '{"spec": ',
      ' ',
    ]) {
      expect(await worker.composeJsonBody(text, FIELDS)).toEqual(
        composeEnvironmentBody(text, ENVIRONMENT_YAML_LIMITS, FIELDS, valueLimitIssue),
      );
    }
    // An unknown field comes back by name (even `__proto__`), its value not looked into.
    const answer = await worker.composeJsonBody(
      `{"spec": ${JSON.stringify(spec)}, "__proto__": {"x": 1}}`,
      FIELDS,
    );
    expect(answer.ok && Object.keys(answer.value as object)).toEqual(['spec', '__proto__']);
    expect(answer.ok && Object.getPrototypeOf(answer.value)).toBe(Object.prototype);
  });

  it('refuses a parse that takes longer than its time-out, and keeps serving YAML and JSON', async () => {
    const slow = new EnvironmentYamlWorker(1);
    try {
      const big = JSON.stringify({ spec: { ...spec, setup: 'x'.repeat(900_000) } });
      expect(await slow.composeJsonBody(big, FIELDS)).toEqual({
        ok: false,
        refusal: 'body',
        issue: { path: [], message: 'the request body took longer than 1 ms to parse' },
      });
    } finally {
      await slow.close();
    }
    const answers = await Promise.all([
      worker.composeJsonBody(JSON.stringify({ spec: { ...spec, setup: 'json' } }), FIELDS),
      worker.compose(`${HEAD}setup: yaml\n`),
    ]);
    expect(answers.map((answer) => answer.ok)).toEqual([true, true]);
  });
});
