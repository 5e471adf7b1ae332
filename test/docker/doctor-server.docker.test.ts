import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerth, startServe, tempDir, type ServeHandle } from '../support/cli.js';

/**
 * Issue 20 item 10: `berth doctor` checks the server the person uses (reachable, token valid, its
 * version, its data directory, the engine's free disk against the floor) and says the fix for
 * each failure; through the built CLI against real `berth serve` processes.
 */

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

let server: ServeHandle;
let starved: ServeHandle;

beforeAll(async () => {
  server = await startServe();
  // A floor no disk meets: the server refuses attempts, and doctor says so.
  starved = await startServe([], { BERTH_MIN_FREE_DISK_MB: '900000000' });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await starved?.stop();
});

async function doctor(args: string[], env: Record<string, string> = {}) {
  const r = await runBerth(
    ['doctor', '--json', '--no-registries', '--data-dir', tempDir('doctor-srv'), ...args],
    {
      BERTH_CONFIG_DIR: tempDir('doctor-config'),
      ...env,
    },
  );
  const report = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
  const check = (name: string) => report.checks.find((c) => c.name === name);
  return { code: r.code, report, check };
}

describe('berth doctor and the server it is logged in to (docker)', () => {
  it('checks the server: reachable, the token, its version, data directory and free disk', async () => {
    const { check } = await doctor([], { BERTH_URL: server.url, BERTH_TOKEN: server.adminToken });
    expect(check('server')).toMatchObject({ ok: true });
    expect(check('server')?.detail).toContain(`${server.url} (from BERTH_URL) answers, version`);
    expect(check('token')).toMatchObject({ ok: true, detail: 'valid: token "admin" (admin)' });
    expect(check('server data directory')).toMatchObject({
      ok: true,
      detail: `${server.dataDir} is writable`,
    });
    expect(check('server free disk')?.ok).toBe(true);
    expect(check('server free disk')?.detail).toMatch(/^\d+ MB free in \S+ .*the floor is 2048 MB/);
  });

  it('says the fix when the free disk is below the server’s floor', async () => {
    const { code, check } = await doctor(['--url', starved.url, '--token', starved.adminToken]);
    expect(code).toBe(1);
    expect(check('server free disk')).toMatchObject({ ok: false });
    expect(check('server free disk')?.detail).toContain('the floor is 900000000 MB');
    expect(check('server free disk')?.fix).toContain('lower BERTH_MIN_FREE_DISK_MB on the server');
  });

  it('says the fix for a token the server does not take, and a server that does not answer', async () => {
    const wrong = await doctor(['--url', server.url, '--token', 'berth_not-a-token']);
    expect(wrong.code).toBe(1);
    expect(wrong.check('token')).toMatchObject({ ok: false });
    expect(wrong.check('token')?.detail).toContain('does not accept the token from --url');
    expect(wrong.check('token')?.fix).toContain('berth login URL with a live token');

    // A port nothing listens on: the stopped server's.
    const gone = await startServe();
    const url = gone.url;
    await gone.stop();
    const down = await doctor(['--url', url, '--token', 'x']);
    expect(down.code).toBe(1);
    expect(down.check('server')).toMatchObject({ ok: false });
    expect(down.check('server')?.detail).toContain(`${url} (from --url) does not answer`);
    expect(down.check('server')?.fix).toContain('berth serve');
  });

  it('a token that is not an admin’s sees the version, not the data directory', async () => {
    const made = await runBerth([
      'token',
      'create',
      'member',
      '--json',
      '--url',
      server.url,
      '--token',
      server.adminToken,
    ]);
    const token = (JSON.parse(made.stdout) as { token: string }).token;
    const { check } = await doctor(['--url', server.url, '--token', token]);
    expect(check('token')).toMatchObject({ ok: true, detail: 'valid: token "member"' });
    expect(check('server data directory')?.detail).toContain('only an admin token sees');
    expect(check('server free disk')).toBeUndefined();
  });
});
