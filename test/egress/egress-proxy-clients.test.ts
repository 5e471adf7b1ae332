/**
 * Real clients through the proxy: curl (OpenSSL, offers h2 and http/1.1 by ALPN) for plain HTTP,
 * tunnelled HTTPS and intercepted HTTPS. curl only ever talks to the proxy on 127.0.0.1 (an
 * explicit --proxy, no proxy variables inherited), so nothing leaves the machine.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startTestProxy,
  startTestWorld,
  type TestProxy,
  type TestWorld,
} from './support/test-world.js';

let world: TestWorld;
let tunnel: TestProxy;
let limited: TestProxy;
let dir: string;

function curl(
  proxy: TestProxy,
  args: string[],
): Promise<{ code: number; status: string; body: string }> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      [
        '-sS',
        '--max-time',
        '10',
        '--proxy',
        `http://127.0.0.1:${proxy.port}`,
        '-o',
        '-',
        '-w',
        '\n%{http_code}',
        ...args,
      ],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } },
      (error, stdout) => {
        const lines = stdout.split('\n');
        const status = lines.pop() ?? '';
        resolve({ code: error ? Number(error.code ?? 1) : 0, status, body: lines.join('\n') });
      },
    );
  });
}

beforeAll(async () => {
  world = await startTestWorld();
  tunnel = await startTestProxy(world, { domains: ['allowed.test'] }, { withCa: false });
  limited = await startTestProxy(world, { domains: ['allowed.test'], methods: ['GET', 'HEAD'] });
  dir = mkdtempSync(join(tmpdir(), 'berth-egress-curl-'));
  writeFileSync(join(dir, 'upstream-ca.pem'), world.upstreamCa.certificatePem);
  writeFileSync(join(dir, 'env-ca.pem'), limited.ca?.certificatePem ?? '');
});
afterAll(async () => {
  await Promise.all([tunnel, limited].map((p) => p.proxy.close()));
  await world.close();
});

describe('curl through the egress proxy', () => {
  it('plain HTTP', async () => {
    const res = await curl(tunnel, [`http://allowed.test:${world.httpPort}/plain`]);
    expect(res.status).toBe('200');
    expect(JSON.parse(res.body)).toMatchObject({
      url: '/plain',
      host: `allowed.test:${world.httpPort}`,
    });
  });

  it('HTTPS through a tunnel, verifying the upstream certificate itself', async () => {
    const res = await curl(tunnel, [
      '--cacert',
      join(dir, 'upstream-ca.pem'),
      `https://allowed.test:${world.httpsPort}/tls`,
    ]);
    expect(res.status).toBe('200');
    expect(JSON.parse(res.body)).toMatchObject({ url: '/tls', servername: 'allowed.test' });
  });

  it('HTTPS intercepted: GET passes with the environment CA, POST is refused with the reason', async () => {
    const get = await curl(limited, [
      '--cacert',
      join(dir, 'env-ca.pem'),
      `https://allowed.test:${world.httpsPort}/get`,
    ]);
    expect(get.status).toBe('200');
    expect(JSON.parse(get.body)).toMatchObject({ method: 'GET', url: '/get' });
    const post = await curl(limited, [
      '--cacert',
      join(dir, 'env-ca.pem'),
      '-d',
      'x=1',
      `https://allowed.test:${world.httpsPort}/post`,
    ]);
    expect(post.status).toBe('403');
    expect(post.body).toMatch(
      /^berth egress: POST allowed\.test:\d+ denied: method not allowed \(allowed: /,
    );
    // curl does not trust the upstream's own CA for an intercepted host: the proxy's leaf is what it sees.
    const wrongCa = await curl(limited, [
      '--cacert',
      join(dir, 'upstream-ca.pem'),
      `https://allowed.test:${world.httpsPort}/get`,
    ]);
    expect(wrongCa.code).not.toBe(0);
  });

  it('a refused host gets the 403 body from the proxy', async () => {
    const res = await curl(tunnel, [`http://evil.test:${world.httpPort}/`]);
    expect(res.status).toBe('403');
    expect(res.body).toContain('evil.test is not on the allowlist');
    const https = await curl(tunnel, [`https://evil.test:${world.httpsPort}/`]);
    expect(https.code).not.toBe(0);
    expect(world.canary).toEqual([]);
  });
});
