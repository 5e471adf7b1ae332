import { describe, expect, it } from 'vitest';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';
import { scriptSecrets } from '../../src/domain/environment/internet-grants.js';
import { parseByteSize } from '../../src/domain/internet/byte-size.js';
import { injectedCredentials } from '../../src/domain/internet/injected-credentials.js';
import { BerthError } from '../../src/errors/berth-error.js';

const base = `name: api
repository: https://git.example.test/acme/api.git
secrets: [API_TOKEN, NPM_TOKEN]
`;

function file(internet: string): string {
  return `${base}internet:\n${internet
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;
}

function issues(text: string): Array<{ path: string; message: string }> {
  try {
    parseEnvironmentFile(text, 'env.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(BerthError);
    return (error as BerthError).details.issues as Array<{ path: string; message: string }>;
  }
  throw new Error('expected a refusal');
}

const allowed = `access: allowlist
domains: [api.example.test, '*.github.test']`;

describe('internet.credentials, rules and budget in an environment file', () => {
  it('reads all three', () => {
    const spec = parseEnvironmentFile(
      file(`${allowed}
credentials:
  - { host: api.example.test, header: Authorization, secret: API_TOKEN, format: "Bearer {value}" }
rules:
  - { host: api.github.test, methods: [get], paths: ["/repos/acme/*"] }
budget: { requests: 100, bytesOut: "10MB", bytesIn: "2GB" }`),
    );
    expect(spec.internet.credentials).toEqual([
      {
        host: 'api.example.test',
        header: 'Authorization',
        secret: 'API_TOKEN',
        format: 'Bearer {value}',
      },
    ]);
    expect(spec.internet.rules).toEqual([
      { host: 'api.github.test', methods: ['GET'], paths: ['/repos/acme/*'] },
    ]);
    expect(spec.internet.budget).toEqual({ requests: 100, bytesOut: '10MB', bytesIn: '2GB' });
  });

  it('refuses a credential for a host that is not allowed', () => {
    expect(
      issues(
        file(`${allowed}
credentials: [{ host: other.example.test, header: Authorization, secret: API_TOKEN }]`),
      ),
    ).toContainEqual({
      path: 'internet.credentials[0].host',
      message: expect.stringContaining('is not allowed by internet.domains') as string,
      line: expect.any(Number) as number,
      column: expect.any(Number) as number,
    });
  });

  it('refuses a credential with access off, and one under tunnelOnly', () => {
    expect(
      issues(`${base}internet:
  credentials: [{ host: api.example.test, header: Authorization, secret: API_TOKEN }]
`).map((i) => i.path),
    ).toContain('internet.credentials[0].host');
    expect(
      issues(
        file(`${allowed}
tunnelOnly: [api.example.test]
credentials: [{ host: api.example.test, header: Authorization, secret: API_TOKEN }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.credentials[0].host',
        message: expect.stringContaining('tunnelOnly') as string,
      }),
    );
  });

  it('refuses a credential for http://', () => {
    expect(
      issues(
        file(`${allowed}
credentials: [{ host: "http://api.example.test", header: Authorization, secret: API_TOKEN }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.credentials[0].host',
        message: expect.stringContaining('HTTPS only') as string,
      }),
    );
  });

  it('refuses a credential naming an undeclared secret', () => {
    expect(
      issues(
        file(`${allowed}
credentials: [{ host: api.example.test, header: Authorization, secret: OTHER }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.credentials[0].secret',
        message: expect.stringContaining(
          '"OTHER" is not one of this environment\'s secrets',
        ) as string,
      }),
    );
  });

  it.each([
    ['Host', 'sets this header itself'],
    ['Content-Length', 'sets this header itself'],
    ['Bad Header', 'not an HTTP header name'],
  ])('refuses the header %s', (header, message) => {
    expect(
      issues(
        file(`${allowed}
credentials: [{ host: api.example.test, header: "${header}", secret: API_TOKEN }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.credentials[0].header',
        message: expect.stringContaining(message) as string,
      }),
    );
  });

  it('refuses a format without {value} or with a line break', () => {
    const found = issues(
      file(`${allowed}
credentials:
  - { host: api.example.test, header: Authorization, secret: API_TOKEN, format: "Bearer" }
  - { host: api.example.test, header: X-Key, secret: API_TOKEN, format: "a\\n{value}" }`),
    );
    expect(found.map((i) => i.path)).toEqual([
      'internet.credentials[0].format',
      'internet.credentials[1].format',
    ]);
  });

  it('refuses a rule with an empty path list', () => {
    expect(
      issues(
        file(`${allowed}
rules: [{ host: api.github.test, methods: [GET], paths: [] }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.rules[0].paths',
        message: expect.stringContaining('at least one path') as string,
      }),
    );
  });

  it('refuses a rule with an invalid method', () => {
    expect(
      issues(
        file(`${allowed}
rules: [{ host: api.github.test, methods: [GET, FETCH], paths: ["/x"] }]`),
      ),
    ).toContainEqual(
      expect.objectContaining({
        path: 'internet.rules[0].methods[1]',
        message: expect.stringContaining('not an HTTP method') as string,
      }),
    );
  });

  it('refuses a rule for a host that is not allowed, a path not in normal form, and http://', () => {
    const found = issues(
      file(`${allowed}
rules:
  - { host: evil.test, methods: [GET], paths: ["/x"] }
  - { host: api.github.test, methods: [GET], paths: ["/repos/../admin"] }
  - { host: "http://api.example.test", methods: [GET], paths: ["/x"] }`),
    );
    expect(found.map((i) => i.path)).toEqual([
      'internet.rules[1].paths[0]',
      'internet.rules[2].host',
      'internet.rules[0].host',
    ]);
  });

  it('refuses budgets in unknown units, naming the accepted ones', () => {
    expect(
      issues(
        file(`${allowed}
budget: { bytesOut: "10 parsecs", bytesIn: "2XB" }`),
      ),
    ).toEqual([
      expect.objectContaining({
        path: 'internet.budget.bytesOut',
        message: expect.stringContaining(
          'accepted units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB',
        ) as string,
      }),
      expect.objectContaining({
        path: 'internet.budget.bytesIn',
        message: 'unknown unit "XB" (accepted units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)',
      }),
    ]);
  });

  it('refuses a budget with access off and a request budget that is not a whole number', () => {
    expect(issues(`${base}internet: { budget: { requests: 5 } }\n`).map((i) => i.path)).toEqual([
      'internet.budget',
    ]);
    expect(issues(file(`${allowed}\nbudget: { requests: 0.5 }`)).map((i) => i.path)).toEqual([
      'internet.budget.requests',
    ]);
  });
});

describe('sizes', () => {
  it.each([
    ['10MB', 10_000_000],
    ['2GB', 2_000_000_000],
    ['1.5 KiB', 1536],
    ['512', 512],
    ['512B', 512],
    [4096, 4096],
  ] as const)('%s is %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toEqual({ ok: true, bytes });
  });

  it.each(['', '10mb', '0MB', '-1MB', 'MB', '1e3MB'])('refuses %j', (text) => {
    expect(parseByteSize(text).ok).toBe(false);
  });
});

describe('credential secrets', () => {
  const spec = parseEnvironmentFile(
    file(`${allowed}
credentials:
  - { host: API.example.test, header: Authorization, secret: API_TOKEN, format: "Bearer {value}" }`),
  );

  it('a secret used only as a credential is not given to the scripts nor to the cache key', () => {
    expect(scriptSecrets(spec, { API_TOKEN: 's3cr3t', NPM_TOKEN: 'npm' })).toEqual({
      NPM_TOKEN: 'npm',
    });
  });

  it('a secret that is also the repository credential still is', () => {
    const both = parseEnvironmentFile(
      `${base.replace(
        'repository: https://git.example.test/acme/api.git',
        'repository: { url: "https://git.example.test/acme/api.git", credentials: { secret: API_TOKEN } }',
      )}internet:\n  access: allowlist\n  domains: [api.example.test]\n  credentials: [{ host: api.example.test, header: Authorization, secret: API_TOKEN }]\n`,
    );
    expect(scriptSecrets(both, { API_TOKEN: 't' })).toEqual({ API_TOKEN: 't' });
  });

  it('formats the value for the proxy, with the host normalised; an unset secret is skipped', () => {
    expect(injectedCredentials(spec.internet, { API_TOKEN: 'a$&b' })).toEqual({
      credentials: [{ host: 'api.example.test', header: 'Authorization', value: 'Bearer a$&b' }],
      skipped: [],
    });
    expect(injectedCredentials(spec.internet, {})).toEqual({
      credentials: [],
      skipped: ['api.example.test (Authorization): the secret API_TOKEN is not set'],
    });
  });
});
